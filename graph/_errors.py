"""The exception hierarchy and the reason codes shared by every layer.

Every error commgraph raises derives from :class:`CommGraphError`. Data errors
(:class:`SchemaError`) carry the problems they found as data, so a caller can
filter them, and they survive pickling so errors raised in worker processes of a
refresh job stay readable in the parent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["CommGraphError", "SchemaError", "ConfigError", "ParameterError", "ReasonCode", "Problem"]

#: How many offending rows and values an error message names.
MAX_SHOWN = 5


class ReasonCode(str, enum.Enum):
    """Why a column or a row of mail metadata was refused.

    The values are stable strings: they appear in ``rejects`` frames and in logs,
    so dashboards can count them.

    Examples
    --------
    >>> ReasonCode.DUPLICATE_MESSAGE_ID.value
    'duplicate_message_id'
    >>> ReasonCode("invalid_address") is ReasonCode.INVALID_ADDRESS
    True
    """

    MISSING_COLUMN = "missing_column"
    MISSING_VALUE = "missing_value"
    DUPLICATE_MESSAGE_ID = "duplicate_message_id"
    DUPLICATE_EDGE = "duplicate_edge"
    INCONSISTENT_MESSAGE = "inconsistent_message"
    INVALID_ADDRESS = "invalid_address"
    INVALID_RECIPIENT = "invalid_recipient"
    NO_VALID_RECIPIENTS = "no_valid_recipients"
    NAIVE_TIMESTAMP = "naive_timestamp"
    UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
    AMBIGUOUS_TIMESTAMP_UNIT = "ambiguous_timestamp_unit"
    AMBIGUOUS_DATE = "ambiguous_date"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    LABELED_BEFORE_MESSAGE = "labeled_before_message"
    INVALID_VALUE = "invalid_value"
    DIRECTION_UNDECIDABLE = "direction_undecidable"
    INVALID_ENCODING = "invalid_encoding"
    TENANT_MISMATCH = "tenant_mismatch"
    INVALID_JSON = "invalid_json"


class CommGraphError(Exception):
    """Base class of every error raised by commgraph.

    Examples
    --------
    >>> issubclass(SchemaError, CommGraphError)
    True
    """


class ConfigError(CommGraphError, ValueError):
    """A configuration value (a parameter, a TOML field, a column mapping) is invalid.

    Examples
    --------
    >>> raise ConfigError("'own_domains' must be a list of domains (got 3)")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: 'own_domains' must be a list of domains (got 3)
    """


class ParameterError(ConfigError):
    """A parameter given a value it cannot take: the message names the parameter and its function, the words of
    a Python caller.

    The command line passes its options to these functions; it says the same with the option its user typed,
    from the fields rather than the message.

    Parameters
    ----------
    parameter, caller : str
        The parameter and the function it belongs to.
    allowed : str
        What the parameter must be.
    got : object
        The value given.
    python : str, optional
        What else a Python caller may give (a command line cannot: ``None``, an object).
    along : mapping, optional
        Other parameters and the values that make this one's rule (``{"engine": "spark"}``).
    fix : str, optional
        A sentence more: why, or what to do.

    Examples
    --------
    >>> print(ParameterError("days", "generate", "an int in [1, 100000]", 0))
    The 'days' parameter of generate must be an int in [1, 100000]. Got 0 instead.
    >>> print(ParameterError("random_state", "generate", "an int >= 0", -1, python="a numpy SeedSequence or None"))
    The 'random_state' parameter of generate must be an int >= 0, or a numpy SeedSequence or None. Got -1 instead.
    >>> err = ParameterError("jobs", "run_refresh", "1", 2, along={"engine": "spark"}, fix="Spark sets it.")
    >>> print(err)
    The 'jobs' parameter of run_refresh must be 1 with engine='spark'. Got 2 instead. Spark sets it.
    >>> import pickle; copy = pickle.loads(pickle.dumps(err)); (copy.parameter, copy.along, str(copy) == str(err))
    ('jobs', {'engine': 'spark'}, True)
    """

    def __init__(self, parameter: str, caller: str, allowed: str, got: Any, *, python: str = "",
                 along: dict | None = None, fix: str = ""):
        self.parameter, self.caller, self.allowed, self.got = parameter, caller, allowed, got
        self.python, self.along, self.fix = python, dict(along or {}), fix
        rule = "".join(f" with {name}={value!r}" for name, value in self.along.items())
        also = f", or {python}" if python else ""
        super().__init__(f"The {parameter!r} parameter of {caller} must be {allowed}{also}{rule}. Got {got!r} instead."
                         + (f" {fix}" if fix else ""))

    def __reduce__(self):
        # Keyword-only fields survive pickling (errors cross the refresh job's worker processes).
        return (_parameter_error, (self.parameter, self.caller, self.allowed, self.got, self.python, self.along,
                                   self.fix))


def _parameter_error(parameter: str, caller: str, allowed: str, got: Any, python: str, along: dict, fix: str
                     ) -> ParameterError:
    return ParameterError(parameter, caller, allowed, got, python=python, along=along, fix=fix)


def plural(n: int, word: str) -> str:
    """A count and its noun, singular at 1, as the reprs word them.

    Examples
    --------
    >>> plural(1, "tenant"), plural(0, "edge"), plural(1234, "message")
    ('1 tenant', '0 edges', '1,234 messages')
    """
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def checked_int(value: Any, parameter: str, caller: str, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is one in ``[low, high]`` (no bound above when ``high`` is None), else a
    :class:`ParameterError` naming the parameter.

    Examples
    --------
    >>> checked_int(3, "n", "top_correspondents", 0)
    3
    >>> checked_int(True, "n", "top_correspondents", 0)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ParameterError: The 'n' parameter of top_correspondents must be an int >= 0. Got True instead.
    """
    if (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            and low <= value and (high is None or value <= high)):
        return int(value)
    allowed = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    raise ParameterError(parameter, caller, allowed, value)


def _show(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:MAX_SHOWN])
    return shown + (", ..." if len(values) > MAX_SHOWN else "")


@dataclass(frozen=True)
class Problem:
    """One problem found in the input: a column, a reason, the rows and values.

    Parameters
    ----------
    column : str
        The contract's name of the column the problem is in (``sender``, also when ``columns=`` mapped it
        from another name of the input).
    reason : ReasonCode
        Machine-readable reason.
    rows : sequence
        Row labels of the input that have the problem (all of them; messages show five): a frame's index
        labels, or for files each row's position in its file counted from 0 after any header (a Parquet
        file saved with its pandas index: that index).
    values : sequence
        The offending values, aligned with ``rows``.
    fix : str
        What the caller can do about it.
    detail : str, optional
        A sentence with more context (for example the columns that exist).
    files : sequence of str, optional
        The file each row was read from, aligned with ``rows`` (row numbers restart in every file);
        empty when the rows were not read from files.

    Examples
    --------
    >>> p = Problem("sender", ReasonCode.INVALID_ADDRESS, rows=[3, 9], values=["a@", "@b"],
    ...             fix="correct the addresses or drop those rows")
    >>> print(p)
    column 'sender': 2 rows invalid_address (rows 3, 9; values 'a@', '@b'); fix: correct the addresses or drop those rows
    >>> print(Problem("sender", ReasonCode.INVALID_ADDRESS, rows=[1, 0], values=["a@", "@b"],
    ...               files=["day1.csv", "day2.csv"]))
    column 'sender': 2 rows invalid_address (rows day1.csv row 1, day2.csv row 0; values 'a@', '@b')
    """

    column: str
    reason: ReasonCode
    rows: Sequence[Any] = field(default_factory=tuple)
    values: Sequence[Any] = field(default_factory=tuple)
    fix: str = ""
    detail: str = ""
    files: Sequence[str] = field(default_factory=tuple)

    def __str__(self) -> str:
        n = len(self.rows)
        where = ""
        if n:
            rows = _show(self.rows) if not len(self.files) else ", ".join(
                # (not "file:61", which reads as a line: row 61 of a CSV file is on its line 63, after the header)
                f"{f} row {r}" for f, r in zip(list(self.files)[:MAX_SHOWN], list(self.rows)[:MAX_SHOWN])) + (
                ", ..." if n > MAX_SHOWN else "")
            where = f"{n} row{'s' if n != 1 else ''} {self.reason.value} (rows {rows}"
            if len(self.values):
                where += f"; values {_show(self.values)}"
            where += ")"
        else:
            where = self.reason.value
        text = f"column {self.column!r}: {where}"
        if self.detail:
            text += f"; {self.detail}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text


class SchemaError(CommGraphError, ValueError):
    """Mail metadata that breaks the message contract.

    One error lists every problem found (lazy validation), each naming the column,
    up to five row labels, the offending values, a reason code and the fix.

    Parameters
    ----------
    problems : sequence of Problem
        Everything that was wrong.

    Attributes
    ----------
    problems : tuple of Problem
    failure_cases : pandas.DataFrame
        One row per offending (row, column): ``row``, ``column``, ``reason``, ``value``, and ``file``
        when the rows were read from files.

    Examples
    --------
    >>> err = SchemaError([Problem("label", ReasonCode.INVALID_VALUE, rows=[0], values=["phish"],
    ...                            fix="use one of 'safe', 'attack', 'spam' or leave it empty")])
    >>> err.failure_cases
       row column         reason  value
    0    0  label  invalid_value  phish
    >>> import pickle; pickle.loads(pickle.dumps(err)).problems[0].column
    'label'
    """

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        lines = [f"mail metadata breaks the message contract ({len(self.problems)} problem"
                 f"{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    def __reduce__(self):
        # Keep only plain data so the error pickles across processes.
        return (SchemaError, (self.problems,))

    @property
    def reasons(self) -> list[str]:
        """The reason codes of the problems, in order."""
        return [p.reason.value for p in self.problems]

    @property
    def failure_cases(self) -> pd.DataFrame:
        """Every offending (row, column) as a frame, for filtering."""
        records = [
            {"row": row, "column": p.column, "reason": p.reason.value,
             "value": p.values[i] if i < len(p.values) else None,
             "file": p.files[i] if i < len(p.files) else None}
            for p in self.problems for i, row in enumerate(p.rows)
        ]
        if not records:
            records = [{"row": None, "column": p.column, "reason": p.reason.value, "value": None, "file": None}
                       for p in self.problems]
        columns = ["row", "column", "reason", "value"]
        if any(len(p.files) for p in self.problems):
            columns.append("file")
        return pd.DataFrame.from_records(records, columns=columns)
