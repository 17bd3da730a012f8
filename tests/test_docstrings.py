"""Every public object has a numpydoc docstring with an Examples section."""

from __future__ import annotations

import importlib

import pytest
from numpydoc.validate import validate

LAYERS = ("commgraph.graph", "commgraph.baselines", "commgraph.signals")
REQUIRED = {"GL08": "no docstring", "EX01": "no Examples section"}


def _public() -> list[str]:
    names = []
    for layer in LAYERS:
        module = importlib.import_module(layer)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, (str, tuple)):
                names.append(f"{layer}.{name}")
    return names


@pytest.mark.parametrize("name", _public())
def test_public_docstring(name: str) -> None:
    result = validate(name)
    errors = [f"{code}: {message}" for code, message in result["errors"] if code in REQUIRED]
    assert not errors, f"{name}: " + "; ".join(errors)
