"""A batch of messages as flat numpy arrays: what providers compute over.

Message-level values (time, sender, domain, display name, authentication)
are held once per message and edge-level ones (recipient) once per edge, with
each edge's message position: sender signals are computed per message and
broadcast, which saves the lookups of every extra recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from commgraph.baselines import pair_keys
from xxhash import xxh3_64_intdigest

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, KEY_ALGORITHM, CommGraphError, Messages

__all__ = ["SignalBatch", "DIRECTION_CODES", "AUTH_CODES", "FAIL_CODES"]

# The batch hashes strings exactly as the graph layer does; a change of algorithm must show here.
assert KEY_ALGORITHM.startswith("xxh3_64(utf-8)"), KEY_ALGORITHM

DIRECTION_CODES = {d: i for i, d in enumerate(DIRECTIONS)}  # inbound 0, outbound 1, internal 2
AUTH_CODES = {r: i for i, r in enumerate(AUTH_RESULTS)}
#: Results counted as failures, as the baselines count them.
FAIL_CODES = tuple(AUTH_CODES[r] for r in ("fail", "softfail", "permerror"))


def _ns(series: pd.Series) -> np.ndarray:
    if getattr(series.dtype, "unit", None) != "ns":
        series = series.dt.as_unit("ns")
    return series.array.asi8


_SAME_CATEGORIES: dict[int, tuple[pd.CategoricalDtype, bool]] = {}


def _codes(series: pd.Series | None, categories: tuple[str, ...], n: int) -> np.ndarray:
    if series is None:
        return np.full(n, -1, np.int8)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        same = _SAME_CATEGORIES.get(id(dtype))
        if same is None or same[0] is not dtype:  # the contract's dtypes are few: decide once per dtype object
            same = (dtype, list(dtype.categories) == list(categories))
            _SAME_CATEGORIES[id(dtype)] = same
        if same[1]:
            return series.array.codes.astype(np.int8, copy=False)
    return pd.Categorical(series, categories=list(categories)).codes.astype(np.int8)


def _from_edges(categorical: pd.Categorical, edge_message: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per message, the code of its edges' category (every message has an edge), over the categories used."""
    codes = np.empty(n, np.int64)
    codes[edge_message] = categorical.codes
    categories = np.asarray(categorical.categories, dtype=object)
    used = np.flatnonzero(np.bincount(codes, minlength=len(categories)))
    if len(used) < len(categories):
        remap = np.full(len(categories), -1, np.int64)
        remap[used] = np.arange(len(used))
        return remap[codes], categories[used]
    return codes, categories


def _keyed(series: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable keys of a string column (0 where missing), its codes and its distinct values."""
    if series is None:
        return np.zeros(n, np.uint64), np.full(n, -1, np.int64), np.zeros(0, object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object)
    # The distinct values are hashed with the stable key function itself (XXH3-64 of UTF-8,
    # as commgraph.graph.stable_keys), without a second factorisation.
    keys = np.fromiter((xxh3_64_intdigest(v.encode("utf-8")) for v in values), np.uint64, len(values))
    ok = codes >= 0
    if ok.all():
        return keys[codes], codes.astype(np.int64), values
    out = np.zeros(n, np.uint64)
    out[ok] = keys[codes[ok]]
    return out, codes.astype(np.int64), values


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
    _memo: dict = field(default_factory=dict, repr=False)

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
        edge_message = edges["message_index"].to_numpy(np.int64)
        name_key, _, _ = _keyed(frame["sender_display_name"] if "sender_display_name" in frame else None, n)
        get = frame.get
        if n and isinstance(edges["tenant_id"].dtype, pd.CategoricalDtype) \
                and isinstance(edges["sender_domain"].dtype, pd.CategoricalDtype) \
                and bool((np.bincount(edge_message, minlength=n) > 0).all()):
            # Tenant and sender domain are already factorised along the edges: take each
            # message's codes from its edges instead of factorising the strings again.
            tenant_code, tenants = _from_edges(edges["tenant_id"].array, edge_message, n)
            dom_code, domains = _from_edges(edges["sender_domain"].array, edge_message, n)
            domain_keys = np.fromiter((xxh3_64_intdigest(v.encode("utf-8")) for v in domains), np.uint64,
                                      len(domains))
            dom_key = domain_keys[dom_code]
        else:
            tenant_code, tenant_values = pd.factorize(frame["tenant_id"], sort=True)
            tenants = np.asarray(tenant_values, dtype=object)
            dom_key, dom_code, domains = _keyed(frame["sender_domain"], n)
        return cls(
            timestamp=_ns(frame["timestamp"]),
            sender_key=frame["sender_key"].to_numpy(np.uint64),
            sender_domain_key=dom_key, sender_domain_code=dom_code.astype(np.int64), sender_domains=domains,
            display_name_key=name_key,
            direction=_codes(get("direction"), DIRECTIONS, n),
            spf=_codes(get("spf"), AUTH_RESULTS, n), dkim=_codes(get("dkim"), AUTH_RESULTS, n),
            dmarc=_codes(get("dmarc"), AUTH_RESULTS, n),
            tenant_code=tenant_code.astype(np.int64), tenants=[str(t) for t in tenants],
            edge_message=edge_message,
            recipient_key=edges["recipient_key"].to_numpy(np.uint64),
            frame=frame,
        )

    def by_tenant(self) -> list[tuple[str, np.ndarray, np.ndarray, "SignalBatch"]]:
        """Per tenant: its id, its message positions, its edge positions and its sub-batch."""
        if len(self.tenants) == 1:
            return [(self.tenants[0], np.arange(self.n_messages), np.arange(self.n_edges), self)]
        m_order = np.argsort(self.tenant_code, kind="stable")
        m_bounds = np.searchsorted(self.tenant_code[m_order], np.arange(len(self.tenants) + 1))
        edge_tenant = self.tenant_code[self.edge_message]
        e_order = np.argsort(edge_tenant, kind="stable")
        e_bounds = np.searchsorted(edge_tenant[e_order], np.arange(len(self.tenants) + 1))
        out = []
        for t, tenant in enumerate(self.tenants):
            msgs = m_order[m_bounds[t]:m_bounds[t + 1]]
            eds = e_order[e_bounds[t]:e_bounds[t + 1]]
            remap = np.empty(self.n_messages, np.int64)
            remap[msgs] = np.arange(len(msgs))
            sub = SignalBatch(
                timestamp=self.timestamp[msgs], sender_key=self.sender_key[msgs],
                sender_domain_key=self.sender_domain_key[msgs], sender_domain_code=self.sender_domain_code[msgs],
                sender_domains=self.sender_domains, display_name_key=self.display_name_key[msgs],
                direction=self.direction[msgs], spf=self.spf[msgs], dkim=self.dkim[msgs], dmarc=self.dmarc[msgs],
                tenant_code=np.zeros(len(msgs), np.int64), tenants=[tenant],
                edge_message=remap[self.edge_message[eds]], recipient_key=self.recipient_key[eds],
                frame=self.frame, message_rows=msgs if self.message_rows is None else self.message_rows[msgs])
            out.append((tenant, msgs, eds, sub))
        return out

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
