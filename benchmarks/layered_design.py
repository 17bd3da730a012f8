"""What a layered snapshot store (a base plus daily deltas) would save a refresh and cost the engine's reads.

    python -m benchmarks.layered_design --cache FILE     # ~10M edges, 100 tenants (as bench_baselines)
    python -m benchmarks.layered_design --scale 0.05     # ~2M edges, a quick run

Today a snapshot holds every row of every table as of its ``as_of``, so a
refresh derives and writes every row, and the engine finds a key with one
probe of one hash index. A layered store would write only the rows a day
changes, as a delta over an earlier full snapshot, and value the columns that
change on every row each day (decayed counts, likelihoods) when read. This
measures the two sides of that trade on ``bench_baselines``' input:

1. **What a delta holds.** Snapshots built as of each midnight of the week
   that ends with ``profile_refresh``'s day (the last working day), against
   the snapshot a week before: per table, the share of its rows that are new
   or differ from the base (``single``: one delta over the base, rewritten
   each day) and from the day before (``daily``: one more layer a day),
   apart from the decayed counts and likelihoods.
2. **What a read costs.** The pair keys of every tenant in one index (about
   the size of the largest tables the engine serves), and ``L`` daily layers
   of a fifth of those keys each (a day changes 16-22% of the pairs and
   senders): the best time to find a batch of keys (a quarter of them never
   seen) newest layer first, then in the base, against one probe of the base
   (``L = 0``, today), for batches of 1, 64 and 1,024 keys. Only the probes
   are timed: each gather would also read from as many arrays.
3. **What a refresh of only the touched history costs.** ``refresh_many`` of
   ``profile_refresh``'s day from snapshots built over only the messages with
   an edge in a pair the day touches (mail that day; mail on the days leaving
   the 7, 30 and 90-day windows and the settle delay; the reverse of the day's
   pairs), beside the same refresh from the whole history, phase by phase: how
   much of a refresh's cost would go if it worked on what the day changes.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

import numpy as np

from ._delta import delta_summary
from .bench_baselines import add_input_arguments, load_messages, refresh_day

#: The layer counts and batch sizes the read side is timed at.
LAYERS = (0, 1, 3, 7)
BATCHES = (1, 64, 1024)


def layered_positions(layers: Sequence[object], queries: np.ndarray,
                      probe: Callable[[object, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each key's layer and row, looked up newest layer first: ``layers`` run from the newest delta to the base.

    Returns, per query, the number of the first layer that holds it (-1 when none does) and its row in that
    layer (-1 when none does). ``probe(index, keys)`` gives rows in one layer, -1 where absent.

    Examples
    --------
    >>> from commgraph.baselines import KeyIndex
    >>> base = KeyIndex.build(np.array([1, 2, 3], dtype=np.uint64))
    >>> newest = KeyIndex.build(np.array([3, 9], dtype=np.uint64))
    >>> layer, row = layered_positions([newest, base], np.array([3, 1, 7, 9], dtype=np.uint64),
    ...                                lambda index, keys: index.get(keys))
    >>> layer.tolist(), row.tolist()
    ([0, 1, -1, 0], [0, 0, -1, 1])
    """
    layer = np.full(len(queries), -1, np.int64)
    row = np.full(len(queries), -1, np.int64)
    left = np.arange(len(queries))
    for number, index in enumerate(layers):
        if not len(left):
            break
        found = probe(index, queries[left])
        hit = found >= 0
        layer[left[hit]] = number
        row[left[hit]] = found[hit]
        left = left[~hit]
    return layer, row


def _best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def delta_shares(m, config) -> list[tuple[object, dict[str, tuple[float, float]]]]:
    """Per midnight of the week after the base: per table, the (single, daily) shares of rows new or changed."""
    import pandas as pd

    from commgraph.baselines import build_baselines
    from commgraph.baselines._tables import KEY_COLUMNS

    _, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    day = pd.Timedelta(days=1)
    base = previous = build_baselines(m, as_of=end - 7 * day, config=config, n_jobs=2)
    out = []
    for k in range(1, 8):
        at = end - (7 - k) * day
        snapshots = build_baselines(m, as_of=at, config=config, n_jobs=2)
        single = delta_summary(base, snapshots, KEY_COLUMNS)
        daily = delta_summary(previous, snapshots, KEY_COLUMNS)
        out.append((at, {table: tuple((n[table]["new"] + n[table]["changed_by_mail"]) / max(n[table]["rows"], 1)
                                      for n in (single, daily)) for table in single}))
        previous = snapshots
    return out


def read_costs(keys: np.ndarray, repeat: int, random_state: int = 0) -> dict[int, dict[int, float]]:
    """Per batch size, per layer count: the best seconds to find a batch's keys (see the module's second point)."""
    from commgraph.baselines import KeyIndex
    from commgraph.signals._view import probe

    rng = np.random.default_rng(random_state)
    base = KeyIndex.build(keys)
    deltas = [KeyIndex.build(np.sort(rng.choice(keys, max(len(keys) // 5, 1), replace=False)))
              for _ in range(max(LAYERS))]
    out: dict[int, dict[int, float]] = {}
    for batch in BATCHES:
        queries = keys[rng.integers(0, len(keys), batch)]
        queries[::4] = rng.integers(2**63, 2**64 - 1, len(queries[::4]), dtype=np.uint64)  # (never seen)
        out[batch] = {}
        for n_layers in LAYERS:
            layers = [*deltas[:n_layers], base]
            out[batch][n_layers] = _best_seconds(lambda: layered_positions(layers, queries, probe), repeat)
    return out


def _pair_ids(tenant: np.ndarray, sender: np.ndarray, recipient: np.ndarray) -> np.ndarray:
    """One uint64 per (tenant, sender, recipient): a mix of the three (a collision would only blur an estimate)."""
    with np.errstate(over="ignore"):
        return (sender * np.uint64(0x9E3779B97F4A7C15)) ^ (recipient * np.uint64(0xC2B2AE3D27D4EB4F)) \
            ^ (tenant.astype(np.uint64) * np.uint64(0x165667B19E3779F9))


def touched_history(m):
    """The messages before ``profile_refresh``'s day with an edge in a pair the day touches (see point 3)."""
    import pandas as pd

    from commgraph.graph import Messages

    start, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    e = m.edges()
    ts = e["timestamp"]
    tenant = e["tenant_id"].cat.codes.to_numpy()
    sender, recipient = e["sender_key"].to_numpy(), e["recipient_key"].to_numpy()
    day = ((ts >= start) & (ts < end)).to_numpy()
    marked = day.copy()
    for days in (7, 30, 90):  # the windows (the settle delay is 7 days too)
        shift = pd.Timedelta(days=days)
        marked |= ((ts >= start - shift) & (ts < end - shift)).to_numpy()
    pairs = _pair_ids(tenant, sender, recipient)
    touched = np.union1d(pairs[marked], _pair_ids(tenant[day], recipient[day], sender[day]))
    index = e["message_index"].to_numpy()
    keep = np.zeros(len(m.frame), bool)
    keep[index[np.isin(pairs, touched)]] = True
    keep &= (m.frame["timestamp"] < start).to_numpy()
    positions = np.flatnonzero(keep)
    chosen = keep[index]
    edges = e[chosen].reset_index(drop=True)
    renumber = np.full(len(m.frame), -1, np.int64)
    renumber[positions] = np.arange(len(positions))
    edges["message_index"] = renumber[index[chosen]].astype(e["message_index"].dtype)
    return Messages(m.frame.iloc[positions], edges, m.rejects.iloc[:0])


def touched_refresh(m, config, repeat: int) -> dict[str, tuple[dict[str, float], int, int]]:
    """Per history (``touched``, ``whole``): the refresh's best phase seconds, and the base snapshots' pairs and
    senders."""
    from commgraph.baselines import build_baselines, refresh_many

    from .bench_baselines import time_slice
    from .profile_refresh import _best, phase_timer

    start, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    day = time_slice(m, start, end)
    pooled = dict(next(iter(build_baselines(m, as_of=end, config=config, n_jobs=2).values())).priors["global"])
    out = {}
    for name, history in (("touched", touched_history(m)), ("whole", m)):
        snapshots = build_baselines(history, as_of=start, config=config, n_jobs=2)
        for snapshot in snapshots.values():
            snapshot.state_tables()  # (the Arrow form the store holds: each run decodes it, as a job does)

        def run() -> None:
            for snapshot in snapshots.values():
                snapshot.state = None
            refresh_many(snapshots, day, as_of=end, global_prior=pooled)

        timer = phase_timer()
        try:
            phases = _best(run, timer, repeat)
        finally:
            timer.restore()
        out[name] = (phases, sum(len(s.table("pair")) for s in snapshots.values()),
                     sum(len(s.table("sender")) for s in snapshots.values()))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--repeat", type=int, default=300, help="runs per timed lookup (best)")
    parser.add_argument("--refresh-repeat", type=int, default=3, help="runs per timed refresh (best)")
    args = parser.parse_args(argv)

    from commgraph.baselines import BaselineConfig, build_baselines

    m = load_messages(args.scale, args.days, args.tenants, args.cache)
    config = BaselineConfig()
    print(f"input: {len(m.edges()):,} edges, {m.frame['tenant_id'].nunique()} tenants")
    print("rows new or changed apart from decayed counts and likelihoods: since the base a week before (a single "
          "delta) / since the day before (a daily layer)")
    for at, shares in delta_shares(m, config):
        print(f"  {at:%a %Y-%m-%d}: " + "; ".join(f"{table} {single:.1%} / {daily:.1%}"
                                                  for table, (single, daily) in shares.items()))
    _, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    snapshots = build_baselines(m, as_of=end, config=config, n_jobs=2)
    keys = np.unique(np.concatenate([s.column("pair", "pair_key") for s in snapshots.values()]))
    print(f"lookups of pair keys ({len(keys):,} in the base; each layer a fifth of them), newest layer first, "
          f"best of {args.repeat}:")
    for batch, costs in read_costs(keys, args.repeat).items():
        today = costs[0]
        print(f"  batch of {batch:,}: " + ", ".join(f"{n} layers {s * 1e6:,.1f} us ({s / today:.1f}x)"
                                                 for n, s in costs.items()))
    from .profile_refresh import _line

    print(f"refresh_many of the day (best of {args.refresh_repeat}), from snapshots of:")
    for name, (phases, pairs, senders) in touched_refresh(m, config, args.refresh_repeat).items():
        print(f"  the {name} history ({pairs:,} pairs, {senders:,} senders): {_line(phases)}")


if __name__ == "__main__":
    main()
