"""``commgraph refresh``, ``inspect``, ``score`` and ``explain``: thin layers over the refresh job, the store and
the scorer (privacy-mode tenants scored with ``--secrets``, the file the job used)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from commgraph.baselines import SnapshotStore, load_secrets
from commgraph.baselines import TenantOutcome, run_refresh
from commgraph.baselines._job import DEFAULT_CHUNK_ROWS, ENGINES, check_output_path, write_report, write_whole
from commgraph.baselines._store import LEDGER_FILE
from commgraph.graph import CommGraphError, ConfigError
from commgraph.graph._timestamps import TIMESTAMP_UNITS
from commgraph.graph._validate import apply_column_mapping

from ._cli_words import in_options

__all__ = ["add_refresh_command", "add_inspect_command", "add_score_command", "add_explain_command"]


def _split(text: str | None) -> list[str] | None:
    """``--tenants``: comma-separated tenant ids (a configuration file there is refused, naming the option)."""
    ids = [t.strip() for t in text.split(",") if t.strip()] if text else None
    for t in ids or ():
        if t.lower().endswith(".toml"):
            raise ConfigError(f"--tenants takes comma-separated tenant ids; {t!r} names a file: give the tenants' "
                              "configuration (own domains) with --tenant-config")
    return ids


class _Progress:
    """Progress of a refresh: a bar on a terminal, one log line per tenant otherwise (text or JSON)."""

    def __init__(self, log_format: str, stream=sys.stderr):
        self.log_format = log_format
        self.stream = stream
        self.bar = None
        if log_format == "text" and stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(desc="refresh", unit="tenant", file=stream)

    def start(self, total: int) -> None:
        if self.bar is not None:
            self.bar.reset(total=total)

    def __call__(self, outcome: TenantOutcome) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{outcome.tenant_id}: {outcome.status}")
            return
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")  # a log timestamp, not a computation input
        if self.log_format == "json":
            record = {"time": now, "event": "tenant_done", "tenant_id": outcome.tenant_id, "status": outcome.status,
                      "version": outcome.version, "rows_read": outcome.rows_read,
                      "rows_rejected": outcome.rows_rejected, "seconds": round(outcome.seconds, 3),
                      "error": outcome.error and in_options(outcome.error)}
            print(json.dumps(record), file=self.stream, flush=True)
        else:
            detail = f"version {outcome.version}" if outcome.error is None else in_options(outcome.error)
            print(f"{now} refresh {outcome.tenant_id}: {outcome.status} ({detail}; {outcome.rows_read:,} rows, "
                  f"{outcome.seconds:.1f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _read_options(args: argparse.Namespace) -> dict[str, str]:
    """How to read the input (as ``commgraph validate`` reads it): only the options given."""
    return {name: getattr(args, name) for name in ("timezone", "timestamp_unit", "format", "encoding")
            if getattr(args, name)}


def run_refresh_command(args: argparse.Namespace) -> int:
    """Run ``commgraph refresh``; the exit code is the report's (0 all published, 3 some tenants failed)."""
    from ._cli import parse_mapping

    if args.report:
        check_output_path(args.report, "--report")  # before the night's work, not after it
    progress = _Progress(args.log_format)
    try:
        report = run_refresh(args.input, store=args.store, as_of=args.as_of, tenants=_split(args.tenants),
                             config=args.config, tenant_configs=args.tenant_config, secrets=args.secrets,
                             columns=parse_mapping(args.columns), jobs=args.jobs, incremental=args.incremental,
                             force=args.force, on_outcome=progress, on_start=lambda t: progress.start(len(t)),
                             engine=args.engine, chunk_rows=args.chunk_rows or None, read_options=_read_options(args))
    finally:
        progress.close()
    _print_summary(report, args.log_format)
    if args.report:  # (its errors in the command line's words, as the log says them)
        write_report(dataclasses.replace(report, outcomes=tuple(
            dataclasses.replace(o, error=in_options(o.error)) if o.error else o for o in report.outcomes)),
            args.report)
    return report.exit_code


def _print_summary(report, log_format: str) -> None:
    """The job's table and failures (stdout and stderr)."""
    if log_format == "json":
        print(json.dumps({"event": "refresh_done", **{k: v for k, v in report.to_dict().items() if k != "tenants"}}),
              file=sys.stderr)
    table = report.table().drop(columns=["error"])
    if "version" in table:  # (a failed tenant has none: 1.0 and NaN beside it otherwise)
        table["version"] = table["version"].astype("Int64")
    table["peak_mib"] = table["peak_mib"].round(0)
    table["seconds"] = table["seconds"].round(2)
    print(table.to_string(index=False))
    print(f"{report!r}")
    notes = [(f"failed: {o.tenant_id}: {in_options(o.error)}", {"event": "tenant_failed", "tenant_id": o.tenant_id,
                                                                  "error": in_options(o.error)})
             for o in report.outcomes if o.error]
    if report.not_in_input:
        notes.append((f"{len(report.not_in_input)} tenants of the store have no mail in this input; their snapshots "
                      f"stay as they were: {', '.join(report.not_in_input[:10])}"
                      f"{' ...' if len(report.not_in_input) > 10 else ''}",
                      {"event": "not_in_input", "tenants": list(report.not_in_input)}))
    if report.rows_without_tenant:
        notes.append((f"{report.rows_without_tenant:,} input rows have no tenant id: no snapshot counts them; fill "
                      "tenant_id", {"event": "rows_without_tenant", "rows": report.rows_without_tenant}))
    for text, record in notes:  # (a JSON log holds JSON lines only)
        print(json.dumps(record) if log_format == "json" else text, file=sys.stderr)


def add_refresh_command(subparsers) -> argparse.ArgumentParser:
    """Register ``refresh`` on the subparsers of the ``commgraph`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="commgraph")
    >>> _ = add_refresh_command(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["refresh", "--input", "archive/", "--store", "store/", "--as-of", "2025-02-01",
    ...                           "--jobs", "2", "--incremental"])
    >>> args.input, args.jobs, args.incremental, args.engine, args.chunk_rows
    (['archive/'], 2, True, 'local', 500000)
    """
    p = subparsers.add_parser(
        "refresh", help="build or refresh every tenant's baselines and publish the snapshots",
        description="Read a mail archive, build (or, with --incremental, refresh) each tenant's baselines as of "
                    "--as-of and publish them to the snapshot store. Tenants run in parallel and fail alone. "
                    "Exit codes: 0 all published (or unchanged), 3 some tenants failed (listed), 2 usage or "
                    "configuration error, 1 anything else.",
        epilog="examples:\n"
               "  commgraph refresh --input archive/ --store snapshots/ --as-of 2025-02-01T00:00Z --jobs 2\n"
               "  commgraph refresh --input archive/ --store snapshots/ --as-of 2025-02-02 --incremental\n"
               "  commgraph refresh --input mail.csv --store snapshots/ --as-of 2025-02-01 --tenants acme,globex \\\n"
               "      --tenant-config tenants.toml --report refresh.json --log-format json\n"
               "  commgraph refresh --input archive/ --store private/ --as-of 2025-02-01 --config privacy.toml \\\n"
               "      --secrets /run/secrets/commgraph.toml   # privacy = true: keyed hashes, no raw address stored\n"
               "  commgraph refresh --input /lake/mail/ --store /shared/snapshots --as-of 2025-02-01 \\\n"
               "      --engine spark --tenant-config tenants.toml   # under spark-submit, or a local Spark",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", required=True, help="archive files, directories or globs")
    p.add_argument("--store", required=True, help="snapshot store directory")
    p.add_argument("--as-of", required=True, dest="as_of", help="the instant the snapshots describe (ISO-8601; UTC "
                                                                 "when no offset)")
    p.add_argument("--tenants", help="comma-separated tenants (default: all in the input)")
    p.add_argument("--config", help="baseline configuration (TOML)")
    _add_tenant_config_option(p)
    p.add_argument("--secrets", help="tenants' secrets for privacy = true (TOML: a [secrets] table of tenant_id = "
                                     "\"hex\" lines; readable by its owner only, chmod 600)")
    p.add_argument("--columns", help="contract=column pairs for inputs with other column names")
    p.add_argument("--jobs", type=int, default=1, help="tenants refreshed at once, one process each (default 1; "
                                                       "-1: every core)")
    p.add_argument("--incremental", action="store_true",
                   help="refresh the current snapshots with only newer mail (the store must hold snapshots: the first "
                        "run builds it without --incremental)")
    p.add_argument("--force", action="store_true",
                   help="publish even when the content is unchanged; also what rolls a tenant back to an earlier "
                        "--as-of, rotates a privacy tenant's secret, or replaces a snapshot that cannot be read")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where the build runs: local processes (default), or Apache Spark (the active session "
                        "under spark-submit, else a local one; Parquet input; needs pip install "
                        "'commgraph[spark]')")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, dest="chunk_rows",
                   help=f"input rows read and built at a time per tenant, for bounded memory (default "
                        f"{DEFAULT_CHUNK_ROWS}; 0 reads each tenant whole)")
    add_time_options(p)
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"), help="input format when names do not say")
    p.add_argument("--encoding", help="text encoding of CSV/JSON Lines (default utf-8)")
    p.add_argument("--report", help="write a JSON report here")
    p.add_argument("--log-format", dest="log_format", choices=("text", "json"), default="text",
                   help="progress: a bar on a terminal, else log lines (default text)")
    # The parameters of run_refresh these options pass, for its errors in their words (0 passes None).
    p.set_defaults(func=run_refresh_command, parameters={
        "jobs": "--jobs", "incremental": "--incremental", "engine": "--engine",
        "chunk_rows": ("--chunk-rows", "0 (each tenant read whole)")})
    return p


def run_inspect_command(args: argparse.Namespace) -> int:
    """Run ``commgraph inspect``: tenants, versions, as_of, sizes, row counts and checksum status."""
    if not Path(args.store).is_dir():  # a mistyped path is not an empty store: a monitoring check must fail
        raise ConfigError(f"no store at {args.store!r}")
    store = SnapshotStore(args.store)
    tenants = [args.tenant] if args.tenant else store.tenants()
    if args.tenant and args.tenant not in store.tenants():  # a usage error (exit 2), as refresh's unknown --tenants
        held = store.tenants()
        fix = (f"give one of the tenants it holds: {', '.join(held[:10])}{' ...' if len(held) > 10 else ''}" if held
               else "it holds no snapshot yet")
        raise ConfigError(f"--tenant {args.tenant!r} has no snapshot in {args.store}; {fix}")
    rows, bad, pruned = [], 0, []
    for tenant in tenants:
        pointer_failed = False
        try:
            current = store.current(tenant)
        except CommGraphError as exc:  # a damaged or unreadable pointer: a row that says so, the other tenants listed
            rows.append({"tenant_id": tenant, "version": None, "current": "?", "checksum": f"FAILED: {exc}"})
            bad += 1
            current, pointer_failed = None, True
        try:
            versions = store.versions(tenant)
        except CommGraphError as exc:  # its folder cannot be listed (permissions, I/O): one row for the tenant
            if not pointer_failed:
                rows.append({"tenant_id": tenant, "version": None, "current": "?", "checksum": f"FAILED: {exc}"})
                bad += 1
            continue
        if current is not None and current not in versions:
            # The pointer names a version whose folder is gone: what the engine serves cannot load.
            try:
                store.manifest(tenant)
                problem = f"version {current} is current but absent"  # (manifest always raises here)
            except CommGraphError as exc:
                problem = str(exc)
            rows.append({"tenant_id": tenant, "version": current, "current": "*", "checksum": f"FAILED: {problem}"})
            bad += 1
        if args.current_only:  # (a damaged or dangling pointer is a row above)
            versions = [v for v in versions if v == current]
        for version in versions:
            manifest: dict = {}
            try:  # a manifest failing its checksum is a row that says so, as a data file failing its own
                manifest = store.manifest(tenant, version)
                store.load(tenant, version, verify=True)
                checksum = "ok"
            except (CommGraphError, OSError) as exc:  # (OSError: a file the OS refuses, permissions or I/O)
                if _pruned_meanwhile(store, tenant, version):
                    pruned.append(f"{tenant} v{version}")  # by a publish since it was listed: no version any more
                    continue
                checksum = f"FAILED: {exc if isinstance(exc, CommGraphError) else f'{type(exc).__name__}: {exc}'}"
                bad += 1
            counts = manifest.get("row_counts", {})
            folder = next((d for d in (Path(args.store) / tenant).glob("v*")
                           if d.is_dir() and d.name[1:].isdigit() and int(d.name[1:]) == version), None)
            try:
                size = sum(f.stat().st_size for f in folder.iterdir()) if folder is not None else 0
            except FileNotFoundError:  # (pruned meanwhile, after it was read)
                size = 0
            rows.append({
                "tenant_id": tenant, "version": version, "current": "*" if version == current else "",
                "as_of": manifest.get("as_of"), "size_mib": round(size / 2**20, 2),
                **{f"{name}_rows": counts.get(name) for name in ("sender", "sender_domain", "pair", "recipient")},
                # Whether a refresh can retract a changed label (else --incremental builds the tenant in full).
                "label_ledger": ("yes" if LEDGER_FILE in manifest["files"] else "no") if "files" in manifest else None,
                "checksum": checksum,
            })
    foreign = [] if args.tenant else store.foreign()
    if foreign:  # (a file or a broken link under a tenant's name may stand where that tenant's folder was)
        named = [repr(name) + ("" if (Path(args.store) / name).is_dir() else " (not a folder)") for name in foreign]
        print(f"not tenants (the store does not read them): {', '.join(named)}", file=sys.stderr)
    if pruned:
        print(f"pruned by a publish while inspect ran (not checked): {', '.join(pruned)}; run inspect again for the "
              "versions published since", file=sys.stderr)
    if not rows:
        if not pruned:
            print(f"no snapshots in {args.store}")
        return 0
    table = pd.DataFrame(rows)
    # Whole numbers stay whole beside a row without them (a damaged pointer): 2, not 2.0.
    counts = [c for c in table.columns if c == "version" or c.endswith("_rows")]
    table[counts] = table[counts].astype("Int64")
    print(table.to_string(index=False))
    return 1 if bad else 0


def _pruned_meanwhile(store: SnapshotStore, tenant: str, version: int) -> bool:
    """Whether a version that failed to load was pruned by a publish since inspect listed it."""
    try:
        return version not in store.versions(tenant) and store.current(tenant) != version
    except CommGraphError:  # (the tenant's entry cannot be read now: its failure, not a publish moving on)
        return False


def add_inspect_command(subparsers) -> argparse.ArgumentParser:
    """Register ``inspect`` on the subparsers of the ``commgraph`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="commgraph")
    >>> _ = add_inspect_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["inspect", "--store", "snapshots/", "--tenant", "acme"]).tenant
    'acme'
    """
    p = subparsers.add_parser(
        "inspect", help="list the store's tenants and versions, and verify their checksums",
        description="Show each tenant's snapshot versions (as_of, size, row counts, whether the snapshot keeps "
                    "the ledger of counted labels) and verify every file's SHA-256 checksum. Exits 1 when a "
                    "checksum fails, 2 on a usage error (no store at --store, a --tenant it does not hold).",
        epilog="examples:\n  commgraph inspect --store snapshots/\n  commgraph inspect --store snapshots/ --tenant acme"
               "\n  commgraph inspect --store snapshots/ --current-only   # what is served, quickly",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="snapshot store directory")
    p.add_argument("--tenant", help="one tenant (default: all)")
    p.add_argument("--current-only", action="store_true",
                   help="list and verify only each tenant's current version (the one served and refreshed), "
                        "not the older versions retention keeps: for large stores")
    p.set_defaults(func=run_inspect_command)
    return p


def _scoring_secrets(path: str | None) -> dict[str, bytes] | None:
    """The secrets file of ``--secrets`` read as the refresh job reads it (owner-only TOML); None without one."""
    return None if path is None else load_secrets(path)


_SECRETS_HELP = ("secrets of the tenants in privacy mode, the file the refresh job used (TOML: a [secrets] table "
                 "of tenant_id = \"hex\" lines; readable by its owner only, chmod 600)")


def _read_input(args: argparse.Namespace) -> pd.DataFrame:
    """The command's ``--input`` with its read options (``--format``, ``--encoding``), columns renamed by
    ``--columns`` (your identifier and text columns read as text: a tenant "NA" stays itself)."""
    from commgraph.graph import read_frame

    from ._cli import parse_mapping

    mapping = parse_mapping(getattr(args, "columns", None))
    frame = read_frame(args.input, format=args.format, encoding=args.encoding, columns=mapping)
    # Checked as validate checks it: a column the input lacks, or one the input has already, is refused
    # (a plain rename ignored the first and crashed on the second).
    return apply_column_mapping(frame, mapping)


def _tenant_configs(args: argparse.Namespace) -> list | None:
    """The tenants' configurations of ``--tenant-config`` (None: each tenant's own domains as its snapshot's mail
    shows them, which misses a domain that only ever receives mail)."""
    from commgraph.graph import load_tenant_configs

    return None if args.tenant_config is None else list(load_tenant_configs(args.tenant_config).values())


def _add_tenant_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant-config", dest="tenant_config", help="tenants' own domains (TOML, [[tenant]] tables)")


def add_time_options(p: argparse.ArgumentParser) -> None:
    """``--timezone`` and ``--timestamp-unit``: how a command reads naive times and epoch numbers.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_time_options(p)
    >>> vars(p.parse_args(["--timestamp-unit", "ms"]))
    {'timezone': None, 'timestamp_unit': 'ms'}
    """
    p.add_argument("--timezone", help="zone of naive timestamps (IANA name)")
    p.add_argument("--timestamp-unit", dest="timestamp_unit", choices=TIMESTAMP_UNITS,
                   help="unit of timestamps written as epoch numbers (default: seconds or milliseconds, as their "
                        "magnitudes say; numbers of both magnitudes in one column are refused without it)")


def _time_options(args: argparse.Namespace) -> dict[str, str]:
    """The time options given (``timezone``, ``timestamp_unit``), as :func:`commgraph.graph.validate` takes them."""
    return {name: getattr(args, name) for name in ("timezone", "timestamp_unit") if getattr(args, name, None)}


def _add_format_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"), help="input format when names do not say")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSON Lines (default utf-8)")


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


#: What ``score --output`` writes, by the file's extension (in any case).
_OUTPUT_WRITERS = {".parquet": _to_parquet, ".pq": _to_parquet, ".csv": _to_csv}


def _output_writer(path: str):
    """How ``score`` writes ``--output``, from its extension; another extension is refused before any work (it
    wrote Parquet into a file named .csv).

    Examples
    --------
    >>> _output_writer("signals.CSV") is _OUTPUT_WRITERS[".csv"]
    True
    """
    found = _OUTPUT_WRITERS.get(Path(path).suffix.lower())
    if found is None:
        raise ConfigError(f"--output {path!r}: score writes Parquet (.parquet, .pq) or CSV (.csv), as the file's "
                          "extension says; give a path ending in one of them")
    return found


def run_score_command(args: argparse.Namespace) -> int:
    """Run ``commgraph score``: signals for every message (or edge) of the input, written to Parquet or CSV."""
    import time

    from ._scorer import Scorer

    start = time.perf_counter()
    write = _output_writer(args.output)
    check_output_path(args.output, "--output")  # before the scoring, not after it (pandas' error named no option)
    scorer = Scorer.from_store(SnapshotStore(args.store), tenants=_split(args.tenants),
                               secrets=_scoring_secrets(args.secrets), tenant_configs=_tenant_configs(args))
    frame = _read_input(args)
    # Read as validate and refresh read it (naive times in --timezone, epoch numbers in --timestamp-unit): copies
    # of a message filed in several folders keep their first, as refresh keeps it; any other problem refuses the
    # batch, naming every one (what the scorer's strict validation says).
    batch = scorer.validate(frame, **_time_options(args))
    if len(batch.rejects):
        print(f"{len(batch.rejects):,} rows set aside as copies of a message or recipient already read (the first "
              "copy is scored)", file=sys.stderr)
    scored = scorer.score(batch, level=args.level, cold_start=args.cold_start)
    # Whole or not at all: a write that fails half-way (a full disk) keeps the previous output readable.
    write_whole(args.output, lambda temporary: write(scored, temporary))
    print(f"scored {len(scored):,} {args.level}s of {scored['tenant_id'].nunique()} tenants with "
          f"{scored.shape[1] - (3 if args.level == 'edge' else 2)} signals in {time.perf_counter() - start:.1f} s "
          f"-> {args.output}")
    return 0


def add_score_command(subparsers) -> argparse.ArgumentParser:
    """Register ``score`` on the subparsers of the ``commgraph`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="commgraph")
    >>> _ = add_score_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["score", "--input", "mail.parquet", "--store", "s/", "--output", "o.parquet"]).level
    'message'
    """
    p = subparsers.add_parser(
        "score", help="compute the signals of mail against the current snapshots",
        description="Score every message (or every message x recipient edge) of the input against each tenant's "
                    "current snapshot and write the signals to Parquet or CSV (as --output's extension says).",
        epilog="examples:\n  commgraph score --input today/ --store snapshots/ --output signals.parquet\n"
               "  commgraph score --input mail.csv --store snapshots/ --output edges.csv --level edge\n"
               "  commgraph score --input today/ --store private/ --output signals.parquet \\\n"
               "      --secrets /run/secrets/commgraph.toml   # privacy-mode tenants: keyed with their secrets",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", required=True, help="mail files, directories or globs")
    p.add_argument("--store", required=True, help="snapshot store directory")
    p.add_argument("--output", required=True, help="file to write: Parquet (.parquet, .pq) or CSV (.csv), by its "
                                                    "extension")
    p.add_argument("--level", choices=("message", "edge"), default="message", help="one row per message (default) "
                                                                                      "or per edge")
    p.add_argument("--tenants", help="comma-separated tenants to load (default: all in the store)")
    p.add_argument("--columns", help="contract=column pairs for inputs with other column names")
    add_time_options(p)
    _add_format_options(p)
    _add_tenant_config_option(p)
    p.add_argument("--cold-start", dest="cold_start", action="store_true",
                   help="score tenants without a snapshot against the global prior instead of failing")
    p.add_argument("--secrets", help=_SECRETS_HELP)
    p.set_defaults(func=run_score_command)
    return p


def run_explain_command(args: argparse.Namespace) -> int:
    """Run ``commgraph explain``: every signal of one message, with its evidence and a sentence."""
    from ._explain import explain
    from ._scorer import Scorer

    frame = _read_input(args)
    missing = [c for c in ("tenant_id", "message_id") if c not in frame.columns]
    if missing:
        raise CommGraphError(f"the input has no {missing} column; columns present: {list(frame.columns)} (a "
                             "partition folder such as tenant_id=... read alone loses its partition column: "
                             "give the dataset's root)")
    match = frame[(frame["tenant_id"].astype(str) == args.tenant)
                  & (frame["message_id"].astype(str) == args.message_id)]
    if match.empty:
        raise CommGraphError(f"message {args.message_id!r} of tenant {args.tenant!r} is not in the input")
    message = {k: v for k, v in match.iloc[0].to_dict().items() if not (isinstance(v, float) and v != v)}
    if "recipient" in match.columns:  # one row per recipient: the message's rows gathered into its lists
        message.pop("recipient", None)
        kinds = match["recipient_type"].astype("string").str.strip().str.lower() if "recipient_type" in match \
            else pd.Series(pd.NA, index=match.index, dtype="string")
        message.pop("recipient_type", None)
        for kind in ("to", "cc", "bcc", None):
            rows = kinds.isna() if kind is None else kinds == kind
            found = [r for r in match["recipient"][rows.fillna(False).to_numpy(bool)] if isinstance(r, str)]
            if found:
                message["recipients" if kind is None else kind] = found
    if _time_options(args):  # naive times read in the zone (epoch numbers in the unit), as score reads them
        from commgraph.graph import parse_timestamps

        for column in ("timestamp", "labeled_at"):
            if column in message and not pd.isna(message[column]):  # (missing: no label time, or refused later)
                parsed = parse_timestamps(pd.Series([message[column]]), timezone=args.timezone,
                                          unit=args.timestamp_unit)
                reason = parsed.reason[0]
                if reason is not None:  # (a local time daylight saving skips or repeats, say)
                    raise CommGraphError(f"{column} {message[column]!r} is refused ({reason.value}): "
                                         f"{parsed.fixes[reason]}")
                message[column] = parsed.values.iloc[0].isoformat()
    store = SnapshotStore(args.store)
    secrets = _scoring_secrets(args.secrets)
    if args.cold_start and args.tenant not in store.tenants():
        scorer = _cold_scorer(store, secrets, _tenant_configs(args))
    else:
        scorer = Scorer.from_store(store, tenants=[args.tenant], cold_start=args.cold_start, secrets=secrets,
                                   tenant_configs=_tenant_configs(args))
    explanation = explain(message, scorer)
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(explanation)
    return 0


def _cold_scorer(store: SnapshotStore, secrets: Mapping[str, bytes] | None, configs: Any) -> Any:
    """A scorer for a tenant without a snapshot, explained cold: the global prior of the store's tenants, as
    score reads it, from every tenant that loads. A privacy-mode tenant whose secret is not given and a tenant
    that cannot be loaded are left out, with a warning for the latter: a cold start reads neither's keys or
    data, so neither may refuse the command."""
    from ._scorer import Scorer

    snapshots = {}
    for tenant in store.tenants():
        try:
            snapshot = store.load(tenant)
        except CommGraphError as exc:
            warnings.warn(f"tenant {tenant!r} is left out of the global prior: its snapshot cannot be loaded ({exc})",
                          stacklevel=2)
            continue
        if snapshot.config.privacy and tenant not in (secrets or {}):
            continue
        snapshots[tenant] = snapshot
    return Scorer(snapshots, cold_start=True, secrets={t: k for t, k in (secrets or {}).items() if t in snapshots},
                  tenant_configs=configs)


def add_explain_command(subparsers) -> argparse.ArgumentParser:
    """Register ``explain`` on the subparsers of the ``commgraph`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="commgraph")
    >>> _ = add_explain_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["explain", "--store", "s/", "--tenant", "acme", "--message-id", "m1",
    ...                    "--input", "mail.csv"]).message_id
    'm1'
    """
    p = subparsers.add_parser(
        "explain", help="why a message's signals have the values they have",
        description="For one message: each signal's value, the baseline evidence behind it (counts, first and "
                    "last seen, labels, the known domain a look-alike resembles) and one plain sentence.",
        epilog="example:\n  commgraph explain --store snapshots/ --tenant acme --message-id '<a1@mail>' "
               "--input today/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="snapshot store directory")
    p.add_argument("--tenant", required=True, help="the message's tenant")
    p.add_argument("--message-id", dest="message_id", required=True, help="the message's id")
    p.add_argument("--input", nargs="+", required=True, help="mail files, directories or globs holding it")
    p.add_argument("--columns", help="contract=column pairs for inputs with other column names")
    add_time_options(p)
    _add_format_options(p)
    _add_tenant_config_option(p)
    p.add_argument("--cold-start", dest="cold_start", action="store_true",
                   help="explain a tenant without a snapshot against the global prior instead of failing")
    p.add_argument("--secrets", help=_SECRETS_HELP)
    p.set_defaults(func=run_explain_command)
    return p
