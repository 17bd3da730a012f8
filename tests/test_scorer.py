"""The engine-facing Scorer: batch scoring, the scalar single-message path, hot reload."""

from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines, refresh
from commgraph.graph import CommGraphError, InferredOwnDomainsWarning, generate, validate
from commgraph.signals import PairSignals, Scorer, SignalProvider, SignalSet, SignalSpec


@pytest.fixture(scope="module")
def world():
    g = generate(tenants=2, days=12, random_state=5)
    raw = g.messages
    cut = raw["timestamp"].quantile(0.8)
    history = validate(raw[raw["timestamp"] < cut], tenants=g.tenants)
    snapshots = build_baselines(history, as_of=cut)
    later = raw[raw["timestamp"] >= cut]
    return g, snapshots, later


def _privately(history, as_of) -> tuple[dict, dict[str, bytes]]:
    """The same history's snapshots in privacy mode, each tenant keyed with its own secret."""
    secrets = {t: bytes([i + 1]) * 32 for i, t in enumerate(sorted(history.tenants))}
    return build_baselines(history, as_of=as_of, config=BaselineConfig(privacy=True), secrets=secrets), secrets


@pytest.fixture(scope="module")
def private_world(world):
    g, _, _ = world
    raw = g.messages
    cut = raw["timestamp"].quantile(0.8)
    return _privately(validate(raw[raw["timestamp"] < cut], tenants=g.tenants), cut)


def _scorer(request, snapshots, privacy: bool, fixture: str, **kwargs) -> Scorer:
    """A scorer over the plain snapshots, or over the same history's privacy-mode ones with their secrets."""
    if not privacy:
        return Scorer(snapshots, **kwargs)
    private, secrets = request.getfixturevalue(fixture)
    return Scorer(private, secrets=secrets, **kwargs)


PRIVACY = pytest.mark.parametrize("privacy", [False, True], ids=["plain", "privacy"])


def _mapping(row: pd.Series, *, with_direction: bool = True) -> dict:
    m = {c: row[c] for c in ("tenant_id", "message_id", "timestamp", "sender", "sender_display_name", "to", "cc",
                             "spf", "dkim", "dmarc")}
    if with_direction and "direction" in row:
        m["direction"] = row["direction"]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}


def _same(a, b) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(float(b))) or a == b


def assert_one_equals_batch(scorer: Scorer, raw: pd.DataFrame, configs, *, with_direction=True, cold_start=None):
    frame = raw if with_direction else raw.drop(columns=["direction"], errors="ignore")
    batch = scorer.score(validate(frame, tenants=configs), level="message", cold_start=cold_start)
    for i in range(len(raw)):
        one = scorer.score_one(_mapping(raw.iloc[i], with_direction=with_direction), cold_start=cold_start)
        expected = batch.iloc[i]
        bad = [n for n in scorer.signal_set.names if not _same(one[n], expected[n])]
        assert not bad, {n: (one[n], expected[n]) for n in bad}
        assert all(type(one[n]) in (int, float) for n in scorer.signal_set.names)


@PRIVACY
def test_score_one_equals_score_on_generated_mail(request, world, privacy) -> None:
    g, snapshots, later = world
    scorer = _scorer(request, snapshots, privacy, "private_world", tenant_configs=g.tenants)
    sample = later.sample(400, random_state=0)
    assert_one_equals_batch(scorer, sample, g.tenants)


@PRIVACY
def test_score_one_derives_the_direction_like_validation(request, world, privacy) -> None:
    g, snapshots, later = world
    assert_one_equals_batch(_scorer(request, snapshots, privacy, "private_world", tenant_configs=g.tenants),
                            later.sample(150, random_state=1), g.tenants, with_direction=False)
    # Without configurations the scorer takes the own domains its snapshots saw sending internal mail.
    scorer = _scorer(request, snapshots, privacy, "private_world")
    if not privacy:
        assert_one_equals_batch(scorer, later.sample(150, random_state=2), g.tenants, with_direction=False)
        return
    # Privacy mode stores them as keys only, which validation cannot use: both paths infer them from the mail
    # given, so a message alone is scored as the one-row frame of it.
    sample = later.sample(40, random_state=2).drop(columns=["direction"])
    for i in range(len(sample)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InferredOwnDomainsWarning)
            expected = scorer.score(sample.iloc[[i]], level="message").iloc[0]
        one = scorer.score_one(_mapping(sample.iloc[i], with_direction=False))
        assert [n for n in scorer.signal_set.names if not _same(one[n], expected[n])] == []


# ---------------------------------------------------------------------------------------------- the one-pass path
class HourOfWeek(SignalProvider):
    """A custom message-level provider with a float column: hours since the week began."""

    name = "hour_of_week_test"
    level = "message"
    signals = (SignalSpec("test_hour_of_week", "float32", "Hours since Monday 00:00 UTC, over 7.", "hours"),)

    def compute(self, batch, view):
        hours = (batch.timestamp // 3_600_000_000_000 + 72) % 168  # the epoch was a Thursday
        return {"test_hour_of_week": (hours / 7.0).astype(np.float32)}

    def compute_one(self, message, view):
        return {"test_hour_of_week": ((message.timestamp // 3_600_000_000_000 + 72) % 168) / 7.0}


class RecipientKeyBits(SignalProvider):
    """A custom edge-level provider: an int column aggregated by its mean, one by its min."""

    name = "recipient_key_bits_test"
    level = "edge"
    signals = (SignalSpec("test_key_low_bits", "int32", "The recipient key's low 4 bits.", "count", "mean"),
               SignalSpec("test_key_high_bit", "int8", "The recipient key's top bit.", "flag", "min"))

    def compute(self, batch, view):
        keys = batch.recipient_key
        return {"test_key_low_bits": (keys & np.uint64(15)).astype(np.int32),
                "test_key_high_bit": (keys >> np.uint64(63)).astype(np.int8)}

    def compute_one(self, message, view):
        return {"test_key_low_bits": [k & 15 for k in message.recipient_keys],
                "test_key_high_bit": [k >> 63 for k in message.recipient_keys]}


class RenamedPair(PairSignals):
    """A subclass of a built-in: not the shipped class, so it runs its own (inherited) compute_one."""

    name = "renamed_pair_test"


_MIXED_SETS = [
    [HourOfWeek(), "pair", RecipientKeyBits(), "sender", "habits"],
    ["lookalike", "identity", HourOfWeek(), "recipient", "sender_domain"],
    [RenamedPair(), "recipient", RecipientKeyBits()],
    ["habits", "sender_domain", "sender", "identity", "lookalike", "recipient", "pair"],  # built-ins, other order
]


_ADDRESSES = ["bob@vendor.com", "ann@acme.com", "cy@acme.com", "eve@rnicrosoft.com", "x@gmail.com",
              "new@unknown.org", "di@acme.com"]


def _small_frame() -> pd.DataFrame:
    rows = []
    for day in range(1, 9):
        rows += [("bob@vendor.com", "cy@acme.com", "Bob"), ("ann@acme.com", "cy@acme.com", "Ann Lee"),
                 ("cy@acme.com", "bob@vendor.com", "Cy"), ("x@gmail.com", "di@acme.com", "X")]
        frame = pd.DataFrame(rows, columns=["sender", "recipients", "sender_display_name"])
    return frame.assign(tenant_id="acme", message_id=[f"h{i}" for i in range(len(frame))],
                        timestamp=[f"2024-05-{1 + i % 8:02d}T{i % 24:02d}:00Z" for i in range(len(frame))])


@pytest.fixture(scope="module")
def small():
    configs = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    return build_baselines(validate(_small_frame(), tenants=configs), as_of="2024-05-10"), configs


@pytest.fixture(scope="module")
def private_small(small):
    snapshots, configs = small
    history = validate(_small_frame(), tenants=configs)
    return _privately(history, "2024-05-10")


@PRIVACY
@settings(max_examples=40, deadline=None)
@given(sender=st.sampled_from(_ADDRESSES), recipients=st.lists(st.sampled_from(_ADDRESSES), min_size=1, max_size=3),
       name=st.sampled_from([None, "Ann Lee", "Bob", "Someone"]), hour=st.integers(0, 23),
       dmarc=st.sampled_from([None, "pass", "fail"]), providers=st.sampled_from([None, *range(4)]))
def test_score_one_equals_score_property(request, small, privacy, sender, recipients, name, hour, dmarc,
                                         providers) -> None:
    snapshots, configs = small
    if set(recipients) == {sender} or not any(a.endswith("@acme.com") for a in recipients + [sender]):
        recipients = recipients + ["di@acme.com"]  # the tenant takes part, so the direction is decidable
    row = pd.Series({"tenant_id": "acme", "message_id": "p1", "timestamp": pd.Timestamp(f"2024-05-11T{hour:02d}:30Z"),
                     "sender": sender, "sender_display_name": name, "to": ";".join(recipients), "cc": None,
                     "spf": None, "dkim": None, "dmarc": dmarc})
    signal_set = SignalSet(None if providers is None else _MIXED_SETS[providers])
    scorer = _scorer(request, snapshots, privacy, "private_small", signal_set=signal_set, tenant_configs=configs)
    assert_one_equals_batch(scorer, pd.DataFrame([row]), configs, with_direction=False)


_MEMOS = [None, "_SENDER_CACHE", "_HEADER_NAME_CACHE", "_RECIPIENT_CACHE", "_ADDRESS_CACHE", "_NAME_CACHE"]


# A privacy tenant's keyed strings have memos of their own (its TenantKeys'), dropped too.
@pytest.mark.parametrize("privacy, drop", [(False, d) for d in _MEMOS]
                         + [(True, d) for d in _MEMOS + ["keys._memo", "keys._names"]])
def test_score_one_is_the_same_whichever_memo_has_dropped_an_entry(request, small, privacy, drop) -> None:
    # The scalar path memoises raw strings in separate bounded memos that turn over independently:
    # a header display name, a recipient list or a key must come out the same when any one of them
    # has lost its entry (the second call) as when all had it (the first) and as the batch path says.
    from commgraph.signals import _scalar

    snapshots, configs = small
    scorer = _scorer(request, snapshots, privacy, "private_small", tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "m1", "timestamp": "2024-05-11T09:30:00Z",
               "sender": '"Ann Lee" <Ann@ACME.com>', "to": "cy@acme.com, Di@acme.com;cy@acme.com",
               "cc": "bob@vendor.com", "dmarc": "pass"}
    first = scorer.score_one(message)
    if drop is not None and drop.startswith("keys."):  # a privacy tenant's memos of keyed strings
        memo = getattr(scorer._loaded.keys["acme"], drop.removeprefix("keys."))
        memo.new.clear()
        memo.old.clear()
    elif drop is not None:
        memo = getattr(_scalar, drop)
        memo.new.clear()
        memo.old.clear()
    again = scorer.score_one(message)
    assert again.keys() == first.keys() and all(_same(again[k], first[k]) for k in first)
    batch = pd.DataFrame([{**message, "sender_display_name": None, "spf": None, "dkim": None}])
    assert_one_equals_batch(scorer, batch, configs, with_direction=False)
    assert first["display_name_matches_internal"] == 0 and first["display_name_is_new_for_address"] == 0


def test_lookalike_checks_stay_bounded_and_the_same_after_they_are_forgotten(small) -> None:
    # Domains met while serving are remembered up to a limit, then forgotten together; the snapshot's
    # own sender domains stay. Signals do not change when a domain is checked again.
    snapshots, configs = small
    scorer = Scorer(snapshots, tenant_configs=configs)
    cache = scorer._view(scorer._loaded, "acme").lookalike_cache()
    cache.limit = 2
    seeded = set(cache.distance)
    domains = ["rnicrosoft.com", "acrne.com", "vendor.co", "example.org", "gmai1.com", "acme.co", "vend0r.com"]
    frame = pd.DataFrame({"tenant_id": "acme", "message_id": [f"l{i}" for i in range(len(domains))],
                          "timestamp": "2024-05-11T09:30:00Z", "sender": [f"x@{d}" for d in domains],
                          "sender_display_name": None, "to": "cy@acme.com", "cc": None, "spf": None,
                          "dkim": None, "dmarc": None})
    for _ in range(2):
        for i in range(len(frame)):
            scorer.score_one(_mapping(frame.iloc[i]))
            assert seeded <= set(cache.distance) and len(cache) <= len(seeded) + cache.limit
    assert_one_equals_batch(scorer, frame, configs, with_direction=False)
    assert scorer.score(frame)["lookalike_domain_is_close"].tolist() == [
        scorer.score_one(_mapping(frame.iloc[i]))["lookalike_domain_is_close"] for i in range(len(frame))]


def test_first_sightings_leave_nothing_for_the_garbage_collector(small) -> None:
    # New addresses, names and recipient lists are memoised as strings and ints, which the cyclic
    # collector never tracks: a stream of first sightings must not feed it (each collection it
    # triggers is a latency spike of tens of microseconds inside some unlucky call).
    import gc

    snapshots, configs = small
    scorer = Scorer(snapshots, tenant_configs=configs)

    def message(i: int) -> dict:
        return {"tenant_id": "acme", "message_id": f"g{i}", "timestamp": "2024-05-11T09:30:00Z",
                "sender": f"User {i} <u{i}@vendor.com>", "recipients": f"cy@acme.com;n{i}@acme.com",
                "sender_display_name": f"Person {i}", "direction": "inbound"}

    for i in range(50):  # warm: lazily built tables, skeletons of the known domains
        scorer.score_one(message(i))
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects(generation=0))
        for i in range(1000, 1500):
            scorer.score_one(message(i))
        survivors = len(gc.get_objects(generation=0)) - before
    finally:
        gc.enable()
    assert survivors < 10, f"{survivors} tracked objects left behind by 500 first sightings"


def test_cold_start_single_and_batch_agree(small) -> None:
    snapshots, configs = small
    scorer = Scorer(snapshots, tenant_configs=configs)
    raw = pd.DataFrame([{"tenant_id": "newco", "message_id": "1", "timestamp": pd.Timestamp("2024-05-11T10:00Z"),
                         "sender": "a@b.com", "sender_display_name": None, "to": "c@newco.com", "cc": None,
                         "spf": None, "dkim": None, "dmarc": None, "direction": "inbound"}])
    with pytest.raises(CommGraphError, match="'newco'"):
        scorer.score_one(_mapping(raw.iloc[0]))
    with pytest.raises(CommGraphError, match="'newco'"):
        scorer.score(validate(raw))
    assert_one_equals_batch(scorer, raw, configs, cold_start=True)


def test_score_accepts_a_raw_frame(small) -> None:
    snapshots, _ = small
    frame = pd.DataFrame({"tenant_id": ["acme"], "message_id": ["r"], "timestamp": ["2024-05-11T09:00Z"],
                          "sender": ["bob@vendor.com"], "recipients": ["cy@acme.com"]})
    out = Scorer(snapshots).score(frame)  # own domains come from the snapshot: no inference warning
    assert out["pair_messages"].tolist() == [8]
    X, names = Scorer(snapshots).score_array(frame, level="message")
    assert X.shape == (1, len(names)) and X.dtype == np.float32


def test_own_domains_of_an_unconfigured_tenant_follow_its_current_snapshot(tmp_path, monkeypatch) -> None:
    # Without a tenant configuration the scorer takes a tenant's own domains from its snapshot, so a
    # message without a direction is read by the snapshot being served: after a reload that brings
    # mail sent from a new own domain, the answer changes, even when a request for that tenant ran
    # while the reload was preparing another tenant's snapshot (the memo belongs to the view).
    from commgraph.signals import _scorer

    def snapshots(with_newco: bool) -> dict:
        rows = []
        for t in ("acme", "beta"):
            for d in range(1, 6):
                rows += [(t, f"ann@{t}.com", "bob@vendor.com", f"2024-05-0{d}T10:00Z"),
                         (t, "bob@vendor.com", f"ann@{t}.com", f"2024-05-0{d}T11:00Z")]
                if with_newco and t == "acme":
                    rows.append((t, "cy@newco.com", "bob@vendor.com", f"2024-05-0{d}T12:00Z"))
        frame = pd.DataFrame(rows, columns=["tenant_id", "sender", "recipients", "timestamp"])
        frame["message_id"] = [f"m{i}" for i in range(len(frame))]
        configs = [{"tenant_id": "acme", "own_domains": ["acme.com"] + (["newco.com"] if with_newco else [])},
                   {"tenant_id": "beta", "own_domains": ["beta.com"]}]
        return build_baselines(validate(frame, tenants=configs), as_of="2024-05-07")

    store = SnapshotStore(tmp_path)
    for snap in snapshots(False).values():
        store.publish(snap)
    scorer = Scorer.from_store(store)
    # ann takes part, so validation can derive a direction before newco.com is known to be acme's.
    message = {"tenant_id": "acme", "message_id": "x", "timestamp": "2024-05-08T09:00Z",
               "sender": "cy@newco.com", "recipients": "bob@vendor.com, ann@acme.com"}
    assert not scorer._is_own("acme", "newco.com")
    first = scorer.score_one(message)
    for snap in snapshots(True).values():
        store.publish(snap)
    prepare = _scorer._prepare

    def prepare_while_acme_is_scored(view, **kwargs):
        if view.tenant_id == "beta":
            scorer.score_one(message)  # acme's new view is prepared, not yet served
        return prepare(view, **kwargs)

    monkeypatch.setattr(_scorer, "_prepare", prepare_while_acme_is_scored)
    assert scorer.reload() == ["acme", "beta"]
    assert scorer._is_own("acme", "newco.com") and Scorer.from_store(store)._is_own("acme", "newco.com")
    after, fresh = scorer.score_one(message), Scorer.from_store(store).score_one(message)
    assert after.keys() == fresh.keys() and all(_same(after[k], v) for k, v in fresh.items())
    assert after["sender_messages_7d"] == 5 and first["sender_messages_7d"] == 0
    # A tenant the scorer does not serve owns nothing and leaves no memo behind.
    assert not scorer._is_own("nobody", "acme.com") and not scorer._own


def test_reload_swaps_atomically_while_other_threads_score(tmp_path, small) -> None:
    snapshots, configs = small
    store = SnapshotStore(tmp_path)
    store.publish(snapshots["acme"])
    scorer = Scorer.from_store(store, tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "q", "timestamp": "2024-05-12T10:00:00+00:00",
               "sender": "bob@vendor.com", "recipients": "cy@acme.com"}
    before = scorer.score_one(message)["pair_messages"]
    extra = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["n1", "n2"],
                                   "timestamp": ["2024-05-10T10:00Z", "2024-05-10T11:00Z"],
                                   "sender": "bob@vendor.com", "recipients": "cy@acme.com"}), tenants=configs)
    newer = refresh(snapshots["acme"], extra, as_of="2024-05-11")
    seen, errors, stop = set(), [], threading.Event()

    def work():
        while not stop.is_set():
            try:
                seen.add(scorer.score_one(message)["pair_messages"])
                seen.add(int(scorer.score(pd.DataFrame([message]))["pair_messages"].iloc[0]))
            except Exception as exc:  # noqa: BLE001 - any failure is the test's failure
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    store.publish(newer)
    assert scorer.reload() == ["acme"]
    after = scorer.score_one(message)["pair_messages"]
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert (before, after) == (8, 10)
    assert seen <= {8, 10}
    assert scorer.versions == {"acme": 2} and scorer.reload() == []


def test_scorer_snapshots_are_memory_mapped(tmp_path, small) -> None:
    snapshots, _ = small
    store = SnapshotStore(tmp_path)
    store.publish(snapshots["acme"])
    scorer = Scorer.from_store(store)
    column = scorer.snapshot("acme").column("sender", "n_messages")
    assert not column.flags.owndata  # a view of the mapped file, not a copy
    assert repr(scorer) == "Scorer(1 tenant: acme v1; 35 signals)"


def test_signal_set_subset(small) -> None:
    snapshots, configs = small
    scorer = Scorer(snapshots, signal_set=SignalSet(["pair"]), tenant_configs=configs)
    one = scorer.score_one({"tenant_id": "acme", "message_id": "z", "timestamp": "2024-05-12T10:00:00+00:00",
                            "sender": "bob@vendor.com", "recipients": ["cy@acme.com", "zz@acme.com"]})
    assert list(one) == ["tenant_id", "message_id", "pair_messages", "pair_is_first_contact", "pair_days_since_last",
                         "pair_recipient_replied"]
    assert one["pair_messages"] == 0 and one["pair_is_first_contact"] == 1 and one["pair_days_since_last"] > 1


@PRIVACY
@pytest.mark.parametrize("providers", _MIXED_SETS, ids=["custom-first", "custom-middle", "subclass", "reordered"])
def test_score_one_equals_score_with_custom_providers_mixed_in(request, world, privacy, providers) -> None:
    g, snapshots, later = world
    scorer = _scorer(request, snapshots, privacy, "private_world", signal_set=SignalSet(providers),
                     tenant_configs=g.tenants)
    assert not scorer._plan.default
    assert_one_equals_batch(scorer, later.sample(120, random_state=3), g.tenants)
    one = scorer.score_one(_mapping(later.iloc[0]))
    assert list(one) == ["tenant_id", "message_id", *scorer.signal_set.names]


def test_the_one_pass_path_covers_the_default_set_in_its_order(world) -> None:
    from commgraph.signals._builtin_one import BUILTIN_NAMES

    g, snapshots, later = world
    scorer = Scorer(snapshots, tenant_configs=g.tenants)
    assert scorer._plan.default and list(BUILTIN_NAMES) == SignalSet().names
    one = scorer.score_one(_mapping(later.iloc[0]))
    assert list(one) == ["tenant_id", "message_id", *BUILTIN_NAMES]


def test_builtin_compute_one_equals_the_batch_per_recipient(world) -> None:
    """Each built-in provider's scalar contract: message-level values, and per-recipient lists for edge ones."""
    from commgraph.signals._scalar import parse_one

    g, snapshots, later = world
    scorer = Scorer(snapshots, tenant_configs=g.tenants)
    sample = later[later["cc"].notna()].sample(40, random_state=4)  # several recipients each
    messages = validate(sample, tenants=g.tenants)
    edges = SignalSet().compute(messages, snapshots)
    message_level = SignalSet().compute(messages, snapshots, level="message")
    for i in range(len(sample)):
        m = parse_one(_mapping(sample.iloc[i]), scorer._registrable_domain, scorer._is_own)
        view = scorer._loaded.views[m.tenant_id]
        rows = edges[edges["message_id"] == m.message_id].set_index("recipient").loc[list(m.recipients)]
        for provider in SignalSet().providers:
            got = provider.compute_one(m, view)
            for spec in provider.signals:
                kind = float if (spec.dtype if provider.level == "edge" else spec.message_dtype) == "float32" else int
                if provider.level == "edge":
                    expected = rows[spec.name].tolist()
                    assert len(got[spec.name]) == len(expected) > 1
                    assert all(_same(a, b) for a, b in zip(got[spec.name], expected)), (spec.name, got, expected)
                    assert all(type(v) is kind for v in got[spec.name]), spec.name
                else:
                    assert _same(got[spec.name], message_level.iloc[i][spec.name]), spec.name
                    assert type(got[spec.name]) is kind, spec.name


def test_score_one_needs_the_windows_its_signals_read(small) -> None:
    from commgraph.graph import ConfigError

    snapshots, configs = small
    history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2"],
                                     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"],
                                     "sender": "bob@vendor.com", "recipients": "cy@acme.com"}), tenants=configs)
    no_week = build_baselines(history, as_of="2024-05-03", config={"windows": ["30d", "90d"]})
    message = {"tenant_id": "acme", "message_id": "w", "timestamp": "2024-05-03T10:00:00+00:00",
               "sender": "bob@vendor.com", "recipients": "cy@acme.com"}
    for scorer in (Scorer(no_week, tenant_configs=configs),
                   Scorer(no_week, signal_set=SignalSet(["pair", "sender"]), tenant_configs=configs)):
        with pytest.raises(ConfigError, match="sender_messages_7d.*7d window") as batch_error:
            scorer.score(pd.DataFrame([message]))
        with pytest.raises(ConfigError) as one_error:
            scorer.score_one(message)
        assert str(one_error.value) == str(batch_error.value)
    # Signals that need no 7-day window still score.
    scorer = Scorer(no_week, signal_set=SignalSet(["pair", "sender_domain", HourOfWeek()]), tenant_configs=configs)
    assert scorer.score_one(message)["pair_messages"] == 2


def _one_provider(level: str, specs: tuple, compute, compute_one, columns: tuple = ()) -> SignalProvider:
    """A user's provider of ``specs`` whose compute and compute_one are the given functions."""
    class Users(SignalProvider):
        name = "users_test"
        signals = specs
        message_columns = columns

        def compute(self, batch, view):
            return compute(batch)

        def compute_one(self, message, view):
            return compute_one(message)

    Users.level = level
    return Users()


_RISK = {"p@acme.com": 0.25, "q@acme.com": 0.75}  # per recipient; others nan


def _risk_provider(as_one) -> SignalProvider:
    from commgraph.graph import stable_key

    table = {stable_key(k): v for k, v in _RISK.items()}
    specs = (SignalSpec("test_risk_min", "float32", "A risk per recipient.", "rate", "min"),
             SignalSpec("test_risk_max", "float32", "A risk per recipient.", "rate", "max"))

    def compute(batch):
        v = np.array([table.get(int(k), np.nan) for k in batch.recipient_key], np.float32)
        return {"test_risk_min": v, "test_risk_max": v}

    def compute_one(m):
        v = [as_one(table.get(k, math.nan)) for k in m.recipient_keys]
        return {"test_risk_min": v, "test_risk_max": v}

    return _one_provider("edge", specs, compute, compute_one)


@pytest.mark.parametrize("as_one", [np.float32, float], ids=["numpy-float32", "float"])
@pytest.mark.parametrize("recipients", ["new@acme.com; p@acme.com; q@acme.com",
                                        "p@acme.com; new@acme.com; q@acme.com", "q@acme.com; p@acme.com; new@acme.com"])
def test_score_one_ignores_a_recipients_nan_whatever_the_order_and_type_of_the_values(small, as_one, recipients):
    # Only the first value's type was looked at, and numpy's float32 is no float: a first recipient's nan made
    # min and max nan (order [new, p, q]), where the batch path's fmin/fmax ignore it.
    snapshots, configs = small
    scorer = Scorer(snapshots, signal_set=SignalSet([_risk_provider(as_one)]), tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "r", "timestamp": "2024-05-11T10:00Z", "sender": "bob@vendor.com",
               "recipients": recipients}
    one = scorer.score_one(message)
    batch = scorer.score(pd.DataFrame([message]), level="message").iloc[0]
    for name in ("test_risk_min", "test_risk_max"):
        assert type(one[name]) is float and one[name] == batch[name], (name, one[name], batch[name])
    assert (one["test_risk_min"], one["test_risk_max"]) == (0.25, 0.75)


_INT = (SignalSpec("test_count", "int32", "A count.", "count"),)
_EDGE_INT = (SignalSpec("test_count", "int32", "A count per recipient.", "count", "max"),)
_UNDECLARED = [  # (level, specs, compute, compute_one, what both paths say)
    ("message", _INT, lambda b: {"other": np.zeros(b.n_messages)}, lambda m: {"other": 0},
     r"declares \['test_count'\]"),
    ("message", _INT, lambda b: {"test_count": np.full(b.n_messages, np.nan)}, lambda m: {"test_count": math.nan},
     "NaN, infinite or fractional"),
    ("message", _INT, lambda b: {"test_count": np.full(b.n_messages, 2.5)}, lambda m: {"test_count": 2.5},
     "NaN, infinite or fractional"),
    ("message", _INT, lambda b: {"test_count": np.full(b.n_messages, 2**40)}, lambda m: {"test_count": 2**40},
     "from 1099511627776 to 1099511627776"),
    ("message", _INT, lambda b: {"test_count": np.ones(b.n_edges)}, lambda m: {"test_count": [1] * len(m.recipients)},
     "a message-level provider returns one value per message"),
    ("message", _INT, lambda b: {"test_count": np.array([None] * b.n_messages)}, lambda m: {"test_count": None},
     "returned None .* for the int32 column 'test_count', which is not a number"),
    ("edge", _EDGE_INT, lambda b: {"test_count": np.full(b.n_messages, 5)}, lambda m: {"test_count": [5]},
     "an edge-level provider returns one value per edge"),
    ("edge", _EDGE_INT, lambda b: {"test_count": np.full(b.n_edges, np.nan)},
     lambda m: {"test_count": [np.float32("nan")] * len(m.recipients)}, "NaN, infinite or fractional"),
    ("message", _INT, lambda b: np.zeros(b.n_messages), lambda m: [0], "must return a mapping"),
]


@pytest.mark.parametrize("level, specs, compute, compute_one, said", _UNDECLARED,
                         ids=["missing", "nan", "fraction", "out-of-range", "per-recipient", "none", "edge-short",
                              "edge-nan", "no-mapping"])
def test_score_one_holds_a_users_provider_to_what_it_declares_as_score_does(small, level, specs, compute, compute_one,
                                                                           said) -> None:
    # score_one took a user's compute_one as given: a missing column left it out, NaN or 2.5 came back for an int32
    # column, a list of values per recipient from a message-level provider became the value, one value for a
    # two-recipient message from an edge-level provider was taken for every recipient.
    from commgraph.graph import ConfigError

    snapshots, configs = small
    scorer = Scorer(snapshots, signal_set=SignalSet([_one_provider(level, specs, compute, compute_one)]),
                    tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "u", "timestamp": "2024-05-11T10:00Z", "sender": "bob@vendor.com",
               "recipients": "cy@acme.com; di@acme.com"}
    with pytest.raises(ConfigError, match=said) as batch_error:
        scorer.score(pd.DataFrame([message]), level="message")
    with pytest.raises(ConfigError, match=said) as one_error:
        scorer.score_one(message)
    for error in (batch_error, one_error):
        assert "provider 'users_test' (Users)" in str(error.value)


def test_score_one_reads_a_users_numbers_as_score_does(small) -> None:
    # numpy scalars and whole floats for int columns come back as Python ints, undeclared keys are dropped (as the
    # batch path drops them), and each value equals the batch's.
    snapshots, configs = small
    specs = (SignalSpec("test_count", "int32", "A count.", "count"), SignalSpec("test_rate", "float32", "A rate.",
                                                                               "rate"))
    edge_specs = (SignalSpec("test_edge_max", "int8", "A flag per recipient.", "flag", "max"),
                  SignalSpec("test_edge_mean", "int32", "A count per recipient.", "count", "mean"))
    message_level = _one_provider(
        "message", specs, lambda b: {"test_count": np.full(b.n_messages, 3.0), "test_rate": np.full(b.n_messages, 0.1)},
        lambda m: {"test_count": 3.0, "test_rate": np.float64(0.1), "undeclared": "x"})
    edge_level = _one_provider(
        "edge", edge_specs,
        lambda b: {"test_edge_max": np.array([True, False] * (b.n_edges // 2)), "test_edge_mean": np.arange(b.n_edges)},
        lambda m: {"test_edge_max": [np.bool_(True), np.bool_(False)], "test_edge_mean": [np.int64(0), 1.0]})
    edge_level.name = "users_edge_test"
    scorer = Scorer(snapshots, signal_set=SignalSet([message_level, edge_level]), tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "u", "timestamp": "2024-05-11T10:00Z", "sender": "bob@vendor.com",
               "recipients": "cy@acme.com; di@acme.com"}
    one = scorer.score_one(message)
    batch = scorer.score(pd.DataFrame([message]), level="message").iloc[0]
    assert list(one) == ["tenant_id", "message_id", *scorer.signal_set.names]
    assert one == {"tenant_id": "acme", "message_id": "u", **{n: batch[n].item() for n in scorer.signal_set.names}}
    assert [type(one[n]) for n in scorer.signal_set.names] == [int, float, int, float]


class SubjectLength(SignalProvider):
    """The docstring's provider of a column beyond the contract, with its scalar path."""

    name = "subject_length_test"
    level = "message"
    message_columns = ("subject",)
    signals = (SignalSpec("test_subject_chars", "int32", "Characters in the subject.", "count"),)

    def compute(self, batch, view):
        return {"test_subject_chars": batch.message_column("subject").str.len().fillna(0).to_numpy("int32")}

    def compute_one(self, message, view):
        subject = message.columns["subject"]
        return {"test_subject_chars": len(subject) if isinstance(subject, str) else 0}


class TopicFlag(SignalProvider):
    """A provider of a column outside the contract."""

    name = "topic_flag_test"
    level = "message"
    message_columns = ("topic",)
    signals = (SignalSpec("test_topic_is_invoice", "int8", "The topic is 'invoice'.", "flag"),)

    def compute(self, batch, view):
        return {"test_topic_is_invoice": (batch.message_column("topic") == "invoice").to_numpy("int8")}

    def compute_one(self, message, view):
        return {"test_topic_is_invoice": int(message.columns["topic"] == "invoice")}


@pytest.mark.parametrize("subject", ["Invoice overdue", None, ""])
def test_score_one_gives_a_provider_the_message_columns_it_declares(small, subject) -> None:
    # The parsed message held the contract's fields only: the docstring's SubjectLength scored 15 in a batch,
    # 0 alone.
    snapshots, configs = small
    scorer = Scorer(snapshots, signal_set=SignalSet(["pair", SubjectLength()]), tenant_configs=configs)
    message = {"tenant_id": "acme", "message_id": "s", "timestamp": "2024-05-11T10:00Z", "sender": "bob@vendor.com",
               "recipients": "cy@acme.com", "subject": subject}
    one = scorer.score_one(message)
    assert one["test_subject_chars"] == scorer.score(pd.DataFrame([message]), level="message")[
        "test_subject_chars"].item() == len(subject or "")
    assert scorer.score_one(pd.Series(message))["test_subject_chars"] == len(subject or "")
    # Left out, a column of the contract is a missing value (validation fills it); any other column is refused.
    del message["subject"]
    assert scorer.score_one(message)["test_subject_chars"] == 0
    scorer = Scorer(snapshots, signal_set=SignalSet([SubjectLength(), TopicFlag()]), tenant_configs=configs)
    for given in ({**message, "topic": "invoice"}, {**message, "topic": None}):
        assert scorer.score_one(given) == {**scorer.score(pd.DataFrame([given]), level="message").iloc[0]}
    with pytest.raises(CommGraphError, match="no column 'topic'"):
        scorer.score(pd.DataFrame([message]), level="message")
    with pytest.raises(CommGraphError, match="no column 'topic'"):
        scorer.score_one(message)


def test_score_one_reads_only_the_shipped_classes_off_the_one_pass_path(small, monkeypatch) -> None:
    # The plan took the registry's entries under the built-ins' names for the built-ins: a class registered there
    # (a user's subclass named like the built-in) was scored by the one pass and its own columns dropped.
    from commgraph.signals import SenderSignals, provider_registry
    from commgraph.signals import _provider

    class VipSenders(SenderSignals):
        signals = SenderSignals.signals + (SignalSpec("test_sender_is_vip", "int8", "A VIP sender.", "flag"),)

        def compute(self, batch, view):
            return {**super().compute(batch, view), "test_sender_is_vip": np.ones(batch.n_messages, np.int8)}

        def compute_one(self, message, view):
            return {**SenderSignals().compute_one(message, view), "test_sender_is_vip": 1}

    monkeypatch.setitem(_provider._REGISTRY, "sender", VipSenders)
    assert provider_registry()["sender"] is VipSenders
    snapshots, configs = small
    scorer = Scorer(snapshots, tenant_configs=configs)
    assert not scorer._plan.default
    message = {"tenant_id": "acme", "message_id": "v", "timestamp": "2024-05-11T10:00Z", "sender": "bob@vendor.com",
               "recipients": "cy@acme.com"}
    one = scorer.score_one(message)
    assert list(one) == ["tenant_id", "message_id", *scorer.signal_set.names] and one["test_sender_is_vip"] == 1
    batch = scorer.score(pd.DataFrame([message]), level="message").iloc[0]
    assert all(_same(one[n], batch[n]) for n in scorer.signal_set.names)


def test_pair_rows_carry_their_reverse_count_after_build_and_refresh(world) -> None:
    """The one-pass path reads pair_recipient_replied from a known pair's n_reverse (a reverse probe saved):
    n_reverse must be the reverse pair's n_messages, or 0 without one, in built and refreshed snapshots."""
    g, snapshots, later = world
    tenant = sorted(snapshots)[0]
    newer = refresh(snapshots[tenant], validate(later[later["tenant_id"] == tenant], tenants=g.tenants),
                    as_of=later["timestamp"].max() + pd.Timedelta(seconds=1))
    for snap in (*snapshots.values(), newer):
        pairs = snap.table("pair")[["sender_key", "recipient_key", "n_messages", "n_reverse"]]
        back = pairs.rename(columns={"sender_key": "recipient_key", "recipient_key": "sender_key",
                                     "n_messages": "expected"})[["sender_key", "recipient_key", "expected"]]
        joined = pairs.merge(back, on=["sender_key", "recipient_key"], how="left")
        assert (joined["expected"].fillna(0).astype(int) == joined["n_reverse"]).all()
        assert joined["expected"].notna().any() and joined["expected"].isna().any()


def test_one_damaged_tenant_folder_keeps_the_engine_serving_the_others(tmp_path):
    # Before: a copy of a tenant's folder (or a damaged pointer) made from_store and reload fail for every tenant.
    import shutil
    import warnings as _warnings

    from commgraph.baselines import SnapshotStore, build_baselines
    from commgraph.graph import generate, validate
    from commgraph.signals import ReloadWarning

    mail = generate(tenants=2, days=4, scale=0.05, random_state=2)
    store = SnapshotStore(tmp_path)
    for snap in build_baselines(validate(mail.messages, tenants=mail.tenants), as_of="2025-01-09").values():
        store.publish(snap)
    shutil.copytree(tmp_path / "tenant-02", tmp_path / "tenant-02.bak")  # its manifest names tenant-02
    with pytest.warns(ReloadWarning, match="'tenant-02.bak' is not served"):
        scorer = Scorer.from_store(store)
    assert scorer.tenants == ["tenant-01", "tenant-02"]
    (tmp_path / "tenant-01" / "CURRENT").write_text("garbage")
    with pytest.warns(ReloadWarning) as caught:
        assert scorer.reload() == []
    said = [str(w.message) for w in caught]
    assert any("tenant-01" in m for m in said)
    assert any("not served, the published snapshot failing to load: 'tenant-02.bak'" in m for m in said), said
    assert scorer.versions == {"tenant-01": 1, "tenant-02": 1}  # still serving what it served
    with pytest.raises(Exception):
        Scorer.from_store(store, tenants=["tenant-02.bak"])  # asked for by name: the error, not a warning
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        (tmp_path / "tenant-01" / "CURRENT").write_text("v000001")
        shutil.rmtree(tmp_path / "tenant-02.bak")
        assert Scorer.from_store(store).tenants == ["tenant-01", "tenant-02"]


def test_a_store_none_of_whose_tenants_loads_is_refused_at_start(tmp_path):
    from commgraph.baselines import SnapshotStore
    from commgraph.baselines._snapshot import _example
    from commgraph.graph import CommGraphError

    store = SnapshotStore(tmp_path)
    store.publish(_example())
    (tmp_path / "acme" / "CURRENT").write_text("garbage")
    with pytest.warns(Warning), pytest.raises(CommGraphError, match="no tenant of .* can be loaded"):
        Scorer.from_store(store)  # before: a scorer serving nothing, every call failing (or cold-starting)


def test_own_domains_a_snapshot_gives_the_scorer_are_taken_as_the_mail_said() -> None:
    # A tenant whose gateway marks mail outbound from a public-suffix domain (github.io) or a consumer
    # provider: the scorer's configuration derived from the snapshot failed every batch (a public suffix is
    # refused as a user's setting) once configurations were checked.
    import warnings

    rows = [dict(message_id=f"m{i}", timestamp=f"2025-01-{1 + i:02d}T10:00:00Z", sender="ann@acme.com")
            for i in range(20)] + [dict(message_id="mx", timestamp="2025-01-05T11:00:00Z", sender="bot@github.io"),
                                   dict(message_id="my", timestamp="2025-01-06T11:00:00Z", sender="a@gmail.com")]
    history = pd.DataFrame(rows).assign(tenant_id="t", recipients="bob@partner.org", direction="outbound")
    scorer = Scorer(build_baselines(validate(history), as_of="2025-02-01T00:00Z"))
    new = pd.DataFrame([dict(tenant_id="t", message_id="n1", timestamp="2025-02-01T10:00:00Z",
                             sender="eve@evil.com", recipients="ann@acme.com")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scored = scorer.score(new)
    assert len(scored) == 1 and scored["sender_is_new"].tolist() == [1]


def test_a_tenant_configured_without_own_domains_is_scored_with_its_snapshot_s() -> None:
    # Configured for its VIP addresses alone, a tenant's batch inferred own domains from the batch itself (an
    # outbound message read as inbound, its signals another message's) while score_one refused the message.
    from commgraph.baselines._snapshot import _example
    from commgraph.graph import TenantConfig

    message = {"tenant_id": "acme", "message_id": "o1", "timestamp": "2024-05-04T10:00:00Z",
               "sender": "di@acme.com", "recipients": "bob@partner.org"}
    plain = Scorer({"acme": _example()})
    vip = Scorer({"acme": _example()}, tenant_configs=[TenantConfig("acme", vip_addresses=("cy@acme.com",))])
    for scorer in (plain, vip):
        assert scorer._messages(pd.DataFrame([message])).frame["direction"].tolist() == ["outbound"]
    want = plain.score(pd.DataFrame([message]), level="message")
    pd.testing.assert_frame_equal(vip.score(pd.DataFrame([message]), level="message"), want)
    got, expected = vip.score_one(message), plain.score_one(message)
    assert got.keys() == expected.keys()
    assert all(got[k] == expected[k] or (got[k] != got[k] and expected[k] != expected[k]) for k in got)  # (nan)


def test_a_scorer_of_some_of_the_stores_tenants_refuses_the_others_mail_even_cold(tmp_path):
    # Scorer.from_store(store, ["acme"], cold_start=True) (commgraph score --tenants acme --cold-start) scored the
    # mail of globex, which has baselines in the store, as a tenant without any: every sender new, silently; without
    # cold start its error advised publishing globex's baselines (they were) or cold start.
    configs = [{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in ("acme", "globex", "initech", "umbrella")]
    rows = pd.DataFrame([{"tenant_id": t, "message_id": f"{t}-{i}", "timestamp": f"2024-05-0{1 + i}T09:00Z",
                          "sender": "ann@vendor.com", "recipients": f"cy@{t}.com"}
                         for t in ("acme", "globex", "umbrella") for i in range(3)])
    built = build_baselines(validate(rows, tenants=configs), as_of="2024-05-05")
    store = SnapshotStore(tmp_path)
    for tenant in ("acme", "globex"):
        store.publish(built[tenant])

    def mail(tenant: str) -> dict:
        return {"tenant_id": tenant, "message_id": "new", "timestamp": "2024-05-06T09:00Z",
                "sender": "ann@vendor.com", "recipients": f"cy@{tenant}.com"}

    refused = "'globex' has a published snapshot in the store, but this scorer serves only the tenants it was made for"
    for cold in (True, False):
        shard = Scorer.from_store(store, ["acme"], tenant_configs=configs, cold_start=cold)
        with pytest.raises(CommGraphError, match=refused):
            shard.score(pd.DataFrame([mail("globex")]))
        with pytest.raises(CommGraphError, match=refused):
            shard.score_one(mail("globex"))
        assert shard.score_one(mail("acme"))["sender_is_new"] == 0
    # A tenant the store does not hold is cold-started, as before; one published later is refused after a reload.
    assert shard.cold_start is False and Scorer.from_store(store, ["acme"], tenant_configs=configs, cold_start=True
                                                           ).score_one(mail("initech"))["sender_is_new"] == 1
    shard = Scorer.from_store(store, ["acme"], tenant_configs=configs, cold_start=True)
    assert shard.score_one(mail("umbrella"))["sender_is_new"] == 1
    store.publish(built["umbrella"])
    assert shard.reload() == []
    with pytest.raises(CommGraphError, match="'umbrella' has a published snapshot in the store"):
        shard.score_one(mail("umbrella"))


def test_a_scorer_asked_for_a_tenant_the_store_does_not_hold_says_so_as_a_usage_error(tmp_path):
    # A typo in --tenants was a failure to load (CommGraphError, commgraph score exit 1), naming no tenant held.
    from commgraph.baselines._snapshot import _example
    from commgraph.graph import ConfigError
    from commgraph.signals._cli import main

    store = SnapshotStore(tmp_path / "store")
    store.publish(_example())
    with pytest.raises(ConfigError, match=r"names tenants the store .* does not hold: \['acne'\]; it holds \['acme'\]"):
        Scorer.from_store(store, ["acme", "acne"])
    pd.DataFrame([{"tenant_id": "acme", "message_id": "1", "timestamp": "2024-05-04T10:00Z",
                   "sender": "ann@vendor.com", "recipients": "cy@acme.com"}]).to_csv(tmp_path / "m.csv", index=False)
    assert main(["score", "--input", str(tmp_path / "m.csv"), "--store", str(tmp_path / "store"),
                 "--output", str(tmp_path / "o.parquet"), "--tenants", "acne"]) == 2


def test_a_cold_start_tenant_borrows_the_same_prior_whatever_the_order_of_the_snapshots() -> None:
    # The global prior was the first snapshot's: snapshots built apart (as the refresh job builds each tenant) carry
    # different ones, so a new tenant's likelihoods depended on the order the scorer was given them (0.25 or 0.95).
    configs = [{"tenant_id": t, "own_domains": ["acme.com"]} for t in ("a", "b", "c", "cold")]

    def built(tenant: str, n_attack: int, n: int = 40):
        rows = pd.DataFrame({"tenant_id": tenant, "message_id": [f"{tenant}{i}" for i in range(n)],
                             "timestamp": [pd.Timestamp("2024-03-01T09:00Z") + pd.Timedelta(hours=i) for i in range(n)],
                             "sender": [f"s{i}@ext{i}.com" for i in range(n)], "recipients": "cy@acme.com",
                             "label": ["attack"] * n_attack + ["safe"] * (n - n_attack),
                             "labeled_at": pd.Timestamp("2024-03-05T00:00Z")})
        return build_baselines(validate(rows, tenants=configs), as_of="2024-03-10T00:00Z")[tenant]

    snaps = {"a": built("a", 30), "b": built("b", 2), "c": built("c", 10)}
    assert snaps["a"].priors["global"] != snaps["b"].priors["global"]
    message = {"tenant_id": "cold", "message_id": "x", "timestamp": "2024-03-10T01:00Z",
               "sender": "new@unknown.org", "recipients": "cy@acme.com"}
    scored = [Scorer({t: snaps[t] for t in order}, tenant_configs=configs, cold_start=True).score_one(message)
              for order in ("abc", "bca", "cab", "cba")]
    assert all(_same(s[k], scored[0][k]) for s in scored[1:] for k in s)
    # ... per kind, the Beta prior of the median mean and the median strength of the three, not the first one's.
    borrowed = Scorer(snaps, tenant_configs=configs, cold_start=True)._loaded.global_priors["sender"]
    carried = [snaps[t].priors["global"]["sender"] for t in "abc"]
    means, sizes = [p["alpha"] / (p["alpha"] + p["beta"]) for p in carried], [p["alpha"] + p["beta"] for p in carried]
    assert math.isclose(borrowed["alpha"] / (borrowed["alpha"] + borrowed["beta"]), sorted(means)[1], rel_tol=1e-12)
    assert math.isclose(borrowed["alpha"] + borrowed["beta"], sorted(sizes)[1], rel_tol=1e-12)


def test_a_scorer_refuses_pickling_by_name_with_the_remedy() -> None:
    import pickle

    from commgraph.baselines._snapshot import _example

    scorer = Scorer({"acme": _example()})
    with pytest.raises(TypeError, match=r"Scorer cannot be pickled.*Scorer.from_store"):
        pickle.dumps(scorer)
    import copy

    assert copy.copy(scorer).versions == scorer.versions  # (a shallow copy shares it all, as it always did)
