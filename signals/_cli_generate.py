"""``commgraph generate``: synthetic enterprise mail to a hive-partitioned Parquet dataset.

A thin layer: it parses arguments and calls :func:`commgraph.graph.write_generated`.
"""

from __future__ import annotations

import argparse
import sys

from commgraph.graph import ConfigError
from commgraph.graph import ATTACK_SCENARIOS, write_generated

from ._cli_words import said

__all__ = ["add_generate_command", "run_generate"]

EXIT_OK, EXIT_USAGE = 0, 2


def add_generate_command(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on the subparsers of the ``commgraph`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="commgraph")
    >>> _ = add_generate_command(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["generate", "--out", "mail", "--tenants", "4", "--days", "7"])
    >>> args.tenants, args.days, args.scale, args.seed, args.attack_rate
    (4, 7, 1.0, 0, 0.001)
    """
    p = subparsers.add_parser(
        "generate", help="write synthetic enterprise mail with labelled attacks as Parquet",
        description="Generate realistic synthetic mail for several tenants, with labelled attack "
                    "scenarios, to OUT/tenant_id=<id>/date=<YYYY-MM-DD>/*.parquet. The same "
                    "arguments give the same bytes.")
    p.add_argument("--out", required=True, help="output directory (must be empty or absent)")
    p.add_argument("--tenants", type=int, default=3, help="number of tenants (default 3)")
    p.add_argument("--days", type=int, default=30, help="days of mail (default 30)")
    p.add_argument("--start", default="2025-01-06", help="first day, YYYY-MM-DD (default 2025-01-06)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies tenant sizes: 1 gives 30 to 3,000 mailboxes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--attack-rate", type=float, default=0.001, dest="attack_rate",
                   help="attack messages per benign message (default 0.001)")
    p.add_argument("--scenarios", default=None,
                   help=f"comma-separated attack scenarios (default all: {','.join(ATTACK_SCENARIOS)}; "
                        "'none' for no attacks)")
    p.add_argument("--chunk-messages", type=int, default=500_000, dest="chunk_messages",
                   help="about how many messages are generated and written at a time (default 500000); changing "
                        "it changes the mail generated (the same mail needs the same value, as the same --seed)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    # The parameters of write_generated these options pass, for its errors in their words.
    p.set_defaults(func=run_generate, parameters={
        "out": "--out", "tenants": "--tenants", "days": "--days", "start": "--start", "scale": "--scale",
        "random_state": "--seed", "attack_rate": "--attack-rate", "scenarios": ("--scenarios", "none"),
        "chunk_messages": "--chunk-messages"})
    return p


def run_generate(args: argparse.Namespace) -> int:
    """Run ``commgraph generate``; returns the exit code (0 done, 2 bad arguments)."""
    scenarios = None
    if args.scenarios is not None:
        text = args.scenarios.strip()
        scenarios = [] if text.lower() == "none" else [s.strip() for s in text.split(",") if s.strip()]
    try:
        stats = write_generated(args.out, tenants=args.tenants, days=args.days, start=args.start,
                                attack_rate=args.attack_rate, scenarios=scenarios,
                                random_state=args.seed, scale=args.scale,
                                chunk_messages=args.chunk_messages,
                                # (a bar on a terminal; on a pipe or a log its redraws are noise)
                                progress=not args.no_progress and sys.stderr.isatty())
    except ConfigError as err:
        print(f"commgraph generate: {said(err, args)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {stats['messages']:,} messages ({stats['edges']:,} edges, {stats['attacks']:,} attacks) "
          f"for {stats['tenants']} tenants in {stats['chunks']} chunks to {args.out}")
    return EXIT_OK
