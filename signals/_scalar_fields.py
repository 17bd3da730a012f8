"""One message's field values read as validation reads a one-row frame of them: text, enum codes, timestamps.

The single-message path (:mod:`._scalar`) reads plain Python values with these
rules so that ``Scorer.score_one`` scores a message exactly as the batch path
does, or refuses it with validation's reason, without pandas per message.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

from commgraph.graph import DEFAULT_TIME_RANGE, CommGraphError, parse_timestamps
from commgraph.graph._timestamps import _MILLIS_BELOW, _SECONDS_BELOW
from commgraph.graph._validate import _EXACT_FLOAT_INTEGERS

__all__ = ["text_value", "timestamp_ns"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

# Validation strips a text value only when its untidy test (RE2's ASCII ``\s`` at either end, or
# an empty string) fires; then it strips all Unicode white space, as ``str.strip`` does.


def _is_missing(value: Any) -> bool:
    """None, NaN (float or numpy), pd.NA or NaT: what pandas reads as a missing value."""
    return (value is None or value is pd.NA or value is pd.NaT
            or (isinstance(value, (float, np.floating)) and value != value))


def _as_text(value: Any) -> str:
    """A present value as pandas' string dtype spells it (bytes decoded, numbers as ``str``)."""
    if type(value) is str:
        return value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def text_value(value: Any) -> str | None:
    """A text column's value as validation keeps it: missing or blank is None, else tidied.

    Examples
    --------
    >>> text_value(" 5"), text_value(5), text_value(float("nan")), text_value("  "), text_value("acme")
    ('5', '5', None, None, 'acme')
    """
    if type(value) is not str:
        if _is_missing(value):
            return None
        value = _as_text(value)
    if not value or value[0].isspace() or value[-1].isspace():  # any Unicode white space, as validation
        return value.strip() or None
    return value


def _required_text(value: Any, column: str, fix: str) -> str:
    if type(value) is str and value and not value[0].isspace() and not value[-1].isspace():
        return value  # the common case, tidy already
    if isinstance(value, (float, np.floating)) and value == value:
        # What pandas makes of an integer id column holding a missing value: the integer it was, when a
        # float still holds it exactly (validation's id_text); anything else is no id.
        if not (math.isfinite(value) and value == math.trunc(value) and abs(value) < _EXACT_FLOAT_INTEGERS):
            raise CommGraphError(f"score_one: {column!r} {value!r} is a number that is no exact integer, so not "
                                 "an id validation reads back; write the ids as text")
        return str(int(value))
    text = text_value(value)
    if text is None:
        raise CommGraphError(f"score_one: {column!r} is missing (got {value!r}); {fix}")
    return text


def _enum(message: Mapping[str, Any], column: str, codes: dict[str, int]) -> int:
    """The code of an enum column's value (-1 when missing), read as validation reads it."""
    value = message.get(column)
    if type(value) is str:
        found = codes.get(value)  # the common case: already a vocabulary word
        if found is not None:
            return found
    elif _is_missing(value):
        return -1
    text = _as_text(value).strip().lower()
    if not text:
        return -1
    found = codes.get(text)
    if found is None:
        raise CommGraphError(f"score_one: {column!r} is {value!r}, not one of {list(codes)}; use one of them or "
                             "leave it empty (validation refuses the message too)")
    return found


# Timestamps. The forms read here without pandas are ones Python and pandas read alike: ISO 8601
# with an offset (up to microseconds; datetime.fromisoformat truncates finer fractions and also
# takes week dates, which validation does not), epoch numbers, aware datetimes. Anything else is
# given to validation's own parser (one value: about a millisecond, for rare forms).
_ISO_PLAIN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                        r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)")
_EPOCH_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")
_LOW_NS, _HIGH_NS = (pd.Timestamp(t, tz="UTC").value for t in DEFAULT_TIME_RANGE)
_TIMESTAMP = pd.Timestamp
_TIME_FIX = ("give an aware datetime, an ISO 8601 string with an offset (2024-05-04T10:00:00+00:00), or epoch "
             "seconds or milliseconds")


def _epoch_ns(number: int | float, raw: Any) -> int:
    """Epoch seconds or milliseconds by magnitude, as validation infers the unit, in nanoseconds."""
    magnitude = abs(number)
    if magnitude != magnitude:
        raise CommGraphError(f"score_one: 'timestamp' is missing (got {raw!r}); {_TIME_FIX}")
    if magnitude == math.inf:
        raise CommGraphError(f"score_one: 'timestamp' is {raw!r}, not a time; {_TIME_FIX}")
    if magnitude < _SECONDS_BELOW:
        scale, places = 10**9, 1e9
    elif magnitude < _MILLIS_BELOW:
        scale, places = 10**6, 1e6
    else:
        raise CommGraphError(f"score_one: 'timestamp' is {raw!r}: epoch numbers are read as seconds (below 1e11) "
                             "or milliseconds (below 1e14), as validation reads them; larger ones (microseconds, "
                             f"nanoseconds) are ambiguous there too: {_TIME_FIX}")
    if type(number) is int:
        return number * scale
    base = int(number)  # toward zero, as numpy's astype("i8")
    if base == number:
        return base * scale
    # pandas' cast_from_unit_vectorized: the fraction rounded to the unit's precision
    # (np.round: multiply, round half to even, divide), then truncated to nanoseconds.
    fraction = round((number - base) * places) / places
    return base * scale + int(fraction * scale)


def _datetime_ns(value: _dt.datetime) -> int:
    if value.tzinfo is None:
        # Refused with validation's own reason and fix, as a naive ISO string is: that fix names timezone=, which
        # the command line words as its --timezone option (a wording of its own here left the option unnamed).
        return _validated_timestamp_ns(value)
    if isinstance(value, pd.Timestamp):
        return int(value.value)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _validated_timestamp_ns(value: Any) -> int:
    """A timestamp in a rare form, through validation's own parser (the batch path's answer, exactly)."""
    parsed = parse_timestamps(pd.Series([value]))
    reason = parsed.reason[0]
    if reason is None:
        return int(parsed.values.iloc[0].value)
    raise CommGraphError(f"score_one: 'timestamp' {value!r} is refused ({reason.value}): {parsed.fixes[reason]}; "
                         f"{_TIME_FIX}")


def timestamp_ns(value: Any) -> int:
    """Nanoseconds since the epoch (UTC) of a timestamp, read and range-checked as validation does.

    Examples
    --------
    >>> timestamp_ns("2024-05-04T10:00:00+02:00") == timestamp_ns(1714809600) == timestamp_ns(1714809600000)
    True
    >>> timestamp_ns(0)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.CommGraphError: score_one: 'timestamp' 0 lies outside [1990-01-01, 2100-01-01), where validation refuses times (placeholder dates such as epoch 0); correct it
    >>> timestamp_ns(pd.Timestamp("2024-05-04 10:00"))  # naive: validation's fix (``commgraph`` says --timezone)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.CommGraphError: score_one: 'timestamp' ... (naive_timestamp): pass timezone='<IANA zone>'...
    """
    if type(value) is _TIMESTAMP and value.tzinfo is not None:  # the common case first
        ns = value.value
    elif type(value) is str:
        text = value.strip()
        if _ISO_PLAIN.fullmatch(text):
            try:
                ns = _datetime_ns(_dt.datetime.fromisoformat(text))
            except ValueError:  # out-of-range fields (month 13, hour 24...): validation says what is wrong
                return _validated_timestamp_ns(value)
        elif _EPOCH_NUMBER.fullmatch(text):
            ns = _epoch_ns(float(text) if "." in text else int(text), value)
        else:
            return _validated_timestamp_ns(value)
    elif isinstance(value, _dt.datetime) and value is not pd.NaT:
        ns = _datetime_ns(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        ns = _epoch_ns(int(value), value)
    elif isinstance(value, (float, np.floating)):
        ns = _epoch_ns(float(value), value)
    else:
        return _validated_timestamp_ns(value)
    if not _LOW_NS <= ns < _HIGH_NS:
        raise CommGraphError(f"score_one: 'timestamp' {value!r} lies outside [{DEFAULT_TIME_RANGE[0]}, "
                             f"{DEFAULT_TIME_RANGE[1]}), where validation refuses times (placeholder dates such as "
                             "epoch 0); correct it")
    return ns


# Recipients. Validation reads to/cc/bcc when the message has any of them, else ``recipients``.
