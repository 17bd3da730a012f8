"""Efficacy evaluation and directed anomaly scoring, against scikit-learn and brute force."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from commgraph.graph import ConfigError, SchemaError
from commgraph.signals import (SignalSet, alerts_within_budget, directed_anomaly_score, evaluate,
                               suspicious_directions)


def _brute_at_fpr(y, values, rate):
    """The loosest threshold whose false-positive rate stays within ``rate``, by trying every value."""
    best = (0.0, np.nan, np.inf)
    for t in sorted(set(values[~np.isnan(values)]), reverse=True):
        pred = np.nan_to_num(values, nan=-np.inf) >= t
        if pred[~y].mean() > rate:
            break
        best = (recall_score(y, pred), precision_score(y, pred, zero_division=np.nan), t)
    return best


@st.composite
def scored(draw):
    n = draw(st.integers(4, 60))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    y[0], y[1] = True, False  # both classes present
    values = np.array(draw(st.lists(st.one_of(st.integers(0, 6).map(float), st.just(np.nan)), min_size=n,
                                    max_size=n)))
    return y, values


@settings(max_examples=150, deadline=None)
@given(scored(), st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]))
def test_recall_and_precision_at_fpr_match_sklearn_at_the_brute_force_threshold(case, rate):
    y, values = case
    report = evaluate(pd.DataFrame({"score": values}), y.astype(int), fpr=(rate,))
    recall, precision, threshold = _brute_at_fpr(y, values, rate)
    row = report.loc["score"]
    assert row[f"recall@fpr={rate:g}"] == pytest.approx(recall)
    assert row[f"fnr@fpr={rate:g}"] == pytest.approx(1 - recall)
    assert row[f"threshold@fpr={rate:g}"] == threshold
    if np.isnan(precision):
        assert np.isnan(row[f"precision@fpr={rate:g}"])
    else:
        assert row[f"precision@fpr={rate:g}"] == pytest.approx(precision)
    filled = np.where(np.isnan(values), np.nanmin(values) - 1 if (~np.isnan(values)).any() else 0, values)
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, filled))
    assert row["coverage"] == pytest.approx(np.mean(~np.isnan(values)))


def test_low_direction_reads_the_column_downwards_and_reports_its_threshold_in_its_units():
    values = np.array([0, 1, 40, 12, 30, 2], dtype=float)
    y = np.array([1, 1, 0, 0, 0, 0])
    row = evaluate(pd.DataFrame({"sender_active_days": values}), y, fpr=(0.25,)).loc["sender_active_days"]
    assert row["direction"] == "low"
    assert row["threshold@fpr=0.25"] == 2.0  # alert at <= 2 active days: one safe message of four
    assert row["recall@fpr=0.25"] == 1.0 and row["precision@fpr=0.25"] == pytest.approx(2 / 3)
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, -values))


def test_rates_finer_than_the_safe_mail_allow_no_false_positive():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, bool), np.zeros(5000, bool)]
    values = np.r_[rng.normal(3, 1, 50), rng.normal(0, 1, 5000)]
    row = evaluate(pd.DataFrame({"s": values}), y, fpr=(1e-5, 1e-3)).loc["s"]
    assert row["recall@fpr=1e-05"] == pytest.approx(np.mean(values[y] > values[~y].max()))
    assert row["precision@fpr=1e-05"] == 1.0
    sixth = np.sort(values[~y])[-6]  # five false positives are within 1e-3 of 5000, a sixth is not
    assert row["recall@fpr=0.001"] == pytest.approx(np.mean(values[y] > sixth))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.integers(0, 5).map(float), st.just(np.nan))),
                min_size=1, max_size=40), st.integers(1, 4))
def test_alerts_within_budget_equal_a_pandas_rank_per_group(rows, budget):
    frame = pd.DataFrame(rows, columns=["group", "score"])
    rank = frame.groupby("group")["score"].rank(method="first", ascending=False)
    expected = ((rank <= budget) & frame["score"].notna()).to_numpy()
    assert (alerts_within_budget(frame["score"], budget, groups=frame["group"]) == expected).all()


def test_budget_recall_counts_attacks_among_each_groups_top_alerts():
    frame = pd.DataFrame({"score": [5, 4, 3, 9, 1, 2], "tenant": ["a", "a", "a", "b", "b", "b"]})
    y = np.array([0, 1, 0, 1, 0, 1])
    row = evaluate(frame[["score"]], y, fpr=(), budget=2, groups=frame["tenant"]).loc["score"]
    # a alerts 5 (safe) and 4 (attack); b alerts 9 (attack) and 2 (attack).
    assert row["alerts@budget=2"] == 4
    assert row["recall@budget=2"] == 1.0 and row["precision@budget=2"] == 0.75


def test_string_labels_single_class_and_non_numeric_columns():
    frame = pd.DataFrame({"message_id": ["m1", "m2"], "sender_is_new": [1, 0]})
    report = evaluate(frame, ["safe", "safe"])
    assert list(report.index) == ["sender_is_new"]
    assert np.isnan(report.loc["sender_is_new", "roc_auc"])
    assert report.loc["sender_is_new", "attacks"] == 0


def test_positive_is_read_as_the_labels_are_and_one_rate_is_a_list_of_one():
    # positive="Attack" counted only the rows spelled exactly so, where the labels are read case-folded ("Attack"
    # is an attack); fpr=1e-4 raised a bare TypeError.
    frame = pd.DataFrame({"sender_is_new": [1, 0, 1, 0]})
    labels = ["attack", "safe", "Attack", "safe"]
    reports = [evaluate(frame, labels, positive=p, fpr=0.5) for p in ("attack", "Attack", " ATTACK ")]
    for report in reports:
        pd.testing.assert_frame_equal(report, reports[0])
    assert reports[0].loc["sender_is_new", "attacks"] == 2 and "recall@fpr=0.5" in reports[0].columns
    pd.testing.assert_frame_equal(reports[0], evaluate(frame, labels, fpr=[0.5]))
    # Labels of the user's own stay compared as given, even where positive= reads like a contract label.
    own = evaluate(frame, ["Attack", "Benign", "Attack", "Benign"], positive="Attack", fpr=0.5)
    assert own.loc["sender_is_new", "attacks"] == 2 and own.loc["sender_is_new", "roc_auc"] == 1.0


def test_bad_input_is_named():
    frame = pd.DataFrame({"s": [1.0, 2.0, 3.0]})
    with pytest.raises(SchemaError, match="labels.*rows 1"):
        evaluate(frame, [1, None, 0])
    with pytest.raises(SchemaError, match="1 \\(attack\\) or 0"):
        evaluate(frame, [1, 2, 0])
    with pytest.raises(SchemaError, match="finite"):
        evaluate(pd.DataFrame({"s": [1.0, np.inf, 0.0]}), [1, 0, 0])
    with pytest.raises(ConfigError, match="labels has 2 rows, the scores 3"):
        evaluate(frame, [1, 0])
    with pytest.raises(ConfigError, match="'fpr'"):
        evaluate(frame, [1, 0, 0], fpr=(2.0,))
    for bad in ("0.01", None, [object()]):  # (a bare TypeError, or a string read one character at a time)
        with pytest.raises(ConfigError, match="'fpr' parameter of evaluate must be a rate in \\[0, 1\\] or a list"):
            evaluate(frame, [1, 0, 0], fpr=bad)
    with pytest.raises(ConfigError, match="'budget'"):
        evaluate(frame, [1, 0, 0], budget=0)
    with pytest.raises(ConfigError, match="not scored"):
        evaluate(frame, [1, 0, 0], directions={"t": "low"})
    with pytest.raises(ConfigError, match="direction of column 's'"):
        evaluate(frame, [1, 0, 0], directions={"s": "up"})


def test_every_default_signal_but_inbound_volume_declares_its_suspicious_direction():
    described = SignalSet().describe().set_index("signal")["suspicious"]
    assert described.isna().sum() == 1 and pd.isna(described["recipient_inbound_30d"])
    assert suspicious_directions(["pair_is_first_contact", "pair_messages"]) == {
        "pair_is_first_contact": "high", "pair_messages": "low"}


def _brute_das(query, reference, directions, exclude_self):
    """Every pair compared: reference rows at least as suspicious on every column (missing = least)."""
    q = np.where(np.isnan(query), -np.inf, query * directions)
    r = np.where(np.isnan(reference), -np.inf, reference * directions)
    counts = (r[None, :, :] >= q[:, None, :]).all(axis=2).sum(axis=1)
    return counts - 1 if exclude_self else counts


@st.composite
def signal_frames(draw):
    n_cols = draw(st.integers(1, 5))
    n = draw(st.integers(1, 80))
    cell = st.one_of(st.integers(0, 4).map(float), st.just(np.nan))
    frame = pd.DataFrame(np.array(draw(st.lists(st.lists(cell, min_size=n_cols, max_size=n_cols),
                                                min_size=n, max_size=n))), columns=[f"c{i}" for i in range(n_cols)])
    directions = {c: draw(st.sampled_from(["high", "low"])) for c in frame.columns}
    return frame, directions


@settings(max_examples=200, deadline=None)
@given(signal_frames(), st.booleans(), st.sampled_from([2, 3, 256]))
def test_directed_anomaly_score_equals_brute_force_dominance_counts(case, against_reference, max_levels):
    frame, directions = case
    sign = np.array([1.0 if directions[c] == "high" else -1.0 for c in frame.columns])
    if against_reference:
        reference = frame.sample(frac=1.0, replace=True, random_state=1).reset_index(drop=True)
        got = directed_anomaly_score(frame, reference=reference, directions=directions, max_levels=max_levels)
        expected = _brute_das(frame.to_numpy(), reference.to_numpy(), sign, exclude_self=False)
    else:
        got = directed_anomaly_score(frame, directions=directions, max_levels=max_levels)
        expected = _brute_das(frame.to_numpy(), frame.to_numpy(), sign, exclude_self=True)
    assert got.tolist() == expected.tolist()
    if max_levels == 256:
        assert got.attrs["ranged_signals"] == []


def test_ranged_continuous_signals_stay_exact():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"sender_messages_90d": rng.lognormal(2, 1.5, 1500).round(2),
                          "sender_hour_surprise": rng.exponential(1.0, 1500), "sender_is_new": rng.random(1500) < 0.1})
    got = directed_anomaly_score(frame, max_levels=16)
    assert got.attrs["ranged_signals"] == ["sender_messages_90d", "sender_hour_surprise"]
    sign = np.array([-1.0, 1.0, 1.0])
    assert got.tolist() == _brute_das(frame.to_numpy(float), frame.to_numpy(float), sign, True).tolist()


def test_directed_anomaly_score_bad_input():
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="missing from signals or reference"):
        directed_anomaly_score(frame, reference=pd.DataFrame({"b": [1.0]}))
    with pytest.raises(ConfigError, match="max_levels"):
        directed_anomaly_score(frame, max_levels=1)
    with pytest.raises(ConfigError, match="DataFrame"):
        directed_anomaly_score(np.zeros((2, 2)))
    assert directed_anomaly_score(frame.iloc[:0]).empty


def test_directions_a_users_provider_declares_are_read_and_text_labels_are_the_contracts() -> None:
    # A provider never registered declared suspicious="low": evaluate read its column as "high" (roc_auc 0.0
    # instead of 1.0) and directed_anomaly_score ranked the trusted mail as the anomalies.
    import numpy as np

    from commgraph.baselines import build_baselines
    from commgraph.graph import ConfigError, SchemaError, validate
    from commgraph.signals import SignalProvider, SignalSet, SignalSpec, directed_anomaly_score

    class TrustScore(SignalProvider):
        name, level = "trust_x", "message"
        signals = (SignalSpec("trust_score", "float32", "Higher: a more trusted sender.", "rate", suspicious="low"),)

        def compute(self, batch, view):
            return {"trust_score": np.linspace(0.1, 0.9, batch.n_messages).astype(np.float32)}

    trust = SignalSet([TrustScore()])
    scores = pd.DataFrame({"trust_score": [0.1, 0.9, 0.2, 0.8]})
    labels = ["attack", "safe", "attack", "safe"]  # the attacks have LOW trust
    assert evaluate(scores, labels, fpr=(0.5,), signal_set=trust)["roc_auc"].tolist() == [1.0]
    assert directed_anomaly_score(scores, signal_set=trust).tolist() == [0, 3, 1, 2]
    # A frame the set computed carries the directions itself.
    mail = validate(pd.DataFrame({"tenant_id": "t", "message_id": list("abcd"), "sender": "x@v.com",
                                  "timestamp": "2025-01-02T00:00Z", "recipients": "y@t.com"}),
                    tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}])
    computed = trust.compute(mail, build_baselines(mail, as_of="2025-01-03"), level="message")
    assert computed.attrs["suspicious"] == {"trust_score": "low"}
    assert evaluate(computed[["trust_score"]], labels, fpr=(0.5,))["direction"].tolist() == ["low"]
    with pytest.raises(ConfigError, match=r"signals does not have: \['trust_scor'\]"):  # (was dropped silently)
        directed_anomaly_score(scores, directions={"trust_scor": "low"})
    # Text labels are the contract's: '1'/'0' read from a CSV, or 'Attack', were silently all safe mail. The
    # first are refused; the contract's words are read as validation reads them ('Attack' is an attack).
    for text in (["1", "0", "1", "0"], ["attacks", "safe", "attack", "safe"]):
        with pytest.raises(SchemaError, match="text labels must be one of 'safe', 'attack', 'spam'"):
            evaluate(scores, text, signal_set=trust)
    assert evaluate(scores, [" Attack", "SAFE", "attack", "safe"], signal_set=trust)["attacks"].tolist() == [2]
    # A label of your own: one class alone (a quiet tenant's day) is a nan AUC, as with the contract's labels.
    assert np.isnan(evaluate(scores, ["good"] * 4, positive="bad", signal_set=trust)["roc_auc"].iloc[0])
    assert evaluate(scores, pd.Series([1, 0, 1, 0], dtype="category"), signal_set=trust)["attacks"].tolist() == [2]
    assert evaluate(scores, ["bad", "good", "bad", "good"], positive="bad", signal_set=trust)["attacks"].tolist() == [2]
