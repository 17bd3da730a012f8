"""The single-message path: scalar reads of the same columnar tables, no pandas or numpy per message.

A snapshot's key index is probed with Python integers (the same Fibonacci
hashing and linear probing as :class:`commgraph.baselines.KeyIndex`) and
columns are read through ``memoryview``s of the snapshot's arrays, so one
message costs a few dictionary-free probes and O(1) reads, and the memory is
the snapshot's own (shared page cache), not a per-key Python structure.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from xxhash import xxh3_64_intdigest

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, CommGraphError, ConfigError, normalise_address
from commgraph.graph import normalise_display_name as _normalise_display_name
from commgraph.graph._addresses import _split_quoted
from commgraph.graph._schema import OPTIONAL_COLUMNS
from commgraph.graph._tenants import may_be_own_domain

from ._scalar_fields import _as_text, _enum, _is_missing, _required_text, text_value, timestamp_ns

__all__ = ["ScalarTables", "OneMessage", "parse_one", "declared_columns", "find", "mix64"]

_GOLDEN = 0x9E3779B97F4A7C15
_M64 = 0xFFFFFFFFFFFFFFFF
_DIRECTION = {d: i for i, d in enumerate(DIRECTIONS)}
_AUTH = {r: i for i, r in enumerate(AUTH_RESULTS)}
# Every key absent: an index of eight empty slots (a cold start, or a derived index with no keys).
_EMPTY_PROBE = (memoryview(np.zeros(0, np.uint64)), memoryview(np.full(8, -1, np.int32)), 61, 7)
# A message's declared columns when no provider declares any: one shared, read-only mapping.
_NO_COLUMNS: Mapping[str, Any] = MappingProxyType({})


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

    ``columns`` maps each message column that a provider declares it reads
    (``SignalProvider.message_columns``) to its value as the message gives it
    (:func:`declared_columns`); :meth:`Scorer.score_one` sets it before it
    calls a ``compute_one`` other than the built-ins' (empty when no provider
    declares a column).

    Examples
    --------
    >>> m = parse_one({"tenant_id": "t", "message_id": "1", "timestamp": "2024-05-01T10:00:00Z",
    ...                "sender": "Ann <Ann@X.com>", "recipients": ["b@t.com", "B@t.com"]}, lambda d: d)
    >>> m.sender, m.recipients, m.hour, m.display_name
    ('ann@x.com', ('b@t.com',), 10, 'Ann')

    ``own_domains`` are the tenant's own domains as the scorer is configured
    (:meth:`Scorer.score_one` sets them; empty from :func:`parse_one`): the
    look-alike check compares with them, as the batch path with
    :attr:`SignalBatch.own_domains`.
    """

    __slots__ = ("tenant_id", "message_id", "timestamp", "hour", "sender", "sender_key", "sender_domain",
                 "sender_domain_key", "display_name", "display_name_key", "direction", "spf", "dkim", "dmarc",
                 "recipients", "recipient_keys", "columns", "own_domains")


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
_NORMALISED_CACHE = _Memo(_CACHE_LIMIT)  # raw display name -> its normalised form ("": none)

# A bare address already in the form normalise_address gives (ASCII letters, digits and ``._+-``
# in the local part; host-name labels as the graph layer checks them, at least two, the last not a
# number, none in punycode, which it checks as IDNA; no display name, comment, space or trailing dot),
# up to upper case. For such a string normalise_address returns ``(raw.lower(), None, None)`` whenever
# it is at most 254 characters: matching it skips the general parser, the common case for
# machine-written metadata.
_LABEL = r"(?![xX][nN]--)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?"
_BARE = re.compile(rf"[a-zA-Z0-9._+\-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
_MAX_ADDRESS = 254


def normalise(raw: str) -> tuple[str | None, str | None]:
    """(address, raw display name) as :func:`commgraph.graph.normalise_address` gives them.

    Examples
    --------
    >>> normalise("Ann.Lee@Example.COM"), normalise('"Ann" <ann@x.com>'), normalise("a b@c.com")
    (('ann.lee@example.com', None), ('ann@x.com', 'Ann'), (None, None))
    """
    if len(raw) <= _MAX_ADDRESS and _BARE.fullmatch(raw) and not raw.rpartition(".")[2].isdigit():
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


# --- values as validation reads them ----------------------------------------------------------
# Each rule below is the scalar twin of the one :func:`commgraph.graph.validate` applies to a
# column, so that score_one(m) equals score(DataFrame([m])) or raises where validation refuses m.

_TYPED_COLUMNS = ("to", "cc", "bcc")
_LIST_COLUMNS = ("recipients",)
# A list holding a quote, an angle bracket or a comment may hide separators inside display names, and
# a colon starts a group: those go to the graph layer's quote-aware splitter; the rest split at every separator, each piece
# trimmed of these characters (validation's byte-level splitter does the same).
_TRIMMED = " \t\r\n"


def _entries(text: str) -> list[str]:
    """The non-blank entries of an address list, split as validation splits them."""
    if '"' in text or "<" in text or "(" in text or ":" in text:
        return [e for e in (piece.strip() for piece in _split_quoted(text)) if e]
    return [e for e in (piece.strip(_TRIMMED) for piece in text.replace(",", ";").split(";")) if e]


def _valid(raw: str, column: str) -> str:
    """The normalised address of one entry; an invalid one raises, as validation rejects its message."""
    address = _address(raw)
    if not address:
        raise CommGraphError(f"score_one: {column!r} holds an invalid address {raw!r} ({normalise_address(raw)[2]}); "
                             "correct or remove it (validation refuses the message too)")
    return address


def _distinct(addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses, each once, in order."""
    return tuple(dict.fromkeys(addresses))


def _recipient_list(value: Any, column: str) -> tuple[str, ...]:
    """One recipient column's distinct addresses; for a string memoised as one string (see :class:`_Memo`)."""
    if type(value) is str:
        found = _RECIPIENT_CACHE.get(value)
        if found is None:
            found = ";".join(_distinct(_valid(raw, column) for raw in _entries(value)))
            _RECIPIENT_CACHE.put(value, found)
        return tuple(found.split(";")) if found else ()
    if _is_missing(value):
        return ()
    if not isinstance(value, (list, tuple, np.ndarray)):
        return _recipient_list(_as_text(value), column)
    items = [_as_text(v) for v in value if not _is_missing(v)]
    if any(";" in t or "," in t or ":" in t for t in items):  # validation then splits every item as a list
        raws = [e for t in items for e in _entries(t)]
    else:
        raws = [e for e in (t.strip() for t in items) if e]
    return _distinct(_valid(raw, column) for raw in raws)


def _recipients(message: Mapping[str, Any]) -> tuple[str, ...]:
    if "to" in message or "cc" in message or "bcc" in message:
        recipients: tuple[str, ...] = ()
        for column in (*_TYPED_COLUMNS, *_LIST_COLUMNS):  # 'recipients' beside them adds untyped ones, as in validation
            value = message.get(column)
            if value is not None:
                found = _recipient_list(value, column)
                # Several columns: one recipient list, each address once.
                recipients = found if not recipients else _distinct(recipients + found)
    elif "recipients" in message:
        recipients = _recipient_list(message["recipients"], "recipients")
    else:
        raise CommGraphError("score_one needs the recipients: 'recipients' (a list, or a string separated by ';' "
                             "or ','), or 'to'/'cc'/'bcc'")
    if not recipients:
        given = {c: message[c] for c in (*_TYPED_COLUMNS, *_LIST_COLUMNS) if c in message}
        raise CommGraphError(f"score_one needs at least one recipient; got {given}")
    return recipients


def _inferred_own(recipients: tuple[str, ...], registrable: Any) -> Any:
    """Own domains as validation infers them for a tenant without any (``infer_own_domains``): a
    message counts once per domain, so every registrable recipient domain of the one message that
    may be a tenant's own (not a consumer provider, not a public suffix)."""
    own = [d for d in dict.fromkeys(registrable(r.rpartition("@")[2]) for r in recipients) if may_be_own_domain(d)]
    return lambda tenant, domain: any(domain == o or domain.endswith("." + o) for o in own)


def _derive_direction(m: OneMessage, registrable: Any, is_own: Any) -> int:
    """The direction validation derives from the tenant's own domains (subdomains included); ``is_own`` None:
    the tenant has none known, so they are inferred from the recipients."""
    known = is_own is not None
    if not known:
        is_own = _inferred_own(m.recipients, registrable)
    tenant = m.tenant_id
    n_own = sum(1 for r in m.recipients if is_own(tenant, r.rpartition("@")[2]))
    if is_own(tenant, m.sender.rpartition("@")[2]):
        return _DIRECTION["internal" if n_own == len(m.recipients) else "outbound"]
    # Own domains known: mail from outside to no own address was received all the same (Bcc, a list, a forward),
    # as validation reads it; only inferred ones may have missed the tenant's domain.
    if n_own or known:
        return _DIRECTION["inbound"]
    raise CommGraphError(f"score_one cannot derive the direction: neither the sender ({m.sender}) nor any recipient "
                         f"({', '.join(m.recipients[:5])}) is in tenant {tenant!r}'s own domains; give 'direction', or "
                         "configure the tenant's own_domains (validation refuses the message too)")


def normalised_name(raw: str) -> str:
    """A display name normalised as validation stores it (``""``: none); memoised per raw name.

    Examples
    --------
    >>> normalised_name("JANE.doe\uff20ACME.com")
    'jane.doe@acme.com'
    """
    found = _NORMALISED_CACHE.get(raw)
    if found is None:
        found = _normalise_display_name(raw) or ""
        _NORMALISED_CACHE.put(raw, found)
    return found


def _display_name(raw: Any) -> int:
    """The stable key of a normalised display name, 0 for none; memoised per raw name."""
    if raw is None:
        return 0
    found = _NAME_CACHE.get(raw)
    if found is None:
        name = _normalise_display_name(raw)
        found = _key(name) if name else 0
        _NAME_CACHE.put(raw, found)
    return found


def parse_one(message: Mapping[str, Any], registrable: Any, is_own: Any = None, own_known: Any = None,
              keys: Mapping[str, Any] | None = None) -> OneMessage:
    """:func:`_parse_one`, naming the fields whose text UTF-8 cannot hold (a lone surrogate) where encoding
    them for their keys failed."""
    try:
        return _parse_one(message, registrable, is_own, own_known, keys)
    except UnicodeEncodeError:
        from commgraph.graph._validate import _SURROGATE_WHY, first_lone_surrogate

        fields = [str(k) for k, v in message.items() if first_lone_surrogate(v)] if isinstance(message, Mapping) \
            else []
        raise CommGraphError(f"the message's {', '.join(map(repr, fields)) or 'text'} cannot be read: "
                             f"{_SURROGATE_WHY}; correct it at the source") from None


def _parse_one(message: Mapping[str, Any], registrable: Any, is_own: Any = None, own_known: Any = None,
               keys: Mapping[str, Any] | None = None) -> OneMessage:
    """Normalise and key one message mapping (the contract's columns), as validation would.

    ``registrable`` maps a domain to its registrable domain (memoised by the
    caller); ``is_own(tenant_id, domain)`` says whether a domain is one of the
    tenant's, used to derive ``direction`` when the message does not say;
    ``own_known(tenant_id)`` whether the tenant has own domains to ask about
    (default: it has when ``is_own`` is given). A tenant without them gets
    them inferred from the message's recipients, as validation infers them.
    ``keys`` maps privacy-mode tenants to their keying (:class:`TenantKeys`):
    such a tenant's message is keyed with its secret instead of XXH3.
    Raises :class:`CommGraphError` where validation would refuse the message.
    """
    if not hasattr(message, "keys"):  # a mapping of the contract's columns (a dict, a DataFrame row)
        raise ConfigError(f"score_one and explain take one message as a mapping of its columns (a dict, or a "
                          f"DataFrame row: frame.iloc[i]); got {type(message).__name__}: {message!r:.80}")
    if isinstance(message, pd.DataFrame):  # (its columns are keys too: each read as a whole column)
        if len(message) != 1:
            raise ConfigError(f"score_one and explain take one message: got a DataFrame of {len(message)} rows; "
                              "pass one row (frame.iloc[i]), or score the frame with Scorer.score")
        message = message.iloc[0]
    m = OneMessage()
    m.own_domains = ()
    try:
        m.tenant_id = _required_text(message["tenant_id"], "tenant_id", "give the tenant id (one customer organisation)")
        m.message_id = _required_text(message["message_id"], "message_id", "give every message an id")
        raw_sender = message["sender"]
        ts = message["timestamp"]
    except KeyError as exc:
        raise CommGraphError(f"score_one needs the column {exc.args[0]!r}; required: 'tenant_id', 'message_id', "
                             "'timestamp', 'sender', and 'recipients' (or 'to'/'cc'/'bcc')") from None
    m.timestamp = timestamp_ns(ts)
    m.hour = (m.timestamp // 3_600_000_000_000) % 24
    if type(raw_sender) is not str:
        raw_sender = text_value(raw_sender)
        if raw_sender is None:
            raise CommGraphError(f"score_one: 'sender' is missing (got {message['sender']!r}); fill the sender")
    address = _SENDER_CACHE.get(raw_sender)
    if address is None:
        address, header_name = normalise(raw_sender)
        if address is None:
            raise CommGraphError(f"score_one: 'sender' is not a valid address: {raw_sender!r} "
                                 f"({normalise_address(raw_sender)[2]}); correct it")
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
    # A missing or blank name falls back to the From header's, as validation fills it.
    name = text_value(message.get("sender_display_name"))
    if name is None:
        name = header_name
    # Kept as the message gives it: a privacy-mode snapshot stores no names, so explain can only show this one.
    m.display_name = name
    m.display_name_key = _display_name(name)
    recipients = _recipients(message)
    m.recipients, m.recipient_keys = recipients, tuple([xxh3_64_intdigest(r.encode("utf-8")) for r in recipients])
    if keys:  # a privacy-mode tenant served: its keys come from its secret
        tenant_keys = keys.get(m.tenant_id)
        if tenant_keys is not None:
            tenant_keys.key_message(m, name)
    direction = _enum(message, "direction", _DIRECTION)
    if direction < 0:
        known = is_own is not None and (own_known is None or own_known(m.tenant_id))
        direction = _derive_direction(m, registrable, is_own if known else None)
    m.direction = direction
    m.spf = _enum(message, "spf", _AUTH)
    m.dkim = _enum(message, "dkim", _AUTH)
    m.dmarc = _enum(message, "dmarc", _AUTH)
    return m


def declared_columns(message: Mapping[str, Any], columns: tuple[str, ...]) -> Mapping[str, Any]:
    """The values of the message columns providers declare (``message_columns``), as the message gives them.

    A column of the contract left out is None, as validation fills it with a missing value; any other is
    refused, as the batch path refuses it (``SignalBatch.message_column``). Read only for signal sets with
    providers other than the built-ins (which read none), so the built-ins' path pays nothing for it.

    Examples
    --------
    >>> declared_columns({"message_id": "1", "topic": "invoice"}, ("topic", "subject"))
    {'topic': 'invoice', 'subject': None}
    >>> declared_columns({"message_id": "1"}, ("topic",))
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.CommGraphError: score_one: the message has no column 'topic', which a provider reads ...
    """
    if not columns:
        return _NO_COLUMNS
    if isinstance(message, pd.DataFrame):  # one row (parse_one has refused more)
        message = message.iloc[0]
    absent = [c for c in columns if c not in message and c not in OPTIONAL_COLUMNS]
    if absent:
        raise CommGraphError(f"score_one: the message has no column {absent[0]!r}, which a provider reads "
                             f"(its message_columns); columns present: {list(message.keys())}")
    return {c: message.get(c) for c in columns}
