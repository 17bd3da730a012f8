"""The refresh job on Apache Spark: partial states per partition, merged per tenant, published to the store.

``run_refresh(..., engine="spark")`` and ``commgraph refresh --engine spark``
run here, over Parquet paths or any Spark DataFrame of mail rows in the
message contract. Two stages, both running the library's own code in the
executors' Python workers:

1. ``mapInArrow``: partial states. An archive partitioned by tenant at the top
   (``tenant_id=<id>/...`` folders, counted from the files' footers) needs no
   shuffle: each task reads one tenant's folder itself (a tenant of more than
   ``chunk_rows`` rows is read by several tasks, each keeping its share of
   message ids), file by file in path order as a local read does, so that the
   first copy of a message is the one kept. Any other input (a Spark
   DataFrame, or Parquet not partitioned by tenant) is shuffled: rows are hashed by tenant (a tenant of more
   than ``chunk_rows`` rows is spread by message id over several partitions), so
   that every copy of a message meets in one partition, and sorted by tenant,
   then input file and position, so that the first copy is the one kept, as in
   a local read. Each partition is validated in chunks of ``chunk_rows`` rows,
   each tenant at a time (``chunk_rows=None``: each tenant whole, in one task),
   remembering the message ids already seen; each piece becomes a partial
   :class:`TenantState` (the aggregate code of a local build), merged within
   the partition and shipped as Arrow IPC.
2. ``groupBy(tenant).applyInArrow``: a tenant's partials are merged (the merge
   contract: merged parts equal the whole), finished into a snapshot as the
   local job finishes one, and published through :class:`SnapshotStore` with
   the same fingerprint and idempotence; each tenant's outcome comes back to
   the driver as a :class:`TenantOutcome`.

The store's directory must be reachable from the executors (a shared or
network filesystem on a cluster; any path with ``local[N]``). pyspark is an
optional dependency (the ``spark`` extra), imported only when a job runs here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from commgraph.graph import CommGraphError, ConfigError, InferredOwnDomainsWarning, TenantConfig, list_sources
from commgraph.graph._keys import stable_keys
from commgraph.graph._schema import EDGE_RECIPIENT_COLUMN, RECIPIENT_COLUMNS, TYPED_RECIPIENT_COLUMNS
from commgraph.graph._timestamps import TIMESTAMP_UNITS
from commgraph.graph._readers import (
    _parquet_dataset_of, _SeenMessageIds, _TenantFilter, _units_that_hold, _validated, parquet_dataset,
    partition_base, partition_rows, partition_size,
)

from ._config import BaselineConfig
from ._events import EventExtractor
from ._job import (
    RefreshReport, TenantOutcome, _tenant_secret, check_mapping_in_files, choose_tenants, collect_report, error_text,
    hive_tenants, no_tenant_column, peak_mib, publish_snapshot, ready_to_publish, reset_peak, stored_not_in_input,
)
from ._partial import ReadCounts, failure_counts, finish_snapshot, merge_states, no_usable_mail, partial_state
from ._snapshot import _state_from_arrow, _state_to_arrow
from ._store import SnapshotStore

__all__ = ["refresh_on_spark", "spark_session"]

# Columns the job adds to the input (and drops before validation).
_TENANT, _FILE, _ORDER, _SOURCE = "__commgraph_tenant", "__commgraph_file", "__commgraph_order", "__commgraph_source"
# What stage 1 sends to stage 2: per tenant and partition, its read counts, and its partial state
# (one row per Arrow table of the state) or the error that stopped it.
_PARTS_SCHEMA = "tenant_id string, piece int, part string, data binary"
_OUTCOME_SCHEMA = ("tenant_id string, status string, mode string, version long, rows_read long, rows_rejected long, "
                   "rejects_by_reason string, seconds double, peak_mib double, error string")
# Spark reads Parquet's nanosecond timestamps only as int64 (its own are microseconds): the job asks for
# that and turns them back into timestamps in Python, so no nanosecond is lost against a local read.
_READ_CONF = {"spark.sql.legacy.parquet.nanosAsLong": "true",
              # tenant_id=007 stays the string "007"
              "spark.sql.sources.partitionColumnTypeInference.enabled": "false"}
_BYTES_PER_PARTITION = 128 * 2**20


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError:
        raise ConfigError("the Spark engine needs pyspark, which is not installed; install the extra: "
                          "pip install 'commgraph[spark]'") from None
    return pyspark


def spark_session() -> Any:
    """The active Spark session, or a new local one (every core, no UI) for a job started outside ``spark-submit``.

    Executors' Python workers run this interpreter unless ``PYSPARK_PYTHON`` says otherwise.

    Examples
    --------
    >>> spark = spark_session()
    >>> spark is spark_session()
    True
    """
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (SparkSession.builder.appName("commgraph refresh").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false").getOrCreate())


@dataclass(frozen=True)
class _Job:
    """What the executors need (pickled into both stages)."""

    store: str
    as_of: pd.Timestamp
    config: BaselineConfig
    tenant_configs: dict[str, TenantConfig] | None
    columns: Mapping[str, str] | None
    read_options: dict[str, Any]
    chunk_rows: int | None  # None: each tenant whole
    force: bool
    time_columns: dict[str, pa.DataType]  # times read as int64 (see _time_columns): name -> the type they restore
    # Privacy mode: the chosen tenants' (the executors key their rows with them); never in a repr or a log.
    secrets: dict[str, bytes] = field(repr=False)


# --------------------------------------------------------------------------- stage 1: partial states per partition

def _chunks(batches: Iterable[pa.RecordBatch], rows: int | None) -> Iterator[pa.Table]:
    """The partition's Arrow batches gathered into tables of about ``rows`` rows (None: one table)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        held.append(batch)
        n += batch.num_rows
        if rows is not None and n >= rows:
            yield pa.Table.from_batches(held)
            held, n = [], 0
    if n:
        yield pa.Table.from_batches(held)


def _tenant_pieces(batches: Iterable[pa.RecordBatch], rows: int | None) -> Iterator[tuple[str, pa.Table]]:
    """(tenant, rows) pieces of a partition sorted by tenant: one per tenant and chunk (``rows`` None: one per
    tenant, gathered batch by batch, so that one tenant is held at a time rather than the partition)."""
    if rows is not None:
        for table in _chunks(batches, rows):
            yield from _runs(table)
        return
    runs = (run for batch in batches if batch.num_rows for run in _runs(pa.Table.from_batches([batch])))
    for tenant, group in itertools.groupby(runs, key=lambda run: run[0]):
        yield tenant, pa.concat_tables(piece for _, piece in group)


def _runs(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(tenant, rows): the runs of each tenant's rows in a table sorted by tenant."""
    tenant = table.column(_TENANT)
    changes = pc.not_equal(tenant.slice(1), tenant.slice(0, len(table) - 1))
    bounds = [0, *(pc.indices_nonzero(changes).to_numpy() + 1).tolist(), len(table)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        yield str(tenant[lo].as_py()).strip(), table.slice(lo, hi - lo)


def _frame(piece: pa.Table, time_columns: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """Rows as the local reader gives them to validation: the job's columns dropped, times read as int64 restored."""
    table = piece.drop_columns([c for c in (_TENANT, _FILE, _ORDER, _SOURCE) if c in piece.column_names])
    for name, kind in time_columns.items():
        if name in table.column_names and pa.types.is_integer(table.schema.field(name).type):
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(kind))
    return table.to_pandas()  # a fresh RangeIndex: rejected rows are counted by position, each once


class _TenantInPartition:
    """One tenant's rows in one partition: read counts, then its merged partial state or its failure."""

    def __init__(self, tenant_id: str, job: _Job):
        self.tenant_id, self.job = tenant_id, job
        self.counts = ReadCounts()
        self.error: str | None = None
        self.seconds = 0.0

    def states(self, pieces: Iterable[pa.Table], seen: _SeenMessageIds) -> Iterator[Any]:
        job = self.job
        pieces = iter(pieces)
        while True:
            start = time.perf_counter()
            try:
                # (a task reading its tenant's folders itself reads here: an unreadable file fails the tenant alone)
                piece = next(pieces, None)
                if piece is None:
                    return
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    messages = _validated(_frame(piece, job.time_columns), False, job.columns, seen,
                                          {**job.read_options, "tenants": job.tenant_configs})
                if any(issubclass(w.category, InferredOwnDomainsWarning) for w in caught):
                    raise ConfigError(
                        f"tenant {self.tenant_id!r}: the input leaves 'direction' empty and the tenant has no own "
                        "domains configured; the Spark engine needs them (tenant_configs / --tenant-config), since "
                        "inferring them takes all of the tenant's mail at once")
                self.counts.add_messages(messages)
                if len(messages):
                    secret = _tenant_secret(self.tenant_id, job.config, job.secrets)
                    extractor = EventExtractor(messages, as_of=job.as_of, privacy=job.config.privacy,
                                               secrets={self.tenant_id: secret} if secret is not None else None)
                    if extractor.tenant_names != [self.tenant_id]:
                        raise CommGraphError(f"rows grouped as tenant {self.tenant_id!r} validated as tenants "
                                             f"{extractor.tenant_names}")
                    state = partial_state(extractor.extract(self.tenant_id), as_of=job.as_of, config=job.config)
                else:
                    state = None
            except Exception as exc:  # noqa: BLE001 (the tenant fails alone, in stage 2)
                self.error = error_text(exc)
                return
            finally:
                self.seconds += time.perf_counter() - start
            if state is not None:
                yield state

    def batch(self, state: Any, partition: int) -> pa.RecordBatch:
        start = time.perf_counter()
        parts: list[tuple[str, bytes]] = []
        if self.error is not None:
            parts.append(("error", self.error.encode()))
        elif state is not None:
            for name, table in _state_to_arrow(state).items():
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    writer.write_table(table)
                parts.append((name, sink.getvalue().to_pybytes()))
        self.seconds += time.perf_counter() - start
        counts = {**self.counts.as_summary(), "seconds": self.seconds, "peak_mib": peak_mib()}
        parts.append(("counts", json.dumps(counts).encode()))
        return pa.RecordBatch.from_pydict({"tenant_id": [self.tenant_id] * len(parts), "piece": [partition] * len(parts),
                                           "part": [p[0] for p in parts], "data": [p[1] for p in parts]},
                                          schema=pa.schema([("tenant_id", pa.string()), ("piece", pa.int32()),
                                                            ("part", pa.string()), ("data", pa.binary())]))


def _partials(batches: Iterable[pa.RecordBatch], job: _Job) -> Iterator[pa.RecordBatch]:
    """Stage 1 over one partition (sorted by tenant): each tenant's partial state, one at a time."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    seen = _SeenMessageIds()  # repeats of a message id are in this partition: rejected as a local read does
    for tenant_id, group in itertools.groupby(_tenant_pieces(batches, job.chunk_rows), key=lambda p: p[0]):
        reset_peak()
        work = _TenantInPartition(tenant_id, job)
        state = merge_states(work.states((piece for _, piece in group), seen))
        yield work.batch(state, partition)


def _chosen_secrets(secrets: Mapping[str, bytes] | None, chosen: Sequence[str]) -> dict[str, bytes]:
    """The secrets the job ships to its executors: the chosen tenants' only."""
    return {t: secrets[t] for t in chosen if t in secrets} if secrets else {}


def _tenant_tasks(sizes: Mapping[str, int], chosen: Sequence[str], chunk_rows: int | None
                  ) -> list[tuple[str, int, int]]:
    """(tenant, share, shares): one task per tenant, or one per ``chunk_rows`` rows of a larger tenant (its
    messages spread by id, so every copy of a message meets the others in one task; None: one task whatever its
    size); largest first, so that the longest tasks do not start last.

    Examples
    --------
    >>> _tenant_tasks({"a": 5, "b": 12}, ["a", "b"], 5)  # (b's tasks hold 4 rows each)
    [('a', 0, 1), ('b', 0, 3), ('b', 1, 3), ('b', 2, 3)]
    >>> _tenant_tasks({"a": 5, "b": 12}, ["a", "b"], None)
    [('b', 0, 1), ('a', 0, 1)]
    """
    tasks = [(t, share, shares) for t in chosen
             for shares in [1 if chunk_rows is None else max(1, math.ceil(sizes[t] / chunk_rows))]
             for share in range(shares)]
    return sorted(tasks, key=lambda task: (-sizes[task[0]] / task[2], task))


def _tenant_rows_read(paths: Sequence[str], task: tuple[str, int, int], job: _Job) -> Iterator[pa.RecordBatch]:
    """A task's rows, read from its tenant's partition folders file by file in path order (the order of a
    local read, so the first copy of a message is the one kept), its share of message ids only."""
    tenant, share, shares = task
    names = {"tenant_id": "tenant_id", "message_id": "message_id", **(job.columns or {})}
    for path in paths:
        dataset = _parquet_dataset_of(Path(path), _TenantFilter([tenant], names["tenant_id"]))
        for batch in dataset.to_batches(**({} if job.chunk_rows is None else {"batch_size": job.chunk_rows})):
            if shares > 1 and batch.num_rows:
                if names["message_id"] not in batch.schema.names:  # (as validation says it, for a tenant alone)
                    raise ConfigError(f"the input has no {names['message_id']!r} column (the message id); columns "
                                      f"present: {batch.schema.names}")
                ids = batch.column(names["message_id"]).cast(pa.string())
                keys = stable_keys(pd.Series(pc.utf8_trim_whitespace(ids).to_pandas()))
                batch = batch.filter(pa.array(keys % shares == share))
            yield batch


def _tenant_partials(tasks_batches: Iterable[pa.RecordBatch], job: _Job, paths: Sequence[str],
                     tasks: Sequence[tuple[str, int, int]]) -> Iterator[pa.RecordBatch]:
    """Stage 1 over tasks (ids into ``tasks``): each task's tenant read from its folders, its partial state."""
    for ids in tasks_batches:
        for task_id in ids.column(0).to_pylist():
            reset_peak()
            tenant_id = tasks[task_id][0]
            work = _TenantInPartition(tenant_id, job)
            seen = _SeenMessageIds()
            state = merge_states(work.states(_chunks(_tenant_rows_read(paths, tasks[task_id], job), job.chunk_rows),
                                             seen))
            yield work.batch(state, task_id)


# --------------------------------------------------------------------------- stage 2: merge, finish, publish

def _publish(table: pa.Table, job: _Job) -> pa.Table:
    """Stage 2 for one tenant: merge its partials, finish and publish the snapshot; one outcome row."""
    start = time.perf_counter()
    reset_peak()
    tenant_id = table.column("tenant_id")[0].as_py()
    counts, seconds, peaks = ReadCounts(), 0.0, []
    errors: dict[int, str] = {}
    pieces: dict[int, dict[str, pa.Table]] = {}
    for piece, part, data in zip(table.column("piece").to_pylist(), table.column("part").to_pylist(),
                                 table.column("data")):
        buffer = data.as_buffer()  # zero-copy view of the shipped bytes
        if part == "counts":
            summary = json.loads(buffer.to_pybytes())
            counts.add(summary)
            seconds += summary["seconds"]
            peaks.append(summary["peak_mib"])
        elif part == "error":
            errors[piece] = buffer.to_pybytes().decode()
        else:
            pieces.setdefault(piece, {})[part] = pa.ipc.open_stream(buffer).read_all()
    try:
        if errors:
            raise _StageOneError(errors[min(errors)])
        fields = counts.outcome_fields()
        if not counts.messages:
            raise no_usable_mail(tenant_id, counts)
        state = merge_states(_state_from_arrow(tenant_id, pieces[p]) for p in sorted(pieces))
        snapshot = finish_snapshot(state, job.config, _tenant_secret(tenant_id, job.config, job.secrets))
        ready_to_publish(snapshot, job.tenant_configs, force=job.force, fields=fields, built_in_full=True)
        status, version = publish_snapshot(SnapshotStore(job.store), snapshot, job.force)
        outcome = TenantOutcome(tenant_id, status, "full", version, **fields)
    except _StageOneError as exc:
        outcome = TenantOutcome(tenant_id, "failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 (every failure is reported per tenant)
        outcome = TenantOutcome(tenant_id, "failed", error=error_text(exc), **failure_counts(exc))
    row = {"tenant_id": outcome.tenant_id, "status": outcome.status, "mode": outcome.mode, "version": outcome.version,
           "rows_read": outcome.rows_read, "rows_rejected": outcome.rows_rejected,
           "rejects_by_reason": json.dumps(outcome.rejects_by_reason), "peak_mib": max([peak_mib(), *peaks]),
           "seconds": seconds + time.perf_counter() - start, "error": outcome.error}
    return pa.Table.from_pylist([row], schema=pa.schema([
        ("tenant_id", pa.string()), ("status", pa.string()), ("mode", pa.string()), ("version", pa.int64()),
        ("rows_read", pa.int64()), ("rows_rejected", pa.int64()), ("rejects_by_reason", pa.string()),
        ("seconds", pa.float64()), ("peak_mib", pa.float64()), ("error", pa.string())]))


class _StageOneError(Exception):
    """A tenant's failure in stage 1, already in the report's words."""


# --------------------------------------------------------------------------- driver

def _reader(spark: Any, path: Path) -> Any:
    base = partition_base(path) if path.is_dir() else None
    return spark.read if base is None else spark.read.option("basePath", base)


def _read_parquet(spark: Any, inputs: Any) -> tuple[Any, dict[str, pa.DataType], int]:
    """The archive as a Spark DataFrame, the time columns it holds as int64 (see :func:`_time_columns`), and a
    partition count for its size."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StructField, StructType

    paths = _parquet_paths(inputs)
    datasets = [parquet_dataset(path) for path in paths]
    size = sum(os.path.getsize(f) for dataset in datasets for f in dataset.files)
    times, stored = _time_columns(paths, datasets)
    # Each path's rows carry its place in the list: copies of a message are taken in the list's order, as a
    # local read takes them, then by file (a directory's files in path order, as pyarrow lists them).
    # A folder that is itself a partition (archive/tenant_id=t) keeps the values its path names, as locally.
    frames = []
    for i, (path, dataset) in enumerate(zip(paths, datasets)):
        groups: dict[tuple, list[str]] = {}  # the path's files by the units they store the times in
        for file in dataset.files:
            groups.setdefault(tuple(stored[file].get(name) for name in times), []).append(file)
        if all(unit in (None, times[name].unit) for units in groups for name, unit in zip(times, units)):
            frames.append(_reader(spark, path).parquet(str(path)).withColumn(_SOURCE, F.lit(i)))  # (as they are)
            continue
        for units, files in groups.items():
            # Files in one unit apiece, their times read as the integers they store (Spark fails a scan of
            # files in several units, and reads nanoseconds only as integers), scaled to the column's unit.
            sources = [str(path)] if len(groups) == 1 else files
            reader = spark.read.option("basePath", partition_base(path) or str(path)) if path.is_dir() else spark.read
            found = reader.parquet(*sources).schema
            reader = reader.schema(StructType([StructField(f.name, LongType()) if f.name in times else f
                                               for f in found.fields]))
            frame = reader.parquet(*sources)
            for name, unit in zip(times, units):
                if unit is not None and unit != times[name].unit:
                    power = 3 * (TIMESTAMP_UNITS.index(times[name].unit) - TIMESTAMP_UNITS.index(unit))
                    frame = frame.withColumn(name, F.col(f"`{name}`") * F.lit(10 ** power) if power > 0 else
                                             F.expr(f"`{name}` div {10 ** -power}"))
            frames.append(frame.withColumn(_SOURCE, F.lit(i)))
    frame = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    return frame, times, math.ceil(size / _BYTES_PER_PARTITION)


def _time_columns(paths: Sequence[Path], datasets: Sequence[Any]
                  ) -> tuple[dict[str, pa.DataType], dict[str, dict[str, str]]]:
    """The time columns Spark is to read as int64, each with the type a local read gives it, and how each file
    stores its times.

    They are the columns a file stores in nanoseconds (Spark reads those only as integers; the job asks it to,
    and turns them back into times in Python, so no nanosecond is lost against a local read). Files that store
    such a column in another unit are read as integers too, and scaled to the column's unit: the local read's,
    the finest of its files (or microseconds, where a coarser file holds a time nanoseconds cannot). A file
    storing it as INT96, which Spark reads as a time only, is refused, naming the files and the fix.
    """
    fragments = [fragment for dataset in datasets for fragment in dataset.get_fragments()]
    stored = {fragment.path: _stored_units(fragment) for fragment in fragments}
    names = sorted({name for units in stored.values() for name, unit in units.items() if unit == "ns"})
    if not names:
        return {}, stored
    zones: dict[str, dict[str | None, str]] = {}
    for path, dataset in zip(paths, datasets):
        for name in names:
            field = dataset.schema.field(name) if name in dataset.schema.names else None
            if field is not None and pa.types.is_timestamp(field.type):
                zones.setdefault(name, {}).setdefault(field.type.tz, str(path))
    for name in names:
        if len(zones[name]) > 1:
            (a, zone_a), (b, zone_b) = list(zones[name].items())[:2]
            raise ConfigError(f"Parquet inputs disagree on the time zone of column {name!r}: {zone_a} holds it with "
                              f"zone {a}, {zone_b} with {b}; the Spark engine reads them as one column. Rewrite the "
                              "files with one zone, or run the local engine, which reads each input apart")
        int96 = [path for path, units in stored.items() if units.get(name) == "int96"]
        if int96:
            ns = next(path for path, units in stored.items() if units.get(name) == "ns")
            raise ConfigError(f"Parquet files store column {name!r} as INT96 ({int96[0]}) and in nanoseconds ({ns}); "
                              "the Spark engine reads INT96 only as times and nanoseconds only as integers, so not "
                              "both in one column. Rewrite the INT96 files with INT64 times (pyarrow writes them), "
                              "or run the local engine")
    schema = pa.schema([pa.field(name, pa.timestamp("ns", tz=next(iter(zones[name])))) for name in names])
    schema = _units_that_hold(schema, fragments, [fragment.physical_schema for fragment in fragments])
    return {field.name: field.type for field in schema}, stored


def _stored_units(fragment: Any) -> dict[str, str]:
    """How a Parquet file stores its time columns: 'ms', 'us' or 'ns' (INT64 in the unit Parquet records, the
    integer Spark reads) or 'int96'."""
    units = {}
    schema = fragment.metadata.schema  # (kept with the fragment when the dataset was opened: no second read)
    for i in range(len(schema)):
        column = schema.column(i)
        if column.physical_type == "INT96":
            units[column.path] = "int96"
        elif column.logical_type.type == "TIMESTAMP":
            unit = json.loads(column.logical_type.to_json())["timeUnit"]
            units[column.path] = {"milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}[unit]
    return units


def refresh_on_spark(
    inputs: Any,
    *,
    store: str | os.PathLike,
    as_of: pd.Timestamp,
    config: BaselineConfig,
    tenant_configs: dict[str, TenantConfig] | None = None,
    secrets: Mapping[str, bytes] | None = None,
    tenants: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    force: bool = False,
    on_outcome: Callable[[TenantOutcome], None] | None = None,
    read_options: Mapping[str, Any] | None = None,
    chunk_rows: int | None = 500_000,
    partitions: int | None = None,
) -> RefreshReport:
    """Full build and publish of every tenant's snapshot on Spark: what ``run_refresh(..., engine='spark')`` runs.

    Parameters
    ----------
    inputs : pyspark.sql.DataFrame, path, glob or list of paths
        Mail rows in the message contract (one row per message; ``columns``
        maps other names), or Parquet files and hive-partitioned directories,
        read on the active Spark session (or a local one, see :func:`spark_session`).
    store : path
        The :class:`SnapshotStore` directory, reachable from the executors.
    as_of : pandas.Timestamp
        UTC.
    config : BaselineConfig
    tenant_configs : dict of str to TenantConfig, optional
        Own domains per tenant; needed for tenants whose rows leave ``direction`` empty.
    secrets : mapping of str to bytes, optional
        Per-tenant secrets in privacy mode (checked as by :func:`run_refresh`).
        Spark ships one pickled job to every task, so every executor receives
        the chosen tenants' secrets (a large job's closure is broadcast through
        the driver's local directory: enable ``spark.io.encryption.enabled``
        where that disk is not trusted).
    tenants, columns, force, on_outcome, read_options
        As in :func:`run_refresh`.
    chunk_rows : int or None, default 500000
        Rows each task validates and builds at a time; a tenant of more rows is spread over several tasks.
        None: each tenant in one task, validated and built whole.
    partitions : int, optional
        Partitions of the shuffle by tenant; default: one per 128 MiB of Parquet
        read, at least twice the cluster's default parallelism.

    Returns
    -------
    RefreshReport
        The same report as the local engine's: per tenant rows read, rejects by
        reason, status and version; ``seconds`` sums the tenant's work over the
        tasks, ``peak_mib`` is the largest Python-worker peak among them.

    Examples
    --------
    >>> import tempfile
    >>> from commgraph.baselines import run_refresh
    >>> frame = spark_session().createDataFrame([
    ...     ("acme", "m1", "2024-05-01T09:00Z", "ann@vendor.com", "cy@acme.com"),
    ...     ("acme", "m2", "2024-05-02T09:00Z", "ann@vendor.com", "cy@acme.com; di@acme.com"),
    ...     ("globex", "m1", "2024-05-02T10:00Z", "bo@globex.com", "ann@vendor.com")],
    ...     "tenant_id string, message_id string, timestamp string, sender string, recipients string")
    >>> report = run_refresh(frame, engine="spark", store=tempfile.mkdtemp(), as_of="2024-05-04",
    ...                      tenant_configs=[{"tenant_id": "acme", "own_domains": ["acme.com"]},
    ...                                      {"tenant_id": "globex", "own_domains": ["globex.com"]}])
    >>> [(o.tenant_id, o.status, o.rows_read) for o in report.outcomes]
    [('acme', 'published', 2), ('globex', 'published', 1)]
    """
    started = time.perf_counter()
    spark = spark_session()
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    saved: dict[str, str | None] = {}
    time_columns: dict[str, pa.DataType] = {}
    hint = 0
    names = {**{"tenant_id": "tenant_id", "message_id": "message_id"}, **(columns or {})}
    if not isinstance(inputs, DataFrame):
        saved = {key: spark.conf.get(key, None) for key in _READ_CONF}
        for key, value in _READ_CONF.items():
            spark.conf.set(key, value)
    try:
        # An archive partitioned by tenant: each task reads its tenant's folders itself, no shuffle of the rows.
        by_tenant = None if isinstance(inputs, DataFrame) else _tenant_partitioned(inputs, names["tenant_id"])
        if by_tenant is not None:
            by_tenant, without_tenant = by_tenant
            if columns:
                check_mapping_in_files(inputs, columns)
            try:  # (the schema of one file per path: reading every footer again is the tasks' work)
                present = [n for p in _parquet_paths(inputs)
                           for n in ds.dataset(str(p), format="parquet", partitioning="hive").schema.names]
            except Exception:  # noqa: BLE001 (files that cannot be read fail their tenants alone, in their tasks)
                present = []
            _one_row_per_message(present, columns)
            chosen = choose_tenants(sorted(by_tenant), tenants)
            not_in_input = stored_not_in_input(SnapshotStore(store), by_tenant, tenants)  # (creates the directory)
            job = _Job(str(store), as_of, config, tenant_configs, columns, dict(read_options or {}), chunk_rows,
                       force, {}, _chosen_secrets(secrets, chosen))
            tasks = _tenant_tasks(by_tenant, chosen, chunk_rows)
            paths = [str(p) for p in list_sources(inputs)]
            parts = spark.range(0, len(tasks), 1, max(len(tasks), 1)).mapInArrow(
                lambda batches: _tenant_partials(batches, job, paths, tasks), _PARTS_SCHEMA)
            rows = parts.groupBy("tenant_id").applyInArrow(lambda table: _publish(table, job),
                                                           _OUTCOME_SCHEMA).collect()
            return _report(rows, as_of, started, on_outcome, without_tenant, not_in_input)
        frame = inputs
        if not isinstance(inputs, DataFrame):
            frame, time_columns, hint = _read_parquet(spark, inputs)
        if names["tenant_id"] not in frame.columns:  # (the columns the job added are no concern of its user)
            raise no_tenant_column(names["tenant_id"], (c for c in frame.columns if c != _SOURCE))
        _one_row_per_message(frame.columns, columns)

        def trimmed(column: str) -> Any:  # what str.strip() leaves, as the local reader compares ids
            value = F.col(f"`{column}`")
            if dict(frame.dtypes).get(column) in ("float", "double"):
                # A float column of ids (whole numbers beside a missing value): 1.0 is id '1', as validation
                # reads it; a fraction, or a magnitude where floats skip integers, is no id.
                exact = (value == F.floor(value)) & (F.abs(value) < 2.0**53)
                return F.when(exact, value.cast("long").cast("string"))
            # (?U): Unicode white space (a no-break space too), plus the separators str.strip also removes.
            return F.regexp_replace(value.cast("string"), r"(?U)^[\s\x1c-\x1f]+|[\s\x1c-\x1f]+$", "")

        frame = frame.withColumn(_TENANT, trimmed(names["tenant_id"]))
        counted = {row[0]: row[1] for row in frame.groupBy(_TENANT).count().collect()}
        # A tenant id is its stripped text; none left (missing or blank): the row has no tenant, as locally.
        sizes = {t: n for t, n in counted.items() if t}
        without_tenant = sum(n for t, n in counted.items() if not t)
        frame = frame.where(F.col(_TENANT).isNotNull() & (F.col(_TENANT) != ""))
        chosen = choose_tenants(sorted(sizes), tenants)
        if tenants is not None:
            frame = frame.where(F.col(_TENANT).isin(chosen))
        not_in_input = stored_not_in_input(SnapshotStore(store), sizes, tenants)  # (creates the directory)
        job = _Job(str(store), as_of, config, tenant_configs, columns, dict(read_options or {}), chunk_rows, force,
                   time_columns, _chosen_secrets(secrets, chosen))
        # The input's file and position, taken at the scan, break ties so the first copy of a message is kept.
        # A file is ordered by its path, as a local read lists a directory: Spark names it by its URI, where
        # "a b" is "a%20b" (after "a!b", where the path comes before it); "+" stays "+" in a URI path, and
        # would decode as a space.
        path = F.url_decode(F.replace(F.input_file_name(), F.lit("+"), F.lit("%2B")))
        frame = frame.withColumn(_FILE, path).withColumn(_ORDER, F.monotonically_increasing_id())
        if _SOURCE not in frame.columns:  # (a Spark DataFrame given: one source)
            frame = frame.withColumn(_SOURCE, F.lit(0))
        # A tenant's rows go to one partition, or, for a tenant of more than chunk_rows rows, spread by
        # message id over one partition per chunk_rows: few partial states, and every copy of a message
        # (same tenant and id) still meets the others in one partition.
        key = trimmed(names["message_id"]) if names["message_id"] in frame.columns else F.col(_ORDER)
        spread = {t: math.ceil(sizes[t] / chunk_rows) for t in chosen
                  if chunk_rows is not None and sizes[t] > chunk_rows}
        salt = F.lit(0)
        if spread:
            ways = F.create_map(*[F.lit(v) for t, k in sorted(spread.items()) for v in (t, k)])
            salt = F.pmod(F.xxhash64(key), F.coalesce(ways[F.col(_TENANT)], F.lit(1)))
        n = partitions or max(2 * spark.sparkContext.defaultParallelism, hint)
        parts = (frame.repartition(n, F.col(_TENANT), salt).sortWithinPartitions(_TENANT, _SOURCE, _FILE, _ORDER)
                 .mapInArrow(lambda batches: _partials(batches, job), _PARTS_SCHEMA))
        rows = parts.groupBy("tenant_id").applyInArrow(lambda table: _publish(table, job), _OUTCOME_SCHEMA).collect()
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    return _report(rows, as_of, started, on_outcome, without_tenant, not_in_input)


def _one_row_per_message(present: Iterable[str], columns: Mapping[str, str] | None) -> None:
    """Refuse input with one row per recipient up front: its rows of one message are gathered only by a whole
    read, which the Spark engine (reading in chunks) never does."""
    lists = (*RECIPIENT_COLUMNS, *TYPED_RECIPIENT_COLUMNS)
    name = {c: (columns or {}).get(c, c) for c in (*lists, EDGE_RECIPIENT_COLUMN)}
    present = set(present)
    if name[EDGE_RECIPIENT_COLUMN] in present and not any(name[c] in present for c in lists):
        raise ConfigError(f"the Spark engine reads one row per message (recipients in {name['recipients']!r}, or "
                          f"'to'/'cc'/'bcc'); this input has one row per recipient ({name[EDGE_RECIPIENT_COLUMN]!r}). "
                          "Gather "
                          "each message's rows into one (a list of its recipients), or run the local engine, which "
                          "reads such input whole per tenant")


def _tenant_partitioned(inputs: Any, column: str) -> tuple[dict[str, int], int] | None:
    """Rows per tenant of Parquet inputs partitioned by tenant at the top (from the footers), and the rows of
    hive's folder for missing values (no tenant id); None otherwise."""
    paths = _parquet_paths(inputs)
    listed = hive_tenants(paths, column)
    if listed is None:
        return None
    try:
        return partition_rows(paths, column, only=listed[0]) or {}, listed[1]
    except Exception:  # noqa: BLE001 (a file whose footer cannot be read fails its tenant alone, in its task)
        sizes = {}
        for tenant in listed[0]:
            try:
                sizes[tenant] = partition_size(paths, column, tenant)
            except Exception:  # noqa: BLE001 (one task, which reads the folder again and reports the error)
                sizes[tenant] = 1
        return sizes, listed[1]


def _parquet_paths(inputs: Any) -> list[Path]:
    """The Parquet files and directories the inputs name; any other format is refused with the way to read it."""
    paths = list_sources(inputs)
    other = [str(p) for p in paths if not (p.is_dir() or p.suffix in (".parquet", ".pq"))]
    if other:
        raise ConfigError(f"the Spark engine reads Parquet files and directories; {other[0]!r} is not one. Write it "
                          "as Parquet, or run the local engine (leave out --engine spark); in Python, read it with "
                          "spark.read and pass the Spark DataFrame: run_refresh(frame, engine='spark', ...)")
    return paths


def _report(rows: list, as_of: pd.Timestamp, started: float, on_outcome: Callable[[TenantOutcome], None] | None,
            rows_without_tenant: int, not_in_input: tuple[str, ...]) -> RefreshReport:
    outcomes = (TenantOutcome(r.tenant_id, r.status, r.mode, r.version, r.rows_read, r.rows_rejected,
                              json.loads(r.rejects_by_reason), r.seconds, r.peak_mib, r.error)
                for r in sorted(rows, key=lambda r: r.tenant_id))
    return collect_report(outcomes, as_of, started, on_outcome, rows_without_tenant=rows_without_tenant,
                          not_in_input=not_in_input)
