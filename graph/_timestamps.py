"""Timestamps in any of the accepted forms, to UTC ``datetime64[ns, UTC]``.

Accepted: ISO-8601 strings with an offset (or ``Z``), RFC 2822 dates with an
offset, epoch seconds or milliseconds (by explicit unit or an unambiguous
magnitude, also among text in one column), tz-aware datetimes. Naive values (a date alone among them) are
refused unless the caller says which zone they are in: guessing a zone shifts
every "first seen" and every hour-of-day habit by hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._errors import ConfigError, ReasonCode
from ._schema import STRING_DTYPE, TIMESTAMP_DTYPE

__all__ = ["parse_timestamps", "ParsedTimestamps", "DEFAULT_TIME_RANGE", "TIMESTAMP_UNITS", "iso_instant",
           "utc_instant"]

#: The units epoch numbers may be given in (``timestamp_unit``), coarsest first.
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")


#: Words pandas reads as the time on the clock ('now', 'today'), or that name a day relative to it: no
#: instant a rerun can repeat, so neither an ``as_of`` nor a message's time.
CLOCK_WORDS = ("now", "today", "yesterday", "tomorrow")


def is_clock_word(value: object) -> bool:
    """Whether a value is one of :data:`CLOCK_WORDS` (white space and case aside).

    Examples
    --------
    >>> is_clock_word(" Now "), is_clock_word("2025-02-01")
    (True, False)
    """
    return isinstance(value, str) and value.strip().lower() in CLOCK_WORDS


def refuse_clock_words(given: dict[str, object]) -> None:
    """Refuse a setting given as a word pandas reads as the clock ('now', 'today'): a rerun would read another time.

    Examples
    --------
    >>> refuse_clock_words({"time_range end": "2100-01-01"})
    >>> try:
    ...     refuse_clock_words({"time_range end": "now"})
    ... except ConfigError as exc:
    ...     print(exc)
    time_range end 'now' names a moment of the clock, which a rerun cannot repeat; give the instant itself (ISO 8601)
    """
    for name, value in given.items():
        if is_clock_word(value):
            raise ConfigError(f"{name} {value!r} names a moment of the clock, which a rerun cannot repeat; give the "
                              "instant itself (ISO 8601)")


_DAY_UNIT = re.compile(r"(?<=\d)\s*d(?=$|\d|\s)")


def duration(value: object) -> pd.Timedelta:
    """``pd.Timedelta(value)``, with the days of text written as people write them: "7d" (pandas deprecates
    the lower-case unit, which a later pandas will refuse) reads as "7D".

    Examples
    --------
    >>> duration("7d"), duration(" 1d12h "), duration("36h")
    (Timedelta('7 days 00:00:00'), Timedelta('1 days 12:00:00'), Timedelta('1 days 12:00:00'))
    """
    if isinstance(value, str):
        value = _DAY_UNIT.sub("D", value.strip())
    return pd.Timedelta(value)


class InstantError(ValueError):
    """An instant refused for a reason the caller's message should give (its text says it to a user)."""


class InstantOutOfRange(InstantError):
    """An instant outside the years times in nanoseconds hold; ``late``: after them (else before)."""

    def __init__(self, message: str, *, late: bool):
        super().__init__(message)
        self.late = late


def instant_problem(exc: BaseException) -> str:
    """What a caller's refusal of an instant adds: `` (the reason)`` for an :class:`InstantError`, else nothing
    (pandas' own parse errors say nothing a user can act on)."""
    return f" ({exc})" if isinstance(exc, InstantError) else ""


def iso_instant(value: object) -> pd.Timestamp:
    """``pd.Timestamp(value)``, text read as ISO 8601 only (surrounding white space aside): '01/02/2025' is no
    instant (read month first it was 2 January, silently a month off for whoever meant 1 February), nor is
    'now' or 'today' (the clock: a rerun would compute something else), nor a number (1736294400 was read as
    nanoseconds after 1970, 1.7 seconds into it, where the same number in a timestamp column is seconds), nor
    an instant outside the years 1677-2262 that times in nanoseconds hold (every count would overflow).

    Raises ValueError (an :class:`InstantError` for the reasons above) or TypeError; naive stays naive
    (callers say what it means).

    Examples
    --------
    >>> iso_instant(" 2025-02-01T00:00Z")
    Timestamp('2025-02-01 00:00:00+0000', tz='UTC')
    >>> for text in ("01/02/2025", "now"):
    ...     try:
    ...         iso_instant(text)
    ...     except ValueError:
    ...         print("refused", text)
    refused 01/02/2025
    refused now
    """
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        raise InstantError(f"a number is no instant (seconds, milliseconds or nanoseconds since 1970?); give text "
                           f"in ISO 8601 or pd.Timestamp({value!r}, unit='s')")
    if not isinstance(value, str):
        stamp = pd.Timestamp(value)
    elif is_clock_word(value):
        raise InstantError(f"{value!r} names a moment of the clock, which a rerun cannot repeat")
    else:
        stamp = pd.Timestamp(pd.to_datetime(value.strip(), format="ISO8601"))
    if stamp is pd.NaT:
        return stamp
    try:
        return stamp.as_unit("ns")
    except (OverflowError, ValueError):  # (pandas' OutOfBoundsDatetime is a ValueError)
        raise InstantOutOfRange(f"{value!r} is outside the years 1677-2262 that times in nanoseconds hold",
                                late=stamp.year > 2000) from None


def utc_instant(value: object) -> pd.Timestamp:
    """:func:`iso_instant` in UTC, a naive instant read as UTC: the one reading of every ``as_of`` (graphs,
    baselines, the refresh job, scoring), so that one instant means the same moment to each of them.

    Raises as :func:`iso_instant` does; NaT stays NaT (callers say whether an instant may be missing).

    Examples
    --------
    >>> utc_instant("2025-02-01"), utc_instant("2025-02-01T01:00+01:00")
    (Timestamp('2025-02-01 00:00:00+0000', tz='UTC'), Timestamp('2025-02-01 00:00:00+0000', tz='UTC'))
    """
    stamp = iso_instant(value)
    if stamp is pd.NaT:
        return stamp
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


#: Timestamps outside this range are refused as ``timestamp_out_of_range``. The
#: floor catches the placeholders mail systems write for unknown dates (epoch 0,
#: 1980-01-01) long before any archive we serve begins.
DEFAULT_TIME_RANGE = ("1990-01-01", "2100-01-01")

# Epoch seconds stay below 1e11 until the year 5138; epoch milliseconds pass
# 1e11 in 1973. Values on both sides of the line are ambiguous.
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_NUMERIC = r"[+-]?\d+(?:\.\d*)?"
# What carries a zone is told from what the parsers read, never guessed from the text's tail: pandas' ISO 8601
# parser reads an offset after a time ('Z', '+02:00', '+0200', '+02', and the unpadded '+2' and '+5:45');
# a date alone carries none whatever its padding ('2024-5-12', '20240504': its '-12' is the day, no offset).
# The same patterns in pyarrow's RE2, whose \s and \d are ASCII only: spelled out as Python's re reads them.
_UNICODE_SPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\p{Z}]"


def _re2(pattern: str) -> str:
    return pattern.replace(r"\s", _UNICODE_SPACE).replace(r"\d", r"\p{Nd}")


_ISO_DATE_ONLY = _re2(r"^\d{4}(?:-?\d{1,2}){0,2}$")
# An offset read for sure: +hh, +hhmm, +hh:mm, +h, +h:mm.
_OFFSET = r"[+-](?:\d{2}(?::?\d{2})?|\d(?::\d{2})?)"
_ISO_ZONE = _re2(f"(?:[zZ]|{_OFFSET})$")
# Digits after a sign that are no offset for sure: pandas reads '+200' as +20:00 and '+123' as +12:03.
_ISO_ODD_OFFSET = _re2(r"[+-][\d:]+$")
# A date written day and month first, the year last ('02.05.2024', '2/5/2024', '12-05-2024'), is 2 May to
# some and 5 February to others; the general parser takes the month first whenever it can. Sure only when
# the first field cannot be a month (13.05.2024) or the second a month (05/13/2024); a two-digit year last
# may be first as well (13/05/24: 2013-05-24?). (The trailing '-2024' is no offset: a date has none.)
_DAY_MONTH_YEAR = re.compile(r"(?<![\d/.:-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.:-])")
# A date written otherwise than day, month and year in digits: a month's name, or a four-digit year.
# (an offset's digits, +0200, are no year)
_OTHER_DATE = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|(?<![\d+:-])\d{4}(?!\d)")
_AMBIGUOUS_DATE_FIX = ("write dates in ISO 8601, year first (2024-05-02T09:00:00+02:00): 02.05.2024 is 2 May to some "
                       "and 5 February to others")
# 'GMT+0200' (JavaScript's Date.toString) and 'UTC-05:00' mean two hours ahead of UTC and five behind, as people
# write them; dateutil reads them as POSIX TZ strings, where the sign is inverted (11:00 UTC for 09:00 GMT+0200).
# The offset is handed to it alone; digits that are no offset for sure ('GMT+200') are refused.
# A trailing parenthesised comment ('+0200 (CEST)') names no zone: in RFC 2822 the zone is the offset and
# the comment only a comment, which dateutil read as the zone over the offset ('+0200 (UTC)' was 09:00 UTC).
_TRAILING_COMMENT = re.compile(r"\s*\([^()]*\)\s*$")
# The general parser reads digits after a time's sign as an offset whatever they are ('09:00:00+1:5' as +01:05).
_OFFSET_AFTER_TIME = re.compile(r"\d:\d{2}(?:[.,]\d+)?\s*([+-][\d:]+)$")
# A date then signed digits and no time ('2024-05-02 -0530'): the general parser reads the digits as a time
# on the clock (05:30), where the writer may have meant an offset for midnight.
_DATE_THEN_SIGNED = re.compile(r"^\d{4}([/.-])\d{1,2}\1\d{1,2}\s*[+-][\d:]+$")
_NAMED_OFFSET = re.compile(r"(?<![A-Za-z])(?:GMT|UTC)\s*([+-][\d:]+)")
_CLOCK_WORD_RE2 = f"(?i)^{_UNICODE_SPACE}*(?:{'|'.join(CLOCK_WORDS)}){_UNICODE_SPACE}*$"


@dataclass(frozen=True)
class ParsedTimestamps:
    """Timestamps in UTC plus, per row, why a value was refused (or ``None``).

    Attributes
    ----------
    values : pandas.Series
        ``datetime64[ns, UTC]``; ``NaT`` where missing or refused.
    reason : numpy.ndarray of object
        A :class:`ReasonCode` per refused row, else ``None`` (missing values are
        ``ReasonCode.MISSING_VALUE``).
    fixes : dict
        The fix to suggest for each reason that occurred.
    judged_unit : {'s', 'ms'} or None
        The epoch unit the numbers' magnitudes said, when numbers were read in it (None: no number, a unit
        given, or magnitudes on both sides of the line): a chunked read reads later chunks in it.
    """

    values: pd.Series
    reason: np.ndarray
    fixes: dict
    judged_unit: str | None = None


# The magnitudes each unit judged from them covers: [low, high).
_MAGNITUDES = {"s": (0.0, _SECONDS_BELOW), "ms": (_SECONDS_BELOW, _MILLIS_BELOW)}


def _in_magnitudes(numbers: pd.Series, unit: str) -> np.ndarray:
    """Whether each number's magnitude is one the unit, judged from magnitudes, covers."""
    low, high = _MAGNITUDES[unit]
    magnitude = np.abs(numbers.to_numpy(dtype="float64", na_value=np.nan))
    return (magnitude >= low) & (magnitude < high)


def _resolve_unit(numbers: pd.Series, unit: str | None) -> str | None:
    if unit is not None:
        if unit not in TIMESTAMP_UNITS:
            raise ConfigError(f"'timestamp_unit' must be one of 's', 'ms', 'us', 'ns' (got {unit!r})")
        return unit
    return next((u for u in _MAGNITUDES if _in_magnitudes(numbers, u).all()), None)


def _unit_fix(numbers: pd.Series) -> str:
    """What to do about epoch numbers whose magnitudes name no one unit of seconds and milliseconds.

    Numbers beyond epoch milliseconds' magnitudes are finer units (microseconds are about 1.7e15 in 2024,
    nanoseconds 1.7e18), not a mix of seconds and milliseconds: the fix names the unit that fits them.

    Examples
    --------
    >>> print(_unit_fix(pd.Series([1714640400, 1714640400000])))
    numbers mix epoch-second and epoch-millisecond magnitudes; pass timestamp_unit='s' or 'ms'
    >>> print(_unit_fix(pd.Series([1714640400000000])))  # microseconds
    numbers are beyond epoch milliseconds (until the year 5138); pass timestamp_unit='us' or 'ns'
    """
    beyond = np.abs(numbers.to_numpy(dtype="float64", na_value=np.nan)) >= _MILLIS_BELOW
    if not beyond.any():
        return "numbers mix epoch-second and epoch-millisecond magnitudes; pass timestamp_unit='s' or 'ms'"
    if beyond.all():
        return "numbers are beyond epoch milliseconds (until the year 5138); pass timestamp_unit='us' or 'ns'"
    return ("numbers mix magnitudes of epoch seconds or milliseconds with larger ones; write them all in one unit "
            "and pass timestamp_unit='s', 'ms', 'us' or 'ns'")


def parse_timestamps(
    values: pd.Series,
    *,
    timezone: str | None = None,
    unit: str | None = None,
    origin: str | pd.Timestamp = "unix",
    time_range: tuple | None = DEFAULT_TIME_RANGE,
    earlier_unit: str | None = None,
) -> ParsedTimestamps:
    """Parse a timestamp column to UTC, reporting every value it refuses.

    Parameters
    ----------
    values : pandas.Series
        Strings, numbers or datetimes.
    timezone : str, optional
        IANA zone of naive values (``"Europe/Paris"``); without it they are refused.
    unit : {'s', 'ms', 'us', 'ns'}, optional
        Unit of numeric values; inferred from magnitude when unambiguous.
    origin : str or Timestamp, default 'unix'
        Origin of numeric values (``pandas.to_datetime`` semantics), for archives
        that count seconds from their own start.
    time_range : (start, end), optional
        Refuse timestamps outside ``[start, end)``; ``None`` accepts any.
    earlier_unit : {'s', 'ms'}, optional
        Without ``unit``: the unit earlier chunks of the column were judged to be in
        (:attr:`ParsedTimestamps.judged_unit`). Numbers are read in it, and those
        whose magnitude says another unit are refused as ambiguous, as a whole read
        refuses a column that mixes them: one column is never read in two units.

    Returns
    -------
    ParsedTimestamps

    Examples
    --------
    >>> p = parse_timestamps(pd.Series(["2024-03-01T09:30:00+01:00", "2024-03-01 09:30", "soon",
    ...                                 "1980-01-01T00:00:00Z", None]))
    >>> p.values.iloc[0]
    Timestamp('2024-03-01 08:30:00+0000', tz='UTC')
    >>> [r.value if r else None for r in p.reason]
    [None, 'naive_timestamp', 'unparseable_timestamp', 'timestamp_out_of_range', 'missing_value']
    >>> parse_timestamps(pd.Series(["2024-03-01T09:30:00Z", "1709285400"])).values.tolist()
    [Timestamp('2024-03-01 09:30:00+0000', tz='UTC'), Timestamp('2024-03-01 09:30:00+0000', tz='UTC')]
    >>> parse_timestamps(pd.Series([1709281800, 1709281800123])).reason.tolist()
    [<ReasonCode.AMBIGUOUS_TIMESTAMP_UNIT: 'ambiguous_timestamp_unit'>, <ReasonCode.AMBIGUOUS_TIMESTAMP_UNIT: 'ambiguous_timestamp_unit'>]

    In chunks, the first chunk's numbers decide the unit of the next:

    >>> first = parse_timestamps(pd.Series([1709281800, 1709281860]))
    >>> first.judged_unit
    's'
    >>> later = parse_timestamps(pd.Series([1709281920, 1709281980000]), earlier_unit=first.judged_unit)
    >>> later.values.iloc[0], later.reason.tolist()[1]
    (Timestamp('2024-03-01 08:32:00+0000', tz='UTC'), <ReasonCode.AMBIGUOUS_TIMESTAMP_UNIT: 'ambiguous_timestamp_unit'>)
    """
    refuse_clock_words({"timestamp_origin": origin,
                        **({"time_range start": time_range[0], "time_range end": time_range[1]}
                           if time_range is not None and len(time_range) == 2 else {})})
    n = len(values)
    reason = np.full(n, None, dtype=object)
    fixes: dict = {}
    out = pd.Series(pd.NaT, index=values.index, dtype=TIMESTAMP_DTYPE)
    missing = values.isna().to_numpy()
    reason[missing] = ReasonCode.MISSING_VALUE
    fixes[ReasonCode.MISSING_VALUE] = "fill the timestamps or drop those rows"

    def refuse(mask: np.ndarray, code: ReasonCode, fix: str) -> None:
        mask = mask & (reason == None)  # noqa: E711 (element-wise)
        if mask.any():
            reason[mask] = code
            fixes[code] = fix

    naive_fix = "pass timezone='<IANA zone>' saying which zone the naive timestamps are in, or add offsets"
    if earlier_unit is not None and earlier_unit not in _MAGNITUDES:
        raise ConfigError(f"'earlier_unit' must be one of {list(_MAGNITUDES)} (got {earlier_unit!r})")
    judged: list[str | None] = []

    def from_numbers(numbers: pd.Series, present: np.ndarray) -> pd.Series:
        parsed, unit_judged = _from_numbers(numbers, present, unit, earlier_unit, origin, refuse)
        judged.append(unit_judged)
        return parsed

    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        out = _to_ns(values.dt.tz_convert("UTC"), refuse)
    elif pd.api.types.is_datetime64_dtype(dtype):
        if timezone is None:
            refuse(~missing, ReasonCode.NAIVE_TIMESTAMP, naive_fix)
        else:
            local = values.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            out = local.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
            refuse(out.isna().to_numpy() & ~missing, ReasonCode.UNPARSEABLE_TIMESTAMP,
                   f"the local times do not exist or are ambiguous in {timezone} (daylight saving); add offsets")
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        # Integers stay integers (a nanosecond epoch through float64 moves by tens of nanoseconds).
        numbers = values.astype("Int64") if pd.api.types.is_integer_dtype(dtype) else values.astype("float64")
        out = from_numbers(numbers, ~missing)
    else:
        text = values.astype("str").str.strip()
        numeric = text.str.fullmatch(_NUMERIC).to_numpy(dtype=bool, na_value=False) & ~missing
        present = ~missing
        if numeric[present].all() and present.any():
            out = from_numbers(_numbers(text), present)
        else:
            out = _from_strings(values, text, present & ~numeric, timezone, refuse, naive_fix)
            if numeric.any():
                # A column mixing text and epoch numbers (an export that wrote some rows one way): the
                # numbers are read as a numeric column is, their unit judged on them alone.
                numbers = from_numbers(_numbers(text.where(numeric)), numeric)
                out = out.where(~numeric, numbers)

    if time_range is not None:
        lo, hi = time_range_bounds(time_range)
        bad = (out.notna() & ((out < lo) | (out >= hi))).to_numpy()
        refuse(bad, ReasonCode.TIMESTAMP_OUT_OF_RANGE,
               f"timestamps must fall in [{_instant_text(lo)}, {_instant_text(hi)}); correct placeholder dates, "
               "or, reading in Python, pass time_range=None (or a wider range) for archives that really span it")
    out = out.mask(reason != None)  # noqa: E711
    return ParsedTimestamps(values=out.astype(TIMESTAMP_DTYPE), reason=reason, fixes=fixes,
                            judged_unit=judged[0] if judged else None)


def time_range_bounds(time_range: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A ``time_range`` as its UTC bounds ``[start, end)`` (naive means UTC; None: no bound on that side),
    checked: two instants, text in ISO 8601 only ('01/03/2024' was read month first), the start before the end
    (a reversed range refused every row, silently).

    Examples
    --------
    >>> time_range_bounds(("1990-01-01", "2100-01-01T00:00Z"))[1]
    Timestamp('2100-01-01 00:00:00+0000', tz='UTC')
    >>> time_range_bounds(("2100-01-01", "1990-01-01"))
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: time_range must be (start, end) with the start before the end; got ('2100-01-01', '1990-01-01')
    """
    if isinstance(time_range, (str, bytes)) or not hasattr(time_range, "__len__") or len(time_range) != 2:
        raise ConfigError(f"time_range must be a pair (start, end) of instants, e.g. ('1990-01-01', '2100-01-01'), "
                          f"or None for no bounds; got {time_range!r}")
    bounds = []
    for value, end, open_end in zip(time_range, ("start", "end"), (pd.Timestamp.min, pd.Timestamp.max)):
        try:
            stamp = iso_instant(value)
        except InstantOutOfRange as exc:  # a bound beyond the times nanoseconds hold bounds nothing on its side
            stamp = pd.Timestamp.max if exc.late else pd.Timestamp.min
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"time_range {end} {value!r} is not an instant{instant_problem(exc)}; give text in "
                              "ISO 8601, such as 1990-01-01 (or None for no bound)") from None
        stamp = open_end if stamp is pd.NaT else stamp  # (None: no bound on that side)
        bounds.append(stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC"))
    if bounds[0] >= bounds[1]:
        if bounds[0] == pd.Timestamp.max.tz_localize("UTC") or bounds[1] == pd.Timestamp.min.tz_localize("UTC"):
            raise ConfigError(f"time_range {tuple(time_range)!r} holds no time nanoseconds hold (1677-2262): every "
                              "message would be refused; pass None for no bounds")
        raise ConfigError(f"time_range must be (start, end) with the start before the end; got {tuple(time_range)!r}")
    return bounds[0], bounds[1]


def _instant_text(stamp: pd.Timestamp) -> str:
    """A bound as its date when it is a midnight, else to the second (a refusal at 09:30 of a range from 10:00
    named only the day)."""
    if stamp in (pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")):
        return "..."
    return str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat()


def _numbers(text: pd.Series) -> pd.Series:
    """Epoch numbers written as text: whole numbers as (nullable) integers, exact, others as floats."""
    return pd.to_numeric(text, errors="coerce", dtype_backend="numpy_nullable")


def _from_numbers(numbers: pd.Series, present: np.ndarray, unit, earlier_unit, origin,
                  refuse) -> tuple[pd.Series, str | None]:
    """The numbers as times, and the unit their magnitudes said (None: none judged; see parse_timestamps)."""
    finite = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
    judged = None
    if unit is None and earlier_unit is not None:
        # Earlier chunks of the column were read in this unit: a number whose magnitude says another would
        # make the column mixed, which a whole read refuses; read in the earlier unit it would be silently off
        # by a factor of 1000.
        off = present & finite & ~_in_magnitudes(numbers, earlier_unit)
        name = {"s": "seconds", "ms": "milliseconds"}[earlier_unit]
        refuse(off, ReasonCode.AMBIGUOUS_TIMESTAMP_UNIT,
               f"numbers mix epoch-second and epoch-millisecond magnitudes across chunks (earlier chunks were read "
               f"as epoch {name}, as their magnitudes said, and these numbers' magnitudes say otherwise): pass "
               "timestamp_unit='s' or 'ms'")
        present, resolved = present & ~off, earlier_unit
    else:
        resolved = _resolve_unit(numbers[present & finite], unit)
        if resolved is None:
            refuse(present, ReasonCode.AMBIGUOUS_TIMESTAMP_UNIT, _unit_fix(numbers[present & finite]))
            return pd.Series(pd.NaT, index=numbers.index, dtype=TIMESTAMP_DTYPE), None
        if unit is None and (present & finite).any():
            judged = resolved
    refuse(present & ~finite, ReasonCode.UNPARSEABLE_TIMESTAMP, "replace infinite or non-numeric times")
    # Refuse values that would overflow nanoseconds instead of letting them wrap.
    scale = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}[resolved]
    base = 0 if origin == "unix" else pd.Timestamp(origin).value
    ns = numbers.to_numpy(dtype="float64", na_value=np.nan) * scale + base
    overflow = present & finite & (np.abs(ns) >= 9.2e18)
    refuse(overflow, ReasonCode.TIMESTAMP_OUT_OF_RANGE, "the numbers are too large for any date; check the unit")
    usable = numbers.where(present & finite & ~overflow)
    return pd.to_datetime(usable, unit=resolved, origin=origin, utc=True).astype(TIMESTAMP_DTYPE), judged


def _from_strings(values: pd.Series, text: pd.Series, present: np.ndarray, timezone, refuse, naive_fix):
    if values.dtype == object:
        # Python datetime objects: spell them out so a naive one is seen as naive.
        text = values.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v).astype("str").str.strip()
    # pyarrow's RE2 directly: pandas' str.contains runs this pattern through Python's re row by row
    # (0.9 s per million rows, most of a text column's parse).
    arrow = pa.array(text.astype(STRING_DTYPE).array)

    def matches(pattern: str) -> np.ndarray:
        return np.asarray(pc.fill_null(pc.match_substring_regex(arrow, pattern), False), dtype=bool)

    # 'now' and 'today' are the clock to pandas, which no rerun repeats: never parsed, refused as unparseable.
    parseable = present & ~matches(_CLOCK_WORD_RE2)
    # pandas reads a naive string as UTC under utc=True; whether it carried a zone is told apart below
    # (has_zone), and naive values are re-localised after.
    parsed = pd.to_datetime(text.where(parseable), format="ISO8601", utc=True, errors="coerce")
    iso = parseable & parsed.notna().to_numpy()
    date_only = matches(_ISO_DATE_ONLY)
    has_zone = iso & matches(_ISO_ZONE) & ~date_only
    refuse(iso & ~has_zone & ~date_only & matches(_ISO_ODD_OFFSET), ReasonCode.UNPARSEABLE_TIMESTAMP,
           "write offsets as +hh:mm (2024-03-01T09:30:00+01:00): +200 or +1:5 can be read more than one way")
    failed = parseable & ~iso
    if failed.any():
        # RFC 2822 and other forms: the general parser, only for what ISO-8601 missed, once per distinct
        # value, into the column's own unit. A date nanoseconds cannot hold is refused here, so that no other
        # row gives up its fraction of a second (.7500000Z) to a coarser unit made to fit it.
        codes, distinct = pd.factorize(text[failed])
        ambiguous = np.zeros(len(text), dtype=bool)
        ambiguous[failed] = np.array([_day_month_ambiguous(v) for v in distinct], dtype=bool)[codes]
        refuse(ambiguous, ReasonCode.AMBIGUOUS_DATE, _AMBIGUOUS_DATE_FIX)
        read = [_parse_other(v) for v in distinct]
        other = pd.Series([r[0] for r in read], dtype="datetime64[us, UTC]").iloc[codes].set_axis(text.index[failed])
        has_zone[failed] = np.array([r[1] for r in read], dtype=bool)[codes]
        far = np.zeros(len(text), dtype=bool)
        far[failed] = _beyond_ns(other)
        refuse(far, ReasonCode.TIMESTAMP_OUT_OF_RANGE, _FAR_FIX)
        if parsed.dt.unit in ("s", "ms"):  # (no ISO row at all: pandas gives the empty result whole seconds)
            parsed = parsed.astype("datetime64[us, UTC]")
        parsed[failed] = other.mask(far[failed]).astype(parsed.dtype)
    parsed = _to_ns(parsed, refuse)
    refuse(present & parsed.isna().to_numpy(), ReasonCode.UNPARSEABLE_TIMESTAMP,
           "write timestamps as ISO-8601 with an offset (2024-03-01T09:30:00+01:00) or epoch seconds")
    naive = present & ~has_zone & parsed.notna().to_numpy()
    if naive.any():
        if timezone is None:
            refuse(naive, ReasonCode.NAIVE_TIMESTAMP, naive_fix)
        else:
            wall = parsed[naive].dt.tz_localize(None)
            local = wall.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
            parsed[naive] = local
            refuse(naive & parsed.isna().to_numpy(), ReasonCode.UNPARSEABLE_TIMESTAMP,
                   f"the local times do not exist or are ambiguous in {timezone} (daylight saving); add offsets")
    return parsed


_FAR_FIX = "correct the dates: they lie centuries away"


def _beyond_ns(parsed: pd.Series) -> np.ndarray:
    """Where zoned times lie beyond what nanoseconds hold (years before 1677 or after 2262)."""
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    return (parsed.notna() & ((parsed < lo) | (parsed > hi))).to_numpy()


def _to_ns(parsed: pd.Series, refuse) -> pd.Series:
    """Nanosecond UTC, refusing dates nanoseconds cannot hold."""
    overflow = _beyond_ns(parsed)
    refuse(overflow, ReasonCode.TIMESTAMP_OUT_OF_RANGE, _FAR_FIX)
    return parsed.where(~overflow).astype(TIMESTAMP_DTYPE)


def _day_month_ambiguous(value: str) -> bool:
    """Whether a value holds a date whose day and month could be either way round (see ``_DAY_MONTH_YEAR``).

    Examples
    --------
    >>> [_day_month_ambiguous(v) for v in ("02.05.2024 09:00 +0200", "13.05.2024", "5/13/2024", "13/05/24")]
    [True, False, False, True]

    Three dotted numbers beside a date written otherwise are a time ('03.32.48' in RFC 2822's dotted form):

    >>> _day_month_ambiguous("Fri, 1 Jul 2005 03.32.48 +0200"), _day_month_ambiguous("2005-07-01 03.12.48")
    (False, False)
    """
    found = _DAY_MONTH_YEAR.search(value)
    if found is None:
        return False
    first, second = int(found[1]), int(found[3])
    if first > 31 or second > 31 or min(first, second) > 12:  # no day and month: a time, or no date at all
        return False
    if _OTHER_DATE.search(value[:found.start()] + " " + value[found.end():]):  # the date is elsewhere
        return False
    return len(found[4]) == 2 or (first <= 12 and second <= 12)


def _offset_as_meant(found: re.Match) -> str:
    """The offset of a 'GMT+0200' as dateutil reads an offset alone (see ``_NAMED_OFFSET``).

    Examples
    --------
    >>> _NAMED_OFFSET.sub(_offset_as_meant, "Thu May 02 2024 09:00:00 GMT+0200")
    'Thu May 02 2024 09:00:00 +0200'
    """
    if re.fullmatch(_OFFSET, found[1]) is None:
        raise ValueError(f"{found[0]!r} is no offset for sure")
    return f" {found[1]}"


def _parse_other(value: str) -> tuple[pd.Timestamp, bool]:
    """A value ISO 8601 missed, as pandas' general parser (dateutil) reads it: the instant in UTC (a naive
    one's wall time labelled UTC, as ``utc=True`` gives it) and whether the value carried a zone, as the
    parser's result says (a zone it reads anywhere, 'Thu May  2 09:00:00 UTC 2024' of ``date`` included).
    A trailing comment is no zone, 'GMT+0200' is two hours ahead of UTC, and digits after a time's sign that
    are no offset for sure ('+1:5') are refused (NaT).

    Examples
    --------
    >>> _parse_other("Thu May  2 09:00:00 UTC 2024")
    (Timestamp('2024-05-02 09:00:00+0000', tz='UTC'), True)
    >>> _parse_other("2 May 2024 09:00")
    (Timestamp('2024-05-02 09:00:00+0000', tz='UTC'), False)
    >>> _parse_other("Thu, 02 May 2024 09:00:00 +0200 (UTC)")[0]
    Timestamp('2024-05-02 07:00:00+0000', tz='UTC')
    """
    try:
        value = _NAMED_OFFSET.sub(_offset_as_meant, _TRAILING_COMMENT.sub("", value))
        found = _OFFSET_AFTER_TIME.search(value)
        if (found is not None and re.fullmatch(_OFFSET, found[1]) is None) or _DATE_THEN_SIGNED.match(value):
            return pd.NaT, False
        ts = pd.Timestamp(pd.to_datetime(value, format="mixed"))
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT, False
    if ts is pd.NaT:
        return ts, False
    return (ts.tz_localize("UTC"), False) if ts.tzinfo is None else (ts.tz_convert("UTC"), True)
