"""numpy's huge-page requests are off inside no_hugepage_stalls where the kernel would stall on them, and as
numpy had them afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from commgraph.baselines import _pages
from commgraph.baselines._pages import no_hugepage_stalls


class Switch:
    """A stand-in for numpy's switch: holds the setting, returns the previous one, as numpy's does."""

    def __init__(self, on: bool):
        self.on = on

    def __call__(self, on: bool) -> bool:
        previous, self.on = self.on, bool(on)
        return previous


@pytest.fixture
def policy(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "defrag"
        path.write_text(text + "\n")
        return str(path)
    return write


def test_numpy_has_the_switch_the_backfill_relies_on() -> None:
    # Private in numpy (>= 2.0 here): should a release drop it, the backfill's first run slows down unseen.
    switch = _pages._toggle()
    assert switch is not None
    previous = switch(False)
    assert switch(previous) is False


@pytest.mark.parametrize("text, stalls", [("always defer defer+madvise [madvise] never", True),
                                          ("always defer [defer+madvise] madvise never", True),
                                          ("[always] defer defer+madvise madvise never", False),
                                          ("always defer defer+madvise madvise [never]", False)])
@pytest.mark.parametrize("found", [True, False])
def test_requests_are_off_inside_only_where_they_stall_and_restored_after(monkeypatch, policy, text, stalls,
                                                                          found) -> None:
    switch = Switch(found)
    monkeypatch.setattr(_pages, "_switch", lambda: switch)
    with no_hugepage_stalls(policy(text)) as off:
        assert off is stalls
        assert switch.on is (found and not stalls)
        with no_hugepage_stalls(policy(text)):  # nested: still off, and still off when the inner block ends
            np.zeros(1 << 20)
        assert switch.on is (found and not stalls)
    assert switch.on is found  # a deployment that turned them off itself keeps them off


def test_the_setting_is_restored_when_the_block_fails_and_nothing_happens_without_a_switch(monkeypatch,
                                                                                           policy) -> None:
    switch = Switch(True)
    monkeypatch.setattr(_pages, "_switch", lambda: switch)
    with pytest.raises(RuntimeError), no_hugepage_stalls(policy("[madvise]")):
        assert switch.on is False
        raise RuntimeError("boom")
    assert switch.on is True
    monkeypatch.setattr(_pages, "_switch", lambda: None)
    with no_hugepage_stalls(policy("[madvise]")) as off:
        assert off is False
