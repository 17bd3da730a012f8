"""Baseline build against DuckDB SQL on the same input, refresh against rebuild, snapshot load, in one run.

    python benchmarks/bench_baselines.py                # ~10M edges, 100 tenants, 90 days
    python benchmarks/bench_baselines.py --scale 0.05   # ~2M edges, a quick run

Input: ``commgraph.graph.generate`` mail (100 tenants, 90 days; ``--scale``
sizes it: 0.25 gives about 10M edges), validated once (not timed) and cached
with ``--cache``.

Reported:
* build: every baseline table of every tenant with ``build_baselines`` (``--jobs``
  processes), and the same aggregates in DuckDB SQL (``--jobs`` threads) from
  the same validated frames; both times, edges/s and the ratio, by wall time and
  by CPU time (which other work on a shared machine does not stretch); then a check
  that the numbers agree (sender, sender_domain, pair, recipient and tenant
  counts, windows, first/last seen, active days, distinct counts, decayed counts);
* refresh: one new full day of mail into the snapshots of the day before, against a full
  rebuild over the 90 days (one process each): tenant by tenant (``refresh`` of each
  with its own day's mail) and all at once (``refresh_many`` over the day's mail of
  every tenant), each with its ratio to the rebuild, and a check that both give the
  same bytes and equal the rebuild;
* store: a one-tenant snapshot with ``--senders`` distinct senders, published,
  then loaded (memory-mapped, with and without checksum verification), its
  bytes per sender row and per key of the lookup index, lookup speed, and the
  sender table's size and load time as Arrow IPC against Parquet.

Peer: DuckDB (``pip install duckdb``); skipped with a note when missing.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------- input

def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the generated input (:func:`load_messages`), shared with profile_refresh."""
    parser.add_argument("--scale", type=float, default=0.25, help="tenant size multiplier (0.25: ~10M edges)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--cache", default=None, help="pickle of the validated messages, reused when present")


def load_messages(scale: float, days: int, tenants: int, cache: str | None):
    from commgraph.graph import generate, tenant_specs, validate

    if cache and Path(cache).exists():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    specs = tenant_specs(tenants, scale=scale, random_state=0)
    g = generate(tenants=specs, days=days, random_state=0)
    m = validate(g.messages, tenants=g.tenants)
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump(m, fh, protocol=5)
    return m


def snapshot_digest(snapshot) -> str:
    """SHA-256 of what a store writes of a snapshot: its tables and refresh state (Arrow IPC) and its manifest
    record (to compare snapshots byte for byte without holding two sets of them)."""
    digest = hashlib.sha256(repr(snapshot.meta()).encode())
    for table in [*snapshot.tables.values(), *snapshot.state_tables().values()]:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
    return digest.hexdigest()


def refresh_day(m, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """The day a refresh benchmark adds: the last full day before ``end`` (a midnight) whose mail is at least the
    median day's (a working day: the archive's last day may be a Saturday, with a quarter of a weekday's mail,
    which flatters a refresh); its start, its end and its edges."""
    day = m.frame["timestamp"].dt.floor("D")
    per_day = m.frame["n_recipients"].groupby(day).sum().sort_index()  # edges a day
    per_day = per_day[per_day.index < end]
    typical = per_day.median()
    for start in per_day.index[::-1]:
        if per_day[start] >= typical:
            return start, start + DAY, int(per_day[start])
    return end - DAY, end, int(per_day.get(end - DAY, 0))


def time_slice(m, start: pd.Timestamp, end: pd.Timestamp, tenant: str | None = None):
    """What a refresh over [start, end) reads: the mail sent then, and older mail whose label became known
    then (of one tenant), as Messages, without validating again."""
    from commgraph.graph import Messages

    f = m.frame
    labelled = f["label"].notna() & (f["labeled_at"] >= start) & (f["labeled_at"] < end)
    keep = (((f["timestamp"] >= start) & (f["timestamp"] < end)) | labelled).to_numpy().copy()
    if tenant is not None:
        keep &= (f["tenant_id"] == tenant).to_numpy()
    positions = np.flatnonzero(keep)
    e = m.edges()
    mi = e["message_index"].to_numpy()
    sel = keep[mi]
    edges = e[sel].reset_index(drop=True)
    remap = np.full(len(f), -1, np.int64)
    remap[positions] = np.arange(len(positions))
    edges["message_index"] = remap[mi[sel]]
    return Messages(f.iloc[positions], edges, m.rejects.iloc[:0])


# --------------------------------------------------------------------------- DuckDB peer

DUCK_SQL = """
CREATE OR REPLACE TEMP TABLE ev AS
SELECT e.tenant_id, e.sender, e.sender_domain, e.recipient, e.recipient_domain, e.direction, e.timestamp AS ts,
       e.message_index, m.label_known AS label, m.display, m.n_recipients, m.spf, m.dkim, m.dmarc,
       row_number() OVER (PARTITION BY e.message_index ORDER BY e.recipient) = 1 AS head
FROM edges e JOIN msgs m ON m.pos = e.message_index
WHERE e.timestamp < $as_of;

CREATE OR REPLACE TEMP TABLE d_sender AS
SELECT tenant_id, sender, count(*) AS n_messages,
       count(*) FILTER (WHERE ts >= $as_of - INTERVAL 7 DAY) AS n_messages_7d,
       count(*) FILTER (WHERE ts >= $as_of - INTERVAL 30 DAY) AS n_messages_30d,
       count(*) FILTER (WHERE ts >= $as_of - INTERVAL 90 DAY) AS n_messages_90d,
       min(ts) AS first_seen, max(ts) AS last_seen,
       sum(pow(2, -(epoch($as_of) - epoch(ts)) / $half_life)) AS decayed_messages,
       count(DISTINCT date_trunc('day', ts)) AS active_days,
       avg(n_recipients) AS mean_recipients,
       count(*) FILTER (WHERE label = 'safe') AS n_safe, count(*) FILTER (WHERE label = 'attack') AS n_attack,
       count(*) FILTER (WHERE label = 'spam') AS n_spam,
       count(*) FILTER (WHERE label IS NULL AND ts < $as_of - INTERVAL 7 DAY) AS n_presumed_safe,
       count(*) FILTER (WHERE spf = 'pass') AS spf_pass,
       count(*) FILTER (WHERE spf IN ('fail', 'softfail', 'permerror')) AS spf_fail,
       count(*) FILTER (WHERE dkim = 'pass') AS dkim_pass,
       count(*) FILTER (WHERE dkim IN ('fail', 'softfail', 'permerror')) AS dkim_fail,
       count(*) FILTER (WHERE dmarc = 'pass') AS dmarc_pass,
       count(*) FILTER (WHERE dmarc IN ('fail', 'softfail', 'permerror')) AS dmarc_fail,
       count(*) FILTER (WHERE direction = 'outbound') AS n_outbound,
       list(hour(ts)) AS hours
FROM ev WHERE head GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE d_pair AS
SELECT tenant_id, sender, recipient, count(*) AS n_messages, min(ts) AS first_seen, max(ts) AS last_seen,
       count(*) FILTER (WHERE direction = 'inbound') AS n_inbound,
       count(*) FILTER (WHERE label = 'safe') AS n_safe, count(*) FILTER (WHERE label = 'attack') AS n_attack,
       count(*) FILTER (WHERE label = 'spam') AS n_spam,
       count(*) FILTER (WHERE label IS NULL AND ts < $as_of - INTERVAL 7 DAY) AS n_presumed_safe
FROM ev GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE d_pair_rev AS
SELECT p.*, coalesce(r.n_messages, 0) AS n_reverse
FROM d_pair p LEFT JOIN d_pair r ON r.tenant_id = p.tenant_id AND r.sender = p.recipient AND r.recipient = p.sender;

CREATE OR REPLACE TEMP TABLE d_sender_full AS
SELECT s.*, coalesce(dr.n, 0) AS n_distinct_recipients, coalesce(w.n, 0) AS n_written_to, w.last AS last_written_to
FROM d_sender s
LEFT JOIN (SELECT tenant_id, sender, count(*) AS n FROM d_pair GROUP BY ALL) dr USING (tenant_id, sender)
LEFT JOIN (SELECT tenant_id, recipient AS sender, count(*) AS n, max(ts) AS last FROM ev
           WHERE direction <> 'inbound' GROUP BY ALL) w USING (tenant_id, sender);

-- Domains the tenant only wrote to have a row too (counts 0): the look-alike check trusts them.
CREATE OR REPLACE TEMP TABLE d_domain AS
SELECT * EXCLUDE (n) REPLACE (coalesce(decayed_messages, 0) AS decayed_messages), coalesce(n, 0) AS n_outbound_to
FROM (
  SELECT tenant_id, sender_domain, count(*) AS n_messages,
         count(*) FILTER (WHERE ts >= $as_of - INTERVAL 7 DAY) AS n_messages_7d,
         count(*) FILTER (WHERE ts >= $as_of - INTERVAL 30 DAY) AS n_messages_30d,
         min(ts) AS first_seen, max(ts) AS last_seen, count(DISTINCT date_trunc('day', ts)) AS active_days,
         count(DISTINCT sender) AS n_distinct_senders,
         sum(pow(2, -(epoch($as_of) - epoch(ts)) / $half_life)) AS decayed_messages,
         count(*) FILTER (WHERE label = 'attack') AS n_attack
  FROM ev WHERE head GROUP BY ALL) d
FULL JOIN (SELECT tenant_id, recipient_domain AS sender_domain, count(DISTINCT message_index) AS n FROM ev
           WHERE direction = 'outbound' GROUP BY ALL) o USING (tenant_id, sender_domain);

CREATE OR REPLACE TEMP TABLE d_first AS
SELECT tenant_id, sender, min(ts) AS first FROM ev WHERE head GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE d_recipient AS
SELECT tenant_id, recipient, count(*) FILTER (WHERE direction = 'inbound') AS n_inbound,
       count(*) FILTER (WHERE direction = 'inbound' AND ts >= $as_of - INTERVAL 7 DAY) AS n_inbound_7d,
       count(*) FILTER (WHERE direction = 'inbound' AND ts >= $as_of - INTERVAL 30 DAY) AS n_inbound_30d,
       count(*) FILTER (WHERE direction = 'internal') AS n_internal,
       count(DISTINCT sender) FILTER (WHERE direction = 'inbound') AS n_distinct_senders,
       count(*) FILTER (WHERE direction = 'inbound' AND label = 'attack') AS n_attack,
       count(DISTINCT sender) FILTER (WHERE direction = 'inbound' AND ts = f.first) AS n_first_time_inbound
FROM ev JOIN d_first f USING (tenant_id, sender)
WHERE direction <> 'outbound' GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE d_display AS
SELECT tenant_id, display, count(*) AS n_messages, count(DISTINCT sender) AS n_addresses,
       count(*) FILTER (WHERE direction <> 'inbound') AS n_internal
FROM ev WHERE head AND display IS NOT NULL GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE d_tenant AS
SELECT tenant_id, count(*) FILTER (WHERE head) AS n_messages, count(*) AS n_edges,
       count(*) FILTER (WHERE head AND label = 'attack') AS n_attack, list(hour(ts)) FILTER (WHERE head) AS hours
FROM ev GROUP BY ALL;
"""


def duckdb_build(m, as_of: pd.Timestamp, threads: int, half_life_s: float):
    import duckdb

    f = m.frame
    e = m.edges()
    label_time = f["labeled_at"].fillna(f["timestamp"])
    known = f["label"].astype(object).where(label_time < as_of, None)
    msgs = pd.DataFrame({"pos": np.arange(len(f)), "label_known": known.to_numpy(),
                         "display": f["sender_display_name"].to_numpy(), "n_recipients": f["n_recipients"].to_numpy(),
                         "spf": f["spf"].astype(object).to_numpy(), "dkim": f["dkim"].astype(object).to_numpy(),
                         "dmarc": f["dmarc"].astype(object).to_numpy()})
    edges = e[["tenant_id", "sender", "sender_domain", "recipient", "recipient_domain", "direction", "timestamp",
               "message_index"]]
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("edges", edges)
    con.register("msgs", msgs)
    sql = DUCK_SQL.replace("$as_of", f"TIMESTAMPTZ '{as_of.isoformat()}'").replace("$half_life", repr(half_life_s))
    cpu, start = _cpu_s(), time.perf_counter()
    for statement in sql.split(";"):
        if statement.strip():
            con.execute(statement)
    elapsed = time.perf_counter() - start
    return con, elapsed, _cpu_s() - cpu


def compare(con, snapshots) -> list[str]:
    """Numbers that differ between the two engines (empty: they agree)."""
    problems = []

    def ours(table: str, columns: list[str]) -> pd.DataFrame:
        parts = []
        for tenant, snap in snapshots.items():
            t = snap.table(table)[columns].copy()
            t.insert(0, "tenant_id", tenant)
            parts.append(t)
        return pd.concat(parts, ignore_index=True)

    def check(name: str, mine: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], ints: list[str],
              floats: list[str] = (), times: list[str] = ()) -> None:
        theirs = theirs.copy()
        for k in keys:
            theirs[k] = theirs[k].astype(str)
            mine[k] = mine[k].astype(str)
        joined = mine.merge(theirs, on=keys, how="outer", suffixes=("", "_duck"), indicator=True)
        if (joined["_merge"] != "both").any():
            problems.append(f"{name}: {int((joined['_merge'] != 'both').sum())} rows in one engine only")
            joined = joined[joined["_merge"] == "both"]
        for c in ints:
            if not np.array_equal(joined[c].to_numpy(np.int64), joined[f"{c}_duck"].fillna(0).to_numpy(np.int64)):
                problems.append(f"{name}.{c}")
        for c in floats:
            if not np.allclose(joined[c].to_numpy(float), joined[f"{c}_duck"].to_numpy(float), rtol=1e-6):
                problems.append(f"{name}.{c}")
        for c in times:
            a = pd.to_datetime(joined[c], utc=True).astype("datetime64[us, UTC]")
            b = pd.to_datetime(joined[f"{c}_duck"], utc=True).astype("datetime64[us, UTC]")
            if not ((a == b) | (a.isna() & b.isna())).all():
                problems.append(f"{name}.{c}")

    s_ints = ["n_messages", "n_messages_7d", "n_messages_30d", "n_messages_90d", "active_days", "n_safe", "n_attack",
              "n_spam", "n_presumed_safe", "spf_pass", "spf_fail", "dkim_pass", "dkim_fail", "dmarc_pass",
              "dmarc_fail", "n_outbound", "n_distinct_recipients", "n_written_to"]
    mine = ours("sender", ["sender"] + s_ints + ["decayed_messages", "mean_recipients", "first_seen", "last_seen",
                                                 "last_written_to", "hour_histogram"])
    theirs = con.execute("SELECT * FROM d_sender_full").df()
    hist = np.stack([np.bincount(np.asarray(h, int), minlength=24) for h in theirs["hours"]]) if len(theirs) else None
    check("sender", mine.drop(columns="hour_histogram"), theirs.drop(columns="hours"), ["tenant_id", "sender"], s_ints,
          ["decayed_messages", "mean_recipients"], ["first_seen", "last_seen", "last_written_to"])
    order = mine.set_index(["tenant_id", "sender"]).index
    theirs_idx = theirs.set_index([theirs["tenant_id"].astype(str), theirs["sender"].astype(str)]).index
    pos = theirs_idx.get_indexer(order)
    if hist is not None and not np.array_equal(np.stack(mine["hour_histogram"].to_numpy()), hist[pos]):
        problems.append("sender.hour_histogram")
    p_ints = ["n_messages", "n_inbound", "n_safe", "n_attack", "n_spam", "n_presumed_safe", "n_reverse"]
    check("pair", ours("pair", ["sender", "recipient"] + p_ints + ["first_seen", "last_seen"]),
          con.execute("SELECT * FROM d_pair_rev").df(), ["tenant_id", "sender", "recipient"], p_ints, (),
          ["first_seen", "last_seen"])
    d_ints = ["n_messages", "n_messages_7d", "n_messages_30d", "active_days", "n_distinct_senders", "n_attack",
              "n_outbound_to"]
    check("sender_domain", ours("sender_domain", ["sender_domain"] + d_ints + ["decayed_messages"]),
          con.execute("SELECT * FROM d_domain").df(), ["tenant_id", "sender_domain"], d_ints, ["decayed_messages"])
    r_ints = ["n_inbound", "n_inbound_7d", "n_inbound_30d", "n_internal", "n_distinct_senders", "n_attack",
              "n_first_time_inbound"]
    mine_r = ours("recipient", ["recipient"] + r_ints)
    theirs_r = con.execute("SELECT * FROM d_recipient").df()
    # Our recipient table also lists mailboxes that only sent mail; compare the ones that received some.
    mine_r = mine_r[(mine_r["n_inbound"] + mine_r["n_internal"]) > 0]
    check("recipient", mine_r, theirs_r, ["tenant_id", "recipient"], r_ints)
    check("display_name", ours("display_name", ["display_name", "n_messages", "n_addresses", "n_internal"]),
          con.execute("SELECT tenant_id, display AS display_name, n_messages, n_addresses, n_internal "
                      "FROM d_display").df(), ["tenant_id", "display_name"], ["n_messages", "n_addresses", "n_internal"])
    check("tenant", ours("tenant", ["n_messages", "n_edges", "n_attack"]),
          con.execute("SELECT tenant_id, n_messages, n_edges, n_attack FROM d_tenant").df(), ["tenant_id"],
          ["n_messages", "n_edges", "n_attack"])
    return problems


# --------------------------------------------------------------------------- store

def one_tenant_with_senders(n_senders: int, seed: int = 0):
    """A validated one-tenant mail log where ``n_senders`` distinct addresses each send a few messages."""
    from commgraph.graph import validate

    rng = np.random.default_rng(seed)
    n_messages = int(n_senders * 1.3)
    sender = np.concatenate([np.arange(n_senders), rng.integers(0, n_senders, n_messages - n_senders)])
    start = pd.Timestamp("2025-01-01", tz="UTC").value
    ts = start + np.sort(rng.integers(0, 60 * 86_400, n_messages)) * 10**9
    frame = pd.DataFrame({
        "tenant_id": "big", "message_id": np.arange(n_messages).astype(str),
        "timestamp": pd.to_datetime(ts, utc=True),
        "sender": "s" + pd.Series(sender).astype(str) + "@ext" + pd.Series(sender % 5000).astype(str) + ".example",
        "recipients": "u" + pd.Series(rng.integers(0, 3000, n_messages)).astype(str) + "@big.example",
        "direction": "inbound",
    })
    return validate(frame, tenants=[{"tenant_id": "big", "own_domains": ["big.example"]}])


def measure_store(n_senders: int, repeat: int) -> dict:
    from commgraph.baselines import SnapshotStore, build_baselines
    from commgraph.graph import stable_keys

    m = one_tenant_with_senders(n_senders)
    snap = build_baselines(m, as_of="2025-03-05")["big"]
    root = Path(tempfile.mkdtemp(prefix="commgraph-bench-store-"))
    store = SnapshotStore(root)
    t0 = time.perf_counter()
    store.publish(snap)
    publish_s = time.perf_counter() - t0
    loads, verified = [], []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        loaded = store.load("big", verify=False)
        loads.append(time.perf_counter() - t0)
        del loaded
    for _ in range(max(1, repeat // 2)):
        t0 = time.perf_counter()
        store.load("big")
        verified.append(time.perf_counter() - t0)
    loaded = store.load("big", verify=False)
    sender = loaded.arrow("sender")
    rows = sender.num_rows
    strings = [c for c in sender.column_names if c in ("sender", "display_names")]
    read_by_signals = ["sender_key", "n_messages_7d", "n_messages_30d", "n_messages", "first_seen", "last_seen",
                       "active_days", "n_written_to", "last_written_to", "likelihood_safe", "likelihood_safe_lower"]
    keys = loaded.column("sender", "sender_key")
    rng = np.random.default_rng(1)
    queries = np.concatenate([keys[rng.integers(0, rows, 90_000)], stable_keys([f"x{i}@n.example" for i in range(10_000)])])
    t0 = time.perf_counter()
    pos = loaded.lookup("sender", queries)
    lookup_s = time.perf_counter() - t0
    assert (pos[:90_000] >= 0).all() and (pos[90_000:] == -1).all()
    # Arrow IPC (memory-mapped) against Parquet for the sender table.
    ipc_path = next((root / "big").glob("v*/sender.arrow"))
    pq_path = root / "sender.parquet"
    import pyarrow.parquet as pq

    pq.write_table(sender, pq_path)
    t0 = time.perf_counter()
    pa.ipc.open_file(pa.memory_map(str(ipc_path), "r")).read_all()
    ipc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pq.read_table(pq_path)
    pq_s = time.perf_counter() - t0
    return {
        "senders": rows, "publish_s": publish_s, "load_ms": 1e3 * statistics.median(loads),
        "load_verified_ms": 1e3 * statistics.median(verified),
        "bytes_per_sender_row": sender.drop_columns(strings).nbytes / rows,
        "bytes_per_sender_row_with_strings": sender.nbytes / rows,
        "bytes_per_key_signals": (sender.select(read_by_signals).nbytes + loaded.index("sender").nbytes) / rows,
        "lookup_ns_per_key": 1e9 * lookup_s / len(queries),
        "ipc_mb": ipc_path.stat().st_size / 1e6, "parquet_mb": pq_path.stat().st_size / 1e6,
        "ipc_load_ms": 1e3 * ipc_s, "parquet_load_ms": 1e3 * pq_s,
        "store_mb": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6,
    }


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--jobs", type=int, default=2, help="processes (ours) and threads (DuckDB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--senders", type=int, default=1_000_000, help="distinct senders of the store tenant")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--store-only", action="store_true", help="only the store measurements")
    args = parser.parse_args(argv)

    from commgraph.baselines import BaselineConfig, build_baselines, refresh, refresh_many

    if args.store_only:
        _print_store(measure_store(args.senders, args.repeat))
        return
    t0 = time.perf_counter()
    m = load_messages(args.scale, args.days, args.tenants, args.cache)
    n_edges = len(m.edges())
    # The last midnight: generated mail stops a few hours into its last day, so a
    # later as_of would leave the refresh below a "new day" of a few hours' mail.
    end = m.frame["timestamp"].max().floor("D")
    print(f"input: {n_edges:,} edges, {len(m.frame):,} messages, {m.frame['tenant_id'].nunique()} tenants, "
          f"{args.days} days (ready in {time.perf_counter() - t0:.1f} s); as_of {end}")
    config = BaselineConfig()
    import scipy.special  # noqa: F401  (imported once, outside the timings)

    ours_s, ours_cpu = [], []
    snapshots = None
    for _ in range(args.repeat):
        snapshots = None  # the last run's snapshots are freed before the next run (memory)
        gc.collect()
        c0, t0 = _cpu_s(), time.perf_counter()
        snapshots = build_baselines(m, as_of=end, config=config, n_jobs=args.jobs)
        ours_s.append(time.perf_counter() - t0)
        ours_cpu.append(_cpu_s() - c0)
    ours = statistics.median(ours_s)
    print(f"commgraph build_baselines, {args.jobs} processes: {ours:.2f} s, {n_edges / ours / 1e6:.2f}M edges/s "
          f"(runs {', '.join(f'{s:.2f}' for s in ours_s)}); {_cpu_line(ours_cpu, n_edges, args.jobs)}")

    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("DuckDB not installed (pip install duckdb): peer skipped")
        con = None
    else:
        duck_s, duck_cpu = [], []
        con = None
        for _ in range(args.repeat):
            con = None  # the last run's connection closes before the next run (memory)
            gc.collect()
            con, s, cpu = duckdb_build(m, end, args.jobs, config.half_life.total_seconds())
            duck_s.append(s)
            duck_cpu.append(cpu)
        duck = statistics.median(duck_s)
        print(f"DuckDB SQL, {args.jobs} threads: {duck:.2f} s, {n_edges / duck / 1e6:.2f}M edges/s "
              f"(runs {', '.join(f'{s:.2f}' for s in duck_s)}); {_cpu_line(duck_cpu, n_edges, args.jobs)}")
        print(f"ratio (DuckDB time / commgraph time): {duck / ours:.2f}x; by CPU time "
              f"{statistics.median(duck_cpu) / statistics.median(ours_cpu):.2f}x")
        problems = compare(con, snapshots)
        print("numbers agree" if not problems else f"numbers DIFFER: {problems}")
        con.close()
        del con

    # Refresh one new day (a working day: see refresh_day) into the day-before snapshots, against a full rebuild
    # as of its end; one process each.
    before, end, day_edges = refresh_day(m, end)
    print(f"refresh: the new day is {before:%A %Y-%m-%d} ({day_edges:,} edges), the rebuild as of {end}")
    previous = build_baselines(m, as_of=before, config=config, n_jobs=args.jobs)
    new_day = {t: time_slice(m, before, end, t) for t in previous}  # the refresh job's per-tenant input
    whole_day = time_slice(m, before, end)  # every tenant's, for refresh_many
    # Cold-start tenants borrow the global prior; give the refresh the one the rebuild pools, so that the
    # comparison below is exact (a refresh job gets it from the pooled fit over all tenants).
    del snapshots  # only the refresh section's snapshots from here on (memory)
    pooled = dict(next(iter(build_baselines(m, as_of=end, config=config, n_jobs=args.jobs).values())).priors["global"])
    times: dict[str, list[float]] = {"loop": [], "many": [], "rebuild": []}
    cpu: dict[str, list[float]] = {"loop": [], "many": [], "rebuild": []}
    runs = {"loop": lambda: {t: refresh(s, new_day[t], as_of=end, global_prior=pooled) for t, s in previous.items()},
            "many": lambda: refresh_many(previous, whole_day, as_of=end, global_prior=pooled),
            "rebuild": lambda: build_baselines(m, as_of=end, config=config, n_jobs=1)}
    results: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            results.pop(name, None)
            for s in previous.values():
                # Every run decodes the previous state from its Arrow form, as a refresh job that loads the
                # snapshots from the store does (a decoded state kept from the first run would flatter it).
                s.state_tables()
                s.state = None
            gc.collect()
            c0, t0 = _cpu_s(), time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(_cpu_s() - c0)
            if name == "loop":  # its bytes, to compare with refresh_many's (memory: one set of snapshots at a time)
                digests = {t: snapshot_digest(x) for t, x in results.pop("loop").items()}
    rebuilt = results["rebuild"]
    same = all(results["many"][t].equals(rebuilt[t], rtol=1e-6) for t in rebuilt)
    same_bytes = digests == {t: snapshot_digest(x) for t, x in results["many"].items()}
    r, rm, b = (statistics.median(times[k]) for k in ("loop", "many", "rebuild"))
    rc, rmc, bc = (statistics.median(cpu[k]) for k in ("loop", "many", "rebuild"))

    def runs_of(name: str) -> str:
        return ", ".join(f"{x:.2f}" for x in times[name])

    print(f"refresh of one day, tenant by tenant: {r:.2f} s (runs {runs_of('loop')}); refresh_many: {rm:.2f} s "
          f"(runs {runs_of('many')}); full rebuild as of that day's end: {b:.2f} s (runs {runs_of('rebuild')}; one "
          f"process each)")
    print(f"speed-up against the rebuild: tenant by tenant {b / r:.1f}x, refresh_many {b / rm:.1f}x; by CPU time "
          f"{rc:.2f} s and {rmc:.2f} s against {bc:.2f} s, {bc / rc:.1f}x and {bc / rmc:.1f}x; refresh_many equals "
          f"rebuild: {same}; the same bytes as tenant by tenant: {same_bytes}")
    del results, rebuilt

    if not args.skip_store:
        _print_store(measure_store(args.senders, args.repeat))
    print(f"peak RSS {_peak_rss_mb():.0f} MB")


def _print_store(s: dict) -> None:
    print(f"store: {s['senders']:,} senders; publish {s['publish_s']:.2f} s ({s['store_mb']:.0f} MB); load "
          f"(memory-mapped) {s['load_ms']:.1f} ms, with SHA-256 verification {s['load_verified_ms']:.0f} ms")
    print(f"bytes per sender row {s['bytes_per_sender_row']:.0f} (strings aside; "
          f"{s['bytes_per_sender_row_with_strings']:.0f} with them); index + columns signals read "
          f"{s['bytes_per_key_signals']:.0f} bytes per key; lookup {s['lookup_ns_per_key']:.0f} ns per key "
          f"(batch of 100k, 10% unknown)")
    print(f"sender table: Arrow IPC {s['ipc_mb']:.1f} MB, mapped in {s['ipc_load_ms']:.2f} ms; Parquet "
          f"{s['parquet_mb']:.1f} MB, read in {s['parquet_load_ms']:.1f} ms")


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (what a shared machine cannot steal)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_line(cpu: list[float], n_edges: int, cores: int) -> str:
    # On a machine shared with other work the wall time stretches; the CPU time
    # divided over the cores says what the same work takes on cores of its own.
    c = statistics.median(cpu)
    return (f"CPU {c:.2f} s ({', '.join(f'{x:.2f}' for x in cpu)}), "
            f"{n_edges / (c / cores) / 1e6:.2f}M edges/s on {cores} dedicated cores")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
