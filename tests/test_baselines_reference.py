"""Every baseline table against an independent, plain-pandas reference (synthetic and Enron mail)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.graph import generate, stable_keys, validate
from conftest import enron_sample

DAY = pd.Timedelta(days=1)


def reference(m, tenant: str, as_of, config: BaselineConfig) -> dict[str, pd.DataFrame]:
    """The baseline tables computed the obvious way: pandas groupby over strings, no shared code."""
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    f = m.frame[(m.frame["tenant_id"] == tenant) & (m.frame["timestamp"] < as_of)].copy()
    f["pos"] = np.flatnonzero(((m.frame["tenant_id"] == tenant) & (m.frame["timestamp"] < as_of)).to_numpy())
    label_time = f["labeled_at"].fillna(f["timestamp"]) if "labeled_at" in f else f["timestamp"]
    f["known"] = f["label"].notna() & (label_time < as_of)
    f["lab"] = f["label"].astype(object).where(f["known"], None)
    f["presumed"] = ~f["known"] & (f["timestamp"] < as_of - config.settle_delay)
    e = m.edges()
    e = e[e["message_index"].isin(f["pos"])].copy()
    for c in ("tenant_id", "sender", "sender_domain", "recipient", "recipient_domain", "direction"):
        e[c] = e[c].astype(object)
    e = e.merge(f[["pos", "lab", "presumed", "known"]], left_on="message_index", right_on="pos")
    f["direction"] = f["direction"].astype(object)
    hl = config.half_life.total_seconds()
    windows = list(zip(config.window_names, config.windows))

    def counts(g, frame):
        out = pd.DataFrame({"n_messages": g.size()})
        for name, w in windows:
            out[f"n_messages_{name}"] = frame.assign(x=frame["timestamp"] >= as_of - w).groupby(g.keys)["x"].sum()
        out["first_seen"] = g["timestamp"].min()
        out["last_seen"] = g["timestamp"].max()
        age = (as_of - frame["timestamp"]).dt.total_seconds()
        out["decayed_messages"] = frame.assign(d=np.exp2(-age / hl)).groupby(g.keys)["d"].sum()
        out["active_days"] = frame.assign(day=frame["timestamp"].dt.floor("D")).groupby(g.keys)["day"].nunique()
        for lab in ("safe", "attack", "spam"):
            out[f"n_{lab}"] = frame.assign(x=frame["lab"] == lab).groupby(g.keys)["x"].sum()
        out["n_presumed_safe"] = g["presumed"].sum()
        for a in ("spf", "dkim", "dmarc"):
            out[f"{a}_pass"] = frame.assign(x=frame[a] == "pass").groupby(g.keys)["x"].sum()
            out[f"{a}_fail"] = frame.assign(x=frame[a].isin(["fail", "softfail", "permerror"])).groupby(g.keys)["x"].sum()
        out["n_outbound"] = frame.assign(x=frame["direction"] == "outbound").groupby(g.keys)["x"].sum()
        hours = frame["timestamp"].dt.hour
        hist = pd.crosstab(frame[g.keys], hours).reindex(columns=range(24), fill_value=0)
        out["hour_histogram"] = pd.Series(list(hist.to_numpy()), index=hist.index)
        return out

    tables = {}
    s = counts(f.groupby("sender"), f)
    s["n_distinct_recipients"] = e.groupby("sender")["recipient"].nunique()
    s["mean_recipients"] = f.groupby("sender")["n_recipients"].mean()
    wrote = e[e["direction"] != "inbound"]
    s["n_written_to"] = wrote.groupby("recipient").size().reindex(s.index).fillna(0)
    s["last_written_to"] = wrote.groupby("recipient")["timestamp"].max().reindex(s.index)
    dn = f.dropna(subset=["sender_display_name"]).groupby(["sender", "sender_display_name"]).size()
    dn = dn.reset_index(name="n")
    dn["key"] = stable_keys(dn["sender_display_name"])
    dn = dn.sort_values(["sender", "n", "key"], ascending=[True, False, True])
    top = dn.groupby("sender").head(config.top_display_names)
    s["display_names"] = top.groupby("sender")["sender_display_name"].agg(list)
    s["display_name_counts"] = top.groupby("sender")["n"].agg(list)
    tables["sender"] = s

    d = counts(f.groupby("sender_domain"), f)
    d["n_distinct_senders"] = f.groupby("sender_domain")["sender"].nunique()
    out = e[e["direction"] == "outbound"]
    # A domain the tenant only wrote to has a row too: nothing received from it, its outbound mail counted.
    d = d.reindex(d.index.union(pd.Index(out["recipient_domain"].unique())))
    received = d["n_messages"].notna()
    for c in d.columns:
        if c == "hour_histogram":
            d[c] = [h if ok else np.zeros(24, int) for h, ok in zip(d[c], received)]
        elif "seen" not in c:
            d[c] = d[c].fillna(0)
    # Messages written to the domain: one to several of its addresses counts once.
    d["n_outbound_to"] = out.groupby("recipient_domain")["message_index"].nunique().reindex(d.index).fillna(0)
    d["last_outbound_to"] = out.groupby("recipient_domain")["timestamp"].max().reindex(d.index)
    tables["sender_domain"] = d

    g = e.groupby(["sender", "recipient"])
    p = pd.DataFrame({"n_messages": g.size(), "first_seen": g["timestamp"].min(), "last_seen": g["timestamp"].max(),
                      "n_inbound": g["direction"].apply(lambda x: (x == "inbound").sum())})
    for lab in ("safe", "attack", "spam"):
        p[f"n_{lab}"] = e.assign(x=e["lab"] == lab).groupby(["sender", "recipient"])["x"].sum()
    p["n_presumed_safe"] = g["presumed"].sum()
    rev = p["n_messages"].copy()
    rev.index = rev.index.swaplevel()
    p["n_reverse"] = rev.reindex(p.index).fillna(0)
    tables["pair"] = p

    inbound = e[e["direction"] == "inbound"]
    mailboxes = sorted(set(e.loc[e["direction"] != "outbound", "recipient"])
                       | set(f.loc[f["direction"] != "inbound", "sender"]))
    r = pd.DataFrame(index=pd.Index(mailboxes, name="recipient"))
    r["n_inbound"] = inbound.groupby("recipient").size()
    for name, w in windows:
        r[f"n_inbound_{name}"] = inbound[inbound["timestamp"] >= as_of - w].groupby("recipient").size()
    r["n_internal"] = e[e["direction"] == "internal"].groupby("recipient").size()
    r["n_distinct_senders"] = inbound.groupby("recipient")["sender"].nunique()
    for lab in ("safe", "attack", "spam"):
        r[f"n_{lab}"] = inbound.assign(x=inbound["lab"] == lab).groupby("recipient")["x"].sum()
    r["n_presumed_safe"] = inbound.groupby("recipient")["presumed"].sum()
    first = f.groupby("sender")["timestamp"].min()
    new = inbound[inbound["timestamp"].to_numpy() == first.reindex(inbound["sender"]).to_numpy()]
    r["n_first_time_inbound"] = new.drop_duplicates(["sender", "recipient"]).groupby("recipient").size()
    r["n_outbound"] = f[f["direction"] == "outbound"].groupby("sender").size()
    tables["recipient"] = r.fillna(0)

    named = f.dropna(subset=["sender_display_name"])
    g = named.groupby("sender_display_name")
    tables["display_name"] = pd.DataFrame({
        "n_messages": g.size(), "n_addresses": g["sender"].nunique(),
        "n_internal": named.assign(x=named["direction"] != "inbound").groupby("sender_display_name")["x"].sum()})

    tables["tenant"] = pd.DataFrame({
        "n_messages": [len(f)], "n_edges": [len(e)],
        "n_inbound": [(f["direction"] == "inbound").sum()], "n_attack": [(f["lab"] == "attack").sum()],
        "n_presumed_safe": [f["presumed"].sum()]})
    return tables


KEYS = {"sender": ["sender"], "sender_domain": ["sender_domain"], "pair": ["sender", "recipient"],
        "recipient": ["recipient"], "display_name": ["display_name"], "tenant": []}


def assert_matches_reference(snapshot, ref: dict[str, pd.DataFrame]) -> None:
    for name, expected in ref.items():
        got = snapshot.table(name)
        if KEYS[name]:
            got = got.set_index(KEYS[name]).sort_index()
            expected = expected.sort_index()
            expected.index.names = KEYS[name]
            assert got.index.equals(expected.index), f"{name}: different rows"
        for col in expected.columns:
            a, b = got[col].reset_index(drop=True), expected[col].reset_index(drop=True)
            if col in ("hour_histogram", "display_names", "display_name_counts"):
                a = a.map(lambda v: list(v) if v is not None else [])
                b = b.map(lambda v: list(v) if isinstance(v, (list, np.ndarray)) else [])
                assert a.tolist() == b.tolist(), f"{name}.{col}"
            elif col == "decayed_messages":
                np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, err_msg=f"{name}.{col}")
            elif col == "mean_recipients":
                np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6, err_msg=f"{name}.{col}")
            elif "seen" in col or col.startswith("last_"):
                assert (a.isna() == b.isna()).all() and (a[a.notna()] == b[b.notna()]).all(), f"{name}.{col}"
            else:
                np.testing.assert_array_equal(a.to_numpy(np.int64), b.to_numpy(np.int64), err_msg=f"{name}.{col}")


@pytest.fixture(scope="module")
def synthetic():
    g = generate(tenants=2, days=21, random_state=3, scale=0.3, attack_rate=0.01)
    return validate(g.messages, tenants=g.tenants)


@pytest.mark.parametrize("as_of", ["2025-01-20T13:37:00Z", "2025-01-30"])
def test_every_table_matches_the_reference_on_synthetic_mail(synthetic, as_of) -> None:
    config = BaselineConfig(windows=("1d", "7d", "10d"), half_life="2d", settle_delay="3d")
    snaps = build_baselines(synthetic, as_of=as_of, config=config)
    for tenant, snap in snaps.items():
        assert_matches_reference(snap, reference(synthetic, tenant, as_of, config))


def test_labels_count_only_once_known(synthetic) -> None:
    config = BaselineConfig()
    f = synthetic.frame
    late = f[f["labeled_at"].notna()].iloc[0]
    as_of = late["labeled_at"]  # strictly before: this label does not count yet
    snap = build_baselines(synthetic, as_of=as_of, config=config)[late["tenant_id"]]
    after = build_baselines(synthetic, as_of=as_of + pd.Timedelta(1, "ns"), config=config)[late["tenant_id"]]
    col = f"n_{late['label']}"
    assert after.table("tenant")[col].iloc[0] == snap.table("tenant")[col].iloc[0] + 1


def test_enron_matches_the_reference(real_data) -> None:
    raw = enron_sample(real_data, 6000)
    m = validate(raw, tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}], strict=False)
    as_of = m.frame["timestamp"].quantile(0.8)
    config = BaselineConfig()
    snap = build_baselines(m, as_of=as_of, config=config)["enron"]
    assert snap.table("tenant")["n_internal"].iloc[0] > 0
    assert_matches_reference(snap, reference(m, "enron", as_of, config))


def known_contacts_reference(m, tenant: str, as_of, top: int) -> list[str]:
    """The tenant's known-contact domains the obvious way: every own domain (it sends internal or outbound
    mail), every domain written to, then the ``top`` others with the most mail either way (ties: lower stable
    key)."""
    as_of = pd.Timestamp(as_of)
    f = m.frame[(m.frame["tenant_id"] == tenant) & (m.frame["timestamp"] < as_of)]
    e = m.edges()
    e = e[e["message_index"].isin(np.flatnonzero(((m.frame["tenant_id"] == tenant)
                                                  & (m.frame["timestamp"] < as_of)).to_numpy()))]
    received = f["sender_domain"].astype(object).value_counts()
    written = e.loc[e["direction"] == "outbound"].drop_duplicates(["message_index", "recipient_domain"])[
        "recipient_domain"].astype(object).value_counts()  # messages written to each domain
    own = set(f.loc[f["direction"] != "inbound", "sender_domain"].astype(object))
    domains = received.index.union(written.index)
    table = pd.DataFrame({"volume": received.reindex(domains).fillna(0) + written.reindex(domains).fillna(0),
                          "always": domains.isin(own) | domains.isin(written.index), "own": domains.isin(own),
                          "written": domains.isin(written.index), "key": stable_keys(pd.Series(domains))},
                         index=domains)
    table = table.sort_values(["own", "written", "volume", "key"], ascending=[False, False, False, True])
    return table.index[table["always"]].tolist() + table.index[~table["always"]][:top].tolist()


@pytest.mark.parametrize("top", [0, 7, 200])
def test_known_contact_domains_keep_every_own_and_written_to_domain(synthetic, top) -> None:
    as_of = pd.Timestamp("2025-01-30", tz="UTC")
    snaps = build_baselines(synthetic, as_of=as_of, config=BaselineConfig(known_contact_domains=top))
    for tenant, snap in snaps.items():
        expected = known_contacts_reference(synthetic, tenant, as_of, top)
        written_only = snap.table("sender_domain").query("n_messages == 0 and n_outbound_to > 0")
        assert list(snap.table("tenant")["known_contact_domains"].iloc[0]) == expected
        assert set(written_only["sender_domain"]) <= set(expected)
    assert any(len(known_contacts_reference(synthetic, t, as_of, 0)) > 200 for t in snaps)  # more than the old cap


def test_an_own_domain_that_only_writes_out_is_a_known_contact() -> None:
    """globex.com, an own domain, only sends outbound mail: the list keeps it as an own domain even when
    ``known_contact_domains=0`` keeps nothing else but the domains written to; a refresh keeps it as a rebuild."""
    from commgraph.baselines import refresh

    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com", "globex.com"]}]
    config = BaselineConfig(known_contact_domains=0)
    t0 = pd.Timestamp("2025-01-01T09:00Z")
    frame = pd.DataFrame({
        "tenant_id": "acme", "message_id": [f"{k}{d}" for d in range(5) for k in "io"],
        "timestamp": [t0 + pd.Timedelta(days=d) for d in range(5) for _ in "io"],
        "sender": ["ann@acme.com", "sales@globex.com"] * 5,
        "recipients": [r for d in range(5) for r in ("bob@acme.com", f"c@customer{d}.com")]})
    m = validate(frame, tenants=tenants)
    assert set(m.frame.query("sender_domain == 'globex.com'")["direction"].astype(str)) == {"outbound"}
    as_of = t0 + pd.Timedelta(days=6)
    known = list(build_baselines(m, as_of=as_of, config=config)["acme"].table("tenant")["known_contact_domains"][0])
    assert known == known_contacts_reference(m, "acme", as_of, 0)
    assert set(known[:2]) == {"acme.com", "globex.com"} and len(known) == 7  # then the five written to
    early = build_baselines(validate(frame.iloc[:4], tenants=tenants), as_of=t0 + pd.Timedelta(days=2),
                            config=config)["acme"]
    refreshed = refresh(early, validate(frame.iloc[4:], tenants=tenants), as_of=as_of)
    assert list(refreshed.table("tenant")["known_contact_domains"].iloc[0]) == known


def test_a_domain_only_written_to_has_a_row() -> None:
    """The tenant wrote to newvendor.com and never heard from it: a sender_domain row with its outbound mail."""
    config = BaselineConfig()
    frame = pd.DataFrame({
        "tenant_id": "acme", "message_id": ["1", "2", "3", "4"],
        "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-02T10:00Z", "2024-05-03T08:00Z"],
        "sender": ["bob@vendor.com", "ann@acme.com", "ann@acme.com", "cy@acme.com"],
        "recipients": ["ann@acme.com", "x@newvendor.com; y@newvendor.com", "cy@acme.com", "x@newvendor.com"]})
    m = validate(frame, tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    snap = build_baselines(m, as_of="2024-05-04", config=config)["acme"]
    assert_matches_reference(snap, reference(m, "acme", "2024-05-04", config))
    row = snap.table("sender_domain").set_index("sender_domain").loc["newvendor.com"]
    # Two messages to it (three recipients): the tenant's mail to a domain counts messages.
    assert (row["n_messages"], row["n_outbound_to"], row["n_distinct_senders"], row["active_days"]) == (0, 2, 0, 0)
    assert pd.isna(row["first_seen"]) and row["last_outbound_to"] == pd.Timestamp("2024-05-03T08:00Z")
    assert row["likelihood_safe"] == np.float32(snap.priors["sender_domain"]["alpha"] / (
        snap.priors["sender_domain"]["alpha"] + snap.priors["sender_domain"]["beta"]))
    assert list(snap.table("tenant")["known_contact_domains"].iloc[0]) == ["acme.com", "newvendor.com", "vendor.com"]
