"""The outcome histograms behind the priors through time, against plain pandas references.

The priors themselves are checked against the snapshots in
``test_pointintime.py``; here the steps in between: changes merged per entity
between asked instants, and the states before and after each change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines._priors_in_time import TenantOutcomes, _merged, _states

# Messages as (entity, time, outcome, withdrawal): a label counts (+1 trial, +1 safe or not), or a presumption
# of safety (+1 trial, +1 safe), withdrawn (-1, -1) at or after it when a label arrives (withdrawal: the delay).
messages = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 100), st.sampled_from(["safe", "unsafe", "presumed"]),
                              st.one_of(st.none(), st.integers(0, 30))), max_size=40)
instants = st.lists(st.integers(-5, 140), min_size=1, max_size=12, unique=True).map(sorted)


def _outcomes(rows: list) -> TenantOutcomes:
    changes = []  # (entity, time, safe, trials, explicit)
    for entity, time, outcome, withdrawal in rows:
        changes.append((entity, time, int(outcome != "unsafe"), 1, int(outcome != "presumed")))
        if outcome == "presumed" and withdrawal is not None:
            changes.append((entity, time + withdrawal, -1, -1, 0))
    columns = np.array(changes, np.int64).reshape(-1, 5).T
    return TenantOutcomes(entity=columns[0], time=columns[1], safe=columns[2], trials=columns[3],
                          explicit=columns[4])


def _reference(o: TenantOutcomes, asked: np.ndarray) -> pd.DataFrame:
    """Per (entity, step) with a non-zero change, in that order: the sums and each entity's running totals,
    where a change's step is the first asked instant strictly after it (how many instants are at or before it)."""
    frame = pd.DataFrame({"entity": o.entity, "safe": o.safe, "trials": o.trials,
                          "step": [int((asked <= t).sum()) for t in o.time]})
    frame = frame[frame["step"] < len(asked)]
    sums = frame.groupby(["entity", "step"], as_index=False)[["safe", "trials"]].sum()
    sums = sums[(sums["safe"] != 0) | (sums["trials"] != 0)].reset_index(drop=True)
    sums["n_after"] = sums.groupby("entity")["trials"].cumsum()
    sums["k_after"] = sums.groupby("entity")["safe"].cumsum()
    return sums


@settings(max_examples=150, deadline=None)
@given(messages, instants)
def test_changes_merged_per_entity_and_step_against_pandas(rows, asked) -> None:
    o, asked = _outcomes(rows), np.array(asked, np.int64)
    got = _merged(o, asked)
    expected = _reference(o, asked)
    for column in ("entity", "step", "safe", "trials", "n_after", "k_after"):
        assert got[column].tolist() == expected[column].tolist(), column


@settings(max_examples=60, deadline=None)
@given(messages, instants, st.sampled_from([-3, 10**9]))
def test_changes_of_sparse_or_negative_entity_codes_merged_as_dense_ones(rows, asked, offset) -> None:
    # Entity codes far beyond the changes (or negative) are numbered densely first, in the same order.
    o, asked = _outcomes(rows), np.array(asked, np.int64)
    o.entity = o.entity * 7 + offset
    got = _merged(o, asked)
    expected = _reference(o, asked)
    for column in ("entity", "step", "safe", "trials", "n_after", "k_after"):
        assert got[column].tolist() == expected[column].tolist(), column


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(60)), st.integers(0, 3))
def test_an_entity_changed_in_many_steps_merged_in_step_order(times, other) -> None:
    # Past a few steps an entity's are sorted another way than by insertion: the same order either way.
    rows = [(other if t % 7 == 0 else 5, 3 * t, ["safe", "unsafe", "presumed"][t % 3], t % 5 or None) for t in times]
    o, asked = _outcomes(rows), np.arange(0, 200, 4)
    got = _merged(o, asked)
    expected = _reference(o, asked)
    for column in ("entity", "step", "safe", "trials", "n_after", "k_after"):
        assert got[column].tolist() == expected[column].tolist(), column


def test_changes_nearly_in_time_order_find_their_steps_as_a_search_does() -> None:
    # Steps are found by a pointer walked from the last change's, a binary search where a change lies far
    # back (or ahead) among many instants: as np.searchsorted finds them, at, between and beyond instants.
    rng = np.random.default_rng(4)
    times = np.sort(rng.integers(-20, 2_100, 3_000))
    jumps = rng.random(len(times)) < 0.02
    times[jumps] = rng.integers(-20, 2_100, jumps.sum())
    rows = [(int(e), int(t), ["safe", "unsafe", "presumed"][i % 3], None)
            for i, (e, t) in enumerate(zip(rng.integers(0, 40, len(times)), times))]
    for asked in (np.arange(0, 2_000, 2), np.unique(times[::7]), np.array([1_000])):
        o = _outcomes(rows)
        got, expected = _merged(o, asked), _reference(o, asked)
        for column in ("entity", "step", "safe", "trials", "n_after", "k_after"):
            assert got[column].tolist() == expected[column].tolist(), column


@settings(max_examples=100, deadline=None)
@given(st.lists(messages, min_size=1, max_size=3), instants)
def test_states_before_and_after_each_change_against_pandas(per_tenant, asked) -> None:
    outcomes, asked = [_outcomes(rows) for rows in per_tenant], np.array(asked, np.int64)
    ev = _states(outcomes, asked)
    parts = [_reference(o, asked).assign(tenant=t) for t, o in enumerate(outcomes)]
    expected = pd.concat(parts, ignore_index=True).sort_values("step", kind="stable")
    assert ev["step"].tolist() == expected["step"].tolist()
    assert ev["tenant"].tolist() == expected["tenant"].tolist()
    # States are the distinct (tenant, trials, successes) with trials, numbered in that order.
    with_trials = expected[expected["n_after"] > 0]
    states = sorted(set(zip(with_trials["tenant"], with_trials["n_after"], with_trials["k_after"])))
    assert list(zip(ev["state_tenant"].tolist(), ev["state_n"].tolist(), ev["state_k"].tolist())) == states
    number = {s: i for i, s in enumerate(states)}
    n_before, k_before = expected["n_after"] - expected["trials"], expected["k_after"] - expected["safe"]
    assert ev["after"].tolist() == [number.get((t, n, k), -1) for t, n, k in
                                    zip(expected["tenant"], expected["n_after"], expected["k_after"])]
    assert ev["before"].tolist() == [number.get((t, n, k), -1) if n > 0 else -1 for t, n, k in
                                     zip(expected["tenant"], n_before, k_before)]
    assert ev["first_trial"].tolist() == ((expected["n_after"] > 0) & (n_before <= 0)).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=3), instants, st.integers(1, 30))
def test_fits_solved_in_batches_equal_one_batch(per_tenant, asked, pending) -> None:
    # The fits asked through time are solved in batches of bounded size (one batch held a tenant-wide histogram
    # per message time: 22 GB for 600k messages); fits are independent, so every prior keeps its bits.
    import commgraph.baselines._priors_in_time as module
    from commgraph.baselines import BaselineConfig

    outcomes = [_outcomes(rows) for rows in per_tenant]
    requests = [np.asarray(asked, np.int64)] * len(outcomes)
    config = BaselineConfig(min_prior_entities=1, min_prior_labels=0)
    whole = module.priors_at_kinds({"sender": outcomes}, requests, config)["sender"]
    saved = module._PENDING_PAIRS
    module._PENDING_PAIRS = pending
    try:
        batched = module.priors_at_kinds({"sender": outcomes}, requests, config)["sender"]
    finally:
        module._PENDING_PAIRS = saved
    for (a, b), (a2, b2) in zip(whole, batched):
        assert np.array_equal(a, a2) and np.array_equal(b, b2)
