"""The refresh job: read a mail archive, build or refresh each tenant's snapshot, publish it.

This is what ``commgraph refresh`` runs under cron, Airflow or Kubernetes. Each
tenant is one unit of work: read only its mail (tenant partitions of a Parquet
archive are opened alone), build its baselines (or refresh the current snapshot
with the mail since), publish atomically. Tenants run in parallel processes and
fail alone: the others still publish, and the report says which failed and why.
"""

from __future__ import annotations

import json
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import pandas as pd

from commgraph.graph import CommGraphError, ConfigError, TenantConfig, list_sources, load_tenant_configs, read_frame
from commgraph.graph import read_messages

from ._build import build_baselines, refresh
from ._config import BaselineConfig
from ._store import SnapshotStore

__all__ = ["run_refresh", "RefreshReport", "TenantOutcome", "list_input_tenants", "EXIT_OK", "EXIT_FAILED_TENANTS",
           "EXIT_USAGE", "EXIT_ERROR"]

#: Exit codes of ``commgraph refresh``.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILED_TENANTS = 0, 1, 2, 3

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
        Input rows of the tenant, and those set aside by the message contract.
    rejects_by_reason : dict
    seconds : float
    peak_mib : float
        Peak resident memory of the process that ran the tenant.
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
    >>> report.table()[["tenant_id", "status", "version", "rows_read"]]
      tenant_id     status  version  rows_read
    0      acme  published      3.0         10
    1    globex     failed      NaN          0
    """

    as_of: str
    outcomes: tuple[TenantOutcome, ...]
    seconds: float

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
                "tenants": [asdict(o) for o in self.outcomes]}

    def __repr__(self) -> str:
        counts = pd.Series([o.status for o in self.outcomes]).value_counts().to_dict()
        return (f"RefreshReport(as_of {self.as_of}: {len(self.outcomes)} tenants, "
                + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f"; {self.seconds:.1f} s)")


def list_input_tenants(inputs: Any, *, columns: Mapping[str, str] | None = None) -> list[str]:
    """The tenants an archive holds, reading only the tenant column.

    Examples
    --------
    >>> list_input_tenants(pd.DataFrame({"tenant_id": ["b", "a", "b"]}))
    ['a', 'b']
    """
    column = (columns or {}).get("tenant_id", "tenant_id")
    if isinstance(inputs, pd.DataFrame):
        values = inputs[column]
    else:
        paths = list_sources(inputs)
        if all(p.is_dir() or p.suffix in (".parquet", ".pq") for p in paths):
            import pyarrow.dataset as ds

            values = pd.concat([ds.dataset(p, format="parquet", partitioning="hive").to_table(columns=[column])
                                .column(column).to_pandas() for p in paths])
        else:
            values = read_frame(inputs)[column]
    return sorted(values.dropna().astype(str).str.strip().unique().tolist())


def _peak_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: no figure rather than a wrong one
        pass
    return float("nan")


def _refresh_tenant(tenant_id: str, inputs: Any, store_path: str, as_of: pd.Timestamp, config: BaselineConfig,
                    tenant_configs: dict[str, TenantConfig] | None, columns: Mapping[str, str] | None,
                    incremental: bool, force: bool, read_options: Mapping[str, Any]) -> TenantOutcome:
    start = time.perf_counter()
    store = SnapshotStore(store_path)
    with warnings.catch_warnings():
        # Inferred own domains are named in the validation warning; in a job they go to the report instead.
        warnings.simplefilter("ignore")
        messages = read_messages(inputs, only_tenants=[tenant_id], strict=False, columns=columns,
                                 tenants=tenant_configs, **read_options)
    summary = messages.summary()
    read = dict(rows_read=summary["messages"] + summary["rejected_rows"], rows_rejected=summary["rejected_rows"],
                rejects_by_reason=summary["rejects_by_reason"])
    current = store.current(tenant_id)
    mode = "full"
    if incremental and current is not None:
        previous = store.load(tenant_id)
        if previous.as_of > as_of:
            raise ConfigError(f"tenant {tenant_id!r}: the current snapshot is as of {previous.as_of}, later than "
                              f"--as-of {as_of}; refresh only moves forward (use a full build to go back)")
        snapshot = refresh(previous, messages, as_of=as_of) if previous.as_of < as_of else previous
        mode = "incremental"
    else:
        if not len(messages):
            raise CommGraphError(f"tenant {tenant_id!r}: no usable mail in the input "
                                 f"({read['rows_rejected']} rows rejected: {read['rejects_by_reason']})")
        snapshot = build_baselines(messages, as_of=as_of, config=config)[tenant_id]
    if current is not None and not force:
        manifest = store.manifest(tenant_id)
        if (pd.Timestamp(manifest["as_of"]) == snapshot.as_of
                and manifest["input_fingerprint"] == snapshot.fingerprint):
            return TenantOutcome(tenant_id, "unchanged", mode, current, seconds=time.perf_counter() - start,
                                 peak_mib=_peak_mib(), **read)
    version = store.publish(snapshot)
    return TenantOutcome(tenant_id, "published", mode, version, seconds=time.perf_counter() - start,
                         peak_mib=_peak_mib(), **read)


def _isolated(tenant_id: str, *args: Any) -> TenantOutcome:
    """Run one tenant; any failure becomes its outcome instead of stopping the others."""
    start = time.perf_counter()
    try:
        return _refresh_tenant(tenant_id, *args)
    except Exception as exc:  # noqa: BLE001 (every failure is reported per tenant)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return TenantOutcome(tenant_id, "failed", seconds=time.perf_counter() - start, peak_mib=_peak_mib(),
                             error=detail)


def run_refresh(
    inputs: Any,
    *,
    store: str | PathLike,
    as_of: Any,
    tenants: Sequence[str] | None = None,
    config: BaselineConfig | Mapping | str | PathLike | None = None,
    tenant_configs: Iterable[TenantConfig | Mapping] | Mapping | str | PathLike | None = None,
    columns: Mapping[str, str] | None = None,
    jobs: int = 1,
    incremental: bool = False,
    force: bool = False,
    on_outcome: Callable[[TenantOutcome], None] | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> RefreshReport:
    """Build (or refresh) and publish every tenant's snapshot as of ``as_of``.

    Parameters
    ----------
    inputs : path, glob, list of paths or DataFrame
        The mail archive (Parquet files or hive-partitioned directories, CSV, JSON Lines).
    store : path
        The :class:`SnapshotStore` directory.
    as_of : timestamp-like
        The instant the snapshots describe; only mail strictly before it counts.
    tenants : sequence of str, optional
        Tenants to refresh; default: every tenant in the input.
    config : BaselineConfig, mapping or TOML path, optional
    tenant_configs : TenantConfig list, mapping or TOML path, optional
        Own domains per tenant (see :func:`commgraph.graph.validate`).
    columns : mapping, optional
        Column mapping for inputs with other names.
    jobs : int, default 1
        Tenants refreshed at once, each in its own process (joblib); -1: every core.
    incremental : bool, default False
        Refresh each tenant's current snapshot with the mail since its ``as_of``
        (equal to a full build); tenants without one are built in full.
    force : bool, default False
        Publish even when the current snapshot already has this content and ``as_of``.
    on_outcome : callable, optional
        Called with each :class:`TenantOutcome` as it completes (progress, logs).
    read_options : mapping, optional
        More options of :func:`commgraph.graph.read_messages` (``timezone``, ...).

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
    equal :func:`build_baselines` over all tenants at once. Memory is bounded by
    the largest tenant, not the archive.

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
    ...                                 tenant_configs=mail.tenants).outcomes]
    ['unchanged', 'unchanged']
    """
    started = time.perf_counter()
    as_of_ts = pd.Timestamp(as_of)
    as_of_ts = as_of_ts.tz_localize("UTC") if as_of_ts.tzinfo is None else as_of_ts.tz_convert("UTC")
    if isinstance(config, (str, PathLike)):
        config = BaselineConfig.from_toml(config)
    elif isinstance(config, Mapping):
        config = BaselineConfig.from_dict(config)
    config = config if config is not None else BaselineConfig()
    configs = load_tenant_configs(tenant_configs) if tenant_configs is not None else None
    if not isinstance(jobs, int) or jobs == 0 or jobs < -1:
        raise ConfigError(f"The 'jobs' parameter of run_refresh must be a positive integer or -1. Got {jobs!r} instead.")
    available = list_input_tenants(inputs, columns=columns)
    if tenants is None:
        chosen = available
    else:
        chosen = sorted({str(t) for t in tenants})
        missing = [t for t in chosen if t not in available]
        if missing:
            raise ConfigError(f"tenants {missing} are not in the input; tenants present: {available}")
    args = (inputs, str(store), as_of_ts, config, configs, columns, incremental, force, dict(read_options or {}))
    SnapshotStore(store)  # create the directory (and refuse a bad path) before any worker starts
    outcomes = []
    if jobs == 1 or len(chosen) < 2:
        results: Iterable[TenantOutcome] = (_isolated(t, *args) for t in chosen)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(_isolated)(t, *args) for t in chosen)
    for outcome in results:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    outcomes.sort(key=lambda o: o.tenant_id)
    return RefreshReport(as_of=as_of_ts.isoformat(), outcomes=tuple(outcomes), seconds=time.perf_counter() - started)


def write_report(report: RefreshReport, path: str | PathLike) -> None:
    """Write the JSON report of a refresh job."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report.to_dict(), fh, indent=2, default=str)
