"""Dependencies point one way: graph <- baselines <- signals."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"graph": ("baselines", "signals"), "baselines": ("signals",), "signals": ()}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the layer
                if node.level >= 2:
                    found.append((node.lineno, f"commgraph.{node.module or ''}"))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    offences = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for lineno, module in _imports(path):
            for upper in FORBIDDEN[layer]:
                if module == f"commgraph.{upper}" or module.startswith(f"commgraph.{upper}.") \
                        or module == upper or module.startswith(upper + "."):
                    offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert not offences, "layers must only import downwards:\n" + "\n".join(offences)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "mod.py"
    bad.write_text("from commgraph.signals import x\nfrom ..baselines import y\n")
    assert [m for _, m in _imports(bad)] == ["commgraph.signals", "commgraph.baselines"]
