"""What scoring a privacy-mode tenant costs: the same mail scored against a plain and a privacy snapshot, in one run.

    python -m benchmarks.bench_privacy --senders 200000 --batches 100,1000,10000,100000

Input: the synthetic tenant of :mod:`benchmarks.bench_signals` (``--senders``
distinct external addresses over 60 days), its history built twice from the
same validated mail: without privacy, and in privacy mode with a 32-byte
secret (keyed BLAKE2b keys). Both scorers see the same batches of later mail.

Reported, single-threaded:
* per batch size (edges): ``Scorer.score`` median seconds per call for the
  plain tenant (the peer) and the privacy tenant, and the ratio privacy /
  plain. The privacy batch keys each distinct string of the tenant's rows
  with its secret; a warm call (the per-tenant memo holds the batch's
  strings) and a cold one (a fresh scorer, memo empty: every distinct
  string hashed) are both shown, the cold one beside a fresh plain scorer's
  first call (warm-ups alike);
* ``score_one`` p50 / p99 over single messages (first sight, then seen
  before), plain beside privacy;
* the keyed hash itself: ``stable_key(secret=...)`` per string beside XXH3.
The outputs are checked equal on one batch except the documented look-alike columns.
"""

from __future__ import annotations

import argparse
import gc
import math
import time

import numpy as np
import pandas as pd

from benchmarks.bench_signals import _median_time, batch_with_edges, synthetic_mail

SECRET = bytes(range(32))


def _percentiles(scorer, rows: list[dict]) -> tuple[float, float]:
    clock = time.perf_counter_ns
    latencies = np.empty(len(rows))
    for i, m in enumerate(rows):
        start = clock()
        scorer.score_one(m)
        latencies[i] = clock() - start
    p50, p99 = np.percentile(latencies, [50, 99]) / 1000
    return float(p50), float(p99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=200_000, help="distinct senders in the snapshots")
    parser.add_argument("--batches", default="100,1000,10000,100000", help="batch sizes in edges")
    parser.add_argument("--single", type=int, default=10000, help="messages timed through score_one")
    args = parser.parse_args(argv)
    from commgraph.baselines import BaselineConfig, build_baselines
    from commgraph.graph import stable_key, validate
    from commgraph.signals import Scorer
    from commgraph.signals._privacy import KEY_MEMO_LIMIT, PRIVACY_LOSSES

    sizes = [int(s) for s in args.batches.split(",") if s]
    history, later, configs = synthetic_mail(args.senders)
    messages = validate(history, tenants=configs)
    as_of = pd.Timestamp("2024-03-01", tz="UTC")
    t0 = time.perf_counter()
    plain = build_baselines(messages, as_of=as_of)["acme"]
    t1 = time.perf_counter()
    private = build_baselines(messages, as_of=as_of, config=BaselineConfig(privacy=True),
                              secrets={"acme": SECRET})["acme"]
    t2 = time.perf_counter()
    del messages, history
    gc.collect()
    print(f"snapshots: {plain}; build plain {t1 - t0:.1f} s, privacy {t2 - t1:.1f} s")

    def private_scorer() -> Scorer:
        return Scorer({"acme": private}, tenant_configs=configs, secrets={"acme": SECRET})

    ours, theirs = private_scorer(), Scorer({"acme": plain}, tenant_configs=configs)
    per_message = later["recipients"].str.count(";").to_numpy() + 1
    check = batch_with_edges(later, per_message, 2000, 0)
    a, b = ours.score(check), theirs.score(check)
    differ = [c for c in ours.signal_set.names
              if not np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), equal_nan=True)]
    print(f"privacy == plain on a 2,000-edge batch except {sorted(PRIVACY_LOSSES)}: "
          f"{'yes' if set(differ) <= set(PRIVACY_LOSSES) else 'NO: ' + ', '.join(differ)}")

    print(f"\n{'edges':>8} {'plain s/call':>13} {'privacy s/call':>15} {'privacy/plain':>14} "
          f"{'cold privacy s':>15} {'cold/plain':>11}")
    offset = 3000
    for n in sizes:
        batch = batch_with_edges(later, per_message, n, offset)
        offset += len(batch) + 1
        repeat = max(3, min(500, int(1e5 // max(n, 1))))
        theirs.score(batch)
        ours.score(batch)  # warm: the batch's strings are in the tenant's memo, domains in the look-alike cache
        plain_s = _median_time(lambda: theirs.score(batch), repeat)
        private_s = _median_time(lambda: ours.score(batch), repeat)
        cold, cold_plain = [], []
        for _ in range(3):  # fresh scorers: every distinct string of the batch keyed (hashed) for the first time
            for make, into in ((private_scorer, cold), (lambda: Scorer({"acme": plain}, tenant_configs=configs),
                                                        cold_plain)):
                fresh = make()
                start = time.perf_counter()
                fresh.score(batch)
                into.append(time.perf_counter() - start)
        cold_s = min(cold)  # (set beside a fresh plain scorer's first call: warm-ups alike)
        print(f"{n:>8,} {plain_s:>13.6f} {private_s:>15.6f} {private_s / plain_s:>14.2f} {cold_s:>15.6f} "
              f"{cold_s / min(cold_plain):>11.2f}", flush=True)

    pool = later.iloc[offset:offset + 2 * args.single]
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in pool[["tenant_id", "message_id", "timestamp", "sender", "recipients", "sender_display_name",
                           "spf", "dkim", "dmarc", "direction"]].to_dict("records")]
    warm, timed = rows[:args.single], rows[args.single:]
    for scorer in (theirs, ours):
        for m in warm[:1000]:
            scorer.score_one(m)
    for label in ("first sight", "seen before"):
        (p50, p99), (q50, q99) = _percentiles(theirs, timed), _percentiles(ours, timed)
        print(f"score_one over {len(timed):,} messages ({label}): plain p50 {p50:.1f} us p99 {p99:.1f} us; "
              f"privacy p50 {q50:.1f} us p99 {q99:.1f} us; privacy/plain at p50 {q50 / p50:.2f}")

    strings = [f"user{i}@domain{i % 997}.com" for i in range(200_000)]
    start = time.perf_counter()
    for s in strings:
        stable_key(s, secret=SECRET)
    keyed = (time.perf_counter() - start) / len(strings)
    start = time.perf_counter()
    for s in strings:
        stable_key(s)
    plain_hash = (time.perf_counter() - start) / len(strings)
    print(f"stable_key per string: keyed BLAKE2b {keyed * 1e9:.0f} ns, XXH3 {plain_hash * 1e9:.0f} ns "
          f"({keyed / plain_hash:.1f}x); a privacy tenant's memo keeps up to 2 x {KEY_MEMO_LIMIT:,} strings")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
