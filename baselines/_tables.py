"""Baseline tables as of ``as_of``, derived from tenants' states.

Lifetime statistics and windowed counts come from the state as they are;
distinct counts from the keyed sets (pairs, days); the likelihood columns are added once the priors
are fitted (:mod:`._build`). Every table is sorted by its key, so the same
state always gives the same arrays.

Several tenants are derived together (:func:`derive_many`): their aggregates
stacked, each tenant a segment (:mod:`._segments`), so that the few thousand
small-array calls of a derive are paid once per batch rather than per tenant;
a tenant alone is a batch of one (:func:`derive_tables`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ._aggregate import KeyedAggregate
from ._config import BaselineConfig, duration_ns
from ._events import mix64
from ._columns import COLUMNS, Hours, Lists, Names, Strings, Timestamps, Values, _spans, lists as list_columns
from ._segments import Factorized, align, count_by, owners, runs, union
from ._state import TenantState, expand

__all__ = ["TABLES", "ENTITY_KINDS", "pair_keys", "derive_tables", "derive_many", "KEY_COLUMNS"]

#: The baseline tables of a snapshot.
TABLES: tuple[str, ...] = ("sender", "sender_domain", "pair", "recipient", "display_name", "tenant")
#: Tables with a smoothed safe likelihood (and a fitted prior each).
ENTITY_KINDS: tuple[str, ...] = ("sender", "sender_domain", "pair", "recipient")
#: The uint64 key column each table is looked up by.
KEY_COLUMNS: dict[str, str] = {"sender": "sender_key", "sender_domain": "sender_domain_key", "pair": "pair_key",
                               "recipient": "recipient_key", "display_name": "display_name_key",
                               "tenant": "tenant_key"}
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_AUTH_COLUMNS = tuple(f"{a}_{r}" for a in ("spf", "dkim", "dmarc") for r in ("pass", "fail"))
_LABEL_COLUMNS = ("n_safe", "n_attack", "n_spam", "n_presumed_safe")


def pair_keys(sender_keys: np.ndarray, recipient_keys: np.ndarray) -> np.ndarray:
    """The stable uint64 key of (sender, recipient) pairs, from the two address keys.

    A splitmix64 finalizer over a mix of both keys: order matters, so (a, b)
    and (b, a) get different keys. Part of the snapshot format.

    Examples
    --------
    >>> s, r = np.array([1, 2], dtype=np.uint64), np.array([2, 1], dtype=np.uint64)
    >>> k = pair_keys(s, r)
    >>> k.dtype, bool(k[0] != k[1])
    (dtype('uint64'), True)
    """
    return mix64(sender_keys, recipient_keys)


class _Stack:
    """The states' keyed aggregates of one table, stacked in state order: tenant ``i``'s groups are rows
    ``bounds[i]:bounds[i + 1]``, sorted by key as in its own aggregate."""

    __slots__ = ("keys", "values", "bounds")

    def __init__(self, parts: Sequence[KeyedAggregate], values: bool = True):
        # values=False: the keys alone (a table only counted by key, such as a sender's days)
        self.bounds = np.cumsum([0] + [len(p) for p in parts])
        self.keys = {k: _concat([p.keys[k] for p in parts]) for k in parts[0].keys}
        self.values = expand({c: _concat([p.values[c] for p in parts]) for c in parts[0].values} if values else {})


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """Parts in one array, of the dtype of the non-empty ones (an empty part takes no say in it: a tenant with
    no rows has int64 columns where others hold floats)."""
    full = [p for p in parts if len(p)] or parts[:1]
    if len(full) == 1:
        return full[0]
    joined = adjacent_view(full)
    return np.concatenate(full) if joined is None else joined


def adjacent_view(parts: Sequence[np.ndarray]) -> np.ndarray | None:
    """Consecutive slices of one array (first rows first), as the one view of it they make up; None for parts
    that are anything else.

    The tenants' aggregates that :func:`._state.advance_many` merged stacked are
    views of one array each, in tenant order: stacking them again for a derive
    needs no copy.

    Examples
    --------
    >>> a = np.arange(10)
    >>> adjacent_view([a[2:4], a[4:7]]).tolist(), adjacent_view([a[2:4], a[5:7]])
    ([2, 3, 4, 5, 6], None)
    """
    base = parts[0].base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous or base.ndim != parts[0].ndim:
        return None
    if any(p.base is not base or p.dtype != base.dtype or p.shape[1:] != base.shape[1:] or not p.flags.c_contiguous
           for p in parts):
        return None
    row = base.itemsize * (base[:1].size if len(base) else 1)
    if row == 0:
        return None
    offset = parts[0].__array_interface__["data"][0] - base.__array_interface__["data"][0]
    first, misaligned = divmod(offset, row)
    if misaligned or first < 0:
        return None
    end = first
    for p in parts:
        if p.__array_interface__["data"][0] - base.__array_interface__["data"][0] != end * row:
            return None
        end += len(p)
    return base[first:end] if end <= len(base) else None


def derive_tables(state: TenantState, config: BaselineConfig) -> dict[str, dict[str, Any]]:
    """Every baseline table of one tenant (columns as numpy or Arrow arrays), without likelihoods.

    :func:`derive_many` of this one state.

    Examples
    --------
    >>> from commgraph.baselines._events import empty_events
    >>> config = BaselineConfig()
    >>> windows = tuple(duration_ns(w) for w in config.windows)
    >>> state = TenantState.build("t", empty_events(), as_of=0, windows=windows, settle_delay=1, half_life=1,
    ...                           names=None, fingerprint=0)
    >>> tables = derive_tables(state, config)
    >>> len(tables["sender"]["sender_key"]), tables["tenant"]["tenant_id"].to_pylist()
    (0, ['t'])
    """
    return derive_many([state], config)[0]


def derive_many(states: Sequence[TenantState], config: BaselineConfig) -> list[dict[str, dict[str, Any]]]:
    """:func:`derive_tables` of each state, to the byte, derived together.

    The states' aggregates are stacked table by table, each tenant a segment,
    and every column of every tenant is computed in one vectorised pass whose
    lookups, counts and orders stay inside each segment (tenants never mix:
    see :mod:`._segments`). Each tenant's columns are slices of the stacked
    ones: the values and dtypes its own derive gives. Tenants whose tables
    leave out the strings (privacy mode, no names) are derived apart from the
    others.

    Parameters
    ----------
    states : sequence of TenantState
        The tenants' states, as of any instants.
    config : BaselineConfig
        The configuration of every one of them.

    Returns
    -------
    list of dict
        Per state, in order: per table, its columns.

    Examples
    --------
    >>> from commgraph.baselines._events import empty_events
    >>> config = BaselineConfig()
    >>> windows = tuple(duration_ns(w) for w in config.windows)
    >>> states = [TenantState.build(t, empty_events(), as_of=0, windows=windows, settle_delay=1, half_life=1,
    ...                             names=None, fingerprint=0) for t in ("a", "b")]
    >>> [tables["tenant"]["tenant_id"].to_pylist() for tables in derive_many(states, config)]
    [['a'], ['b']]
    """
    groups: dict[bool, list[int]] = {}
    for i, state in enumerate(states):
        groups.setdefault(bool(config.privacy and not len(state.names["key"])), []).append(i)
    out: list[dict[str, dict[str, Any]]] = [{} for _ in states]
    for private, members in groups.items():
        for batch in _batches(members, [_size(states[i]) for i in members], DERIVE_BATCH_ROWS):
            for i, tables in zip(batch, _derive([states[i] for i in batch], config, private)):
                out[i] = tables
    return out


#: Tenants are derived together up to about this many rows (pairs and sender days) in all: the fixed cost
#: of a tenant's derive (~1.6 ms: thousands of small-array calls) is paid once per batch, while the rows of a
#: batch stay few enough for its hash tables and sorts to work in cache. Measured on the refreshed states of 100
#: tenants of 10M edges (1.2M pairs, 1.9M sender days; CPU seconds, best of 3, on a busy machine): each tenant
#: alone 0.49, batches of 16k rows 0.45, 64k 0.42, 256k 0.41, all 100 at once 0.51 (the previous derive, tenant
#: by tenant, 0.43); 90 tenants without the 10 largest: 0.29 before, 0.25 in batches of 256k.
DERIVE_BATCH_ROWS = 256 * 1024


def _size(state: TenantState) -> int:
    return len(state.lifetime["pair"]) + len(state.lifetime["sender_day"])


def _batches(members: list[int], sizes: list[int], limit: int) -> list[list[int]]:
    """Consecutive members in batches of at most ``limit`` rows (a larger member alone)."""
    batches: list[list[int]] = []
    total = 0
    for i, size in zip(members, sizes):
        if not batches or total + size > limit:
            batches.append([])
            total = 0
        batches[-1].append(i)
        total += size
    return batches


def _bounds_of(kept: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The segment bounds of the rows a boolean mask keeps."""
    return np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])[bounds]


#: Tenants' pairs share a hash table up to about this many keys: a table's fixed cost (~80 us) is paid once for
#: many small tenants, and a table this size stays in cache. Measured on the reverse pairs of a refresh of 100
#: tenants (ms of CPU, best of 7-20, on a busy machine): 94k pairs in one batch, 8.9-9.7 with a table per tenant,
#: 5.5 with one for all, 4.7 in tables of 8k keys; 1.2M pairs in the 14 batches of a 90-day refresh, 64-74, 85
#: and 66-69 (32k keys: 81).
REVERSE_TABLE_KEYS = 8 * 1024


def _reverse_pairs(pk: np.ndarray, ps: np.ndarray, pr: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The row of each pair's reverse (recipient to sender) among its own tenant's pairs, -1 where there is none.

    A pair and its reverse are one of each side of the address order (sender below recipient, or above; a pair
    of an address with itself is its own reverse): the pairs of one side are looked up among the other side's
    alone, and each match answers for both, in groups of consecutive tenants of at most
    :data:`REVERSE_TABLE_KEYS` pairs above (a larger tenant alone)."""
    out = np.full(len(pk), -1, np.int64)
    own = np.flatnonzero(ps == pr)
    out[own] = own
    below, above = np.flatnonzero(ps < pr), np.flatnonzero(ps > pr)
    wanted = pair_keys(pr[below], ps[below])  # the reverses the pairs below look for, among those above
    found = np.full(len(below), -1, np.int64)
    edges_below, edges_above = np.searchsorted(below, bounds).tolist(), np.searchsorted(above, bounds).tolist()
    for group in _batches(list(range(len(bounds) - 1)), np.diff(edges_above).tolist(), REVERSE_TABLE_KEYS):
        t0, t1 = group[0], group[-1] + 1
        b0, b1, a0, a1 = edges_below[t0], edges_below[t1], edges_above[t0], edges_above[t1]
        if b0 < b1 and a0 < a1:
            tenants = np.arange(t0, t1, dtype=np.uint64)  # (each row's tenant wanted only where there are several)
            rows = _rows_of(pk[above[a0:a1]], wanted[b0:b1]) if t1 - t0 == 1 else \
                _rows_of(pk[above[a0:a1]], wanted[b0:b1], np.repeat(tenants, np.diff(edges_above[t0:t1 + 1])),
                         np.repeat(tenants, np.diff(edges_below[t0:t1 + 1])))
            found[b0:b1] = np.where(rows >= 0, rows + a0, -1)
    hit = found >= 0
    out[below[hit]], out[above[found[hit]]] = above[found[hit]], below[hit]
    return out


def _rows_of(keys: np.ndarray, queries: np.ndarray, key_tenant: np.ndarray | None = None,
             query_tenant: np.ndarray | None = None) -> np.ndarray:
    """The row of each query key among the keys of its own tenant, -1 where there is none (keys and queries
    each in the order of their tenants' numbers; None: all of one tenant).

    A hash table over the keys (unsorted hashes, so pandas does not fall back to binary search). Several
    tenants' keys are XOR-ed with their tenant's number: distinct within a tenant as they were, and a row found
    answers only for a query of its own tenant. Should another tenant's key meet a query (both XOR-ed), the
    query's own match, if any, would meet it too: the keys are not unique then, and each tenant is looked up
    alone."""
    from ._index import KeyIndex

    if key_tenant is None or query_tenant is None:
        index = pd.Index(keys)
        return index.get_indexer(queries) if index.is_unique else KeyIndex.build(keys).get(queries)
    index = pd.Index(keys ^ key_tenant)
    if index.is_unique:
        rows = index.get_indexer(queries ^ query_tenant)
        hit = np.flatnonzero(rows >= 0)
        rows[hit[key_tenant[rows[hit]] != query_tenant[hit]]] = -1
        return rows
    rows = np.full(len(queries), -1, np.int64)
    for t in np.unique(query_tenant):
        (k0, k1), (q0, q1) = np.searchsorted(key_tenant, [t, t + 1]), np.searchsorted(query_tenant, [t, t + 1])
        if k0 < k1:
            own = _rows_of(keys[k0:k1], queries[q0:q1])
            rows[q0:q1] = np.where(own >= 0, own + k0, -1)
    return rows


def _split(columns: dict[str, Any], bounds: np.ndarray) -> list[dict[str, Any]]:
    """Each segment's rows of stacked columns: numpy views, and Arrow arrays of their own.

    Column by column (each one's segments made in one call), then gathered into each segment's dict.
    """
    edges = bounds.tolist()
    spans = _spans(edges)
    parts = [col.parts(edges) if isinstance(col, COLUMNS) else [col[lo:hi] for lo, hi in spans]
             for col in columns.values()]
    return [dict(zip(columns, row)) for row in zip(*parts)]


def _derive(states: Sequence[TenantState], config: BaselineConfig, private: bool) -> list[dict[str, dict[str, Any]]]:
    n_states = len(states)
    stacks: dict[str, _Stack] = {}

    def stack(table: str, values: bool = True) -> _Stack:
        if table not in stacks:
            stacks[table] = _Stack([s.lifetime[table] for s in states], values)
        return stacks[table]

    names = Names.of([s.names for s in states])
    windows = [(name, str(duration_ns(w))) for name, w in zip(config.window_names, config.windows)]

    def window_counts(table: str, column: str, keys: np.ndarray, bounds: np.ndarray) -> dict[str, np.ndarray]:
        # Windows wrap the count: kept per window by the state, aligned here to the table's rows.
        out = {}
        for name, w in windows:
            agg = _Stack([s.windows[w][table] for s in states])
            out[f"{column}_{name}"] = align(keys, bounds, next(iter(agg.keys.values())), agg.bounds,
                                            agg.values["n"]).astype(np.int32)
        return out

    def decayed(table: str, keys: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        agg = _Stack([s.decayed[table].aggregate for s in states])
        # float64 always (an empty tenant's decayed sums are int64: its table keeps the type of the others')
        return align(keys, bounds, next(iter(agg.keys.values())), agg.bounds,
                     agg.values["n_messages"].astype(np.float64, copy=False), 0.0)

    stacked: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    pair = stack("pair")
    ps, pr, pb = pair.keys["sender_key"], pair.keys["recipient_key"], pair.bounds
    pv = pair.values
    pair_starts = runs(ps, pb)  # pairs are sorted by sender: one run of rows per sender, looked up once
    sender = stack("sender")

    # ---------------------------------------------------------------- sender
    sk, sb = sender.keys["sender_key"], sender.bounds
    sv = sender.values
    n = sv["n_messages"]
    t: dict[str, Any] = {"sender_key": sk}
    if not private:
        sender_names = t["sender"] = names.take(sk, sb)

    def sender_strings(keys: np.ndarray, starts: np.ndarray, bounds: np.ndarray) -> Strings:
        # The strings of senders sorted in each segment (runs of one sender from `starts`), as the sender table's
        # rows: every sender of a pair or a display name has one (they count the same messages), else looked up.
        rows = align(keys[starts], np.searchsorted(starts, bounds), sk, sb, np.arange(len(sk)), -1)
        return sender_names.at(np.repeat(rows, np.diff(np.append(starts, len(keys))))) if (rows >= 0).all() else \
            names.take(keys, bounds)

    t["sender_domain_key"] = sv["sender_domain_key"]
    t.update(window_counts("sender", "n_messages", sk, sb))
    t["n_messages"] = n.astype(np.int32)
    t["decayed_messages"] = decayed("sender", sk, sb)
    t["first_seen"] = Timestamps(sv["first_seen"], _INT64_MAX)
    t["last_seen"] = Timestamps(sv["last_seen"], _INT64_MIN)
    sender_day = stack("sender_day", values=False)
    t["active_days"] = count_by(sk, sb, sender_day.keys["sender_key"], sender_day.bounds)
    # A sender's distinct recipients: the pairs it sent on, in its run of pairs.
    sent = np.add.reduceat(pv["n_messages"] > 0, pair_starts, dtype=np.int64) if len(ps) else np.zeros(0, np.int64)
    t["n_distinct_recipients"] = align(sk, sb, ps[pair_starts], np.searchsorted(pair_starts, pb), sent
                                       ).astype(np.int32)
    t["mean_recipients"] = np.divide(sv["n_recipients_total"], n, out=np.zeros(len(n)),
                                     where=n > 0).astype(np.float32)
    for c in _LABEL_COLUMNS + _AUTH_COLUMNS + ("n_outbound",):
        t[c] = sv[c].astype(np.int32)
    t["hour_histogram"] = Hours(sv["hour_histogram"])
    disp = stack("display_name")
    dn, ds, dc = disp.keys["display_name_key"], disp.keys["sender_key"], disp.values["n_messages"]
    db = disp.bounds
    disp_owner = owners(db)
    by_sender = np.lexsort((dn, -dc, ds, disp_owner))  # (the owner first: each tenant's rows stay in its segment)
    dn_o, ds_o, dc_o = dn[by_sender], ds[by_sender], dc[by_sender]
    sender_starts = runs(ds_o, db)
    first = np.repeat(sender_starts, np.diff(np.append(sender_starts, len(ds_o))))  # each row's run start
    top = (np.arange(len(ds_o)) - first) < config.top_display_names
    lists: dict[str, Any] = {"display_name_keys": dn_o[top], "display_name_counts": dc_o[top].astype(np.int32)}
    types = {"display_name_keys": pa.uint64(), "display_name_counts": pa.int32()}
    top_bounds = _bounds_of(top, db)
    if not private:
        # Each row's display name looked up once, along the rows' order by name: the lists here and the
        # display_name table's names take their strings from it.
        display_names = names.take(dn, db)
        lists["display_names"] = display_names.at(by_sender[top])
        types["display_names"] = pa.string()
    t.update(list_columns(sk, sb, ds_o[top], top_bounds, lists, types))
    wt = stack("written_to")
    t["n_written_to"] = align(sk, sb, wt.keys["recipient_key"], wt.bounds, wt.values["n_messages"]).astype(np.int32)
    t["last_written_to"] = Timestamps(align(sk, sb, wt.keys["recipient_key"], wt.bounds, wt.values["last_seen"],
                                     _INT64_MIN), _INT64_MIN)
    stacked["sender"] = (t, sb)

    # ---------------------------------------------------------------- sender_domain
    dom = stack("sender_domain")
    out = stack("domain_out")
    dk, dv = dom.keys["sender_domain_key"], dom.values
    # A domain the tenant only wrote to gets a row too, with nothing received from it (counts 0,
    # first/last seen null), so that its outbound mail counts where the domain is looked up.
    keys, kb, rows = union(dk, dom.bounds, out.keys["recipient_domain_key"], out.bounds)
    if len(keys) != len(dk):
        fill = {"first_seen": _INT64_MAX, "last_seen": _INT64_MIN}
        for c, v in dv.items():
            dv[c] = np.full((len(keys), *v.shape[1:]), fill.get(c, 0), v.dtype)
            dv[c][rows] = v
    dk, dkb = keys, kb
    t = {"sender_domain_key": dk}
    if not private:
        t["sender_domain"] = names.take(dk, dkb)
    t.update(window_counts("sender_domain", "n_messages", dk, dkb))
    t["n_messages"] = dv["n_messages"].astype(np.int32)
    t["decayed_messages"] = decayed("sender_domain", dk, dkb)
    t["first_seen"] = Timestamps(dv["first_seen"], _INT64_MAX)
    t["last_seen"] = Timestamps(dv["last_seen"], _INT64_MIN)
    domain_day = stack("sender_domain_day", values=False)
    t["active_days"] = count_by(dk, dkb, domain_day.keys["sender_domain_key"], domain_day.bounds)
    t["n_distinct_senders"] = count_by(dk, dkb, sv["sender_domain_key"][n > 0], _bounds_of(n > 0, sb))
    for c in _LABEL_COLUMNS + _AUTH_COLUMNS + ("n_outbound", "n_internal"):
        t[c] = dv[c].astype(np.int32)
    t["hour_histogram"] = Hours(dv["hour_histogram"])
    ok, ob = out.keys["recipient_domain_key"], out.bounds
    t["n_outbound_to"] = align(dk, dkb, ok, ob, out.values["n_messages"]).astype(np.int32)
    t["last_outbound_to"] = Timestamps(align(dk, dkb, ok, ob, out.values["last_seen"], _INT64_MIN), _INT64_MIN)
    stacked["sender_domain"] = (t, dkb)

    # ---------------------------------------------------------------- pair
    pk = pair_keys(ps, pr)
    t = {"pair_key": pk, "sender_key": ps, "recipient_key": pr}
    recipients = Factorized(pr, pb)  # in no order: factorised once, for their strings and the mailboxes' counts
    if not private:
        t["sender"] = sender_strings(ps, pair_starts, pb)
        t["recipient"] = names.take(recipients)
    t["n_messages"] = pv["n_messages"].astype(np.int32)
    t["n_inbound"] = pv["n_inbound"].astype(np.int32)
    t["first_seen"] = Timestamps(pv["first_seen"], _INT64_MAX)
    t["last_seen"] = Timestamps(pv["last_seen"], _INT64_MIN)
    for c in _LABEL_COLUMNS:
        t[c] = pv[c].astype(np.int32)
    reverse = _reverse_pairs(pk, ps, pr, pb)
    has = reverse >= 0
    rpos = np.maximum(reverse, 0)
    t["n_reverse"] = np.where(has, pv["n_messages"][rpos], 0).astype(np.int32) if len(pk) else np.zeros(0, np.int32)
    t["last_reverse"] = Timestamps(np.where(has, pv["last_seen"][rpos], _INT64_MIN) if len(pk) else
                                   np.zeros(0, np.int64), _INT64_MIN)
    stacked["pair"] = (t, pb)

    # ---------------------------------------------------------------- recipient (tenant mailboxes)
    rec = stack("recipient")
    is_mailbox = (sv["n_outbound"] > 0) | (sv["n_internal"] > 0)
    rk, rb, _ = union(rec.keys["recipient_key"].astype(np.uint64), rec.bounds, sk[is_mailbox],
                      _bounds_of(is_mailbox, sb))
    rv = {c: align(rk, rb, rec.keys["recipient_key"], rec.bounds, v) for c, v in rec.values.items()}
    t = {"recipient_key": rk}
    if not private:
        t["recipient"] = names.take(rk, rb)
    t.update(window_counts("recipient", "n_inbound", rk, rb))
    t["n_inbound"] = rv["n_inbound"].astype(np.int32)
    t["n_internal"] = rv["n_internal"].astype(np.int32)
    inbound_pairs = pv["n_inbound"] > 0
    t["n_distinct_senders"] = recipients.count_by(rk, rb, inbound_pairs)
    for c in _LABEL_COLUMNS:
        t[c] = rv[c].astype(np.int32)
    # A first-time sender's first message reached this mailbox from outside: the pair's first inbound edge
    # came when the sender began (messages at the same instant count once). An address that wrote
    # internally before (spoofed from outside later) is no first-time sender.
    sender_first = np.repeat(align(ps[pair_starts], np.searchsorted(pair_starts, pb), sk, sb, sv["first_seen"],
                                   _INT64_MAX), np.diff(np.append(pair_starts, len(ps))))
    first_time = inbound_pairs & (pv["first_inbound"] == sender_first)
    t["n_first_time_inbound"] = recipients.count_by(rk, rb, first_time)
    t["first_time_share"] = np.divide(t["n_first_time_inbound"], t["n_inbound"], out=np.zeros(len(rk)),
                                      where=t["n_inbound"] > 0).astype(np.float32)
    t["n_outbound"] = align(rk, rb, sk, sb, sv["n_outbound"]).astype(np.int32)
    stacked["recipient"] = (t, rb)

    # ---------------------------------------------------------------- display_name
    di = disp.values["n_internal"]
    starts = runs(dn, db)  # sorted by name: one run of rows per name
    names_keys, nb = dn[starts], np.searchsorted(starts, db)
    run = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(dn))))  # each row's name
    t = {"display_name_key": names_keys}
    if not private:
        t["display_name"] = display_names.at(starts)
    t["n_messages"] = np.bincount(run, weights=dc, minlength=len(names_keys)).astype(np.int32)
    t["n_addresses"] = np.diff(np.append(starts, len(dn))).astype(np.int32)
    internal = np.bincount(run, weights=di, minlength=len(names_keys)).astype(np.int32)
    t["n_internal"] = internal
    t["is_internal"] = internal > 0
    lists = {"address_keys": ds, "address_counts": dc.astype(np.int32)}
    types = {"address_keys": pa.uint64(), "address_counts": pa.int32()}
    if not private:
        # Taken in the rows' order by sender, then put back in their order by name.
        rows = np.empty_like(by_sender)
        rows[by_sender] = np.arange(len(by_sender))
        lists["addresses"] = sender_strings(ds_o, sender_starts, db).at(rows)
        types["addresses"] = pa.string()
    t.update(list_columns(names_keys, nb, dn, db, lists, types))
    stacked["display_name"] = (t, nb)

    # ---------------------------------------------------------------- tenant
    ten, ten_b = stack("tenant").values, stack("tenant").bounds
    has = np.diff(ten_b) > 0  # a tenant with no mail has no row

    def per_tenant(values: np.ndarray, fill: int = 0) -> np.ndarray:
        full = np.full((n_states, *values.shape[1:]), fill, np.int64)
        full[has] = values
        return full

    def sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        total = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
        return total[bounds[1:]] - total[bounds[:-1]]

    n_msg = per_tenant(ten["n_messages"])
    t = {"tenant_key": np.zeros(n_states, np.uint64), "tenant_id": Values([s.tenant_id for s in states]),
         "as_of": Values([s.as_of for s in states], pa.timestamp("ns", tz="UTC"))}
    t.update(window_counts("tenant", "n_messages", t["tenant_key"], np.arange(n_states + 1)))
    t["n_messages"] = n_msg
    t["n_edges"] = sums(pv["n_messages"], pb)
    for c in ("n_inbound", "n_outbound", "n_internal") + _LABEL_COLUMNS:
        t[c] = per_tenant(ten[c])
    for c in ("n_safe", "n_attack", "n_spam"):
        t[c.replace("n_", "rate_")] = np.divide(t[c], n_msg, out=np.zeros(n_states), where=n_msg > 0)
    dec = _Stack([s.decayed["tenant"].aggregate for s in states])
    t["decayed_messages"] = np.zeros(n_states)
    t["decayed_messages"][np.diff(dec.bounds) > 0] = dec.values["n_messages"]
    t["first_seen"] = Timestamps(per_tenant(ten["first_seen"], _INT64_MAX), _INT64_MAX)
    t["last_seen"] = Timestamps(per_tenant(ten["last_seen"], _INT64_MIN), _INT64_MIN)
    t["n_senders"] = sums(n > 0, sb)
    t["n_mailboxes"] = np.diff(rb).astype(np.int64)
    t["hour_histogram"] = Hours(per_tenant(ten["hour_histogram"]))
    # Known contacts, for look-alike checks: every own domain, then every domain the tenant wrote to, then the
    # `known_contact_domains` most corresponded-with others. Own: it sent internal or outbound mail, as
    # SnapshotView.own_domain_mask reads it; a domain that only writes out is the tenant's as much as one
    # that also writes in.
    own = (dv["n_internal"] > 0) | (dv["n_outbound"] > 0)
    written = stacked["sender_domain"][0]["n_outbound_to"].astype(np.int64)  # every written-to domain has a row
    volume = dv["n_messages"].astype(np.int64) + written
    domain_owner = owners(dkb)
    always = sums(own | (written > 0), dkb)
    order = np.lexsort((dk, -volume, ~(written > 0), ~own, domain_owner))  # each tenant's rows stay in its segment
    keep = np.arange(len(dk)) - dkb[domain_owner] < (always + config.known_contact_domains)[domain_owner]
    known, known_bounds = dk[order][keep], _bounds_of(keep, dkb)
    t["known_contact_domain_keys"] = Lists(known_bounds, known, pa.uint64())
    if not private:
        t["known_contact_domains"] = Lists(known_bounds, stacked["sender_domain"][0]["sender_domain"].at(order[keep]),
                                           pa.string())
    stacked["tenant"] = (t, np.arange(n_states + 1))
    per_table = {table: _split(columns, bounds) for table, (columns, bounds) in stacked.items()}
    return [{table: per_table[table][i] for table in TABLES} for i in range(n_states)]


def to_arrow(columns: dict[str, Any]) -> pa.Table:
    """A table of numpy/Arrow columns, in order."""
    return pa.table({name: (col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col))
                     for name, col in columns.items()})
