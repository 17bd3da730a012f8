"""Run every benchmark from one place: ``python -m benchmarks [quick|full]`` (``make bench``).

Each benchmark prints our figure beside its peer's, measured in the same run,
with the ratio. ``quick`` (the default) finishes in a few minutes on 2 cores;
``full`` runs the sizes the issues set targets for.
"""

from __future__ import annotations

import sys
import time

from benchmarks import (bench_backfill, bench_baselines, bench_generate, bench_graph, bench_ingest, bench_overlay,
                        bench_privacy, bench_refresh, bench_scale, bench_signals)

PROFILES = {
    "quick": [
        ("ingest", bench_ingest.main, ["--messages", "200000", "--repeat", "1"]),
        ("generate", bench_generate.main, ["--edges", "1000000", "--peer-messages", "5000"]),
        ("graph", bench_graph.main, ["--edges", "1000000", "--nx-edges", "200000", "--repeat", "1"]),
        ("baselines", bench_baselines.main, ["--scale", "0.05", "--tenants", "20", "--repeat", "1",
                                             "--senders", "100000"]),
        ("signals", bench_signals.main, ["--senders", "100000", "--single", "5000", "--peer-min-time", "1"]),
        ("overlay", bench_overlay.main, ["--senders", "100000", "--rounds", "3"]),
        ("privacy", bench_privacy.main, ["--senders", "50000", "--batches", "100,1000,10000", "--single", "3000"]),
        ("refresh", bench_refresh.main, ["--tenants", "10", "--days", "30", "--scale", "0.3"]),
        ("backfill", bench_backfill.main, ["--messages", "100000", "--tenants", "5", "--naive-messages", "2000",
                                           "--naive-samples", "20"]),
        ("scale", bench_scale.main, ["--edges", "1000000", "3000000"]),
    ],
    "full": [
        ("ingest", bench_ingest.main, ["--messages", "1000000", "--repeat", "3"]),
        ("generate", bench_generate.main, ["--edges", "10000000"]),
        ("graph", bench_graph.main, ["--edges", "10000000", "--nx-edges", "1000000", "--repeat", "3"]),
        ("baselines", bench_baselines.main, []),
        ("signals", bench_signals.main, []),
        ("overlay", bench_overlay.main, []),
        ("privacy", bench_privacy.main, []),
        ("refresh", bench_refresh.main, ["--tenants", "100", "--days", "90", "--scale", "0.26"]),
        ("backfill", bench_backfill.main, []),
        ("scale", bench_scale.main, ["--edges", "1000000", "3000000", "10000000", "30000000"]),
    ],
}


def main(argv: list[str]) -> int:
    profile = argv[0] if argv else "quick"
    if profile not in PROFILES:
        print(f"usage: python -m benchmarks [{'|'.join(PROFILES)}] (got {profile!r})", file=sys.stderr)
        return 2
    for name, run, args in PROFILES[profile]:
        print(f"\n### {name} ({profile}: {' '.join(args)})", flush=True)
        start = time.perf_counter()
        run(args)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
