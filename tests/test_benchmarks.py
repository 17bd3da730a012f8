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
    out = _run("benchmarks.profile_refresh", "--scale", "0.01", "--tenants", "4", "--days", "20", "--repeat", "1")
    assert "refresh_many gives each tenant's refresh, byte for byte: True" in out
    for phase in ("state_decode", "tenant_events", "advance", "derive_many", "_fit_priors", "_wrap", "_tenant_priors"):
        assert f" {phase} " in out, phase
    assert "from snapshots with next to no history" in out and "whose history cost nothing" in out
    assert "the day's mail given to 1, 4 tenants (ids rewritten)" in out and "ms more per tenant" in out
    import doctest

    from benchmarks import profile_refresh
    assert doctest.testmod(profile_refresh).failed == 0  # (as_tenants against its example)
    code = "from benchmarks.profile_refresh import phase_timer; phase_timer().restore(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr[-3000:]


def test_a_refresh_s_changed_rows_are_those_a_row_by_row_comparison_finds() -> None:
    # The delta profile_refresh prints: each table's new rows and rows changed (in any column, and apart from the
    # columns every refresh changes), against a comparison of the rows as Python values, key by key.
    import doctest

    import pandas as pd

    from benchmarks import _delta
    from commgraph.baselines import build_baselines, refresh
    from commgraph.baselines._tables import KEY_COLUMNS
    from commgraph.graph import validate

    assert doctest.testmod(_delta).failed == 0
    rows = pd.DataFrame({"tenant_id": "a", "message_id": [str(i) for i in range(6)],
                         "timestamp": ["2024-05-01T09:00Z", "2024-05-01T10:00Z", "2024-05-02T09:00Z",
                                       "2024-05-03T09:00Z", "2024-05-03T11:00Z", "2024-05-03T12:00Z"],
                         "sender": ["x@out.com", "y@out.com", "x@out.com", "x@out.com", "z@new.org", "u@a.com"],
                         "recipients": ["u@a.com", "v@a.com", "u@a.com", "v@a.com", "u@a.com", "x@out.com"],
                         "display_name": ["X", "Y", "X", "Xavier", None, "U"]})
    m = validate(rows, tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    before = build_baselines(m, as_of="2024-05-03")
    after = {"a": refresh(before["a"], m, as_of="2024-05-04")}
    summary = _delta.delta_summary(before, after, KEY_COLUMNS)
    for table, key in KEY_COLUMNS.items():
        if table == "tenant":
            continue
        old = {r[key]: r for r in before["a"].tables[table].to_pylist()}
        new = after["a"].tables[table].to_pylist()
        by_mail = [{c: v for c, v in r.items() if c not in _delta.EVERY_ROW} for r in new]
        expected = {"rows": len(new), "new": sum(r[key] not in old for r in new),
                    "changed": sum(r[key] in old and r != old[r[key]] for r in new),
                    "changed_by_mail": sum(r[key] in old and r != {c: v for c, v in old[r[key]].items()
                                                                   if c not in _delta.EVERY_ROW} for r in by_mail)}
        assert summary[table] == expected, table
    assert summary["sender"]["new"] == 2 and summary["pair"]["changed_by_mail"] >= 1


def test_layered_design_runs_end_to_end() -> None:
    out = _run("benchmarks.layered_design", "--scale", "0.01", "--tenants", "4", "--days", "20", "--repeat", "3")
    assert out.count(": sender ") == 7  # one line per midnight of the week after the base
    assert "since the base a week before (a single delta) / since the day before" in out
    for batch in ("1", "64", "1,024"):
        assert f"batch of {batch}: 0 layers" in out and "7 layers" in out, batch
    for history in ("touched", "whole"):
        assert f"the {history} history (" in out and " advance " in out, history
    import doctest

    from benchmarks import layered_design
    assert doctest.testmod(layered_design).failed == 0


def test_a_layered_lookup_finds_each_key_in_its_newest_layer() -> None:
    # Against a dict per layer: the first layer (newest first) that holds a key answers, with its row there.
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from benchmarks.layered_design import layered_positions
    from commgraph.baselines import KeyIndex
    from commgraph.signals._view import probe

    keys = st.lists(st.integers(1, 40), max_size=30, unique=True)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(keys, min_size=1, max_size=5), st.lists(st.integers(0, 45), max_size=40))
    def check(layers: list[list[int]], queries: list[int]) -> None:
        indexes = [KeyIndex.build(np.array(layer, dtype=np.uint64)) for layer in layers]
        layer, row = layered_positions(indexes, np.array(queries, dtype=np.uint64), probe)
        expected = [next(((n, layers[n].index(q)) for n in range(len(layers)) if q in layers[n]), (-1, -1))
                    for q in queries]
        assert list(zip(layer.tolist(), row.tolist())) == expected

    check()


def test_the_touched_history_is_the_older_mail_of_the_pairs_a_day_touches() -> None:
    # Against a set of (tenant, sender, recipient) tuples made row by row from the same edges.
    import pandas as pd

    from benchmarks.bench_baselines import load_messages, refresh_day
    from benchmarks.layered_design import touched_history

    m = load_messages(0.01, 40, 3, None)
    start, end, _ = refresh_day(m, m.frame["timestamp"].max().floor("D"))
    e = m.edges()
    rows = list(zip(e["tenant_id"].astype(str), e["sender_key"].tolist(), e["recipient_key"].tolist(),
                    e["timestamp"], e["message_index"].tolist()))
    touched = set()
    for tenant, sender, recipient, ts, _ in rows:
        if any(start - pd.Timedelta(days=d) <= ts < end - pd.Timedelta(days=d) for d in (0, 7, 30, 90)):
            touched.add((tenant, sender, recipient))
        if start <= ts < end:
            touched.add((tenant, recipient, sender))
    expected = sorted({m.frame["message_id"].iloc[i] for tenant, sender, recipient, ts, i in rows
                       if (tenant, sender, recipient) in touched and m.frame["timestamp"].iloc[i] < start})
    got = touched_history(m)
    assert sorted(got.frame["message_id"]) == expected and 0 < len(expected) < (m.frame["timestamp"] < start).sum()
    assert got.edges()["message_index"].max() == len(got.frame) - 1
