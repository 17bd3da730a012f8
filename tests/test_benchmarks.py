"""The benchmarks still run against the library (each on a tiny input, as a smoke test: their figures are
measured by hand, never asserted here).

A benchmark reaches into private functions to time phases apart (the prior fits, a refresh's steps): when
those move, the benchmark breaks long before anyone runs it at full size. These tests catch that.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_backfill_runs_and_its_peer_agrees() -> None:
    out = _run("benchmarks.bench_backfill", "--messages", "3000", "--tenants", "2", "--days", "5",
               "--naive-messages", "300", "--naive-samples", "2")
    assert "peer == ours (all 35 signals, every edge): yes" in out
    assert "prior fits" in out and "freed memory kept" in out


def test_profile_refresh_finds_every_phase_it_times() -> None:
    # profile_refresh wraps a refresh's phases by name (private functions of the baselines): each must exist.
    _run("benchmarks.profile_refresh", "--help")  # (the module imports)
    code = "from benchmarks.profile_refresh import phase_timer; phase_timer().restore(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr[-3000:]
