"""Backfill's authentication columns from the sender table's counts as they are (int32 or int64, strided or
not), against the numpy formula, and its check of the result codes (the kernel's, not numpy's reductions)."""

from __future__ import annotations

import numpy as np
import pytest

from commgraph.signals._backfill_signals import _AUTH, _IS_FAIL, _MIN_PASSES, _auth_columns

NAMES = [f"{a}_{k}" for a in _AUTH for k in ("pass", "fail")]


def _expected(cols: dict[str, np.ndarray], codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    passes = [np.asarray(cols[f"{a}_pass"], np.int64) for a in _AUTH]
    fails = [np.asarray(cols[f"{a}_fail"], np.int64) for a in _AUTH]
    n_fail = sum(fails)
    n_all = n_fail + sum(passes)
    deviation = np.zeros(len(n_all), bool)
    for p, f, c in zip(passes, fails, codes):
        deviation |= (p >= _MIN_PASSES) & (p >= 9 * f) & _IS_FAIL[c]
    rate = np.divide(n_fail, n_all, out=np.zeros(len(n_all)), where=n_all > 0).astype(np.float32)
    return rate, deviation.astype(np.int8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int16])
@pytest.mark.parametrize("strided", [False, True])
def test_counts_read_as_they_are_give_the_numpy_formula(seed, dtype, strided) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300)) if seed else 0  # (none, then a few hundred)
    table = rng.integers(0, rng.integers(1, 60), (n, len(NAMES) + 2)).astype(dtype)  # (two more columns)
    cols = {name: table[:, j] if strided else np.ascontiguousarray(table[:, j]) for j, name in enumerate(NAMES)}
    codes = [rng.integers(-len(_IS_FAIL), len(_IS_FAIL), n).astype(np.int8) for _ in _AUTH]  # negative: from the end
    rate, flags = _auth_columns(cols, codes)
    expected_rate, expected_flags = _expected(cols, codes)
    assert rate.dtype == np.float32 and rate.tobytes() == expected_rate.tobytes()
    assert flags.dtype == np.int8 and flags.tolist() == expected_flags.tolist()


def test_large_int32_counts_are_added_as_int64() -> None:
    big = np.iinfo(np.int32).max
    cols = {name: np.full(2, big, np.int32) for name in NAMES}
    codes = [np.array([0, -1], np.int8)] * 3
    rate, flags = _auth_columns(cols, codes)
    expected_rate, expected_flags = _expected(cols, codes)
    assert rate.tobytes() == expected_rate.tobytes() and flags.tolist() == expected_flags.tolist()


@pytest.mark.parametrize("bad", [len(_IS_FAIL), -len(_IS_FAIL) - 1, 127, -128])
@pytest.mark.parametrize("where", [0, 2])
def test_codes_outside_the_table_are_refused(bad, where) -> None:
    cols = {name: np.zeros(3, np.int32) for name in NAMES}
    codes = [np.zeros(3, np.int8) for _ in _AUTH]
    codes[where % len(_AUTH)][where] = bad
    with pytest.raises(IndexError, match="result code"):
        _auth_columns(cols, codes)


def test_columns_of_other_lengths_are_refused() -> None:
    cols = {name: np.zeros(3, np.int64) for name in NAMES}
    with pytest.raises(ValueError, match="_auth_columns"):
        _auth_columns(cols, [np.zeros(2, np.int8)] * 3)
