"""The ``commgraph`` command line: it parses arguments and calls public functions, nothing more."""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from commgraph.graph import CommGraphError, ConfigError, read_messages
from commgraph.graph._validate import _check_zone

from ._cli_generate import add_generate_command
from ._cli_store import add_explain_command, add_inspect_command, add_refresh_command, add_score_command, \
    add_time_options
from ._cli_words import in_options, said

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _version() -> str:
    try:
        return version("commgraph")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """Parse ``--columns``: ``contract=yours,...`` or a JSON object.

    Examples
    --------
    >>> parse_mapping("sender=from_address, recipients=to_list")
    {'sender': 'from_address', 'recipients': 'to_list'}
    >>> parse_mapping('{"sender": "from"}')
    {'sender': 'from'}
    """
    if not text:
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--columns {text!r} is not valid JSON ({exc}); give {{\"contract\": \"column\"}} or "
                              "contract=column pairs separated by commas") from None
    else:
        mapping = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, column = item.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise ConfigError(f"--columns takes contract=column pairs separated by commas (got {item!r})")
            mapping[name.strip()] = column.strip()
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ConfigError(f"--columns must map contract names to column names (got {text!r})")
    return mapping


def print_summary(messages, out) -> None:
    """Print the counts of a :class:`~commgraph.graph.Messages`: messages, edges, tenants, rejects by reason."""
    s = messages.summary()
    print(f"messages  {s['messages']:>12,}", file=out)
    print(f"edges     {s['edges']:>12,}", file=out)
    print(f"tenants   {s['tenants']:>12,}", file=out)
    if s["messages"]:
        per_tenant = messages.frame.groupby("tenant_id").agg(
            messages=("message_id", "size"), first=("timestamp", "min"), last=("timestamp", "max"))
        per_tenant["edges"] = messages.edges().groupby("tenant_id").size()
        print(per_tenant[["messages", "edges", "first", "last"]].to_string(), file=out)
    print(f"rejects   {len(messages.rejects):>12,}  ({s['rejected_rows']:,} rows left out)", file=out)
    if s["repeated_recipients_merged"]:
        print(f"  (and {s['repeated_recipients_merged']:,} recipient entries that repeated a recipient of the same "
              "message, merged into one edge)", file=out)
    for reason, count in s["rejects_by_reason"].items():
        print(f"  {reason:<28}{count:>10,}", file=out)


def _cmd_validate(args: argparse.Namespace) -> int:
    if args.show < 0:  # (it listed every row of each problem but its last ones)
        raise ConfigError(f"--show {args.show}: give how many rows to list per problem, 0 or more (0: the counts "
                          "alone)")
    messages = read_messages(args.path, columns=parse_mapping(args.columns), strict=False,
                             tenants=args.tenant_config, timezone=args.timezone,
                             timestamp_unit=args.timestamp_unit, format=args.format,
                             encoding=args.encoding)
    print_summary(messages, sys.stdout)
    if len(messages.rejects):
        if args.show:  # (0: the counts above alone, without a heading over nothing)
            print("\nproblems (first rows of each):", file=sys.stdout)
        shown = messages.rejects.groupby(["reject_column", "reject_reason"], sort=False).head(args.show)
        for label, row in shown.iterrows():
            # The label is the row's number in its file: over several files, "row 0" named no row until the file
            # was named too (as a SchemaError names it).
            file = row.get("source_file")
            where = f"{file} row {label}" if isinstance(file, str) else f"row {label}"
            print(f"  {where}: {in_options(row['reject_message'])}", file=sys.stdout)
        return EXIT_FAILURE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``commgraph`` command.

    Examples
    --------
    >>> build_parser().parse_args(["validate", "mail.csv"]).command
    'validate'
    """
    parser = argparse.ArgumentParser(
        prog="commgraph", description="Communication-graph baselines and signals for email security.")
    parser.add_argument("--version", action="version", version=f"commgraph {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    v = commands.add_parser(
        "validate", help="check mail metadata against the message contract",
        description="Read mail metadata, check it against the message contract and print a summary. "
                    "Exits 1 when any row breaks the contract, listing the problems.",
        epilog="examples:\n  commgraph validate archive/\n"
               "  commgraph validate mail.csv --columns sender=from_address,recipients=to_list\n"
               "  commgraph validate mail.csv --tenant-config tenants.toml --timezone Europe/Paris",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("path", nargs="+", help="files, directories or globs (Parquet, CSV, JSON Lines)")
    v.add_argument("--columns", help="contract=column pairs (or a JSON object) for inputs with other names")
    # (--tenant-config as refresh, score and explain name it; --tenants, its first name, still read)
    v.add_argument("--tenant-config", "--tenants", dest="tenant_config",
                   help="tenants' own domains (TOML, one [[tenant]] table per tenant)")
    add_time_options(v)
    v.add_argument("--format", choices=("parquet", "csv", "jsonl"), help="input format when names do not say")
    v.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSON Lines (default utf-8)")
    v.add_argument("--show", type=int, default=5, help="rows to list per problem (default 5; 0: the counts alone)")
    v.set_defaults(func=_cmd_validate)
    add_generate_command(commands)
    add_refresh_command(commands)
    add_score_command(commands)
    add_explain_command(commands)
    add_inspect_command(commands)
    return parser


def _check_text_options(args: argparse.Namespace) -> None:
    """Refuse an ``--encoding`` or ``--timezone`` that names nothing before any command reads with it (a bad
    encoding surfaced as an unexpected LookupError, exit 1; explain's zone as a ZoneInfoNotFoundError)."""
    encoding = getattr(args, "encoding", None)
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"--encoding {encoding!r} names no text encoding; give one such as utf-8, latin-1 or "
                              "cp1252") from None
    zone = getattr(args, "timezone", None)
    if zone is not None:
        try:
            _check_zone(zone)
        except ConfigError:
            raise ConfigError(f"--timezone {zone!r} is not a time zone; give an IANA time zone such as "
                              "Europe/Paris (or UTC)") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Exit codes: 0 success, 1 the input has problems (or anything unexpected),
    2 usage or configuration error, 3 some tenants failed (``refresh``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_: print(  # (not the line of this file that called main)
                f"commgraph {args.command}: warning: {in_options(str(message))}", file=sys.stderr)
            _check_text_options(args)
            return args.func(args)
    except ConfigError as exc:
        print(f"commgraph {args.command}: {said(exc, args)}", file=sys.stderr)
        return EXIT_USAGE
    except CommGraphError as exc:
        print(f"commgraph {args.command}: {said(exc, args)}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # unreadable input, full disk, missing directory: say which, exit 1
        print(f"commgraph {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 (a scheduler reads the exit code; a person reads the line)
        print(f"commgraph {args.command}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
