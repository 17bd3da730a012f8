"""Scoring privacy-mode snapshots: every serving path keys a privacy tenant's mail with its own secret.

Reference: the same history built without privacy and scored the same way.
Every column must be equal except exactly the documented losses
(:data:`PRIVACY_LOSSES`, the look-alike columns); a tenant without its
secret, with a wrong one, or given a secret it does not need is refused by
name, and the secret never shows.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines, refresh
from commgraph.baselines._snapshot import table_differences
from commgraph.graph import CommGraphError, ConfigError, stable_key, validate
from conftest import generated_raw
from commgraph.signals import LookalikeSignals, ReloadWarning, Scorer, SignalSet, backfill, explain
from commgraph.signals._cli import main
from commgraph.signals._privacy import PRIVACY_LOSSES, TenantKeys
from commgraph.signals._view import SnapshotView

from test_overlay import CONFIG, _same_frames, observed_batches, probe_mail
from test_overlay import _mapping as overlay_mapping
from test_refresh_privacy import secrets_file
from test_scorer import _mapping, _same

PRIVATE = CONFIG.evolve(privacy=True)
README = Path(__file__).resolve().parents[1] / "README.md"


def _secrets(tenants) -> dict[str, bytes]:
    return {t: bytes([17 * (i + 1) % 256]) * (16 + 8 * i) for i, t in enumerate(sorted(tenants))}


@pytest.fixture(scope="module")
def world():
    g, raw = generated_raw(tenants=3, days=16, random_state=7, scale=0.1, attack_rate=0.04)
    cut = raw["timestamp"].quantile(0.75).ceil("h")
    history = validate(raw[raw["timestamp"] < cut], tenants=g.tenants)
    secrets = _secrets(history.tenants)
    plain = build_baselines(history, as_of=cut, config=CONFIG)
    private = build_baselines(history, as_of=cut, config=PRIVATE, secrets=secrets)
    later = raw[raw["timestamp"] >= cut].reset_index(drop=True)
    return g, raw, plain, private, secrets, later, cut


def _differing(got: pd.DataFrame, want: pd.DataFrame, names) -> set[str]:
    return set(_same_frames(got, want, names))


def test_each_path_equals_the_plain_snapshot_except_the_documented_losses(world) -> None:
    g, _, plain, private, secrets, later, _ = world
    reference = Scorer(plain, tenant_configs=g.tenants)
    scorer = Scorer(private, tenant_configs=g.tenants, secrets=secrets)
    names = scorer.signal_set.names
    batch = validate(later, tenants=g.tenants)
    assert batch.frame["tenant_id"].nunique() == 3
    for level in ("edge", "message"):
        got, want = scorer.score(batch, level=level), reference.score(batch, level=level)
        # Exactly the documented columns differ (and they do differ here: the mail has look-alike domains).
        assert _differing(got, want, names) == set(PRIVACY_LOSSES), level
        assert (got["lookalike_domain_distance"] == LookalikeSignals.signals[0].default).all()
        assert (got["lookalike_domain_is_close"] == 0).all()
    X, _ = scorer.score_array(batch)
    Y, _ = reference.score_array(batch)
    same = [n for i, n in enumerate(names) if np.array_equal(X[:, i], Y[:, i], equal_nan=True)]
    assert set(names) - set(same) == set(PRIVACY_LOSSES)
    # The single-message path: the same columns, and equal to the batch on the privacy tenant.
    sample = later.sample(150, random_state=1)
    private_batch = scorer.score(validate(sample, tenants=g.tenants), level="message")
    for i in range(len(sample)):
        one, ref = scorer.score_one(_mapping(sample.iloc[i])), reference.score_one(_mapping(sample.iloc[i]))
        assert {n for n in names if not _same(one[n], ref[n])} <= set(PRIVACY_LOSSES)
        assert [n for n in names if not _same(one[n], private_batch.iloc[i][n])] == []


def test_signal_set_compute_takes_views_made_with_the_secret(world) -> None:
    g, _, plain, private, secrets, later, _ = world
    batch = validate(later.head(400), tenants=g.tenants)
    with pytest.raises(ConfigError, match="privacy mode .* pass it"):
        SignalSet().compute(batch, private)
    views = {t: SnapshotView(s, secret=secrets[t]) for t, s in private.items()}
    got, want = SignalSet().compute(batch, views), SignalSet().compute(batch, plain)
    assert _differing(got, want, SignalSet().names) == set(PRIVACY_LOSSES)


def test_the_documentation_names_exactly_the_signals_that_lose_something() -> None:
    specs = {s.name: s for s in SignalSet().specs}
    readme = README.read_text()
    for name in specs:
        documented = "privacy" in specs[name].description
        assert documented == (name in PRIVACY_LOSSES), name
    for name in PRIVACY_LOSSES:
        assert f"`{name}`" in readme and f"``{name}``" in Scorer.__doc__, name
    assert "not supported yet" not in readme


def _same_addresses_as(frame: pd.DataFrame, tenant: str) -> pd.DataFrame:
    return frame.assign(tenant_id=tenant, message_id=tenant + "-" + frame["message_id"].astype(str))


def test_two_privacy_tenants_with_the_same_addresses_never_share_a_secret(world) -> None:
    """Tenant B is tenant A's mail under another id, keyed with another secret; a plain tenant rides along."""
    g, raw, _, _, _, _, cut = world
    a, c = sorted(raw["tenant_id"].unique())[:2]
    mine = raw[raw["tenant_id"] == a]
    config = next(t for t in g.tenants if t.tenant_id == a)
    configs = [config, dataclasses.replace(config, tenant_id="b-copy"), next(t for t in g.tenants if t.tenant_id == c)]
    both = pd.concat([mine, _same_addresses_as(mine, "b-copy"), raw[raw["tenant_id"] == c]], ignore_index=True)
    history = validate(both[both["timestamp"] < cut], tenants=configs)
    secrets = {a: b"\x01" * 32, "b-copy": b"\x02" * 32}
    private = build_baselines(history.for_tenant(a), as_of=cut, config=PRIVATE, secrets=secrets) | \
        build_baselines(history.for_tenant("b-copy"), as_of=cut, config=PRIVATE, secrets=secrets)
    plain = build_baselines(history, as_of=cut, config=CONFIG)
    # The same addresses, other keys: nothing of one tenant's snapshot can be found with the other's keys.
    keys_a, keys_b = (set(private[t].column("sender", "sender_key").tolist()) for t in (a, "b-copy"))
    assert len(keys_a) == len(keys_b) > 0 and not keys_a & keys_b
    scorer = Scorer({**private, c: plain[c]}, tenant_configs=configs, secrets=secrets)
    reference = Scorer(plain, tenant_configs=configs)
    later = both[both["timestamp"] >= cut].sample(frac=1.0, random_state=2)  # tenants interleaved in one batch
    batch = validate(later, tenants=configs)
    got, want = scorer.score(batch, level="message"), reference.score(batch, level="message")
    names = scorer.signal_set.names
    for tenant, losses in ((a, set(PRIVACY_LOSSES)), ("b-copy", set(PRIVACY_LOSSES)), (c, set())):
        rows = (got["tenant_id"] == tenant).to_numpy()
        assert rows.sum() > 50
        assert _differing(got[rows], want[rows], names) <= losses, tenant
        # Keyed with the other tenant's secret, every sender would be new: the tenant's own were known.
        assert got.loc[rows, "sender_is_new"].mean() < 0.5, tenant
    # Tenant B's copy of A's mail scores exactly as A's (its own secret, its own equal history).
    rows_a, rows_b = (got["tenant_id"] == a).to_numpy(), (got["tenant_id"] == "b-copy").to_numpy()
    order_a = np.argsort(got.loc[rows_a, "message_id"].to_numpy())
    order_b = np.argsort(got.loc[rows_b, "message_id"].str.removeprefix("b-copy-").to_numpy())
    assert _differing(got[rows_a].iloc[order_a].reset_index(drop=True),
                      got[rows_b].iloc[order_b].reset_index(drop=True), names) == set()
    for i in range(0, len(later), 41):
        row = later.iloc[i]
        one = scorer.score_one(_mapping(row))
        expected = got[got["message_id"] == row["message_id"]].iloc[0]
        assert [n for n in names if not _same(one[n], expected[n])] == []
    # Swapped secrets are refused, naming the tenant, never showing a secret.
    with pytest.raises(ConfigError, match=f"tenant '{a}': the secret given is not the one") as info:
        Scorer(private, secrets={a: secrets["b-copy"], "b-copy": secrets[a]})
    assert secrets[a].hex() not in str(info.value) and repr(secrets[a]) not in str(info.value)


def test_a_missing_wrong_or_needless_secret_is_refused_by_name_and_never_shown(world) -> None:
    g, _, plain, private, secrets, _, _ = world
    tenant = sorted(private)[0]
    shown = []
    with pytest.raises(ConfigError, match=f"tenant '{tenant}': its snapshot is in privacy mode") as info:
        Scorer(private, secrets={t: s for t, s in secrets.items() if t != tenant})
    shown.append(str(info.value))
    with pytest.raises(ConfigError, match=f"tenant '{tenant}': the secret given is not the one") as info:
        Scorer(private, secrets={**secrets, tenant: b"\x07" * 32})
    shown.append(str(info.value))
    with pytest.raises(ConfigError, match=f"tenant '{tenant}': a secret was given but its snapshot is not in "
                                          "privacy mode") as info:
        Scorer(plain, secrets={tenant: secrets[tenant]})
    shown.append(str(info.value))
    with pytest.raises(ConfigError, match="has 5 bytes"):
        Scorer(private, secrets={**secrets, tenant: b"short"})
    other = sorted(private)[1]
    with pytest.raises(ConfigError, match=f"keying of tenant '{other}' was given for the snapshot of tenant"):
        SnapshotView(private[tenant], secret=TenantKeys(other, secrets[tenant]))
    scorer = Scorer(private, secrets=secrets)
    view = scorer._loaded.views[tenant]
    shown += [repr(scorer), repr(view), repr(view.keys), str(vars(scorer)), repr(scorer._loaded)]
    assert "privacy mode" in repr(view)
    for secret in secrets.values():
        for text in shown:
            assert secret.hex() not in text and repr(secret) not in text and secret.decode("latin-1") not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(view.keys)


def test_tenant_keys_equal_stable_key_and_stay_equal_when_the_memo_turns_over() -> None:
    keys = TenantKeys("acme", b"k" * 24)
    keys._memo.limit = keys._names.limit = 4  # a tiny bound: generations turn over every few strings
    values = [f"user{i % 13}@vendor{i % 5}.com" for i in range(200)]
    expected = [stable_key(v, secret=b"k" * 24) for v in values]
    assert [keys.key(v) for v in values] == expected
    assert keys.keys(values + [None]).tolist() == expected + [0]
    assert len(keys._memo.new) <= 4 and len(keys._memo.old) <= 4
    names = ["Ann  Lee", "ann lee", "Bob", "   ", None]
    assert [keys.name_key(n) for n in names * 3] == [stable_key("ann lee", secret=b"k" * 24)] * 2 + [
        stable_key("bob", secret=b"k" * 24), 0, 0] + [stable_key("ann lee", secret=b"k" * 24)] * 2 + [
        stable_key("bob", secret=b"k" * 24), 0, 0] + [stable_key("ann lee", secret=b"k" * 24)] * 2 + [
        stable_key("bob", secret=b"k" * 24), 0, 0]


def test_observed_mail_on_privacy_tenants_equals_the_privacy_snapshot_built_later(world) -> None:
    g, raw, _, _, _, _, _ = world
    history = validate(raw, tenants=g.tenants)
    secrets = _secrets(history.tenants)
    start = raw["timestamp"].min().ceil("D")
    t, t2 = start + pd.Timedelta(days=9, hours=7), start + pd.Timedelta(days=12, hours=15)
    snaps = build_baselines(history, as_of=t, config=PRIVATE, secrets=secrets)
    plain_snaps = build_baselines(history, as_of=t, config=CONFIG)
    scorer = Scorer(snaps, tenant_configs=g.tenants, secrets=secrets)
    plain_scorer = Scorer(plain_snaps, tenant_configs=g.tenants)
    batches = observed_batches(raw, t, t2, n_batches=3, seed=4)
    for batch, as_of in zip(batches, [t + (t2 - t) * 0.4, t + (t2 - t) * 0.7, t2]):
        assert scorer.observe(batch, as_of=as_of).empty
        assert plain_scorer.observe(batch, as_of=as_of).empty
    reference_snaps = build_baselines(history, as_of=t2, config=PRIVATE, secrets=secrets)
    for tenant, snap in reference_snaps.items():
        served = scorer._view(scorer._loaded, tenant)
        assert served.snapshot.as_of == t2 and served.keys is scorer._loaded.keys[tenant]
        assert table_differences(served.snapshot, snap) == [], tenant
    reference = Scorer(reference_snaps, tenant_configs=g.tenants, secrets=secrets)
    probe = probe_mail(raw, t2, n=400)
    batch = validate(probe, tenants=g.tenants)
    names = scorer.signal_set.names
    for level in ("edge", "message"):
        got = scorer.score(batch, level=level)
        assert _differing(got, reference.score(batch, level=level), names) == set(), level
        assert _differing(got, plain_scorer.score(batch, level=level), names) == set(PRIVACY_LOSSES), level
    for i in range(0, len(probe), 9):
        one = scorer.score_one(overlay_mapping(probe.iloc[i]))
        ref, plain_one = reference.score_one(overlay_mapping(probe.iloc[i])), \
            plain_scorer.score_one(overlay_mapping(probe.iloc[i]))
        assert [n for n in names if not (_same(one[n], ref[n]) or math.isclose(one[n], ref[n], rel_tol=1e-9))] == []
        assert {n for n in names if not (_same(one[n], plain_one[n])
                                         or math.isclose(one[n], plain_one[n], rel_tol=1e-9))} <= set(PRIVACY_LOSSES)
    # explain reads the observed, keyed mail as score_one did.
    for i in range(len(probe)):  # a sender the overlay saw (its evidence found by its keyed key)
        row = overlay_mapping(probe.iloc[i])
        if scorer.score_one(row)["sender_is_new"] == 0:
            break
    frame, one = explain(row, scorer).frame.set_index("signal"), scorer.score_one(row)
    assert [n for n in names if not _same(frame.loc[n, "value"], one[n])] == []
    assert frame.loc["sender_messages_7d", "evidence"]["n_messages"] > 0


def test_explain_a_privacy_snapshot_with_its_secret(world) -> None:
    g, _, plain, private, secrets, later, _ = world
    row = _mapping(later.iloc[3])
    tenant = row["tenant_id"]
    with pytest.raises(ConfigError, match="privacy mode"):
        explain(row, private[tenant])
    e = explain(row, private[tenant], secret=secrets[tenant])
    values = e.frame.set_index("signal")["value"]
    want = explain(row, plain[tenant]).frame.set_index("signal")["value"]
    assert {n for n in values.index if not _same(values[n], want[n])} <= set(PRIVACY_LOSSES)
    with pytest.raises(ConfigError, match="'secret' parameter of explain applies to a Snapshot"):
        explain(row, Scorer(private, secrets=secrets), secret=secrets[tenant])


def _rebuilt(snapshot, history, as_of, secret):
    return build_baselines(history.for_tenant(snapshot.tenant_id), as_of=as_of, config=PRIVATE,
                           secrets={snapshot.tenant_id: secret})[snapshot.tenant_id]


def test_a_rotated_secret_without_the_new_one_keeps_that_tenant_alone_on_its_snapshot(tmp_path, world) -> None:
    g, raw, plain, private, secrets, later, cut = world
    history = validate(raw, tenants=g.tenants)
    tenants = sorted(private)
    rotated, other, plain_tenant = tenants
    store = SnapshotStore(tmp_path / "store")
    for t in (rotated, other):
        store.publish(private[t])
    store.publish(plain[plain_tenant])
    given = {t: secrets[t] for t in (rotated, other)}
    scorer = Scorer.from_store(store, tenant_configs=g.tenants, secrets=given)
    later_cut = cut + pd.Timedelta(days=1)
    new_secret = b"\x55" * 40
    store.publish(_rebuilt(private[rotated], history, later_cut, new_secret))
    store.publish(_rebuilt(private[other], history, later_cut, secrets[other]))
    store.publish(build_baselines(history.for_tenant(plain_tenant), as_of=later_cut, config=CONFIG)[plain_tenant])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        changed = scorer.reload()
    assert changed == [other, plain_tenant]
    message = " ".join(str(w.message) for w in caught if issubclass(w.category, ReloadWarning))
    assert f"'{rotated}' version 2: ConfigError: tenant '{rotated}': the secret given is not the one" in message
    assert new_secret.hex() not in message and secrets[rotated].hex() not in message
    assert scorer.versions == {rotated: 1, other: 2, plain_tenant: 2}
    probe = validate(later[later["tenant_id"] == rotated].head(60), tenants=g.tenants)
    # Still served, with its old snapshot and its old secret: its known senders are still known.
    before = scorer.score(probe, level="message")
    assert before["sender_is_new"].mean() < 0.5
    # The new secret arrives: the tenant moves on, keyed with it.
    assert scorer.reload(secrets={rotated: new_secret}) == [rotated]
    assert scorer.versions[rotated] == 2
    after = scorer.score(probe, level="message")
    assert after["sender_is_new"].mean() <= before["sender_is_new"].mean()
    want = Scorer({rotated: store.load(rotated)}, tenant_configs=g.tenants,
                  secrets={rotated: new_secret}).score(probe, level="message")
    assert _differing(after, want, scorer.signal_set.names) == set()


def test_a_tenant_whose_published_snapshot_cannot_be_loaded_is_refused_not_cold_started(tmp_path, world) -> None:
    # A privacy tenant published after the engine started, without its secret, was left unserved with a warning
    # that it "kept its current snapshot" (it had none) and, with cold_start=True, scored as a tenant without
    # baselines: every sender new. Its mail is refused by name until a reload loads it.
    g, raw, plain, private, secrets, later, cut = world
    first, second, _ = sorted(private)
    store = SnapshotStore(tmp_path / "store")
    store.publish(private[first])
    scorer = Scorer.from_store(store, tenant_configs=g.tenants, secrets={first: secrets[first]}, cold_start=True)
    store.publish(private[second])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert scorer.reload() == []
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, ReloadWarning))
    assert f"not served, the published snapshot failing to load: '{second}'" in said and "kept" not in said
    probe = later[later["tenant_id"] == second].head(40)
    for call in (lambda: scorer.score(probe), lambda: scorer.score_one(_mapping(probe.iloc[0]))):
        with pytest.raises(CommGraphError, match=f"tenant '{second}' has a published snapshot that cannot be loaded"):
            call()
    assert scorer.reload(secrets={second: secrets[second]}) == [second]
    want = Scorer({second: private[second]}, tenant_configs=g.tenants, secrets={second: secrets[second]})
    assert _differing(scorer.score(probe), want.score(probe), scorer.signal_set.names) == set()
    # The same for a tenant left out at start because its snapshot could not be loaded (a damaged file).
    damaged = next(f for f in sorted((tmp_path / "store" / second).glob("v*/*")) if f.suffix == ".arrow")
    damaged.write_bytes(b"not arrow" + damaged.read_bytes()[9:])
    with pytest.warns(ReloadWarning, match=f"tenant '{second}' is not served"):
        cold = Scorer.from_store(store, tenant_configs=g.tenants, secrets=secrets, cold_start=True)
    with pytest.raises(CommGraphError, match=f"tenant '{second}' has a published snapshot that cannot be loaded"):
        cold.score(probe)


def test_the_score_command_takes_the_secrets_file(tmp_path, world) -> None:
    g, _, plain, private, secrets, later, _ = world
    store = SnapshotStore(tmp_path / "store")
    for snap in private.values():
        store.publish(snap)
    mail = tmp_path / "mail.parquet"
    later.head(300).drop(columns=["label", "labeled_at"]).to_parquet(mail)
    out = tmp_path / "signals.parquet"
    assert main(["score", "--input", str(mail), "--store", str(tmp_path / "store"), "--output", str(out)]) == 2
    path = secrets_file(tmp_path / "secrets.toml", secrets)
    assert main(["score", "--input", str(mail), "--store", str(tmp_path / "store"), "--output", str(out),
                 "--secrets", str(path)]) == 0
    got = pd.read_parquet(out)
    want = Scorer(plain).score(validate(later.head(300).drop(columns=["label", "labeled_at"]),
                                        tenants=Scorer(plain)._configs()), level="message")
    assert _differing(got.reset_index(drop=True), want.reset_index(drop=True),
                      Scorer(plain).signal_set.names) <= set(PRIVACY_LOSSES)
    tenant = str(later["tenant_id"].iloc[0])
    assert main(["explain", "--store", str(tmp_path / "store"), "--tenant", tenant, "--message-id",
                 str(later["message_id"].iloc[0]), "--input", str(mail), "--secrets", str(path)]) == 0


def test_backfill_in_privacy_mode_says_why_it_is_refused(world) -> None:
    g, raw, *_ = world
    with pytest.raises(ConfigError, match="computes each message's signals from the raw history"):
        backfill(validate(raw.head(50), tenants=g.tenants), config={"privacy": True})
