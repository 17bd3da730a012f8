"""Backfill's hour rates (``sender_hour_surprise`` before its log) by one compiled pass, against numpy's passes."""

from __future__ import annotations

import numpy as np
import pytest

from commgraph.signals._backfill_signals import _hour_rates
from commgraph.signals._builtin_identity import HOUR_PSEUDO_COUNT


def _numpy(at_hour, tenant_total, sender_hours, n_messages) -> np.ndarray:
    # What habit_signals computed before the compiled pass.
    p = at_hour + 1.0
    p /= tenant_total + 24.0
    p *= HOUR_PSEUDO_COUNT
    p += sender_hours
    p /= n_messages + HOUR_PSEUDO_COUNT
    return p


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.uint64, np.float64, bool])
def test_the_rates_are_numpys_to_the_bit(seed, dtype) -> None:
    rng = np.random.default_rng(seed)
    n = [0, 1][seed] if seed < 2 else int(rng.integers(2, 500))
    high = int(rng.choice([3, 1000, 1 << 40])) if dtype in (np.int64, np.uint64, np.float64) else 1000
    counts = [rng.integers(0, high, n).astype(dtype) for _ in range(4)]
    assert _hour_rates(*counts).tobytes() == _numpy(*counts).tobytes()


def test_counts_beyond_int64_take_numpys_way() -> None:
    big = np.array([np.iinfo(np.uint64).max, 7], np.uint64)
    counts = [big, big, big, big]
    assert _hour_rates(*counts).tobytes() == _numpy(*counts).tobytes()


def test_strided_and_read_only_counts() -> None:
    table = np.arange(40, dtype=np.int64).reshape(10, 4)
    counts = list(table.T)
    for c in counts:
        c.flags.writeable = False
    assert _hour_rates(*counts).tobytes() == _numpy(*counts).tobytes()
