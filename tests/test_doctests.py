"""Every docstring example of the three layers runs as part of the suite.

Modules are imported by their public names (``commgraph.graph._addresses``),
exactly as users import them, rather than from the folder layout on disk.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pandas as pd
import pytest

LAYERS = ("commgraph.graph", "commgraph.baselines", "commgraph.signals")


def _modules() -> list[str]:
    names = []
    for layer in LAYERS:
        package = importlib.import_module(layer)
        names.append(layer)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=layer + ".")]
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    globs = {"np": np, "pd": pd}
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(module, module_name, globs=dict(module.__dict__, **globs)):
        result = runner.run(test, out=report.append)
        del result
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, "".join(report)
