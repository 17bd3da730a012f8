"""numpy's huge-page requests are off inside no_hugepage_stalls where the kernel would stall on them, and as
numpy had them afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from commgraph.baselines._pages import _toggle, no_hugepage_stalls


def _requests_on() -> bool:
    toggle = _toggle()
    previous = toggle(True)  # read the setting by setting it, then put it back
    toggle(previous)
    return previous


@pytest.fixture
def policy(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "defrag"
        path.write_text(text + "\n")
        return str(path)
    return write


@pytest.mark.parametrize("text, stalls", [("always defer defer+madvise [madvise] never", True),
                                          ("always defer [defer+madvise] madvise never", True),
                                          ("[always] defer defer+madvise madvise never", False),
                                          ("always defer defer+madvise madvise [never]", False)])
def test_requests_are_off_inside_only_where_they_stall_and_restored_after(policy, text, stalls) -> None:
    if _toggle() is None:
        pytest.skip("this numpy has no switch for its huge-page requests")
    before = _requests_on()
    with no_hugepage_stalls(policy(text)) as off:
        assert off is stalls
        assert _requests_on() is (before and not stalls)
        with no_hugepage_stalls(policy(text)):  # nested: still off, and still off when the inner block ends
            np.zeros(1 << 20)
        assert _requests_on() is (before and not stalls)
    assert _requests_on() is before


def test_numpy_setting_is_restored_as_found_even_when_the_block_fails(policy) -> None:
    toggle = _toggle()
    if toggle is None:
        pytest.skip("this numpy has no switch for its huge-page requests")
    found = toggle(False)  # a deployment that turned them off itself keeps them off
    try:
        with pytest.raises(RuntimeError), no_hugepage_stalls(policy("[madvise]")):
            raise RuntimeError("boom")
        assert _requests_on() is False
    finally:
        toggle(found)
    with no_hugepage_stalls(policy("[madvise]")):
        pass
    assert _requests_on() is found
