"""Backfill speed: leak-free signals for a whole history, beside a streaming dict pass and per-message rebuilds.

    python -m benchmarks.bench_backfill --messages 1000000

Input: ``--tenants`` tenants (sizes 1, 1/2, 1/3, ... of the largest) over
``--days`` days, ``--messages`` messages with 1 to 8 recipients (about 3 edges
a message): inbound mail from Zipf-distributed external senders (some on
freemail, a few impersonating an internal display name), internal mail and
outbound replies, authentication results, and labels (safe, spam, attack)
that arrive hours to days late. Validated beforehand (validation is the graph
layer's cost, measured by bench_ingest).

Reported, single-threaded, in one run:

* the compiled kernels of the point-in-time sweeps (numba), warmed explicitly
  before the first timed run: the seconds it took, and whether they were
  compiled (an empty or stale numba cache: about a second) or loaded from the
  cache (a fraction of one). Every process that backfills pays this once, on
  its first call; it is printed apart so that the backfill figures below are
  the work itself;
* ours: ``backfill(messages, prior_every="1D")`` (every count exact to the
  message, the empirical-Bayes priors refitted daily) and
  ``backfill(messages, mode="as_deployed")`` (daily refreshes): seconds, edges/s,
  and the peak resident memory of the process (the validated input included);
  the fresh one twice: the process's first run (kernel time for first touching
  its memory included: what a one-off job pays, and what the ratios use) and a
  second, with CPU split into user and kernel time;
* peer (a): one pass in time order with Python dicts computing the same 35
  signals (``benchmarks/_backfill_peer.py``), on the first ``--peer-messages``
  messages of the history (all by default); its output is checked equal to ours;
* peer (b): what backfill replaces, a snapshot rebuilt (``build_baselines``)
  before each message, then the message scored: timed on ``--naive-samples``
  messages spread over a ``--naive-messages``-message history, per message,
  beside ours per message on that same history (also with exact per-instant priors);
* the ratios, and the prior fits' share of our time;
* the allocator's share: the fresh run again in two child processes, four times each (the
  history handed over pickled), one with glibc's default allocator settings
  and one with ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` set
  as the README advises for backfill jobs (:data:`KEEP_FREED_MEMORY`). By
  default glibc hands freed memory back to the kernel as soon as a tenant's
  temporaries are gone, and the next tenant's first touch of it costs kernel
  time again; kept, it is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks._memory import status_mib
from benchmarks._timing import PhaseTimer

DAY = 86_400

#: glibc settings that keep freed memory in the process (README, "Leak-free backfill"): up to 1 GiB freed at
#: the top of the heap is kept instead of handed back, so each tenant reuses the pages the previous one
#: touched; blocks of 32 MiB and more (glibc's own ceiling for its adaptive threshold) are still mapped
#: apart, where numpy asks for huge pages (256 MiB measured slower: those arrays lost them).
KEEP_FREED_MEMORY = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 25)}


def _reset_peak() -> None:
    # Linux: writing 5 resets the peak resident size (VmHWM) to the current one.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def synthetic_history(n_messages: int, *, tenants: int = 10, days: int = 60, seed: int = 0) -> tuple[pd.DataFrame,
                                                                                                     list[dict]]:
    """One row per (message, recipient) of ``tenants`` tenants; and their configurations."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, tenants + 1)
    sizes = np.maximum(1, np.round(n_messages * weights / weights.sum())).astype(int)
    sizes[0] += n_messages - sizes.sum()
    frames, configs = [], []
    freemail = np.array(["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "gmx.de", "proton.me"])
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 10**9
    for t, n in enumerate(sizes.tolist()):
        own = f"tenant{t}.com"
        configs.append({"tenant_id": f"t{t:02d}", "own_domains": [own]})
        n_box = max(20, n // 150)
        n_ext = max(50, n // 8)
        n_dom = max(20, n_ext // 6)
        boxes = np.char.add(np.char.add("u", np.arange(n_box).astype(str)), "@" + own)
        box_names = np.char.add("Staff ", np.arange(n_box).astype(str))
        ext_domains = np.char.add(np.char.add("ext", np.arange(n_dom).astype(str)), f"-{t}.com")
        dom_of_ext = (rng.zipf(1.4, n_ext) - 1) % n_dom
        ext_domain = np.where(rng.random(n_ext) < 0.1, freemail[rng.integers(0, len(freemail), n_ext)],
                              ext_domains[dom_of_ext])
        exts = np.char.add(np.char.add(np.char.add("p", np.arange(n_ext).astype(str)), "@"), ext_domain)
        ext_names = np.char.add("Person ", np.arange(n_ext).astype(str))
        kind = rng.choice(3, n, p=[0.55, 0.30, 0.15])  # inbound, internal, outbound
        ts = start + np.sort(rng.integers(0, days * DAY, n))
        who_box = (rng.zipf(1.3, n) - 1) % n_box
        who_ext = (rng.zipf(1.2, n) - 1) % n_ext
        sender = np.where(kind == 0, exts[who_ext], boxes[who_box])
        name = np.where(kind == 0, ext_names[who_ext], box_names[who_box])
        impersonation = (kind == 0) & (rng.random(n) < 0.01)
        name = np.where(impersonation, box_names[rng.integers(0, n_box, n)], name)
        k = np.minimum(1 + rng.poisson(2.0, n), 8)
        message = np.repeat(np.arange(n), k)
        to_ext = kind[message] == 2
        recipient = np.where(to_ext, exts[(rng.zipf(1.2, len(message)) - 1) % n_ext],
                             boxes[(rng.zipf(1.3, len(message)) - 1) % n_box])
        direction = np.array(["inbound", "internal", "outbound"])[kind]
        label = np.full(n, None, dtype=object)
        u = rng.random(n)
        inbound = kind == 0
        label[inbound & (u < 0.01)] = "safe"
        label[inbound & (u >= 0.01) & (u < 0.015)] = "spam"
        label[inbound & (u >= 0.015) & (u < 0.016)] = "attack"
        delay = (rng.lognormal(2.0, 1.0, n) * 3600).astype(np.int64)  # hours to days after the message
        labeled = pd.Series(label).notna().to_numpy()
        labeled_at = pd.Series(pd.to_datetime(ts + delay, unit="s", utc=True)).where(labeled)
        auth = np.array(["pass", "fail", "none"])
        frame = pd.DataFrame({
            "tenant_id": f"t{t:02d}", "message_id": np.char.add(f"t{t}-", np.arange(n).astype(str))[message],
            "timestamp": pd.to_datetime(ts[message], unit="s", utc=True), "sender": sender[message],
            "sender_display_name": name[message], "recipient": recipient, "direction": direction[message],
            "spf": auth[rng.choice(3, n, p=[0.9, 0.05, 0.05])][message],
            "dkim": np.where(rng.random(n) < 0.95, "pass", "fail")[message],
            "dmarc": auth[rng.choice(3, n, p=[0.93, 0.04, 0.03])][message],
            "label": label[message], "labeled_at": labeled_at.to_numpy()[message],
        })
        frames.append(frame.drop_duplicates(["message_id", "recipient"]))  # a recipient drawn twice is one edge
    return pd.concat(frames, ignore_index=True), configs


def _ours(messages, **kwargs) -> tuple[float, float, pd.DataFrame, float]:
    """Wall seconds, peak MiB, the output, and CPU seconds of one backfill."""
    wall, mib, out, cpu, _ = _ours_split(messages, **kwargs)
    return wall, mib, out, cpu


def _ours_split(messages, **kwargs) -> tuple[float, float, pd.DataFrame, float, tuple[float, float]]:
    """:func:`_ours`, and the CPU seconds split into user and kernel time (page faults of fresh memory)."""
    import resource

    from commgraph.signals import backfill

    _reset_peak()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start, cpu = time.perf_counter(), time.process_time()
    out = backfill(messages, **kwargs)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, status_mib("VmHWM"), out, cpu, (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)


def _prior_time(messages, **kwargs) -> float:
    """CPU seconds our run spends fitting priors (the part a snapshot refresh also pays, per tenant and day)."""
    from commgraph.baselines import _priors_in_time
    from commgraph.signals import backfill

    timer = PhaseTimer(time.process_time)
    timer.wrap(_priors_in_time, "fit_summaries")
    try:
        backfill(messages, **kwargs)
    finally:
        timer.restore()
    return timer.seconds["fit_summaries"]


def _compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    differ = []
    for name in theirs.columns:
        a, b = ours[name].to_numpy(np.float64), theirs[name].to_numpy(np.float32).astype(np.float64)
        if not np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True).all():
            differ.append(f"{name} ({int((~np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True)).sum())} rows)")
    return differ


def _head(raw: pd.DataFrame, n_messages: int) -> pd.DataFrame:
    """The rows of the first ``n_messages`` messages in time order (every tenant's earliest mail)."""
    first = raw.drop_duplicates(["tenant_id", "message_id"]).sort_values("timestamp", kind="stable")
    keep = first.head(n_messages)[["tenant_id", "message_id"]]
    return raw.merge(keep, on=["tenant_id", "message_id"])


def _child(path: str) -> None:
    """In a child process: the fresh backfill of the pickled history at ``path``, four times; the first run's CPU
    split and the best later one's, printed as JSON. (Later runs vary with how much memory the machine hands
    the process fresh: their best is the allocator's steady state.)"""
    from commgraph.baselines._sweeps import warm_up

    with open(path, "rb") as f:
        messages = pickle.load(f)
    warm_up()
    runs = [{"cpu": r[3], "user": r[4][0], "kernel": r[4][1], "mib": r[1]}
            for r in (_ours_split(messages, prior_every="1D") for _ in range(4))]
    print(json.dumps([runs[0], min(runs[1:], key=lambda r: r["cpu"])]))


def _allocator_runs(messages) -> dict[str, list[dict[str, float]]]:
    """The fresh backfill in a child process with glibc's defaults, and in one keeping freed memory."""
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "messages.pkl")
        with open(path, "wb") as f:
            pickle.dump(messages, f, protocol=pickle.HIGHEST_PROTOCOL)
        base = {k: v for k, v in os.environ.items() if k not in KEEP_FREED_MEMORY}
        for name, env in (("default", base), ("kept", {**base, **KEEP_FREED_MEMORY})):
            child = subprocess.run([sys.executable, "-m", "benchmarks.bench_backfill", "--child", path], env=env,
                                   capture_output=True, text=True, check=True)
            out[name] = json.loads(child.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--peer-messages", type=int, default=0, help="messages the dict peer runs on (0: all)")
    parser.add_argument("--naive-messages", type=int, default=10_000)
    parser.add_argument("--naive-samples", type=int, default=100)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # (the allocator runs' child processes)
    parser.add_argument("--no-allocator-runs", action="store_true",
                        help="skip the fresh run in child processes with and without KEEP_FREED_MEMORY")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return {}
    from benchmarks._backfill_peer import StreamingBackfill
    from commgraph.baselines import BaselineConfig, build_baselines
    from commgraph.graph import validate
    from commgraph.signals import SignalSet

    t0 = time.perf_counter()
    raw, tenants = synthetic_history(args.messages, tenants=args.tenants, days=args.days)
    messages = validate(raw, tenants=tenants)
    del raw
    n_edges = len(messages.edges())
    print(f"history: {len(messages):,} messages, {n_edges:,} edges, {args.tenants} tenants, {args.days} days "
          f"(made and validated in {time.perf_counter() - t0:.0f} s; process {status_mib('VmRSS'):,.0f} MiB)")
    results: dict = {"messages": len(messages), "edges": n_edges}

    # The kernels' one-off compile (or cache load) is paid before the timed runs and reported apart.
    from commgraph.baselines._sweeps import warm_up

    jit = warm_up()
    results.update(jit_s=jit.seconds, jit_compiled=jit.compiled, jit_loaded=jit.loaded)
    how = (f"compiled {jit.compiled}" if jit.compiled else "") + (", " if jit.compiled and jit.loaded else "") + (
        f"loaded {jit.loaded} from numba's cache" if jit.loaded else "")
    print(f"compiled kernels (numba), warmed before the timed runs: {jit.seconds:.2f} s ({how or 'already warm'}); "
          "not in the figures below")

    # On a shared machine wall time includes waiting for a core: CPU seconds are the per-core figure.
    # The process's first backfill pays the kernel for first touching its memory (a one-off job's
    # case, and the figure the ratios use); later ones reuse what the allocator kept.
    fresh_s, fresh_mib, ours, fresh_cpu, (fresh_user, fresh_kernel) = _ours_split(messages, prior_every="1D")
    again_s, _, _, again_cpu, (again_user, again_kernel) = _ours_split(messages, prior_every="1D")
    deployed_s, deployed_mib, _, deployed_cpu = _ours(messages, mode="as_deployed")
    priors_s = _prior_time(messages, prior_every="1D")
    results.update(fresh_s=fresh_s, deployed_s=deployed_s, priors_s=priors_s, fresh_cpu=fresh_cpu,
                   deployed_cpu=deployed_cpu, again_cpu=again_cpu, fresh_kernel=fresh_kernel)
    for label, wall, cpu, mib in (("fresh (priors daily)", fresh_s, fresh_cpu, fresh_mib),
                                  ("as deployed (daily)", deployed_s, deployed_cpu, deployed_mib)):
        print(f"ours, {label:<21} {wall:7.2f} s wall, {cpu:7.2f} s CPU  {n_edges / cpu / 1e6:5.2f}M edges/s per "
              f"core  peak {mib:,.0f} MiB")
    print(f"  fresh, the process's first run: user {fresh_user:.2f} s + kernel {fresh_kernel:.2f} s (first touch of "
          f"its memory); run again: {again_cpu:.2f} s CPU (user {again_user:.2f} s + kernel {again_kernel:.2f} s), "
          f"{n_edges / again_cpu / 1e6:.2f}M edges/s per core")
    print(f"  prior fits (the snapshots' own fits, per tenant, kind and day): {priors_s:.2f} s CPU of the fresh run; "
          f"the rest {n_edges / max(fresh_cpu - priors_s, 1e-9) / 1e6:.2f}M edges/s per core")
    if not args.no_allocator_runs:
        runs = _allocator_runs(messages)
        results["allocator"] = runs
        for name, label in (("default", "glibc's defaults"), ("kept", "freed memory kept (KEEP_FREED_MEMORY)")):
            first, again = runs[name]
            print(f"  child process, {label}: first run {first['cpu']:.2f} s CPU (user {first['user']:.2f} s + "
                  f"kernel {first['kernel']:.2f} s), {n_edges / first['cpu'] / 1e6:.2f}M edges/s per core, peak "
                  f"{first['mib']:,.0f} MiB; best of 3 more {again['cpu']:.2f} s CPU (kernel {again['kernel']:.2f} s), "
                  f"{n_edges / again['cpu'] / 1e6:.2f}M edges/s per core")

    # ---- peer (a): one pass with dicts, over the first messages of the history
    subset = messages
    if args.peer_messages and args.peer_messages < len(messages):
        raw, tenants = synthetic_history(args.messages, tenants=args.tenants, days=args.days)
        subset = validate(_head(raw, args.peer_messages), tenants=tenants)
        del raw
    sub_edges = subset.edges()
    start, cpu = time.perf_counter(), time.process_time()
    peer = StreamingBackfill(BaselineConfig(), [c["tenant_id"] for c in tenants],
                             own_domains=subset.own_domains).run(subset.frame, sub_edges)
    peer_s, peer_cpu = time.perf_counter() - start, time.process_time() - cpu
    if subset is messages:
        mine, ours_sub_s, ours_sub_cpu = ours, fresh_s, fresh_cpu
    else:
        ours_sub_s, _, mine, ours_sub_cpu = _ours(subset, prior_every="1D")
    differ = _compare(mine, peer)
    results.update(peer_s=peer_s, peer_cpu=peer_cpu, peer_edges=len(sub_edges), ours_on_peer_s=ours_sub_s,
                   ours_on_peer_cpu=ours_sub_cpu, peer_differ=differ)
    print(f"peer (a), one pass with dicts, {len(subset):,} messages / {len(sub_edges):,} edges: {peer_s:7.1f} s wall, "
          f"{peer_cpu:7.1f} s CPU ({len(sub_edges) / peer_cpu / 1e6:5.3f}M edges/s); ours on the same: "
          f"{ours_sub_cpu:.2f} s CPU => {peer_cpu / ours_sub_cpu:.1f}x (wall: {peer_s / ours_sub_s:.1f}x)")
    print(f"  peer == ours (all 35 signals, every edge): {'yes' if not differ else 'NO: ' + ', '.join(differ)}")

    # ---- peer (b): a snapshot rebuilt before each message, on a smaller history
    raw, tenants = synthetic_history(args.naive_messages, tenants=min(args.tenants, 3), days=args.days, seed=1)
    small = validate(raw, tenants=tenants)
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(len(small), min(args.naive_samples, len(small)), replace=False))
    signal_set = SignalSet()
    rows_of = raw.groupby(["tenant_id", "message_id"], sort=False).indices
    cpu = time.process_time()
    for position in picks.tolist():
        row = small.frame.iloc[position]
        snapshots = build_baselines(small, as_of=row["timestamp"])
        batch = validate(raw.iloc[rows_of[(row["tenant_id"], row["message_id"])]], tenants=tenants)
        signal_set.compute(batch, snapshots)
    naive_per_message = (time.process_time() - cpu) / len(picks)  # CPU seconds, as ours below
    small_fresh_s = _ours(small, prior_every="1D")[3]
    small_exact_s = _ours(small)[3]
    per_message = small_fresh_s / len(small)
    results.update(naive_per_message_s=naive_per_message, ours_small_per_message_s=per_message,
                   ours_small_exact_s=small_exact_s)
    full_per_message = fresh_cpu / len(messages)
    print(f"peer (b), rebuild before each message, {len(small):,}-message history: {naive_per_message * 1e3:,.1f} ms "
          f"CPU a message (mean of {len(picks)}; all {len(small):,}: ~{naive_per_message * len(small) / 60:,.0f} min)")
    print(f"  ours on that history: {small_fresh_s:.2f} s CPU, {per_message * 1e6:,.1f} us a message "
          f"=> {naive_per_message / per_message:,.0f}x per message; at full scale {full_per_message * 1e6:.2f} "
          f"us a message => {naive_per_message / full_per_message:,.0f}x")
    print(f"  ours with exact priors (refitted at every message's instant): {small_exact_s:.2f} s CPU "
          f"=> {naive_per_message / (small_exact_s / len(small)):,.0f}x per message")
    return results


if __name__ == "__main__":
    main()
