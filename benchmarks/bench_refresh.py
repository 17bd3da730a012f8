"""Refresh-job benchmark: a full refresh of a multi-tenant Parquet archive, each engine and setting in one run.

    python -m benchmarks.bench_refresh --tenants 100 --days 90 --scale 0.3 --repeat 3

Writes a generated hive-partitioned archive (``--scale 0.3``, 100 tenants, 90
days: about 10M edges), then runs ``commgraph refresh`` over it, each run in a
fresh process as a scheduler would start it:

* ``--jobs 2``: tenants in two processes (the default ``--chunk-rows``: tenants of
  more than 500k messages read in chunks, here none);
* ``--jobs 2 --chunk-rows 20000``: every tenant of more than 20k messages read in
  chunks (what chunks cost, and the memory they save);
* one process (``--jobs 1``): the speed-up from parallel tenants is measured against it;
* ``--engine spark`` on ``local[2]`` (skipped with a note when pyspark is missing).

Printed per setting, best of ``--repeat`` runs (and the slowest, to show the
noise): wall time of the process, the job's own time (the report's, without
interpreter start), edges/s, the peak memory of the whole process tree
(proportional set size of the job and every worker, the JVM included, sampled
every 0.2 s), the largest per-tenant peak the report gives, and the ratio of
one process's wall time to each setting's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
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


def _tree_pss_mib(session: int) -> float:
    """Proportional set size of every process in a session (forked workers' shared pages counted once)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            with open(f"/proc/{entry}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration):  # the process ended meanwhile
            continue
    return total / 1024


def _run_job(archive: Path, work: Path, as_of: str, name: str, extra: list[str]) -> dict:
    store, report = work / f"store-{name}", work / f"report-{name}.json"
    command = [sys.executable, "-m", "commgraph.signals._cli", "refresh", "--input", str(archive), "--store",
               str(store), "--as-of", as_of, "--report", str(report), *extra]
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS="--master local[2] --driver-memory 2g pyspark-shell",
               PYSPARK_PYTHON=sys.executable)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_pss_mib(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{err[-3000:]}")
    done = json.loads(report.read_text())
    subprocess.run(["rm", "-rf", str(store)], check=True)  # the next run builds from scratch
    return {"wall_s": wall, "job_s": done["seconds"], "peak_tree_mib": peak,
            "tenant_peak_mib": max(t["peak_mib"] for t in done["tenants"]),
            "published": sum(t["status"] == "published" for t in done["tenants"])}


def _has_pyspark() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting, each in a fresh process (best kept)")
    parser.add_argument("--no-spark", action="store_true", help="leave the Spark engine out")
    parser.add_argument("--small-chunks", type=int, default=20_000,
                        help="--chunk-rows of the chunked setting: every tenant larger is read in chunks")
    args = parser.parse_args(argv)
    from commgraph.graph import write_generated

    settings = [("--jobs 2", ["--jobs", "2"]),
                (f"--jobs 2, chunks of {args.small_chunks // 1000}k", ["--jobs", "2", "--chunk-rows",
                                                                        str(args.small_chunks)]),
                ("one process", ["--jobs", "1"])]
    if args.no_spark:
        pass
    elif _has_pyspark():
        settings.append(("spark local[2]", ["--engine", "spark"]))
    else:
        print("(spark skipped: pyspark is not installed; pip install -e '.[spark]')")
    results: dict[str, list[dict]] = {name: [] for name, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        write_generated(archive, tenants=args.tenants, days=args.days, scale=args.scale, random_state=0,
                        progress=False)
        messages, edges = _edges(archive)
        as_of = "2025-06-01T00:00Z"
        for _ in range(args.repeat):  # settings interleaved, so that load on the machine hits them alike
            for i, (name, extra) in enumerate(settings):
                results[name].append(_run_job(archive, Path(tmp), as_of, f"setting{i}", extra))
    best = {name: min(runs, key=lambda r: r["wall_s"]) for name, runs in results.items()}
    serial = best["one process"]["wall_s"]
    print(f"full refresh of {messages:,} messages ({edges:,} edges), {args.tenants} tenants, {args.days} days; "
          f"best of {args.repeat} (slowest in brackets):")
    print(f"  {'setting':<24} {'wall s':>15} {'job s':>7} {'k edges/s':>9} {'peak MiB (tree)':>15} "
          f"{'tenant peak':>11} {'vs one process':>14}")
    for name, r in best.items():
        slowest = max(x["wall_s"] for x in results[name])
        print(f"  {name:<24} {r['wall_s']:6.1f} [{slowest:6.1f}] {r['job_s']:7.1f} {edges / r['wall_s'] / 1e3:9.1f} "
              f"{r['peak_tree_mib']:15.0f} {r['tenant_peak_mib']:11.0f} {serial / r['wall_s']:13.2f}x"
              f"   ({r['published']} published)")
    return {"edges": edges, "messages": messages, "runs": results}


if __name__ == "__main__":
    main()
