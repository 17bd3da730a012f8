"""What the command line says: the library's messages in the words of its options.

The library's errors and fixes name what a Python caller passes (``jobs=``,
``timezone='<IANA zone>'``). The commands pass their options to the same
functions, so they say the same with the option their user typed: a
:class:`~commgraph.graph._errors.ParameterError` from its fields and the
command's table of the parameters its options pass (``parameters`` in the
parsed arguments), and other text by the phrases below.
"""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Mapping

from commgraph.graph._errors import ParameterError

__all__ = ["said", "in_options"]

# A fix worded for a Python caller, and the same for the command line. The library's texts they match are
# checked by the command line's tests, which fail when one of them changes.
_OPTION_WORDS = tuple((re.compile(python), options) for python, options in (
    (r"pass timezone='<IANA zone>'", "give --timezone <IANA zone>"),
    (r"whatever timezone= says", "whatever --timezone says"),
    (r"pass format='parquet', 'csv' or 'jsonl'", "give --format parquet, csv or jsonl"),
    (r"columns=\{'([^']+)': '<your column>'\}", r"--columns \1=<your column>"),
    (r"Pass tenants=\[TenantConfig\(('[^']*'|\"[^\"]*\"), own_domains=\[\.\.\.\]\)\] to set them",
     r"Give them with --tenant-config (a TOML file: a [[tenant]] table with tenant_id = \1 and own_domains)"),
    (r"Pass tenants=\[TenantConfig\(<tenant id>, own_domains=\[\.\.\.\]\), \.\.\.\] to set them",
     "Give them with --tenant-config (a TOML file: a [[tenant]] table per tenant, with tenant_id and own_domains)"),
    (r"pass timestamp_unit='s' or 'ms'", "give --timestamp-unit s or ms"),
    (r"pass timestamp_unit='us' or 'ns'", "give --timestamp-unit us or ns"),
    (r"read again with encoding='<the file's encoding>' \(for example 'cp1252'\)",
     "give --encoding <the file's encoding> (for example cp1252)"),
    # (the command line sets such rows aside itself, in validate and refresh, and names them)
    (r",? or strict=False to set these rows aside", ""),
    (r" \(columns=\{'tenant_id': \.\.\.\}\)", ""),
    (r"pass timestamp_unit='s', 'ms', 'us' or 'ns'", "give --timestamp-unit s, ms, us or ns"),
))


def in_options(text: str) -> str:
    """``text`` with the fixes worded for a Python caller worded for the command line.

    Examples
    --------
    >>> in_options("naive_timestamp: pass timezone='<IANA zone>' saying which zone the naive timestamps are in")
    'naive_timestamp: give --timezone <IANA zone> saying which zone the naive timestamps are in'
    >>> in_options("add it, or map your column to it with columns={'sender': '<your column>'}")
    'add it, or map your column to it with --columns sender=<your column>'
    """
    for pattern, options in _OPTION_WORDS:
        text = pattern.sub(options, text)
    return text


def said(exc: BaseException, args: argparse.Namespace) -> str:
    """An error's message as the command of ``args`` says it: a parameter its options pass named by the option and
    the value typed, and the fixes in :func:`in_options`'s words.

    Examples
    --------
    >>> args = argparse.Namespace(jobs=0, engine="spark", parameters={"jobs": "--jobs", "engine": "--engine"})
    >>> said(ParameterError("jobs", "run_refresh", "a positive integer or -1", 0), args)
    '--jobs 0: must be a positive integer or -1.'
    >>> said(ParameterError("jobs", "run_refresh", "1", 0, along={"engine": "spark"}, fix="Spark sets it."), args)
    '--jobs 0: must be 1 with --engine spark. Spark sets it.'
    >>> said(ParameterError("signal_set", "Scorer", "a SignalSet", 0), args)  # (no option passes it)
    "The 'signal_set' parameter of Scorer must be a SignalSet. Got 0 instead."
    """
    if isinstance(exc, ParameterError):
        options: Mapping[str, str | tuple[str, str]] = getattr(args, "parameters", {})
        if all(name in options for name in (exc.parameter, *exc.along)):
            return _option_error(exc, args, options)
    return in_options(str(exc))


def _option_error(exc: ParameterError, args: argparse.Namespace, options: Mapping[str, str | tuple[str, str]]) -> str:
    """``exc`` in the words of the options that pass its parameters (an entry of ``options``: the option, or the
    option and what else it takes that the parameter does not, such as 0 for None)."""

    def given(name: str) -> str:
        option = options[name] if isinstance(options[name], str) else options[name][0]
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        return option if value is True else f"{option} {shlex.quote(str(value))}"

    rule = "".join(f" with {given(name)}" for name in exc.along)
    fix = f" {exc.fix}" if exc.fix else ""
    if exc.got is True:  # a flag, given where it cannot be
        return f"{given(exc.parameter)} cannot be given{rule}.{fix}"
    entry = options[exc.parameter]
    also = f", or {entry[1]}" if not isinstance(entry, str) else ""
    return f"{given(exc.parameter)}: must be {exc.allowed}{also}{rule}.{fix}"
