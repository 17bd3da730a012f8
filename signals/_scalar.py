"""The single-message path: scalar reads of the same columnar tables, no pandas or numpy per message.

A snapshot's key index is probed with Python integers (the same Fibonacci
hashing and linear probing as :class:`commgraph.baselines.KeyIndex`) and
columns are read through ``memoryview``s of the snapshot's arrays, so one
message costs a few dictionary-free probes and O(1) reads, and the memory is
the snapshot's own (shared page cache), not a per-key Python structure.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from xxhash import xxh3_64_intdigest

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, CommGraphError, normalise_address
from commgraph.graph import normalise_display_name as _normalise_display_name

__all__ = ["ScalarTables", "OneMessage", "parse_one", "find", "mix64"]

_GOLDEN = 0x9E3779B97F4A7C15
_M64 = 0xFFFFFFFFFFFFFFFF
_DIRECTION = {d: i for i, d in enumerate(DIRECTIONS)}
_AUTH = {r: i for i, r in enumerate(AUTH_RESULTS)}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
# Every key absent: an index of eight empty slots (a cold start, or a derived index with no keys).
_EMPTY_PROBE = (memoryview(np.zeros(0, np.uint64)), memoryview(np.full(8, -1, np.int32)), 61, 7)


def mix64(a: int, b: int) -> int:
    """Scalar twin of :func:`commgraph.baselines.pair_keys` (splitmix64 finalizer over two keys)."""
    z = a ^ ((b * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _M64)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def find(probe: tuple, key: int) -> int:
    """Row of ``key`` in a prepared index ``(keys, slots, shift, mask)``, -1 when absent.

    The layout of :class:`commgraph.baselines.KeyIndex` (Fibonacci hashing, linear
    probing), walked with Python integers over memoryviews.

    Examples
    --------
    >>> from commgraph.baselines import KeyIndex
    >>> index = KeyIndex.build(np.array([42, 7], dtype=np.uint64))
    >>> probe = ScalarTables.prepare(index)
    >>> find(probe, 7), find(probe, 8)
    (1, -1)
    """
    keys, slots, shift, mask = probe
    slot = ((key * _GOLDEN) & _M64) >> shift
    r = slots[slot]
    while r >= 0 and keys[r] != key:
        slot = (slot + 1) & mask
        r = slots[slot]
    return r


class ScalarTables:
    """Scalar probes and column reads over one snapshot view's tables (memoryviews, made once).

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> from commgraph.graph import stable_key
    >>> from commgraph.signals._view import SnapshotView
    >>> t = ScalarTables(SnapshotView(_example()))
    >>> t.row("sender", stable_key("ann@vendor.com")), t.row("sender", 12345)
    (1, -1)
    >>> t.col("sender", "n_messages")[1]
    2
    """

    def __init__(self, view: Any):
        self.view = view
        self._index: dict[str, tuple[Any, Any, int, int]] = {}
        self._cols: dict[tuple[str, str], Any] = {}

    @staticmethod
    def prepare(index: Any) -> tuple[Any, Any, int, int]:
        """``(keys, slots, shift, mask)`` of a :class:`KeyIndex` for :func:`find`; an empty one for None."""
        if index is None:
            return _EMPTY_PROBE
        size = len(index.slots)
        return (memoryview(np.ascontiguousarray(index.keys)), memoryview(np.ascontiguousarray(index.slots)),
                64 - (size.bit_length() - 1), size - 1)

    def probe(self, table: str) -> tuple[Any, Any, int, int]:
        """The prepared index of a table (every key absent for a cold start)."""
        found = self._index.get(table)
        if found is None:
            found = self._index[table] = self.prepare(self.view.index(table))
        return found

    def probe_of(self, name: str, index: Any) -> tuple[Any, Any, int, int]:
        """The prepared form of a derived :class:`KeyIndex` (cached under ``name``)."""
        found = self._index.get(name)
        if found is None:
            found = self._index[name] = self.prepare(index)
        return found

    def row(self, table: str, key: int) -> int:
        """Row of ``key`` in ``table``, -1 when absent."""
        return find(self.probe(table), key)

    def col(self, table: str, column: str) -> Any:
        """A memoryview of a numeric column (timestamps as int64 ns)."""
        found = self._cols.get((table, column))
        if found is None:
            found = self._cols[(table, column)] = memoryview(np.ascontiguousarray(self.view.column(table, column)))
        return found

    def array(self, name: str, values: np.ndarray) -> Any:
        """A memoryview of a derived array (cached under ``name``)."""
        found = self._cols.get(("__", name))
        if found is None:
            found = self._cols[("__", name)] = memoryview(np.ascontiguousarray(values))
        return found

    def hours(self, table: str) -> memoryview:
        """A table's (rows, 24) hour histogram, flat: row ``r`` hour ``h`` at ``r * 24 + h``."""
        return self.array(f"{table}.hours", np.ascontiguousarray(self.view.hours(table)).reshape(-1))


class OneMessage:
    """One message, normalised and keyed for the scalar path.

    Examples
    --------
    >>> m = parse_one({"tenant_id": "t", "message_id": "1", "timestamp": "2024-05-01T10:00:00Z",
    ...                "sender": "Ann <Ann@X.com>", "recipients": ["b@t.com", "B@t.com"]}, lambda d: d)
    >>> m.sender, m.recipients, m.hour
    ('ann@x.com', ('b@t.com',), 10)
    """

    __slots__ = ("tenant_id", "message_id", "timestamp", "hour", "sender", "sender_key", "sender_domain",
                 "sender_domain_key", "display_name_key", "direction", "spf", "dkim", "dmarc", "recipients",
                 "recipient_keys")


class _Memo:
    """A bounded memo that keeps what is used: two generations, the older dropped when the newer fills.

    A hit in the older generation is promoted, so entries in use survive a turnover; clearing
    everything at the bound instead would make every repeat address a miss again at once (a burst
    of slow calls at the tail). Lookups cost one or two dictionary probes.

    Values are atoms (``str``, ``int``), never tuples: a dictionary holding only atoms is not
    tracked by the cyclic garbage collector, so a first sighting adds nothing the collector must
    later visit. Tuples there made every new address a tracked allocation, and the collections
    they triggered (about 40 us each, one per ~250 new addresses) were a third of the latency tail.
    """

    __slots__ = ("new", "old", "limit")

    def __init__(self, limit: int):
        self.new: dict = {}
        self.old: dict = {}
        self.limit = limit

    def get(self, key: Any) -> Any:
        found = self.new.get(key)
        if found is None:
            found = self.old.get(key)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: Any, value: Any) -> None:
        if len(self.new) >= self.limit:
            self.old, self.new = self.new, {}
        self.new[key] = value


_CACHE_LIMIT = 1 << 16
_NAME_CACHE = _Memo(_CACHE_LIMIT)  # raw display name -> key of its normalised form (0: none)
_SENDER_CACHE = _Memo(_CACHE_LIMIT)  # raw sender -> normalised address
_HEADER_NAME_CACHE = _Memo(_CACHE_LIMIT)  # raw sender not in normalised form -> its display name ("": none)
_RECIPIENT_CACHE = _Memo(_CACHE_LIMIT)  # raw recipient string -> its distinct valid addresses, ";"-joined
_ADDRESS_CACHE = _Memo(_CACHE_LIMIT)  # raw address -> normalised address ("" when invalid)

# A bare address already in the form normalise_address gives (ASCII letters, digits and ``._+-``
# in the local part; host-name labels as the graph layer checks them, at least two; no display
# name, comment, space or trailing dot), up to upper case. For such a string normalise_address
# returns ``(raw.lower(), None, None)`` whenever it is at most 254 characters: matching it skips
# the general parser, the common case for machine-written metadata.
_LABEL = r"[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?"
_BARE = re.compile(rf"[a-zA-Z0-9._+\-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
_MAX_ADDRESS = 254


def normalise(raw: str) -> tuple[str | None, str | None]:
    """(address, raw display name) as :func:`commgraph.graph.normalise_address` gives them.

    Examples
    --------
    >>> normalise("Ann.Lee@Example.COM"), normalise('"Ann" <ann@x.com>'), normalise("a b@c.com")
    (('ann.lee@example.com', None), ('ann@x.com', 'Ann'), (None, None))
    """
    if len(raw) <= _MAX_ADDRESS and _BARE.fullmatch(raw):
        return raw.lower(), None
    address, name, _ = normalise_address(raw)
    return address, name


def _key(text: str) -> int:
    """The stable key of a normalised string (XXH3-64 of its UTF-8, as :func:`commgraph.graph.stable_key`)."""
    return xxh3_64_intdigest(text.encode("utf-8"))


def _address(raw: str) -> str:
    """The normalised address of ``raw``, "" when it is not a valid one; memoised: addresses repeat."""
    found = _ADDRESS_CACHE.get(raw)
    if found is None:
        found = normalise(raw)[0] or ""
        _ADDRESS_CACHE.put(raw, found)
    return found


_RECIPIENT_COLUMNS = ("recipients", "to", "cc", "bcc")


def _distinct(addresses: Iterable[str]) -> tuple[str, ...]:
    """The valid addresses (non-empty), each once, in order."""
    return tuple(dict.fromkeys(a for a in addresses if a))


def _recipient_list(value: Any) -> tuple[str, ...]:
    """One recipient column's distinct valid addresses; for a string memoised as one string (see :class:`_Memo`)."""
    if isinstance(value, str):
        found = _RECIPIENT_CACHE.get(value)
        if found is None:
            found = ";".join(_distinct(_address(raw) for raw in value.replace(",", ";").split(";") if raw.strip()))
            _RECIPIENT_CACHE.put(value, found)
        return tuple(found.split(";")) if found else ()
    return _distinct(_address(raw) for raw in value if raw and raw.strip())


def _display_name(raw: Any) -> int:
    """The stable key of a normalised display name, 0 for none; memoised per raw name."""
    if raw is None or raw != raw or raw == "":  # None, NaN or blank
        return 0
    found = _NAME_CACHE.get(raw)
    if found is None:
        name = _normalise_display_name(raw)
        found = _key(name) if name else 0
        _NAME_CACHE.put(raw, found)
    return found


def _timestamp_ns(value: Any) -> int:
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None:
            raise CommGraphError(f"'timestamp' must be timezone-aware; got {value!r}")
        return int(value.value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise CommGraphError(f"'timestamp' must be timezone-aware; got {value!r}")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(value, str):
        return _timestamp_ns(_dt.datetime.fromisoformat(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)  # nanoseconds since the epoch
    raise CommGraphError(f"'timestamp' must be a timezone-aware datetime, an ISO 8601 string or int nanoseconds; "
                         f"got {value!r}")


def parse_one(message: Mapping[str, Any], registrable: Any, is_own: Any = None) -> OneMessage:
    """Normalise and key one message mapping (the contract's columns).

    ``registrable`` maps a domain to its registrable domain (memoised by the
    caller); ``is_own(tenant_id, domain)`` says whether a domain is one of the
    tenant's, used to derive ``direction`` when the message does not say.
    """
    m = OneMessage()
    try:
        m.tenant_id = message["tenant_id"]
        raw_sender = message["sender"]
        ts = message["timestamp"]
    except KeyError as exc:
        raise CommGraphError(f"score_one needs the column {exc.args[0]!r}; required: 'tenant_id', 'message_id', "
                             "'timestamp', 'sender', and 'recipients' (or 'to'/'cc'/'bcc')") from None
    m.message_id = message.get("message_id")
    m.timestamp = _timestamp_ns(ts)
    m.hour = (m.timestamp // 3_600_000_000_000) % 24
    address = _SENDER_CACHE.get(raw_sender)
    if address is None:
        address, header_name = normalise(raw_sender)
        if address is None:
            raise CommGraphError(f"'sender' is not a valid address: {raw_sender!r}")
        _SENDER_CACHE.put(raw_sender, address)
        if raw_sender != address:
            _HEADER_NAME_CACHE.put(raw_sender, header_name or "")
    elif raw_sender == address:  # a bare normalised address (the common case): no display name in it
        header_name = None
    else:  # each memo stands alone: one may have dropped an entry the other kept
        header_name = _HEADER_NAME_CACHE.get(raw_sender)
        if header_name is None:
            header_name = normalise(raw_sender)[1] or ""
            _HEADER_NAME_CACHE.put(raw_sender, header_name)
        header_name = header_name or None
    domain = registrable(address.rpartition("@")[2])
    # Keys hashed in line (cheaper than a memo probe, and than a call to _key).
    m.sender, m.sender_key = address, xxh3_64_intdigest(address.encode("utf-8"))
    m.sender_domain, m.sender_domain_key = domain, xxh3_64_intdigest(domain.encode("utf-8"))
    name = message.get("sender_display_name")
    m.display_name_key = _display_name(header_name if name is None else name)
    recipients = None
    for column in _RECIPIENT_COLUMNS:
        value = message.get(column)
        if value is None or value != value:
            continue
        found = _recipient_list(value)
        # Several columns: one recipient list, each address once.
        recipients = found if recipients is None else _distinct(recipients + found)
    if not recipients:
        raise CommGraphError("score_one needs at least one valid recipient ('recipients' or 'to'/'cc'/'bcc'); "
                             f"got {message.get('recipients', message.get('to'))!r}")
    m.recipients, m.recipient_keys = recipients, tuple([xxh3_64_intdigest(r.encode("utf-8")) for r in recipients])
    direction = message.get("direction")
    if direction is None or direction != direction:
        # As validation derives it: from the tenant's own domains (subdomains included).
        tenant = m.tenant_id
        sender_own = is_own(tenant, m.sender.rpartition("@")[2]) if is_own is not None else False
        all_own = is_own is not None and all(is_own(tenant, r.rpartition("@")[2]) for r in recipients)
        direction = ("internal" if all_own else "outbound") if sender_own else "inbound"
    m.direction = _DIRECTION.get(direction, -1)
    get = _AUTH.get
    m.spf = get(message.get("spf"), -1)
    m.dkim = get(message.get("dkim"), -1)
    m.dmarc = get(message.get("dmarc"), -1)
    return m
