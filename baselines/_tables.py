"""Baseline tables as of ``as_of``, derived from a tenant's state.

Lifetime statistics and windowed counts come from the state as they are;
distinct counts from the keyed sets (pairs, days); the likelihood columns are added once the priors
are fitted (:mod:`._build`). Every table is sorted by its key, so the same
state always gives the same arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ._config import BaselineConfig
from ._events import mix64
from ._state import TenantState, expand

__all__ = ["TABLES", "ENTITY_KINDS", "pair_keys", "derive_tables", "KEY_COLUMNS"]

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


def _align(keys: np.ndarray, agg_keys: np.ndarray, values: np.ndarray, fill: Any = 0) -> np.ndarray:
    """Values of a sorted keyed aggregate at sorted, distinct ``keys`` (fill where absent)."""
    out = np.full(len(keys), fill, dtype=values.dtype if values.size else np.int64)
    if not len(agg_keys) or not len(keys):
        return out
    if len(agg_keys) == len(keys) and np.array_equal(agg_keys, keys):
        return values
    if len(agg_keys) < len(keys):  # look the fewer keys up in the longer array
        pos = np.minimum(np.searchsorted(keys, agg_keys), len(keys) - 1)
        found = keys[pos] == agg_keys
        out[pos[found]] = values[found]
        return out
    pos = np.searchsorted(agg_keys, keys)
    pos_c = np.minimum(pos, len(agg_keys) - 1)
    found = agg_keys[pos_c] == keys
    out[found] = values[pos_c[found]]
    return out


def _runs(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts, for sorted ``values``."""
    starts = np.empty(len(values), bool)
    starts[:1] = True
    np.not_equal(values[1:], values[:-1], out=starts[1:])
    return np.flatnonzero(starts)


class _Factorized:
    """Keys that repeat in no order (a pair's recipients), factorised once for every lookup and count over them.

    ``distinct`` is sorted, and ``codes`` gives each key's position in it.
    """

    __slots__ = ("codes", "distinct")

    def __init__(self, keys: np.ndarray):
        codes, distinct = pd.factorize(keys)
        distinct = np.asarray(distinct, dtype=keys.dtype)
        order = np.argsort(distinct)
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        self.codes, self.distinct = rank[codes], distinct[order]

    def count_by(self, keys: np.ndarray, members: np.ndarray) -> np.ndarray:
        """:func:`_count_by` of the keys where the boolean ``members`` is true."""
        if not len(keys) or not len(self.codes):
            return np.zeros(len(keys), np.int32)
        counts = np.bincount(self.codes[members], minlength=len(self.distinct))
        return _align(keys, self.distinct, counts).astype(np.int32)


def _count_by(keys: np.ndarray, members: np.ndarray) -> np.ndarray:
    """How many of ``members`` (sorted or not) equal each of the sorted ``keys``."""
    if not len(keys) or not len(members):
        return np.zeros(len(keys), np.int32)
    if (members[1:] >= members[:-1]).all():  # runs of equal members: no lookup per member
        starts = _runs(members)
        distinct, counts = members[starts], np.diff(np.append(starts, len(members)))
        return _align(keys, distinct, counts).astype(np.int32)
    return _Factorized(members).count_by(keys, np.ones(len(members), bool))


def _ts(values: np.ndarray, sentinel: int) -> pa.Array:
    """Timestamps (ns, UTC), null where ``values`` holds the sentinel: the values as the data buffer and
    a packed validity bitmap (``pa.array(..., mask=)`` converts value by value, twice as slow)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    valid = values != sentinel
    n_null = len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    return pa.Array.from_buffers(pa.timestamp("ns", tz="UTC"), len(values), [bitmap, pa.py_buffer(values)],
                                 null_count=n_null)


def _hours(histogram: np.ndarray) -> pa.Array:
    flat = histogram.astype(np.int32).ravel()
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), 24)


class _Names:
    """Strings behind keys (absent in privacy mode)."""

    def __init__(self, names: dict[str, np.ndarray]):
        self.keys = names["key"]
        self.values = names["value"]

    def __bool__(self) -> bool:
        return bool(len(self.keys))

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.keys):  # (no strings at all: every key is absent)
            return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return pos, self.keys[pos] == keys

    def take(self, keys: np.ndarray | _Factorized) -> pa.Array:
        """The string of each key (null where there is none); ``keys`` factorised already: looked up once each."""
        if isinstance(keys, _Factorized):
            pos, found = self._positions(keys.distinct)
            pos, found = pos[keys.codes], (found if found.all() else found[keys.codes])
        elif len(keys) <= 64:
            pos, found = self._positions(keys)
        elif (keys[1:] >= keys[:-1]).all():  # sorted (a pair's senders): look each run up once
            starts = _runs(keys)
            pos, found = self._positions(keys[starts])
            lengths = np.diff(np.append(starts, len(keys)))
            pos, found = np.repeat(pos, lengths), (found if found.all() else np.repeat(found, lengths))
        else:  # keys that repeat in no order: look each distinct one up once
            return self.take(_Factorized(keys))
        # Arrow take: no Python string objects; absent keys become nulls (a mask only when some are absent).
        return self.values.take(pa.array(pos) if found.all() else pa.array(pos, mask=~found))


def _lists(owner_keys: np.ndarray, member_owner: np.ndarray, columns: dict[str, np.ndarray],
           types: dict[str, pa.DataType]) -> dict[str, pa.Array]:
    """List columns per owner from member rows sorted by owner (every member's owner is in ``owner_keys``)."""
    offs = np.empty(len(owner_keys) + 1, np.int32)
    offs[:-1] = np.searchsorted(member_owner, owner_keys, side="left")
    offs[-1] = len(member_owner)
    return {name: pa.ListArray.from_arrays(pa.array(offs), values if isinstance(values, pa.Array)
                                           else pa.array(values, type=types[name]))
            for name, values in columns.items()}


def derive_tables(state: TenantState, config: BaselineConfig) -> dict[str, dict[str, Any]]:
    """Every baseline table (columns as numpy or Arrow arrays), without likelihoods."""
    as_of = state.as_of
    aggs, decayed = state.lifetime, state.decayed
    names = _Names(state.names)
    private = not names and config.privacy
    windows = [(name, str(int(w.total_seconds() * 1e9))) for name, w in zip(config.window_names, config.windows)]

    def window_counts(table: str, column: str, table_keys: np.ndarray) -> dict[str, np.ndarray]:
        # Windows wrap the count: kept per window by the state, aligned here to the table's rows.
        out = {}
        for name, w in windows:
            agg = state.windows[w][table]
            out[f"{column}_{name}"] = _align(table_keys, next(iter(agg.keys.values())), agg.values["n"]).astype(np.int32)
        return out

    tables: dict[str, dict[str, Any]] = {}
    pair = aggs["pair"]
    ps, pr = pair.keys["sender_key"], pair.keys["recipient_key"]
    sender = aggs["sender"]

    # ---------------------------------------------------------------- sender
    sk = sender.keys["sender_key"]
    sv = expand(sender.values)
    n = sv["n_messages"]
    t: dict[str, Any] = {"sender_key": sk}
    if not private:
        t["sender"] = names.take(sk)
    t["sender_domain_key"] = sv["sender_domain_key"]
    t.update(window_counts("sender", "n_messages", sk))
    t["n_messages"] = n.astype(np.int32)
    t["decayed_messages"] = _align(sk, decayed["sender"].aggregate.keys["sender_key"],
                                   decayed["sender"].aggregate.values["n_messages"], 0.0)
    t["first_seen"] = _ts(sv["first_seen"], _INT64_MAX)
    t["last_seen"] = _ts(sv["last_seen"], _INT64_MIN)
    t["active_days"] = _count_by(sk, aggs["sender_day"].keys["sender_key"])
    t["n_distinct_recipients"] = _count_by(sk, ps[pair.values["n_messages"] > 0])
    t["mean_recipients"] = np.divide(sv["n_recipients_total"], n, out=np.zeros(len(n)),
                                     where=n > 0).astype(np.float32)
    for c in _LABEL_COLUMNS + _AUTH_COLUMNS + ("n_outbound",):
        t[c] = sv[c].astype(np.int32)
    t["hour_histogram"] = _hours(sv["hour_histogram"])
    disp = aggs["display_name"]
    dn, ds, dc = disp.keys["display_name_key"], disp.keys["sender_key"], disp.values["n_messages"]
    order = np.lexsort((dn, -dc, ds))
    dn, ds, dc = dn[order], ds[order], dc[order]
    starts = np.searchsorted(ds, ds, side="left")
    top = (np.arange(len(ds)) - starts) < config.top_display_names
    lists = {"display_name_keys": dn[top], "display_name_counts": dc[top].astype(np.int32)}
    types = {"display_name_keys": pa.uint64(), "display_name_counts": pa.int32()}
    if not private:
        lists["display_names"] = names.take(dn[top])
        types["display_names"] = pa.string()
    t.update(_lists(sk, ds[top], lists, types))
    wt = aggs["written_to"]
    t["n_written_to"] = _align(sk, wt.keys["recipient_key"], wt.values["n_messages"]).astype(np.int32)
    t["last_written_to"] = _ts(_align(sk, wt.keys["recipient_key"], wt.values["last_seen"], _INT64_MIN),
                               _INT64_MIN)
    tables["sender"] = t

    # ---------------------------------------------------------------- sender_domain
    dom = aggs["sender_domain"]
    out = aggs["domain_out"]
    dk = dom.keys["sender_domain_key"]
    dv = expand(dom.values)
    only_written = np.setdiff1d(out.keys["recipient_domain_key"], dk)
    if len(only_written):
        # A domain the tenant only wrote to gets a row too, with nothing received from it (counts 0,
        # first/last seen null), so that its outbound mail counts where the domain is looked up.
        keys = np.union1d(dk, only_written)
        rows = np.searchsorted(keys, dk)
        fill = {"first_seen": _INT64_MAX, "last_seen": _INT64_MIN}
        for c, v in dv.items():
            dv[c] = np.full((len(keys), *v.shape[1:]), fill.get(c, 0), v.dtype)
            dv[c][rows] = v
        dk = keys
    t = {"sender_domain_key": dk}
    if not private:
        t["sender_domain"] = names.take(dk)
    t.update(window_counts("sender_domain", "n_messages", dk))
    t["n_messages"] = dv["n_messages"].astype(np.int32)
    t["decayed_messages"] = _align(dk, decayed["sender_domain"].aggregate.keys["sender_domain_key"],
                                   decayed["sender_domain"].aggregate.values["n_messages"], 0.0)
    t["first_seen"] = _ts(dv["first_seen"], _INT64_MAX)
    t["last_seen"] = _ts(dv["last_seen"], _INT64_MIN)
    t["active_days"] = _count_by(dk, aggs["sender_domain_day"].keys["sender_domain_key"])
    t["n_distinct_senders"] = _count_by(dk, sv["sender_domain_key"][n > 0])
    for c in _LABEL_COLUMNS + _AUTH_COLUMNS + ("n_outbound", "n_internal"):
        t[c] = dv[c].astype(np.int32)
    t["hour_histogram"] = _hours(dv["hour_histogram"])
    t["n_outbound_to"] = _align(dk, out.keys["recipient_domain_key"], out.values["n_messages"]).astype(np.int32)
    t["last_outbound_to"] = _ts(_align(dk, out.keys["recipient_domain_key"], out.values["last_seen"], _INT64_MIN),
                                _INT64_MIN)
    tables["sender_domain"] = t

    # ---------------------------------------------------------------- pair
    pv = expand(pair.values)
    pk = pair_keys(ps, pr)
    t = {"pair_key": pk, "sender_key": ps, "recipient_key": pr}
    recipients = _Factorized(pr)  # in no order: factorised once, for their strings and the mailboxes' counts
    if not private:
        t["sender"] = names.take(ps)
        t["recipient"] = names.take(recipients)
    t["n_messages"] = pv["n_messages"].astype(np.int32)
    t["n_inbound"] = pv["n_inbound"].astype(np.int32)
    t["first_seen"] = _ts(pv["first_seen"], _INT64_MAX)
    t["last_seen"] = _ts(pv["last_seen"], _INT64_MIN)
    for c in _LABEL_COLUMNS:
        t[c] = pv[c].astype(np.int32)
    if len(pk):
        from ._index import KeyIndex

        # A hash table over the pair keys (unsorted hashes, so pandas does not fall back to binary search).
        index = pd.Index(pk)
        reverse = index.get_indexer(pair_keys(pr, ps)) if index.is_unique else KeyIndex.build(pk).get(
            pair_keys(pr, ps))
        has = reverse >= 0
        rpos = np.maximum(reverse, 0)
        t["n_reverse"] = np.where(has, pv["n_messages"][rpos], 0).astype(np.int32)
        t["last_reverse"] = _ts(np.where(has, pv["last_seen"][rpos], _INT64_MIN), _INT64_MIN)
    else:
        t["n_reverse"] = np.zeros(0, np.int32)
        t["last_reverse"] = _ts(np.zeros(0, np.int64), _INT64_MIN)
    tables["pair"] = t

    # ---------------------------------------------------------------- recipient (tenant mailboxes)
    rec = aggs["recipient"]
    mailboxes = sk[(sv["n_outbound"] > 0) | (sv["n_internal"] > 0)]
    rk = np.union1d(rec.keys["recipient_key"], mailboxes).astype(np.uint64)
    rv = {c: _align(rk, rec.keys["recipient_key"], v) for c, v in expand(rec.values).items()}
    t = {"recipient_key": rk}
    if not private:
        t["recipient"] = names.take(rk)
    t.update(window_counts("recipient", "n_inbound", rk))
    t["n_inbound"] = rv["n_inbound"].astype(np.int32)
    t["n_internal"] = rv["n_internal"].astype(np.int32)
    inbound_pairs = pv["n_inbound"] > 0
    t["n_distinct_senders"] = recipients.count_by(rk, inbound_pairs)
    for c in _LABEL_COLUMNS:
        t[c] = rv[c].astype(np.int32)
    # A first-time sender's first message reached this mailbox: the pair began
    # when the sender did (messages at the same instant count once).
    runs = _runs(ps)  # pairs are sorted by sender: look each sender up once
    sender_first = np.repeat(_align(ps[runs], sk, sv["first_seen"], _INT64_MAX), np.diff(np.append(runs, len(ps))))
    first_time = inbound_pairs & (pv["first_seen"] == sender_first)
    t["n_first_time_inbound"] = recipients.count_by(rk, first_time)
    t["first_time_share"] = np.divide(t["n_first_time_inbound"], t["n_inbound"], out=np.zeros(len(rk)),
                                      where=t["n_inbound"] > 0).astype(np.float32)
    t["n_outbound"] = _align(rk, sk, sv["n_outbound"]).astype(np.int32)
    tables["recipient"] = t

    # ---------------------------------------------------------------- display_name
    dn, ds = disp.keys["display_name_key"], disp.keys["sender_key"]
    dc, di = disp.values["n_messages"], disp.values["n_internal"]
    starts = _runs(dn)  # sorted by name: one run of rows per name
    names_keys = dn[starts]
    first = np.zeros(len(dn), np.int64)
    first[starts] = 1
    run = np.cumsum(first) - 1  # each row's name
    t = {"display_name_key": names_keys}
    if not private:
        t["display_name"] = names.take(names_keys)
    t["n_messages"] = np.bincount(run, weights=dc, minlength=len(names_keys)).astype(np.int32)
    t["n_addresses"] = np.diff(np.append(starts, len(dn))).astype(np.int32)
    internal = np.bincount(run, weights=di, minlength=len(names_keys)).astype(np.int32)
    t["n_internal"] = internal
    t["is_internal"] = internal > 0
    lists = {"address_keys": ds, "address_counts": dc.astype(np.int32)}
    types = {"address_keys": pa.uint64(), "address_counts": pa.int32()}
    if not private:
        lists["addresses"] = names.take(ds)
        types["addresses"] = pa.string()
    t.update(_lists(names_keys, dn, lists, types))
    tables["display_name"] = t

    # ---------------------------------------------------------------- tenant
    ten = expand(aggs["tenant"].values)
    n_msg = int(ten["n_messages"][0]) if len(aggs["tenant"]) else 0
    t = {"tenant_key": np.zeros(1, np.uint64), "tenant_id": pa.array([state.tenant_id]),
         "as_of": pa.array([as_of], type=pa.timestamp("ns", tz="UTC"))}
    t.update(window_counts("tenant", "n_messages", np.zeros(1, np.uint64)))
    t["n_messages"] = np.array([n_msg], np.int64)
    t["n_edges"] = np.array([int(pv["n_messages"].sum())], np.int64)
    for c in ("n_inbound", "n_outbound", "n_internal") + _LABEL_COLUMNS:
        t[c] = np.array([int(ten[c][0]) if n_msg or len(aggs["tenant"]) else 0], np.int64)
    for c in ("n_safe", "n_attack", "n_spam"):
        t[c.replace("n_", "rate_")] = np.array([t[c][0] / n_msg if n_msg else 0.0])
    dec = decayed["tenant"].aggregate.values["n_messages"]
    t["decayed_messages"] = np.array([float(dec[0]) if len(dec) else 0.0])
    t["first_seen"] = _ts(np.array([ten["first_seen"][0] if len(aggs["tenant"]) else _INT64_MAX]), _INT64_MAX)
    t["last_seen"] = _ts(np.array([ten["last_seen"][0] if len(aggs["tenant"]) else _INT64_MIN]), _INT64_MIN)
    t["n_senders"] = np.array([int((n > 0).sum())], np.int64)
    t["n_mailboxes"] = np.array([len(rk)], np.int64)
    t["hour_histogram"] = _hours(ten["hour_histogram"]) if len(aggs["tenant"]) else \
        pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(24, np.int32)), 24)
    # Known contacts, for look-alike checks: every own domain (they send internal mail), then every
    # domain the tenant wrote to, then the `known_contact_domains` most corresponded-with others.
    own = dv["n_internal"] > 0
    written = tables["sender_domain"]["n_outbound_to"].astype(np.int64)  # every written-to domain has a row
    volume = dv["n_messages"].astype(np.int64) + written
    always = int((own | (written > 0)).sum())
    rank = np.lexsort((dk, -volume, ~(written > 0), ~own))[:always + config.known_contact_domains]
    known = dk[rank]
    t["known_contact_domain_keys"] = pa.array([known], type=pa.list_(pa.uint64()))
    if not private:
        t["known_contact_domains"] = pa.ListArray.from_arrays(pa.array([0, len(known)], pa.int32()),
                                                              names.take(known))
    tables["tenant"] = t
    return tables


def to_arrow(columns: dict[str, Any]) -> pa.Table:
    """A table of numpy/Arrow columns, in order."""
    return pa.table({name: (col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col))
                     for name, col in columns.items()})
