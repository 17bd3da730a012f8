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
from typing import Any, Mapping

import numpy as np
import pandas as pd
from xxhash import xxh3_64_intdigest

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, CommGraphError, normalise_address
from commgraph.graph import normalise_display_name as _normalise_display_name

__all__ = ["ScalarTables", "OneMessage", "parse_one"]

_GOLDEN = 0x9E3779B97F4A7C15
_M64 = 0xFFFFFFFFFFFFFFFF
_DIRECTION = {d: i for i, d in enumerate(DIRECTIONS)}
_AUTH = {r: i for i, r in enumerate(AUTH_RESULTS)}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def mix64(a: int, b: int) -> int:
    """Scalar twin of :func:`commgraph.baselines.pair_keys` (splitmix64 finalizer over two keys)."""
    z = a ^ ((b * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _M64)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class ScalarTables:
    """Scalar probes and column reads over one snapshot view's tables.

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
    def _prepare(index: Any) -> tuple[Any, Any, int, int]:
        size = len(index.slots)
        return (memoryview(np.ascontiguousarray(index.keys)), memoryview(np.ascontiguousarray(index.slots)),
                64 - (size.bit_length() - 1), size - 1)

    def row(self, table: str, key: int) -> int:
        """Row of ``key`` in ``table``, -1 when absent."""
        probe = self._index.get(table)
        if probe is None:
            index = self.view.index(table)
            if index is None:
                return -1
            probe = self._index[table] = self._prepare(index)
        return self._probe(probe, key)

    def rows(self, table: str, keys: list[int]) -> list[int]:
        """:meth:`row` for several keys in one call (a message's recipients: one call, one loop)."""
        probe = self._index.get(table)
        if probe is None:
            if self.view.index(table) is None:
                return [-1] * len(keys)
            self.row(table, 0)  # prepares the probe
            probe = self._index[table]
        index_keys, slots, shift, mask = probe
        if not len(index_keys):
            return [-1] * len(keys)
        out = []
        for key in keys:
            slot = ((key * _GOLDEN) & _M64) >> shift
            while True:
                r = slots[slot]
                if r < 0 or index_keys[r] == key:
                    break
                slot = (slot + 1) & mask
            out.append(r)
        return out

    def pair_row(self, name: str, index: Any, key: int) -> int:
        """Row of ``key`` in another :class:`KeyIndex` (cached under ``name``)."""
        probe = self._index.get(name)
        if probe is None:
            probe = self._index[name] = self._prepare(index)
        return self._probe(probe, key)

    def list_col(self, name: str, values: np.ndarray) -> Any:
        """A memoryview of a derived array (cached under ``name``)."""
        found = self._cols.get(("__", name))
        if found is None:
            found = self._cols[("__", name)] = memoryview(np.ascontiguousarray(values))
        return found

    @staticmethod
    def _probe(probe: tuple[Any, Any, int, int], key: int) -> int:
        keys, slots, shift, mask = probe
        if not len(keys):
            return -1
        slot = ((key * _GOLDEN) & _M64) >> shift
        while True:  # linear probing, as KeyIndex lays the slots out
            r = slots[slot]
            if r < 0:
                return -1
            if keys[r] == key:
                return r
            slot = (slot + 1) & mask

    def col(self, table: str, column: str) -> Any:
        found = self._cols.get((table, column))
        if found is None:
            values = np.ascontiguousarray(self.view.column(table, column))
            found = memoryview(values) if values.ndim == 1 else values.tolist()
            self._cols[(table, column)] = found
        return found

    def bundle(self, name: str, columns: tuple[tuple[str, str], ...]) -> tuple:
        """Several columns at once (cached under ``name``): one lookup per message instead of one per column."""
        found = self._cols.get(("__bundle", name))
        if found is None:
            found = self._cols[("__bundle", name)] = tuple(self.col(t, c) for t, c in columns)
        return found

    def cached(self, name: str, build: Any) -> Any:
        """A derived structure for the scalar path, built once under ``name``."""
        found = self._cols.get(("__cached", name))
        if found is None:
            found = self._cols[("__cached", name)] = build()
        return found

    def sender_row(self, m: "OneMessage") -> int:
        """The message's sender row, probed once per message whichever provider asks first."""
        r = m.sender_row
        if r is None:
            r = m.sender_row = self.row("sender", m.sender_key)
        return r

    def domain_row(self, m: "OneMessage") -> int:
        r = m.domain_row
        if r is None:
            r = m.domain_row = self.row("sender_domain", m.sender_domain_key)
        return r

    def hours(self, table: str) -> memoryview:
        found = self._cols.get((table, "__hours"))
        if found is None:
            found = memoryview(np.ascontiguousarray(self.view.hours(table)).reshape(-1))
            self._cols[(table, "__hours")] = found
        return found


class OneMessage:
    """One message, normalised and keyed for the scalar path.

    Examples
    --------
    >>> m = parse_one({"tenant_id": "t", "message_id": "1", "timestamp": "2024-05-01T10:00:00Z",
    ...                "sender": "Ann <Ann@X.com>", "recipients": ["b@t.com", "B@t.com"]}, lambda d: d)
    >>> m.sender, m.recipients, m.hour
    ('ann@x.com', ['b@t.com'], 10)
    """

    __slots__ = ("tenant_id", "message_id", "timestamp", "hour", "sender", "sender_key", "sender_domain",
                 "sender_domain_key", "display_name_key", "direction", "spf", "dkim", "dmarc", "recipients",
                 "recipient_keys", "sender_row", "domain_row")


class _Memo:
    """A bounded memo that keeps what is used: two generations, the older dropped when the newer fills.

    A hit in the older generation is promoted, so entries in use survive a turnover; clearing
    everything at the bound instead would make every repeat address a miss again at once (a burst
    of slow calls at the tail). Lookups cost one or two dictionary probes.
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
_NAME_CACHE = _Memo(_CACHE_LIMIT)
_SENDER_CACHE = _Memo(_CACHE_LIMIT)
_RECIPIENT_CACHE = _Memo(_CACHE_LIMIT)
_ADDRESS_CACHE = _Memo(_CACHE_LIMIT)

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


def _address(raw: str) -> tuple[str | None, int]:
    """(normalised address, stable key), memoised: addresses repeat across messages."""
    found = _ADDRESS_CACHE.get(raw)
    if found is None:
        address = normalise(raw)[0]
        found = (address, xxh3_64_intdigest(address.encode("utf-8")) if address else 0)
        _ADDRESS_CACHE.put(raw, found)
    return found


def _display_name(raw: Any) -> int:
    if raw is None or raw != raw or raw == "":  # None, NaN or blank
        return 0
    found = _NAME_CACHE.get(raw)
    if found is None:
        name = _normalise_display_name(raw)  # memoised: a name costs it once
        found = (name, xxh3_64_intdigest(name.encode("utf-8")) if name else 0)
        _NAME_CACHE.put(raw, found)
    return found[1]


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
    m.sender_row = m.domain_row = None
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
    found = _SENDER_CACHE.get(raw_sender)
    if found is None:
        address, header_name = normalise(raw_sender)
        if address is None:
            raise CommGraphError(f"'sender' is not a valid address: {raw_sender!r}")
        domain = registrable(address.rpartition("@")[2])
        found = (address, xxh3_64_intdigest(address.encode("utf-8")), domain,
                 xxh3_64_intdigest(domain.encode("utf-8")), header_name)
        _SENDER_CACHE.put(raw_sender, found)
    m.sender, m.sender_key, m.sender_domain, m.sender_domain_key, header_name = found
    name = message.get("sender_display_name")
    m.display_name_key = _display_name(header_name if name is None else name)
    recipients: list[str] = []
    keys: list[int] = []
    for column in ("recipients", "to", "cc", "bcc"):
        value = message.get(column)
        if value is None or value != value:
            continue
        if isinstance(value, str):
            parsed = _RECIPIENT_CACHE.get(value)
            if parsed is None:
                parsed = [_address(raw) for raw in value.replace(",", ";").split(";") if raw.strip()]
                _RECIPIENT_CACHE.put(value, parsed)
        else:
            parsed = [_address(raw) for raw in value if raw and raw.strip()]
        for address, key in parsed:
            if address is not None and key not in keys:
                recipients.append(address)
                keys.append(key)
    if not recipients:
        raise CommGraphError("score_one needs at least one valid recipient ('recipients' or 'to'/'cc'/'bcc'); "
                             f"got {message.get('recipients', message.get('to'))!r}")
    m.recipients, m.recipient_keys = recipients, keys
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
