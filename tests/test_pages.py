"""numpy's huge-page requests are off, and Arrow allocates from the system allocator, inside
no_hugepage_stalls where the kernel would stall on huge-page requests; both as they were afterwards."""

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
    monkeypatch.setattr(_pages, "_pool_switch", lambda: None)
    with no_hugepage_stalls(policy("[madvise]")) as off:
        assert off is False


class PoolSwitch:
    """A stand-in for pyarrow's default-pool switch: given a pool (None: the system one), sets it and returns
    the previous default, as the real one does."""

    def __init__(self, pool: str):
        self.pool = pool

    def __call__(self, pool: str | None) -> str:
        previous, self.pool = self.pool, "system" if pool is None else pool
        return previous


@pytest.mark.parametrize("text, stalls", [("always defer defer+madvise [madvise] never", True),
                                          ("[always] defer defer+madvise madvise never", False)])
def test_arrow_allocates_from_the_system_inside_only_where_requests_stall_and_its_pool_is_restored(
        monkeypatch, policy, text, stalls) -> None:
    pools = PoolSwitch("mimalloc")
    monkeypatch.setattr(_pages, "_switch", lambda: Switch(True))
    monkeypatch.setattr(_pages, "_pool_switch", lambda: pools)
    with no_hugepage_stalls(policy(text)) as off:
        assert off is stalls
        assert pools.pool == ("system" if stalls else "mimalloc")
        with no_hugepage_stalls(policy(text)):  # nested: the inner block restores nothing
            pass
        assert pools.pool == ("system" if stalls else "mimalloc")
    assert pools.pool == "mimalloc"
    with pytest.raises(RuntimeError), no_hugepage_stalls(policy(text)):
        raise RuntimeError("boom")
    assert pools.pool == "mimalloc"


def test_either_switch_alone_is_used_and_neither_means_nothing_to_do(monkeypatch, policy) -> None:
    pools, switch = PoolSwitch("jemalloc"), Switch(True)
    monkeypatch.setattr(_pages, "_switch", lambda: None)
    monkeypatch.setattr(_pages, "_pool_switch", lambda: pools)
    with no_hugepage_stalls(policy("[madvise]")) as off:
        assert off is True and pools.pool == "system"
    assert pools.pool == "jemalloc"
    monkeypatch.setattr(_pages, "_switch", lambda: switch)
    monkeypatch.setattr(_pages, "_pool_switch", lambda: None)
    with no_hugepage_stalls(policy("[madvise]")) as off:
        assert off is True and switch.on is False
    assert switch.on is True
    monkeypatch.setattr(_pages, "_switch", lambda: None)
    with no_hugepage_stalls(policy("[madvise]")) as off:
        assert off is False


def test_the_real_arrow_switch_sets_and_restores_pyarrows_default_pool() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    swap = _pages._pool_toggle()
    before = pa.default_memory_pool()
    previous = swap(None)
    try:
        assert previous.backend_name == before.backend_name
        assert pa.default_memory_pool().backend_name == "system"
        taken = pc.take(pa.array(["a", "b"]), pa.array([1, 1, 0]))  # compute allocates from the default pool
        assert taken.to_pylist() == ["b", "b", "a"]
    finally:
        swap(previous)
    assert pa.default_memory_pool().backend_name == before.backend_name
