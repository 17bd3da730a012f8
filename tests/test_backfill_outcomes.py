"""Backfill's label counts added up by compiled passes, against the numpy expression they replace.

``_outcomes_counted`` (and ``_mean_kernel``, which adds the same counts row by
row) must give :func:`commgraph.baselines._build._outcomes`' successes and
trials, and their extremes as numpy's reductions with ``initial=0`` give them,
for columns of their own or strided columns of one table, with either label
policy and negative presumed counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig
from commgraph.baselines._asof import smoothed
from commgraph.baselines._build import _outcomes
from commgraph.signals._backfill_signals import _outcomes_counted, smoothed_mean

NAMES = ("n_safe", "n_presumed_safe", "n_attack", "n_spam")
CONFIGS = [BaselineConfig(), BaselineConfig(label_policy="ignore")]


def _columns(values: list[list[int]], strided: bool) -> dict[str, np.ndarray]:
    table = np.array(values, np.int64).reshape(-1, 4)
    if strided:  # columns of one table, as a batch's tables hold them
        return dict(zip(NAMES, table.T))
    return {name: np.ascontiguousarray(table[:, j]) for j, name in enumerate(NAMES)}


rows = st.lists(st.lists(st.one_of(st.integers(-3, 3), st.integers(-(1 << 40), 1 << 40)), min_size=4, max_size=4),
                max_size=30)


@settings(max_examples=200, deadline=None)
@given(rows, st.booleans(), st.sampled_from(CONFIGS))
def test_the_counts_are_numpys(values, strided, config) -> None:
    columns = _columns(values, strided)
    safe, trials, low_k, high_k, high_n = _outcomes_counted(columns, config)
    expected_safe, expected_trials = _outcomes(columns, config)
    assert safe.dtype == trials.dtype == np.int64
    assert safe.tolist() == expected_safe.tolist() and trials.tolist() == expected_trials.tolist()
    assert (low_k, high_k, high_n) == (int(expected_safe.min(initial=0)), int(expected_safe.max(initial=0)),
                                       int(expected_trials.max(initial=0)))


@pytest.mark.parametrize("values", [[], [[5, 2, 1, 0]], [[-4, -1, 0, 0], [0, -7, 2, 3]], [[0, 0, 0, 0]] * 3])
@pytest.mark.parametrize("config", CONFIGS)
def test_edge_cases(values, config) -> None:
    for strided in (False, True):
        columns = _columns(values, strided)
        safe, trials, low_k, high_k, high_n = _outcomes_counted(columns, config)
        expected_safe, expected_trials = _outcomes(columns, config)
        assert safe.tolist() == expected_safe.tolist() and trials.tolist() == expected_trials.tolist()
        assert (low_k, high_k, high_n) == (int(expected_safe.min(initial=0)), int(expected_safe.max(initial=0)),
                                           int(expected_trials.max(initial=0)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), min_size=4, max_size=4), min_size=1, max_size=30), st.booleans(),
       st.sampled_from(CONFIGS))
def test_the_mean_adds_up_the_counts_as_numpy(values, strided, config) -> None:
    columns = _columns(values, strided)
    columns["n_presumed_safe"] = columns["n_presumed_safe"] - 2  # (negative ones count as none)
    n = len(values)
    alpha, beta = np.linspace(0.5, 3.0, n), np.linspace(4.0, 1.0, n)
    assert smoothed_mean(columns, alpha, beta, None, config).tobytes() == \
        smoothed(columns, alpha, beta, config)[0].tobytes()


def test_columns_of_other_lengths_are_refused() -> None:
    columns = {name: np.zeros(3, np.int64) for name in NAMES}
    columns["n_spam"] = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="label columns"):
        _outcomes_counted(columns, BaselineConfig())
    with pytest.raises(ValueError, match="label columns"):
        smoothed_mean(columns, np.ones(3), np.ones(3), None, BaselineConfig())
