"""Benchmark: the synthetic mail generator against a per-message Python loop, in one run.

Usage::

    python -m benchmarks.bench_generate [--edges 10000000] [--peer-messages 20000]

Prints our figure (edges/s, wall time, peak resident memory of a fresh process
that only generates) and, as the peer, a straightforward generator that builds
one dict per message in a Python loop (same kinds of senders, recipients, times,
auth results and labels), timed on a small size and extrapolated per edge. The
ratio is what to quote: absolute numbers vary 10-30% between runs.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import random
import subprocess
import sys
import time

import pandas as pd

from benchmarks._memory import status_mib


def _edges(frame: pd.DataFrame) -> int:
    total = 0
    for col in ("to", "cc"):
        s = frame[col].dropna()
        total += int(s.str.count(";").sum()) + len(s)
    return total


def _ours(tenants: int, days: int, scale: float) -> dict:
    from commgraph.graph import generate

    t0 = time.perf_counter()
    mail = generate(tenants=tenants, days=days, scale=scale, random_state=0)
    wall = time.perf_counter() - t0
    peak = status_mib("VmHWM") * 2**20
    m = mail.messages
    return {"messages": len(m), "edges": _edges(m), "wall_s": wall, "peak_bytes": peak}


def _peer(n_messages: int, seed: int = 0) -> dict:
    """A straightforward generator: one Python dict per message."""
    rng = random.Random(seed)
    employees = [f"user{i}@tenant.example" for i in range(2000)]
    weights = [rng.paretovariate(1.2) for _ in employees]
    externals = [f"contact{i}@org{i % 300}.example" for i in range(1500)]
    ext_weights = [rng.paretovariate(1.2) for _ in externals]
    subjects = ["Weekly sync", "Invoice", "Project update", "Newsletter", "Quick question"]
    start = datetime.datetime(2025, 1, 6, tzinfo=datetime.timezone.utc)
    hours = list(range(24))
    hour_w = [1, .5, .3, .3, .3, .6, 2, 5, 10, 13, 13, 12, 9, 11, 13, 12, 10, 7, 4, 3, 2.5, 2, 1.5, 1]
    # Running sums of the weights, made once: random.choices would add up all 2,000 weights at every draw.
    weights, ext_weights, hour_w = (list(itertools.accumulate(w)) for w in (weights, ext_weights, hour_w))
    t0 = time.perf_counter()
    rows = []
    for i in range(n_messages):
        kind = rng.random()
        day = rng.randrange(30)
        ts = start + datetime.timedelta(days=day, hours=rng.choices(hours, cum_weights=hour_w)[0],
                                        seconds=rng.randrange(3600))
        if kind < 0.4:
            sender = rng.choices(employees, cum_weights=weights)[0]
            rcpts = rng.sample(employees, 1 + int(rng.expovariate(1.5)))
            direction = "internal"
        elif kind < 0.8:
            sender = rng.choices(externals, cum_weights=ext_weights)[0]
            rcpts = [rng.choices(employees, cum_weights=weights)[0]]
            direction = "inbound"
        else:
            sender = rng.choices(employees, cum_weights=weights)[0]
            rcpts = [rng.choices(externals, cum_weights=ext_weights)[0]]
            direction = "outbound"
        label = "safe" if rng.random() < 0.02 else None
        rows.append({
            "tenant_id": "tenant", "message_id": f"{rng.getrandbits(63)}@{sender.split('@')[1]}",
            "timestamp": ts, "sender": sender, "to": ";".join(rcpts[:1]),
            "cc": ";".join(rcpts[1:]) or None, "direction": direction,
            "subject": rng.choice(subjects), "spf": "pass", "dkim": "pass", "dmarc": "pass",
            "label": label, "labeled_at": ts + datetime.timedelta(hours=5) if label else None, "scenario": None,
        })
    frame = pd.DataFrame(rows)
    wall = time.perf_counter() - t0
    return {"messages": len(frame), "edges": _edges(frame), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=10_000_000, help="target edges (default 10M)")
    parser.add_argument("--peer-messages", type=int, default=20_000, help="messages for the peer (default 20k)")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # the measured run, alone in its process
        print(json.dumps(_ours(args.tenants, args.days, args.child)))
        return 0

    # Calibrate the scale so the run lands near the target number of edges.
    probe = _ours(args.tenants, args.days, 1.0)
    scale = args.edges / probe["edges"]
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_generate", "--tenants", str(args.tenants),
                          "--days", str(args.days), "--child", repr(scale)], capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout)
    peer = _peer(args.peer_messages)
    ours_rate = ours["edges"] / ours["wall_s"]
    peer_rate = peer["edges"] / peer["wall_s"]
    print(f"generate(tenants={args.tenants}, days={args.days}, scale={scale:.2f}) on this machine")
    print(f"  ours : {ours['messages']:,} messages, {ours['edges']:,} edges in {ours['wall_s']:.1f} s "
          f"= {ours_rate / 1e6:.2f}M edges/s; peak RSS {ours['peak_bytes'] / 2**30:.2f} GiB")
    print(f"  peer : per-message Python loop, {peer['messages']:,} messages, {peer['edges']:,} edges in "
          f"{peer['wall_s']:.2f} s = {peer_rate / 1e3:.0f}k edges/s; "
          f"{ours['edges'] / peer_rate:.0f} s extrapolated to {ours['edges']:,} edges")
    print(f"  ratio: ours is {ours_rate / peer_rate:.0f}x the peer's edges/s")
    print(f"  budget: <= 60 s and <= 4 GiB for 10M edges -> "
          f"{'met' if ours['wall_s'] * 1e7 / ours['edges'] <= 60 and ours['peak_bytes'] <= 4 * 2**30 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
