"""The live overlay: observe a batch of scored mail, then the first lookup after it, beside a rebuild, in one run.

    python -m benchmarks.bench_overlay --senders 100000 --batch 1000 --rounds 5

Input: the one-tenant snapshot of ``bench_signals`` (``--senders`` distinct
external senders over 60 days, 5,000 mailboxes), served by a :class:`Scorer`;
then rounds of ``--batch`` later messages (5% of senders never seen).

Reported per round, best and median over ``--rounds`` (single-threaded):
* ``observe``: validating the raw batch and folding it into the delta;
* first ``score_one`` after it: builds the tenant's combined view (one
  refresh of the snapshot with the delta, its indexes and caches), then scores;
* a second ``score_one``: what every lookup until the next observe costs;
* the first ``score`` of a 1,000-edge batch after an observe (same build);
* peer: what the same freshness costs without an overlay: validating the new
  batch (the history was validated once, before the rounds), rebuilding the
  snapshot over the history plus the observed mail (``build_baselines``) and
  serving it (a new ``Scorer``), then the same ``score_one``.
The combined view is checked equal to the rebuild (every table) on the last round.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from benchmarks._memory import status_mib
from benchmarks.bench_signals import synthetic_mail


def _one(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=100_000, help="distinct senders in the snapshot")
    parser.add_argument("--batch", type=int, default=1000, help="messages per observe call")
    parser.add_argument("--rounds", type=int, default=5, help="observe rounds (the peer rebuilds each time)")
    args = parser.parse_args(argv)
    from commgraph.baselines import build_baselines
    from commgraph.baselines._snapshot import table_differences
    from commgraph.graph import Messages, validate
    from commgraph.signals import Scorer

    history, later, configs = synthetic_mail(args.senders)
    as_of = pd.Timestamp("2024-03-01", tz="UTC")
    t0 = time.perf_counter()
    messages = validate(history, tenants=configs)
    snapshot = build_baselines(messages, as_of=as_of)["acme"]
    scorer = Scorer({"acme": snapshot}, tenant_configs=configs)
    print(f"snapshot: {snapshot} ({time.perf_counter() - t0:.1f} s to validate, build and serve)")
    columns = ["tenant_id", "message_id", "timestamp", "sender", "recipients", "sender_display_name", "spf", "dkim",
               "dmarc", "direction"]
    later = later[columns]
    probe_batch = validate(later.iloc[300_000:300_700], tenants=configs)  # about 1,000 edges
    probes = [_one(r) for r in later.iloc[300_700:300_700 + args.rounds * 2].to_dict("records")]
    for m in probes[:2]:
        scorer.score_one(m)  # warm: first-seen domains reach the look-alike cache
    scorer.score(probe_batch)

    rows: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("observe", "first score_one", "next score_one", "first score (1k edges)",
                        "peer: rebuild + serve + score_one")}

    def timed(name: str, fn) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        rows[name].append((time.perf_counter() - wall, time.thread_time() - cpu))

    observed: list[pd.DataFrame] = []
    observed_messages: list = []
    last: dict[str, object] = {}  # the peer's snapshot of the latest round, checked against ours
    for r in range(args.rounds):
        batch = later.iloc[r * args.batch:(r + 1) * args.batch]
        end = batch["timestamp"].max() + pd.Timedelta(1, "ns")
        observed.append(batch)
        probe = {**probes[2 * r], "timestamp": end}
        timed("observe", lambda: scorer.observe(batch, as_of=end))
        timed("first score_one", lambda: scorer.score_one(probe))
        timed("next score_one", lambda: scorer.score_one({**probes[2 * r + 1], "timestamp": end}))
        scorer.observe(batch.iloc[:0], as_of=end + pd.Timedelta(1, "ns"))  # a new as_of: the view is built again
        timed("first score (1k edges)", lambda: scorer.score(probe_batch))

        def peer() -> None:  # the same freshness by rebuilding over everything and serving the new snapshot
            # It validates the new batch, as observe does; the history was validated once, before the rounds.
            observed_messages.append(validate(batch, tenants=configs))
            whole = Messages.concat([messages, *observed_messages])
            last["rebuilt"] = build_baselines(whole, as_of=end + pd.Timedelta(1, "ns"))["acme"]
            Scorer({"acme": last["rebuilt"]}, tenant_configs=configs).score_one(probe)
        timed("peer: rebuild + serve + score_one", peer)
    served = scorer._view(scorer._loaded, "acme").snapshot
    differ = table_differences(served, last["rebuilt"])
    print(f"combined view == rebuild over history + observed mail (every table): "
          f"{'yes' if not differ else 'NO: ' + ', '.join(differ)}")
    print(f"\n{args.batch:,}-message observe rounds on a tenant with {args.senders:,} senders "
          f"({args.rounds} rounds; seconds)")
    print(f"{'step':<36} {'best wall':>10} {'median':>10} {'best CPU':>10}")
    for name, values in rows.items():
        wall = [w for w, _ in values]
        print(f"{name:<36} {min(wall):>10.4f} {float(np.median(wall)):>10.4f} {min(c for _, c in values):>10.4f}")
    ours = min(w for w, _ in rows["observe"]) + min(w for w, _ in rows["first score_one"])
    peer_best = min(w for w, _ in rows["peer: rebuild + serve + score_one"])
    print(f"\nobserve + first score_one: {ours:.3f} s; peer (rebuild + serve + score_one): {peer_best:.3f} s; "
          f"peer/ours {peer_best / ours:.1f}x (best of {args.rounds}; CPU time: the code's own cost on a shared machine)")
    print(f"peak memory {status_mib('VmHWM'):,.0f} MiB")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
