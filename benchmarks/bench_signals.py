"""Signal scoring speed: the default signal set per batch size, beside pandas merges on string keys, in one run.

    python benchmarks/bench_signals.py --senders 1000000 --batches 1,100,1000,10000,100000

Input: one tenant's baselines built with ``build_baselines`` from synthetic
mail where ``--senders`` distinct external addresses (Zipf-distributed
volumes) wrote to 5,000 mailboxes over 60 days, plus internal and outbound
mail and some labels; then batches of later mail with exactly N edges (1.5
recipients per message on average, 5% of senders never seen, display names,
authentication results), validated beforehand (validation is the graph
layer's cost, measured by bench_ingest).

Reported per batch size (edges), single-threaded:
* ours: ``Scorer.score`` (the DataFrame, edge level) and ``Scorer.score_array``
  (float32 matrix), median seconds per call and edges/s;
* peer: the same 35 signals computed the straightforward way, by pandas
  merges of the batch with each baseline table on string keys (derived tables
  such as the exploded display-name pairs prepared once, outside the timing): a
  merge hashes the whole table at every call; and beside it a tuned pandas peer,
  each table indexed by its keys once (its hash table built outside the timing)
  and the batch's keys looked up;
* the ratio peer / ours;
* ``Scorer.score_one``: p50 / p99 latency over single messages, beside the peer
  on a one-message batch, and the same calls' thread CPU time (the code's own
  cost, without the time other processes held the core).
The peer's output is checked against ours on one batch (columns that differ are listed).
"""

from __future__ import annotations

import argparse
import gc
import math
import time

import numpy as np
import pandas as pd

N_MAILBOXES = 5000
DAY = 86_400


def _names(prefix: str, ids: np.ndarray, domains: np.ndarray) -> np.ndarray:
    return np.asarray([f"{prefix}{i}@{d}" for i, d in zip(ids.tolist(), domains.tolist())], dtype=object)


def synthetic_mail(n_senders: int, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(history, later mail pool, tenant configs) for one tenant."""
    rng = np.random.default_rng(seed)
    n_domains = max(100, n_senders // 8)
    domain_names = np.asarray([f"ext{i}.com" for i in range(n_domains)], dtype=object)
    sender_domain = domain_names[(rng.zipf(1.3, n_senders) - 1) % n_domains]
    senders = _names("s", np.arange(n_senders), sender_domain)
    mailboxes = _names("m", np.arange(N_MAILBOXES), np.full(N_MAILBOXES, "acme.com", dtype=object))
    start = pd.Timestamp("2024-01-01", tz="UTC")

    def block(n: int, span_days: int, offset_days: int, new_share: float) -> pd.DataFrame:
        # Every sender appears at least once in the history; later mail reuses them by Zipf volume.
        if new_share == 0:
            who = np.concatenate([np.arange(n_senders), (rng.zipf(1.2, n - n_senders) - 1) % n_senders])
            s = senders[who]
        else:
            who = (rng.zipf(1.2, n) - 1) % n_senders
            s = senders[who].copy()
            fresh = rng.random(n) < new_share
            s[fresh] = _names("new", rng.integers(0, 10**9, int(fresh.sum())), sender_domain[who[fresh]])
        r1 = mailboxes[(rng.zipf(1.3, n) - 1) % N_MAILBOXES]
        r2 = mailboxes[rng.integers(0, N_MAILBOXES, n)]
        two = rng.random(n) < 0.5
        recipients = np.where(two & (r1 != r2), np.char.add(np.char.add(r1.astype(str), ";"), r2.astype(str)),
                              r1.astype(str))
        ts = start + pd.to_timedelta(offset_days * DAY + np.sort(rng.integers(0, span_days * DAY, n)), unit="s")
        frame = pd.DataFrame({"tenant_id": "acme", "message_id": [f"{offset_days}-{i}" for i in range(n)],
                              "timestamp": ts, "sender": s, "recipients": recipients,
                              "sender_display_name": np.char.add("Name ", (who % 50000).astype(str)),
                              "spf": rng.choice(["pass", "fail", "none"], n, p=[0.9, 0.05, 0.05]),
                              "dkim": "pass", "dmarc": rng.choice(["pass", "fail"], n, p=[0.95, 0.05]),
                              "direction": "inbound"})
        return frame

    n_history = int(n_senders * 1.6)
    history = block(n_history, 60, 0, 0.0)
    # Internal and outbound mail from the mailboxes (replies to some correspondents, internal names).
    k = max(1000, n_history // 10)
    out = pd.DataFrame({"tenant_id": "acme", "message_id": [f"o-{i}" for i in range(k)],
                        "timestamp": start + pd.to_timedelta(np.sort(rng.integers(0, 60 * DAY, k)), unit="s"),
                        "sender": mailboxes[rng.integers(0, N_MAILBOXES, k)],
                        "recipients": np.where(rng.random(k) < 0.5, senders[(rng.zipf(1.2, k) - 1) % n_senders],
                                               mailboxes[rng.integers(0, N_MAILBOXES, k)]),
                        "sender_display_name": "Staff", "spf": "pass", "dkim": "pass", "dmarc": "pass",
                        "direction": None})
    out["direction"] = np.where(pd.Series(out["recipients"]).str.endswith("@acme.com"), "internal", "outbound")
    history = pd.concat([history, out], ignore_index=True)
    history["label"] = np.where(rng.random(len(history)) < 0.002, "attack", None)
    later = block(400_000, 2, 60, 0.05)
    return history, later, [{"tenant_id": "acme", "own_domains": ["acme.com"]}]


def batch_with_edges(pool_messages, pool_edges_per_message: np.ndarray, n_edges: int, offset: int):
    """The first messages of the pool from ``offset`` holding exactly ``n_edges`` edges (the last one trimmed)."""
    from commgraph.graph import validate

    cum = np.cumsum(pool_edges_per_message[offset:])
    n_msgs = int(np.searchsorted(cum, n_edges) + 1)
    frame = pool_messages.iloc[offset:offset + n_msgs].copy()
    extra = int(cum[n_msgs - 1] - n_edges)
    if extra:
        last = frame.index[-1]
        frame.loc[last, "recipients"] = frame.loc[last, "recipients"].split(";")[0]
    return validate(frame, tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])


# ---------------------------------------------------------------------------------------------- the peer

class Peer:
    """The same signals by pandas merges on string keys (tables as DataFrames, prepared once)."""

    def __init__(self, snapshot, *, indexed: bool = False):
        from commgraph.signals._lookalike import DISTANCE_CAP

        self.indexed = indexed

        self.snap = snapshot
        self.cap = DISTANCE_CAP
        t = {name: snapshot.table(name) for name in ("sender", "sender_domain", "pair", "recipient", "display_name")}
        self.sender = t["sender"].drop(columns=["display_name_keys", "display_name_counts", "display_names"])
        self.sender["hour_total"] = self.sender["hour_histogram"].map(lambda h: int(np.sum(h)))
        self.domain = t["sender_domain"].drop(columns=["hour_histogram"])
        self.pair = t["pair"][["sender", "recipient", "n_messages", "n_inbound", "last_seen"]]
        self.recipient = t["recipient"]
        names = t["display_name"]
        exploded = names[["display_name", "addresses", "address_counts", "is_internal"]].explode(
            ["addresses", "address_counts"])
        self.name_pairs = exploded.rename(columns={"addresses": "sender", "address_counts": "with_name"})[
            ["display_name", "sender", "with_name"]]
        self.names = names[["display_name", "is_internal"]]
        wrote = self.pair[self.pair["n_messages"] > self.pair["n_inbound"]].assign(
            n=lambda f: f["n_messages"] - f["n_inbound"])
        self.written = wrote.groupby("recipient").agg(solicited=("n", "sum"), last_solicited=("last_seen", "max"))
        tenant = snapshot.table("tenant")
        hours = np.asarray(tenant["hour_histogram"].iloc[0], float)
        self.profile = (hours + 1) / (hours.sum() + 24)
        self.priors = {k: snapshot.priors[k]["alpha"] / (snapshot.priors[k]["alpha"] + snapshot.priors[k]["beta"])
                       for k in ("sender", "sender_domain", "recipient")}
        from commgraph.signals._view import SnapshotView

        self.view = SnapshotView(snapshot)
        self.lower = self.view.prior_lower["recipient"]
        # Each table with its key columns: merged with the batch at every call (the straightforward
        # peer: a merge hashes the whole table again each time), or, indexed, its index's hash table built here
        # once and the batch's keys looked up in it (a tuned pandas peer).
        self.tables = {"sender": (self.sender, ["sender"]), "domain": (self.domain, ["sender_domain"]),
                       "pair": (self.pair, ["sender", "recipient"]), "recipient": (self.recipient, ["recipient"]),
                       "name": (self.names, ["display_name"]),
                       "name_pair": (self.name_pairs, ["display_name", "sender"]),
                       "written": (self.written.reset_index(), ["recipient"])}
        self.by = {}
        if indexed:
            for name, (table, keys) in self.tables.items():
                self.by[name] = table.set_index(keys if len(keys) > 1 else keys[0])
                self.by[name].index.get_indexer(self.by[name].index[:1])  # (its hash table, outside the timing)

    def _look_up(self, table: str, *keys: pd.Series) -> pd.DataFrame:
        """The table's rows for the batch's keys, in the batch's order (missing keys: NaN)."""
        if not self.indexed:
            frame, names = self.tables[table]
            return pd.DataFrame({n: k.to_numpy() for n, k in zip(names, keys)}).merge(frame, on=names, how="left")
        wanted = keys[0].to_numpy() if len(keys) == 1 else pd.MultiIndex.from_arrays([k.to_numpy() for k in keys])
        return self.by[table].reindex(wanted).reset_index(drop=True)

    def score(self, messages) -> pd.DataFrame:
        from commgraph.signals import freemail_domains
        from commgraph.signals._builtin_identity import LookalikeSignals

        day = pd.Timedelta(days=1)
        f = messages.frame
        e = messages.edges(message_columns=("message_id",))
        mi = e["message_index"].to_numpy()
        b = pd.DataFrame({"message_id": e["message_id"].to_numpy(), "sender": e["sender"].astype(str).to_numpy(),
                          "recipient": e["recipient"].astype(str).to_numpy(),
                          "sender_domain": e["sender_domain"].astype(str).to_numpy(), "ts": e["timestamp"].to_numpy(),
                          "display_name": f["sender_display_name"].to_numpy()[mi],
                          "direction": f["direction"].astype(str).to_numpy()[mi],
                          **{a: f[a].astype(str).to_numpy()[mi] for a in ("spf", "dkim", "dmarc")}})
        ts = pd.Series(b["ts"])
        x = self._look_up("sender", b["sender"])
        out = pd.DataFrame({"message_id": b["message_id"], "recipient": b["recipient"]})
        for w in ("7d", "30d", "90d"):
            out[f"sender_messages_{w}"] = x[f"n_messages_{w}"].fillna(0).astype("int32")
        out["sender_messages_decayed"] = x["decayed_messages"].fillna(0).astype("float32")
        out["sender_days_known"] = ((ts - x["first_seen"]).clip(lower=pd.Timedelta(0)) / day).fillna(0)
        out["sender_active_days"] = x["active_days"].fillna(0)
        out["sender_is_new"] = (x["n_messages"].fillna(0) == 0).astype("int8")
        out["sender_distinct_recipients"] = x["n_distinct_recipients"].fillna(0)
        out["sender_safe_likelihood"] = x["likelihood_safe"].fillna(self.priors["sender"])
        out["sender_attack_messages"] = x["n_attack"].fillna(0)
        w = self._look_up("written", b["sender"])
        out["sender_solicited_messages"] = w["solicited"].fillna(0)
        out["sender_days_since_solicited"] = (ts - w["last_solicited"]).clip(lower=pd.Timedelta(0)) / day
        d = self._look_up("domain", b["sender_domain"])
        out["domain_messages_30d"] = d["n_messages_30d"].fillna(0)
        out["domain_days_known"] = ((ts - d["first_seen"]).clip(lower=pd.Timedelta(0)) / day).fillna(0)
        out["domain_distinct_senders"] = d["n_distinct_senders"].fillna(0)
        out["domain_is_new"] = (d["n_messages"].fillna(0) == 0).astype("int8")
        out["domain_is_freemail"] = b["sender_domain"].isin(freemail_domains()).astype("int8")
        out["domain_safe_likelihood"] = d["likelihood_safe"].fillna(self.priors["sender_domain"])
        out["domain_solicited_messages"] = d["n_outbound_to"].fillna(0)
        p = self._look_up("pair", b["sender"], b["recipient"])
        back = self._look_up("pair", b["recipient"], b["sender"])
        out["pair_messages"] = p["n_messages"].fillna(0)
        out["pair_is_first_contact"] = (p["n_messages"].fillna(0) == 0).astype("int8")
        out["pair_days_since_last"] = (ts - p["last_seen"]).clip(lower=pd.Timedelta(0)) / day
        out["pair_recipient_replied"] = (back["n_messages"].fillna(0) > 0).astype("int8")
        r = self._look_up("recipient", b["recipient"])
        out["recipient_safe_likelihood"] = r["likelihood_safe"].fillna(self.priors["recipient"])
        out["recipient_safe_likelihood_lower"] = r["likelihood_safe_lower"].fillna(self.lower)
        out["recipient_inbound_30d"] = r["n_inbound_30d"].fillna(0)
        out["recipient_first_contact_rate"] = r["first_time_share"].fillna(0)
        n = pd.concat([self._look_up("name", b["display_name"]),
                       self._look_up("name_pair", b["display_name"], b["sender"])], axis=1)
        seen = n["with_name"].notna() & b["display_name"].notna()
        out["display_name_matches_internal"] = (n["is_internal"].fillna(False).astype(bool)
                                                & b["display_name"].notna()
                                                & ((b["direction"] == "inbound") | ~seen)).astype("int8")
        out["display_name_address_days"] = np.where(seen, np.minimum(n["with_name"].fillna(0).astype(int),
                                                                     out["sender_active_days"]), 0)
        out["display_name_is_new_for_address"] = (b["display_name"].notna() & ~seen).astype("int8")
        look = LookalikeSignals()
        domains = b["sender_domain"].unique().tolist()
        dist = dict(zip(domains, look._distances(domains, self.view)))
        out["lookalike_domain_distance"] = b["sender_domain"].map(dist)
        established = ((d["n_outbound_to"].fillna(0) > 0) | (d["n_internal"].fillna(0) > 0)
                       | (d["active_days"].fillna(0) >= 14))
        out["lookalike_domain_is_close"] = ((out["lookalike_domain_distance"] <= 2) & ~established).astype("int8")
        hour = ts.dt.hour.to_numpy()
        hist = x["hour_histogram"]
        count = np.array([h[k] if isinstance(h, (list, np.ndarray)) else 0 for h, k in zip(hist, hour)], float)
        p_h = (count + 10 * self.profile[hour]) / (x["hour_total"].fillna(0).to_numpy() + 10)
        out["sender_hour_surprise"] = -np.log2(p_h)
        fails = sum(x[f"{a}_fail"].fillna(0) for a in ("spf", "dkim", "dmarc"))
        alls = fails + sum(x[f"{a}_pass"].fillna(0) for a in ("spf", "dkim", "dmarc"))
        out["sender_auth_fail_rate"] = (fails / alls.where(alls > 0)).fillna(0)
        dev = pd.Series(False, index=b.index)
        for a in ("spf", "dkim", "dmarc"):
            ok, bad = x[f"{a}_pass"].fillna(0), x[f"{a}_fail"].fillna(0)
            dev |= (ok >= 3) & (ok >= 9 * bad) & b[a].isin(["fail", "softfail", "permerror"])
        out["auth_deviation"] = dev.astype("int8")
        return out


# ---------------------------------------------------------------------------------------------- timing

def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=1_000_000, help="distinct senders in the snapshot")
    parser.add_argument("--batches", default="1,100,1000,10000,100000", help="batch sizes in edges")
    parser.add_argument("--single", type=int, default=20000, help="messages timed through score_one")
    parser.add_argument("--peer-min-time", type=float, default=3.0, help="seconds of peer timing per batch size")
    args = parser.parse_args(argv)
    from commgraph.baselines import build_baselines
    from commgraph.graph import validate
    from commgraph.signals import Scorer

    sizes = [int(s) for s in args.batches.split(",") if s]
    t0 = time.perf_counter()
    history, later, configs = synthetic_mail(args.senders)
    t1 = time.perf_counter()
    messages = validate(history, tenants=configs)
    t2 = time.perf_counter()
    snapshot = build_baselines(messages, as_of=pd.Timestamp("2024-03-01", tz="UTC"))["acme"]
    t3 = time.perf_counter()
    del messages
    gc.collect()
    scorer = Scorer({"acme": snapshot}, tenant_configs=configs)
    t4 = time.perf_counter()
    print(f"snapshot: {snapshot}  (mail {t1 - t0:.1f} s, validate {t2 - t1:.1f} s, build {t3 - t2:.1f} s, "
          f"scorer prepared {t4 - t3:.1f} s)")
    peer, indexed = Peer(snapshot), Peer(snapshot, indexed=True)
    per_message = later["recipients"].str.count(";").to_numpy() + 1

    # The peers compute the same values: check on one batch.
    check = batch_with_edges(later, per_message, 2000, 0)
    ours_check = scorer.score(check)
    for name, p in (("merges", peer), ("indexed", indexed)):
        peer_check = p.score(check)
        differ = [c for c in scorer.signal_set.names
                  if not np.allclose(ours_check[c].to_numpy(float), peer_check[c].to_numpy(float), rtol=2e-6,
                                     atol=1e-6, equal_nan=True)]
        print(f"peer ({name}) == ours on a 2,000-edge batch: {'yes' if not differ else 'NO: ' + ', '.join(differ)}")

    print("\npeer: merges of the batch with each table at every call (the issue's straightforward approach); "
          "indexed: each table's hash table built once, the batch's keys looked up")
    print(f"{'edges':>8} {'ours s/call':>12} {'ours edges/s':>13} {'array edges/s':>14} {'peer s/call':>12} "
          f"{'peer edges/s':>13} {'peer/ours':>10} {'indexed s/call':>15} {'indexed/ours':>13}")
    offset = 3000
    for n in sizes:
        batch = batch_with_edges(later, per_message, n, offset)
        offset += len(batch) + 1
        repeat = max(3, min(2000, int(2e5 // max(n, 1))))
        scorer.score(batch)  # warm: first-seen domains reach the look-alike cache
        ours = _median_time(lambda: scorer.score(batch), repeat)
        array = _median_time(lambda: scorer.score_array(batch), repeat)
        timed = []
        for p in (peer, indexed):
            p.score(batch)
            first = _median_time(lambda: p.score(batch), 1)
            peer_repeat = max(1, min(20, int(args.peer_min_time // max(first, 1e-3))))
            timed.append(min(first, _median_time(lambda: p.score(batch), peer_repeat)) if peer_repeat > 1 else first)
        theirs, tuned = timed
        print(f"{n:>8,} {ours:>12.6f} {n / ours:>13,.0f} {n / array:>14,.0f} {theirs:>12.4f} {n / theirs:>13,.0f} "
              f"{theirs / ours:>10,.1f} {tuned:>15.4f} {tuned / ours:>13,.1f}", flush=True)

    # Single messages through the scalar path.
    def mappings(start: int, n: int) -> list[dict]:
        pool = later.iloc[start:start + n]
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in pool[["tenant_id", "message_id", "timestamp", "sender", "recipients", "sender_display_name",
                               "spf", "dkim", "dmarc", "direction"]].to_dict("records")]

    rows = mappings(offset, args.single + 1000)
    for m in rows[:1000]:
        scorer.score_one(m)
    clock = time.perf_counter_ns
    one = validate(later.iloc[offset:offset + 1], tenants=configs)
    peer_one = _median_time(lambda: peer.score(one), 3)
    indexed_one = _median_time(lambda: indexed.score(one), 3)
    # "First sight": the first pass over these messages, addresses and domains as they come (most of
    # them new to the scalar path's memos: a new address is normalised, hashed and its domain checked
    # for look-alikes once, then memoised; busy senders repeat within the pass); "seen before": the
    # same messages again.
    for label in ("first sight", "seen before"):
        latencies = np.empty(len(rows) - 1000)
        for i, m in enumerate(rows[1000:]):
            start = clock()
            scorer.score_one(m)
            latencies[i] = clock() - start
        p50, p99 = np.percentile(latencies, [50, 99]) / 1000
        print(f"score_one over {len(latencies):,} messages ({label}): p50 {p50:.1f} us, p99 {p99:.1f} us, "
              f"max {latencies.max() / 1000:.0f} us; peer/ours at p50 {peer_one * 1e6 / p50:,.0f}x (indexed "
              f"{indexed_one * 1e6 / p50:,.0f}x)")
    # On this thread's CPU clock: what the code itself costs, without the time other processes held
    # the core (on a shared machine the wall-clock tail is mostly theirs). First sightings from the
    # next messages of the pool (the ones above are known now), then the same messages again.
    cpu = time.thread_time_ns
    fresh = mappings(offset + len(rows), args.single)
    if len(fresh) < args.single:
        raise SystemExit(f"the mail pool holds too few messages for --single {args.single}")
    for label in ("first sight", "seen before"):
        for i, m in enumerate(fresh):
            start = cpu()
            scorer.score_one(m)
            latencies[i] = cpu() - start
        p50, p99 = np.percentile(latencies[:len(fresh)], [50, 99]) / 1000
        print(f"score_one thread CPU time ({label}): p50 {p50:.1f} us, p99 {p99:.1f} us")
    print(f"peer on a one-message batch: {peer_one * 1e6:,.0f} us (indexed: {indexed_one * 1e6:,.0f} us)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
