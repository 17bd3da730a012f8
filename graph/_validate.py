"""Validation and normalisation of mail metadata against the message contract.

``validate`` checks every rule in one pass over the columns (vectorised; string
work is done once per distinct value) and either raises one :class:`SchemaError`
listing every problem (strict) or returns the usable messages plus the rows it
could not use, each with a reason (lenient). Nothing is dropped silently.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from ._addresses import ParsedAddresses, normalise_display_names, parse_addresses, split_address_lists
from ._errors import ConfigError, Problem, ReasonCode, SchemaError
from ._messages import REJECT_COLUMNS, Messages, message_index
from ._schema import (
    AUTH_COLUMNS, AUTH_DTYPE, DIRECTION_DTYPE, DIRECTIONS, EDGE_RECIPIENT_COLUMN, EDGE_RECIPIENT_TYPE_COLUMN,
    LABEL_DTYPE, LABELS, OPTIONAL_COLUMNS, RECIPIENT_TYPE_DTYPE, RECIPIENT_TYPES, REQUIRED_COLUMNS,
    STRING_DTYPE, TIMESTAMP_DTYPE, TYPED_RECIPIENT_COLUMNS, AUTH_RESULTS,
)
from ._tenants import TenantConfig, caller_stacklevel, infer_own_domains, load_tenant_configs, warn_inferred
from ._timestamps import DEFAULT_TIME_RANGE, parse_timestamps
from ._uniques import categorical_take, map_unique_strings

__all__ = ["validate", "apply_column_mapping", "reject_rows", "id_text"]

_CONTRACT = (*REQUIRED_COLUMNS, "recipients", *TYPED_RECIPIENT_COLUMNS, EDGE_RECIPIENT_COLUMN,
             EDGE_RECIPIENT_TYPE_COLUMN, *OPTIONAL_COLUMNS)
_ENUMS = {"direction": (DIRECTIONS, DIRECTION_DTYPE), "label": (LABELS, LABEL_DTYPE),
          **{c: (AUTH_RESULTS, AUTH_DTYPE) for c in AUTH_COLUMNS}}


@dataclass
class _Finding:
    level: str                  # "message" or "edge"
    positions: np.ndarray       # message or edge positions
    column: str
    reason: ReasonCode
    values: list
    fix: str
    detail: str = ""
    messages: list | None = None  # one sentence per position, when they differ


@dataclass
class _Findings:
    n_messages: int
    items: list = field(default_factory=list)
    ids_repeat: bool = True  # whether some (tenant, message id) repeats among every row, usable or not

    def __post_init__(self) -> None:
        self.rejected = np.zeros(self.n_messages, dtype=bool)

    def add(self, mask_or_positions, column: str, reason: ReasonCode, values: pd.Series | np.ndarray | list,
            fix: str, *, level: str = "message", detail: str = "", messages=None) -> None:
        positions = np.asarray(mask_or_positions)
        if positions.dtype == bool:
            positions = np.flatnonzero(positions)
        if not len(positions):
            return
        vals = values.tolist() if hasattr(values, "tolist") else list(values)
        self.items.append(_Finding(level, positions, column, reason, vals, fix, detail, messages))
        if level == "message":
            self.rejected[positions] = True


def apply_column_mapping(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename the caller's columns to the contract's names.

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : mapping, optional
        ``{contract name: caller's column}``, e.g. ``{"sender": "from_address"}``.

    Returns
    -------
    pandas.DataFrame
        A shallow copy with renamed columns.

    Examples
    --------
    >>> apply_column_mapping(pd.DataFrame({"from_address": ["a@b.com"]}), {"sender": "from_address"}).columns.tolist()
    ['sender']
    >>> apply_column_mapping(pd.DataFrame({"x": [1]}), {"sender": "from"})
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: column mapping names 'from' for 'sender', but the input has no such column; columns present: ['x']
    """
    if not columns:
        return frame
    unknown = [k for k in columns if k not in _CONTRACT]
    if unknown:
        raise ConfigError(f"column mapping key {unknown[0]!r} is not a contract column; contract columns are "
                          f"{list(_CONTRACT)}")
    rename = {}
    for contract_name, source in columns.items():
        if source not in frame.columns:
            raise ConfigError(f"column mapping names {source!r} for {contract_name!r}, but the input has no such "
                              f"column; columns present: {list(frame.columns)}")
        if contract_name in frame.columns and contract_name != source:
            raise ConfigError(f"column mapping maps {source!r} to {contract_name!r}, but the input already has a "
                              f"{contract_name!r} column; drop or rename one of them")
        rename[source] = contract_name
    return frame.rename(columns=rename)


def _untidy(array: pa.Array) -> pa.Array:
    """Per value of a string array, whether it begins or ends with white space, or is empty (null: unknown).

    White space as ``str.strip`` reads it: any Unicode white space, which is what Arrow's trim removes (trimmed,
    the value is shorter). An ASCII-only test would leave "\xa0acme" alone in a batch of tidy values and strip
    it in a batch holding another untidy one. (The trim and two lengths cost a third of a regular expression's
    match of white space at either end.)
    """
    length = pc.binary_length(array)
    return pc.or_(pc.not_equal(pc.binary_length(pc.utf8_trim_whitespace(array)), length), pc.equal(length, 0))


def _blank_to_na(values: pd.Series) -> pd.Series:
    """Strings with surrounding white space removed and blanks missing; the input itself when already so.

    Each value's result depends on that value alone.

    Examples
    --------
    >>> _blank_to_na(pd.Series(["\xa0acme", "acme", " ", None])).tolist()
    ['acme', 'acme', nan, nan]
    """
    text = values.astype(STRING_DTYPE)
    if not len(text):
        return text
    if not pc.any(_untidy(pa.array(text.array))).as_py():  # the common case: no copy of the strings
        return text
    text = text.str.strip()
    return text.mask(text.str.len() == 0)


# Floats hold every integer exactly below this magnitude; above it, neighbouring integers share a float.
_EXACT_FLOAT_INTEGERS = 2**53


def id_text(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Identifiers as text, tidied (blank is missing), and where a float column's value is not an id.

    An integer column's ids are their digits. A float column is what pandas makes of an integer column
    holding a missing value (7 becomes 7.0): its whole numbers are read back as the integers they were
    ('7', never '7.0'). A fraction, or a magnitude of 2**53 or more (where floats no longer hold every
    integer, so the id may have been rounded), cannot be read back: those rows are flagged (and missing).

    Examples
    --------
    >>> text, inexact = id_text(pd.Series([7.0, None, 2.5, 9007199254740993.0]))
    >>> text.tolist(), inexact.tolist()
    (['7', nan, nan, nan], [False, False, True, True])
    >>> id_text(pd.Series([" 007", "7"]))[0].tolist()
    ['007', '7']

    A float among other values (JSON or records mixing ``1000.0`` with ``"abc"``) is read as in a float column,
    so that one value gives one id whatever the rows read with it:

    >>> id_text(pd.Series([1000.0, "abc", 2.5], dtype=object))[0].tolist()
    ['1000', 'abc', nan]
    """
    inexact = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_float_dtype(values.dtype):
        values, inexact = _float_ids(values)
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty",
                                                                                          "integer"):
        # (infer_dtype scans in C: a column of text, as CSV gives, goes no further.) str() wrote a float '1000.0'
        # here and '1000' in a float column: one message under two ids, a chunk's neighbours deciding which.
        floats = np.fromiter((isinstance(v, (float, np.floating)) for v in values), dtype=bool, count=len(values))
        if floats.any():
            read, flagged = _float_ids(values[floats].astype("float64"))
            values = values.astype(STRING_DTYPE)
            values[floats] = read
            inexact[np.flatnonzero(floats)[flagged]] = True
    return _blank_to_na(values), inexact


def _float_ids(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Floats as the text of the integers they hold, and where they hold none exactly (those missing)."""
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    whole = np.isfinite(numbers) & (np.trunc(numbers) == numbers) & (np.abs(numbers) < _EXACT_FLOAT_INTEGERS)
    inexact = ~np.isnan(numbers) & ~whole
    return pd.Series(pd.array(np.where(whole, numbers, 0).astype(np.int64), dtype="Int64"),
                     index=values.index).where(whole).astype(STRING_DTYPE), inexact


def validate(
    frame: pd.DataFrame,
    *,
    strict: bool = True,
    columns: Mapping[str, str] | None = None,
    tenants: Iterable[TenantConfig | Mapping] | Mapping | str | None = None,
    timezone: str | None = None,
    timestamp_unit: str | None = None,
    timestamp_origin: str | pd.Timestamp = "unix",
    time_range: tuple | None = DEFAULT_TIME_RANGE,
    fold_plus_addresses: bool = False,
) -> Messages:
    """Check mail metadata against the message contract and normalise it.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per message (recipients in ``recipients`` or ``to``/``cc``/``bcc``;
        a ``recipients`` beside typed columns adds its recipients without a type),
        or one row per recipient (a ``recipient`` column, optionally
        ``recipient_type``): rows of one message are then gathered into it.
    strict : bool, default True
        Raise one :class:`SchemaError` listing every problem. With ``False``,
        return the usable messages and put the rest in ``Messages.rejects``.
    columns : mapping, optional
        ``{contract name: your column}`` for inputs with other column names.
    tenants : TenantConfig list, mapping or TOML path, optional
        Own domains per tenant, used to decide ``direction`` where it is not given
        (mail from outside to no own address, as Bcc'd mail, is ``inbound``).
        Tenants without one, or configured without own domains, get them inferred
        from their mail (with an :class:`InferredOwnDomainsWarning` naming them).
    timezone : str, optional
        Zone of naive timestamps; without it they are refused.
    timestamp_unit : {'s', 'ms', 'us', 'ns'}, optional
        Unit of numeric timestamps, when their magnitude is ambiguous.
    timestamp_origin : str or Timestamp, default 'unix'
        Origin of numeric timestamps.
    time_range : (start, end) or None, default ('1990-01-01', '2100-01-01')
        Timestamps outside are refused (placeholder dates such as 1980-01-01).
    fold_plus_addresses : bool, default False
        Fold ``local+tag@domain`` to ``local@domain``.

    Returns
    -------
    Messages
        The input's columns outside the contract pass through as they are;
        one named like a column validation computes (``sender_domain``,
        ``n_recipients``, ``n_repeated_recipients``, ``sender_key``) is
        replaced, with a warning naming it.

    Raises
    ------
    SchemaError
        In strict mode, when anything breaks the contract; in both modes when a
        required column is missing (nothing can be checked without it).
    ConfigError
        When a parameter or the column mapping is invalid.

    Examples
    --------
    >>> raw = pd.DataFrame({
    ...     "tenant_id": ["acme"] * 3, "message_id": ["m1", "m2", "m3"],
    ...     "timestamp": ["2024-05-02T09:00:00Z", "2024-05-02T09:05:00+02:00", "2024-05-02 10:00"],
    ...     "sender": ["Ann <ann@acme.com>", "a@", "bob@vendor.com"],
    ...     "recipients": ["bob@vendor.com", "ann@acme.com", "ann@acme.com"]})
    >>> acme = [TenantConfig("acme", own_domains=("acme.com",))]
    >>> validate(raw, tenants=acme)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.SchemaError: mail metadata breaks the message contract (2 problems):
      - column 'timestamp': 1 row naive_timestamp (rows 2; values '2024-05-02 10:00'); fix: pass timezone='<IANA zone>' saying which zone the naive timestamps are in, or add offsets
      - column 'sender': 1 row invalid_address (rows 1; values 'a@'); empty domain; fix: correct the addresses, or drop those rows
    >>> m = validate(raw, strict=False, tenants=acme)
    >>> m.frame[["message_id", "sender", "sender_display_name", "direction"]]
      message_id         sender sender_display_name direction
    0         m1   ann@acme.com                 ann  outbound
    >>> m.rejects[["reject_column", "reject_reason", "message_id"]]
      reject_column    reject_reason message_id
    1        sender  invalid_address         m2
    2     timestamp  naive_timestamp         m3
    """
    return _validate_handed_over([frame], strict=strict, columns=columns, tenants=tenants, timezone=timezone,
                                timestamp_unit=timestamp_unit, timestamp_origin=timestamp_origin,
                                time_range=time_range, fold_plus_addresses=fold_plus_addresses)


def _without_reject_columns(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    """``frame`` without columns named as the reject columns (:data:`REJECT_COLUMNS`).

    They are a previous run's: rejects fixed and validated again carry them. Kept, the rejects of this run would
    hold two columns of one name, and the messages the reasons of rows now fixed. A column mapped to a contract
    column is the caller's data: refused, as no reject column can be both.
    """
    clash = [c for c in frame.columns if c in REJECT_COLUMNS]
    if not clash:
        return frame
    mapped = [c for c in clash if c in (columns or {}).values()]
    if mapped:
        raise ConfigError(f"column mapping names {mapped[0]!r}, a reject column's name (validation drops the reject "
                          f"columns {list(REJECT_COLUMNS)} of a previous run): rename that column in the input")
    if len(clash) < len(REJECT_COLUMNS):  # not a previous run's rejects as given: say what is dropped
        warnings.warn(f"validation drops the input's {', '.join(map(repr, clash))}, named as reject columns (a "
                      "previous run's); rename such a column in the input to keep it", UserWarning,
                      stacklevel=caller_stacklevel())
    return frame.drop(columns=clash)


def _validate_handed_over(handed: list, **options: Any) -> Messages:
    """:func:`validate` on a frame handed over in a one-item list, which it empties.

    When the caller keeps no other reference to the frame (the readers build it and
    keep none), the input columns consumed into new ones are freed before the
    output is built, so the input and the output are never both whole in memory.
    ``options`` are :func:`validate`'s keyword arguments; the ones left out take its
    defaults.
    """
    try:
        return _validate_taken(handed, **options)
    except _LoneSurrogates as found:  # rare: the rows are found again, and set aside, only then
        frame, error = found.frame, found.error
    # (Out of the except clause: the failed attempt's traceback, and the arrays it made, are gone.)
    strict, columns = ({**_VALIDATE_DEFAULTS, **options}[k] for k in ("strict", "columns"))
    good, kept, rejects, problems = _lone_surrogate_rejects(frame, columns)
    if not problems:
        raise error
    del frame
    try:
        messages = _validate_handed_over([good], **options)
    except SchemaError as more:  # strict: one error lists every problem
        raise SchemaError(problems + list(more.problems)) from None
    if strict:
        raise SchemaError(problems)
    return messages._renumbered(kept).with_rejects([rejects])  # (rows numbered in the frame given, not in good)


class _LoneSurrogates(Exception):
    """Text that UTF-8 cannot hold met Arrow: the input, handed back for its rows to be set aside."""

    def __init__(self, frame: pd.DataFrame, error: UnicodeEncodeError):
        super().__init__(str(error))
        self.frame, self.error = frame, error


# A UTF-16 surrogate alone: Python text holds one (JSON's "\ud83d" escape without its pair, a string cut inside
# an emoji's pair, bytes decoded with errors="surrogateescape"), UTF-8 and Arrow cannot.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_WHY = ("the text holds a UTF-16 surrogate without its pair, which UTF-8 cannot hold (a string cut inside "
                  "an emoji is the usual cause)")
_SURROGATE_FIX = f"{_SURROGATE_WHY}: correct it at the source, or strict=False to set these rows aside"


def first_lone_surrogate(value: object) -> str | None:
    """The first UTF-16 surrogate without its other half in a value (text, or lists, tuples, arrays and mappings
    of them, keys included), as its escape (``\\ud83d``); None when there is none.

    Examples
    --------
    >>> print(first_lone_surrogate({"to": ["ok", "cut " + chr(0xD83D)]}), first_lone_surrogate("whole " + chr(0x1F600)))
    \\ud83d None
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found = _LONE_SURROGATE.search(item)
            if found:
                return f"\\u{ord(found.group()):04x}"
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, np.ndarray)):  # (recipients given as lists)
            pending.extend(item)
    return None


def _escaped(value: object) -> object:
    """A value with each lone surrogate written as its escape (\\ud83d), so the reject can be stored and shown."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_escaped(v) for v in value]
    return value


def _lone_surrogate_rejects(frame: pd.DataFrame, columns: Mapping[str, str] | None
                            ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, list[Problem]]:
    """The rows without a lone surrogate in any text column and their positions; the others as
    ``invalid_encoding`` rejects (their text escaped), and the problems a strict validation reports."""
    contract_name = {source: name for name, source in (columns or {}).items()}
    bad_rows = np.zeros(len(frame), dtype=bool)
    found = []
    for column in frame.columns:
        dtype = frame[column].dtype
        if contract_name.get(column, column) not in _CONTRACT or not (
                dtype == object or (isinstance(dtype, pd.StringDtype) and dtype.storage == "python")):
            continue  # (the columns validation reads as text; Arrow-backed text cannot hold one)
        values = frame[column].to_numpy(dtype=object)
        bad = np.fromiter((first_lone_surrogate(v) is not None for v in values), dtype=bool, count=len(values))
        if bad.any():
            found.append((column, np.flatnonzero(bad), [_escaped(v) for v in values[bad]]))
            bad_rows |= bad
    clean = frame.copy()  # the rejects carry the rows as given, their text escaped
    for column, positions, values in found:
        escaped = clean[column].to_numpy(dtype=object).copy()
        for position, value in zip(positions.tolist(), values):
            escaped[position] = value
        clean[column] = pd.Series(escaped, index=clean.index, dtype=object)
    problems, rejects = [], []
    for column, positions, values in found:
        name = contract_name.get(column, column)
        text = [str(v) for v in values]
        problems.append(Problem(name, ReasonCode.INVALID_ENCODING, rows=frame.index[positions].tolist(),
                                values=text, fix=_SURROGATE_FIX))
        rejects.append(reject_rows(clean, positions, name, ReasonCode.INVALID_ENCODING, text, _SURROGATE_FIX))
    kept = np.flatnonzero(~bad_rows)
    return frame.iloc[kept], kept, pd.concat(rejects) if rejects else None, problems


def _validate_taken(handed: list, **options: Any) -> Messages:
    """:func:`_validate_handed_over`, which sets aside rows whose text UTF-8 cannot hold when this raises
    :class:`_LoneSurrogates`."""
    frame = handed.pop()
    options = {**_VALIDATE_DEFAULTS, **options}
    # A chunked read's epoch units per time column, judged on its first chunk with numbers and filled in here:
    # later chunks are read in them, never each in the unit its own magnitudes say (read_messages).
    epoch_units = options.pop("epoch_units", None)
    unknown = set(options) - set(_VALIDATE_DEFAULTS)
    if unknown:
        raise ConfigError(f"validate got an unexpected option {sorted(unknown)[0]!r}")
    strict, columns, tenants = options["strict"], options["columns"], options["tenants"]
    timezone, timestamp_unit = options["timezone"], options["timestamp_unit"]
    timestamp_origin, time_range = options["timestamp_origin"], options["time_range"]
    fold_plus_addresses = options["fold_plus_addresses"]
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"validate expects a pandas DataFrame (got {type(frame).__name__}); "
                          "use read_messages for files and iterables of records")
    if timezone is not None:
        _check_zone(timezone)
    configs = load_tenant_configs(tenants) if tenants is not None else {}
    frame = _without_reject_columns(frame, columns)
    original = frame
    try:
        df = apply_column_mapping(frame, columns)
        _check_columns(df, columns)
        layout = _layout(df)

        with ThreadPoolExecutor(max_workers=1) as pool:
            # Recipient lists (the bulk of the string work: split, parse, hash) go to a
            # second thread; Arrow kernels and numpy release the GIL, so the message-level
            # checks below run meanwhile.
            if layout == "edge":
                state = _State.start(df, layout, reading=dict(
                    timezone=timezone, unit=timestamp_unit, origin=timestamp_origin, time_range=time_range,
                    fold_plus=fold_plus_addresses, epoch_units=epoch_units))
                msgs = state.msgs
                recipients = pool.submit(_parse_entries, state, fold_plus_addresses)
            else:
                msgs = df.reset_index(drop=True)
                recipients = pool.submit(_split_and_parse_entries, df, msgs, layout, fold_plus_addresses)
            findings = _Findings(len(msgs))
            checked = _check_messages(msgs, findings, timezone, timestamp_unit, timestamp_origin, time_range,
                                      fold_plus_addresses, epoch_units)
            state, parsed_recipients = recipients.result()
        tenant, message_id, ts, sender, display, optional = checked

        edges = _recipients(state, findings, parsed_recipients)
        # The raw entries and their types are no longer read (findings hold their values): free them.
        state.edge_raw = state.edge_type = state.edge_column = None

        direction, own_domains = _direction(optional["direction"], tenant, sender, edges, findings, configs)
        optional["direction"] = direction
        # Copies are told apart among the messages every other check keeps: the first usable copy is kept,
        # also when an earlier copy is refused (a placeholder date, no valid recipient).
        dup = _repeated_ids(tenant, message_id, usable=~findings.rejected) if findings.ids_repeat else []
        findings.add(dup, "message_id", ReasonCode.DUPLICATE_MESSAGE_ID, message_id[dup],
                     "nothing to do if these are copies of one mail filed in several folders (the first usable copy "
                     "is kept); otherwise give distinct messages distinct ids")

        # Every finding is known: take what needs the input rows now (the rejects, the row
        # labels, the columns passed through), then let the input go, so the columns consumed
        # into new ones (recipient lists, timestamps, enums...) are freed before the output
        # is built. A caller who keeps the frame keeps them; read_messages keeps none.
        if strict and findings.items:
            raise SchemaError(_problems(original, state, findings))
        rejects = _rejects(original, state, findings)
    except UnicodeEncodeError as exc:  # text UTF-8 cannot hold (a lone UTF-16 surrogate) reached Arrow
        raise _LoneSurrogates(original, exc) from None
    index = original.index[state.msg_row]
    passthrough = {c: msgs[c].array for c in msgs.columns if c not in _CONSUMED and c not in _OUTPUT_COLUMNS}
    replaced = [c for c in msgs.columns if c not in _CONSUMED and c in _OUTPUT_COLUMNS]
    if replaced:  # (the Nazario and W3C exports carry a sender_domain or n_recipients of their own)
        warnings.warn(f"validation replaces the input's {', '.join(map(repr, replaced))} with what it computes "
                      "(sender_domain: the sender's registrable domain; n_recipients: each recipient once; "
                      "sender_key: the address's stable key): rename such a column in the input to keep it",
                      UserWarning, stacklevel=caller_stacklevel())
    held = pa.total_allocated_bytes()
    del frame, original, df, msgs, checked
    state.msgs = None
    if held - pa.total_allocated_bytes() > _RELEASE_ABOVE:
        _release_freed_arrow_memory()
    messages = _assemble(index, passthrough, rejects, state, findings, tenant, message_id, ts, sender, display,
                         optional, edges)
    messages.own_domains = own_domains  # build_graph marks nodes internal by the domains direction used
    # Which of them validation inferred: the look-alike signals compare with configured ones only, as a scorer does.
    messages._inferred = frozenset(t for t in own_domains if t not in configs or not configs[t].own_domains)
    messages.reject_tenant_column = (columns or {}).get("tenant_id", "tenant_id")  # the rejects keep the input's
    return messages


# Freeing less than this is not worth a call into the allocator.
_RELEASE_ABOVE = 8 * 2**20


def _release_freed_arrow_memory() -> None:
    # Arrow's allocator keeps freed pages for reuse, and pages freed by another thread
    # (the Parquet reader's) are not reused by this one: hand them back to the system, so
    # the numpy arrays built next can use them instead of growing the process (~1 ms).
    pa.default_memory_pool().release_unused()


_VALIDATE_DEFAULTS = {name: p.default for name, p in inspect.signature(validate).parameters.items()
                      if p.kind is p.KEYWORD_ONLY}


def _parse_entries(state: "_State", fold_plus: bool):
    return state, parse_addresses(state.edge_raw.reset_index(drop=True), fold_plus=fold_plus)


def _split_and_parse_entries(df: pd.DataFrame, msgs: pd.DataFrame, layout: str, fold_plus: bool):
    return _parse_entries(_State.start(df, layout, msgs=msgs), fold_plus)


def _check_messages(msgs, findings, timezone, timestamp_unit, timestamp_origin, time_range, fold_plus_addresses,
                    epoch_units=None):
    """Every message-level column: ids, timestamps, sender, optional columns (duplicates come last).

    ``epoch_units`` (a chunked read's): the epoch unit of each time column judged on an earlier chunk, to read
    this one in; a column judged here for the first time is added."""
    tenant = _required_text(msgs, "tenant_id", findings, "add the tenant id (one customer organisation per value)")
    message_id = _required_text(msgs, "message_id", findings, "give every message an id, or drop those rows")
    # Whether any id repeats at all (rarely): decided now, while the input's ids are the only large thing held;
    # which rows are the repeats is decided once every other check is done (see _validate_handed_over).
    findings.ids_repeat = bool(_repeated_ids(tenant, message_id).any())

    ts = _timestamps(msgs["timestamp"], "timestamp", findings, timezone, timestamp_unit, timestamp_origin, time_range,
                     epoch_units)

    sender_raw = _blank_to_na(msgs["sender"])
    findings.add(sender_raw.isna().to_numpy(), "sender", ReasonCode.MISSING_VALUE, msgs["sender"][sender_raw.isna()],
                 "fill the sender or drop those rows")
    sender = parse_addresses(sender_raw, fold_plus=fold_plus_addresses)
    _address_problems(sender, sender_raw, "sender", findings)
    display = sender.display_name
    if "sender_display_name" in msgs:
        given = _blank_to_na(msgs["sender_display_name"])
        display = given.fillna(display)
    display = normalise_display_names(display)

    optional = {}
    # Text columns the input lacks are all missing: one array serves them all.
    missing_text = pd.Series(pd.array(pa.nulls(len(msgs), pa.large_string()), dtype=STRING_DTYPE), index=msgs.index)
    for name, (vocabulary, dtype) in _ENUMS.items():
        optional[name] = _enum(msgs, name, vocabulary, dtype, findings)
    for name in ("reply_to", "return_path"):
        optional[name] = _optional_address(msgs, name, fold_plus_addresses, missing_text)
    optional["sender_ip"] = _sender_ip(msgs, findings, missing_text)
    labeled_at = pd.Series(pd.NaT, index=msgs.index, dtype=TIMESTAMP_DTYPE)
    if "labeled_at" in msgs:
        given = _blank_text_missing(msgs["labeled_at"])  # optional: blank is missing, as in every other column
        present = given.notna().to_numpy()
        labeled_at = _timestamps(given, "labeled_at", findings, timezone, timestamp_unit, timestamp_origin,
                                 time_range, epoch_units, raw=msgs["labeled_at"], only=present)
        early = (labeled_at < ts).to_numpy(dtype=bool, na_value=False)
        findings.add(early, "labeled_at", ReasonCode.LABELED_BEFORE_MESSAGE, msgs["labeled_at"][early],
                     "a label cannot be known before its message arrived; correct labeled_at or the timestamp")
    optional["labeled_at"] = labeled_at
    optional["subject"] = msgs["subject"].astype(STRING_DTYPE) if "subject" in msgs else missing_text
    return tenant, message_id, ts, sender, display, optional


def _check_zone(timezone: Any) -> None:
    """Refuse a ``timezone`` that names no zone, before any row is read in it (ConfigError).

    Examples
    --------
    >>> _check_zone("Europe/Paris")
    >>> _check_zone("Mars/Base")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: The 'timezone' parameter of validate must be an IANA time zone such as 'Europe/Paris'. Got 'Mars/Base' instead.
    """
    try:  # whatever the parser will localise in: an IANA name, 'utc', '+02:00', a tzinfo
        pd.Timestamp("2000-01-01").tz_localize(timezone)
    except (ValueError, TypeError, LookupError):  # (ZoneInfoNotFoundError is a KeyError)
        raise ConfigError(f"The 'timezone' parameter of validate must be an IANA time zone such as 'Europe/Paris'. "
                          f"Got {timezone!r} instead.") from None


def _blank_text_missing(values: pd.Series) -> pd.Series:
    """A column with its blank strings ('' or white space) missing; other values, dates included, as they are.

    Examples
    --------
    >>> _blank_text_missing(pd.Series(["2024-05-02T09:00Z", " ", "", None])).isna().tolist()
    [False, True, True, True]
    """
    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        return values
    blank = (values.astype(STRING_DTYPE).str.strip() == "").to_numpy(dtype=bool, na_value=False)
    return values.mask(blank) if blank.any() else values


def _repeated_ids(tenant: pd.Series, message_id: pd.Series, usable: np.ndarray | None = None) -> np.ndarray:
    """Rows whose (tenant, message id) appeared in an earlier row; a missing value never repeats.

    With ``usable``, only those rows count: a row repeats an earlier usable one, and rows that are not
    usable never repeat nor are repeated.
    """
    id_codes, ids = pd.factorize(message_id, use_na_sentinel=True)
    present = id_codes >= 0
    if len(ids) == present.sum():  # every id distinct (the common case): no pair can repeat
        return np.zeros(len(id_codes), dtype=bool)
    tenant_codes, tenants = pd.factorize(tenant, use_na_sentinel=True)
    # Rows missing either value never count as repeats: validation rejects them as missing values already.
    candidates = present & (tenant_codes >= 0)
    if usable is not None:
        candidates &= usable
    rows = np.flatnonzero(candidates)
    pair = id_codes[rows].astype(np.int64) * len(tenants) + tenant_codes[rows]
    repeated = np.zeros(len(id_codes), dtype=bool)
    repeated[rows] = pd.Series(pair).duplicated(keep="first").to_numpy()
    return repeated


# --- structure ---------------------------------------------------------------------------------

def _check_columns(df: pd.DataFrame, columns) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    has_recipients = any(c in df.columns for c in ("recipients", *TYPED_RECIPIENT_COLUMNS, EDGE_RECIPIENT_COLUMN))
    if not has_recipients:
        missing.append("recipients")
    if missing:
        problems = [Problem(c, ReasonCode.MISSING_COLUMN,
                            detail=f"columns present: {list(df.columns)}",
                            fix=("add it, or map your column to it with columns={'" + c + "': '<your column>'}"
                                 if c != "recipients" else "give recipients as 'recipients' (list or ';'/','-"
                                 "separated), as 'to'/'cc'/'bcc', or one row per recipient in 'recipient'"))
                    for c in missing]
        raise SchemaError(problems)


def _layout(df: pd.DataFrame) -> str:
    if any(c in df.columns for c in TYPED_RECIPIENT_COLUMNS):
        return "typed"
    if "recipients" in df.columns:
        return "list"
    return "edge"


@dataclass
class _State:
    """Message-level rows plus the raw recipient entries, with their input rows."""

    msgs: pd.DataFrame            # one row per message, RangeIndex
    msg_row: np.ndarray           # input row position of each message (its first row)
    edge_parent: np.ndarray       # message position of each raw recipient entry
    edge_raw: pd.Series           # raw recipient entries
    edge_type: np.ndarray         # recipient type code (-1 unknown) per entry
    edge_row: np.ndarray          # input row position of each entry
    edge_column: np.ndarray       # input column of each entry, as a position in edge_columns
    edge_columns: tuple
    layout: str
    pre_findings: list = field(default_factory=list)

    @classmethod
    def start(cls, df: pd.DataFrame, layout: str, msgs: pd.DataFrame | None = None,
              reading: dict | None = None) -> "_State":
        """``reading``: how validation reads times and addresses (the edge layout compares rows by it)."""
        n = len(df)
        positions = np.arange(n, dtype=np.int64)
        if layout == "edge":
            return cls._from_edge_rows(df, reading or {})
        msgs = df.reset_index(drop=True) if msgs is None else msgs
        parents, raws, types, columns = [], [], [], []
        # With to/cc/bcc, a 'recipients' column is read too (its entries have no type): a recipient listed
        # only there is still a recipient, and one listed in both keeps its type (see _drop_repeats).
        sources = [c for c in (*TYPED_RECIPIENT_COLUMNS, "recipients") if c in df.columns] if layout == "typed" \
            else ["recipients"]
        for column in sources:
            parent, entries = split_address_lists(msgs[column])
            parents.append(parent)
            raws.append(entries)
            code = RECIPIENT_TYPES.index(column) if column in RECIPIENT_TYPES else -1
            types.append(np.full(len(parent), code, dtype=np.int8))
            columns.append(np.full(len(parent), len(columns), dtype=np.int8))
        parent = np.concatenate(parents) if len(parents) > 1 else parents[0]  # int32 while messages fit
        # Entries are categoricals (4 bytes each); joining the columns' keeps them so.
        raw = raws[0] if len(raws) == 1 else pd.Series(union_categoricals(raws))
        return cls(msgs=msgs, msg_row=positions, edge_parent=parent, edge_raw=raw,
                   edge_type=np.concatenate(types) if types else np.zeros(0, np.int8), edge_row=parent,
                   edge_column=np.concatenate(columns) if columns else np.zeros(0, np.int8),
                   edge_columns=tuple(sources), layout=layout)

    @classmethod
    def _from_edge_rows(cls, df: pd.DataFrame, reading: dict) -> "_State":
        flat = df.reset_index(drop=True)
        # Rows are gathered on the ids as validation reads them ('acme' and ' acme' are one tenant; a float
        # column's 7.0 is id '7'): on the raw ids, the rows of one message could become two, the second then
        # refused as a repeated message id and its recipients lost.
        keys = pd.DataFrame({"t": id_text(flat["tenant_id"])[0], "m": id_text(flat["message_id"])[0]})
        codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys.fillna("\0missing")))
        first = pd.Series(np.arange(len(flat))).groupby(codes, sort=False).transform("min").to_numpy()
        msg_first = np.unique(first)
        parent_of_first = np.full(len(flat), -1, dtype=np.int64)
        parent_of_first[msg_first] = np.arange(len(msg_first))
        edge_parent = parent_of_first[first]
        rtype = (flat[EDGE_RECIPIENT_TYPE_COLUMN].astype(STRING_DTYPE).str.strip().str.lower()
                 if EDGE_RECIPIENT_TYPE_COLUMN in flat else pd.Series(pd.NA, index=flat.index, dtype=STRING_DTYPE))
        type_code = pd.Categorical(rtype, categories=list(RECIPIENT_TYPES)).codes.astype(np.int8)
        # Message-level columns must agree across a message's rows, as validation reads them: '...Z' and
        # '+00:00', a sender's case or trailing space, '' and a missing subject are one value written two ways.
        # A row that disagrees with its message's first usable row is another mail reusing the id (a replay that
        # differs, an attacker's twin): it is set aside as a copy, and the message is that row's.
        level = [c for c in flat.columns if c not in ("tenant_id", "message_id", EDGE_RECIPIENT_COLUMN,
                                                      EDGE_RECIPIENT_TYPE_COLUMN)
                 and c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
        twin, sentences, differing, msg_row = _twin_rows(flat, level, edge_parent, msg_first, reading)
        state = cls(msgs=flat.iloc[msg_row].drop(columns=[c for c in (EDGE_RECIPIENT_COLUMN,
                                                                      EDGE_RECIPIENT_TYPE_COLUMN) if c in flat])
                    .reset_index(drop=True),
                    msg_row=msg_row, edge_parent=edge_parent,
                    edge_raw=flat[EDGE_RECIPIENT_COLUMN].astype(STRING_DTYPE),
                    edge_type=type_code, edge_row=np.arange(len(flat), dtype=np.int64),
                    edge_column=np.zeros(len(flat), dtype=np.int8), edge_columns=(EDGE_RECIPIENT_COLUMN,),
                    layout="edge")
        state.pre_findings.append(("twin", twin, sentences, flat["message_id"], differing))
        # Exact repeats of an edge row are copies of one mail filed in several folders (a twin is named as such).
        dup = flat.astype({c: STRING_DTYPE for c in flat.columns if flat[c].dtype == object}) \
            .duplicated(subset=[c for c in ("tenant_id", "message_id", EDGE_RECIPIENT_COLUMN,
                                            EDGE_RECIPIENT_TYPE_COLUMN) if c in flat], keep="first").to_numpy()
        state.pre_findings.append(("dup", dup & ~twin))
        bad_type = rtype.notna().to_numpy() & (type_code < 0)
        state.pre_findings.append(("bad_type", bad_type, rtype))
        return state


def _twin_rows(flat: pd.DataFrame, level: list, edge_parent: np.ndarray, msg_first: np.ndarray,
               reading: dict) -> tuple[np.ndarray, list, list, np.ndarray]:
    """Rows (one per recipient) whose message-level values, as validation reads them, differ from their message's
    row, a sentence per such row naming what differs, the columns that do, and each message's row.

    A message's row is its first whose time and sender validation can read, else its first: a message whose
    first row is unusable keeps its first usable one, as a message given one row per copy keeps its first
    usable copy."""
    twin = np.zeros(len(flat), dtype=bool)
    msg_row = msg_first.copy()
    if not level:
        return twin, [], [], msg_row
    # Raw text first: rows written alike agree (the common case, one groupby); only the messages whose rows are
    # written differently are read, value by value.
    written = flat[level].astype(STRING_DTYPE).groupby(edge_parent, sort=True).nunique(dropna=False).gt(1)
    if not written.to_numpy().any():
        return twin, [], [], msg_row
    suspect = written.any(axis=1).to_numpy()
    rows = np.flatnonzero(suspect[edge_parent])
    parents = edge_parent[rows]
    columns = list(written.columns[written.any()])
    given = {c: flat[c].iloc[rows].reset_index(drop=True) for c in columns}
    read = {c: _comparable(given[c], c, reading).to_numpy(dtype=object) for c in columns}
    unusable = np.zeros(len(rows), dtype=bool)
    for column in ("timestamp", "sender"):
        if column in read:
            unusable |= np.array([v is None or v.startswith(_AS_WRITTEN) for v in read[column]], dtype=bool)
    # Each message's first usable row (rows are in input order): its message-level values are the message's.
    order = np.lexsort((rows, unusable, parents))
    chosen = order[np.r_[True, parents[order][1:] != parents[order][:-1]]]
    msg_row[parents[chosen]] = rows[chosen]
    first = msg_row[parents]
    at = pd.Index(rows).get_indexer(first)  # each row's message row, within ``rows``
    reasons: dict[int, list] = {}
    differing = []
    for column in columns:
        differs = np.array([a != b for a, b in zip(read[column], read[column][at])], dtype=bool)
        if differs.any():
            differing.append(column)
        for i in np.flatnonzero(differs):
            reasons.setdefault(int(rows[i]), []).append(
                f"{column} {_shown(given[column].iloc[i])} where the message's row (row {int(first[i])}) has "
                f"{_shown(given[column].iloc[at[i]])}")
    positions = np.array(sorted(reasons), dtype=np.int64)
    twin[positions] = True
    return twin, ["; ".join(reasons[p]) for p in positions.tolist()], differing, msg_row


def _shown(value: object) -> str:
    return "none" if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) \
        else repr(value)


def _comparable(values: pd.Series, column: str, reading: dict) -> pd.Series:
    """``values`` of a message-level ``column`` as validation reads them, as text (None when missing): an instant
    in UTC, an address and its normalised display name, an enum's lower case, other text stripped. A value
    validation refuses is compared as written (stripped): only one written alike agrees with it."""
    text = _blank_to_na(values.astype(STRING_DTYPE))
    fold_plus = reading.get("fold_plus", False)
    if column in ("timestamp", "labeled_at"):
        units = reading.get("epoch_units")
        parsed = parse_timestamps(_blank_text_missing(values), timezone=reading.get("timezone"),
                                  unit=reading.get("unit"), origin=reading.get("origin", "unix"),
                                  time_range=reading.get("time_range", DEFAULT_TIME_RANGE),
                                  earlier_unit=units.get(column) if units else None).values
        read = pd.Series([t.isoformat() if pd.notna(t) else None for t in parsed], dtype=object)
    elif column == "sender":
        parsed = parse_addresses(text.reset_index(drop=True), fold_plus=fold_plus)
        names = normalise_display_names(parsed.display_name)
        read = pd.Series([f"{a}\0{n}" if pd.notna(a) and pd.notna(n) else (a if pd.notna(a) else None)
                          for a, n in zip(parsed.address, names)], dtype=object)
    elif column == "sender_display_name":
        read = normalise_display_names(text).astype(object)
    elif column in ("reply_to", "return_path"):
        frame = pd.DataFrame({column: text})
        read = _optional_address(frame, column, fold_plus, pd.Series([None] * len(text), dtype=STRING_DTYPE))
        read = read.astype(object)
    elif column in _ENUMS:
        read = text.str.lower().astype(object)
    else:
        read = text.astype(object)
    read = read.reset_index(drop=True).where(lambda r: r.notna(), None)
    unread = read.isna().to_numpy() & text.notna().to_numpy()
    read[unread] = [_AS_WRITTEN + v for v in text[unread]]
    return read


#: Marks a value validation cannot read, compared as written (see :func:`_comparable`).
_AS_WRITTEN = "\0as written\0"


# --- columns -----------------------------------------------------------------------------------

def _required_text(msgs: pd.DataFrame, column: str, findings: _Findings, fix: str) -> pd.Series:
    text, inexact = id_text(msgs[column])
    findings.add(inexact, column, ReasonCode.INVALID_VALUE, msgs[column][inexact],
                 "write the ids as text: a float column (an integer column holding a missing value, as pandas "
                 "reads it) holds no fraction of an id, nor every integer beyond 2**53")
    missing = text.isna().to_numpy() & ~inexact
    findings.add(missing, column, ReasonCode.MISSING_VALUE, msgs[column][missing], fix)
    return text


def _timestamp_problems(parsed, raw: pd.Series, column: str, findings: _Findings, only: np.ndarray | None = None):
    reasons = parsed.reason
    for code in dict.fromkeys(r for r in reasons if r is not None):
        # Compare by identity: numpy would compare the str-valued enum as a plain string array.
        mask = np.fromiter((r is code for r in reasons), dtype=bool, count=len(reasons))
        if only is not None:
            mask &= only
        findings.add(mask, column, code, raw[mask], parsed.fixes[code])


def _timestamps(given, column, findings, timezone, unit, origin, time_range, epoch_units=None, *, raw=None,
                only=None) -> pd.Series:
    """``given`` parsed, its problems (named with the ``raw`` values, at rows ``only``) added to ``findings``; with
    ``epoch_units``, read in the unit an earlier chunk's numbers decided, or deciding it."""
    earlier = epoch_units.get(column) if epoch_units is not None else None
    parsed = parse_timestamps(given, timezone=timezone, unit=unit, origin=origin, time_range=time_range,
                              earlier_unit=earlier)
    if epoch_units is not None and parsed.judged_unit is not None:
        epoch_units.setdefault(column, parsed.judged_unit)
    _timestamp_problems(parsed, given if raw is None else raw, column, findings, only)
    return parsed.values


def _address_problems(parsed, raw: pd.Series, column: str, findings: _Findings, *, level="message",
                      usable: np.ndarray | None = None, reason=ReasonCode.INVALID_ADDRESS,
                      fix="correct the addresses, or drop those rows") -> None:
    bad = parsed.invalid if usable is None else parsed.invalid & usable
    if not bad.any():
        return
    problems = pd.Series(parsed.unique_problem[parsed.codes[bad]], dtype=STRING_DTYPE)
    values = raw[bad]
    detail = "; ".join(f"{k} ({v})" if v > 1 else k for k, v in problems.value_counts().items())
    findings.add(np.flatnonzero(bad), column, reason, values, fix, level=level, detail=detail,
                 messages=[f"{v!r}: {p}" for v, p in zip(values, problems)])


def _enum(msgs: pd.DataFrame, column: str, vocabulary, dtype, findings: _Findings) -> pd.Series:
    if column not in msgs:
        return pd.Series(pd.Categorical([None] * len(msgs), dtype=dtype), index=msgs.index)
    # Factorise first: the vocabulary check and the category codes then cost one
    # lookup per distinct value, not per row.
    given = msgs[column]
    if isinstance(given.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(given.cat.categories):
        # Categories of text (Parquet written from pandas reads back as such) are a factorisation already: their
        # codes serve, where the rows' text was made, then hashed (unused categories are looked up, never used).
        codes, uniques = given.cat.codes.to_numpy(dtype=np.int64), given.cat.categories
    else:
        codes, uniques = pd.factorize(given.astype(STRING_DTYPE), use_na_sentinel=True)
    normalised = pd.Series(uniques, dtype=STRING_DTYPE).str.strip().str.lower()
    category = pd.Index(dtype.categories).get_indexer(normalised).astype(np.int64)
    blank = (normalised == "").to_numpy(dtype=bool, na_value=False)
    present = codes >= 0
    row_category = np.full(len(codes), -1, dtype=np.int64)
    row_blank = np.zeros(len(codes), dtype=bool)
    row_category[present] = category[codes[present]]
    row_blank[present] = blank[codes[present]]
    bad = present & (row_category < 0) & ~row_blank
    allowed = ", ".join(repr(v) for v in vocabulary)
    findings.add(bad, column, ReasonCode.INVALID_VALUE, given[bad],
                 f"use one of {allowed} or leave it empty")
    return pd.Series(pd.Categorical.from_codes(row_category, dtype=dtype), index=msgs.index)


def _optional_address(msgs, column, fold_plus, missing_text: pd.Series) -> pd.Series:
    """``reply_to`` or ``return_path`` normalised: an address, or an address list (RFC 5322 lets Reply-To hold
    several) as its normalised addresses joined by ``", "``; a value that holds no address list kept as given.

    No signal reads these columns, and the sender writes them: refusing a message for one (as for an invalid
    sender) would let any message be kept out of scoring, and a strict batch fail, by its Reply-To alone. So
    they are treated as the subject and the display name are: never a finding, never lost.

    Examples
    --------
    >>> from commgraph.graph._schema import STRING_DTYPE
    >>> raw = pd.DataFrame({"reply_to": ["Ann <Ann@X.com>", "ceo@evil.com, Pay <payroll@evil.com>", "<>", "a@",
    ...                                  " ", None]})
    >>> _optional_address(raw, "reply_to", False, pd.Series([None] * 6, dtype=STRING_DTYPE)).tolist()
    ['ann@x.com', 'ceo@evil.com, payroll@evil.com', nan, 'a@', nan, nan]
    """
    if column not in msgs:
        return missing_text
    raw = _blank_to_na(msgs[column])
    # "<>" is the null reverse path of bounces, not an address.
    raw = raw.mask(raw == "<>")
    parsed = parse_addresses(raw, fold_plus=fold_plus)
    # A value with a separator may be a list, read as recipients are (a comma outside quotes separates addresses:
    # read whole, "a@x.com, B <b@y.com>" would be b@y.com named "a@x.com, B"), and so is one the parser refuses.
    # (a separator inside a quoted name, '"Doe, J" <r@v.com>', separates nothing: such values, common, are read once)
    unquoted = raw.str.replace(r'"(?:[^"\\]|\\.)*"', "", regex=True)
    separated = unquoted.str.contains("[,;:]", regex=True).to_numpy(dtype=bool, na_value=False)
    rows = np.flatnonzero(separated | parsed.invalid)
    if not len(rows):  # the common case: one address per value, or none
        return parsed.address
    parent, entries = split_address_lists(raw.iloc[rows].reset_index(drop=True))
    entry = parse_addresses(entries.reset_index(drop=True), fold_plus=fold_plus)
    entry_address = entry.address.to_numpy(dtype=object)
    n_entries = np.bincount(parent, minlength=len(rows))
    n_invalid = np.bincount(parent, weights=entry.invalid, minlength=len(rows))
    # A value holding entries that are no address (or none) stays as given: it names no address this column
    # could hold. One of addresses only becomes their list, each address once, in order.
    read = raw.iloc[rows].to_numpy(dtype=object)
    listed = (n_entries > 0) & (n_invalid == 0)
    if listed.any():
        of_list = listed[parent]
        for row, group in pd.Series(entry_address[of_list]).groupby(parent[of_list], sort=False):
            read[row] = ", ".join(dict.fromkeys(group))
    address = parsed.address.to_numpy(dtype=object)
    address[rows] = read
    return pd.Series(address, index=raw.index, dtype=STRING_DTYPE)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"


def _sender_ip(msgs, findings, missing_text: pd.Series) -> pd.Series:
    if "sender_ip" not in msgs:
        return missing_text
    raw = _blank_to_na(msgs["sender_ip"])
    # Dotted-quad IPv4 is checked in Arrow's regex engine; only the rest (IPv6, oddities)
    # goes through the standard library, once per distinct value.
    dotted = pc.match_substring_regex(pa.array(raw.array), _IPV4).fill_null(False).to_numpy(zero_copy_only=False)
    dotted = np.asarray(dotted, dtype=bool)
    rest = raw.where(~dotted)
    ok = map_unique_strings(rest, _is_ip, dtype="boolean")
    bad = (rest.notna() & ~ok.fillna(True)).to_numpy(dtype=bool)
    findings.add(bad, "sender_ip", ReasonCode.INVALID_VALUE, msgs["sender_ip"][bad],
                 "give an IPv4 or IPv6 address, or leave it empty")
    return raw.where(~bad).astype(STRING_DTYPE)


@dataclass
class _Edges:
    parent: np.ndarray          # message position
    parsed: ParsedAddresses     # the recipient of each edge
    rtype: np.ndarray           # int8 codes, -1 unknown
    repeated: np.ndarray        # per message: valid entries merged into an earlier one (same recipient)


def _recipients(state: _State, findings: _Findings, parsed: ParsedAddresses) -> _Edges:
    raw = state.edge_raw.reset_index(drop=True)
    usable_entry = np.ones(len(raw), dtype=bool)
    for item in state.pre_findings:
        if item[0] == "dup":
            dup = item[1]
            findings.add(dup, EDGE_RECIPIENT_COLUMN, ReasonCode.DUPLICATE_EDGE, raw[dup],
                         "nothing to do if these rows are copies of one mail filed in several folders (the first "
                         "is kept)", level="edge")
            usable_entry &= ~dup
        elif item[0] == "bad_type":
            bad, rtype = item[1], item[2]
            findings.add(bad, EDGE_RECIPIENT_TYPE_COLUMN, ReasonCode.INVALID_VALUE, rtype[bad],
                         "use 'to', 'cc' or 'bcc', or leave it empty", level="edge")
            usable_entry &= ~bad
        elif item[0] == "twin":
            twin, sentences, ids, differing = item[1], item[2], item[3], item[4]
            findings.add(twin, "message_id", ReasonCode.DUPLICATE_MESSAGE_ID, ids[twin],
                         "nothing to do if this row is another copy of the mail (the message's row, its first "
                         "usable one, and those agreeing with it are kept); otherwise give distinct messages "
                         "distinct ids, or correct the row", level="edge", messages=sentences,
                         detail=f"rows whose {', '.join(differing)} differ from their message's row's")
            usable_entry &= ~twin
    for code, column in enumerate(state.edge_columns):
        # Name the column the bad address came from (to, cc, bcc, recipients or recipient).
        _address_problems(parsed, raw, column, findings, level="edge", usable=usable_entry & (state.edge_column == code),
                          reason=ReasonCode.INVALID_RECIPIENT,
                          fix="correct the address; the message is kept with its other recipients")
    keep = usable_entry & (parsed.key != 0)
    everything = keep.all()
    parent = state.edge_parent if everything else state.edge_parent[keep]
    key = parsed.key if everything else parsed.key[keep]
    rtype = state.edge_type if everything else state.edge_type[keep]
    chosen = _one_edge_per_pair(parent, key, rtype)
    n_messages = len(state.msgs)
    # Messages whose recipients are all gone. (Reordering entries changes no count.)
    had_entries = np.bincount(state.edge_parent, minlength=n_messages) > 0
    has_edges = np.bincount(parent if chosen is None or len(chosen) == len(parent) else parent[chosen],
                            minlength=n_messages) > 0
    if state.layout == "edge":
        # A row of one recipient with the recipient missing, in a message kept with its other rows'
        # recipients: set aside with its reason, never dropped unseen (a message left with none is refused
        # below).
        blank = usable_entry & _blank_to_na(raw).isna().to_numpy() & has_edges[state.edge_parent]
        findings.add(blank, EDGE_RECIPIENT_COLUMN, ReasonCode.MISSING_VALUE, raw[blank],
                     "fill the recipient or drop those rows; the message is kept with its other recipients",
                     level="edge")
    src = "recipients" if state.layout == "list" else (
        "/".join(state.edge_columns) if state.layout == "typed" else "recipient")
    findings.add(~had_entries, src, ReasonCode.MISSING_VALUE, [None] * int((~had_entries).sum()),
                 "every message needs at least one recipient; fill them or drop those rows")
    findings.add(had_entries & ~has_edges, src, ReasonCode.NO_VALID_RECIPIENTS,
                 [None] * int((had_entries & ~has_edges).sum()),
                 "correct the recipient addresses, or drop those rows")
    if chosen is None:  # nothing repeated or reordered: the usable entries are the edges
        return _Edges(parent=parent, parsed=parsed if everything else parsed.subset(np.flatnonzero(keep)),
                      rtype=rtype, repeated=np.zeros(n_messages, dtype=np.int32))
    repeated = (np.bincount(parent, minlength=n_messages)
                - np.bincount(parent[chosen], minlength=n_messages)).astype(np.int32)
    return _Edges(parent=parent[chosen], parsed=parsed.subset(np.flatnonzero(keep)[chosen]), rtype=rtype[chosen],
                  repeated=repeated)


def _one_edge_per_pair(parent: np.ndarray, key: np.ndarray, rtype: np.ndarray) -> np.ndarray | None:
    """Positions of the entries that become edges, in message order then entry order.

    One edge per (message, recipient): the most visible type wins (to > cc > bcc >
    unknown). ``None`` when every entry is an edge and already in order, the common
    case, which then costs no index array.
    """
    # Repeats are rare, so a hash of the pair finds candidates and only those are sorted,
    # comparing the exact (message, key) pair. Built and sorted in place: one 8-byte array.
    pair_hash = parent.astype(np.uint64)
    pair_hash *= np.uint64(0x9E3779B97F4A7C15)
    pair_hash ^= key
    pair_hash.sort()
    repeats = np.unique(pair_hash[1:][pair_hash[1:] == pair_hash[:-1]])
    del pair_hash
    chosen = None
    if len(repeats):
        pair_hash = key ^ (parent.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        repeated = pd.Series(pair_hash).isin(repeats).to_numpy()
        del pair_hash
        rows = np.flatnonzero(repeated)
        rank = np.where(rtype[rows] < 0, len(RECIPIENT_TYPES), rtype[rows])
        order = rows[np.lexsort((rows, rank, key[rows], parent[rows]))]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (parent[order][1:] != parent[order][:-1]) | (key[order][1:] != key[order][:-1])
        chosen = np.sort(np.concatenate([np.flatnonzero(~repeated), order[first]]))
    chosen_parent = parent if chosen is None else parent[chosen]
    if (chosen_parent[1:] < chosen_parent[:-1]).any():
        order = np.argsort(chosen_parent, kind="stable")  # message order, then entry order
        chosen = order if chosen is None else chosen[order]
    return chosen


def _direction(given: pd.Series, tenant: pd.Series, sender: ParsedAddresses, edges: _Edges,
               findings: _Findings, configs: Mapping[str, TenantConfig]) -> tuple[pd.Series, dict]:
    """The direction column filled in, and each tenant's own domains used (configured or inferred)."""
    need = (given.isna() & ~pd.Series(findings.rejected, index=given.index)).to_numpy()
    if not need.any():
        return given, {t: c.own_domains for t, c in configs.items()}
    tenant_codes, tenants = pd.factorize(tenant, use_na_sentinel=True)
    tenants = [str(t) for t in tenants]
    edge_tenant = tenant_codes[edges.parent]
    live_edge = ~findings.rejected[edges.parent]
    needed = set(np.unique(tenant_codes[need & (tenant_codes >= 0)]).tolist())
    # A tenant configured without own domains (for its name or VIP addresses) has them inferred as one not
    # configured at all: with none, every message of its that leaves direction empty was refused.
    unconfigured = sorted(t for t in (tenants[c] for c in needed) if t not in configs or not configs[t]._knows_own)
    own = {t: c.own_domains for t, c in configs.items()}
    if unconfigured:
        mask = live_edge & np.isin(edge_tenant, [tenants.index(t) for t in unconfigured])
        inferred = infer_own_domains(pd.Series(np.asarray(tenants, dtype=object)[edge_tenant[mask]]),
                                     edges.parsed.subset(mask).registrable_domain().reset_index(drop=True),
                                     messages=edges.parent[mask])
        warn_inferred(inferred)
        own.update(inferred)
    sender_internal = _is_internal(tenant_codes, tenants, *sender.domain_codes(), own)
    recipient_internal = _is_internal(edge_tenant, tenants, *edges.parsed.domain_codes(), own)
    n = len(given)
    n_internal = np.bincount(edges.parent, weights=recipient_internal, minlength=n)
    n_edges = np.bincount(edges.parent, minlength=n)
    # With own domains known (configured, or read off a served snapshot), mail from outside to no own address is
    # still mail the tenant received: Bcc, a list, a forward ("To: the attacker's own address, Bcc: victims").
    # Inferred from the batch they may simply miss the tenant's domain, so such mail is refused, never guessed.
    guessed = set(unconfigured) | {t for t in tenants if t in configs and configs[t]._own_inferred}
    known = ~np.isin(tenant_codes, [tenants.index(t) for t in guessed])
    inferred_dir = np.where(sender_internal,
                            np.where(n_internal == n_edges, "internal", "outbound"),
                            np.where((n_internal > 0) | known, "inbound", None))
    undecidable = need & (inferred_dir == None)  # noqa: E711 (element-wise)
    undecidable &= n_edges > 0
    # The value is the direction's, empty; the sender's domain, what decided nothing, is said in the sentence.
    findings.add(undecidable, "direction", ReasonCode.DIRECTION_UNDECIDABLE, [None] * int(undecidable.sum()),
                 "neither the sender nor any recipient is in the tenant's own domains; give the direction column, "
                 "or configure the tenant's own_domains",
                 detail="own domains used: " + "; ".join(f"{t}: {list(d)}" for t, d in sorted(own.items())),
                 messages=[f"direction is empty and the sender's domain {d!r} is no own domain"
                           for d in sender.domain[undecidable]])
    filled = given.copy()
    fill = need & ~undecidable & (inferred_dir != None)  # noqa: E711
    filled[fill] = inferred_dir[fill]
    return filled, own


def _is_internal(tenant_codes: np.ndarray, tenants: list[str], domain_codes: np.ndarray, domains: np.ndarray,
                 own: Mapping[str, tuple[str, ...]]) -> np.ndarray:
    """Whether each (tenant, domain) is one of the tenant's domains or a subdomain of one.

    Decided once per distinct (tenant, domain) pair.
    """
    if not len(tenant_codes):
        return np.zeros(0, dtype=bool)
    present = (tenant_codes >= 0) & (domain_codes >= 0)
    pair = np.where(present, tenant_codes.astype(np.int64) * (len(domains) + 1) + domain_codes, -1)
    pair_codes, pairs = pd.factorize(pair)
    answers = np.array([
        p >= 0 and any(domains[p % (len(domains) + 1)] == o or domains[p % (len(domains) + 1)].endswith("." + o)
                       for o in own.get(tenants[p // (len(domains) + 1)], ()))
        for p in pairs], dtype=bool)
    return answers[pair_codes]


# --- output ------------------------------------------------------------------------------------

_OUTPUT_COLUMNS = ("tenant_id", "message_id", "timestamp", "sender", "sender_domain", "sender_display_name",
                   "direction", "n_recipients", "n_repeated_recipients", "reply_to", "return_path", "sender_ip",
                   *AUTH_COLUMNS, "label", "labeled_at", "subject", "sender_key")
_CONSUMED = frozenset({*_CONTRACT, "recipients", *TYPED_RECIPIENT_COLUMNS})


def _assemble(index, passthrough, rejects, state, findings, tenant, message_id, ts, sender, display, optional, edges):
    keep = ~findings.rejected
    everything = keep.all()
    kept = np.flatnonzero(keep)
    n_messages = len(keep)
    out = pd.DataFrame({
        "tenant_id": tenant.astype(STRING_DTYPE),
        "message_id": message_id.astype(STRING_DTYPE),
        "timestamp": ts,
        "sender": sender.address,
        "sender_domain": sender.registrable_domain(),
        "sender_display_name": display,
        "direction": optional["direction"],
        "n_recipients": np.bincount(edges.parent, minlength=n_messages).astype(np.int32),
        "n_repeated_recipients": edges.repeated,
        **{c: optional[c] for c in ("reply_to", "return_path", "sender_ip", *AUTH_COLUMNS, "label", "labeled_at",
                                    "subject")},
        "sender_key": sender.key,
    }, copy=False)
    # Other columns pass through as they are (extension arrays kept: no object copies).
    if passthrough:
        out = pd.concat([out, pd.DataFrame(passthrough, index=out.index, copy=False)], axis=1)
    if not everything:  # a full take of every column costs as much as building them
        out = out.iloc[kept]
        index = index[kept]
    out.index = index

    if everything:
        # Positions are unchanged: the entries' parents are the edges' message positions.
        recipients, msg_index, rtype = edges.parsed, message_index(edges.parent, n_messages), edges.rtype
    else:
        # Positions in the output, in the edges' index dtype (int32 while messages fit): the
        # per-edge gather below then yields the final column with no 64-bit copy in between.
        new_pos = message_index(np.full(n_messages, -1, dtype=np.int64), len(kept))
        new_pos[kept] = np.arange(len(kept))
        live = keep[edges.parent]
        recipients, msg_index, rtype = edges.parsed.subset(live), new_pos[edges.parent[live]], edges.rtype[live]
        del new_pos, live
    edges.parent = edges.rtype = None  # the full-length arrays, when a subset was taken above
    edge_frame = pd.DataFrame({
        "tenant_id": categorical_take(out["tenant_id"], msg_index),
        "timestamp": out["timestamp"].array.take(msg_index),
        "sender": categorical_take(out["sender"], msg_index),
        "sender_domain": categorical_take(out["sender_domain"], msg_index),
        "sender_key": out["sender_key"].to_numpy()[msg_index],
        "recipient": recipients.categorical("address"),
        "recipient_domain": recipients.categorical("registrable_domain"),
        "recipient_key": recipients.key,
        "recipient_type": pd.Categorical.from_codes(rtype, dtype=RECIPIENT_TYPE_DTYPE),
        "direction": out["direction"].array.take(msg_index),
        "message_index": message_index(msg_index, len(out)),
    }, copy=False)
    return Messages(out, edge_frame, rejects)


def _expand(state: _State, finding: _Finding) -> tuple[np.ndarray, list, list]:
    """Input row positions, values and sentences of a finding (a message may span rows)."""
    messages = finding.messages or [None] * len(finding.positions)
    if finding.level == "edge":
        return state.edge_row[finding.positions], finding.values, messages
    if state.layout != "edge":
        return state.msg_row[finding.positions], finding.values, messages
    rows, values, sentences = [], [], []
    order = np.argsort(state.edge_parent, kind="stable")
    sorted_parent = state.edge_parent[order]
    for pos, value, sentence in zip(finding.positions, finding.values, messages):
        lo, hi = np.searchsorted(sorted_parent, [pos, pos + 1])
        member_rows = state.edge_row[order[lo:hi]]
        rows.extend(member_rows.tolist())
        values.extend([value] * len(member_rows))
        sentences.extend([sentence] * len(member_rows))
    return np.asarray(rows, dtype=np.int64), values, sentences


def _problems(original, state, findings) -> list[Problem]:
    # Rows read from files are named with their file: row numbers restart in every file.
    files = original["source_file"] if "source_file" in original.columns else None
    problems = []
    for f in findings.items:
        rows, values, _ = _expand(state, f)
        problems.append(Problem(f.column, f.reason, rows=original.index[rows].tolist(), values=values,
                                fix=f.fix, detail=f.detail,
                                files=files.iloc[rows].astype(str).tolist() if files is not None else ()))
    return problems


def reject_rows(original: pd.DataFrame, positions: np.ndarray, column: str, reason: ReasonCode, values,
                fix: str, *, sentences=None, action: str = "row_rejected", numbered: bool = True) -> pd.DataFrame:
    """Reject records for input rows at ``positions``: the reject columns, then the row as given.

    ``reject_row`` is the position (``numbered=False``: missing, for records of lines that are no row of
    ``original``): labels alone cannot tell apart rows whose labels repeat.
    """
    sentences = sentences if sentences is not None else [None] * len(positions)
    base = f"{reason.value}: {fix}"
    index = original.index[positions]
    meta = pd.DataFrame({
        "reject_column": pd.array([column] * len(positions), dtype=STRING_DTYPE),
        "reject_reason": pd.array([reason.value] * len(positions), dtype=STRING_DTYPE),
        "reject_value": pd.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                  for v in values], dtype=STRING_DTYPE),
        "reject_message": pd.array([f"{s}; {base}" if s else (f"{column}={v!r}; {base}" if v is not None else base)
                                    for s, v in zip(sentences, values)], dtype=STRING_DTYPE),
        "reject_action": pd.array([action] * len(positions), dtype=STRING_DTYPE),
        "reject_row": pd.array(np.asarray(positions, dtype=np.int64) if numbered else [None] * len(positions),
                               dtype="Int64"),
    }, index=index)
    # The rows as given, but for columns named as reject columns (a previous run's, in rejects resubmitted): two
    # columns of one name would make this run's ambiguous.
    clash = [c for c in original.columns if c in REJECT_COLUMNS]
    original = original.drop(columns=clash) if clash else original
    rows = original.iloc[positions] if len(positions) else _no_rows(original)
    return pd.concat([meta, rows.set_axis(index)], axis=1)


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s columns and dtypes with no rows, in new empty arrays.

    ``frame.iloc[:0]`` would keep the input's buffers alive in the rejects, and an
    empty Arrow take concatenates the chunks first.
    """
    empty = pd.DataFrame({i: pd.array([], dtype=dtype) for i, dtype in enumerate(frame.dtypes)})
    empty.columns = frame.columns
    return empty


def _rejects(original, state, findings) -> pd.DataFrame:
    parts = []
    for f in findings.items:
        rows, values, sentences = _expand(state, f)
        dropped = f.level == "edge" and f.reason in (ReasonCode.INVALID_RECIPIENT, ReasonCode.MISSING_VALUE)
        parts.append(reject_rows(original, rows, f.column, f.reason, values, f.fix, sentences=sentences,
                                 action="value_dropped" if dropped else "row_rejected"))
    if not parts:
        return reject_rows(original, np.zeros(0, dtype=np.int64), "", ReasonCode.MISSING_VALUE, [], "")
    rejects = pd.concat(parts)
    # In input order, by position (labels may repeat); a row's problems in the order they were found.
    return rejects.iloc[np.argsort(rejects["reject_row"].to_numpy(dtype=np.int64), kind="stable")]
