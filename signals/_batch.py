"""A batch of messages as flat numpy arrays: what providers compute over.

Message-level values (time, sender, domain, display name, authentication)
are held once per message and edge-level ones (recipient) once per edge, with
each edge's message position: sender signals are computed per message and
broadcast, which saves the lookups of every extra recipient.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from commgraph.baselines import pair_keys
from xxhash import xxh3_64_intdigest

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, KEY_ALGORITHM, CommGraphError, Messages

from ._freemail import freemail_domain_flags

__all__ = ["SignalBatch", "DIRECTION_CODES", "AUTH_CODES", "FAIL_CODES"]

# The batch hashes strings exactly as the graph layer does; a change of algorithm must show here.
assert KEY_ALGORITHM.startswith("xxh3_64(utf-8)"), KEY_ALGORITHM

DIRECTION_CODES = {d: i for i, d in enumerate(DIRECTIONS)}  # inbound 0, outbound 1, internal 2
AUTH_CODES = {r: i for i, r in enumerate(AUTH_RESULTS)}
#: Results counted as failures, as the baselines count them.
FAIL_CODES = tuple(AUTH_CODES[r] for r in ("fail", "softfail", "permerror"))


def _column(frame: pd.DataFrame, name: str) -> Any:
    """The array behind a column (numpy or extension array), or None when absent; no Series is made."""
    try:
        loc = frame.columns.get_loc(name)
    except KeyError:
        return None
    if isinstance(loc, int):
        try:
            # ``frame[name]`` builds a Series (about 10 us); a batch reads a dozen columns.
            return frame._get_column_array(loc)
        except AttributeError:  # a pandas without the private accessor
            pass
    return frame[name].array  # (also duplicated labels: as pandas decides)


def _ns(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, np.ndarray):
        values = pd.array(values)
    if getattr(values, "unit", None) != "ns":
        values = values.as_unit("ns")
    return values.asi8


_SAME_CATEGORIES: dict[int, tuple[pd.CategoricalDtype, bool]] = {}


def _codes(values: Any, categories: tuple[str, ...], n: int) -> np.ndarray:
    if values is None:
        return np.full(n, -1, np.int8)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        same = _SAME_CATEGORIES.get(id(dtype))
        if same is None or same[0] is not dtype:  # the contract's dtypes are few: decide once per dtype object
            same = (dtype, list(dtype.categories) == list(categories))
            _SAME_CATEGORIES[id(dtype)] = same
        if same[1]:
            codes = values.array.codes if isinstance(values, pd.Series) else values.codes
            return codes.astype(np.int8, copy=False)
    return pd.Categorical(values, categories=list(categories)).codes.astype(np.int8)


def _first_edges(edge_message: np.ndarray, n: int) -> np.ndarray | None:
    """Each message's first edge when the edges come grouped by message in message order, every message with
    one (as validation lays them out); None otherwise."""
    if not len(edge_message) or not _increasing(edge_message):
        return None
    new = np.empty(len(edge_message), bool)
    new[:1] = True
    np.not_equal(edge_message[1:], edge_message[:-1], out=new[1:])
    first = np.flatnonzero(new)
    # n distinct positions, increasing from 0 to n - 1: every message's
    return first if len(first) == n and edge_message[0] == 0 and edge_message[-1] == n - 1 else None


def _from_edges(categorical: pd.Categorical, edge_message: np.ndarray, n: int,
                first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per message, the code of its edges' category (every message has an edge), over the categories used.
    ``first``: each message's first edge (:func:`_first_edges`), read instead of every edge written."""
    if first is not None:
        codes = np.asarray(categorical.codes)[first].astype(np.int64)
    else:
        codes = np.empty(n, np.int64)
        codes[edge_message] = categorical.codes
    categories = np.asarray(categorical.categories, dtype=object)
    used = np.flatnonzero(np.bincount(codes, minlength=len(categories)))
    if len(used) < len(categories):
        remap = np.full(len(categories), -1, np.int64)
        remap[used] = np.arange(len(used))
        return remap[codes], categories[used]
    return codes, categories


# Stable keys of strings already hashed: display names and domains repeat across batches. Bounded
# (cleared when full), so memory stays flat whatever the traffic.
_KEY_CACHE: dict[str, int] = {}
_KEY_CACHE_LIMIT = 1 << 18


def string_keys(values: Any) -> np.ndarray:
    """XXH3-64 of the UTF-8 of each string (as :func:`commgraph.graph.stable_keys`), memoised per string."""
    cache = _KEY_CACHE
    if not isinstance(values, list) and hasattr(values, "tolist"):
        # (a pandas Index of Arrow strings makes a Python string per step when iterated: 6x the time of tolist)
        values = values.tolist()
    found = list(map(cache.get, values))  # one C-level pass: most strings were seen before
    if None in found:
        for i, v in enumerate(values):
            if found[i] is None:
                k = xxh3_64_intdigest(v.encode("utf-8"))
                if len(cache) >= _KEY_CACHE_LIMIT:
                    cache.clear()
                cache[v] = found[i] = k
    return np.array(found, dtype=np.uint64)


def _factorize(values: Any) -> tuple[np.ndarray, list | np.ndarray]:
    """(codes with -1 where missing, distinct values in order of first appearance), as ``pd.factorize``."""
    data = getattr(values, "_pa_array", None)
    if isinstance(data, pa.ChunkedArray) and (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        # Arrow strings: Arrow's dictionary encoding is the same factorisation (first-appearance
        # order, nulls apart) without pandas' per-call overhead.
        array = data.chunk(0) if data.num_chunks == 1 else data.combine_chunks()
        encoded = pc.dictionary_encode(array)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        return codes, encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def _keyed(values: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable keys of a string column (0 where missing), its codes and its distinct values."""
    if values is None:
        return np.zeros(n, np.uint64), np.full(n, -1, np.int64), np.zeros(0, object)
    codes, uniques = _factorize(values)
    # The distinct values are hashed with the stable key function itself (XXH3-64 of UTF-8,
    # as commgraph.graph.stable_keys), without a second factorisation.
    keys = string_keys(uniques)
    values = np.asarray(uniques, dtype=object) if isinstance(uniques, list) else uniques
    ok = codes >= 0
    if ok.all():
        return keys[codes], codes, values
    out = np.zeros(n, np.uint64)
    out[ok] = keys[codes[ok]]
    return out, codes, values


def _tenant_keyed(values: Any, positions: np.ndarray, tenant_keys: Any) -> np.ndarray:
    """Keys of some rows of a string column with one privacy tenant's keying (0 where missing)."""
    if values is None:
        return np.zeros(len(positions), np.uint64)
    # A batch of one tenant (the usual case) keys the whole column: no copy of its rows.
    codes, uniques = _factorize(values if len(positions) == len(values) else values[positions])
    keys = tenant_keys.keys(uniques)
    return np.where(codes >= 0, keys.take(np.maximum(codes, 0)) if len(keys) else np.uint64(0), np.uint64(0))


def _increasing(values: np.ndarray) -> bool:
    """Whether ``values`` never decrease."""
    return bool((values[1:] >= values[:-1]).all())


def _as_slice(positions: np.ndarray) -> np.ndarray | slice:
    """Positions as a slice when they are one increasing run (a tenant's rows of tenant-ordered input):
    a slice reads and writes in place (a view, a memory copy) where positions gather or scatter each value.

    Examples
    --------
    >>> _as_slice(np.array([3, 4, 5])), _as_slice(np.array([3, 5])).tolist(), _as_slice(np.array([3, 5, 4, 6]))
    (slice(3, 6, None), [3, 5], array([3, 5, 4, 6]))
    """
    if len(positions) and int(positions[-1]) - int(positions[0]) + 1 == len(positions) and bool(
            (positions[1:] > positions[:-1]).all()):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _increasing_as_slice(positions: np.ndarray) -> np.ndarray | slice:
    """:func:`_as_slice` of positions known to increase (:meth:`SignalBatch.by_tenant`'s): one run exactly when
    they span as many places as they are, told without a pass over them.

    Examples
    --------
    >>> _increasing_as_slice(np.array([3, 4, 5])), _increasing_as_slice(np.array([3, 5])).tolist()
    (slice(3, 6, None), [3, 5])
    """
    if len(positions) and int(positions[-1]) - int(positions[0]) + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


@dataclass
class SignalBatch:
    """Messages and their edges as numpy arrays (one tenant once routed).

    Attributes
    ----------
    timestamp : ndarray of int64
        Message time, nanoseconds since the epoch (UTC).
    sender_key, sender_domain_key, display_name_key : ndarray of uint64
        Stable keys (0 where the display name is missing).
    sender_domain_code : ndarray of int64
        Position of each message's sender domain in ``sender_domains``.
    sender_domains : ndarray of object
        The distinct sender domains of the batch.
    direction, spf, dkim, dmarc : ndarray of int8
        Codes over :data:`commgraph.graph.DIRECTIONS` and ``AUTH_RESULTS`` (-1: missing).
    tenant_code : ndarray of int64
        Position of each message's tenant in ``tenants``.
    edge_message : ndarray of int64
        Each edge's message position.
    recipient_key : ndarray of uint64
    frame : pandas.DataFrame
        The message rows (for providers that read other columns).
    own_domains : dict of str to tuple of str
        Each tenant's configured own domains (:attr:`Messages.configured_own_domains`:
        inferred ones are left out, as a scorer knows only configured ones):
        look-alike targets and never look-alikes.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"], "direction": "internal",
    ...     "timestamp": ["2024-01-01T00:00Z", "2024-01-01T01:00Z"], "sender": "a@t.com",
    ...     "recipients": ["b@t.com; c@t.com", "b@t.com"]}))
    >>> b = SignalBatch.from_messages(m)
    >>> b.n_messages, b.n_edges, b.edge_message.tolist(), list(b.sender_domains)
    (2, 3, [0, 0, 1], ['t.com'])
    """

    timestamp: np.ndarray
    sender_key: np.ndarray
    sender_domain_key: np.ndarray
    sender_domain_code: np.ndarray
    sender_domains: np.ndarray
    display_name_key: np.ndarray
    direction: np.ndarray
    spf: np.ndarray
    dkim: np.ndarray
    dmarc: np.ndarray
    tenant_code: np.ndarray
    tenants: list[str]
    edge_message: np.ndarray
    recipient_key: np.ndarray
    frame: pd.DataFrame = field(repr=False)
    message_rows: np.ndarray | None = field(default=None, repr=False)
    own_domains: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)
    #: What depends only on the batch's distinct sender domains, shared by its tenants' subsets (computed once
    #: per batch, not once per tenant of it).
    _per_domain: dict = field(default_factory=dict, repr=False)

    @property
    def n_messages(self) -> int:
        return len(self.timestamp)

    @property
    def n_edges(self) -> int:
        return len(self.edge_message)

    @classmethod
    def from_messages(cls, messages: Messages) -> "SignalBatch":
        """Flatten validated messages (any tenants) into arrays.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["a", "b"], "message_id": "1", "direction": "internal",
        ...     "timestamp": "2024-01-01T00:00Z", "sender": ["x@a.com", "y@b.com"], "recipients": ["z@a.com", "w@b.com"]}))
        >>> SignalBatch.from_messages(m).tenants
        ['a', 'b']
        """
        if not isinstance(messages, Messages):
            raise CommGraphError(f"signals are computed from validated Messages; got {type(messages).__name__}. "
                                 "Call commgraph.graph.validate(frame, tenants=...) first.")
        frame = messages.frame
        edges = messages.edges(message_columns=())
        n = len(frame)
        edge_message = np.asarray(_column(edges, "message_index"), dtype=np.int64)
        name_key, _, _ = _keyed(_column(frame, "sender_display_name"), n)
        edge_tenant, edge_domain = _column(edges, "tenant_id"), _column(edges, "sender_domain")
        both = n and isinstance(edge_tenant, pd.Categorical) and isinstance(edge_domain, pd.Categorical)
        first = _first_edges(edge_message, n) if both else None
        if first is not None or both and bool((np.bincount(edge_message, minlength=n) > 0).all()):
            # Tenant and sender domain are already factorised along the edges: take each
            # message's codes from its (first) edge instead of factorising the strings again.
            tenant_code, tenants = _from_edges(edge_tenant, edge_message, n, first)
            dom_code, domains = _from_edges(edge_domain, edge_message, n, first)
            dom_key = string_keys(domains)[dom_code]
        else:
            tenant_code, tenant_values = pd.factorize(frame["tenant_id"], sort=True)
            tenants = np.asarray(tenant_values, dtype=object)
            dom_key, dom_code, domains = _keyed(_column(frame, "sender_domain"), n)
        return cls(
            timestamp=_ns(_column(frame, "timestamp")),
            sender_key=np.asarray(_column(frame, "sender_key"), dtype=np.uint64),
            sender_domain_key=dom_key, sender_domain_code=dom_code.astype(np.int64, copy=False),
            sender_domains=domains,
            display_name_key=name_key,
            direction=_codes(_column(frame, "direction"), DIRECTIONS, n),
            spf=_codes(_column(frame, "spf"), AUTH_RESULTS, n), dkim=_codes(_column(frame, "dkim"), AUTH_RESULTS, n),
            dmarc=_codes(_column(frame, "dmarc"), AUTH_RESULTS, n),
            tenant_code=tenant_code.astype(np.int64, copy=False), tenants=[str(t) for t in tenants],
            edge_message=edge_message,
            recipient_key=np.asarray(_column(edges, "recipient_key"), dtype=np.uint64),
            frame=frame, own_domains=dict(messages.configured_own_domains),
        )

    def with_tenant_keys(self, messages: Messages, keys: Mapping[str, Any]) -> "SignalBatch":
        """This batch with the rows of privacy-mode tenants keyed with their own secrets.

        ``keys`` maps a tenant to its :class:`TenantKeys`; the rows of each such
        tenant of the batch get their sender, sender domain, display name and
        recipient keys from it (each distinct string keyed once per tenant), the
        other tenants' rows keep their plain keys. ``messages`` are those the
        batch was made from (the strings behind the keys).

        Examples
        --------
        >>> from commgraph.graph import stable_key, validate
        >>> from commgraph.signals._privacy import TenantKeys
        >>> m = validate(pd.DataFrame({"tenant_id": ["a", "b"], "message_id": "1", "direction": "internal",
        ...     "timestamp": "2024-01-01T00:00Z", "sender": "x@a.com", "recipients": "z@a.com"}))
        >>> b = SignalBatch.from_messages(m).with_tenant_keys(m, {"b": TenantKeys("b", b"0123456789abcdef")})
        >>> b.sender_key.tolist() == [stable_key("x@a.com"), stable_key("x@a.com", secret=b"0123456789abcdef")]
        True
        """
        private = [(i, keys[t]) for i, t in enumerate(self.tenants) if t in keys]
        if not private:
            return self
        frame = messages.frame
        senders, names = _column(frame, "sender"), _column(frame, "sender_display_name")
        recipients = _column(messages.edges(message_columns=()), "recipient")
        sender_key, domain_key, name_key = self.sender_key.copy(), self.sender_domain_key.copy(), \
            self.display_name_key.copy()
        recipient_key = self.recipient_key.copy()
        edge_tenant = self.tenant_code[self.edge_message]
        for code, tenant_keys in private:
            rows = np.flatnonzero(self.tenant_code == code)
            edges = np.flatnonzero(edge_tenant == code)
            sender_key[rows] = _tenant_keyed(senders, rows, tenant_keys)
            name_key[rows] = _tenant_keyed(names, rows, tenant_keys)
            recipient_key[edges] = _tenant_keyed(recipients, edges, tenant_keys)
            # The batch's distinct domains, each keyed once for this tenant.
            codes = self.sender_domain_code[rows]
            used = np.unique(codes[codes >= 0])
            per_code = np.zeros(len(self.sender_domains), np.uint64)
            per_code[used] = tenant_keys.keys([self.sender_domains[c] for c in used.tolist()])
            domain_key[rows] = np.where(codes >= 0, per_code.take(np.maximum(codes, 0)), np.uint64(0))
        return dataclasses.replace(self, sender_key=sender_key, sender_domain_key=domain_key,
                                   display_name_key=name_key, recipient_key=recipient_key, _memo={})

    def by_tenant(self) -> list[tuple[str, np.ndarray, np.ndarray, "SignalBatch"]]:
        """Per tenant: its id, its message positions, its edge positions (both increasing) and its sub-batch."""
        if len(self.tenants) == 1:
            return [(self.tenants[0], np.arange(self.n_messages), np.arange(self.n_edges), self)]
        m_order, m_bounds, e_order, e_bounds = self._tenant_order()
        out = []
        for t, tenant in enumerate(self.tenants):
            msgs = m_order[m_bounds[t]:m_bounds[t + 1]]
            eds = e_order[e_bounds[t]:e_bounds[t + 1]]
            # (a stable sort keeps each tenant's positions increasing)
            out.append((tenant, msgs, eds, self.take(msgs, eds, tenant=tenant, increasing=True)))
        return out

    def _tenant_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Messages and edges stably sorted by tenant, and each tenant's bounds in both orders.

        Tenant-ordered input, its edges grouped by message in message order (as validation lays them out), is
        told by two passes: both orders are then the identity (what the stable sorts give), and each tenant's
        edges start at the first edge of its first message (a binary search), not found by a gather and sort
        of every edge's tenant.
        """
        tenant_code, edge_message, n_tenants = self.tenant_code, self.edge_message, len(self.tenants)
        if _increasing(tenant_code) and _increasing(edge_message):
            m_bounds = np.searchsorted(tenant_code, np.arange(n_tenants + 1))
            e_bounds = np.searchsorted(edge_message, m_bounds)
            return np.arange(self.n_messages), m_bounds, np.arange(self.n_edges), e_bounds
        m_order = np.argsort(tenant_code, kind="stable")
        m_bounds = np.searchsorted(tenant_code[m_order], np.arange(n_tenants + 1))
        edge_tenant = tenant_code[edge_message]
        e_order = np.argsort(edge_tenant, kind="stable")
        return m_order, m_bounds, e_order, np.searchsorted(edge_tenant[e_order], np.arange(n_tenants + 1))

    def take(self, msgs: np.ndarray, eds: np.ndarray | None = None, *, tenant: str | None = None,
             increasing: bool = False) -> "SignalBatch":
        """The sub-batch of some messages (positions, in the order given) and their edges.

        ``eds`` (the edges of exactly those messages, in output order) is found when not given.
        ``increasing``: the caller knows both sets of positions increase (no pass to check it).

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> rows = {"tenant_id": "t", "message_id": ["1", "2", "3"], "timestamp": "2024-01-01T00:00Z",
        ...         "sender": "a@t.com", "recipients": ["b@t.com", "b@t.com; c@t.com", "c@t.com"]}
        >>> sub = SignalBatch.from_messages(validate(pd.DataFrame(rows).assign(direction="internal"))).take([1])
        >>> sub.n_messages, sub.n_edges, sub.edge_message.tolist()
        (1, 2, [0, 0])
        """
        msgs = np.asarray(msgs, dtype=np.int64)
        as_slice = _increasing_as_slice if increasing else _as_slice
        m, e = as_slice(msgs), None if eds is None else as_slice(np.asarray(eds, dtype=np.int64))
        if isinstance(m, slice) and isinstance(e, slice):
            # One run of messages and one of their edges (a tenant of tenant-ordered input): the columns are
            # views of this batch's (only ever read), not copies; edges point at messages from the run's start.
            edge_message = self.edge_message[e] - m.start
        else:
            remap = np.full(self.n_messages, -1, np.int64)
            remap[msgs] = np.arange(len(msgs))
            if eds is None:
                eds = np.flatnonzero(remap[self.edge_message] >= 0)
            m, e = msgs, eds
            edge_message = remap[self.edge_message[eds]]
        tenant_code = self.tenant_code[m] if tenant is None else np.zeros(len(msgs), np.int64)
        return SignalBatch(
            timestamp=self.timestamp[m], sender_key=self.sender_key[m],
            sender_domain_key=self.sender_domain_key[m], sender_domain_code=self.sender_domain_code[m],
            sender_domains=self.sender_domains, display_name_key=self.display_name_key[m],
            direction=self.direction[m], spf=self.spf[m], dkim=self.dkim[m], dmarc=self.dmarc[m],
            tenant_code=tenant_code, tenants=self.tenants if tenant is None else [tenant],
            edge_message=edge_message, recipient_key=self.recipient_key[e],
            frame=self.frame, message_rows=msgs if self.message_rows is None else self.message_rows[m],
            own_domains=self.own_domains, _per_domain=self._per_domain)

    def freemail_per_domain(self) -> np.ndarray:
        """:func:`~commgraph.signals._freemail.freemail_domain_flags` of ``sender_domains``, once per batch."""
        found = self._per_domain.get("freemail")
        if found is None:
            found = self._per_domain["freemail"] = freemail_domain_flags(self.sender_domains)
        return found

    def rows(self, view, table: str) -> np.ndarray:
        """Row positions of this batch's messages (``sender``, ``sender_domain``, ``display_name``)
        or edges (``pair``, ``recipient``) in one table of ``view``; probed once per batch and table."""
        found = self._memo.get(table)
        if found is None:
            if table == "sender":
                found = view.lookup("sender", self.sender_key)
            elif table == "sender_domain":
                found = view.lookup("sender_domain", self.sender_domain_key)
            elif table == "display_name":
                found = view.lookup("display_name", self.display_name_key)
            elif table == "pair":
                found = view.lookup("pair", pair_keys(self.sender_key[self.edge_message], self.recipient_key))
            elif table == "recipient":
                found = view.lookup("recipient", self.recipient_key)
            else:
                raise CommGraphError(f"no batch key for table {table!r}")
            found.flags.writeable = False  # shared by every provider (and gather's mask memo): read-only
            self._memo[table] = found
        return found

    def message_column(self, name: str) -> pd.Series:
        """Another column of the message rows, aligned with this batch's messages.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": "1", "direction": "internal",
        ...     "timestamp": "2024-01-01T00:00Z", "sender": "a@t.com", "recipients": "b@t.com", "subject": "Hi"}))
        >>> SignalBatch.from_messages(m).message_column("subject").tolist()
        ['Hi']
        """
        if name not in self.frame.columns:
            raise CommGraphError(f"the messages have no column {name!r}; columns present: {list(self.frame.columns)}")
        column = self.frame[name]
        return column if self.message_rows is None else column.iloc[self.message_rows]
