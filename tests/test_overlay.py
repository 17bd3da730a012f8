"""The live overlay: a snapshot plus the mail observed since equals the snapshot built later.

Reference: ``build_baselines`` over the whole history at the overlay's as_of,
scored by a scorer without an overlay (counts exact, floats within 1e-9).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines, refresh
from commgraph.baselines._snapshot import table_differences
from commgraph.graph import CommGraphError, ConfigError, validate
from conftest import generated_raw
from commgraph.signals import Scorer, explain

# A configured global prior: a tenant without enough labels of its own borrows the same prior at
# every instant (pooled over tenants it would move with the pool, which refresh leaves to the
# next published snapshot).
CONFIG = BaselineConfig(global_prior=(2.0, 1.0))
HOUR = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def mail():
    g, raw = generated_raw(tenants=3, days=20, random_state=11, scale=0.1, attack_rate=0.04)
    start = raw["timestamp"].min().ceil("D")
    # Mid-day instants: windows and the settle delay cut through days.
    t, t3, t2 = start + pd.Timedelta(days=10, hours=7), start + pd.Timedelta(days=12, hours=2), \
        start + pd.Timedelta(days=14, hours=15)
    history = validate(raw, tenants=g.tenants)
    return g, raw, history, t, t3, t2


def observed_batches(raw: pd.DataFrame, t: pd.Timestamp, t2: pd.Timestamp, *, n_batches: int, seed: int
                     ) -> list[pd.DataFrame]:
    """What an engine observes between t and t2, in shuffled batches.

    Mail sent in [t, t2 + 2h) arrives without its label unless the label was known when sent
    (mail after t2 must wait in the overlay); a label that becomes known later arrives as the
    message's row again, with ``label`` and ``labeled_at``, in a later batch than the message
    (labels known after t2 included: they must not count).
    """
    rng = np.random.default_rng(seed)
    ts, labeled_at = raw["timestamp"], raw["labeled_at"]
    late_label = raw["label"].notna() & labeled_at.notna()
    sent = raw[(ts >= t) & (ts < t2 + 2 * HOUR)].copy()
    unlabelled_then = late_label[sent.index]
    sent.loc[unlabelled_then, ["label", "labeled_at"]] = None
    relabels = raw[late_label & (labeled_at >= t) & (labeled_at < t2 + 2 * HOUR) & (ts < t2 + 2 * HOUR)]
    sent_batch = pd.Series(rng.integers(0, n_batches - 1, len(sent)), index=sent.index)
    label_batch = pd.Series(rng.integers(0, n_batches, len(relabels)), index=relabels.index)
    seen = relabels.index.intersection(sent.index)
    # A verdict comes after the message was observed: a later batch.
    label_batch[seen] = np.maximum(label_batch[seen], sent_batch[seen] + 1).clip(upper=n_batches - 1)
    batches = []
    for b in range(n_batches):
        part = pd.concat([sent[sent_batch == b], relabels[label_batch == b]])
        batches.append(part.sample(frac=1.0, random_state=int(rng.integers(1 << 31))))  # out of order
    return batches


def probe_mail(raw: pd.DataFrame, t2: pd.Timestamp, n: int = 600) -> pd.DataFrame:
    """Mail to score after t2: what comes next, plus earlier mail re-sent (senders the overlay saw)."""
    after = raw[raw["timestamp"] >= t2].head(n // 2)
    before = raw[raw["timestamp"] < t2].tail(3000).sample(n // 2, random_state=3)
    again = before.assign(timestamp=t2 + pd.Timedelta(minutes=30), message_id="again-" + before["message_id"])
    return pd.concat([after, again], ignore_index=True).assign(label=None, labeled_at=None)


def _same_frames(got: pd.DataFrame, want: pd.DataFrame, names: list[str]) -> list[str]:
    bad = []
    for name in names:
        x, y = got[name].to_numpy(), want[name].to_numpy()
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            same = np.allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=0, equal_nan=True)
        else:
            same = np.array_equal(x, y)
        if not same:
            bad.append(name)
    return bad


def _mapping(row: pd.Series) -> dict:
    m = {c: row[c] for c in ("tenant_id", "message_id", "timestamp", "sender", "sender_display_name", "to", "cc",
                             "direction", "spf", "dkim", "dmarc")}
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}


def assert_scores_equal(scorer: Scorer, reference: Scorer, probe: pd.DataFrame, configs) -> None:
    names = scorer.signal_set.names
    batch = validate(probe, tenants=configs)
    for level in ("edge", "message"):
        got, want = scorer.score(batch, level=level), reference.score(batch, level=level)
        assert len(got) == len(want) > 0
        assert _same_frames(got, want, names) == [], level
    X, _ = scorer.score_array(batch)
    Y, _ = reference.score_array(batch)
    np.testing.assert_array_equal(X, Y)
    for i in range(0, len(probe), 7):
        one, ref = scorer.score_one(_mapping(probe.iloc[i])), reference.score_one(_mapping(probe.iloc[i]))
        bad = [n for n in names if not (one[n] == ref[n] or (one[n] != one[n] and ref[n] != ref[n]))
               and not (isinstance(ref[n], float) and math.isclose(one[n], ref[n], rel_tol=1e-9))]
        assert not bad, {n: (one[n], ref[n]) for n in bad}


def test_observed_mail_equals_the_snapshot_built_later(mail) -> None:
    g, raw, history, t, _, t2 = mail
    snaps = build_baselines(history, as_of=t, config=CONFIG)
    scorer = Scorer(snaps, tenant_configs=g.tenants)
    batches = observed_batches(raw, t, t2, n_batches=4, seed=1)
    instants = [t + (t2 - t) * f for f in (0.3, 0.3, 0.8)] + [t2]  # as_of may stay, never moves back
    for batch, as_of in zip(batches, instants):
        rejects = scorer.observe(batch, as_of=as_of)
        assert rejects.empty
    reference_snaps = build_baselines(history, as_of=t2, config=CONFIG)
    for tenant, snap in reference_snaps.items():
        served = scorer._view(scorer._loaded, tenant).snapshot
        assert served.as_of == t2
        assert table_differences(served, snap) == [], tenant
    # Four days changed the known-contact lists: look-alikes are checked afresh, as lookups meet domains.
    assert not any(scorer._view(scorer._loaded, tenant).lookalike_cache() is view.lookalike_cache()
                   for tenant, view in scorer._loaded.views.items())
    probe = probe_mail(raw, t2)
    assert probe["tenant_id"].nunique() == 3
    reference = Scorer(reference_snaps, tenant_configs=g.tenants)
    assert_scores_equal(scorer, reference, probe, g.tenants)
    # The overlay changed what the scorer says: a sender first seen after t is no longer new.
    plain = Scorer(snaps, tenant_configs=g.tenants).score(validate(probe, tenants=g.tenants), level="message")
    now = scorer.score(validate(probe, tenants=g.tenants), level="message")
    assert (plain["sender_is_new"] > now["sender_is_new"]).any()


@pytest.mark.parametrize("privacy", [False, True], ids=["plain", "privacy"])
def test_reload_retires_what_the_new_snapshot_counted_and_keeps_the_rest(tmp_path, mail, privacy) -> None:
    g, raw, history, t, t3, t2 = mail
    # In privacy mode each tenant's snapshots, observed mail and probes are keyed with its own secret.
    secrets = {tenant: bytes([i + 1]) * 32 for i, tenant in enumerate(sorted(history.tenants))} if privacy else None
    config = CONFIG.evolve(privacy=privacy)

    def built(as_of):
        return build_baselines(history, as_of=as_of, config=config, secrets=secrets)

    store = SnapshotStore(tmp_path / "store")
    for snap in built(t).values():
        store.publish(snap)
    scorer = Scorer.from_store(store, tenant_configs=g.tenants, secrets=secrets)
    for i, batch in enumerate(observed_batches(raw, t, t2, n_batches=3, seed=2)):
        scorer.observe(batch, as_of=t2 if i == 2 else t + (i + 1) * HOUR)
    reference = Scorer(built(t2), tenant_configs=g.tenants, secrets=secrets)
    probe = probe_mail(raw, t2, n=300)
    assert_scores_equal(scorer, reference, probe, g.tenants)
    held = scorer.overlay.pending()
    for snap in built(t3).values():
        store.publish(snap)
    assert scorer.reload() == sorted(held)
    after = scorer.overlay.pending()
    assert all(0 < after[tenant] < held[tenant] for tenant in held)
    assert_scores_equal(scorer, reference, probe, g.tenants)
    # What stayed is exactly what the snapshot at t3 did not count.
    kept = pd.concat([p.frame for parts in scorer.overlay._parts.values() for p in parts])
    late = kept["label"].notna() & (kept["labeled_at"].fillna(kept["timestamp"]) >= t3)
    assert ((kept["timestamp"] >= t3) | late).all()


def test_mail_at_or_after_as_of_waits_until_as_of_passes_it(mail) -> None:
    g, raw, history, t, _, _ = mail
    snaps = build_baselines(history, as_of=t, config=CONFIG)
    scorer = Scorer(snaps, tenant_configs=g.tenants)
    row = raw[raw["timestamp"] >= t].iloc[[0]].assign(label=None, labeled_at=None)
    sent = row["timestamp"].iloc[0]
    probe = row.assign(message_id="next", timestamp=sent + HOUR)
    scorer.observe(row, as_of=sent)  # strictly before: the message itself does not count yet
    first = scorer.score_one(_mapping(probe.iloc[0]))
    assert scorer._view(scorer._loaded, row["tenant_id"].iloc[0]).snapshot.table("sender")["n_messages"].sum() == \
        snaps[row["tenant_id"].iloc[0]].table("sender")["n_messages"].sum()
    scorer.observe(row.iloc[:0], as_of=sent + pd.Timedelta(1, "ns"))
    reference = Scorer(build_baselines(history, as_of=sent + pd.Timedelta(1, "ns"), config=CONFIG),
                       tenant_configs=g.tenants)
    second = scorer.score_one(_mapping(probe.iloc[0]))
    assert second == reference.score_one(_mapping(probe.iloc[0]))
    assert second["sender_messages_7d"] == first["sender_messages_7d"] + 1


def test_tenants_never_mix(mail) -> None:
    g, raw, history, t, _, t2 = mail
    snaps = build_baselines(history, as_of=t, config=CONFIG)
    batch = pd.concat(observed_batches(raw, t, t2, n_batches=2, seed=3))
    batch = batch[~batch["message_id"].duplicated(keep="last")]
    # The same message id in two tenants is two messages.
    a, b = sorted(batch["tenant_id"].unique())[:2]
    twin = batch[batch["tenant_id"] == a].iloc[[0]].assign(tenant_id=b, sender="twin@elsewhere.example")
    both = pd.concat([batch, twin])
    only_b = both[both["tenant_id"] == b]
    together, alone = Scorer(snaps, tenant_configs=g.tenants), Scorer(snaps, tenant_configs=g.tenants)
    together.observe(both, as_of=t2)
    alone.observe(only_b, as_of=t2)
    assert table_differences(together._view(together._loaded, b).snapshot,
                             alone._view(alone._loaded, b).snapshot) == []
    assert together.overlay.pending()[b] == alone.overlay.pending()[b] == len(only_b)
    # Tenant a saw nothing in `alone`: only time passed (its own snapshot refreshed to t2 with no mail).
    assert table_differences(alone._view(alone._loaded, a).snapshot, refresh(snaps[a], None, as_of=t2)) == []


def test_rejected_rows_come_back_with_reasons_and_the_rest_is_observed(mail) -> None:
    g, raw, history, t, _, t2 = mail
    scorer = Scorer(build_baselines(history, as_of=t, config=CONFIG), tenant_configs=g.tenants)
    batch = raw[(raw["timestamp"] >= t) & (raw["timestamp"] < t2)].head(20).copy()
    batch.loc[batch.index[3], "sender"] = "not an address"
    batch.loc[batch.index[5], "timestamp"] = pd.NaT
    rejects = scorer.observe(batch, as_of=t2)
    assert sorted(rejects.index.unique().tolist()) == [batch.index[3], batch.index[5]]
    assert sorted(rejects["reject_row"].unique().tolist()) == [3, 5]  # positions in the batch
    assert set(rejects["reject_column"]) == {"sender", "timestamp"}
    assert rejects["reject_reason"].notna().all()
    assert sum(scorer.overlay.pending().values()) == 18
    # Mail sent before the snapshot's as_of is not kept (a label that became known after it would be): it comes
    # back, each row as given, saying why (the snapshot counted it, or the next rebuild will).
    older = raw[raw["timestamp"] < t].tail(10).assign(label=None, labeled_at=None)
    back = scorer.observe(older, as_of=t2)
    assert back.index.tolist() == older.index.tolist() and back["reject_row"].tolist() == list(range(len(older)))
    assert set(back["reject_reason"]) == {"before_snapshot"} and set(back["reject_column"]) == {"timestamp"}
    assert back["reject_message"].str.contains("counted by the next rebuild").all()
    pd.testing.assert_frame_equal(back[older.columns], older)
    assert sum(scorer.overlay.pending().values()) == 18


def test_explain_reads_the_observed_mail(mail) -> None:
    g, raw, history, t, _, t2 = mail
    scorer = Scorer(build_baselines(history, as_of=t, config=CONFIG), tenant_configs=g.tenants)
    first = raw[raw["timestamp"] >= t].iloc[[0]].assign(label=None, labeled_at=None,
                                                       sender="brand.new@first-time.example")
    message = _mapping(first.assign(message_id="next", timestamp=t2).iloc[0])
    def value(e, name):
        return e.frame.loc[e.frame["signal"] == name, "value"].iloc[0]

    assert value(explain(message, scorer), "sender_is_new") == 1
    scorer.observe(first, as_of=t2)
    e = explain(message, scorer)
    assert value(e, "sender_is_new") == 0
    evidence = e.frame.loc[e.frame["signal"] == "sender_is_new", "evidence"].iloc[0]
    assert evidence["n_messages"] == 1 and evidence["first_seen"] == first["timestamp"].iloc[0]  # the overlay's row
    one = scorer.score_one(message)
    assert value(e, "sender_messages_7d") == one["sender_messages_7d"] == 1


def test_observe_refuses_unknown_tenants_bad_instants_and_types(mail) -> None:
    g, raw, history, t, _, t2 = mail
    scorer = Scorer(build_baselines(history, as_of=t, config=CONFIG), tenant_configs=g.tenants)
    batch = raw[raw["timestamp"] >= t].head(5)
    stranger = batch.assign(tenant_id="stranger-co")
    with pytest.raises(CommGraphError, match="tenant 'stranger-co'"):
        scorer.observe(pd.concat([batch, stranger]), as_of=t2)
    with pytest.raises(CommGraphError, match="tenant 'stranger-co'"):
        scorer.observe(validate(stranger, tenants=[{"tenant_id": "stranger-co", "own_domains": ["x.com"]}]),
                       as_of=t2)
    assert scorer.overlay.pending() == {} and scorer.overlay.as_of is None  # nothing was observed
    scorer.observe(batch, as_of=t2)
    with pytest.raises(ConfigError, match="must not move back"):
        scorer.observe(batch, as_of=t2 - HOUR)
    with pytest.raises(ConfigError, match="'as_of' parameter of Scorer.observe must be a timestamp"):
        scorer.observe(batch, as_of="yesterday-ish")
    with pytest.raises(ConfigError, match="'batch' parameter of Scorer.observe"):
        scorer.observe(batch.to_dict("records"), as_of=t2)


def test_the_combined_view_is_built_once_per_observe_and_only_for_tenants_looked_up(mail) -> None:
    g, raw, history, t, _, t2 = mail
    scorer = Scorer(build_baselines(history, as_of=t, config=CONFIG), tenant_configs=g.tenants)
    batch = raw[(raw["timestamp"] >= t) & (raw["timestamp"] < t2)]
    scorer.observe(batch, as_of=t2)
    tenant = batch["tenant_id"].iloc[0]
    assert scorer.overlay._views == {}  # nothing built by observe
    first = scorer._view(scorer._loaded, tenant)
    assert scorer._view(scorer._loaded, tenant) is first
    assert list(scorer.overlay._views) == [tenant]
    scorer.observe(batch.iloc[:0], as_of=t2 + HOUR)
    assert scorer._view(scorer._loaded, tenant) is not first


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), n_batches=st.integers(2, 6))
def test_any_split_into_observe_calls_equals_the_rebuild(mail, seed, n_batches) -> None:
    g, raw, _, t, _, t2 = mail
    small = raw[raw["tenant_id"] == raw["tenant_id"].value_counts().index[-1]]  # the smallest tenant: fast
    messages = validate(small, tenants=g.tenants)
    (tenant, snap), = build_baselines(messages, as_of=t, config=CONFIG).items()
    scorer = Scorer({tenant: snap}, tenant_configs=g.tenants)
    for batch in observed_batches(small, t, t2, n_batches=n_batches, seed=seed):
        scorer.observe(batch, as_of=t2)
    rebuilt = build_baselines(messages, as_of=t2, config=CONFIG)[tenant]
    assert table_differences(scorer._view(scorer._loaded, tenant).snapshot, rebuilt) == []


def test_a_view_that_knows_the_same_domains_shares_the_look_alike_results(mail) -> None:
    g, raw, history, t, _, _ = mail
    tenant = raw["tenant_id"].value_counts().index[-1]
    snaps = build_baselines(history, as_of=t, config=CONFIG)
    scorer = Scorer(snaps, tenant_configs=g.tenants)
    hour = raw[(raw["timestamp"] >= t) & (raw["timestamp"] < t + HOUR) & (raw["tenant_id"] == tenant)]
    scorer.observe(hour.assign(label=None, labeled_at=None), as_of=t + HOUR)
    base, served = scorer._loaded.views[tenant], scorer._view(scorer._loaded, tenant)
    assert served.lookalike_cache() is base.lookalike_cache()  # the known-contact list did not change in an hour
    reference = Scorer(build_baselines(history, as_of=t + HOUR, config=CONFIG), tenant_configs=g.tenants)
    probe = probe_mail(raw[raw["tenant_id"] == tenant], t + HOUR, n=200)
    assert_scores_equal(scorer, reference, probe, g.tenants)


@settings(max_examples=6, deadline=None)
@given(cut=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_after_a_reload_at_any_instant_between_the_retained_delta_still_equals_the_rebuild(tmp_path_factory, mail,
                                                                                         cut, seed) -> None:
    g, raw, _, t, _, t2 = mail
    small = raw[raw["tenant_id"] == raw["tenant_id"].value_counts().index[-1]]
    messages = validate(small, tenants=g.tenants)
    store = SnapshotStore(tmp_path_factory.mktemp("store"))
    (tenant, snap), = build_baselines(messages, as_of=t, config=CONFIG).items()
    store.publish(snap)
    scorer = Scorer.from_store(store, tenant_configs=g.tenants)
    for batch in observed_batches(small, t, t2, n_batches=3, seed=seed):
        scorer.observe(batch, as_of=t2)
    t3 = t + (t2 - t) * cut
    store.publish(build_baselines(messages, as_of=t3, config=CONFIG)[tenant])
    scorer.reload()
    rebuilt = build_baselines(messages, as_of=t2, config=CONFIG)[tenant]
    assert table_differences(scorer._view(scorer._loaded, tenant).snapshot, rebuilt) == []


def test_lookups_in_other_threads_while_mail_is_observed(mail) -> None:
    import threading

    g, raw, _, t, _, t2 = mail
    small = raw[raw["tenant_id"] == raw["tenant_id"].value_counts().index[-1]]
    messages = validate(small, tenants=g.tenants)
    (tenant, snap), = build_baselines(messages, as_of=t, config=CONFIG).items()
    scorer = Scorer({tenant: snap}, tenant_configs=g.tenants)
    probe = [_mapping(r) for _, r in probe_mail(small, t2, n=40).iterrows()]
    stop, errors = threading.Event(), []

    def lookups() -> None:
        try:
            while not stop.is_set():
                for m in probe:
                    scorer.score_one(m)
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=lookups) for _ in range(2)]
    for th in threads:
        th.start()
    for i, batch in enumerate(observed_batches(small, t, t2, n_batches=4, seed=5)):
        scorer.observe(batch, as_of=t2 if i == 3 else t + (i + 1) * HOUR)
        scorer.score_one(probe[0])
    stop.set()
    for th in threads:
        th.join()
    assert errors == []
    rebuilt = build_baselines(messages, as_of=t2, config=CONFIG)[tenant]
    assert table_differences(scorer._view(scorer._loaded, tenant).snapshot, rebuilt) == []


# --- reviewed cases: small hand-made mail, each compared with build_baselines at the overlay's as_of --------------

TWO = [{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in ("a", "b")]
T_SNAP, T_MID, T_END = (pd.Timestamp(x) for x in ("2024-05-04T00:00Z", "2024-05-04T06:00Z", "2024-05-05T00:00Z"))


def _two_tenants() -> pd.DataFrame:
    """Per tenant: six messages from a known sender before T_SNAP, four from a new one after it."""
    rows = []
    for t in ("a", "b"):
        rows += [(t, f"{t}h{i}", f"2024-05-0{1 + i % 3}T09:00Z", "ann@vendor.com", f"cy@{t}.com") for i in range(6)]
        rows += [(t, f"{t}n{i}", f"2024-05-04T0{i}:00Z", "bob@new.com", f"cy@{t}.com") for i in range(4)]
    return pd.DataFrame(rows, columns=["tenant_id", "message_id", "timestamp", "sender", "recipients"])


def _assert_served_equals_rebuild(scorer: Scorer, frame: pd.DataFrame, as_of: pd.Timestamp, configs) -> None:
    rebuilt = build_baselines(validate(frame, tenants=configs), as_of=as_of, config=CONFIG)
    for tenant, snap in rebuilt.items():
        assert table_differences(scorer._view(scorer._loaded, tenant).snapshot, snap) == [], tenant


def _differing(one: dict, other: dict) -> list[str]:
    """Keys whose values differ between two score_one dicts (nan equals nan)."""
    return [k for k in other if not (one[k] == other[k] or (one[k] != one[k] and other[k] != other[k]))]


def _store_scorer(tmp_path, frame: pd.DataFrame) -> tuple[SnapshotStore, Scorer]:
    store = SnapshotStore(tmp_path / "store")
    for snap in build_baselines(validate(frame, tenants=TWO), as_of=T_SNAP, config=CONFIG).values():
        store.publish(snap)
    scorer = Scorer.from_store(store, tenant_configs=TWO)
    scorer.observe(frame[frame["timestamp"].str.startswith("2024-05-04")], as_of=T_END)
    return store, scorer


def test_a_tenant_whose_new_version_fails_to_load_keeps_its_snapshot_and_all_its_observed_mail(tmp_path) -> None:
    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)
    held = scorer.overlay.pending()
    newer = build_baselines(validate(frame, tenants=TWO), as_of=T_MID, config=CONFIG)
    store.publish(newer["a"])
    version = store.publish(newer["b"])
    damaged = tmp_path / "store" / "b" / f"v{version:06d}" / "sender.arrow"
    data = bytearray(damaged.read_bytes())
    data[200] ^= 0xFF  # bit rot: the checksum no longer matches
    damaged.write_bytes(bytes(data))
    for _ in range(2):  # and again: the failed tenant is tried on every reload, the others stay put
        with pytest.warns(UserWarning, match=r"'b' version 2: CorruptSnapshotError"):
            changed = scorer.reload()
        assert changed == (["a"] if _ == 0 else [])
        assert scorer.versions == {"a": 2, "b": 1}
        assert scorer.overlay.pending()["b"] == held["b"]
        _assert_served_equals_rebuild(scorer, frame, T_END, TWO)
    store.publish(newer["b"])
    assert scorer.reload() == ["b"] and scorer.versions == {"a": 2, "b": 3}
    _assert_served_equals_rebuild(scorer, frame, T_END, TWO)


def _mid_reload(tmp_path) -> tuple[pd.DataFrame, Scorer, dict, Scorer]:
    """Mail of two tenants, a scorer observing it with snapshots as of T_MID published but not served yet, a probe
    of tenant a, and a reference scorer over snapshots rebuilt as of T_END."""
    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)
    for snap in build_baselines(validate(frame, tenants=TWO), as_of=T_MID, config=CONFIG).values():
        store.publish(snap)
    probe = {"tenant_id": "a", "message_id": "p", "timestamp": "2024-05-05T01:00:00+00:00", "sender": "bob@new.com",
             "recipients": "cy@a.com"}
    return frame, scorer, probe, Scorer(build_baselines(validate(frame, tenants=TWO), as_of=T_END, config=CONFIG),
                                        tenant_configs=TWO)


def test_a_lookup_during_a_reload_never_reads_a_delta_trimmed_for_a_snapshot_not_yet_served(tmp_path,
                                                                                          monkeypatch) -> None:
    import commgraph.signals._scorer as scorer_module

    _, scorer, probe, reference = _mid_reload(tmp_path)
    want = reference.score_one(probe)
    assert want["sender_messages_7d"] == 4
    seen, prepare = [], scorer_module._prepare

    def prepare_and_look_up(view, **kw):  # while the reload prepares tenant b, tenant a is looked up
        if view.tenant_id == "b" and view.snapshot.as_of == T_MID:
            seen.append(scorer.score_one(probe))
        return prepare(view, **kw)

    monkeypatch.setattr(scorer_module, "_prepare", prepare_and_look_up)
    assert scorer.reload() == ["a", "b"]
    assert len(seen) == 1 and _differing(seen[0], want) == []
    assert _differing(scorer.score_one(probe), want) == []


def test_a_call_that_read_the_snapshots_just_before_a_reload_swapped_them_keeps_the_mail_observed_since(
        tmp_path, monkeypatch) -> None:
    # The call read the old snapshot; the reload swapped in the new one and dropped the mail it counted from
    # the overlay before the call built its view: the old snapshot was read without that mail (a sender
    # observed minutes ago was new again, for that call).
    import commgraph.signals._scorer as scorer_module

    _, scorer, probe, reference = _mid_reload(tmp_path)
    want = reference.score(pd.DataFrame([probe]))
    from_messages = scorer_module.SignalBatch.from_messages

    def reload_meanwhile(messages):  # the engine's reload thread runs while this call is under way
        monkeypatch.setattr(scorer_module.SignalBatch, "from_messages", from_messages)
        assert scorer.reload() == ["a", "b"]
        return from_messages(messages)

    monkeypatch.setattr(scorer_module.SignalBatch, "from_messages", staticmethod(reload_meanwhile))
    during = scorer.score(pd.DataFrame([probe]))
    assert scorer.versions == {"a": 2, "b": 2}
    pd.testing.assert_frame_equal(during, want)
    pd.testing.assert_frame_equal(scorer.score(pd.DataFrame([probe])), want)


def test_a_call_spanning_several_reloads_reads_its_snapshot_with_all_the_mail_observed_since(tmp_path) -> None:
    # A call that read the snapshots before one reload and still runs after another read its snapshot with the
    # mail only the last reload dropped given back: what the first dropped was lost (the overlay kept one retired
    # entry per tenant, replaced at each reload). Each call holds what it read, as score and score_one do.
    import gc

    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)  # served as of T_SNAP; b's new mail observed up to T_END
    messages = validate(frame, tenants=TWO)
    held = [scorer._loaded]
    # A republished version (nothing dropped), then two that each count some of the observed mail.
    for at in (T_SNAP, T_SNAP + 2 * HOUR, T_MID):
        store.publish(build_baselines(messages, as_of=at, config=CONFIG)["a"])
        assert scorer.reload() == ["a"]
        held.append(scorer._loaded)
    rebuilt = build_baselines(messages, as_of=T_END, config=CONFIG)["a"]
    for loaded in held:  # the current one last: a fresh call
        assert table_differences(scorer._view(loaded, "a").snapshot, rebuilt) == [], loaded.versions
    # The current snapshot's view is built once and kept, replaced ones alive or not.
    assert scorer._view(scorer._loaded, "a") is scorer._view(scorer._loaded, "a")
    # The mail kept for calls goes with the snapshots they read.
    del held, loaded
    assert scorer.overlay._retired != {}
    scorer.observe(frame.iloc[:0], as_of=T_END)  # (validation lets go of the snapshots it read last)
    gc.collect()  # (a view and its indexes refer to each other)
    assert scorer.observe(frame.iloc[:0], as_of=T_END).empty and scorer.overlay._retired == {}


def test_a_call_spanning_a_reload_and_a_rollback_keeps_its_mail_and_the_rollback_is_served_as_documented(
        tmp_path) -> None:
    # The rollback drops nothing, and its retire let go of the mail the reload before it dropped: a call still
    # reading the first snapshot lost it. The snapshot rolled back to is a served one, not a replaced one: its
    # view is kept, and it misses the mail the newer snapshot counted (the ReloadWarning says so).
    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)
    messages = validate(frame, tenants=TWO)
    held = scorer._loaded
    store.publish(build_baselines(messages, as_of=T_MID, config=CONFIG)["a"])
    assert scorer.reload() == ["a"]
    store.publish(build_baselines(messages, as_of=T_SNAP, config=CONFIG)["a"])
    with pytest.warns(UserWarning, match="is older than the one it replaces"):
        assert scorer.reload() == ["a"]
    rebuilt = build_baselines(messages, as_of=T_END, config=CONFIG)["a"]
    assert table_differences(scorer._view(held, "a").snapshot, rebuilt) == []
    served = scorer._view(scorer._loaded, "a")
    assert served is scorer._view(scorer._loaded, "a") and table_differences(served.snapshot, rebuilt) != []


def test_observed_mail_is_served_after_retention_prunes_the_served_version(tmp_path) -> None:
    # The overlay refreshes the served snapshot, whose state was read from its version's files on the first
    # lookup: once the job had published more versions than the store retains, every lookup of the tenant
    # failed, the other tenants of a batch with it. Mapped at observe, the state outlives the files.
    from commgraph.signals import ReloadWarning

    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)  # (observed mail of both tenants)
    newer = build_baselines(validate(frame, tenants=TWO), as_of=T_MID, config=CONFIG)
    for _ in range(store.retain):
        store.publish(newer["a"])
    assert 1 not in store.versions("a")
    probes = pd.DataFrame([{"tenant_id": t, "message_id": "p", "timestamp": "2024-05-05T01:00:00+00:00",
                            "sender": "bob@new.com", "recipients": f"cy@{t}.com"} for t in ("a", "b")])
    want = Scorer(build_baselines(validate(frame, tenants=TWO), as_of=T_END, config=CONFIG),
                  tenant_configs=TWO).score(probes)
    pd.testing.assert_frame_equal(scorer.score(probes), want)
    assert scorer.score_one(probes.iloc[0].to_dict())["sender_messages_7d"] == 4
    # Pruned before any mail was observed: that tenant is served its snapshot alone, said so; the others not.
    store = SnapshotStore(tmp_path / "late")
    at_snap = build_baselines(validate(frame, tenants=TWO), as_of=T_SNAP, config=CONFIG)
    for snap in at_snap.values():
        store.publish(snap)
    late = Scorer.from_store(store, tenant_configs=TWO)
    for _ in range(store.retain):
        store.publish(newer["a"])
    with pytest.warns(ReloadWarning, match=r"tenant 'a' is served without the mail observed since its snapshot"):
        late.observe(frame[frame["timestamp"].str.startswith("2024-05-04")], as_of=T_END)
    got = late.score(probes)
    pd.testing.assert_frame_equal(got.iloc[:1], Scorer(at_snap, tenant_configs=TWO).score(probes).iloc[:1])
    pd.testing.assert_frame_equal(got.iloc[1:], want.iloc[1:])
    assert late.reload() == ["a"]
    pd.testing.assert_frame_equal(late.score(probes), want)


def test_reloading_an_older_snapshot_warns_naming_the_tenant_and_the_gap(tmp_path) -> None:
    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)
    messages = validate(frame, tenants=TWO)
    store.publish(build_baselines(messages, as_of=T_MID, config=CONFIG)["a"])
    assert scorer.reload() == ["a"]
    store.publish(build_baselines(messages, as_of=T_SNAP, config=CONFIG)["a"])  # a rollback
    with pytest.warns(UserWarning, match=r"tenant 'a': the snapshot now served \(version 3, as of "
                                         r"2024-05-04T00:00:00\+00:00\) is older .* \[2024-05-04T00:00:00\+00:00, "
                                         r"2024-05-04T06:00:00\+00:00\)"):
        assert scorer.reload() == ["a"]
    # A reload that goes forward says nothing.
    store.publish(build_baselines(messages, as_of=T_MID, config=CONFIG)["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer.reload() == ["a"]
    _assert_served_equals_rebuild(scorer, frame, T_END, TWO)
    # Without observed mail, going back loses nothing and says nothing.
    plain = Scorer.from_store(store, tenant_configs=TWO)
    store.publish(build_baselines(messages, as_of=T_SNAP, config=CONFIG)["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plain.reload() == ["a"]


ACME = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
T_DAY, T_NEXT = pd.Timestamp("2024-05-06T00:00Z"), pd.Timestamp("2024-05-07T00:00Z")


def _acme_history() -> pd.DataFrame:
    return pd.DataFrame({"tenant_id": "acme", "message_id": [f"h{i}" for i in range(4)],
                         "timestamp": [f"2024-05-0{1 + i}T09:00Z" for i in range(4)], "sender": "ann@vendor.com",
                         "recipients": "cy@acme.com"})


def _acme_scorer() -> Scorer:
    return Scorer(build_baselines(validate(_acme_history(), tenants=ACME), as_of=T_DAY, config=CONFIG),
                  tenant_configs=ACME)


def _message(**columns) -> pd.DataFrame:
    return pd.DataFrame([{"tenant_id": "acme", "message_id": "M", "timestamp": "2024-05-06T10:00Z",
                          "sender": "eve@evil.com", "recipients": "cy@acme.com; di@acme.com", **columns}])


def test_a_message_replayed_after_its_verdict_keeps_the_verdict() -> None:
    scorer = _acme_scorer()
    verdict = _message(label="attack", labeled_at="2024-05-06T12:00Z")
    scorer.observe(_message(), as_of="2024-05-06T11:00Z")
    scorer.observe(verdict, as_of="2024-05-06T13:00Z")
    assert scorer.observe(_message(), as_of=T_NEXT).empty  # at-least-once delivery: the plain row again
    # The reference: the message once, with its verdict.
    _assert_served_equals_rebuild(scorer, pd.concat([_acme_history(), verdict]), T_NEXT, ACME)
    assert scorer.overlay.pending() == {"acme": 1}


def test_a_message_and_its_verdict_in_one_batch_are_one_labelled_message() -> None:
    scorer = _acme_scorer()
    verdict = _message(label="attack", labeled_at="2024-05-06T11:00Z")
    for order in ([_message(), verdict], [verdict, _message()]):
        scorer = _acme_scorer()
        assert scorer.observe(pd.concat(order, ignore_index=True), as_of=T_NEXT).empty
        _assert_served_equals_rebuild(scorer, pd.concat([_acme_history(), verdict]), T_NEXT, ACME)
        sender = scorer._view(scorer._loaded, "acme").snapshot.table("sender").set_index("sender")
        assert sender.loc["eve@evil.com", ["n_messages", "n_attack"]].tolist() == [1, 1]


def test_the_latest_known_label_wins_and_recipients_add_up() -> None:
    scorer = _acme_scorer()
    scorer.observe(_message(recipients="cy@acme.com", label="spam", labeled_at="2024-05-06T11:00Z"),
                   as_of="2024-05-06T12:00Z")
    scorer.observe(_message(recipients="di@acme.com", label="attack", labeled_at="2024-05-06T14:00Z"),
                   as_of="2024-05-06T15:00Z")
    scorer.observe(_message(recipients="ed@acme.com"), as_of=T_NEXT)  # no label: the known one stays
    merged = _message(recipients="cy@acme.com; di@acme.com; ed@acme.com", label="attack",
                      labeled_at="2024-05-06T14:00Z")
    _assert_served_equals_rebuild(scorer, pd.concat([_acme_history(), merged]), T_NEXT, ACME)


def test_an_internal_message_whose_later_copy_adds_an_outside_recipient_is_outbound() -> None:
    history = _acme_history()
    internal = dict(sender="zoe@acme.com", recipients="cy@acme.com")
    scorer = _acme_scorer()
    # The outside recipient first: the later, internal-only copy alone would say "internal".
    scorer.observe(_message(**{**internal, "recipients": "out@partner.com"}), as_of="2024-05-06T11:00Z")
    scorer.observe(_message(**internal), as_of=T_NEXT)
    whole = _message(sender="zoe@acme.com", recipients="cy@acme.com; out@partner.com")
    assert validate(whole, tenants=ACME).frame["direction"].tolist() == ["outbound"]
    _assert_served_equals_rebuild(scorer, pd.concat([history, whole]), T_NEXT, ACME)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), n_batches=st.integers(2, 5))
def test_one_row_per_recipient_split_replayed_and_relabelled_in_any_order_equals_the_rebuild(mail, seed,
                                                                                             n_batches) -> None:
    g, raw, _, t, _, t2 = mail
    small = raw[raw["tenant_id"] == raw["tenant_id"].value_counts().index[-1]]
    # The whole mail as one row per recipient: the snapshot's and the reference's input, and what is observed.
    edges = validate(small, tenants=g.tenants).edges(message_columns=("message_id", "label", "labeled_at"))
    rows = pd.DataFrame({c: edges[c].astype(object) if isinstance(edges[c].dtype, pd.CategoricalDtype) else edges[c]
                         for c in ("tenant_id", "message_id", "timestamp", "sender", "recipient", "recipient_type",
                                   "direction", "label", "labeled_at")})
    messages = validate(rows, tenants=g.tenants)
    (tenant, snap), = build_baselines(messages, as_of=t, config=CONFIG).items()
    rng = np.random.default_rng(seed)
    plain = rows[rows["timestamp"] >= t].assign(label=None, labeled_at=pd.NaT)
    replayed = plain.sample(frac=0.2, random_state=seed)
    # A verdict is one row of its message (its recipients add nothing), for older mail too if it became known
    # after the snapshot.
    known = rows["labeled_at"].fillna(rows["timestamp"])
    verdicts = rows[rows["label"].notna() & (known >= t)].drop_duplicates("message_id")
    where = {"plain": rng.integers(0, n_batches, len(plain)), "replayed": rng.integers(0, n_batches, len(replayed)),
             "verdicts": rng.integers(0, n_batches, len(verdicts))}
    scorer = Scorer({tenant: snap}, tenant_configs=g.tenants)
    for b in range(n_batches):
        # A replayed row in the batch of its original is an exact repeat: validation drops it as a duplicate edge.
        parts = [plain[where["plain"] == b], replayed[where["replayed"] == b], verdicts[where["verdicts"] == b]]
        for part in (pd.concat(parts[:2]), parts[2]):  # plain rows and verdicts: separate calls, any order
            rejects = scorer.observe(part.sample(frac=1.0, random_state=seed), as_of=t2)
            assert set(rejects["reject_reason"]) <= {"duplicate_edge"}
    rebuilt = build_baselines(messages, as_of=t2, config=CONFIG)[tenant]
    assert table_differences(scorer._view(scorer._loaded, tenant).snapshot, rebuilt) == []


def test_mail_sent_before_the_snapshot_comes_back_saying_why_instead_of_vanishing() -> None:
    late = pd.DataFrame({"tenant_id": "acme", "message_id": ["L"], "timestamp": ["2024-05-05T23:59Z"],
                         "sender": ["eve@evil.com"], "recipients": ["cy@acme.com"]}, index=[7])
    scorer = _acme_scorer()
    back = scorer.observe(late, as_of=T_NEXT)  # sent before the snapshot's as_of, logged after its refresh
    assert back[["reject_column", "reject_reason", "reject_value"]].to_dict("records") == [
        {"reject_column": "timestamp", "reject_reason": "before_snapshot", "reject_value": "2024-05-05 23:59:00+00:00"}]
    assert "2024-05-06T00:00:00+00:00" in back["reject_message"].iloc[0]
    assert back.index.tolist() == [7] and back["message_id"].tolist() == ["L"]
    # A verdict without labeled_at reads as known when sent: before the snapshot too, and said so.
    back = scorer.observe(late.assign(label="attack"), as_of=T_NEXT)
    assert back[["reject_column", "reject_reason"]].values.tolist() == [["labeled_at", "before_snapshot"]]
    assert "give labeled_at" in back["reject_message"].iloc[0]
    # One row per recipient: every row of the message comes back, ids (and the tenant) read as validation reads
    # them ('R ' beside 'R' was neither observed nor given back; tenant ' acme' was refused as not served).
    rows = pd.DataFrame({"tenant_id": ["acme", " acme"], "message_id": ["R", "R "], "timestamp": "2024-05-05T22:00Z",
                         "sender": "eve@evil.com", "recipient": ["cy@acme.com", "di@acme.com"]})
    back = scorer.observe(rows, as_of=T_NEXT)
    assert back.index.tolist() == [0, 1] and set(back["reject_reason"]) == {"before_snapshot"}
    # A verdict known after the snapshot counts, and nothing comes back.
    assert scorer.observe(late.assign(label="attack", labeled_at="2024-05-06T08:00Z"), as_of=T_NEXT).empty
    assert scorer.overlay.pending() == {"acme": 1}



def test_a_label_known_only_after_the_overlays_as_of_does_not_hide_the_one_known_before_it() -> None:
    # Copies were merged keeping the latest labelling before asking whether it was known yet: a relabel observed
    # ahead of its labeled_at made its message unlabelled until then, where a build at as_of counts the verdict
    # known before it.
    sent = {"tenant_id": "acme", "message_id": "M", "timestamp": "2024-05-06T09:00Z", "sender": "eve@evil.com",
            "recipients": "cy@acme.com"}
    attack = {**sent, "label": "attack", "labeled_at": "2024-05-06T12:00Z"}
    spam = {**sent, "label": "spam", "labeled_at": "2024-05-07T01:00Z"}  # known only after the as_of below
    probe = {**sent, "message_id": "P", "timestamp": "2024-05-07T00:30Z"}
    as_of, later = pd.Timestamp("2024-05-07T00:00Z"), pd.Timestamp("2024-05-07T02:00Z")
    for batches in ([[sent, attack], [spam]], [[spam], [sent, attack]], [[sent, spam, attack]]):
        scorer = _acme_scorer()
        for batch in batches:
            assert scorer.observe(pd.DataFrame(batch), as_of=as_of).empty
        for instant, known in ((as_of, [attack]), (later, [spam])):
            if instant == later:
                scorer.observe(pd.DataFrame(columns=list(sent)), as_of=later)
            reference = Scorer(build_baselines(validate(pd.concat([_acme_history(), pd.DataFrame(known)]),
                                                        tenants=ACME), as_of=instant, config=CONFIG),
                               tenant_configs=ACME)
            assert _differing(scorer.score_one(probe), reference.score_one(probe)) == [], (batches, instant)


def test_copies_of_a_message_in_one_batch_come_back_each_for_itself() -> None:
    # Copies were matched back to the input by (tenant, id): two set-aside copies (a replay) crashed with
    # pandas' InvalidIndexError after the overlay had taken the batch, and a kept, counted verdict row came
    # back as before_snapshot beside its set-aside copy.
    sent = {"tenant_id": "acme", "message_id": "L", "timestamp": "2024-05-05T23:59Z", "sender": "eve@evil.com",
            "recipients": "cy@acme.com"}
    scorer = _acme_scorer()
    replay = pd.DataFrame([sent, sent, {**sent, "message_id": "bad", "sender": "no address"}], index=[4, 5, 6])
    back = scorer.observe(replay, as_of=T_NEXT)
    assert list(zip(back.index, back["reject_reason"])) == [(4, "before_snapshot"), (5, "before_snapshot"),
                                                            (6, "invalid_address")]
    verdict = {**sent, "label": "attack", "labeled_at": "2024-05-06T08:00Z"}  # known after the snapshot: counts
    back = scorer.observe(pd.DataFrame([sent, verdict], index=[8, 9]), as_of=T_NEXT)
    assert back.index.tolist() == [8] and back["label"].isna().all()
    probe = {**sent, "message_id": "P", "timestamp": "2024-05-06T09:00Z"}
    assert scorer.score_one(probe)["sender_attack_messages"] == 1
    # Copies are told apart by their ids as validation reads them: the verdict of '9 ' beside '9' was rejected
    # as a duplicate_message_id, its label lost.
    scorer = _acme_scorer()
    fresh = {**sent, "message_id": "9", "timestamp": "2024-05-06T09:00Z"}
    assert scorer.observe(pd.DataFrame([fresh, {**verdict, "message_id": "9 ", "timestamp": "2024-05-06T09:00Z",
                                                "labeled_at": "2024-05-06T10:00Z"}]),
                          as_of=T_NEXT).empty
    assert scorer.score_one({**probe, "timestamp": "2024-05-07T09:00Z"})["sender_attack_messages"] == 1


def test_a_second_message_reusing_an_id_in_one_batch_comes_back_as_scoring_rejects_it() -> None:
    # The copies of an id were merged, every column from the latest: an attacker's twin of a vendor's message
    # (his own sender) made his address known, the vendor's message uncounted, and nothing came back, while
    # score() kept the first copy and rejected the twin.
    vendor = {"tenant_id": "acme", "message_id": "<m1@vendor.com>", "timestamp": "2024-05-06T10:00Z",
              "sender": "ann@vendor.com", "recipients": "cy@acme.com"}
    twin = {**vendor, "timestamp": "2024-05-06T10:01Z", "sender": "eve@evil.com"}
    batch = pd.DataFrame([vendor, twin], index=[3, 4])
    scorer = _acme_scorer()
    scored = scorer.validate(batch, strict=False)
    back = scorer.observe(batch, as_of=T_NEXT)
    assert back.index.tolist() == scored.rejects.index.tolist() == [4]
    assert back[["reject_row", "reject_column", "reject_reason", "reject_value", "sender"]].values.tolist() == [
        [1, "message_id", "duplicate_message_id", "<m1@vendor.com>", "eve@evil.com"]]
    message = back["reject_message"].iloc[0]
    assert "'ann@vendor.com' at 2024-05-06T10:00:00+00:00" in message and "differs in sender and timestamp" in message
    assert "give distinct messages distinct ids" in message
    # Served: the message scoring kept, the twin nowhere.
    _assert_served_equals_rebuild(scorer, pd.concat([_acme_history(), pd.DataFrame([vendor])]), T_NEXT, ACME)
    assert scorer.score_one({**twin, "message_id": "P", "timestamp": "2024-05-06T12:00Z"})["sender_is_new"] == 1


def test_a_second_message_reusing_an_id_in_a_later_call_comes_back_and_copies_still_merge() -> None:
    # A twin observed after the first copy (held in the overlay's parts) was merged in at the next lookup.
    vendor = {"tenant_id": "acme", "message_id": "M1", "timestamp": "2024-05-06T10:00Z",
              "sender": "ann@vendor.com", "recipients": "cy@acme.com"}
    scorer = _acme_scorer()
    assert scorer.observe(pd.DataFrame([vendor]), as_of="2024-05-06T11:00Z").empty
    twins = {"sender": {**vendor, "sender": "eve@evil.com"},  # his own sender, same time
             "timestamp": {**vendor, "timestamp": "2024-05-06T10:30Z"}}  # same sender, another time
    for differs, twin in twins.items():
        back = scorer.observe(pd.DataFrame([twin]), as_of="2024-05-06T11:00Z")
        assert back["reject_reason"].tolist() == ["duplicate_message_id"], differs
        assert f"differs in {differs}," in back["reject_message"].iloc[0]
    # One row per recipient (the twin's rows), and validated messages: the same.
    rows = pd.DataFrame([twins["sender"]] * 2).drop(columns="recipients").assign(recipient=["cy@acme.com",
                                                                                            "x@acme.com"])
    back = scorer.observe(rows, as_of="2024-05-06T11:00Z")
    assert back.index.tolist() == [0, 1] and set(back["reject_reason"]) == {"duplicate_message_id"}
    back = scorer.observe(scorer.validate(pd.DataFrame([twins["sender"]])), as_of="2024-05-06T11:00Z")
    assert back["reject_reason"].tolist() == ["duplicate_message_id"]
    # Copies of the message still merge: its verdict row, a replay, a recipient added in another call.
    verdict = {**vendor, "label": "attack", "labeled_at": "2024-05-06T12:00Z"}
    for copy in (verdict, vendor, {**vendor, "recipients": "di@acme.com"}):
        assert scorer.observe(pd.DataFrame([copy]), as_of=T_NEXT).empty
    merged = {**verdict, "recipients": "cy@acme.com; di@acme.com"}
    _assert_served_equals_rebuild(scorer, pd.concat([_acme_history(), pd.DataFrame([merged])]), T_NEXT, ACME)
    assert scorer.score_one({**twins["sender"], "message_id": "P", "timestamp": "2024-05-06T13:00Z"})[
        "sender_is_new"] == 1


@pytest.mark.parametrize("ledger", [True, False])
def test_a_reversed_label_of_a_message_a_reloaded_snapshot_counted_replaces_it_or_comes_back_without_a_ledger(
        tmp_path, ledger) -> None:
    frame = _two_tenants()
    store, scorer = _store_scorer(tmp_path, frame)
    safe = frame[frame["message_id"] == "an1"].assign(label="safe", labeled_at="2024-05-04T02:00Z")
    assert scorer.observe(safe, as_of=T_END).empty  # the user's verdict, observed
    with_safe = pd.concat([frame[frame["message_id"] != "an1"], safe])
    snapshot = build_baselines(validate(with_safe, tenants=TWO), as_of=T_MID, config=CONFIG)["a"]
    if not ledger:  # as written before snapshots kept a ledger of counted labels
        snapshot.state.labelled = None
    store.publish(snapshot)
    assert scorer.reload() == ["a"]  # its snapshot counts the message and its label now
    attack = safe.assign(label="attack", labeled_at="2024-05-04T09:00Z")  # the SOC reverses it, after T_MID
    back = scorer.observe(attack, as_of=T_END)
    if ledger:  # the snapshot's ledger says which label to retract: served as a rebuild over the reversal
        assert back.empty
        _assert_served_equals_rebuild(scorer, pd.concat([frame[frame["message_id"] != "an1"], attack]), T_END, TWO)
    else:
        assert back[["reject_column", "reject_reason", "reject_value"]].values.tolist() == [
            ["label", "label_counted", "attack"]]
        assert "already counted this message's label 'safe'" in back["reject_message"].iloc[0]
        # Served: one label for the message, the one counted (a rebuild over the reversed label counts 'attack').
        _assert_served_equals_rebuild(scorer, with_safe, T_END, TWO)
    # Tenants never mix: the same id in tenant b is another message.
    assert scorer.observe(attack.assign(tenant_id="b", recipients="cy@b.com"), as_of=T_END).empty


@pytest.mark.parametrize("ledger", [True, False])
def test_an_early_relabel_across_a_reload_is_neither_counted_twice_nor_a_crash(tmp_path, monkeypatch, ledger) -> None:
    # A relabel observed ahead of its labeled_at, then a reload to a snapshot as of after the overlay's as_of:
    # a call straddling the reload counted the message twice (the mail given back unmerged) or lost its verdict,
    # and without a label ledger the next observe of a label for it crashed (the covered labels indexed twice).
    import commgraph.signals._scorer as scorer_module

    def build(frame: pd.DataFrame, at: str):
        snap = build_baselines(validate(frame, tenants=ACME), as_of=at, config=CONFIG)["acme"]
        if not ledger:
            snap.state.labelled = None  # as written before snapshots kept a ledger
        return snap

    history = _acme_history()
    store = SnapshotStore(tmp_path / "store")
    store.publish(build(history, "2024-05-05T00:00Z"))
    scorer = Scorer.from_store(store, tenant_configs=ACME)
    sent = {"tenant_id": "acme", "message_id": "M", "timestamp": "2024-05-05T09:00Z", "sender": "eve@evil.com",
            "recipients": "cy@acme.com"}
    attack = {**sent, "label": "attack", "labeled_at": "2024-05-05T10:00Z"}
    spam = {**sent, "label": "spam", "labeled_at": "2024-05-05T13:00Z"}  # observed ahead of its labeled_at
    at = "2024-05-05T12:00Z"
    assert scorer.observe(pd.DataFrame([attack]), as_of=at).empty and scorer.observe(pd.DataFrame([spam]),
                                                                                     as_of=at).empty
    probe = pd.DataFrame([{**sent, "message_id": "P", "timestamp": "2024-05-05T12:30Z"}])
    want = Scorer({"acme": build(pd.concat([history, pd.DataFrame([attack])]), at)},
                  tenant_configs=ACME).score(probe)
    pd.testing.assert_frame_equal(scorer.score(probe), want)
    store.publish(build(pd.concat([history, pd.DataFrame([spam])]), "2024-05-05T14:00Z"))
    from_messages = scorer_module.SignalBatch.from_messages

    def reload_meanwhile(messages):
        monkeypatch.setattr(scorer_module.SignalBatch, "from_messages", from_messages)
        assert scorer.reload() == ["acme"]
        return from_messages(messages)

    monkeypatch.setattr(scorer_module.SignalBatch, "from_messages", staticmethod(reload_meanwhile))
    pd.testing.assert_frame_equal(scorer.score(probe), want)  # the call that read the replaced snapshot
    back = scorer.observe(pd.DataFrame([{**sent, "label": "safe", "labeled_at": "2024-05-05T15:00Z"}]),
                          as_of="2024-05-05T16:00Z")
    assert back["reject_reason"].tolist() == ([] if ledger else ["label_counted"])


def test_an_as_of_before_the_served_snapshots_serves_the_snapshot_as_it_is() -> None:
    # An engine whose clock is behind the snapshot it serves: nothing the snapshot covers is counted twice, its
    # mail comes back saying why, and an observe past the snapshot's as_of then counts as always.
    scorer, plain = _acme_scorer(), _acme_scorer()
    early = T_DAY - pd.Timedelta(hours=2)
    mail = _message(timestamp=(early - HOUR).isoformat(), sender="new@elsewhere.com")
    back = scorer.observe(mail, as_of=early)
    assert back["reject_reason"].tolist() == ["before_snapshot"] and scorer.overlay.pending() == {}
    later = _message(message_id="N", timestamp=(T_DAY + HOUR).isoformat(), sender="new@elsewhere.com")
    pd.testing.assert_frame_equal(scorer.score(later), plain.score(later))
    assert scorer.observe(later, as_of=T_DAY + 2 * HOUR).empty
    assert scorer.score_one(later.iloc[0].to_dict() | {"message_id": "O"})["sender_is_new"] == 0


def test_a_domain_that_began_sending_as_the_tenant_since_the_snapshot_is_its_own_when_scoring() -> None:
    # A scorer without tenant configurations reads a tenant's own domains off what it serves: after observing
    # acme-labs.com's internal and outbound mail, mail from it without a direction is internal or outbound, as
    # with the snapshot a rebuild gives (it was read as inbound: an impersonation of an internal name; and mail
    # from it to an outsider failed the whole batch as undecidable).
    t, t2 = pd.Timestamp("2025-01-10T00:00Z"), pd.Timestamp("2025-01-12T00:00Z")
    rows = []
    for i in range(60):
        ts, out = t - pd.Timedelta(days=5) + i * 2 * HOUR, i % 2 == 0
        rows += [{"message_id": f"a{i}", "timestamp": ts, "sender": f"Ann {i % 5} <ann{i % 5}@acme.com>",
                  "recipients": f"x{i % 9}@partner.example" if out else f"bob{i % 7}@acme.com",
                  "direction": "outbound" if out else "internal"},
                 {"message_id": f"b{i}", "timestamp": ts + HOUR, "direction": "inbound",
                  "sender": f"x{i % 9}@partner.example", "recipients": f"ann{i % 5}@acme.com"}]
    rows += [{"message_id": f"lab{i}", "timestamp": t + (i + 1) * HOUR,
              "sender": f"Lab Person {i % 3} <lab{i % 3}@acme-labs.com>",
              "recipients": f"x{i % 9}@partner.example" if i % 2 == 0 else f"bob{i % 7}@acme.com",
              "direction": "outbound" if i % 2 == 0 else "internal"} for i in range(10)]
    mail = pd.DataFrame(rows).assign(tenant_id="acme")
    history = validate(mail)
    engine = Scorer(build_baselines(history, as_of=t, config=CONFIG))
    assert engine.observe(mail[mail["timestamp"] >= t], as_of=t2).empty
    rebuilt = Scorer(build_baselines(history, as_of=t2, config=CONFIG))
    probes = pd.DataFrame({"tenant_id": "acme", "message_id": ["p1", "p2"], "timestamp": "2025-01-12T01:00Z",
                           "sender": ["Lab Person 1 <lab1@acme-labs.com>", "Lab Person 2 <lab2@acme-labs.com>"],
                           "recipients": ["bob3@acme.com", "x4@partner.example"]})
    scored = engine.score(probes)
    pd.testing.assert_frame_equal(scored, rebuilt.score(probes))
    assert scored["display_name_matches_internal"].tolist() == [0, 0]
    for probe in probes.to_dict("records"):
        pd.testing.assert_series_equal(pd.Series(engine.score_one(probe)), pd.Series(rebuilt.score_one(probe)))
    pd.testing.assert_frame_equal(explain(probes.iloc[0].to_dict(), engine).frame,
                                  explain(probes.iloc[0].to_dict(), rebuilt).frame)


def test_a_twin_of_a_message_set_aside_before_the_snapshot_is_rejected_in_a_later_call_too() -> None:
    # The first copy, sent before the served snapshot's as_of, was set aside (before_snapshot) and never held, so a
    # later call's twin had nothing to compare with and was merged: its sender became known. In one call it was
    # rejected as a twin; now in two calls as well.
    from commgraph.baselines._snapshot import _example

    cfg = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    first = dict(tenant_id="acme", message_id="A", timestamp="2024-05-03T10:00Z", sender="x@a.com",
                 recipients="cy@acme.com")
    twin = dict(first, timestamp="2024-05-04T12:00Z", sender="eve@evil.com")
    scorer = Scorer({"acme": _example()}, tenant_configs=cfg)
    assert scorer.observe(pd.DataFrame([first]), as_of="2024-05-05")["reject_reason"].tolist() == ["before_snapshot"]
    assert scorer.observe(pd.DataFrame([twin]), as_of="2024-05-05")["reject_reason"].tolist() == [
        "duplicate_message_id"]
    later = dict(twin, message_id="Z", timestamp="2024-05-05T10:00Z")
    assert scorer.score_one(later)["sender_is_new"] == 1
