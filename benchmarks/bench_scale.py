"""Scale curves: the whole pipeline at growing sizes, time and peak memory per step, as JSON and a PNG plot.

For each size, one fresh process runs the pipeline a deployment runs:

1. ``generate``: synthetic mail written to a hive-partitioned Parquet archive;
2. ``ingest``: ``read_messages`` of the whole archive (the message contract);
3. ``graph``: ``build_graph`` of the largest tenant;
4. ``baselines``: ``build_baselines`` of every tenant as of the start of that day (two processes);
5. ``signals``: the default signal set for one working day's mail (the last day with at least the median
   day's mail) against snapshots built as of its start (step 4 builds them as of that day).

Each step's peak is the resident memory high-water mark from the step's start
(the kernel's counter is reset before each step, so it includes what earlier
steps still hold: the pipeline's real footprint). The sizes are edges (one
message to three recipients is three edges); the generator is calibrated to
land near each.

    python -m benchmarks.bench_scale --edges 1000000 3000000 10000000 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks._memory import status_mib

STEPS = ("generate", "ingest", "graph", "baselines", "signals")
TENANTS, DAYS = 10, 30


def _reset_peak() -> None:
    """Start a new resident-memory high-water mark for this process (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _run_pipeline(archive: Path, scale: float) -> dict:
    """The child: each step timed, with its own peak; returns the figures."""
    import warnings

    from commgraph.baselines import build_baselines
    from commgraph.graph import build_graph, read_messages, write_generated
    from commgraph.signals import SignalSet

    from .bench_baselines import refresh_day

    figures: dict[str, dict] = {}

    def timed(step: str, work):
        _reset_peak()
        start = time.perf_counter()
        result = work()
        figures[step] = {"seconds": time.perf_counter() - start, "peak_mib": status_mib("VmHWM")}
        return result

    timed("generate", lambda: write_generated(archive, tenants=TENANTS, days=DAYS, scale=scale, random_state=0,
                                              progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # own domains inferred from the data, named in a warning
        messages = timed("ingest", lambda: read_messages(archive, strict=False))
    frame = messages.frame
    figures["size"] = {"messages": len(frame), "edges": int(frame["n_recipients"].sum()),
                       "tenants": frame["tenant_id"].nunique()}
    largest = frame["tenant_id"].value_counts().index[0]
    timed("graph", lambda: build_graph(messages, tenant_id=largest))
    # The day scored: the last working day (the archive's last partition holds a few spill-over hours, its
    # last full day may be a Saturday), with the snapshots as of its start.
    day, _, day_edges = refresh_day(messages, frame["timestamp"].max().floor("D") + pd.Timedelta(days=1))
    figures["size"]["day"], figures["size"]["day_edges"] = f"{day:%Y-%m-%d}", day_edges
    snapshots = timed("baselines", lambda: build_baselines(messages, as_of=day, n_jobs=2))
    # That day's mail as the engine gets it (read and validated outside the timed step).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = read_messages(sorted(archive.glob(f"tenant_id=*/date={day:%Y-%m-%d}/*.parquet")), strict=False)
    signals = SignalSet()
    scored = timed("signals", lambda: signals.compute(fresh, snapshots, level="edge", cold_start=True))
    figures["signals"]["edges"] = len(scored)
    return figures


def _calibrate(target_edges: int) -> float:
    """The generator scale that lands near ``target_edges`` (edges grow linearly with scale)."""
    import warnings

    from commgraph.graph import generate, validate

    probe_scale = 0.05
    generated = generate(tenants=TENANTS, days=DAYS, scale=probe_scale, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edges = int(validate(generated.messages, strict=False).frame["n_recipients"].sum())
    return probe_scale * target_edges / edges


def machine() -> dict:
    """What the figures were measured on."""
    import numpy
    import pandas
    import pyarrow

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    # Other work stretches wall times on a shared machine: the load average says how much there was.
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "load_average_1_5_15m": list(os.getloadavg()),
            "python": platform.python_version(),
            "platform": platform.platform(), "numpy": numpy.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__}


def plot(results: list[dict], path: Path) -> None:
    """Time and peak memory per step against edges, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    edges = [r["size"]["edges"] for r in results]
    for step in STEPS:
        left.plot(edges, [r[step]["seconds"] for r in results], marker="o", label=step)
        right.plot(edges, [r[step]["peak_mib"] / 1024 for r in results], marker="o", label=step)
    for ax, title, unit in ((left, "time per step", "seconds"), (right, "peak resident memory", "GiB")):
        ax.set(xscale="log", yscale="log", xlabel="edges", ylabel=unit, title=title)
        ax.grid(True, which="both", alpha=0.3)
    left.legend()
    fig.suptitle(f"commgraph pipeline, {TENANTS} tenants x {DAYS} days")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for scale.json and scale.png (default benchmarks/results)")
    parser.add_argument("--child", nargs=2, metavar=("ARCHIVE", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_run_pipeline(Path(args.child[0]), float(args.child[1]))))
        return 0

    results = []
    print(f"{'edges':>11}{'messages':>11}" + "".join(f"{s + ' s':>13}{'GiB':>6}" for s in STEPS))
    for target in args.edges:
        scale = _calibrate(target)
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--child",
                                    str(Path(tmp) / "archive"), repr(scale)],
                                   capture_output=True, text=True, check=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["target_edges"] = target
        results.append(figures)
        print(f"{figures['size']['edges']:>11,}{figures['size']['messages']:>11,}"
              + "".join(f"{figures[s]['seconds']:>13.2f}{figures[s]['peak_mib'] / 1024:>6.2f}" for s in STEPS)
              + f"  (signals: {figures['signals']['edges']:,} edges of {figures['size']['day']})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "tenants": TENANTS, "days": DAYS, "results": results}
    (args.out / "scale.json").write_text(json.dumps(report, indent=2))
    plot(results, args.out / "scale.png")
    print(f"wrote {args.out / 'scale.json'} and {args.out / 'scale.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
