"""The runnable examples run (each as a script, as a user would)."""

from __future__ import annotations

import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Needs Apache Airflow, which is not a dependency: checked to compile, not run.
TEMPLATES = {"airflow_dag.py"}
# Modules named "_*.py" hold code several examples share; they are imported, not run.
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in TEMPLATES and not p.name.startswith("_"))
# Examples that read the real corpora (skipped where they are absent, as the tests that read them are).
NEEDS_CORPORA = {"real_corpus.py"}
# Efficacy targets of the detection issue that an example prints: (line pattern capturing the figure, minimum
# in the printed unit). The model: recall at a 1e-4 false-positive rate, the third figure of its "all attacks"
# row (attacks, ROC AUC, recall@1e-4); the unsupervised ranker: attack messages within 10 alerts per tenant-day.
TARGETS = {"detector_unsupervised.py": (r"attacks within the budget: ([\d.]+)%", 80.0),
           "detector_model.py": (r"signals \+ message\s+all attacks\s+[\d.]+\s+[\d.]+\s+([\d.]+)", 0.90)}


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if script in NEEDS_CORPORA:
        request.getfixturevalue("real_data")  # (skips where the corpora are absent)
    temporary = tmp_path / "tmp"  # the example's temporary folder, to see what it leaves there
    temporary.mkdir()
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, env={**os.environ, "TMPDIR": str(temporary)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "an example shows what it did"
    # What it keeps for its user to open is in the folder it runs in: temporary folders of its own, one more each
    # run, filled /tmp (77 commgraph-explore-*, 47 commgraph-refresh-*).
    assert not sorted(p.name for p in temporary.glob("commgraph-*")), "an example removes its temporary folders"
    if script in TARGETS:
        pattern, minimum = TARGETS[script]
        found = re.search(pattern, done.stdout)
        assert found, f"{script} no longer prints {pattern!r}"
        assert float(found.group(1)) >= minimum, f"{script}: {found.group(0)!r}, the target is {minimum}"


def test_the_refresh_example_removes_its_folder_even_when_it_fails(tmp_path: Path) -> None:
    # Its last step removed its archive and store: a run that failed before it left them behind.
    driver = ("import runpy\nimport commgraph.graph\n\n"
              "def fail(*args, **kwargs):\n    raise RuntimeError('the archive could not be written')\n\n"
              "commgraph.graph.write_generated = fail\n"
              f"runpy.run_path({str(EXAMPLES / 'refresh_job.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 1 and "the archive could not be written" in done.stderr, done.stderr[-3000:]
    assert not list(tmp_path.glob("commgraph-refresh-*"))


@pytest.mark.parametrize("script", sorted(TEMPLATES))
def test_template_compiles(script: str) -> None:
    py_compile.compile(str(EXAMPLES / script), doraise=True)
