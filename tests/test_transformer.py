"""BaselineSignals: the scikit-learn contract, inside a Pipeline with a classifier on a time split."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from commgraph.graph import generate
from commgraph.signals import BaselineSignals, SignalSet


@pytest.fixture(scope="module")
def mail():
    g = generate(tenants=2, days=20, random_state=11)
    raw = g.messages.sort_values("timestamp", kind="stable")
    t1, t2 = raw["timestamp"].quantile([0.5, 0.75])
    # Baselines from the first half, a model trained on the next quarter, tested on the last.
    return g, raw[raw["timestamp"] < t1], raw[(raw["timestamp"] >= t1) & (raw["timestamp"] < t2)], \
        raw[raw["timestamp"] >= t2]


def test_pipeline_with_a_classifier_on_a_time_split(mail) -> None:
    g, history, train, test = mail
    signals = BaselineSignals(tenants=g.tenants).fit(history)
    # Few positives (about 120): small regularised trees, no early stopping on a 10% split of them.
    classifier = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=8, min_samples_leaf=40,
                                                l2_regularization=1.0, early_stopping=False, random_state=0)
    model = Pipeline([("signals", signals), ("model", classifier)])
    # The transformer is fitted on the earlier period, so the model is trained on features as deployed.
    X_train = signals.transform(train)
    model.named_steps["model"].fit(X_train, train["scenario"].notna())
    scores = model.predict_proba(test)[:, 1]
    assert scores.shape == (len(test),)
    assert roc_auc_score(test["scenario"].notna(), scores) > 0.9

    # And the usual whole-pipeline fit, clone and pickle round trip.
    pipe = Pipeline([("signals", BaselineSignals(tenants=g.tenants)),
                     ("model", HistGradientBoostingClassifier(max_iter=30, random_state=0))])
    pipe.fit(train, train["scenario"].notna())
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(pipe.predict_proba(test.head(500)), again.predict_proba(test.head(500)))
    cloned = clone(pipe)
    assert not hasattr(cloned.named_steps["signals"], "snapshots_")
    assert cloned.get_params()["signals__tenants"] == g.tenants


def test_transform_is_aligned_with_the_input(mail) -> None:
    g, history, train, _ = mail
    t = BaselineSignals(tenants=g.tenants, signal_set=["sender", "pair"]).fit(history)
    sample = train.sample(300, random_state=0)
    sample.index = np.arange(len(sample))[::-1] * 7  # unusual labels: the output keeps them
    out = t.set_output(transform="pandas").transform(sample)
    assert list(out.index) == list(sample.index)
    assert list(out.columns) == SignalSet(["sender", "pair"]).names
    reversed_ = t.transform(sample.iloc[::-1])
    pd.testing.assert_frame_equal(out, reversed_.loc[out.index])
    assert t.set_output(transform="default").transform(sample).dtype == np.float32


def test_fit_sets_only_trailing_underscore_state_and_keeps_no_mail(mail) -> None:
    g, history, _, _ = mail
    t = BaselineSignals(tenants=g.tenants)
    params = t.get_params()
    t.fit(history.head(2000))
    assert t.get_params() == params
    learned = {k for k in vars(t) if k.endswith("_") and not k.startswith("_")}
    assert learned == {"snapshots_", "as_of_", "signal_set_", "tenants_", "feature_names_out_", "own_domains_",
                       "inferred_own_"}
    assert t.as_of_ == history.head(2000)["timestamp"].max() + pd.Timedelta(1, "ns")
    assert not any(isinstance(v, pd.DataFrame) for v in vars(t).values())
    assert list(t.get_feature_names_out()) == SignalSet().names


def test_explicit_as_of_and_errors(mail) -> None:
    g, history, train, _ = mail
    t = BaselineSignals(tenants=g.tenants, as_of="2025-01-08", signal_set=["sender"])
    with pytest.raises(NotFittedError):
        t.transform(train)
    t.fit(history)
    assert t.as_of_ == pd.Timestamp("2025-01-08", tz="UTC")
    with pytest.raises(ValueError, match="'cold_start' parameter"):
        BaselineSignals(cold_start="yes").fit(history)
    other = train.head(5).assign(tenant_id="unseen")
    with pytest.raises(Exception, match="'unseen'"):
        t.transform(other)
    assert t.set_params(cold_start=True).transform(other)[:, SignalSet(["sender"]).names.index("sender_is_new")].all()


def test_an_as_of_given_as_text_is_read_as_iso_8601_only() -> None:
    # '01/02/2025' was read month first (2 January), as build_baselines no longer does; 'yesterday' raised a
    # bare pandas error.
    import pandas as pd
    import pytest

    from commgraph.graph import ConfigError
    from commgraph.signals import BaselineSignals

    frame = pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
                          "sender": ["a@t.com"], "recipients": ["b@t.com"], "direction": ["internal"]})
    for text in ("01/02/2025", "yesterday"):
        with pytest.raises(ConfigError, match="'as_of' parameter of BaselineSignals"):
            BaselineSignals(as_of=text).fit(frame)
    assert BaselineSignals(as_of="2025-01-02").fit(frame).as_of_ == pd.Timestamp("2025-01-02T00:00Z")


def test_transform_reads_each_message_with_the_own_domains_fit_used_and_privacy_mode_is_refused() -> None:
    # Without tenants=, each transform batch inferred the tenants' own domains from itself: a message's
    # signals depended on the other mail of its batch (and some were refused alone, direction_undecidable).
    import warnings

    from commgraph.graph import ConfigError, InferredOwnDomainsWarning

    raw = generate(tenants=2, days=4, scale=0.01, random_state=3, attack_rate=0.05).messages
    raw = raw.sort_values("timestamp", kind="stable").reset_index(drop=True).drop(columns="direction")
    cut = len(raw) * 3 // 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferredOwnDomainsWarning)  # (fit infers them, once, from all its mail)
        t = BaselineSignals().fit(raw.iloc[:cut])
    batch = raw.iloc[cut:cut + 60]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InferredOwnDomainsWarning)  # transform infers nothing more
        together = t.transform(batch)
        alone = np.vstack([t.transform(batch.iloc[[i]]) for i in range(len(batch))])
    np.testing.assert_array_equal(together, alone)
    from commgraph.baselines import BaselineConfig

    for privacy in ({"privacy": True}, BaselineConfig(privacy=True)):
        with pytest.raises(ConfigError, match="privacy mode exists to keep out of reach"):
            BaselineSignals(baseline_config=privacy).fit(raw.head(10))


def test_pandas_output_of_one_row_per_recipient_input_labels_each_message_by_its_first_row() -> None:
    frame = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "1", "2", "3"],
                          "timestamp": ["2024-05-01T09:00Z"] * 2 + ["2024-05-02T09:00Z", "2024-05-03T09:00Z"],
                          "sender": ["ann@vendor.com"] * 3 + ["eve@evil.com"],
                          "recipient": ["cy@acme.com", "dd@acme.com", "cy@acme.com", "cy@acme.com"]},
                         index=[10, 11, 12, 13])
    model = BaselineSignals(tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}], signal_set=["pair"])
    plain = model.fit(frame.iloc[:3]).transform(frame)
    out = model.set_output(transform="pandas").transform(frame)
    assert out.index.tolist() == [10, 12, 13] and list(out.columns) == list(model.get_feature_names_out())
    np.testing.assert_array_equal(out.to_numpy(), plain)


def test_transform_leaves_the_callers_messages_as_they_were() -> None:
    # transform marked fit's inferred own domains on the Messages it was given: the caller's object then claimed
    # its configured own domains were inferred, and a later SignalSet.compute on it lost the look-alike check.
    import warnings

    from commgraph.baselines import build_baselines
    from commgraph.graph import InferredOwnDomainsWarning, validate

    hist = pd.DataFrame({"tenant_id": "acme", "message_id": [str(i) for i in range(6)],
                         "timestamp": [f"2024-05-0{1 + i % 3}T09:00Z" for i in range(6)],
                         "sender": "ann@vendor.com", "recipients": "cy@acme.com"})
    cfg = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    messages = validate(pd.DataFrame({"tenant_id": ["acme"], "message_id": ["n1"], "timestamp": ["2024-05-05T09:00Z"],
                                      "sender": ["ceo@acrne.com"], "recipients": ["cy@acme.com"],
                                      "direction": ["inbound"]}), tenants=cfg)
    snaps = build_baselines(validate(hist, tenants=cfg), as_of="2024-05-04T00:00Z")
    cols = ["lookalike_domain_distance", "lookalike_domain_is_close"]
    before = SignalSet().compute(messages, snaps)[cols]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferredOwnDomainsWarning)
        t = BaselineSignals().fit(hist)  # without tenants=: acme.com inferred
    assert t.inferred_own_ == {"acme"}
    t.transform(messages)
    assert messages.configured_own_domains == {"acme": ("acme.com",)} and messages.inferred_own == frozenset()
    pd.testing.assert_frame_equal(SignalSet().compute(messages, snaps)[cols], before)
    assert before.iloc[0].tolist() == [0, 1]


def test_transform_computes_the_signals_fit_chose_after_set_params() -> None:
    # transform read signal_set as set now, get_feature_names_out (and set_output's labels) the set fitted: after
    # set_params(signal_set=...) without a refit, one signal's values came out under another's name.
    frame = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3", "4"],
                          "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z",
                                        "2024-05-03T10:00Z"],
                          "sender": ["ann@vendor.com"] * 3 + ["eve@evil.com"], "recipients": "cy@acme.com"})
    t = BaselineSignals(tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}], signal_set=["sender", "pair"])
    t.set_output(transform="pandas").fit(frame.iloc[:3])
    fitted = t.transform(frame)
    t.set_params(signal_set=["pair"])
    pd.testing.assert_frame_equal(t.transform(frame), fitted)
    assert list(t.get_feature_names_out()) == list(fitted.columns) == SignalSet(["sender", "pair"]).names
    assert list(t.fit(frame.iloc[:3]).transform(frame).columns) == SignalSet(["pair"]).names  # the next fit: new set


def test_transform_reads_batches_with_the_tenants_fit_was_given_after_set_params() -> None:
    # transform read the tenants parameter as set now: configurations changed without a refit read the batch's
    # directions with other own domains than the baselines were built with.
    frame = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3"],
                          "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z"],
                          "sender": ["ann@acme.com", "ann@acme.com", "eve@evil.com"], "recipients": "cy@acme.com"})
    t = BaselineSignals(tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}], signal_set=["sender"])
    fitted = t.fit(frame.iloc[:2]).transform(frame)
    t.set_params(tenants=[{"tenant_id": "acme", "own_domains": ["evil.com"]}])
    np.testing.assert_array_equal(t.transform(frame), fitted)
