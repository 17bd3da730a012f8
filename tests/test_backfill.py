"""Backfill equals scoring each message against the snapshot built as of its instant.

The reference is the definition itself: for each instant, ``build_baselines``
over the whole history as of that instant, then ``SignalSet.compute`` on the
messages of that instant (validated again from their raw rows). Every column
is compared exactly (counts, flags) or to 1e-9 (floats), on synthetic mail,
on the Enron corpus, and on hypothesis-generated histories with ties, late
labels, shuffled input and a short known-contact list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.graph import ConfigError, generate, validate
from commgraph.signals import SignalProvider, SignalSet, SignalSpec, backfill
from conftest import enron_sample

SIGNALS = SignalSet().names
KEYS = ["tenant_id", "message_id", "recipient"]


def _instants(messages, mode: str, every: str, offset: str = "0s", delay: str = "0s") -> np.ndarray:
    ts = messages.frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    if mode == "fresh":
        return ts
    # The last refresh (at offset into each period) whose snapshot was serving (delay after it) at the message.
    shift = pd.Timedelta(offset) + pd.Timedelta(delay)
    served = (pd.DatetimeIndex(ts, tz="UTC") - shift).floor(every) + pd.Timedelta(offset)
    return served.asi8


def reference(raw: pd.DataFrame, tenants, messages, positions, *, mode: str = "fresh", every: str = "1D",
              config: BaselineConfig | None = None, level: str = "edge", signals: SignalSet | None = None,
              offset: str = "0s", delay: str = "0s") -> pd.DataFrame:
    """Signals of the messages at ``positions``, each against a snapshot built as of its instant."""
    signals = signals or SignalSet()
    instants = _instants(messages, mode, every, offset, delay)
    parts = []
    for instant in np.unique(instants[positions]):
        here = positions[instants[positions] == instant]
        snapshots = build_baselines(messages, as_of=pd.Timestamp(int(instant), tz="UTC"), config=config)
        batch = validate(raw.loc[messages.frame.index[here]], tenants=tenants, strict=False)
        parts.append(signals.compute(batch, snapshots, level=level))
    return pd.concat(parts, ignore_index=True)


def assert_equal_signals(ours: pd.DataFrame, ref: pd.DataFrame, names=SIGNALS, level: str = "edge") -> None:
    keys = KEYS if level == "edge" else KEYS[:2]
    ours = ours.astype({k: str for k in keys})
    ref = ref.astype({k: str for k in keys})
    merged = ref.merge(ours, on=keys, suffixes=("_ref", ""), validate="one_to_one")
    assert len(merged) == len(ref) > 0
    problems = []
    for name in names:
        a, b = merged[name].to_numpy(np.float64), merged[f"{name}_ref"].to_numpy(np.float64)
        integer = ours[name].dtype.kind in "iub"
        ok = (a == b) if integer else np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
        if not ok.all():
            i = np.flatnonzero(~ok)[:3]
            problems.append(f"{name}: {int((~ok).sum())} of {len(ok)} differ, e.g. ours {a[i].tolist()} "
                            f"vs snapshot {b[i].tolist()} (messages {merged['message_id'].to_numpy()[i].tolist()})")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- synthetic mail

@pytest.fixture(scope="module")
def synthetic():
    g = generate(tenants=2, days=21, scale=0.012, random_state=11)
    raw = g.messages
    return raw, g.tenants, validate(raw, tenants=g.tenants)


@pytest.fixture(scope="module")
def sample(synthetic):
    _, _, messages = synthetic
    rng = np.random.default_rng(5)
    # Late messages have the most history behind them: sample the second half more.
    n = len(messages.frame)
    return np.unique(np.concatenate([rng.choice(n, 12, replace=False), n // 2 + rng.choice(n - n // 2, 18,
                                                                                         replace=False)]))


@pytest.mark.parametrize("mode", ["fresh", "as_deployed"])
def test_synthetic_equals_a_snapshot_per_instant(synthetic, sample, mode) -> None:
    raw, tenants, messages = synthetic
    ours = backfill(messages, mode=mode)
    assert list(ours.columns) == KEYS + SIGNALS
    assert len(ours) == len(messages.edges())
    ref = reference(raw, tenants, messages, sample, mode=mode)
    assert_equal_signals(ours, ref)
    # The sample is not trivial: labels, known senders and smoothed priors all appear.
    assert ref["sender_is_new"].between(0, 1).all() and (ref["sender_is_new"] == 0).any()
    assert (ref["pair_messages"] > 0).any()


def test_message_level_equals_a_snapshot_per_instant(synthetic, sample) -> None:
    raw, tenants, messages = synthetic
    ours = backfill(messages, mode="as_deployed", refresh_every="6h", level="message")
    assert len(ours) == len(messages.frame)
    ref = reference(raw, tenants, messages, sample, mode="as_deployed", every="6h", level="message")
    assert_equal_signals(ours, ref, level="message")


def test_enron_equals_a_snapshot_per_instant(real_data) -> None:
    raw = enron_sample(real_data, 4000)
    tenants = [{"tenant_id": "enron", "own_domains": ["enron.com"]}]
    messages = validate(raw, tenants=tenants, strict=False)
    ours = backfill(messages)
    rng = np.random.default_rng(1)
    n = len(messages.frame)
    positions = np.unique(np.concatenate([rng.choice(n, 10, replace=False), n - 1 - rng.choice(n // 3, 15,
                                                                                            replace=False)]))
    ref = reference(raw, tenants, messages, positions)
    assert_equal_signals(ours, ref)
    assert (ref["sender_is_new"] == 0).any() and (ref["pair_messages"] > 0).any()


# --------------------------------------------------------------------------- hypothesis histories

# Domains a few edits apart (after skeletons), so that which of them is on a short known-contact
# list decides the look-alike distance.
SENDERS = ["ann@acme.com", "bo@acme.com", "cy@vendor.com", "di@vendr.com", "ed@gmail.com", "fay@other.org",
           "gus@rnicrosoft.com", "hal@microsoft.com", "ivy@vend0r.co", "jo@vendors.com", "kim@acrne.com"]
RECIPIENTS = ["ann@acme.com", "bo@acme.com", "cy@vendor.com", "zed@acme.com", "hal@microsoft.com",
              "lu@vendor.net", "mo@vendr.com"]
NAMES = [None, "Ann Lee", "Bo", "IT Desk"]
AUTH = [None, "pass", "fail", "softfail", "none"]
#: A configuration that exercises what defaults would hide: priors from few labels, a settle
#: delay shorter than the history, and a known-contact list too short for every domain.
SMALL = BaselineConfig(settle_delay="2d", min_prior_entities=2, min_prior_labels=1, known_contact_domains=3,
                       half_life="3d")


@st.composite
def histories(draw) -> pd.DataFrame:
    n = draw(st.integers(2, 14))
    # Few distinct hours over a few weeks: ties on equal timestamps are common.
    hours = draw(st.lists(st.integers(0, 24 * 40), min_size=n, max_size=n))
    hours = [h - h % draw(st.sampled_from([1, 6, 24])) for h in hours]
    start = pd.Timestamp("2024-03-01", tz="UTC")
    rows = []
    for i, h in enumerate(hours):
        sender = draw(st.sampled_from(SENDERS))
        recipients = draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True))
        recipients = [r for r in recipients if r != sender] or ["zed@acme.com"]
        label = draw(st.sampled_from([None, None, "safe", "attack", "spam"]))
        delay = draw(st.sampled_from([None, 0, 5, 30, 24 * 9]))  # hours after the message; None: known at once
        ts = start + pd.Timedelta(hours=h)
        inside = [r.endswith("@acme.com") for r in recipients]
        direction = ("internal" if all(inside) else "outbound") if sender.endswith("@acme.com") else "inbound"
        # Now and then a direction the addresses would not give (a pair seen both ways, a relay).
        direction = draw(st.sampled_from([direction] * 4 + ["inbound", "outbound", "internal"]))
        rows.append({"tenant_id": draw(st.sampled_from(["t1", "t2"])), "message_id": f"m{i}", "timestamp": ts,
                     "sender": sender, "recipients": "; ".join(recipients), "direction": direction,
                     "sender_display_name": draw(st.sampled_from(NAMES)),
                     "spf": draw(st.sampled_from(AUTH)), "dmarc": draw(st.sampled_from(AUTH)), "label": label,
                     "labeled_at": ts + pd.Timedelta(hours=delay) if label is not None and delay is not None
                     else pd.NaT})
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=draw(st.integers(0, 1000)))  # input order is not time order


TENANTS = [{"tenant_id": t, "own_domains": ["acme.com"]} for t in ("t1", "t2")]


@settings(max_examples=20, deadline=None)
@given(histories(), st.sampled_from(["fresh", "as_deployed"]),
       st.sampled_from([SMALL, SMALL.evolve(label_policy="ignore"), SMALL.evolve(global_prior=(2.0, 3.0))]),
       st.sampled_from([("0s", "0s"), ("5h", "0s"), ("3h", "90min"), ("0s", "13h")]))
def test_hypothesis_histories_equal_a_snapshot_per_instant(raw, mode, config, schedule) -> None:
    # As deployed: refreshed every 12 hours, at an offset into each period, each snapshot serving some time
    # after its instant (longer than a period, too).
    offset, delay = schedule if mode == "as_deployed" else ("0s", "0s")
    messages = validate(raw, tenants=TENANTS)
    ours = backfill(messages, mode=mode, refresh_every="12h", refresh_offset=offset, publish_delay=delay,
                    config=config)
    ref = reference(raw, TENANTS, messages, np.arange(len(messages.frame)), mode=mode, every="12h", config=config,
                    offset=offset, delay=delay)
    assert_equal_signals(ours, ref)


@settings(max_examples=10, deadline=None)
@given(histories())
def test_input_order_does_not_matter(raw) -> None:
    a = backfill(validate(raw, tenants=TENANTS), config=SMALL)
    b = backfill(validate(raw.sort_values("timestamp", kind="stable"), tenants=TENANTS), config=SMALL)
    assert_equal_signals(a, b)


@pytest.mark.parametrize("config", [BaselineConfig(settle_delay=1.001), BaselineConfig(half_life=1.001)])
def test_durations_of_a_fraction_of_a_second_are_read_as_a_build_reads_them(config) -> None:
    # backfill read a duration through total_seconds(), a float: 1.001 s was 1,000,999,999 ns (a build:
    # 1,001,000,000), so mail exactly one settle delay old was presumed safe a nanosecond early.
    t0 = pd.Timestamp("2024-05-01T09:00:00Z")
    raw = pd.DataFrame({"tenant_id": "t1", "message_id": ["a", "b", "c"],
                        "timestamp": [t0, t0 + pd.Timedelta("1001ms"), t0 + pd.Timedelta("1002ms")],
                        "sender": "ann@vendor.com", "recipients": "cy@acme.com"})
    messages = validate(raw, tenants=TENANTS)
    ref = reference(raw, TENANTS, messages, np.arange(3), config=config)
    assert_equal_signals(backfill(messages, config=config), ref)


def test_a_half_life_of_a_year_is_followed_as_a_build_follows_it() -> None:
    # 512 half-lives of 209 days or more overflowed an int64 of nanoseconds: backfill raised OverflowError for a
    # half-life BaselineConfig accepts and build_baselines follows.
    t0 = pd.Timestamp("2024-05-01T09:00:00Z")
    raw = pd.DataFrame({"tenant_id": "t1", "message_id": ["a", "b", "c"],
                        "timestamp": [t0, t0 + pd.Timedelta(days=20), t0 + pd.Timedelta(days=400)],
                        "sender": "ann@vendor.com", "recipients": "cy@acme.com"})
    messages = validate(raw, tenants=TENANTS)
    config = BaselineConfig(half_life="365d")
    ref = reference(raw, TENANTS, messages, np.arange(3), config=config)
    assert_equal_signals(backfill(messages, config=config), ref)


# --------------------------------------------------------------------------- labels that arrive late

def test_a_late_attack_label_counts_only_once_known() -> None:
    day = pd.Timedelta(days=1)
    start = pd.Timestamp("2024-06-03T10:00Z")
    reported = start + 3 * day + pd.Timedelta(hours=2)  # the SOC confirms the attack three days later
    raw = pd.DataFrame({
        "tenant_id": "acme", "message_id": [f"m{i}" for i in range(6)],
        "timestamp": [start + i * day for i in range(6)], "sender": "eve@evil.example",
        "recipients": "cy@acme.com", "label": ["attack"] + [None] * 5,
        "labeled_at": [reported] + [pd.NaT] * 5})
    messages = validate(raw, tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    ours = backfill(messages).set_index("message_id")
    # Before the report the first message looked like any other; from the report on it is an attack.
    assert ours.loc[["m1", "m2", "m3"], "sender_attack_messages"].tolist() == [0, 0, 0]
    assert ours.loc[["m4", "m5"], "sender_attack_messages"].tolist() == [1, 1]
    before, after = ours.loc["m3", "sender_safe_likelihood"], ours.loc["m4", "sender_safe_likelihood"]
    assert after < before
    ref = reference(raw, [{"tenant_id": "acme", "own_domains": ["acme.com"]}], messages, np.arange(6))
    assert_equal_signals(ours.reset_index(), ref)
    # As deployed with a weekly refresh, nothing of the report is visible in the same week.
    weekly = backfill(messages, mode="as_deployed", refresh_every="7D").set_index("message_id")
    assert (weekly["sender_attack_messages"] == 0).all()


# --------------------------------------------------------------------------- priors on a grid

def test_prior_every_keeps_counts_exact_and_fits_priors_on_the_grid(synthetic, sample) -> None:
    raw, tenants, messages = synthetic
    gridded = backfill(messages, prior_every="1D")
    ref = reference(raw, tenants, messages, sample)
    likelihoods = {"sender_safe_likelihood": ("sender", "sender"), "domain_safe_likelihood": ("sender_domain",
                   "sender_domain"), "recipient_safe_likelihood": ("recipient", "recipient")}
    others = [n for n in SIGNALS if "likelihood" not in n]
    assert_equal_signals(gridded, ref, names=others)
    # The likelihoods: each entity's counts as of the message, under the prior of the day's snapshot.
    ours = gridded.set_index(KEYS)
    edges = messages.edges(message_columns=("message_id",)).astype({c: str for c in KEYS + ["sender_domain",
                                                                                           "sender"]})
    rows = edges.merge(ref[KEYS].astype(str), on=KEYS).head(12)
    day = pd.Timedelta(days=1).value
    checked = 0
    for edge in rows.to_dict("records"):
        t = edge["timestamp"]
        now = build_baselines(messages, as_of=t)[edge["tenant_id"]]
        grid = pd.Timestamp((t.value // day) * day, tz="UTC")
        prior = build_baselines(messages, as_of=grid)[edge["tenant_id"]].priors
        for signal, (kind, column) in likelihoods.items():
            table = now.table(kind).set_index(column)
            k = n = 0
            if edge[column] in table.index:
                row = table.loc[edge[column]]
                k = int(row["n_safe"]) + max(int(row["n_presumed_safe"]), 0)
                n = k + int(row["n_attack"]) + int(row["n_spam"])
            a, b = prior[kind]["alpha"], prior[kind]["beta"]
            assert ours.loc[tuple(edge[c] for c in KEYS), signal] == np.float32((k + a) / (n + a + b)), signal
            checked += 1
    assert checked == 36


# --------------------------------------------------------------------------- providers and parameters

class _RecipientCount(SignalProvider):
    """A provider without a vectorised backfill: computed against a snapshot per instant."""

    name = "recipient_count_test"
    level = "message"
    signals = (SignalSpec("tenant_messages_known", "int32", "Messages in the tenant's snapshot.", "count"),)

    def compute(self, batch, view):
        n = int(view.column("tenant", "n_messages")[0]) if view.snapshot is not None else 0
        return {"tenant_messages_known": np.full(batch.n_messages, n, np.int32)}


def test_other_providers_are_scored_against_snapshots() -> None:
    raw = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3"],
                        "timestamp": ["2024-05-01T09:00Z", "2024-05-01T09:00Z", "2024-05-03T09:00Z"],
                        "sender": "ann@vendor.com", "recipients": "cy@acme.com"})
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    messages = validate(raw, tenants=tenants)
    signals = SignalSet(["pair", _RecipientCount()])
    ours = backfill(messages, signals=signals)
    assert ours["tenant_messages_known"].tolist() == [0, 0, 2]  # ties see neither each other nor themselves
    assert_equal_signals(ours, reference(raw, tenants, messages, np.arange(3), signals=signals),
                         names=signals.names)


def test_parameters_are_checked() -> None:
    messages = validate(pd.DataFrame({"tenant_id": "a", "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
                                      "sender": "x@out.com", "recipients": "u@a.com"}),
                        tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    with pytest.raises(ConfigError, match="'mode' parameter of backfill must be one of 'fresh', 'as_deployed'"):
        backfill(messages, mode="live")
    with pytest.raises(ConfigError, match="'refresh_every' parameter of backfill must be a duration > 0"):
        backfill(messages, mode="as_deployed", refresh_every="-1D")
    with pytest.raises(ConfigError, match="'level' parameter of backfill"):
        backfill(messages, level="tenant")
    with pytest.raises(ConfigError, match="'refresh_offset' parameter of backfill must be shorter than refresh_every"):
        backfill(messages, mode="as_deployed", refresh_offset="1D")
    with pytest.raises(ConfigError, match="'publish_delay' parameter of backfill must be a duration >= 0"):
        backfill(messages, mode="as_deployed", publish_delay="-1h")
    with pytest.raises(ConfigError, match="describe the refreshes of mode='as_deployed'"):
        backfill(messages, refresh_offset="2h")
    with pytest.raises(ConfigError, match="applies to mode='fresh' only"):
        backfill(messages, mode="as_deployed", prior_every="1D")
    with pytest.raises(ConfigError, match="privacy mode"):
        backfill(messages, config={"privacy": True})
    with pytest.raises(ConfigError, match="validated Messages"):
        backfill(pd.DataFrame())
    with pytest.raises(ConfigError, match="needs the 7d window"):
        backfill(messages, config={"windows": ["30d", "90d"]})


def test_exact_priors_over_a_long_history_warn_and_name_prior_every(monkeypatch) -> None:
    # A fit per message time is minutes over a long history (it also held every fit in memory at once: 22 GB
    # for 600k messages, now solved in batches): the call says so and names the daily grid.
    import commgraph.signals._backfill as module

    monkeypatch.setattr(module, "_EXACT_PRIORS_WARN", 5)
    g = generate(tenants=1, days=5, scale=0.01, random_state=2)
    messages = validate(g.messages, tenants=g.tenants)
    with pytest.warns(UserWarning, match="prior_every='1D' fits them once a day") as caught:
        backfill(messages, config=BaselineConfig(min_prior_labels=1))
    assert caught[0].filename == __file__
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backfill(messages, prior_every="1D", config=BaselineConfig(min_prior_labels=1))
        # Without enough explicit labels there is no fit to make (every tenant borrows the configured prior).
        backfill(validate(g.messages.drop(columns=["label", "labeled_at"]), tenants=g.tenants))


def test_durations_written_with_a_lower_case_day_read_without_a_pandas_deprecation() -> None:
    # pandas deprecates "7d" (a later pandas refuses it); BaselineConfig, backfill and build_graph read it as "7D".
    import warnings

    from commgraph.graph import build_graph

    m = validate(pd.DataFrame({"tenant_id": "t1", "message_id": ["a"], "timestamp": ["2024-05-01T09:00Z"],
                               "sender": "ann@vendor.com", "recipients": "cy@acme.com"}), tenants=TENANTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BaselineConfig(windows=("1d", "7d"), settle_delay="1d").windows[1] == pd.Timedelta(days=7)
        backfill(m, mode="as_deployed", refresh_every="1d")
        assert build_graph(m, tenant_id="t1", as_of="2024-05-02T00:00Z", window="7d").window == pd.Timedelta(days=7)
