"""The refresh job: read a mail archive, build or refresh each tenant's snapshot, publish it.

This is what ``commgraph refresh`` runs under cron, Airflow or Kubernetes. Each
tenant is read for its own mail only (tenant partitions of a Parquet archive
are opened alone), built (or its current snapshot refreshed with the mail
since) and published atomically. Small tenants are read, validated and built
or refreshed together in batches, each tenant's snapshot exactly what it would
be alone, and still published alone. Units of work run in parallel processes,
and tenants fail alone: a batch that fails runs again tenant by tenant, the
others still publish, and the report says which failed and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from commgraph.graph import (
    CommGraphError, ConfigError, InferredOwnDomainsWarning, TenantConfig, list_sources, load_tenant_configs,
)
from commgraph.graph import Messages, read_frame, read_messages
from commgraph.graph._addresses import DISPLAY_NAME_FORM
from commgraph.graph._errors import ParameterError, plural
from commgraph.graph._readers import RowPerRecipientChunksError, parquet_dataset, partition_size, partition_values
from commgraph.graph._timestamps import instant_problem, is_clock_word, utc_instant
from commgraph.graph._validate import _check_zone, apply_column_mapping, id_text

from ._build import build_baselines, build_each, check_secret, refresh, refresh_many
from ._config import BaselineConfig
from ._events import EventExtractor
from ._partial import (
    NoUsableMail, ReadCounts, failure_counts, finish_snapshot, merge_states, no_usable_mail, partial_state,
)
from ._secrets import load_secrets
from ._snapshot import Snapshot
from ._store import FIRST_INBOUND_FILE, LEDGER_FILE, CorruptSnapshotError, SnapshotStore
from ._workers import Unit, run_units

__all__ = ["run_refresh", "RefreshReport", "TenantOutcome", "list_input_tenants", "EXIT_OK", "EXIT_FAILED_TENANTS",
           "EXIT_USAGE", "EXIT_ERROR", "DEFAULT_CHUNK_ROWS", "ENGINES", "REFRESH_BATCH",
           "REFRESH_BATCH_ROWS"]

#: Exit codes of ``commgraph refresh``.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILED_TENANTS = 0, 1, 2, 3

#: Input rows (messages) read at a time per tenant. A tenant smaller than this is
#: read and built in one piece, exactly as without chunks; a larger one costs
#: one partial build per chunk and their merges (see benchmarks/bench_refresh.py).
DEFAULT_CHUNK_ROWS = 500_000

#: Tenants an incremental job refreshes together: one read of their mail and one
#: :func:`refresh_many` (a tenant's refresh is mostly a fixed cost of small-array
#: calls, which a batch pays once); each is still published, and fails, alone.
REFRESH_BATCH = 16
#: And at most this many rows in their current snapshots' tables (from the
#: manifests), so that a batch of large tenants holds no more memory than a few
#: of them (a tenant above it is a batch of its own).
REFRESH_BATCH_ROWS = 1_000_000

#: Where ``run_refresh`` builds: this machine's processes, or an Apache Spark cluster.
ENGINES: tuple[str, ...] = ("local", "spark")

Status = Literal["published", "unchanged", "failed"]


@dataclass(frozen=True)
class TenantOutcome:
    """What the job did for one tenant.

    Attributes
    ----------
    tenant_id : str
    status : {'published', 'unchanged', 'failed'}
        ``unchanged``: the current snapshot already describes this input as of
        this instant (same content fingerprint), so nothing was published.
    mode : {'full', 'incremental'}
    version : int or None
        The current version after the job (the new one when published).
    rows_read, rows_rejected : int
        Input rows of the tenant, and those set aside by the message contract (an input of one row per
        recipient counts a message kept once, however many rows it had).
    rejects_by_reason : dict
    seconds : float
        Time spent on the tenant (on Spark: summed over the tasks that worked on it;
        refreshed in a batch: its even share of the batch's time, and its publishing).
    peak_mib : float
        Peak resident memory of the process while it ran the tenant (on Spark: the
        largest among the Python workers that worked on it; in a batch: the batch's).
    error : str or None
        The failure, with its type, when ``status == 'failed'``.

    Examples
    --------
    >>> TenantOutcome("acme", "published", version=4, rows_read=1200, rows_rejected=3).status
    'published'
    """

    tenant_id: str
    status: Status
    mode: str = "full"
    version: int | None = None
    rows_read: int = 0
    rows_rejected: int = 0
    rejects_by_reason: dict = field(default_factory=dict)
    seconds: float = 0.0
    peak_mib: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class RefreshReport:
    """The outcome of a refresh job: one :class:`TenantOutcome` per tenant.

    Examples
    --------
    >>> report = RefreshReport(as_of="2025-02-01T00:00:00+00:00", seconds=1.5, outcomes=(
    ...     TenantOutcome("acme", "published", version=3, rows_read=10),
    ...     TenantOutcome("globex", "failed", error="CommGraphError: no usable mail")))
    >>> report.exit_code, report.failed
    (3, ['globex'])
    >>> report
    RefreshReport(as_of 2025-02-01T00:00:00+00:00: 2 tenants, 1 failed, 1 published; 1.5 s)
    >>> report.table()[["tenant_id", "status", "version", "rows_read"]]
      tenant_id     status  version  rows_read
    0      acme  published      3.0         10
    1    globex     failed      NaN          0
    """

    as_of: str
    outcomes: tuple[TenantOutcome, ...]
    seconds: float
    #: Input rows with no tenant id (missing or blank, or in a hive folder for missing values): no tenant's
    #: snapshot can count them, and each tenant's outcome leaves them out, so the report counts them here.
    rows_without_tenant: int = 0
    #: Tenants with a snapshot in the store but no row in this input (a job over every tenant of the input):
    #: their snapshots stay as they were, ageing, so the report names them.
    not_in_input: tuple[str, ...] = ()

    @property
    def failed(self) -> list[str]:
        """Tenants whose refresh failed."""
        return [o.tenant_id for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every tenant published (or was unchanged), 3 when some failed."""
        return EXIT_FAILED_TENANTS if self.failed else EXIT_OK

    def table(self) -> pd.DataFrame:
        """One row per tenant, for a summary table."""
        columns = ["tenant_id", "status", "mode", "version", "rows_read", "rows_rejected", "seconds", "peak_mib",
                   "error"]
        return pd.DataFrame([asdict(o) for o in self.outcomes], columns=[*columns, "rejects_by_reason"])[columns]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--report FILE`` (JSON)."""
        return {"as_of": self.as_of, "seconds": round(self.seconds, 3), "exit_code": self.exit_code,
                "rows_without_tenant": self.rows_without_tenant, "not_in_input": list(self.not_in_input),
                "tenants": [asdict(o) for o in self.outcomes]}

    def __repr__(self) -> str:
        counts = pd.Series([o.status for o in self.outcomes]).value_counts().to_dict()
        rows, absent = self.rows_without_tenant, len(self.not_in_input)
        unassigned = f"; {plural(rows, 'row')} without a tenant id" if rows else ""
        stored = f"; {plural(absent, 'stored tenant')} not in the input" if absent else ""
        return (f"RefreshReport(as_of {self.as_of}: {plural(len(self.outcomes), 'tenant')}, "
                + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + unassigned + stored
                + f"; {self.seconds:.1f} s)")


def list_input_tenants(inputs: Any, *, columns: Mapping[str, str] | None = None) -> list[str]:
    """The tenants an archive holds, reading only the tenant column.

    Examples
    --------
    >>> list_input_tenants(pd.DataFrame({"tenant_id": ["b", "a", "b"]}))
    ['a', 'b']
    """
    return sorted(_tenant_rows(inputs, columns=columns)[0])


#: The folder name hive writers give a partition of missing values.
_HIVE_MISSING = "__HIVE_DEFAULT_PARTITION__"


def _tenant_rows(inputs: Any, *, columns: Mapping[str, str] | None = None,
                 read_options: Mapping[str, Any] | None = None) -> tuple[dict[str, int | None], int]:
    """Input rows per tenant, from the tenant column alone, and how many rows have no tenant id; None (not
    counted yet) for the tenants of an archive partitioned by tenant, whose folder names list them without
    opening a file (``read_options``: the job's, of which the format and encoding of text files apply)."""
    column = (columns or {}).get("tenant_id", "tenant_id")

    def mapped(present: Iterable[str]) -> None:  # (--columns checked before any tenant runs, as validate checks it)
        if columns:
            apply_column_mapping(pd.DataFrame(columns=list(present)), columns)

    if isinstance(inputs, pd.DataFrame):
        mapped(inputs.columns)
        if column not in inputs.columns:
            raise no_tenant_column(column, inputs.columns)
        values = inputs[column]
    else:
        # Each tenant's worker counts its own rows (from its files' footers) if it needs the figure:
        # reading every footer here, before any worker starts, took as long as refreshing ten tenants.
        listed = hive_tenants(inputs, column)
        if listed is not None:
            if columns:
                check_mapping_in_files(inputs, columns)
            return dict.fromkeys(listed[0]), listed[1]
        paths = list_sources(inputs)
        if all(p.is_dir() or p.suffix in (".parquet", ".pq") for p in paths):
            datasets = [parquet_dataset(p) for p in paths]
            for dataset in datasets:
                mapped(dataset.schema.names)
                if column not in dataset.schema.names:
                    raise no_tenant_column(column, dataset.schema.names)
            values = pd.concat([d.to_table(columns=[column]).column(column).to_pandas() for d in datasets])
        else:
            how = {k: v for k, v in (read_options or {}).items() if k in ("format", "encoding", "sep")}
            frame = read_frame(inputs, columns=columns, **how)  # (the tenant column read as text: tenant "NA")
            mapped(frame.columns)
            if column not in frame.columns:
                raise no_tenant_column(column, frame.columns)
            values = frame[column]
    # A tenant id is read as validation reads it: its text, white space stripped (none left: no tenant), and a
    # whole number in a float column (ids with a missing value beside them) its digits, 1.0 naming tenant '1'.
    text = id_text(values.reset_index(drop=True))[0]
    text = text[text.notna()]
    return {str(k): int(v) for k, v in text.value_counts().items()}, len(values) - len(text)


def check_mapping_in_files(inputs: Any, columns: Mapping[str, str]) -> None:
    """Refuse, before any tenant runs, a column mapping that names a column no file of a partitioned archive has,
    or a contract column that does not exist.

    The archive's schema is its first file's (and its partition keys): a column absent there is looked for in
    the other files' footers, and refused only when none has it (then every tenant would fail for it).
    """
    import pyarrow.parquet as pq

    # A contract name it does not know, as validate refuses it (every mapped column taken as present here).
    apply_column_mapping(pd.DataFrame(columns=sorted(set(columns.values()))), columns)
    try:
        datasets = [parquet_dataset(p) for p in list_sources(inputs)]
        present = sorted({n for d in datasets for n in d.schema.names})
        wanted = {source for source in columns.values() if source not in present}
        for path in (f for d in datasets for f in d.files):
            if not wanted:
                return
            wanted -= set(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 (a file that cannot be read fails its tenant alone, in its turn)
        return
    # A column no file has, in validate's words. (A mapped column a file has beside the contract's own is that
    # file's tenant's failure: another file may hold the one and not the other.)
    contract, source = next((c, s) for c, s in columns.items() if s in wanted)
    raise ConfigError(f"column mapping names {source!r} for {contract!r}, but the input has no such column (in no "
                      f"file); columns present: {present[:20]}")


def no_tenant_column(column: str, present: Iterable[str]) -> ConfigError:
    """The error for an input without its tenant column (``column``: its name in the input), naming the columns it
    has."""
    return ConfigError(f"the input has no {column!r} column, which names each message's tenant; columns "
                       f"present: {sorted(map(str, present))[:20]}. Name yours with --columns "
                       "tenant_id=<your column> (columns={'tenant_id': ...}), or add one")


def hive_tenants(inputs: Any, column: str) -> tuple[list[str], int] | None:
    """The tenants an archive partitioned by tenant at the top names in its folders, and the rows of hive's
    folder for missing values (rows without a tenant id, which names no tenant); None for other inputs."""
    listed = partition_values(inputs, column)
    if listed is None:
        return None
    missing = sum(parquet_dataset(folder).count_rows() for p in list_sources(inputs)
                  for folder in [p / f"{column}={_HIVE_MISSING}"] if folder.is_dir())
    return [t for t in listed if t != _HIVE_MISSING], missing


def stored_not_in_input(store: SnapshotStore, present: Iterable[str], tenants: Sequence[str] | None
                        ) -> tuple[str, ...]:
    """Tenants with a snapshot in the store but no mail in the input (none named when the job names its
    tenants: it says nothing of the others)."""
    if tenants is not None:
        return ()
    present = set(present)
    return tuple(t for t in store.tenants() if t not in present)


def reset_peak() -> None:
    """Start this process's peak-memory figure afresh (Linux), so that it covers the next tenant only."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not allowed: the figure then covers the process's life
        pass


def peak_mib() -> float:
    """Peak resident memory of this process (since :func:`reset_peak`), in MiB; NaN where unknown."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: no figure rather than a wrong one
        pass
    return float("nan")


def publish_snapshot(store: SnapshotStore, snapshot: Snapshot, force: bool) -> tuple[Status, int]:
    """Publish unless the current snapshot already describes this input as of this instant with this
    configuration (same content fingerprint, ``as_of`` and configuration), or ``force``; returns the status
    and the current version.

    A snapshot that would replace a privacy-mode one with raw addresses and display names is refused,
    ``force`` or not: the store keeps no raw string of that tenant, and a job does not change that unseen.
    One keyed with another secret than the current one's is refused unless ``force``: its keys match
    none of the current snapshot's, so a wrong secrets file would silently make every sender new, while
    rotating a tenant's secret is a deliberate full build with ``force``. One older than the current
    snapshot is refused unless ``force``: a late or overlapping run must not move the engine back in
    time (rolling back is deliberate). The checks run under the store's lock for the tenant, so a job
    publishing at the same moment cannot slip in between check and publish.
    """
    status: Status = "published"

    def decide(current: int, manifest: dict[str, Any] | None) -> int | None:
        nonlocal status
        tenant = snapshot.tenant_id
        if manifest is None:
            return _replacing_unreadable(store, snapshot, current, force)
        stored = BaselineConfig.from_dict(manifest["config"])
        if stored.privacy and not snapshot.config.privacy:
            raise ConfigError(f"tenant {tenant!r}: the current snapshot is in privacy mode (keyed "
                              "hashes, no raw address or display name) and this job's configuration is not; "
                              "publishing would write the tenant's raw strings. Refresh it with privacy = true "
                              "and its secret, or remove the tenant from the store first")
        same_secret = manifest.get("secret_check") == snapshot.secret_check
        if stored.privacy and snapshot.config.privacy and not same_secret and not force:
            raise ConfigError(f"tenant {tenant!r}: the current snapshot was keyed with another secret "
                              "than the one given; check the secrets file, or, to rotate the tenant's secret, "
                              "run a full build (not --incremental) with --force")
        as_of = pd.Timestamp(manifest["as_of"])
        if snapshot.as_of < as_of and not force:
            raise ConfigError(f"tenant {tenant!r}: the current snapshot (version {current}) is as of "
                              f"{as_of.isoformat()}, later than this job's {snapshot.as_of.isoformat()}; a job does "
                              "not move a tenant back in time unseen (a late or overlapping run?). To roll back, "
                              "run it again with --force")
        # (a snapshot of an earlier display-name form holds other keys for some names: replaced, not unchanged)
        if (not force and as_of == snapshot.as_of and stored == snapshot.config
                and manifest["input_fingerprint"] == snapshot.fingerprint and same_secret
                and manifest.get("display_name_form", 1) == snapshot.display_name_form):
            status = "unchanged"
            return current
        return None

    version = store.publish(snapshot, decide=decide)
    return status, version


def _replacing_unreadable(store: SnapshotStore, snapshot: Snapshot, current: int, force: bool) -> None:
    """Whether a snapshot may replace a current version whose manifest cannot be read (None: it may; else
    raises): only with ``force``, and never with raw strings over a tenant any version of which is, or may
    be, in privacy mode."""
    tenant = snapshot.tenant_id
    problem = store.current_problem(tenant)  # (under the publish lock: what publish saw)
    if problem is not None and problem.reason == "newer_schema":
        raise ConfigError(f"tenant {tenant!r}: the current snapshot (version {current}) was written by a newer "
                          f"commgraph (schema {problem.schema_version}); upgrade commgraph where this job runs "
                          "(--force does not downgrade it)")
    if not force:
        raise ConfigError(f"tenant {tenant!r}: the current snapshot (version {current}) cannot be read ({problem}); "
                          "the engine refuses it too. Run the job with --force to publish this one over it")
    if snapshot.config.privacy:
        return None
    private = {v: _in_privacy_mode(store, tenant, v) for v in store.versions(tenant)}
    # The current version's own evidence when its folder is there; when it is gone, the versions left must all
    # read as holding raw strings (with none left, nothing tells whether it was private).
    unknown = private.get(current) is None if current in private else not private
    if unknown or any(private.values()):
        raise ConfigError(f"tenant {tenant!r}: the current snapshot (version {current}) cannot be read, and the "
                          "tenant's versions are, or may be, in privacy mode (keyed hashes, no raw address); "
                          "publishing raw addresses over them is refused even with --force. Rebuild it with "
                          "privacy = true and its secret if it was private, or else remove the tenant's folder "
                          "from the store first")
    return None


def _in_privacy_mode(store: SnapshotStore, tenant_id: str, version: int) -> bool | None:
    """Whether a stored version is in privacy mode: yes when its manifest (checked or, damaged, as it reads)
    or its sender table (raw addresses only outside privacy mode) says so, no when what can be read says
    not; None: nothing tells."""
    import pyarrow as pa

    folder = store._version_dir(tenant_id, version)
    flag = table = None
    try:
        flag = bool(json.loads((folder / "manifest.json").read_text())["config"]["privacy"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        table = "sender" not in pa.ipc.open_file(str(folder / "sender.arrow")).schema.names
    except (OSError, pa.ArrowInvalid):
        pass
    # Any sign of privacy wins: a damaged manifest's flag may be the damage, the keys-only table is not.
    if flag or table:
        return True
    return False if flag is False or table is False else None


class _ChunksNeedWholeTenant(Exception):
    """Own domains were inferred chunk by chunk (a whole read infers them from all the tenant's mail), or the
    input has one row per recipient (a message's rows may straddle chunks): the tenant is read whole."""


def _build_chunked(tenant_id: str, inputs: Any, as_of: pd.Timestamp, config: BaselineConfig, chunk_rows: int,
                   read: Mapping[str, Any], secret: bytes | None = None) -> tuple[Snapshot | None, ReadCounts]:
    """The tenant's snapshot from partial states of chunks of ``chunk_rows`` input rows, merged."""
    counts = ReadCounts()
    inferred = False
    pieces = 0

    def states() -> Iterable:
        nonlocal inferred, pieces
        chunks = read_messages(inputs, only_tenants=[tenant_id], strict=False, chunksize=chunk_rows, **read)
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    messages = next(chunks, None)
                except RowPerRecipientChunksError:  # a message's rows may straddle chunks: read it whole
                    raise _ChunksNeedWholeTenant from None
            if messages is None:
                return
            inferred |= any(issubclass(w.category, InferredOwnDomainsWarning) for w in caught)
            counts.add_messages(messages)
            if len(messages):
                pieces += 1
                if inferred and pieces > 1:
                    raise _ChunksNeedWholeTenant
                extractor = EventExtractor(messages, as_of=as_of, privacy=config.privacy,
                                           secrets={tenant_id: secret} if secret is not None else None)
                yield partial_state(extractor.extract(tenant_id), as_of=as_of, config=config)

    state = merge_states(states())
    return (finish_snapshot(state, config, secret) if state is not None else None), counts


def _refresh_tenant(tenant_id: str, inputs: Any, store_path: str, as_of: pd.Timestamp, config: BaselineConfig,
                    tenant_configs: dict[str, TenantConfig] | None, columns: Mapping[str, str] | None,
                    incremental: bool, force: bool, read_options: Mapping[str, Any],
                    chunk_rows: int | None, secrets: Mapping[str, bytes], rows: int | None, *,
                    counted: dict[str, Any] | None = None) -> TenantOutcome:
    """Read, build or refresh, and publish one tenant; ``counted`` receives its outcome's read counts once its
    mail is read, so that a failure after the read (a full disk at publish) still reports them."""
    counted = {} if counted is None else counted
    start = time.perf_counter()
    reset_peak()
    secret = _tenant_secret(tenant_id, config, secrets)
    store = SnapshotStore(store_path)
    read = dict(columns=columns, tenants=tenant_configs, **read_options)
    mode = _mode(incremental, store, tenant_id, config, tenant_configs)
    snapshot = None
    if mode == "full" and chunk_rows is not None and rows is None:
        rows = partition_size(inputs, (columns or {}).get("tenant_id", "tenant_id"), tenant_id)
    # A tenant that fits in one chunk is read whole: the same result, without reading file by file.
    if mode == "full" and chunk_rows is not None and rows > chunk_rows:
        try:
            snapshot, counts = _build_chunked(tenant_id, inputs, as_of, config, chunk_rows, read, secret)
            fields = counts.outcome_fields()
            counted.update(fields)
            if snapshot is None:
                raise no_usable_mail(tenant_id, counts)
        except _ChunksNeedWholeTenant:
            snapshot = None
    if snapshot is None:
        previous = None
        if mode == "incremental":
            try:
                previous = store.load(tenant_id)
            except CorruptSnapshotError as exc:  # (its data files fail their checksums: nothing to refresh from)
                if not force:
                    raise CommGraphError(f"tenant {tenant_id!r}: its current snapshot cannot be read ({exc}); give "
                                         "--force to build it again in full and replace it") from None
                mode = "full"  # --force replaces a snapshot that cannot be read, as a full run does
        if previous is not None and previous.as_of > as_of:
            raise ConfigError(f"tenant {tenant_id!r}: the current snapshot is as of {previous.as_of}, later than "
                              f"--as-of {as_of}; refresh only moves forward (a full build with --force goes back)")
        [(_, messages)] = _read_since(inputs, [tenant_id], previous.as_of if previous is not None else None, read)
        counts = ReadCounts()
        counts.add_messages(messages)
        fields = counts.outcome_fields()
        counted.update(fields)
        if previous is not None and not len(messages) and counts.rejected:
            # Every new row refused: publishing would move as_of past mail no later incremental run reads again.
            raise no_usable_mail(tenant_id, counts)
        if previous is not None:
            check_secret(previous, secret, "refresh")  # (also when it does not move: no 'unchanged' on a wrong one)
            snapshot = refresh(previous, messages, as_of=as_of, secret=secret) if previous.as_of < as_of \
                else previous
        else:
            if not len(messages):
                raise no_usable_mail(tenant_id, counts)
            snapshot = build_baselines(messages, as_of=as_of, config=config,
                                       secrets={tenant_id: secret} if secret is not None else None)[tenant_id]
    ready_to_publish(snapshot, tenant_configs, force=force, fields=fields, built_in_full=mode == "full")
    status, version = publish_snapshot(store, snapshot, force)
    return TenantOutcome(tenant_id, status, mode, version, seconds=time.perf_counter() - start, peak_mib=peak_mib(),
                         **fields)


def ready_to_publish(snapshot: Snapshot, tenant_configs: Mapping[str, TenantConfig] | None, *, force: bool,
                     fields: Mapping[str, Any], built_in_full: bool) -> None:
    """Record the own domains the tenant's mail was read with, and refuse (unless ``force``) a full build
    that counts no mail: with an ``as_of`` before the tenant's mail, every sender would be new to the engine."""
    tenant_id = snapshot.tenant_id
    if built_in_full and not force and not int(snapshot.table("tenant")["n_messages"].sum()):
        raise NoUsableMail(f"tenant {tenant_id!r}: none of its mail is before --as-of {snapshot.as_of.isoformat()}, "
                           "so its snapshot would count nothing and every sender would be new to the engine; check "
                           "--as-of (--force publishes it anyway)", dict(fields))
    snapshot.own_domains_digest = own_domains_digest(tenant_configs, tenant_id)


def _tenant_secret(tenant_id: str, config: BaselineConfig, secrets: Mapping[str, bytes]) -> bytes | None:
    """The tenant's secret in privacy mode (None otherwise); a tenant without one fails alone, before any read."""
    if not config.privacy:
        return None
    if tenant_id not in secrets:
        raise ConfigError(f"tenant {tenant_id!r}: the configuration has privacy = true and the secrets hold none "
                          "for this tenant; add a line for it to the secrets file (hex, 16 to 64 bytes)")
    return secrets[tenant_id]


def _read_since(inputs: Any, tenant_ids: list[str], since: pd.Timestamp | None,
                read: Mapping[str, Any]) -> list[tuple[list[str], Messages]]:
    """The tenants' mail a refresh from ``since`` uses (all of it when ``since`` is None), validated leniently,
    in groups of tenants read together.

    With ``since``, Parquet inputs are read from ``since`` on plus older rows labelled since (see
    :func:`read_messages`); what else the archive holds, the previous snapshot already counted. One
    exception: validation infers the own domains of a tenant without configured ones from the rows
    read when they leave ``direction`` empty, and the period's mail could infer other domains than the
    whole history; such tenants are read again whole, as a rebuild reads them. Configured tenants,
    which never infer, are read apart from them so that they are not read again.
    """
    configured = read.get("tenants") or {}
    groups = [[t for t in tenant_ids if t in configured], [t for t in tenant_ids if t not in configured]]
    read_groups = []
    for group in (g for g in groups if g):
        with warnings.catch_warnings(record=True) as caught:
            # Inferred own domains are named in the validation warning; in a job they go to the report instead.
            warnings.simplefilter("always")
            messages = read_messages(inputs, only_tenants=group, strict=False, since=since, **read)
        if since is not None and any(issubclass(w.category, InferredOwnDomainsWarning) for w in caught):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                messages = read_messages(inputs, only_tenants=group, strict=False, **read)
        read_groups.append((group, messages))
    return read_groups


def _tenant_counts(messages: Messages, tenant_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per tenant, the outcome fields a read of its mail alone reports (a read filters rows by their stripped
    tenant id, so its rejects are the rows whose stripped tenant id is the tenant's)."""
    per_message = messages.frame["tenant_id"].astype("str").value_counts()
    rejects, owner = messages.rejects, messages.reject_tenants()
    no_rows = messages.frame.iloc[:0]
    fields = {}
    for tenant_id in tenant_ids:
        counts = ReadCounts()
        counts.add({"messages": int(per_message.get(tenant_id, 0)), "rejected_rows": 0, "rejects_by_reason": {}})
        own = owner == tenant_id
        if own.any():  # its rejects, counted as Messages.summary counts them (rows with several problems once)
            counts.add({**Messages(no_rows, no_rows, rejects[own]).summary(), "messages": 0})
        fields[tenant_id] = counts.outcome_fields()
    return fields


def _refresh_together(tenant_ids: list[str], inputs: Any, store_path: str, as_of: pd.Timestamp,
                      tenant_configs: dict[str, TenantConfig] | None, columns: Mapping[str, str] | None,
                      read_options: Mapping[str, Any], secrets: Mapping[str, bytes]
                      ) -> tuple[dict[str, Snapshot], dict[str, dict[str, Any]]]:
    """The refreshed snapshots of tenants that each have a current one, and their outcome fields: their mail
    read at once, their snapshots refreshed by one :func:`refresh_many` (as each alone, to the byte)."""
    store = SnapshotStore(store_path)
    previous = {t: store.load(t) for t in tenant_ids}
    given = {t: secrets[t] for t in tenant_ids if previous[t].config.privacy and t in secrets}
    if any(p.as_of > as_of for p in previous.values()):
        raise ConfigError("a current snapshot is later than --as-of")  # each tenant alone names its own
    snapshots, fields = dict(previous), {}
    # Tenants read together from the same instant, their own snapshot's: a tenant's report counts what its
    # period brought (read from an earlier tenant's as_of, it counted, and rejected again, mail its last
    # run had read). A nightly job's tenants share one as_of: one read.
    since: dict[pd.Timestamp, list[str]] = {}
    for t in tenant_ids:
        since.setdefault(previous[t].as_of, []).append(t)
    for instant, same in since.items():
        for group, messages in _read_since(inputs, same, instant,
                                           dict(columns=columns, tenants=tenant_configs, **read_options)):
            fields.update(_tenant_counts(messages, group))
            for t in group:  # (also the tenants that do not move: no 'unchanged' with a wrong secret)
                check_secret(previous[t], given.get(t) if given else None, "refresh_many")
            moving = {t: previous[t] for t in group if previous[t].as_of < as_of}
            snapshots.update(refresh_many(moving, messages, as_of=as_of, secrets=given or None))
    return snapshots, fields


def _refresh_batch(tenant_ids: list[str], *args: Any, sizes: Mapping[str, int | None]) -> list[TenantOutcome]:
    """Incremental refreshes of tenants that each have a current snapshot, together, each published alone.

    ``args`` are :func:`_refresh_tenant`'s after the tenant. If the batch fails
    before publishing, each tenant runs alone (:func:`_isolated`): only a
    failing tenant fails, with the error it gives alone. The batch's shared
    time is split evenly among its tenants; ``peak_mib`` is the batch's.
    """
    inputs, store_path, as_of, _, tenant_configs, columns, _, _, read_options, _, secrets = args
    return _publish_together(tenant_ids, args, sizes, "incremental", lambda: _refresh_together(
        tenant_ids, inputs, store_path, as_of, tenant_configs, columns, read_options, secrets))


def _build_batch(tenant_ids: list[str], *args: Any, sizes: Mapping[str, int | None]) -> list[TenantOutcome]:
    """Full builds of tenants, read and built together in groups of at most one whole read's rows, each published
    alone (and exactly as built alone: :func:`build_each`).

    ``args`` are :func:`_refresh_tenant`'s after the tenant. A tenant's rows
    (``sizes``, or counted from its folders' footers) decide its group: the
    groups hold no more rows than a tenant read whole (``chunk_rows``, or
    :data:`DEFAULT_CHUNK_ROWS` when every tenant is read whole), and a tenant
    above that runs alone, as it would without batches (in chunks, when above
    ``chunk_rows``). A group that fails before publishing runs tenant by
    tenant, as :func:`_refresh_batch` does.
    """
    inputs, store_path, as_of, config, tenant_configs, columns, _, _, read_options, chunk_rows, secrets = args
    budget = chunk_rows or DEFAULT_CHUNK_ROWS
    try:
        column = (columns or {}).get("tenant_id", "tenant_id")
        rows = {t: sizes[t] if sizes.get(t) is not None else partition_size(inputs, column, t) for t in tenant_ids}
    except Exception:  # noqa: BLE001 (a footer that cannot be read: that tenant fails alone, naming it)
        return [_isolated(t, *args, sizes.get(t)) for t in tenant_ids]
    outcomes: list[TenantOutcome] = []
    groups: list[list[str]] = []
    held = 0
    for tenant_id in tenant_ids:
        if rows[tenant_id] > budget:
            outcomes.append(_isolated(tenant_id, *args, rows[tenant_id]))
            continue
        if not groups or held + rows[tenant_id] > budget:
            groups.append([])
            held = 0
        groups[-1].append(tenant_id)
        held += rows[tenant_id]
    for group in groups:
        outcomes += _publish_together(group, args, rows, "full", lambda group=group: _build_together(
            group, inputs, as_of, config, tenant_configs, columns, read_options, secrets))
    return outcomes


def _build_together(tenant_ids: list[str], inputs: Any, as_of: pd.Timestamp, config: BaselineConfig,
                    tenant_configs: dict[str, TenantConfig] | None, columns: Mapping[str, str] | None,
                    read_options: Mapping[str, Any], secrets: Mapping[str, bytes]
                    ) -> tuple[dict[str, Snapshot], dict[str, dict[str, Any]]]:
    """The snapshots of tenants built in full from all their mail, read at once, and their outcome fields."""
    keys = {t: _tenant_secret(t, config, secrets) for t in tenant_ids}
    read = dict(columns=columns, tenants=tenant_configs, **read_options)
    snapshots, fields = {}, {}
    for group, messages in _read_since(inputs, tenant_ids, None, read):
        fields.update(_tenant_counts(messages, group))
        given = {t: keys[t] for t in group if keys[t] is not None}
        snapshots.update(build_each(messages, as_of=as_of, config=config, secrets=given or None))
    return snapshots, fields


def _publish_together(tenant_ids: list[str], args: tuple, sizes: Mapping[str, int | None], mode: str,
                      compute: Callable[[], tuple[dict[str, Snapshot], dict[str, dict[str, Any]]]]
                      ) -> list[TenantOutcome]:
    """Publish each of the snapshots ``compute`` makes for tenants read together (``mode``: how they were made).

    If ``compute`` fails, each tenant runs alone (:func:`_isolated`), and so does
    each tenant that has no snapshot or whose every row was refused: alone, it
    fails naming the first row of each problem (published, its ``as_of`` would
    move past that mail). The shared time is split evenly among the tenants;
    ``peak_mib`` is the batch's.
    """
    _, store_path, _, _, tenant_configs, _, _, force, *_ = args
    start = time.perf_counter()
    reset_peak()
    try:
        snapshots, fields = compute()
    except Exception:  # noqa: BLE001 (found again, and reported, per tenant)
        return [_isolated(t, *args, sizes.get(t)) for t in tenant_ids]
    shared = (time.perf_counter() - start) / len(tenant_ids)
    store = SnapshotStore(store_path)
    outcomes = []
    for tenant_id in tenant_ids:
        counts = fields.get(tenant_id)
        if tenant_id not in snapshots or counts is None or (
                counts["rows_rejected"] and counts["rows_read"] == counts["rows_rejected"]):
            outcomes.append(_isolated(tenant_id, *args, sizes.get(tenant_id)))
            continue
        begun = time.perf_counter()
        try:
            ready_to_publish(snapshots[tenant_id], tenant_configs, force=force, fields=counts,
                             built_in_full=mode == "full")
            status, version = publish_snapshot(store, snapshots[tenant_id], force)
        except Exception as exc:  # noqa: BLE001 (every failure is reported per tenant, with the rows it read)
            outcomes.append(TenantOutcome(tenant_id, "failed", mode, peak_mib=peak_mib(),
                                          seconds=shared + time.perf_counter() - begun, error=error_text(exc),
                                          **counts))
            continue
        outcomes.append(TenantOutcome(tenant_id, status, mode, version, peak_mib=peak_mib(),
                                      seconds=shared + time.perf_counter() - begun, **counts))
    return outcomes


def _batches(tenant_ids: list[str], rows: Mapping[str, int], workers: int) -> list[list[str]]:
    """Tenants in order, in batches of at most :data:`REFRESH_BATCH` tenants (fewer when that gives each
    worker one) and :data:`REFRESH_BATCH_ROWS` snapshot rows (``rows``: per tenant)."""
    size = max(1, min(REFRESH_BATCH, -(-len(tenant_ids) // workers)))
    batches: list[list[str]] = []
    held = 0
    for tenant_id in tenant_ids:
        if not batches or len(batches[-1]) == size or held + rows[tenant_id] > REFRESH_BATCH_ROWS:
            batches.append([])
            held = 0
        batches[-1].append(tenant_id)
        held += rows[tenant_id]
    return batches


def _snapshot_rows(store: SnapshotStore, tenant_id: str) -> int:
    """Rows in the tables of a tenant's current snapshot, from its manifest (0 when unreadable: loading it
    then fails, in its batch and again alone, where the failure is reported)."""
    try:
        return int(sum(store.manifest(tenant_id)["row_counts"].values()))
    except Exception:  # noqa: BLE001 (reported when the tenant runs)
        return 0


def error_text(exc: BaseException) -> str:
    """A failure as the report shows it: its type and message, on one line."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _mode(incremental: bool, store: SnapshotStore, tenant_id: str, config: BaselineConfig,
          tenant_configs: Mapping[str, TenantConfig] | None) -> str:
    """How a tenant is refreshed: from its current snapshot when asked to and it has one built with the job's
    configuration and the tenant's own domains (a refresh keeps what its snapshot counted: mail read with
    other own domains has other directions, so another configuration needs a full build) and a ledger of its
    counted labels (without one a changed label would count twice) and of its pairs' first inbound times (without
    them first-time senders count as an earlier commgraph counted them), with display names of this commgraph's
    form (other keys), else in full."""
    if not incremental or store.current_problem(tenant_id) is not None or store.current(tenant_id) is None:
        return "full"  # (an unreadable current version is replaced by a full build, only with --force)
    manifest = store.manifest(tenant_id)
    same = (BaselineConfig.from_dict(manifest["config"]) == config
            and manifest.get("own_domains_sha256") == own_domains_digest(tenant_configs, tenant_id)
            and LEDGER_FILE in manifest.get("files", {}) and FIRST_INBOUND_FILE in manifest.get("files", {})
            and manifest.get("display_name_form", 1) == DISPLAY_NAME_FORM)
    return "incremental" if same else "full"


def own_domains_digest(tenant_configs: Mapping[str, TenantConfig] | None, tenant_id: str) -> str:
    """What a snapshot records of the own domains its mail was read with (inferred ones: 'inferred').

    Examples
    --------
    >>> from commgraph.graph import TenantConfig
    >>> own_domains_digest(None, "acme")
    'inferred'
    >>> cfg = {"acme": TenantConfig("acme", ("acme.com",))}
    >>> own_domains_digest(cfg, "acme") == own_domains_digest(cfg, "acme") != own_domains_digest(None, "acme")
    True
    """
    found = (tenant_configs or {}).get(tenant_id)
    if found is None:
        return "inferred"
    return hashlib.sha256(json.dumps(sorted(found.own_domains)).encode()).hexdigest()[:16]


def _readable_mode(incremental: bool, store: SnapshotStore, tenant_id: str, config: BaselineConfig,
                   tenant_configs: Mapping[str, TenantConfig] | None) -> str | None:
    """How a tenant is refreshed (:func:`_mode`), or None when its id or store entry cannot be used: such a tenant
    runs alone, not in a batch, where its failure is reported."""
    try:
        return _mode(incremental, store, tenant_id, config, tenant_configs)
    except (CommGraphError, OSError):  # (OSError: an unreadable file of its entry, which fails that tenant alone)
        return None


def _isolated(tenant_id: str, *args: Any) -> TenantOutcome:
    """Run one tenant; any failure becomes its outcome instead of stopping the others (in the mode it
    was refreshed in, as far as the store still tells)."""
    start = time.perf_counter()
    counted: dict[str, Any] = {}
    try:
        return _refresh_tenant(tenant_id, *args, counted=counted)
    except Exception as exc:  # noqa: BLE001 (every failure is reported per tenant)
        store_path, config, incremental = args[1], args[3], args[6]
        mode = _mode_or_full(incremental, SnapshotStore(store_path), tenant_id, config, args[4])
        # A tenant that read its mail reports what was read and rejected, as a published one does (one without
        # usable mail: the counts its failure carries).
        return TenantOutcome(tenant_id, "failed", mode, seconds=time.perf_counter() - start, peak_mib=peak_mib(),
                             error=error_text(exc), **{**counted, **failure_counts(exc)})


def _mode_or_full(incremental: bool, store: SnapshotStore, tenant_id: str, config: BaselineConfig,
                  tenant_configs: Mapping[str, TenantConfig] | None) -> str:
    """The mode a failed tenant was refreshed in, as far as the store still tells."""
    try:
        return _mode(incremental, store, tenant_id, config, tenant_configs)
    except (CommGraphError, OSError):  # an unreadable pointer or entry: the refresh could not read it either
        return "full"


def job_settings(as_of: Any, config: BaselineConfig | Mapping | str | PathLike | None,
                 tenant_configs: Iterable[TenantConfig | Mapping] | Mapping | str | PathLike | None
                 ) -> tuple[pd.Timestamp, BaselineConfig, dict[str, TenantConfig] | None]:
    """``as_of`` in UTC, the baseline configuration and the tenants' configurations, checked."""
    as_of_ts = _instant(as_of)
    if isinstance(config, (str, PathLike)):
        config = BaselineConfig.from_toml(config)
    elif isinstance(config, Mapping):
        config = BaselineConfig.from_dict(config)
    config = config if config is not None else BaselineConfig()
    configs = load_tenant_configs(tenant_configs) if tenant_configs is not None else None
    return as_of_ts, config, configs


#: How far ahead of the clock ``as_of`` may be (clocks and zones differ a little).
AS_OF_AHEAD = pd.Timedelta(hours=1)


def _instant(as_of: Any) -> pd.Timestamp:
    """``as_of`` in UTC (a naive time is read as UTC); anything that is not one instant raises ConfigError."""
    if is_clock_word(as_of):
        raise ConfigError(f"as_of (--as-of) {as_of!r} names a moment of the clock, which a rerun cannot repeat; give "
                          "the instant the snapshots describe, e.g. 2025-02-01T00:00Z (the last midnight)")
    try:
        stamp = utc_instant(as_of)  # (text in ISO 8601 only)
    except (ValueError, TypeError, OverflowError) as exc:
        why = instant_problem(exc)
        raise ConfigError(f"as_of (--as-of) {as_of!r} is not a time in ISO 8601{why}; give an instant such as "
                          "2025-02-01T00:00Z") from None
    if stamp is pd.NaT:
        raise ConfigError(f"as_of (--as-of) is empty ({as_of!r}); give an ISO 8601 instant such as 2025-02-01T00:00Z")
    return stamp


def _wall_clock() -> pd.Timestamp:
    """The time now: only to refuse an ``as_of`` in the future, never an input of what is computed."""
    return pd.Timestamp.now(tz="UTC")


def _check_job(as_of: pd.Timestamp, store: str | PathLike, incremental: bool, force: bool,
               read_options: Mapping[str, Any] | None) -> None:
    """Refuse, before any tenant is read, what would make every tenant fail or publish a wrong snapshot."""
    now = _wall_clock()
    if as_of > now + AS_OF_AHEAD and not force:
        raise ConfigError(f"as_of (--as-of) {as_of.isoformat()} is in the future (it is {now:%Y-%m-%d %H:%M} UTC): "
                          "its snapshots would miss for good the mail still to come, and every later run would be "
                          "refused as moving the tenants back in time. Give the last midnight (--force for a "
                          "deliberate one)")
    if incremental and not SnapshotStore(store).tenants():
        # A folder without a snapshot is refused as a missing one is: a mistyped path (or a volume mounted in the
        # wrong place) would get every tenant built in full there, silently, while the engines' store ages.
        held = sorted(p.name for p in Path(store).iterdir()) if Path(store).is_dir() else None
        found = (f"there is none at {str(store)!r}" if held is None else f"{str(store)!r} holds none"
                 + (f" (only {', '.join(map(repr, held[:3]))}{' ...' if len(held) > 3 else ''})" if held else ""))
        raise ConfigError(f"--incremental refreshes the snapshots of a store, and {found}: check --store; for the "
                          "first run, build the store without --incremental (the runs after it refresh it)")
    timezone = (read_options or {}).get("timezone")
    if timezone is not None:
        try:
            _check_zone(timezone)  # every zone validation reads times in ('utc', '+02:00' too)
        except ConfigError:
            raise ConfigError(f"--timezone {timezone!r} is not a time zone; give an IANA name such as "
                              "Europe/Paris") from None


def _store_outside(inputs: Any, store: str | PathLike) -> None:
    """Refuse a store inside an input directory: the job would read its own snapshot files as mail (every tenant
    failed, or the first published into the archive and the others failed)."""
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if not all(isinstance(item, (str, PathLike)) for item in items):  # (frames, records: no folder to be in)
        return
    try:
        sources = list_sources(inputs)
    except (ConfigError, OSError):  # (the read says what is wrong with them)
        return
    where = Path(store).resolve()
    for path in sources:
        folder = path.resolve()
        if path.is_dir() and (where == folder or folder in where.parents):
            raise ConfigError(f"--store {str(store)!r} lies inside --input {str(path)!r}: the job would read its own "
                              "snapshots as mail; keep the store outside the archive")


def job_secrets(secrets: Mapping[str, bytes | str] | str | PathLike | None, config: BaselineConfig
                ) -> dict[str, bytes]:
    """The tenants' secrets (see :func:`load_secrets`), checked against the configuration's privacy mode.

    Secrets without privacy mode are refused rather than ignored: whoever passes them expects keyed hashes,
    and the job would write raw addresses."""
    if secrets is None:
        if config.privacy:
            raise ConfigError("the configuration has privacy = true: pass each tenant's secret (secrets= of "
                              "run_refresh, or --secrets FILE on the command line)")
        return {}
    loaded = load_secrets(secrets)
    if not config.privacy:
        raise ConfigError("secrets were given but the configuration has privacy = false, so the snapshots would "
                          "hold raw addresses and display names; set privacy = true in the configuration")
    return loaded


def choose_tenants(available: list[str], tenants: Sequence[str] | None) -> list[str]:
    """The tenants to refresh: all of the input's, or the ones asked for (each must be in the input)."""
    if tenants is None:
        return available
    chosen = sorted({str(t) for t in tenants})
    missing = [t for t in chosen if t not in available]
    if missing:
        raise ConfigError(f"tenants {missing} are not in the input; tenants present: {available}")
    return chosen


def run_refresh(
    inputs: Any,
    *,
    store: str | PathLike,
    as_of: Any,
    tenants: Sequence[str] | None = None,
    config: BaselineConfig | Mapping | str | PathLike | None = None,
    tenant_configs: Iterable[TenantConfig | Mapping] | Mapping | str | PathLike | None = None,
    secrets: Mapping[str, bytes | str] | str | PathLike | None = None,
    columns: Mapping[str, str] | None = None,
    jobs: int = 1,
    incremental: bool = False,
    force: bool = False,
    on_outcome: Callable[[TenantOutcome], None] | None = None,
    on_start: Callable[[list[str]], None] | None = None,
    read_options: Mapping[str, Any] | None = None,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
    engine: Literal["local", "spark"] = "local",
) -> RefreshReport:
    """Build (or refresh) and publish every tenant's snapshot as of ``as_of``.

    Parameters
    ----------
    inputs : path, glob, list of paths, DataFrame or Spark DataFrame
        The mail archive (Parquet files or hive-partitioned directories, CSV, JSON
        Lines; with ``engine='spark'``, Parquet or a Spark DataFrame).
    store : path
        The :class:`SnapshotStore` directory.
    as_of : timestamp-like
        The instant the snapshots describe; only mail strictly before it counts.
    tenants : sequence of str, optional
        Tenants to refresh; default: every tenant in the input.
    config : BaselineConfig, mapping or TOML path, optional
    tenant_configs : TenantConfig list, mapping or TOML path, optional
        Own domains per tenant (see :func:`commgraph.graph.validate`).
    secrets : mapping or TOML path, optional
        Each tenant's secret, required when the configuration has ``privacy``
        (and refused without it): a mapping of tenant id to bytes or hex text,
        or a file only its owner can read (see
        :func:`~commgraph.baselines.load_secrets`). A tenant without one fails
        alone. A snapshot keyed with another secret than the current one's is
        not published (the keys would match none of the current snapshot's):
        rotating a secret is a full build with ``force``. On the local engine
        each unit of work receives only its own tenants' secrets; on Spark
        every executor receives the chosen tenants' (see
        :func:`~commgraph.baselines._spark.refresh_on_spark`).
    columns : mapping, optional
        Column mapping for inputs with other names.
    jobs : int, default 1
        Tenants refreshed at once, each in its own process (joblib); -1: every
        core. Local engine only (on Spark the executors set the parallelism).
    incremental : bool, default False
        Refresh each tenant's current snapshot with the mail since its ``as_of``
        (equal to a full build); tenants without one, or whose snapshot was built
        with another configuration or other own domains (``tenant_configs``),
        are built in full. A ``store`` that does not exist or holds no snapshot is
        refused (a mistyped path would have every tenant built there): the
        first run builds it without ``incremental``. Local
        engine only. Tenants are refreshed :data:`REFRESH_BATCH` at a time (one
        read of their mail, one :func:`~commgraph.baselines.refresh_many`; fewer
        when their snapshots hold more than :data:`REFRESH_BATCH_ROWS` rows; a batch's
        tenants whose snapshots have other ``as_of`` are read apart), and
        each is published alone; when a batch fails, its tenants run one by one,
        so only a failing tenant fails, with the error it gives alone.
        A refresh validates only the mail sent since the current snapshot's
        ``as_of`` and older mail labelled since (the
        ``since`` of :func:`~commgraph.graph.read_messages`: from a Parquet
        archive with zoned ``timestamp`` and ``labeled_at`` columns only those
        rows are read, other inputs are read whole and filtered), so its outcome's
        ``rows_read`` and ``rows_rejected`` count what that period brought, and
        a copy of an older message in another file is not seen as a duplicate
        (the rows of a message in one file are read together). Own
        domains inferred from the rows read make it read the tenants whole
        again, so that they are inferred as a rebuild does.
        Inference follows the mail, so it can change as mail accumulates: the
        refresh then reads the new mail with the domains inferred now, while
        the mail its snapshot already counted keeps the directions it had, and
        only a rebuild reads all of it anew. Configure ``own_domains``
        (``tenant_configs``) for refreshes that always equal a rebuild.
    force : bool, default False
        Publish even when the current snapshot already has this content and ``as_of``.
    on_outcome : callable, optional
        Called with each :class:`TenantOutcome` as it completes (progress, logs).
    on_start : callable, optional
        Called once with the tenants the job will run, before the first starts (a progress bar's total).
    read_options : mapping, optional
        More options of :func:`commgraph.graph.read_messages` (``timezone``, ...).
    chunk_rows : int or None, default :data:`DEFAULT_CHUNK_ROWS`
        Read and build a tenant with more input rows (messages) than this in
        chunks of this many, merging their partial states: memory follows the
        chunk and the tenant's baselines, not the tenant's raw mail. Smaller
        tenants, and every tenant when None, are read whole. On Spark, the rows
        each task validates at a time (a larger tenant is spread over several
        tasks); None: each tenant in one task, read whole, as locally.
    engine : {'local', 'spark'}, default 'local'
        ``spark`` runs the build on the active Spark session (or a local one):
        partial states per partition, merged per tenant, published to the same
        store (needs the ``spark`` extra; see :func:`commgraph.baselines._spark.refresh_on_spark`).

    Returns
    -------
    RefreshReport

    Raises
    ------
    ConfigError
        For invalid parameters (before any tenant runs).

    Notes
    -----
    Each tenant is read and built on its own, so its snapshot depends on its own
    mail only: a tenant with too little labelled mail for its own prior takes the
    configured ``global_prior`` (or the library's default), never one fitted on
    other tenants' mail in this run. With ``global_prior`` set, the snapshots
    equal :func:`build_baselines` over all tenants at once.

    Memory: chunked, a tenant's peak follows ``chunk_rows`` and the size of its
    baselines and retained rows (the longest window), not its whole archive.
    Chunks equal a whole read (the merge contract), with one exception handled
    here: a tenant without configured own domains whose input leaves
    ``direction`` empty has its own domains inferred from all its mail, so when
    it spans several chunks it is read again whole. ``peak_mib`` in each outcome is the peak resident memory
    of the process while it ran that tenant.

    Examples
    --------
    >>> import tempfile
    >>> from commgraph.graph import generate
    >>> mail = generate(tenants=2, days=3, scale=0.05, random_state=0)
    >>> store = tempfile.mkdtemp()
    >>> report = run_refresh(mail.messages, store=store, as_of="2025-01-09", tenant_configs=mail.tenants)
    >>> report.exit_code, [o.status for o in report.outcomes]
    (0, ['published', 'published'])
    >>> [o.status for o in run_refresh(mail.messages, store=store, as_of="2025-01-09",
    ...                                 tenant_configs=mail.tenants, chunk_rows=100).outcomes]
    ['unchanged', 'unchanged']
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise ParameterError("engine", "run_refresh", f"one of {ENGINES}", engine)
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise ParameterError("chunk_rows", "run_refresh", "a positive integer", chunk_rows,
                             python="None (each tenant read whole)")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0 or jobs < -1:
        raise ParameterError("jobs", "run_refresh", "a positive integer or -1 (every core)", jobs)
    if engine == "spark" and incremental:
        raise ParameterError("incremental", "run_refresh", "False", incremental, along={"engine": "spark"},
                             fix="Spark runs full builds; incremental refreshes run on the local engine.")
    if engine == "spark" and jobs != 1:
        raise ParameterError("jobs", "run_refresh", "1", jobs, along={"engine": "spark"},
                             fix="Spark runs the tenants with the cluster's parallelism.")
    as_of_ts, config, configs = job_settings(as_of, config, tenant_configs)
    _check_job(as_of_ts, store, incremental, force, read_options)
    _store_outside(inputs, store)
    keys = job_secrets(secrets, config)
    if engine == "spark":
        from ._spark import refresh_on_spark

        return refresh_on_spark(inputs, store=store, as_of=as_of_ts, tenants=tenants, config=config,
                                tenant_configs=configs, secrets=keys, columns=columns, force=force,
                                on_outcome=on_outcome,
                                read_options=read_options, chunk_rows=chunk_rows)
    sizes, without_tenant = _tenant_rows(inputs, columns=columns, read_options=read_options)
    if not sizes:  # an export that delivered nothing: not a night on which every tenant is fine
        raise ConfigError("the input holds no mail" + (f" with a tenant id ({without_tenant:,} rows without one: "
                                                        "fill tenant_id)" if without_tenant else "")
                          + "; no snapshot was published")
    chosen = choose_tenants(sorted(sizes), tenants)
    args = (inputs, str(store), as_of_ts, config, configs, columns, incremental, force, dict(read_options or {}),
            chunk_rows)
    opened = SnapshotStore(store)
    opened.ensure_writable()  # create the directory (and refuse a bad path) before any worker starts
    not_in_input = stored_not_in_input(opened, sizes, tenants)
    # Tenants with a current snapshot of this configuration refresh incrementally, in batches; the others
    # build in full, in batches too (each tenant's fixed costs of reading, validating and deriving, paid once
    # per batch: see _build_batch), but a tenant whose store entry the job cannot read runs alone (where its
    # failure is reported).
    modes = {t: _readable_mode(incremental, opened, t, config, configs) for t in chosen}
    together = [t for t in chosen if modes[t] == "incremental"]
    built = [t for t in chosen if modes[t] == "full"]
    alone = [t for t in chosen if modes[t] is None]
    workers = (os.cpu_count() or 1) if jobs == -1 else jobs
    rows = {t: _snapshot_rows(opened, t) for t in together}

    def own(ids: list[str]) -> dict[str, bytes]:  # a unit's tenants' secrets, and no other's
        return {t: keys[t] for t in ids if t in keys}

    def one(t: str) -> Unit:
        return Unit(_isolated, (t, *args, own([t]), sizes[t]), {}, (t,))

    units = [Unit(_refresh_batch, (batch, *args, own(batch)), {"sizes": sizes}, tuple(batch),
                  tuple(one(t) for t in batch)) for batch in _batches(together, rows, workers)]
    # (Each full batch counts its own tenants' rows, as a tenant alone does, and groups them by those.)
    units += [Unit(_build_batch, (batch, *args, own(batch)), {"sizes": sizes}, tuple(batch),
                   tuple(one(t) for t in batch)) for batch in _batches(built, dict.fromkeys(built, 0), workers)]
    units += [one(t) for t in alone]
    if on_start is not None:
        on_start(chosen)

    def died(unit: Unit, cause: str) -> list[TenantOutcome]:  # a worker killed on this tenant alone
        return [TenantOutcome(t, "failed", _mode_or_full(incremental, opened, t, config, configs),
                              error=f"its worker process died ({cause}), most likely killed for want of memory; "
                                    "run it again with a smaller --chunk-rows or fewer --jobs")
                for t in unit.tenants]

    if jobs == 1 or len(units) < 2:
        results: Iterable[list[TenantOutcome] | TenantOutcome] = (u.fn(*u.args, **u.kwargs) for u in units)
    else:
        results = run_units(units, jobs if jobs > 0 else workers, died)
    return collect_report((o for r in results for o in (r if isinstance(r, list) else [r])), as_of_ts, started,
                          on_outcome, rows_without_tenant=without_tenant, not_in_input=not_in_input)


def collect_report(results: Iterable[TenantOutcome], as_of: pd.Timestamp, started: float,
                   on_outcome: Callable[[TenantOutcome], None] | None, *, rows_without_tenant: int = 0,
                   not_in_input: tuple[str, ...] = ()) -> RefreshReport:
    """The report of outcomes as they complete (each passed to ``on_outcome``), sorted by tenant."""
    outcomes = []
    for outcome in results:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    outcomes.sort(key=lambda o: o.tenant_id)
    return RefreshReport(as_of=as_of.isoformat(), outcomes=tuple(outcomes), seconds=time.perf_counter() - started,
                         rows_without_tenant=rows_without_tenant, not_in_input=not_in_input)


def write_whole(path: str | PathLike, write: Callable[[Path], Any]) -> None:
    """``write(temporary)`` beside ``path``, then the temporary file renamed over ``path``: a reader sees the
    previous file or the new one whole, never half of it (a full disk keeps the previous file)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_report(report: RefreshReport, path: str | PathLike) -> None:
    """Write the JSON report of a refresh job, whole or not at all (a reader never sees half of it)."""
    def write(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2, default=str)

    write_whole(path, write)


def check_output_path(path: str | PathLike, option: str) -> None:
    """Refuse, before a command's work, a file path it could not write at the end (a ConfigError naming
    ``option``, the command line's option that gave the path: ``refresh --report``, ``score --output``).

    Examples
    --------
    >>> check_output_path("/no/such/folder/signals.parquet", "--output")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: --output '/no/such/folder/signals.parquet': its folder '/no/such/folder' \
does not exist or cannot be written; create it, or give a path in a folder you can write (checked before the work, \
which would fail at its end)
    """
    folder = Path(path).resolve().parent
    if Path(path).is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a directory; give a file path")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r}: its folder {str(folder)!r} does not exist or cannot be written; "
                          "create it, or give a path in a folder you can write (checked before the work, which "
                          "would fail at its end)")
