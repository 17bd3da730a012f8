"""A label that changes after a snapshot counted it (a user's report overturned by an analyst, spam found to
be an attack): the refresh retracts the old label where it was counted and counts the new one, so it equals a
rebuild over the corrected archive, which holds only the new label."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import mail_frames

from commgraph.baselines import (
    BaselineConfig, NoLabelLedgerWarning, build_baselines, refresh, refresh_many, run_refresh,
)
from commgraph.baselines._snapshot import table_differences
from commgraph.baselines._store import LEDGER_FILE, SnapshotStore
from commgraph.graph import generate, validate

START = pd.Timestamp("2024-03-01", tz="UTC")
TENANTS = [{"tenant_id": "acme", "own_domains": ["acme.com"]}, {"tenant_id": "beta", "own_domains": ["beta.org"]}]
ADDRESSES = ["ann@acme.com", "bob@acme.com", "eve@evil.com", "v@vendor.com", "x@beta.org", "y@beta.org"]
# Short windows and settle delay: relabelled mail has often left every window, or is still settling.
CONFIG = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d", min_prior_entities=3,
                        min_prior_labels=2)
LABELS = ("safe", "attack", "spam")
SECRETS = {"acme": b"acme-secret-0123", "beta": b"beta-secret-01234"}


def _validate(frame: pd.DataFrame):
    return validate(frame, tenants=TENANTS, strict=False)


def _archive_at(frame: pd.DataFrame, changes: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """The archive as it reads at ``now``: each message with its latest label changed before ``now``."""
    out = frame.copy()
    done = changes[changes["changed_at"] < now]
    out.loc[done.index, "label"] = done["label"]
    out.loc[done.index, "labeled_at"] = done["changed_at"]
    return out


def _read_since(archive: pd.DataFrame, prev: pd.Timestamp, now: pd.Timestamp):
    """What an incremental job reads: the mail sent in [prev, now) and older mail labelled (or unlabelled) since."""
    sent = (archive["timestamp"] >= prev) & (archive["timestamp"] < now)
    labelled = archive["labeled_at"] >= prev  # (a label set, changed or withdrawn since; as the readers filter)
    return _validate(archive[sent | labelled]) if (sent | labelled).any() else None


@st.composite
def relabelled(draw):
    """Mail, and label changes of some of it: a new label (or the same one again, or none: withdrawn) some hours
    to days after the message's first label was known (or after the message, for one that had none)."""
    frame = draw(mail_frames(start=START, tenants=["acme", "acme", "beta"], addresses=ADDRESSES, max_messages=30,
                             step_minutes=60, labels=(None, "safe", "safe", "attack", "spam")))
    picks = draw(st.lists(st.integers(0, len(frame) - 1), unique=True, max_size=max(1, len(frame) // 2)))
    rows = []
    for i in picks:
        known = frame.at[i, "labeled_at"]
        after = frame.at[i, "timestamp"] if pd.isna(known) else known
        rows.append({"index": i, "label": draw(st.sampled_from(LABELS + (None,))),
                     "changed_at": after + pd.Timedelta(hours=draw(st.integers(1, 5 * 24)))})
    changes = pd.DataFrame(rows, columns=["index", "label", "changed_at"]).set_index("index")
    return frame, changes


@settings(max_examples=60, deadline=None)
@given(case=relabelled(), hours=st.lists(st.integers(12, 12 * 24), min_size=2, max_size=5, unique=True),
       together=st.booleans(), stored=st.booleans(), privacy=st.booleans())
def test_refreshes_across_label_changes_equal_a_rebuild_of_the_corrected_archive(case, hours, together,
                                                                                stored, privacy) -> None:
    frame, changes = case
    config = dataclasses.replace(CONFIG, privacy=privacy)
    secrets = SECRETS if privacy else None
    times = [START + pd.Timedelta(hours=h) for h in sorted(hours)]
    first = _validate(_archive_at(frame, changes, times[0]))
    snaps = build_baselines(first, as_of=times[0], config=config, secrets=secrets)
    final = _archive_at(frame, changes, times[-1])
    full = build_baselines(_validate(final), as_of=times[-1], config=config, secrets=secrets)
    pooled = next(iter(full.values())).priors["global"] if full else None
    for prev, now in zip(times, times[1:]):
        if stored:  # the state as a job loads it from the store: decoded from its Arrow tables
            for s in snaps.values():
                s.state_tables()
                s.state = None
        new = _read_since(_archive_at(frame, changes, now), prev, now)
        if together:
            snaps = refresh_many(snaps, new, as_of=now, global_prior=pooled, secrets=secrets)
        else:
            snaps = {t: refresh(s, new, as_of=now, global_prior=pooled, secret=(secrets or {}).get(t))
                     for t, s in snaps.items()}
    for tenant, rebuilt in full.items():
        assert table_differences(snaps[tenant], rebuilt) == [], tenant
        assert snaps[tenant].fingerprint == rebuilt.fingerprint, tenant  # each message's label once


def _one_sender(label: str | None, labeled_at: str | None, n: int = 6) -> pd.DataFrame:
    """Six messages an hour apart from eve to ann; the third carries ``label``."""
    frame = pd.DataFrame({
        "tenant_id": "acme", "message_id": [f"m{i}" for i in range(n)],
        "timestamp": [START + pd.Timedelta(hours=i) for i in range(n)], "sender": "eve@evil.com",
        "recipients": "ann@acme.com; bob@acme.com", "direction": "inbound",
        "label": [label if i == 2 else None for i in range(n)],
        "labeled_at": pd.to_datetime([labeled_at if i == 2 else None for i in range(n)], utc=True)})
    return frame


@pytest.mark.parametrize("before, after", [("attack", "safe"), ("safe", "attack"), ("spam", "spam")])
def test_a_verdict_overturned_long_after_the_mail_left_every_window_counts_once(before, after) -> None:
    # Counted as `before` on day 2; overturned on day 9, when the message is older than the longest window
    # (3 days), so only the ledger remembers what was counted.
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    snap = build_baselines(_validate(_one_sender(before, "2024-03-02")), as_of=START + pd.Timedelta(days=3),
                           config=config)["acme"]
    corrected = _one_sender(after, "2024-03-09")
    now = START + pd.Timedelta(days=10)
    refreshed = refresh(snap, _read_since(corrected, snap.as_of, now), as_of=now)
    rebuilt = build_baselines(_validate(corrected), as_of=now, config=config)["acme"]
    assert table_differences(refreshed, rebuilt) == []
    # Hand-counted: one labelled message of six, with the new label only, on the sender, the pair of each
    # recipient and each recipient; the five others presumed safe.
    expected = {f"n_{name}": int(name == after) for name in LABELS}
    sender = refreshed.table("sender").iloc[0]
    assert {c: int(sender[c]) for c in expected} == expected
    assert int(sender["n_presumed_safe"]) == 5
    for table in ("pair", "recipient"):
        rows = refreshed.table(table)
        rows = rows[rows["n_inbound"] > 0]
        assert len(rows) == 2
        assert all(rows[c].tolist() == [v, v] for c, v in expected.items()), table


def test_a_label_changed_while_the_mail_is_still_settling_withdraws_the_presumption_once() -> None:
    # Labelled on arrival, relabelled an hour later, both inside the one-day settle delay: when the message
    # settles it is not presumed safe, and nothing is presumed twice away.
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    first = _one_sender("spam", None)
    snap = build_baselines(_validate(first), as_of=START + pd.Timedelta(hours=4), config=config)["acme"]
    corrected = _one_sender("attack", "2024-03-01T05:00Z")
    mid = START + pd.Timedelta(hours=8)
    snap = refresh(snap, _read_since(corrected, snap.as_of, mid), as_of=mid)
    end = START + pd.Timedelta(days=3)
    snap = refresh(snap, _read_since(corrected, mid, end), as_of=end)
    rebuilt = build_baselines(_validate(corrected), as_of=end, config=config)["acme"]
    assert table_differences(snap, rebuilt) == []
    sender = snap.table("sender").iloc[0]
    assert (int(sender["n_attack"]), int(sender["n_spam"]), int(sender["n_presumed_safe"])) == (1, 0, 5)


@pytest.mark.parametrize("together", [False, True])
def test_labels_of_older_mail_for_a_state_without_a_ledger_warn_with_the_fix(together) -> None:
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    snap = build_baselines(_validate(_one_sender("spam", "2024-03-01T03:00Z")), as_of=START + pd.Timedelta(hours=4),
                           config=config)["acme"]
    snap.state.labelled = None  # as a snapshot written before the ledger decodes

    def run(new, now):
        return refresh_many({"acme": snap}, new, as_of=now)["acme"] if together else refresh(snap, new, as_of=now)

    later = _one_sender("spam", "2024-03-01T03:00Z", n=8)  # new mail only: nothing to retract, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = run(_read_since(later, snap.as_of, START + pd.Timedelta(hours=8)), START + pd.Timedelta(hours=8))
    assert quiet.tenant_state().labelled is None  # (what it counted before is still unknown)
    changed = _one_sender("attack", "2024-03-01T05:00Z")
    with pytest.warns(NoLabelLedgerWarning, match="again in full"):
        run(_read_since(changed, snap.as_of, START + pd.Timedelta(hours=8)), START + pd.Timedelta(hours=8))


def test_the_job_builds_in_full_over_a_stored_snapshot_without_a_ledger_and_refreshes_relabels(tmp_path) -> None:
    mail = generate(tenants=2, days=8, scale=0.05, random_state=5)
    frame = mail.messages.copy()
    day6, day7, day8 = (pd.Timestamp(f"2025-01-{d}T00:00Z") for d in (11, 12, 13))  # (mail from the 6th)
    labelled = frame.index[frame["label"].notna() & (frame["labeled_at"].fillna(frame["timestamp"]) < day6)]
    assert len(labelled) >= 4
    run_refresh(frame, store=tmp_path, as_of=day6, tenant_configs=mail.tenants)
    # Overturn some verdicts on the 11th: the next night's incremental run reads them as labels known since.
    corrected = frame.copy()
    flip = labelled[::3]
    corrected.loc[flip, "label"] = np.where(corrected.loc[flip, "label"] == "safe", "attack", "safe")
    corrected.loc[flip, "labeled_at"] = day6 + pd.Timedelta(hours=5)
    report = run_refresh(corrected, store=tmp_path, as_of=day7, tenant_configs=mail.tenants, incremental=True)
    assert {o.mode for o in report.outcomes} == {"incremental"}
    # Against a full run over the corrected archive (the job pools the global prior the same way).
    run_refresh(corrected, store=tmp_path / "full", as_of=day7, tenant_configs=mail.tenants)
    store, full = SnapshotStore(tmp_path), SnapshotStore(tmp_path / "full")
    for cfg in mail.tenants:
        assert not table_differences(store.load(cfg.tenant_id), full.load(cfg.tenant_id)), cfg.tenant_id
        assert LEDGER_FILE in store.manifest(cfg.tenant_id)["files"]
    # A snapshot written before ledgers (its state has none): the next incremental night builds it in full.
    old = store.load(mail.tenants[0].tenant_id)
    state = old.tenant_state()
    state.labelled = None
    old._state_tables = None
    store.publish(old)
    assert LEDGER_FILE not in store.manifest(old.tenant_id)["files"]
    report = run_refresh(corrected, store=tmp_path, as_of=day8, tenant_configs=mail.tenants, incremental=True)
    assert {o.tenant_id: o.mode for o in report.outcomes} == {mail.tenants[0].tenant_id: "full",
                                                                mail.tenants[1].tenant_id: "incremental"}
    run_refresh(corrected, store=tmp_path / "full", as_of=day8, tenant_configs=mail.tenants)
    assert all(not table_differences(store.load(c.tenant_id), full.load(c.tenant_id)) for c in mail.tenants)


def _mail(rows: list[tuple]) -> pd.DataFrame:
    """Messages of acme from (id, hour, sender, recipients, label, hour its label was known or None)."""
    frame = pd.DataFrame([{"tenant_id": "acme", "message_id": i, "timestamp": START + pd.Timedelta(hours=h),
                           "sender": s, "recipients": r, "label": label,
                           "labeled_at": None if at is None else START + pd.Timedelta(hours=at)}
                          for i, h, s, r, label, at in rows])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True)
    return frame


def test_a_message_id_reused_by_another_message_names_another_ledger_entry() -> None:
    # Ids are whatever the sender wrote: a later message with the id of a counted one (read in a later
    # period, so never merged with it) gets its first verdict; nothing of the first message's is retracted.
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    first = _mail([("<X@host>", 1, "eve@evil.com", "ann@acme.com", "attack", 2)])
    snap = build_baselines(_validate(first), as_of=START + pd.Timedelta(hours=10), config=config)["acme"]
    reused = _mail([("<X@host>", 30, "mal@bad.com", "bob@acme.com; ann@acme.com", None, None)])
    snap = refresh(snap, _validate(reused), as_of=START + pd.Timedelta(hours=40))
    reused["label"], reused["labeled_at"] = "safe", START + pd.Timedelta(hours=45)
    snap = refresh(snap, _validate(reused), as_of=START + pd.Timedelta(hours=50))
    senders = snap.table("sender").set_index("sender")
    assert senders.loc["eve@evil.com", ["n_attack", "n_safe"]].tolist() == [1, 0]
    assert senders.loc["mal@bad.com", ["n_attack", "n_safe"]].tolist() == [0, 1]
    recipients = snap.table("recipient").set_index("recipient")
    assert recipients.loc["ann@acme.com", ["n_attack", "n_safe"]].tolist() == [1, 1]
    assert recipients.loc["bob@acme.com", ["n_attack", "n_safe"]].tolist() == [0, 1]


def _served(tmp_path):
    """A store with acme's snapshot as of 05:00 (one message), a scorer serving it, and the mail it then
    observes: an attack sent at 06:00, labelled at 06:30."""
    from commgraph.signals import Scorer

    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    store = SnapshotStore(tmp_path)
    base = _mail([("a0", 1, "v@vendor.com", "ann@acme.com", None, None)])
    store.publish(build_baselines(_validate(base), as_of=START + pd.Timedelta(hours=5), config=config)["acme"])
    return config, store, Scorer.from_store(store), base, _mail([("m0", 6, "eve@evil.com", "ann@acme.com",
                                                                  "attack", 6.5)])


@pytest.mark.parametrize("new_label", ["safe", None])  # reversed, or withdrawn
def test_the_live_overlay_takes_a_reversed_verdict_of_a_message_a_reloaded_snapshot_counted(tmp_path,
                                                                                           new_label) -> None:
    config, store, scorer, base, attack = _served(tmp_path)
    assert not len(scorer.observe(_validate(attack), as_of=START + pd.Timedelta(hours=8)))
    # The night's job counts m0 as an attack; the engine reloads; then an analyst clears it.
    store.publish(build_baselines(_validate(pd.concat([base, attack], ignore_index=True)),
                                  as_of=START + pd.Timedelta(hours=10), config=config)["acme"])
    scorer.reload()
    cleared = attack.assign(label=new_label, labeled_at=START + pd.Timedelta(hours=11))
    assert not len(scorer.observe(_validate(cleared), as_of=START + pd.Timedelta(hours=12)))  # kept, not set aside
    served = scorer._overlay.view("acme", scorer._loaded.views["acme"]).snapshot
    rebuilt = build_baselines(_validate(pd.concat([base, cleared], ignore_index=True)),
                              as_of=START + pd.Timedelta(hours=12), config=config)["acme"]
    assert table_differences(served, rebuilt) == []


@pytest.mark.parametrize("labelled_at", [None, "2024-03-01T03:00Z"])  # on arrival, or as a later label event
@pytest.mark.parametrize("withdrawn_after_hours", [5, 60])  # while the mail still settles, or after
def test_a_withdrawn_label_is_retracted_and_gives_the_presumption_back_when_the_mail_settles(
        labelled_at, withdrawn_after_hours) -> None:
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    snap = build_baselines(_validate(_one_sender("spam", labelled_at)), as_of=START + pd.Timedelta(hours=4),
                           config=config)["acme"]
    withdrawn = _one_sender("spam", None)  # the label set back to none, at the time labeled_at says
    withdrawn["label"] = None
    withdrawn.loc[2, "labeled_at"] = START + pd.Timedelta(hours=withdrawn_after_hours)
    times = [snap.as_of, START + pd.Timedelta(hours=withdrawn_after_hours + 3), START + pd.Timedelta(days=4)]
    for prev, now in zip(times, times[1:]):
        snap = refresh(snap, _read_since(withdrawn, prev, now), as_of=now)
    rebuilt = build_baselines(_validate(withdrawn), as_of=times[-1], config=config)["acme"]
    assert table_differences(snap, rebuilt) == []
    assert snap.fingerprint == rebuilt.fingerprint
    sender = snap.table("sender").iloc[0]
    # Hand-counted: no label left, and all six messages settled and presumed safe.
    assert [int(sender[c]) for c in ("n_safe", "n_attack", "n_spam", "n_presumed_safe")] == [0, 0, 0, 6]
    assert not len(snap.tenant_state().labelled["key"])  # the message left the ledger


def test_the_withdrawal_of_a_label_never_counted_adds_nothing() -> None:
    # Mail archived late without a label but with a recent labeled_at (or labelled and withdrawn within one
    # period): a label event with nothing to retract, which must not add empty rows for its sender and pair.
    config = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d")
    first = _mail([("a0", 1, "v@vendor.com", "ann@acme.com", None, None)])
    snap = build_baselines(_validate(first), as_of=START + pd.Timedelta(hours=10), config=config)["acme"]
    late = _mail([("a0", 1, "v@vendor.com", "ann@acme.com", None, None),
                  ("x9", 5, "new@phish.com", "carl@acme.com", None, None)])
    late["labeled_at"] = pd.to_datetime([None, START + pd.Timedelta(hours=12)], utc=True)
    refreshed = refresh(snap, _read_since(late, snap.as_of, START + pd.Timedelta(hours=20)),
                        as_of=START + pd.Timedelta(hours=20))
    assert refreshed.table("sender")["sender"].tolist() == ["v@vendor.com"]
    assert refreshed.table("pair")["recipient"].tolist() == ["ann@acme.com"]
    assert table_differences(refreshed, refresh(snap, None, as_of=START + pd.Timedelta(hours=20))) == []


def test_the_live_overlay_merges_a_verdict_and_its_withdrawal_observed_before_any_reload(tmp_path) -> None:
    config, store, scorer, base, attack = _served(tmp_path)
    withdrawn = attack.assign(label=None, labeled_at=START + pd.Timedelta(hours=7))
    for batch in (attack, withdrawn):  # the copies merge: the later labelling (the withdrawal) wins
        assert not len(scorer.observe(_validate(batch), as_of=START + pd.Timedelta(hours=8)))
    served = scorer._overlay.view("acme", scorer._loaded.views["acme"]).snapshot
    rebuilt = build_baselines(_validate(pd.concat([base, withdrawn], ignore_index=True)),
                              as_of=START + pd.Timedelta(hours=8), config=config)["acme"]
    assert table_differences(served, rebuilt) == []
    assert served.table("sender").set_index("sender").loc["eve@evil.com", "n_attack"] == 0
