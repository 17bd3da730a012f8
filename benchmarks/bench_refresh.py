"""Refresh-job benchmark: a full refresh of a multi-tenant Parquet archive, each engine and setting in one run.

    python -m benchmarks.bench_refresh --archive /data/refresh-10m --repeat 3

The issue's scale by default: 100 tenants, 90 days, ``--scale 0.26``, which the
generator turns into 8.8M messages and 10.3M edges (it prints the counts). The
archive is generated once, hive-partitioned by tenant and day (9,090 files),
into ``--archive DIR`` and reused by later runs with the same parameters (a
temporary directory, removed afterwards, without ``--archive``). Then
``commgraph refresh`` runs over it, each run in a fresh process as a scheduler
would start it, settings interleaved so that load on the machine hits them alike:

* ``jobs2``: ``--jobs 2``, tenants in two processes (the default ``--chunk-rows``:
  tenants of more than 500k messages read in chunks, here none);
* ``jobs2-chunks``: ``--jobs 2 --chunk-rows 20000``, every tenant of more than 20k
  messages read in chunks (what chunks cost, and the memory they save);
* ``serial``: one process (``--jobs 1``): the speed-up from parallel tenants is
  measured against it;
* ``spark``: ``--engine spark`` on ``local[2]`` (skipped with a note when pyspark is missing);
* ``incremental``: the daily job, ``--incremental`` in one process: a store
  holding every tenant's snapshot of the day before (built once, untimed, with
  ``--jobs 2``, and copied before each run) is refreshed with one day of mail,
  the archive's last working day (the last partition is a few hours' spill-over)
  (``refresh_many`` in batches, each tenant published on its own);
  ``incremental-jobs2`` the same with ``--jobs 2``.

With an incremental setting, every setting computes the snapshots as of the
midnight after that day (the archive's edges after it, a few per cent, are not
read), so a full refresh and an incremental one publish the same tables;
without, as of the midnight after the archive's last partition. Every run's
snapshots are checked equal to the first one-process run's (every table; run
first in each round), after its timing.

Printed per setting, best of ``--repeat`` runs (and the slowest, to show the
noise): wall time of the process, the job's own time (the report's, without
interpreter start), edges/s, CPU seconds of the whole process tree (every
worker, the JVM included) and CPU/wall (how many cores the run kept busy: on a
loaded machine the speed-up a setting could give shows here when the wall time
cannot), the peak memory of the process tree (proportional set size, sampled
every 0.2 s), the largest per-tenant peak the report gives, and the ratio of
one process's wall time to each setting's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

SETTINGS = ("jobs2", "jobs2-chunks", "serial", "spark", "incremental", "incremental-jobs2")
_TICK = os.sysconf("SC_CLK_TCK")


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    pids.append(int(entry))
            except OSError:  # the process ended meanwhile
                continue
    return pids


def _pss_mib(pid: int) -> float:
    """Proportional set size (forked workers' shared pages counted once), in MiB; 0 once the process ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far; 0 once it ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)
    except (OSError, IndexError):
        return 0.0


def _differing_tenants(store: Path, reference: Path) -> list[str]:
    """Tenants whose current snapshot in ``store`` differs from ``reference``'s on some table (counts exactly,
    decayed sums to 1e-9: a refresh adds them in another order), or is missing."""
    from commgraph.baselines import SnapshotStore
    from commgraph.baselines._snapshot import table_differences

    ours, theirs = SnapshotStore(store), SnapshotStore(reference)
    return [t for t in theirs.tenants() if t not in ours.tenants()
            or table_differences(ours.load(t, verify=False), theirs.load(t, verify=False), rtol=1e-9)]


def _run_job(archive: Path, work: Path, as_of: str, name: str, extra: list[str], *, base: Path | None = None,
             keep: bool = False, reference: Path | None = None) -> dict:
    """One job in a fresh process, timed and sampled; ``base``: a store to start from (copied, untimed);
    ``keep``: leave the store in place (else removed, so that the next run starts over); ``reference``: a
    store whose snapshots this run's must equal (checked after the timing)."""
    store, report = work / f"store-{name}", work / f"report-{name}.json"
    if base is not None:
        shutil.copytree(base, store)
    command = [sys.executable, "-m", "commgraph.signals._cli", "refresh", "--input", str(archive), "--store",
               str(store), "--as-of", as_of, "--report", str(report), *extra]
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS="--master local[2] --driver-memory 2g pyspark-shell",
               PYSPARK_PYTHON=sys.executable)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    peak = 0.0
    cpu: dict[int, float] = {}  # the last CPU figure seen per process of the tree
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            pids = _session_pids(proc.pid)
            peak = max(peak, sum(_pss_mib(p) for p in pids))
            for p in pids:
                cpu[p] = max(cpu.get(p, 0.0), _cpu_s(p))
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
    differ = _differing_tenants(store, reference) if reference is not None else []
    if not keep:
        shutil.rmtree(store)  # the next run builds from scratch
    return {"wall_s": wall, "job_s": done["seconds"], "cpu_s": sum(cpu.values()), "peak_tree_mib": peak,
            "tenant_peak_mib": max(t["peak_mib"] for t in done["tenants"]),
            "published": sum(t["status"] == "published" for t in done["tenants"]), "differ": differ}


def prepare_archive(directory: Path, *, tenants: int, days: int, scale: float) -> dict:
    """The generated archive under ``directory/mail``, written once and reused by later runs.

    ``directory/archive.json`` records the generator's parameters and counts; a
    later run with the same parameters reads the archive as it is (generating
    10M edges takes minutes), one with other parameters is refused rather than
    silently measuring another archive.
    """
    params = {"tenants": tenants, "days": days, "scale": scale, "random_state": 0}
    marker, mail = directory / "archive.json", directory / "mail"
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded["params"] != params:
            raise SystemExit(f"{directory} holds an archive generated with {recorded['params']}, not {params}: "
                             "pass another --archive directory, or the same --tenants/--days/--scale")
        return recorded["stats"]
    if mail.exists():  # an earlier generation was interrupted: start it over
        shutil.rmtree(mail)
    from commgraph.graph import write_generated

    stats = write_generated(mail, progress=False, **params)
    marker.write_text(json.dumps({"params": params, "stats": stats}, indent=2))
    return stats


def _last_partition(mail: Path) -> str:
    """The last ``date=`` partition of the archive (YYYY-MM-DD)."""
    return max(p.name.split("=", 1)[1] for p in mail.glob("*/date=*"))


def _refresh_day(mail: Path) -> str:
    """The day the incremental runs add (YYYY-MM-DD): the last ``date=`` partition holding at least the median
    day's bytes. The archive's last partition holds only the few hours that tenants west of UTC spill into it
    (14 messages of 20 tenants, against 3,500 on a weekday): refreshing it timed fixed costs, not a day."""
    sizes: dict[str, int] = {}
    for f in mail.glob("*/date=*/*"):
        day = f.parent.name.split("=", 1)[1]
        sizes[day] = sizes.get(day, 0) + f.stat().st_size
    typical = sorted(sizes.values())[len(sizes) // 2]
    return max(day for day, size in sizes.items() if size >= typical)


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
    parser.add_argument("--scale", type=float, default=0.26,
                        help="mailboxes per tenant, relative (0.26 with 100 tenants and 90 days: 10.3M edges)")
    parser.add_argument("--archive", type=Path,
                        help="directory holding the generated archive, kept and reused between runs "
                             "(default: a temporary one, removed at the end)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting, each in a fresh process (best kept)")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated settings to run, among {','.join(SETTINGS)} (default: all; "
                             "serial is always run, as the reference)")
    parser.add_argument("--no-spark", action="store_true", help="leave the Spark engine out")
    parser.add_argument("--small-chunks", type=int, default=20_000,
                        help="--chunk-rows of the jobs2-chunks setting: every tenant larger is read in chunks")
    args = parser.parse_args(argv)
    wanted = {s.strip() for s in args.settings.split(",") if s.strip()} | {"serial"}
    unknown = wanted - set(SETTINGS)
    if unknown:
        parser.error(f"unknown settings {sorted(unknown)}; choose among {list(SETTINGS)}")
    if args.no_spark:
        wanted.discard("spark")
    if "spark" in wanted and not _has_pyspark():
        print("(spark skipped: pyspark is not installed; pip install -e '.[spark]')")
        wanted.discard("spark")
    commands = {"jobs2": ("--jobs 2", ["--jobs", "2"]),
                "jobs2-chunks": (f"--jobs 2, chunks of {args.small_chunks // 1000}k",
                                 ["--jobs", "2", "--chunk-rows", str(args.small_chunks)]),
                "serial": ("one process", ["--jobs", "1"]),
                "spark": ("spark local[2]", ["--engine", "spark"]),
                "incremental": ("--incremental, one day", ["--incremental", "--jobs", "1"]),
                "incremental-jobs2": ("--incremental --jobs 2", ["--incremental", "--jobs", "2"])}
    settings = [commands[s] for s in SETTINGS if s in wanted]
    results: dict[str, list[dict]] = {name: [] for name, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.archive if args.archive is not None else Path(tmp) / "archive"
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        stats = prepare_archive(directory, tenants=args.tenants, days=args.days, scale=args.scale)
        print(f"archive {directory / 'mail'}: {stats['messages']:,} messages, {stats['edges']:,} edges, "
              f"{args.tenants} tenants, {args.days} days ({time.perf_counter() - started:.0f} s to prepare)",
              flush=True)
        incremental = any(name.startswith("--incremental") for name, _ in settings)
        # With an incremental setting, every setting builds as of the end of the working day it refreshes (a
        # few per cent of the archive's mail comes later); without, as of the end of the archive.
        last = pd.Timestamp(_refresh_day(directory / "mail") if incremental else _last_partition(directory / "mail"),
                            tz="UTC")
        as_of = (last + pd.Timedelta(days=1)).isoformat()
        print(f"every setting builds as of {as_of}" + (f"; the day refreshed: {last:%A %Y-%m-%d}" if incremental
                                                       else ""), flush=True)
        base = None
        if any(name.startswith("--incremental") for name, _ in settings):
            started = time.perf_counter()
            _run_job(directory / "mail", Path(tmp), last.isoformat(), "base", ["--jobs", "2"], keep=True)
            base = Path(tmp) / "store-base"
            print(f"store as of {last.date()} for the incremental runs ({time.perf_counter() - started:.0f} s); "
                  f"every setting refreshes to {as_of}", flush=True)
        reference = Path(tmp) / "store-reference"  # the first serial run's store: every other run must equal it
        order = sorted(range(len(settings)), key=lambda i: settings[i][0] != "one process")  # (serial first)
        for _ in range(args.repeat):  # settings interleaved, so that load on the machine hits them alike
            for i in order:
                name, extra = settings[i]
                first_serial = name == "one process" and not reference.exists()
                results[name].append(_run_job(directory / "mail", Path(tmp), as_of,
                                              "reference" if first_serial else f"setting{i}", extra,
                                              base=base if "--incremental" in extra else None, keep=first_serial,
                                              reference=None if first_serial else reference))
                r = results[name][-1]
                print(f"  ({name}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
    edges = stats["edges"]
    best = {name: min(runs, key=lambda r: r["wall_s"]) for name, runs in results.items()}
    serial = best["one process"]["wall_s"]
    print(f"refresh (full, or --incremental: one day) as of {as_of} of an archive of {stats['messages']:,} messages "
          f"({edges:,} edges; the rate counts them all, though a few per cent come after as_of when an incremental "
          f"setting ran), {args.tenants} tenants, {args.days} days; best of {args.repeat} (slowest in brackets):")
    print(f"  {'setting':<24} {'wall s':>15} {'job s':>7} {'k edges/s':>9} {'CPU s':>7} {'CPU/wall':>8} "
          f"{'peak MiB (tree)':>15} {'tenant peak':>11} {'vs one process':>14}")
    for name, r in best.items():
        rate = "-" if name.startswith("--incremental") else f"{edges / r['wall_s'] / 1e3:.1f}"  # (one day read)
        slowest = max(x["wall_s"] for x in results[name])
        print(f"  {name:<24} {r['wall_s']:6.1f} [{slowest:6.1f}] {r['job_s']:7.1f} {rate:>9} "
              f"{r['cpu_s']:7.1f} {r['cpu_s'] / r['wall_s']:8.2f} {r['peak_tree_mib']:15.0f} "
              f"{r['tenant_peak_mib']:11.0f} {serial / r['wall_s']:13.2f}x   ({r['published']} published)")
    differing = {name: sorted({t for r in runs for t in r["differ"]}) for name, runs in results.items()}
    print("every setting's snapshots equal the one-process job's (every table): " + (
        "yes" if not any(differing.values()) else
        "NO: " + "; ".join(f"{n}: {d[:5]}" for n, d in differing.items() if d)))
    return {"edges": edges, "messages": stats["messages"], "runs": results}


if __name__ == "__main__":
    main()
