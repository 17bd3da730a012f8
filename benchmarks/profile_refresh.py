"""Where a one-day refresh spends its time, phase by phase, beside the same phases of a rebuild.

    python -m benchmarks.profile_refresh                 # ~10M edges, 100 tenants (as bench_baselines)
    python -m benchmarks.profile_refresh --scale 0.05    # ~2M edges, a quick run
    python -m benchmarks.profile_refresh --cprofile 25   # and refresh_many's top 25 functions (cumulative, own)

The input and the refresh are those of ``bench_baselines``: snapshots of every
tenant as of the start of the last working day (``refresh_day``: the last day
with at least the median day's mail), then that day's mail, one
process: refreshed tenant by tenant (``refresh`` of each, with its own day's
mail, as ``bench_baselines`` times it) and all at once (``refresh_many`` over
the day's mail of every tenant); the rebuild is ``build_baselines`` over the 90
days in one process. Both refreshes must give the same bytes (checked). A timer
wraps each phase (best of ``--repeat`` runs, wall seconds):

* refresh: ``state_decode`` (the previous state from its Arrow form, as a job
  loading the snapshots from the store pays it), ``tenant_events`` (the new
  rows, including ``extract``, the pass over the tenants' rows: one per tenant,
  or one for all with ``refresh_many``),
  ``advance`` (merging them into the state: lifetime, windows, settled labels),
  ``derive_many`` (every table of the tenants, derived together), ``_prior_requests`` (each kind's distinct (n, k) pairs),
  ``_fit_priors`` (the prior fits), ``_add_likelihoods`` (likelihood and
  credible-bound columns), ``_wrap`` (Arrow tables and the snapshot);
* rebuild: ``extract``, ``state_build``, then ``derive_many``,
  ``_tenant_priors`` (the three prior phases above, per tenant) and ``_finish``.

Before the timings it prints, per table over every tenant, the rows the day
adds and the rows it changes (in any column, and apart from the decayed
counts and likelihoods, which change on every row each day): what a refresh
in proportion to the new mail would write instead of every table. After the
two refreshes it times ``refresh_many`` of the same day from snapshots with
next to no history (built from the day's input alone, as of its start): the
day's own work and the per-tenant costs, which no refresh of the day avoids
by spending less on the history, and the speed-up such a refresh would reach;
then the same with the day's mail given to 1, 10 and all the tenants (their
ids rewritten), and what each tenant adds.

The phases after ``advance`` do the same work in both (the same tables come
out), so they bound the speed-up a refresh can reach while it derives every
table again.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from typing import Callable

from ._delta import delta_summary
from ._timing import PhaseTimer
from .bench_baselines import add_input_arguments, load_messages, refresh_day, snapshot_digest, time_slice


def _best(run: Callable[[], object], timer: PhaseTimer, repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(repeat):
        timer.seconds.clear()
        gc.collect()
        start = time.perf_counter()
        run()
        timer.seconds["total"] = time.perf_counter() - start
        if not best or timer.seconds["total"] < best["total"]:
            best = dict(timer.seconds)
    return best


def phase_timer() -> PhaseTimer:
    """A timer wrapped around each phase of a refresh (and of a rebuild); ``restore()`` unwraps them."""
    from commgraph.baselines import _build, _events, _snapshot, _state

    timer = PhaseTimer()
    for name in ("tenant_events", "derive_many", "_prior_requests", "_fit_priors", "_add_likelihoods", "_wrap",
                 "_tenant_priors", "_finish"):
        timer.wrap(_build, name)
    timer.wrap(_events.EventExtractor, "extract_many", "extract")
    timer.wrap(_build, "advance_many", "advance")  # the states of a batch together (refresh_many)
    timer.wrap(_state.TenantState, "advance")  # one state alone (refresh)
    timer.wrap(_state.TenantState, "build", "state_build")
    timer.wrap(_snapshot, "_state_from_arrow", "state_decode")
    return timer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best)")
    parser.add_argument("--cprofile", type=int, default=0, help="also profile one refresh: top N functions")
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args(argv)

    from commgraph.baselines import BaselineConfig, build_baselines, refresh, refresh_many
    from commgraph.baselines._tables import KEY_COLUMNS

    m = load_messages(args.scale, args.days, args.tenants, args.cache)
    # The new day is a working day (see refresh_day: the archive's last day may be a quiet Saturday).
    start, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    config = BaselineConfig()
    previous = build_baselines(m, as_of=start, config=config, n_jobs=2)
    for snapshot in previous.values():
        snapshot.state_tables()  # the Arrow form the store holds; each run decodes it, as a refresh job does
    new_day = {t: time_slice(m, start, end, t) for t in previous}
    whole_day = time_slice(m, start, end)  # every tenant's, for refresh_many
    pooled = dict(next(iter(build_baselines(m, as_of=end, config=config, n_jobs=2).values())).priors["global"])
    print(f"input: {len(m.edges()):,} edges, {len(previous)} tenants; new day: {start:%A %Y-%m-%d}, "
          f"{sum(len(x.edges()) for x in new_day.values()):,} edges; as_of {end}")

    def run_refresh() -> dict:
        for snapshot in previous.values():
            snapshot.state = None
        return {tenant: refresh(snapshot, new_day[tenant], as_of=end, global_prior=pooled)
                for tenant, snapshot in previous.items()}

    def run_refresh_many(snapshots: dict = previous, mail=whole_day) -> dict:
        for snapshot in snapshots.values():
            snapshot.state = None
        return refresh_many(snapshots, mail, as_of=end, global_prior=pooled)

    # The same refresh from snapshots with next to no history: built from the day's input alone, as of the day's
    # start, they hold only the older mail whose labels the day brought. What it costs is the day's own work
    # (reading, aggregating and deriving the day's mail, fits, likelihoods, wrapping), and per-tenant costs: a
    # refresh of the day that spends nothing on the history cannot cost less, short of doing that work faster.
    bare = build_baselines(whole_day, as_of=start, config=config)
    for snapshot in bare.values():
        snapshot.state_tables()

    loop, many = run_refresh(), run_refresh_many()
    same = all(snapshot_digest(loop[t]) == snapshot_digest(many[t]) for t in previous)
    print(f"refresh_many gives each tenant's refresh, byte for byte: {same}")
    # What a refresh in proportion to the new mail would write: the rows the day changes, of every table.
    for table, n in delta_summary(previous, many, KEY_COLUMNS).items():
        share = (n["new"] + n["changed_by_mail"]) / max(n["rows"], 1)
        print(f"  {table}: {n['rows']:,} rows after the day, {n['new']:,} new, {n['changed']:,} changed; "
              f"{n['changed_by_mail']:,} apart from decayed counts and likelihoods: {share:.1%} of the rows new or "
              "changed by the day's mail")
    del loop, many

    timer = phase_timer()
    try:
        looped = _best(run_refresh, timer, args.repeat)
        print("refresh, tenant by tenant, one process (best of %d): %s" % (args.repeat, _line(looped)))
        batched = _best(run_refresh_many, timer, args.repeat)
        print("refresh_many, one process (best of %d): %s" % (args.repeat, _line(batched)))
        print(f"refresh_many against tenant by tenant: {looped['total'] / batched['total']:.2f}x")
        floor = _best(lambda: run_refresh_many(bare), timer, args.repeat)
        print(f"refresh_many of the same day from snapshots with next to no history (their pairs: "
              f"{sum(len(s.table('pair')) for s in bare.values()):,}; best of {args.repeat}): {_line(floor)}")
        # The same mail as fewer tenants (their ids rewritten): what the floor pays per tenant.
        counts = sorted({1, min(10, len(bare)), len(bare)})
        seconds = []
        for n in counts:
            mail = as_tenants(whole_day, n)
            snapshots = build_baselines(mail, as_of=start, config=config)
            for snapshot in snapshots.values():
                snapshot.state_tables()
            seconds.append(_best(lambda: run_refresh_many(snapshots, mail), timer, args.repeat)["total"])
        per_tenant = (seconds[-1] - seconds[0]) / max(counts[-1] - 1, 1)
        print(f"the same, the day's mail given to {', '.join(map(str, counts))} tenants (ids rewritten): "
              f"{', '.join(f'{t:.3f}' for t in seconds)} s; {per_tenant * 1e3:.1f} ms more per tenant")
        if not args.skip_rebuild:
            phases = _best(lambda: build_baselines(m, as_of=end, config=config, n_jobs=1), timer, args.repeat)
            print("rebuild, one process (best of %d): %s" % (args.repeat, _line(phases)))
            print(f"speed-up against the rebuild: tenant by tenant {phases['total'] / looped['total']:.1f}x, "
                  f"refresh_many {phases['total'] / batched['total']:.1f}x; a refresh of the day whose history "
                  f"cost nothing, at today's cost of the day's own work: {phases['total'] / floor['total']:.1f}x")
    finally:
        timer.restore()
    if args.cprofile:
        profile = cProfile.Profile()
        profile.runcall(run_refresh_many)
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(args.cprofile)
        stats.sort_stats("tottime").print_stats(args.cprofile)


def as_tenants(messages, n: int):
    """The messages with their tenant ids rewritten to ``n`` tenants (``tenant-000``...): each original tenant's
    mail goes to one of them, a message's edges with it.

    Examples
    --------
    >>> import pandas as pd
    >>> from commgraph.graph import validate
    >>> rows = pd.DataFrame({"tenant_id": ["a", "b", "c"], "message_id": ["1", "2", "3"],
    ...     "timestamp": "2024-05-01T09:00Z", "sender": "x@out.com", "recipients": ["u@a.com", "v@b.com", "w@c.com"]})
    >>> m = as_tenants(validate(rows, tenants=[{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in "abc"]), 2)
    >>> m.frame["tenant_id"].tolist(), m.edges()["tenant_id"].tolist()
    (['tenant-000', 'tenant-001', 'tenant-000'], ['tenant-000', 'tenant-001', 'tenant-000'])
    """
    import numpy as np
    import pandas as pd

    from commgraph.graph import Messages

    names = [f"tenant-{i:03d}" for i in range(n)]

    def column(like: pd.Series, values: np.ndarray) -> pd.Series:
        # (of the column's own kind: a categorical one gets the new ids as its categories)
        if isinstance(like.dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(values, categories=names), index=like.index)
        return pd.Series(values, index=like.index).astype(like.dtype)

    frame, edges = messages.frame.copy(), messages.edges().copy()
    codes = pd.factorize(frame["tenant_id"].astype(str), sort=True)[0] % n
    ids = np.array(names, dtype=object)[codes]
    frame["tenant_id"] = column(frame["tenant_id"], ids)
    edges["tenant_id"] = column(edges["tenant_id"], ids[edges["message_index"].to_numpy()])
    return Messages(frame, edges, messages.rejects.iloc[:0])


def _line(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.3f} s" for name, seconds in phases.items())


if __name__ == "__main__":
    main()
