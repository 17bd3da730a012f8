"""refresh_many: several tenants refreshed at once give, byte for byte, what each gives alone, and a rebuild."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from conftest import ipc_bytes, mail_frames

from commgraph.baselines import BaselineConfig, Snapshot, build_baselines, refresh, refresh_many
from commgraph.baselines._beta_quantile import betaincinv_float32
from commgraph.baselines._snapshot import table_differences
from commgraph.graph import ConfigError, validate

START = pd.Timestamp("2024-03-01", tz="UTC")
TENANTS = [{"tenant_id": "acme", "own_domains": ["acme.com"]}, {"tenant_id": "beta", "own_domains": ["beta.org"]},
           {"tenant_id": "gamma", "own_domains": ["gamma.net"]}]
# Every tenant may see every address and display name: tenants share senders, and must not mix.
ADDRESSES = ["ann@acme.com", "bob@acme.com", "eve@evil.com", "v@vendor.com", "w@vendor.com", "x@beta.org",
             "y@beta.org", "g@gamma.net"]
# Priors of their own for tenants with a few labels; the others (gamma, with little mail) borrow the global one.
CONFIG = dict(windows=("1d", "3d"), half_life="1d", settle_delay="1d", min_prior_entities=3, min_prior_labels=2)
SECRETS = {"acme": b"acme-secret-0123456", "beta": b"beta-secret-0123456", "gamma": b"gamma-secret-012345"}


def mail():
    # Half-hour steps over eight days: messages tie on their instant, and rows leave the windows.
    return mail_frames(start=START, tenants=["acme", "acme", "beta", "beta", "gamma"], addresses=ADDRESSES,
                       max_messages=40, step_minutes=30, labels=(None, None, "safe", "safe", "attack", "spam"))


def _validate(frame: pd.DataFrame):
    return validate(frame, tenants=TENANTS, strict=False)


def _bytes(snapshot: Snapshot) -> dict[str, bytes]:
    """Everything a store writes of a snapshot: its tables, its refresh state and what its manifest records."""
    out = {f"table:{name}": ipc_bytes(table) for name, table in snapshot.tables.items()}
    out.update({f"state:{name}": ipc_bytes(table) for name, table in snapshot.state_tables().items()})
    out["meta"] = repr(snapshot.meta()).encode()
    return out


def _new_mail(frame: pd.DataFrame, prev: pd.Timestamp, now: pd.Timestamp):
    """The mail sent in [prev, now) and the older mail whose label became known since prev."""
    sent = (frame["timestamp"] >= prev) & (frame["timestamp"] < now)
    labelled = frame["label"].notna() & (frame["labeled_at"].fillna(frame["timestamp"]) >= prev)
    return _validate(frame[sent | labelled]) if (sent | labelled).any() else None


def _as_stored(snapshots: dict[str, Snapshot]) -> dict[str, Snapshot]:
    """The snapshots with their states decoded from the Arrow tables a store holds (as a refresh job loads them:
    each stored table's columns in the order it was written, which may differ from a fresh aggregate's)."""
    for snapshot in snapshots.values():
        snapshot.state_tables()
        snapshot.state = None
    return snapshots


@settings(max_examples=30, deadline=None)
@given(frame=mail(), hours=st.lists(st.integers(0, 9 * 24), min_size=2, max_size=4, unique=True),
       privacy=st.booleans(), given_prior=st.booleans(), stored=st.booleans())
def test_refresh_many_is_each_refresh_alone_and_a_rebuild(frame, hours, privacy, given_prior, stored) -> None:
    config = BaselineConfig(**CONFIG, privacy=privacy)
    secrets = SECRETS if privacy else None
    m = _validate(frame)
    times = [START + pd.Timedelta(hours=h) for h in sorted(hours)]
    snaps = build_baselines(m, as_of=times[0], config=config, secrets=secrets)
    if stored:
        snaps = _as_stored(snaps)
    full = build_baselines(m, as_of=times[-1], config=config, secrets=secrets)
    # Cold-start tenants borrow the global prior: the one the rebuild pools, or the snapshots' own.
    # (no tenant at all when every message was rejected: nothing to refresh, and refresh_many returns nothing)
    pooled = next(iter(full.values())).priors["global"] if given_prior and full else None
    for prev, now in zip(times, times[1:]):
        new = _new_mail(frame, prev, now)
        many = refresh_many(snaps, new, as_of=now, secrets=secrets, global_prior=pooled)
        alone = {t: refresh(s, new, as_of=now, secret=(secrets or {}).get(t), global_prior=pooled)
                 for t, s in snaps.items()}
        assert list(many) == sorted(snaps)
        for tenant in snaps:
            assert _bytes(many[tenant]) == _bytes(alone[tenant]), tenant
        # Same input, same bytes: again, and with the tenants in another order.
        again = refresh_many(dict(reversed(list(snaps.items()))), new, as_of=now, secrets=secrets, global_prior=pooled)
        assert all(_bytes(again[t]) == _bytes(many[t]) for t in snaps)
        snaps = _as_stored(many) if stored else many
    if given_prior:  # the rebuild pools the same global prior: every table equal
        for tenant, snap in full.items():
            assert table_differences(snaps[tenant], snap) == [], tenant
            assert snaps[tenant].fingerprint == snap.fingerprint
            assert snaps[tenant].priors == snap.priors


def _shared_mail() -> pd.DataFrame:
    """Two tenants that receive mail from the same senders, under the same display names."""
    rows = []
    for i in range(24):
        for tenant, mailbox, share in (("acme", "ann@acme.com", 1), ("beta", "x@beta.org", 2)):
            if i % share:
                continue
            rows.append({"tenant_id": tenant, "message_id": f"{tenant}{i}",
                         "timestamp": START + pd.Timedelta(hours=5 * i), "sender": ADDRESSES[3 + i % 2],
                         "recipients": mailbox, "sender_display_name": "Vendor Billing",
                         "label": ["safe", None, "attack"][i % 3]})
    return pd.DataFrame(rows)


def test_tenants_sharing_senders_and_names_never_mix() -> None:
    frame = _shared_mail()
    m = _validate(frame)
    config = BaselineConfig(**CONFIG)
    cut, now = START + pd.Timedelta(days=2), START + pd.Timedelta(days=6)
    snaps = build_baselines(m, as_of=cut, config=config)
    many = refresh_many(snaps, m, as_of=now)
    for tenant in snaps:
        assert _bytes(many[tenant]) == _bytes(refresh(snaps[tenant], m, as_of=now)), tenant
        # Each tenant's counts are its own mail's, computed with pandas.
        own = frame[(frame["tenant_id"] == tenant) & (frame["timestamp"] < now)]
        expected = own.groupby("sender").size().sort_index()
        got = many[tenant].table("sender").set_index("sender")["n_messages"].sort_index()
        assert got.tolist() == expected.tolist() and got.index.tolist() == expected.index.tolist()
        names = many[tenant].table("display_name")
        assert names["display_name"].tolist() == ["vendor billing"]  # normalised
        assert names["n_messages"].tolist() == [len(own)]
        assert many[tenant].table("tenant")["tenant_id"].tolist() == [tenant]
    assert many["acme"].table("sender")["n_messages"].sum() == 2 * many["beta"].table("sender")["n_messages"].sum()


@settings(max_examples=30, deadline=None)
@given(frame=mail(), hours=st.lists(st.integers(0, 9 * 24), min_size=2, max_size=4, unique=True),
       privacy=st.booleans(), order=st.permutations(["acme", "beta", "gamma"]), stored=st.booleans())
def test_states_advanced_together_are_each_advanced_alone(frame, hours, privacy, order, stored) -> None:
    # advance_many aggregates every tenant's new rows stacked (the tenant leading every grouping), then
    # splits them: against TenantState.advance of each state alone, which aggregates only its own rows.
    # Tenants share addresses and display names (a leak would add one's rows to another's groups), mail
    # ties on its instant, labels arrive late and settle, rows leave the windows, and a tenant may have no
    # state yet (all its mail later) or no new rows in a step.
    from commgraph.baselines._build import _windows
    from commgraph.baselines._config import duration_ns
    from commgraph.baselines._events import TenantEvents, empty_events, tenant_events
    from commgraph.baselines._snapshot import _state_to_arrow
    from commgraph.baselines._state import advance_many

    config = BaselineConfig(**CONFIG, privacy=privacy)
    secrets = SECRETS if privacy else None
    m = _validate(frame)
    hours = sorted(hours)
    snaps = build_baselines(m, as_of=START + pd.Timedelta(hours=hours[0]), config=config, secrets=secrets)
    tenants = [t for t in order if t in snaps]  # any batch order: each tenant's own bytes
    if stored:  # states decoded from a store's tables, as a refresh job reads them
        snaps = _as_stored(snaps)
    states = {t: snaps[t].tenant_state() for t in tenants}
    windows, settle, half_life = _windows(config), duration_ns(config.settle_delay), duration_ns(config.half_life)
    for h in hours[1:]:
        since, now = START + pd.Timedelta(hours=h - 1), START + pd.Timedelta(hours=h)
        since = pd.Timestamp(next(iter(states.values())).as_of, tz="UTC") if states else since
        events = tenant_events(m, as_of=now, since=since, tenants=tenants, secrets=secrets, privacy=privacy)
        evs = [events.get(t) or TenantEvents(t, empty_events(), {}, 0) for t in tenants]
        together = advance_many([states[t] for t in tenants], [ev.rows for ev in evs], as_of=now.value,
                                windows=windows, settle_delay=settle, half_life=half_life,
                                names=[ev.names for ev in evs], fingerprints=[ev.fingerprint for ev in evs])
        for t, ev, state in zip(tenants, evs, together):
            alone = states[t].advance(ev.rows, as_of=now.value, windows=windows, settle_delay=settle,
                                      half_life=half_life, names=ev.names, fingerprint=ev.fingerprint,
                                      groupings=ev.groupings)
            assert state.tenant_id == t
            expected = {name: ipc_bytes(table) for name, table in _state_to_arrow(alone).items()}
            assert {name: ipc_bytes(table) for name, table in _state_to_arrow(state).items()} == expected, t
        states = dict(zip(tenants, together))


def test_errors_name_the_tenant() -> None:
    m = _validate(_shared_mail())
    config = BaselineConfig(**CONFIG)
    early = build_baselines(m, as_of=START + pd.Timedelta(days=1), config=config)
    late = build_baselines(m, as_of=START + pd.Timedelta(days=3), config=config)
    with pytest.raises(ConfigError, match="tenant 'beta'.s snapshot's as_of"):
        refresh_many({"acme": early["acme"], "beta": late["beta"]}, m, as_of=START + pd.Timedelta(days=2))
    with pytest.raises(ConfigError, match="the snapshot of tenant 'acme' under 'beta'"):
        refresh_many({"beta": early["acme"]}, m, as_of=START + pd.Timedelta(days=2))
    with pytest.raises(ConfigError, match="must map tenant ids to Snapshots. Got dict for tenant 'acme'"):
        refresh_many({"acme": {}}, m, as_of=START + pd.Timedelta(days=2))
    private = build_baselines(m, as_of=START + pd.Timedelta(days=1), config=BaselineConfig(**CONFIG, privacy=True),
                              secrets=SECRETS)
    with pytest.raises(ConfigError, match="tenant 'beta' is in privacy mode: pass its secret to refresh_many"):
        refresh_many(private, m, as_of=START + pd.Timedelta(days=2), secrets={"acme": SECRETS["acme"]})
    with pytest.raises(ConfigError, match="secret given for tenant 'acme' is not the one"):
        refresh_many(private, m, as_of=START + pd.Timedelta(days=2), secrets={**SECRETS, "acme": b"w" * 16})
    # A secret given for a snapshot not in privacy mode is refused, as the job and the Scorer refuse it (it was
    # taken and ignored: a caller meaning privacy mode got raw addresses stored).
    later = START + pd.Timedelta(days=2)
    with pytest.raises(ConfigError, match="for tenant 'acme', whose snapshot is not in privacy mode"):
        refresh_many(early, m, as_of=later, secrets=SECRETS)
    with pytest.raises(ConfigError, match="secrets were given to build_baselines but the configuration has privacy"):
        build_baselines(m, as_of=later, config=config, secrets=SECRETS)
    # A failure inside one tenant's refresh (a stored state missing its rows) names that tenant.
    broken = early["beta"]
    tables = {k: v for k, v in broken.state_tables().items() if k != "events"}
    poisoned = Snapshot(tenant_id="beta", as_of=broken.as_of, config=broken.config, tables=broken.tables, state=None,
                        priors=broken.priors, fingerprint=broken.fingerprint, state_tables=tables)
    with pytest.raises(KeyError) as caught:
        refresh_many({"acme": early["acme"], "beta": poisoned}, m, as_of=START + pd.Timedelta(days=2))
    assert caught.value.__notes__ == ["(while refreshing tenant 'beta')"]
    with pytest.raises(KeyError) as alone:  # alone, the error is the one refresh always raised
        refresh(poisoned, m, as_of=START + pd.Timedelta(days=2))
    assert not getattr(alone.value, "__notes__", None)


def test_refresh_many_of_nothing_and_of_time_passing() -> None:
    m = _validate(_shared_mail())
    snaps = build_baselines(m, as_of=START + pd.Timedelta(days=1), config=BaselineConfig(**CONFIG))
    assert refresh_many({}, m, as_of=START) == {}
    later = START + pd.Timedelta(days=5)
    many = refresh_many(snaps, None, as_of=later)
    assert all(_bytes(many[t]) == _bytes(refresh(s, None, as_of=later)) for t, s in snaps.items())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 3000), min_size=2, max_size=4))
def test_credible_bound_is_the_same_alone_and_batched(seed, sizes) -> None:
    """The bound of each posterior is scipy's value rounded to float32 in any batch: concatenated shapes of
    several tables (below and above the size where runs of neighbours start) give each table's own bits."""
    rng = np.random.default_rng(seed)
    parts = []
    for size in sizes:
        n = rng.integers(0, rng.choice([20, 2_000, 200_000]), size).astype(np.float64)
        k = np.floor(n * rng.beta(8.0, 1.0, size))
        alpha, beta = rng.uniform(0.05, 50.0, 2)
        parts.append((k + alpha, n - k + beta))
    batched = betaincinv_float32(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), 0.05)
    starts = np.cumsum([0] + sizes)
    for (a, b), lo, hi in zip(parts, starts[:-1], starts[1:]):
        alone = betaincinv_float32(a, b, 0.05)
        assert alone.tobytes() == batched[lo:hi].tobytes()
        assert alone.tobytes() == special.betaincinv(a, b, 0.05).astype(np.float32).tobytes()


def _same_events(a, b) -> None:
    assert (a.tenant_id, a.fingerprint) == (b.tenant_id, b.fingerprint)
    assert list(a.rows) == list(b.rows)
    for column in a.rows:
        assert a.rows[column].dtype == b.rows[column].dtype and np.array_equal(a.rows[column], b.rows[column]), column
    assert np.array_equal(a.names["key"], b.names["key"]) and a.names["value"].equals(b.names["value"])
    assert list(a.groupings) == list(b.groupings)
    for column, g in a.groupings.items():
        h = b.groupings[column]
        assert list(g.keys) == list(h.keys) and all(np.array_equal(g.keys[k], h.keys[k]) for k in g.keys), column
        assert np.array_equal(g.codes, h.codes), column


@settings(max_examples=40, deadline=None)
@given(frame=mail(), seed=st.integers(0, 2**16), since_hours=st.one_of(st.none(), st.integers(0, 8 * 24)),
       privacy=st.booleans())
def test_tenants_extracted_together_are_each_as_extracted_alone(frame, seed, since_hours, privacy) -> None:
    """The stacked pass over several tenants' rows gives each tenant the rows, keys, groupings, strings and
    fingerprint of its own pass, whatever the input order (rows of tenants interleaved) and privacy mode."""
    from commgraph.baselines._events import EventExtractor

    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    m = _validate(shuffled)
    since = None if since_hours is None else START + pd.Timedelta(hours=since_hours)
    extractor = EventExtractor(m, as_of=START + pd.Timedelta(days=9), since=since, secrets=SECRETS, privacy=privacy)
    together = extractor.extract_many(extractor.tenant_names)
    assert list(together) == extractor.tenant_names
    for tenant in extractor.tenant_names:
        alone = extractor.extract(tenant)
        _same_events(together[tenant], alone)
        # Its own mail only: as many message rows as the tenant's edges sent in the period.
        edges = m.edges()
        sent = edges["timestamp"] < START + pd.Timedelta(days=9)
        if since is not None:
            sent &= edges["timestamp"] >= since
        assert int(alone.rows["is_message"].sum()) == int((sent & (edges["tenant_id"] == tenant)).sum())


def test_mail_exactly_on_a_window_edge_leaves_it_as_a_rebuild_counts_it() -> None:
    # A window [as_of - w, as_of) keeps mail sent at its first instant and drops mail a nanosecond older: a
    # refresh from `prev` to `now` must drop exactly the mail sent in [prev - w, now - w), as a rebuild does.
    # Mail on every edge of every window, a nanosecond either side too, for tenants refreshed together and alone.
    prev, now = START + pd.Timedelta("5D"), START + pd.Timedelta("6D12h")
    one_ns = pd.Timedelta(1, "ns")
    instants = sorted({edge + shift for w in (pd.Timedelta("1D"), pd.Timedelta("3D"))
                       for edge in (prev - w, now - w) for shift in (-one_ns, pd.Timedelta(0), one_ns)})
    instants += [prev - one_ns, prev, now - one_ns]  # (and the last instants of each as_of)
    rows = [{"tenant_id": tenant, "message_id": f"{tenant}-{i}", "timestamp": at,
             "sender": ADDRESSES[(i + k) % len(ADDRESSES)], "recipients": f"u{i % 3}@{own}"}
            for k, (tenant, own) in enumerate((t["tenant_id"], t["own_domains"][0]) for t in TENANTS)
            for i, at in enumerate(instants)]
    m = _validate(pd.DataFrame(rows))
    config = BaselineConfig(**CONFIG)
    rebuilt = build_baselines(m, as_of=now, config=config)
    together = refresh_many(_as_stored(build_baselines(m, as_of=prev, config=config)), m, as_of=now)
    for tenant, snapshot in rebuilt.items():
        assert table_differences(together[tenant], snapshot, rtol=1e-9) == [], tenant
        alone = refresh(_as_stored(build_baselines(m, as_of=prev, config=config))[tenant], m, as_of=now)
        assert _bytes(together[tenant]) == _bytes(alone), tenant
        for name, w in (("1d", pd.Timedelta("1D")), ("3d", pd.Timedelta("3D"))):
            expected = sum(now - w <= at < now for at in instants)  # (each message one sender)
            assert together[tenant].table("sender")[f"n_messages_{name}"].sum() == expected, (tenant, name)
            assert together[tenant].table("tenant")[f"n_messages_{name}"].tolist() == [expected], (tenant, name)
