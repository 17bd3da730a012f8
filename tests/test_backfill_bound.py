"""Backfill's smoothed likelihoods with a prior per message, against the general per-row computation.

``smoothed_by_prior`` solves the credible bound once per distinct (prior,
trials, successes), numbering priors per message; it must give what
``smoothed`` gives with every row's prior spelled out, bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig
from commgraph.baselines._asof import smoothed
from commgraph.signals._backfill_signals import smoothed_by_prior

# Priors sharing their alpha or their beta: told apart only by the pair.
PRIORS = [(1.0, 1.0), (1.0, 7.0), (2.5, 1.0), (2.5, 7.0), (0.3, 40.25)]


@st.composite
def cases(draw):
    n_messages = draw(st.integers(1, 12))
    priors = draw(st.lists(st.sampled_from(PRIORS), min_size=n_messages, max_size=n_messages))
    edges = draw(st.booleans())
    n_rows = draw(st.integers(1, 40)) if edges else n_messages
    message = np.array(draw(st.lists(st.integers(0, n_messages - 1), min_size=n_rows, max_size=n_rows))) \
        if edges else None
    # Few distinct counts, so that rows repeat; large ones now and then (the bound's fast paths).
    count = st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3_000_000))
    columns = {c: np.array(draw(st.lists(count, min_size=n_rows, max_size=n_rows)), np.int64)
               for c in ("n_safe", "n_attack", "n_spam")}
    columns["n_presumed_safe"] = np.array(draw(st.lists(st.integers(-2, 5), min_size=n_rows, max_size=n_rows)),
                                          np.int64)
    alpha, beta = (np.array([p[i] for p in priors]) for i in (0, 1))
    return columns, alpha, beta, message


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from([BaselineConfig(), BaselineConfig(label_policy="ignore"),
                                 BaselineConfig(credible_level=0.8)]))
def test_the_bound_per_distinct_prior_and_counts_equals_the_bound_per_row(case, config) -> None:
    columns, alpha, beta, message = case
    rows = message if message is not None else np.arange(len(alpha))
    mean, low = smoothed_by_prior(columns, alpha, beta, message, config)
    expected_mean, expected_low = smoothed(columns, alpha[rows], beta[rows], config)
    assert mean.dtype == expected_mean.dtype and low.dtype == expected_low.dtype == np.float32
    assert mean.tobytes() == expected_mean.tobytes()
    assert low.tobytes() == expected_low.tobytes()


def test_counts_too_large_for_one_key_take_the_general_way() -> None:
    big = 1 << 40
    columns = {"n_safe": np.array([big, 5, big]), "n_attack": np.array([big, 1, 0]), "n_spam": np.zeros(3, np.int64),
               "n_presumed_safe": np.zeros(3, np.int64)}
    alpha, beta, message = np.array([1.0, 3.0]), np.array([2.0, 1.0]), np.array([0, 1, 1])
    mean, low = smoothed_by_prior(columns, alpha, beta, message, BaselineConfig())
    expected_mean, expected_low = smoothed(columns, alpha[message], beta[message], BaselineConfig())
    assert mean.tobytes() == expected_mean.tobytes() and low.tobytes() == expected_low.tobytes()


@settings(max_examples=100, deadline=None)
@given(cases(), st.sampled_from([BaselineConfig(), BaselineConfig(credible_level=0.8)]))
def test_priors_by_number_give_the_priors_per_message(case, config) -> None:
    from commgraph.signals._backfill_signals import smoothed_mean

    columns, alpha, beta, message = case
    # The messages' priors as a few distinct ones and each message's number (in no particular order).
    pairs = sorted(set(zip(alpha.tolist(), beta.tolist())), reverse=True)
    prior_of = np.array([pairs.index(p) for p in zip(alpha.tolist(), beta.tolist())], np.int64)
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    expected = smoothed_by_prior(columns, alpha, beta, message, config)
    got = smoothed_by_prior(columns, a, b, message, config, prior_of=prior_of)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(got, expected))
    if (columns["n_presumed_safe"] >= 0).all():  # (negative counts: the general way's error, as without numbers)
        assert smoothed_mean(columns, a, b, message, config, prior_of=prior_of).tobytes() == \
            smoothed_mean(columns, alpha, beta, message, config).tobytes()
