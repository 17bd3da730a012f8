"""The package installs as commgraph.graph / .baselines / .signals from the root folders."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import commgraph.graph
from commgraph.signals._cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_the_three_layers_under_the_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("commgraph-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for layer in ("graph", "baselines", "signals"):
        assert f"commgraph/{layer}/__init__.py" in names
        assert f"commgraph/{layer}/py.typed" in names
    assert "commgraph/graph/data/freemail_extra.txt" in names  # the consumer-provider list travels with the code
    assert not any(n.startswith(("graph/", "baselines/", "signals/", "tests/")) for n in names)
    assert not any(n == "commgraph/__init__.py" for n in names), "commgraph must stay a namespace"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "commgraph = commgraph.signals._cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_public_names_exist() -> None:
    for name in commgraph.graph.__all__:
        assert hasattr(commgraph.graph, name), name


def test_public_names_of_every_layer_exist_and_the_engine_does_not_load_scikit_learn() -> None:
    # The transformer's scikit-learn (about a second to import) loads only when BaselineSignals is asked for:
    # the refresh job, the engine and the command line start without it.
    code = ("import sys, commgraph.baselines as b, commgraph.signals as s, commgraph.signals._cli; "
            "loaded = 'sklearn' in sys.modules; "
            "missing = [n for m in (b, s) for n in m.__all__ if not hasattr(m, n)]; "
            "print(loaded, missing, 'BaselineSignals' in dir(s), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "[]", "True", "True"]


def test_version_and_validate_commands(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("commgraph 0.")
    sample = ROOT / "examples" / "data" / "sample_mail.csv"
    code = main(["validate", str(sample), "--tenants", str(ROOT / "examples" / "data" / "tenants.toml")])
    out = capsys.readouterr().out
    assert code == 1 and "duplicate_message_id" in out and "row 61:" in out and "messages" in out
    clean = tmp_path / "clean.csv"
    import pandas as pd
    pd.read_csv(sample).iloc[:20].to_csv(clean, index=False)
    assert main(["validate", str(clean), "--tenants", str(ROOT / "examples" / "data" / "tenants.toml")]) == 0
    # validate names the configuration as refresh, score and explain do; there --tenants is a list of tenant ids,
    # and a file given to it was read as a tenant ('tenants.toml' has no snapshot, exit 1).
    assert main(["validate", str(clean), "--tenant-config", str(ROOT / "examples" / "data" / "tenants.toml")]) == 0
    capsys.readouterr()
    assert main(["score", "--input", str(clean), "--store", str(tmp_path), "--output", str(tmp_path / "x.parquet"),
                 "--tenants", "tenants.toml"]) == 2
    assert "--tenants takes comma-separated tenant ids; 'tenants.toml' names a file" in capsys.readouterr().err
    assert main(["validate", str(clean), "--columns", "sender"]) == 2
    assert "contract=column" in capsys.readouterr().err


def test_console_script_runs() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "commgraph"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "validate" in out.stdout
