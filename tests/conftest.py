"""Shared fixtures: the real corpora and small contract frames."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# derandomize: the examples come from a fixed seed per test, so a run on CI finds what a run here found
# (a failure found by a random run is kept as an explicit test case).
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def data_dir() -> Path:
    """Where the real corpora live: $COMMGRAPH_DATA, else ../shared/data from the project root."""
    return Path(os.environ.get("COMMGRAPH_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real corpora not found at {path}; set COMMGRAPH_DATA to the shared/data folder")
    return path


def generated_raw(**options):
    """Generated mail (``commgraph.graph.generate(**options)``) and its raw rows, times as zoned timestamps."""
    from commgraph.graph import generate

    g = generate(**options)
    raw = g.messages.reset_index(drop=True)
    raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True)
    raw["labeled_at"] = pd.to_datetime(raw["labeled_at"], utc=True)
    return g, raw


def frame(**overrides) -> pd.DataFrame:
    """A valid one-tenant frame of three messages; keyword arguments replace columns."""
    base = {
        "tenant_id": ["acme", "acme", "acme"],
        "message_id": ["m1", "m2", "m3"],
        "timestamp": ["2024-05-02T09:00:00Z", "2024-05-02T10:00:00+02:00", "2024-05-03T11:30:00Z"],
        "sender": ["ann@acme.com", "bob@vendor.com", "ann@acme.com"],
        "recipients": ["bob@vendor.com", "ann@acme.com; cy@acme.com", "cy@acme.com"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


ACME = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]


@pytest.fixture(scope="session")
def enron(real_data: Path):
    """The Enron JHU messages as one tenant, validated leniently (the 1980 placeholders are set aside)."""
    from commgraph.graph import validate

    raw = pd.read_csv(real_data / "enron_jhu" / "messages.csv.gz")
    raw["tenant_id"] = "enron"
    return validate(raw, strict=False, tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}])


def state_differences(a, b, *, rtol: float = 1e-9) -> list[str]:
    """Parts (and columns) of two snapshots' refresh state that differ: keys and counts exactly, floats
    (decayed sums, whose last bits depend on the order of additions) within ``rtol``."""
    import numpy as np
    import pyarrow as pa

    sa, sb = a.state_tables(), b.state_tables()
    out = []
    for part in sorted(set(sa) | set(sb)):
        x, y = sa.get(part), sb.get(part)
        if x is None or y is None or x.schema != y.schema or x.num_rows != y.num_rows:
            out.append(part)
            continue
        for name in x.column_names:
            cx, cy = x.column(name).combine_chunks(), y.column(name).combine_chunks()
            if pa.types.is_fixed_size_list(cx.type):
                cx, cy = cx.flatten(), cy.flatten()
            vx, vy = cx.to_numpy(zero_copy_only=False), cy.to_numpy(zero_copy_only=False)
            same = np.allclose(vx, vy, rtol=rtol, atol=0) if vx.dtype.kind == "f" else np.array_equal(vx, vy)
            if not same:
                out.append(f"{part}.{name}")
    return out


def enron_sample(real_data: Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` Enron JHU messages with real timestamps, as one tenant, in the contract's columns."""
    raw = pd.read_csv(real_data / "enron_jhu" / "messages.csv.gz")
    raw = raw[~raw["timestamp_suspect"]].head(rows)
    return raw.assign(tenant_id="enron")[["tenant_id", "message_id", "timestamp", "sender", "to", "cc"]]

def ipc_bytes(table) -> bytes:
    """An Arrow table as the bytes of an Arrow IPC file (for "same input, same bytes" checks)."""
    import io

    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def mail_frames(*, start: pd.Timestamp, tenants: list[str], addresses: list[str], max_messages: int = 30,
                step_minutes: int = 1, labels: tuple = (None, None, "safe", "attack", "spam"),
                spf: tuple = (None, "pass", "fail", "softfail")):
    """A hypothesis strategy of raw mail over eight days from ``start``: tenants, senders and recipients drawn
    from the lists given, times on a grid of ``step_minutes`` (coarser: more messages tie on their instant),
    labels known at once, later (some after a refresh) or never, display names and SPF results."""
    from hypothesis import strategies as st

    @st.composite
    def mail(draw) -> pd.DataFrame:
        n = draw(st.integers(1, max_messages))
        rows = []
        for i in range(n):
            tenant = draw(st.sampled_from(tenants))
            sender = draw(st.sampled_from(addresses))
            recipients = draw(st.lists(st.sampled_from(addresses), min_size=1, max_size=3, unique=True))
            ts = start + pd.Timedelta(minutes=step_minutes * draw(st.integers(0, 8 * 24 * 60 // step_minutes)))
            label = draw(st.sampled_from(labels))
            delay = draw(st.sampled_from([None, 0, 30, 60 * 30, 60 * 24 * 3]))
            rows.append({"tenant_id": tenant, "message_id": f"m{i}", "timestamp": ts, "sender": sender,
                         "recipients": "; ".join(recipients), "label": label,
                         "labeled_at": None if label is None or delay is None else ts + pd.Timedelta(minutes=delay),
                         "sender_display_name": draw(st.sampled_from([None, "Ann", "Boss", "Vendor Billing"])),
                         "spf": draw(st.sampled_from(spf))})
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True)
        return frame

    return mail()


def write_hive(table, root, partitioning: list[str], *, basename: str = "part-0.parquet",
               row_group_size: int | None = None) -> None:
    """``table`` as hive-partitioned Parquet (``root/col=value/.../basename``), one file a partition, rows in
    order, the partition columns left out, as ``pyarrow.dataset.write_dataset`` writes them: written with
    ``pyarrow.parquet.write_table``, since the dataset writer's threads may abort the interpreter at exit
    ("terminate called without an active exception", apache/arrow#36980) and fail a suite that passed."""
    import pyarrow.parquet as pq

    keys = pd.DataFrame({c: table[c].to_pandas().astype(str) for c in partitioning})
    data = table.drop_columns(partitioning)
    for values, rows in keys.groupby(partitioning, sort=False).indices.items():
        values = values if isinstance(values, tuple) else (values,)
        folder = Path(root).joinpath(*(f"{c}={v}" for c, v in zip(partitioning, values)))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.take(rows), folder / basename, row_group_size=row_group_size)
