"""Every built-in signal against an independent plain-pandas computation (synthetic and Enron mail).

The reference recomputes each signal from the history messages with groupbys
and merges on string columns (windows, first/last seen, distinct counts,
pairs, written-to, display names, hours, authentication); only the smoothed
likelihoods and the first-time share are read from the snapshot's tables (by
merging on address strings), since their fitting is tested in the baselines.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from rapidfuzz.distance import Levenshtein

from commgraph.baselines import build_baselines
from commgraph.graph import generate, validate
from commgraph.signals import SignalSet, freemail_domains, skeleton
from conftest import enron_sample

DAY = pd.Timedelta(days=1)
FAILS = ("fail", "softfail", "permerror")
SIGNALS = SignalSet().names


def _days(ts: pd.Series, then: pd.Series, never: float) -> np.ndarray:
    delta = (ts - then) / DAY
    return np.where(then.isna(), never, np.maximum(delta.fillna(0), 0)).astype(np.float64)


def reference(history, as_of, batch, snapshots) -> pd.DataFrame:
    """Edge-level signals of ``batch`` by plain pandas, tenant by tenant."""
    as_of = pd.Timestamp(as_of)
    out = []
    H = history.frame
    HE = history.edges(message_columns=("message_id",)).assign(
        **{c: history.frame[c].to_numpy()[history.edges()["message_index"].to_numpy()] for c in ("label", "labeled_at")})
    B = batch.frame.reset_index(drop=True)
    BE = batch.edges(message_columns=("message_id",))
    for tenant in batch.tenants:
        snap = snapshots[tenant]
        h = H[H["tenant_id"] == tenant].copy()
        h = h[h["timestamp"] < as_of]
        he = HE[(HE["tenant_id"] == tenant).to_numpy() & (HE["timestamp"] < as_of).to_numpy()]
        for c in ("sender", "sender_domain", "recipient", "recipient_domain", "direction"):
            he[c] = he[c].astype(str)
        h["sender"] = h["sender"].astype(str)
        h["direction"] = h["direction"].astype(str)
        be = BE[(BE["tenant_id"] == tenant).to_numpy()].copy()
        for c in ("sender", "sender_domain", "recipient"):
            be[c] = be[c].astype(str)
        msg = B.iloc[be["message_index"].to_numpy()].reset_index(drop=True)
        be = be.reset_index(drop=True)
        e = pd.DataFrame({"message_id": be["message_id"].astype(str), "recipient": be["recipient"],
                          "sender": be["sender"], "domain": be["sender_domain"], "ts": be["timestamp"]})
        prior = {k: snap.priors[k]["alpha"] / (snap.priors[k]["alpha"] + snap.priors[k]["beta"])
                 for k in ("sender", "sender_domain", "recipient")}

        # ---- sender
        g = h.groupby("sender")
        s = pd.DataFrame({
            **{f"w{w}": g["timestamp"].apply(lambda t, w=w: int((t >= as_of - pd.Timedelta(days=w)).sum()))
               for w in (7, 30, 90)},
            "n": g.size(), "first": g["timestamp"].min(),
            "active": g["timestamp"].apply(lambda t: t.dt.floor("D").nunique()),
            "decayed": g["timestamp"].apply(lambda t: float(np.sum(0.5 ** ((as_of - t) / snap.config.half_life)))),
            "attack": g.apply(lambda x: int(((x["label"] == "attack") & (x["labeled_at"].isna()
                                              | (x["labeled_at"] < as_of))).sum()), include_groups=False),
        })
        s["recips"] = he.groupby("sender")["recipient"].nunique()
        wrote = he[he["direction"] != "inbound"].groupby("recipient")
        s = s.join(pd.DataFrame({"solicited": wrote.size(), "last_solicited": wrote["timestamp"].max()}), how="outer")
        st = snap.table("sender")[["sender", "likelihood_safe"]].set_index("sender")
        x = e[["sender", "ts"]].merge(s, left_on="sender", right_index=True, how="left").merge(
            st, left_on="sender", right_index=True, how="left")
        r = pd.DataFrame({"message_id": e["message_id"], "recipient": e["recipient"]})
        for w in (7, 30, 90):
            r[f"sender_messages_{w}d"] = x[f"w{w}"].fillna(0).to_numpy()
        r["sender_messages_decayed"] = x["decayed"].fillna(0).to_numpy()
        r["sender_days_known"] = _days(x["ts"], x["first"], 0.0)
        r["sender_active_days"] = x["active"].fillna(0).to_numpy()
        r["sender_is_new"] = (x["n"].fillna(0) == 0).astype(int).to_numpy()
        r["sender_distinct_recipients"] = x["recips"].fillna(0).to_numpy()
        r["sender_safe_likelihood"] = x["likelihood_safe"].fillna(prior["sender"]).to_numpy()
        r["sender_attack_messages"] = x["attack"].fillna(0).to_numpy()
        r["sender_solicited_messages"] = x["solicited"].fillna(0).to_numpy()
        r["sender_days_since_solicited"] = _days(x["ts"], x["last_solicited"], math.nan)

        # ---- sender domain
        g = h.groupby("sender_domain")
        d = pd.DataFrame({"w30": g["timestamp"].apply(lambda t: int((t >= as_of - pd.Timedelta(days=30)).sum())),
                          "n": g.size(), "first": g["timestamp"].min(), "senders": g["sender"].nunique(),
                          "days": g["timestamp"].apply(lambda t: t.dt.floor("D").nunique())})
        # Messages to the domain: one written to several of its addresses counts once.
        d = d.join(he[he["direction"] == "outbound"].groupby("recipient_domain")["message_index"].nunique()
                   .rename("out"), how="outer")
        dt = snap.table("sender_domain")[["sender_domain", "likelihood_safe"]].set_index("sender_domain")
        x = e[["domain", "ts"]].merge(d, left_on="domain", right_index=True, how="left").merge(
            dt, left_on="domain", right_index=True, how="left")
        r["domain_messages_30d"] = x["w30"].fillna(0).to_numpy()
        r["domain_days_known"] = _days(x["ts"], x["first"], 0.0)
        r["domain_distinct_senders"] = x["senders"].fillna(0).to_numpy()
        r["domain_is_new"] = (x["n"].fillna(0) == 0).astype(int).to_numpy()
        r["domain_is_freemail"] = e["domain"].isin(freemail_domains()).astype(int).to_numpy()
        r["domain_safe_likelihood"] = x["likelihood_safe"].fillna(prior["sender_domain"]).to_numpy()
        # A domain the tenant only wrote to counts its outbound mail too (and stays new: no mail from it).
        r["domain_solicited_messages"] = x["out"].fillna(0).to_numpy()

        # ---- pair
        g = he.groupby(["sender", "recipient"])
        p = pd.DataFrame({"n": g.size(), "last": g["timestamp"].max()})
        rev = p[["n"]].rename(columns={"n": "rev"})
        rev.index = rev.index.swaplevel()  # (recipient, sender): the recipient wrote to the sender
        x = e.merge(p, left_on=["sender", "recipient"], right_index=True, how="left").merge(
            rev, left_on=["sender", "recipient"], right_index=True, how="left")
        r["pair_messages"] = x["n"].fillna(0).to_numpy()
        r["pair_is_first_contact"] = x["n"].isna().astype(int).to_numpy()
        r["pair_days_since_last"] = _days(x["ts"], x["last"], math.nan)
        r["pair_recipient_replied"] = (x["rev"].fillna(0) > 0).astype(int).to_numpy()

        # ---- recipient
        inbound = he[(he["direction"] == "inbound") & (he["timestamp"] >= as_of - pd.Timedelta(days=30))]
        rt = snap.table("recipient")[["recipient", "likelihood_safe", "likelihood_safe_lower", "first_time_share"]]
        x = e[["recipient"]].merge(inbound.groupby("recipient").size().rename("in30"), left_on="recipient",
                                   right_index=True, how="left").merge(rt, on="recipient", how="left")
        lower0 = snap.table("recipient")  # the prior's bound, as an unknown recipient gets it
        from commgraph.baselines import posterior_lower_bound
        a, b = snap.priors["recipient"]["alpha"], snap.priors["recipient"]["beta"]
        r["recipient_safe_likelihood"] = x["likelihood_safe"].fillna(prior["recipient"]).to_numpy()
        r["recipient_safe_likelihood_lower"] = x["likelihood_safe_lower"].fillna(float(posterior_lower_bound(
            np.zeros(1), np.zeros(1), a, b, level=snap.config.credible_level)[0])).to_numpy()
        r["recipient_inbound_30d"] = x["in30"].fillna(0).to_numpy()
        r["recipient_first_contact_rate"] = x["first_time_share"].fillna(0).to_numpy()
        del lower0

        # ---- identity
        named = h[h["sender_display_name"].notna()].assign(name=lambda f: f["sender_display_name"].astype(str))
        internal_names = set(named.loc[named["direction"] != "inbound", "name"])
        seen = named.groupby(["name", "sender"]).size().rename("with_name")
        name = msg["sender_display_name"].astype(object).where(msg["sender_display_name"].notna(), None)
        x = pd.DataFrame({"name": name, "sender": e["sender"]}).merge(
            seen, left_on=["name", "sender"], right_index=True, how="left")
        has = name.notna().to_numpy()
        was_seen = x["with_name"].notna().to_numpy() & has
        inb = (msg["direction"].astype(str) == "inbound").to_numpy()
        r["display_name_matches_internal"] = (has & name.isin(internal_names).to_numpy() & (inb | ~was_seen)).astype(int)
        r["display_name_is_new_for_address"] = (has & ~was_seen).astype(int)
        r["display_name_address_days"] = np.where(was_seen, np.minimum(x["with_name"].fillna(0).to_numpy(),
                                                                       r["sender_active_days"]), 0)

        # ---- look-alike: a plain loop over the known domains and the own domains validation used
        own = list(batch.own_domains.get(tenant, ()))
        known = [k for k in snap.table("tenant")["known_contact_domains"].iloc[0] if k]
        known += [d for d in own if d not in known]
        best = {}
        for dom in e["domain"].unique():
            ds = [Levenshtein.distance(skeleton(dom), skeleton(k)) for k in known if k != dom]
            best[dom] = min([min(v, 8) for v in ds] or [8])
        dist = e["domain"].map(best).to_numpy()
        # Own domains (they sent internal or outbound mail) are established too.
        est = (d["out"].fillna(0).gt(0) | d.index.isin(h.loc[h["direction"] != "inbound", "sender_domain"].unique())
               | d["days"].fillna(0).ge(14))  # sent mail on 14 distinct (UTC) days: an established contact
        established = e["domain"].map(est).fillna(False).astype(bool).to_numpy()
        # Never close: an own domain, or a consumer provider's (nobody can register one to attack with).
        established = established | e["domain"].isin([*own, *freemail_domains()]).to_numpy()
        r["lookalike_domain_distance"] = dist
        r["lookalike_domain_is_close"] = ((dist <= 2) & ~established).astype(int)

        # ---- habits
        hour = h["timestamp"].dt.hour
        tenant_hours = np.bincount(hour, minlength=24).astype(float)
        p_t = (tenant_hours + 1) / (tenant_hours.sum() + 24)
        counts = h.assign(hour=hour).groupby(["sender", "hour"]).size()
        totals = h.groupby("sender").size()
        m_hour = e["ts"].dt.hour.to_numpy()
        c = np.array([counts.get((snd, hr), 0) for snd, hr in zip(e["sender"], m_hour)], float)
        n = e["sender"].map(totals).fillna(0).to_numpy()
        r["sender_hour_surprise"] = -np.log2((c + 10 * p_t[m_hour]) / (n + 10))
        auth = {}
        for check in ("spf", "dkim", "dmarc"):
            v = h[check].astype(str)
            auth[check] = (h.assign(ok=v.eq("pass"), bad=v.isin(FAILS)).groupby("sender")[["ok", "bad"]].sum())
        fails = sum(e["sender"].map(auth[c]["bad"]).fillna(0).to_numpy() for c in auth)
        alls = fails + sum(e["sender"].map(auth[c]["ok"]).fillna(0).to_numpy() for c in auth)
        r["sender_auth_fail_rate"] = np.divide(fails, alls, out=np.zeros(len(e)), where=alls > 0)
        dev = np.zeros(len(e), bool)
        for check in auth:
            ok = e["sender"].map(auth[check]["ok"]).fillna(0).to_numpy()
            bad = e["sender"].map(auth[check]["bad"]).fillna(0).to_numpy()
            dev |= (ok >= 3) & (ok >= 9 * bad) & msg[check].astype(str).isin(FAILS).to_numpy()
        r["auth_deviation"] = dev.astype(int)
        out.append(r)
    return pd.concat(out, ignore_index=True)


def assert_matches(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    ours = ours.assign(message_id=ours["message_id"].astype(str), recipient=ours["recipient"].astype(str))
    merged = ref.merge(ours, on=["message_id", "recipient"], suffixes=("_ref", ""), validate="one_to_one")
    assert len(merged) == len(ours) == len(ref)
    problems = []
    for name in SIGNALS:
        a, b = merged[name].to_numpy(np.float64), merged[f"{name}_ref"].to_numpy(np.float64)
        ok = np.isclose(a, b, rtol=2e-6, atol=1e-6, equal_nan=True)
        if not ok.all():
            i = np.flatnonzero(~ok)[:3]
            problems.append(f"{name}: {int((~ok).sum())} differ, e.g. ours {a[i].tolist()} vs ref {b[i].tolist()}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def synthetic():
    g = generate(tenants=2, days=20, random_state=3)
    raw = g.messages
    cut = raw["timestamp"].quantile(0.85)
    history = validate(raw[raw["timestamp"] < cut], tenants=g.tenants)
    batch = validate(raw[raw["timestamp"] >= cut].head(6000), tenants=g.tenants)
    snapshots = build_baselines(history, as_of=cut)
    return history, cut, batch, snapshots


def test_every_signal_matches_the_pandas_reference(synthetic) -> None:
    history, cut, batch, snapshots = synthetic
    ours = SignalSet().compute(batch, snapshots)
    assert list(ours.columns) == ["tenant_id", "message_id", "recipient"] + SIGNALS
    assert_matches(ours, reference(history, cut, batch, snapshots))


def test_no_undocumented_nan(synthetic) -> None:
    _, _, batch, snapshots = synthetic
    ours = SignalSet().compute(batch, snapshots)
    documented = {s.name for s in SignalSet().specs if s.default is not None and math.isnan(s.default)}
    for name in SIGNALS:
        if name not in documented:
            assert not ours[name].isna().any(), name


def test_enron_matches_the_reference(real_data) -> None:
    raw = enron_sample(real_data, 8000)
    m = validate(raw, tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}], strict=False)
    cut = m.frame["timestamp"].quantile(0.8)
    history = validate(raw[pd.to_datetime(raw["timestamp"]) < cut], strict=False,
                       tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}])
    batch = validate(raw[pd.to_datetime(raw["timestamp"]) >= cut], strict=False,
                     tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}])
    snapshots = build_baselines(history, as_of=cut)
    ours = SignalSet().compute(batch, snapshots)
    assert ours["pair_is_first_contact"].between(0, 1).all() and ours["sender_is_new"].mean() < 0.5
    assert_matches(ours, reference(history, cut, batch, snapshots))


def test_a_domain_only_written_to() -> None:
    """The tenant wrote to newvendor.com and never heard from it; then newvendor.com replies, and a look-alike
    of it writes: every domain signal against the pandas reference, and the reply read as its documented
    meaning says (new as a sender domain, solicited, established: not a look-alike)."""
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    history = validate(pd.DataFrame({
        "tenant_id": "acme", "message_id": ["1", "2", "3", "4"],
        "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-02T10:00Z", "2024-05-03T08:00Z"],
        "sender": ["bob@vendor.com", "ann@acme.com", "ann@acme.com", "cy@acme.com"],
        "recipients": ["ann@acme.com", "x@newvendor.com; y@newvendor.com", "cy@acme.com", "x@newvendor.com"]}),
        tenants=tenants)
    as_of = pd.Timestamp("2024-05-04", tz="UTC")
    snapshots = build_baselines(history, as_of=as_of)
    batch = validate(pd.DataFrame({
        "tenant_id": "acme", "message_id": ["r", "l"], "timestamp": ["2024-05-04T09:00Z", "2024-05-04T10:00Z"],
        "sender": ["x@newvendor.com", "x@newvend0r.com"], "recipients": "ann@acme.com"}), tenants=tenants)
    ours = SignalSet().compute(batch, snapshots)
    assert_matches(ours, reference(history, as_of, batch, snapshots))
    reply, lookalike = ours.iloc[0], ours.iloc[1]
    solicited = history.edges().query("direction == 'outbound' and recipient_domain == 'newvendor.com'")
    # Two messages, one of them to two addresses there: the unit is messages, as for a sender.
    assert reply["domain_solicited_messages"] == solicited["message_index"].nunique() == 2
    assert (reply["domain_is_new"], reply["domain_messages_30d"], reply["domain_distinct_senders"],
            reply["domain_days_known"]) == (1, 0, 0, 0.0)
    assert reply["lookalike_domain_is_close"] == 0  # the tenant wrote to it: an established contact
    assert (lookalike["lookalike_domain_distance"], lookalike["lookalike_domain_is_close"]) == (0, 1)


def test_solicited_messages_count_messages_on_every_path() -> None:
    """The tenant's mail to a domain counts messages, as its mail to an address does: a message to three
    addresses at partner.com counts once (two messages from one sender at one instant count twice), the same
    in the snapshot, the batch and single-message signals, explain and the point-in-time backfill."""
    from commgraph.signals import Scorer, backfill, explain

    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    history = pd.DataFrame({
        "tenant_id": "acme", "message_id": ["1", "2", "3", "4", "5"],
        "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z", "2024-05-03T09:00Z",
                      "2024-05-04T09:00Z"],
        "sender": ["ann@acme.com", "ann@acme.com", "cy@acme.com", "cy@acme.com", "x@partner.com"],
        "recipients": ["x@partner.com; y@partner.com; z@partner.com", "x@partner.com; bob@other.org",
                       "y@partner.com", "x@partner.com; z@partner.com", "ann@acme.com"]})
    later = pd.DataFrame({"tenant_id": "acme", "message_id": ["6"], "timestamp": ["2024-05-06T09:00Z"],
                          "sender": ["y@partner.com"], "recipients": ["cy@acme.com"]})
    m = validate(history, tenants=tenants)

    def solicited(before: pd.Timestamp) -> pd.Series:  # plain pandas: messages written to each domain
        e = m.edges(message_columns=("message_id",))
        e = e[(e["direction"] == "outbound") & (e["timestamp"] < before)]
        return e.groupby(e["recipient_domain"].astype(str))["message_id"].nunique()

    as_of = pd.Timestamp("2024-05-05", tz="UTC")
    expected = solicited(as_of)
    assert expected.to_dict() == {"other.org": 1, "partner.com": 4}  # 7 edges to partner.com
    snapshots = build_baselines(m, as_of=as_of)
    table = snapshots["acme"].table("sender_domain").set_index("sender_domain")
    assert table["n_outbound_to"].reindex(expected.index).tolist() == expected.tolist()

    batch = validate(later, tenants=tenants)
    assert SignalSet().compute(batch, snapshots)["domain_solicited_messages"].tolist() == [4]
    scorer = Scorer(snapshots, tenant_configs=tenants)
    one = later.iloc[0].to_dict()
    assert scorer.score_one(one)["domain_solicited_messages"] == 4
    e = explain(one, scorer).frame.set_index("signal")
    assert e.loc["domain_solicited_messages", "value"] == 4
    assert e.loc["domain_solicited_messages", "evidence"]["n_outbound_to"] == 4

    # Point in time: each message sees the messages written to its sender domain strictly before it.
    everything = validate(pd.concat([history, later], ignore_index=True), tenants=tenants)
    ours = backfill(everything).set_index("message_id")
    for message_id, sender_domain, ts in everything.frame[["message_id", "sender_domain", "timestamp"]].itertuples(
            index=False):
        want = solicited(ts).get(str(sender_domain), 0)
        assert (ours.loc[[message_id], "domain_solicited_messages"] == want).all(), message_id
    assert ours.loc["5", "domain_solicited_messages"] == ours.loc["6", "domain_solicited_messages"] == 4


def test_an_own_domain_that_only_sends_outbound_mail_on_every_path() -> None:
    """An own domain is one that sends internal or outbound mail, as the scorer reads own domains off a snapshot:
    acme.ca and globex.com only write out, yet they are on the known-contact list as own domains (kept with
    ``known_contact_domains=0``, which keeps only own and written-to domains), so a look-alike of globex.com is
    close, and acme.ca's own mail is not a look-alike of acme.com (it is established): the same in the batch and
    single-message signals, explain and the point-in-time backfill."""
    from commgraph.baselines import BaselineConfig
    from commgraph.signals import Scorer, backfill, explain

    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com", "acme.ca", "globex.com"]}]
    t0 = pd.Timestamp("2025-01-01T09:00Z")
    rows = []
    for day in range(5):
        ts = t0 + pd.Timedelta(days=day)
        rows += [{"message_id": f"i{day}", "timestamp": ts, "sender": "ann@acme.com", "recipients": "bob@acme.com"},
                 {"message_id": f"c{day}", "timestamp": ts, "sender": "sales@acme.ca",
                  "recipients": f"client@customer{day}.com"},
                 {"message_id": f"g{day}", "timestamp": ts, "sender": "sales@globex.com",
                  "recipients": f"buyer@customer{day}.com"}]
    as_of = t0 + pd.Timedelta(days=6)
    # At one instant, so that in the backfill each sees the history and none of the others, as the snapshot does.
    later = pd.DataFrame({"message_id": ["ca", "look"], "timestamp": [as_of, as_of],
                          "sender": ["sales@acme.ca", "it@g1obex.com"],
                          "recipients": ["client@customer9.com", "bob@acme.com"]}).assign(tenant_id="acme")
    raw = pd.DataFrame(rows).assign(tenant_id="acme")
    history = validate(raw, tenants=tenants)
    assert set(history.frame.query("sender_domain != 'acme.com'")["direction"].astype(str)) == {"outbound"}
    config = BaselineConfig(known_contact_domains=0)
    snapshots = build_baselines(history, as_of=as_of, config=config)
    # acme.ca is acme.com's name under another suffix (one edit), g1obex.com reads as globex.com
    want = {"ca": (1, 0), "look": (0, 1)}
    cols = ["lookalike_domain_distance", "lookalike_domain_is_close"]
    batch = SignalSet().compute(validate(later, tenants=tenants), snapshots).set_index("message_id")
    scorer = Scorer(snapshots, tenant_configs=tenants)
    everything = validate(pd.concat([raw, later], ignore_index=True), tenants=tenants)
    filled = backfill(everything, config=config, level="message").set_index("message_id")
    got: dict[str, dict[str, tuple]] = {"batch": {}, "score_one": {}, "backfill": {}, "explain": {}}
    for message_id in want:
        one = later.set_index("message_id").loc[message_id].to_dict() | {"message_id": message_id}
        got["batch"][message_id] = tuple(int(v) for v in batch.loc[message_id, cols])
        got["score_one"][message_id] = tuple(int(scorer.score_one(one)[c]) for c in cols)
        got["backfill"][message_id] = tuple(int(v) for v in filled.loc[message_id, cols])
        row = explain(one, scorer).frame.set_index("signal").loc["lookalike_domain_is_close"]
        # explain's value and its established evidence, and whether its sentence reports a concern.
        got["explain"][message_id] = (int(row["value"]), not row["evidence"]["established"],
                                      row["sentence"] != "No look-alike concern.")
    # Every path at once, so that a failure names each path that disagrees.
    assert got == {"batch": want, "score_one": want, "backfill": want,
                   "explain": {"ca": (0, False, False), "look": (1, True, True)}}
    known = list(snapshots["acme"].table("tenant")["known_contact_domains"].iloc[0])
    assert set(known[:3]) == {"acme.com", "acme.ca", "globex.com"}  # own domains first, then those written to
