"""Refresh-job benchmark: a full refresh of a multi-tenant Parquet archive, tenants in parallel vs one process.

    python -m benchmarks.bench_refresh --tenants 100 --days 90 --scale 0.3

Prints, for ``--jobs 2`` and for one process over the same archive in the same
run: wall time, edges/s and the peak resident memory of the job (the parent and
its workers), and the speed-up from parallel tenants. Each job runs as
``commgraph refresh`` in a fresh process, as a scheduler would run it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds


def _edges(archive: Path) -> tuple[int, int]:
    table = ds.dataset(archive, partitioning="hive").to_table(columns=["to", "cc"])
    edges = 0
    for column in ("to", "cc"):
        values = table.column(column).to_pandas().dropna()
        edges += int(values.str.count(";").sum()) + len(values)
    return table.num_rows, edges


def _run_job(archive: Path, store: Path, as_of: str, jobs: int) -> dict:
    report = store.parent / f"report-{jobs}.json"
    command = [sys.executable, "-m", "commgraph.signals._cli", "refresh", "--input", str(archive), "--store",
               str(store), "--as-of", as_of, "--jobs", str(jobs), "--report", str(report)]
    start = time.perf_counter()
    # time -v is not everywhere: the job's own report carries each tenant's peak; the children's
    # peak comes from the kernel's accounting of this waited-for process tree.
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    tenants = json.loads(report.read_text())["tenants"]
    return {"wall_s": wall, "peak_children_mib": peak, "tenant_peak_mib": max(t["peak_mib"] for t in tenants),
            "published": sum(t["status"] == "published" for t in tenants)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scale", type=float, default=0.3)
    args = parser.parse_args(argv)
    from commgraph.graph import write_generated

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        write_generated(archive, tenants=args.tenants, days=args.days, scale=args.scale, random_state=0,
                        progress=False)
        messages, edges = _edges(archive)
        as_of = "2025-06-01T00:00Z"
        parallel = _run_job(archive, Path(tmp) / "store-2", as_of, 2)
        serial = _run_job(archive, Path(tmp) / "store-1", as_of, 1)
    print(f"full refresh of {messages:,} messages ({edges:,} edges), {args.tenants} tenants, {args.days} days:")
    for name, r in (("--jobs 2", parallel), ("one process", serial)):
        print(f"  {name:<12} {r['wall_s']:7.1f} s  {edges / r['wall_s'] / 1e6:5.2f}M edges/s  "
              f"largest tenant peak {r['tenant_peak_mib']:6.0f} MiB  ({r['published']} published)")
    print(f"  speed-up from parallel tenants: {serial['wall_s'] / parallel['wall_s']:.2f}x")
    return {"edges": edges, "parallel": parallel, "serial": serial}


if __name__ == "__main__":
    main()
