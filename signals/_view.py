"""What signals read from one tenant's snapshot, prepared once per snapshot.

Columns are zero-copy numpy views of the snapshot's Arrow tables (memory-mapped
when the snapshot comes from a store); timestamps are read as int64
nanoseconds; priors, the tenant hour profile, the known-contact domains and
their skeletons, and a hash index of (display name, address) pairs are
computed on first use and kept. A view without a snapshot answers for a
cold-start tenant: every lookup misses and likelihoods come from the global prior.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pyarrow as pa

from commgraph.baselines import DEFAULT_PRIOR, ENTITY_KINDS, KeyIndex, Snapshot, pair_keys, posterior_lower_bound
from commgraph.graph import ConfigError
from commgraph.graph._addresses import DISPLAY_NAME_FORM, display_names_then
from commgraph.graph._tenants import caller_stacklevel, may_be_own_domain

from ._privacy import TenantKeys, tenant_keys

if TYPE_CHECKING:
    from ._lookalike import LookalikeCache

__all__ = ["SnapshotView", "gather"]

_NAT = np.iinfo(np.int64).min
DAY_NS = 86_400 * 10**9


# The rows of the last positions array gathered from that were never seen: each batch gathers a
# dozen columns at the same positions, so the mask is made once. Only read-only positions (the
# batch's memoised rows) are remembered, so a caller cannot change them under the mask; the
# entry holds the array itself (identity means the same array) and is one tuple swapped whole,
# so threads see either the old entry or the new one and check it is theirs.
_LAST_MISSING: tuple[Any, np.ndarray, bool] = (None, np.zeros(0, bool), False)


def gather(column: np.ndarray, positions: np.ndarray, default: Any, dtype: str | None = None) -> np.ndarray:
    """``column[positions]`` with ``default`` where the position is -1 (key never seen)."""
    global _LAST_MISSING
    dtype = dtype or column.dtype
    if not len(column):
        return np.full(len(positions), default, dtype=dtype)
    out = column.take(positions, mode="clip").astype(dtype, copy=False)  # take always copies
    last = _LAST_MISSING
    if last[0] is positions:
        missing, any_missing = last[1], last[2]
    else:
        missing = positions < 0
        any_missing = bool(missing.any())
        if isinstance(positions, np.ndarray) and not positions.flags.writeable:
            _LAST_MISSING = (positions, missing, any_missing)
    if any_missing:
        out[missing] = default
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Below this many unresolved keys, the remaining collision chains are walked in Python.
_TAIL = 64


def _plain_keys(names: list[str]) -> np.ndarray:
    """The stable keys (no secret) of normalised strings."""
    from commgraph.graph._keys import each_key

    return each_key(names) if names else np.zeros(0, np.uint64)


def _receiving_domains(view: "SnapshotView") -> tuple[str, ...]:
    """Own domains of a snapshot whose own domains never sent (an inbound-only feed): the domains receiving most
    of its inbound mail, chosen as :func:`commgraph.graph.infer_own_domains` chooses (consumer providers and
    public suffixes never)."""
    import pandas as pd

    from commgraph.graph import infer_own_domains, registrable_domains

    if not view.has_column("recipient", "recipient"):
        return ()
    inbound = view.column("recipient", "n_inbound").astype(np.int64)
    received = np.flatnonzero(inbound > 0)
    if not len(received):
        return ()
    addresses = view.snapshot.arrow("recipient").column("recipient").take(pa.array(received)).to_pylist()
    domains = registrable_domains(pd.Series([a.rpartition("@")[2] for a in addresses], dtype="string"))
    tenant = pd.Series([view.tenant_id] * len(received), dtype=object)
    return infer_own_domains(tenant, domains, weights=inbound[received]).get(view.tenant_id, ())


def probe(index: KeyIndex, queries: np.ndarray) -> np.ndarray:
    """Row positions of uint64 keys in a :class:`KeyIndex` (-1 where absent), as ``index.get``.

    The same layout (Fibonacci hashing, linear probing; part of the snapshot
    format), probed with fewer numpy calls: one round for every key, further
    rounds only while many keys are still unresolved, then the few long
    collision chains in Python. ``KeyIndex.get`` runs a full round of numpy
    calls per probe step, which costs most at the batch sizes an engine sends.
    """
    keys, slots = index.keys, index.slots
    n = len(queries)
    out = np.full(n, -1, np.int64)
    if not len(keys) or not n:
        return out
    size = len(slots)
    mask = size - 1
    with np.errstate(over="ignore"):
        pos = ((queries * _GOLDEN) >> np.uint64(64 - (size.bit_length() - 1))).astype(np.int64)
    row = slots.take(pos)
    occupied = row >= 0
    hit = occupied & (keys.take(np.maximum(row, 0)) == queries)
    out[hit] = row[hit]
    pending = np.flatnonzero(occupied & ~hit)
    pos = pos[pending]
    while len(pending) > _TAIL:
        pos = (pos + 1) & mask
        row = slots.take(pos)
        occupied = row >= 0
        hit = occupied & (keys.take(np.maximum(row, 0)) == queries[pending])
        out[pending[hit]] = row[hit]
        keep = occupied & ~hit
        pending, pos = pending[keep], pos[keep]
    if len(pending):
        # Memoryviews: indexing one with a Python int is several times cheaper than a numpy array.
        slot_view, key_view = memoryview(np.ascontiguousarray(slots)), memoryview(np.ascontiguousarray(keys))
        for i, p, q in zip(pending.tolist(), pos.tolist(), queries[pending].tolist()):
            while True:
                p = (p + 1) & mask
                r = slot_view[p]
                if r < 0:
                    break
                if key_view[r] == q:
                    out[i] = r
                    break
    return out


def _flat_lists(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list column."""
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return arr.offsets.to_numpy().astype(np.int64), arr.flatten().to_numpy(zero_copy_only=False)


class SnapshotView:
    """Prepared reads of one tenant's snapshot (or of none, for a cold start).

    Parameters
    ----------
    snapshot : Snapshot or None
        The tenant's snapshot; None for a tenant without one (cold start).
    tenant_id : str, optional
        Required when ``snapshot`` is None.
    global_priors : mapping, optional
        Per entity kind ``{"alpha", "beta"}``, for a cold start (default: uniform).
    secret : bytes or TenantKeys, optional
        The tenant's secret, required for a privacy-mode snapshot and refused
        for any other (see :func:`tenant_keys`); the view's ``keys`` then key
        mail as the snapshot was keyed. A :class:`TenantKeys` (checked the
        same way) is used as it is: views of one tenant share its memo.

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> view = SnapshotView(_example())
    >>> view.lookup("sender", np.array([0], dtype=np.uint64)).tolist()
    [-1]
    >>> round(SnapshotView(None, tenant_id="new").prior_mean["sender"], 2)
    0.5
    """

    def __init__(self, snapshot: Snapshot | None, *, tenant_id: str | None = None,
                 global_priors: Mapping[str, Mapping[str, float]] | None = None,
                 secret: bytes | TenantKeys | None = None):
        if snapshot is None and tenant_id is None:
            raise ConfigError("a SnapshotView without a snapshot needs the tenant_id")
        #: How mail is keyed for this snapshot: None for plain keys, else the tenant's secret keying.
        self.keys: TenantKeys | None = None
        if snapshot is not None:
            given = secret if isinstance(secret, TenantKeys) else None
            if given is not None and given.tenant_id != snapshot.tenant_id:
                raise ConfigError(f"the keying of tenant {given.tenant_id!r} was given for the snapshot of tenant "
                                  f"{snapshot.tenant_id!r}; tenants never share secrets: give each its own")
            self.keys = tenant_keys(snapshot, given.secret if given is not None else secret)
            if given is not None and self.keys is not None:
                self.keys = given  # the same secret, checked: one memo for the tenant
        if snapshot is not None and snapshot.display_name_form != DISPLAY_NAME_FORM:
            warnings.warn(f"the snapshot of tenant {snapshot.tenant_id!r} was built by an earlier commgraph, whose "
                          f"display names {display_names_then(snapshot.display_name_form)}: mail whose display name "
                          "has them finds no match in it until the tenant is built again in full (commgraph refresh "
                          "does so by itself for such snapshots)", UserWarning, stacklevel=caller_stacklevel())
        self.snapshot = snapshot
        self.tenant_id = snapshot.tenant_id if snapshot is not None else str(tenant_id)
        self.as_of_ns = snapshot.as_of.value if snapshot is not None else None
        self.cold = snapshot is None
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.RLock()  # builders may use other built-once values
        self._cache: dict[str, Any] = {}
        # The single-message path reads these on every call: attributes, no lock, no lookup.
        self._scalar: Any = None
        self._builtin_one: Any = None
        level = snapshot.config.credible_level if snapshot is not None else 0.95
        self.prior: dict[str, tuple[float, float]] = {}
        for kind in ENTITY_KINDS:
            if snapshot is not None:
                p = snapshot.priors[kind]
            else:
                p = (global_priors or {}).get(kind) or {"alpha": DEFAULT_PRIOR[0], "beta": DEFAULT_PRIOR[1]}
            self.prior[kind] = (float(p["alpha"]), float(p["beta"]))
        self.prior_mean = {k: a / (a + b) for k, (a, b) in self.prior.items()}
        self.prior_lower = {k: float(posterior_lower_bound(np.zeros(1), np.zeros(1), a, b, level=level)[0])
                            for k, (a, b) in self.prior.items()}

    # ------------------------------------------------------------------ columns and lookups
    def has_column(self, table: str, column: str) -> bool:
        if self.snapshot is None:
            return False
        names = self._once(f"columns.{table}", lambda: frozenset(self.snapshot.arrow(table).column_names))
        return column in names

    def column(self, table: str, column: str) -> np.ndarray:
        """A numeric column (timestamps as int64 ns, NaT as the int64 minimum); empty for a cold start."""
        key = (table, column)
        found = self._columns.get(key)
        if found is not None:
            return found
        if self.snapshot is None:
            values = np.zeros(0, np.int64)
        else:
            arrow = self.snapshot.arrow(table).column(column)
            if pa.types.is_timestamp(arrow.type):
                filled = arrow.cast(pa.int64()).fill_null(_NAT)
                values = filled.to_numpy()
            elif pa.types.is_boolean(arrow.type):
                values = arrow.to_numpy().astype(np.int8)
            else:
                values = self.snapshot.column(table, column)
        self._columns[key] = values
        return values

    def lookup(self, table: str, keys: np.ndarray) -> np.ndarray:
        """Row positions (int64) of uint64 keys in a table, -1 where absent."""
        if self.snapshot is None:
            return np.full(len(keys), -1, np.int64)
        return probe(self.snapshot.index(table), np.asarray(keys, dtype=np.uint64))

    def index(self, table: str) -> KeyIndex | None:
        return None if self.snapshot is None else self.snapshot.index(table)

    def _once(self, name: str, build) -> Any:
        value = self._cache.get(name)
        if value is None:
            with self._lock:
                value = self._cache.get(name)
                if value is None:
                    value = build()
                    self._cache[name] = value
        return value

    def memo(self, name: str) -> dict:
        """A dictionary that lives as long as this view: a caller's memo of answers derived from it.

        A reload brings a new view, so such a memo never outlives the snapshot it was derived from.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> view = SnapshotView(_example())
        >>> view.memo("own_domain") is view.memo("own_domain"), view.memo("own_domain") is view.memo("other")
        (True, False)
        """
        return self._once(f"memo:{name}", dict)

    # ------------------------------------------------------------------ derived, built once
    def hours(self, table: str) -> np.ndarray:
        """The (rows, 24) hour histogram of a table (UTC hours)."""
        def build() -> np.ndarray:
            if self.snapshot is None:
                return np.zeros((0, 24), np.int32)
            col = self.snapshot.arrow(table).column("hour_histogram")
            arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, 24)
        return self._once(f"hours.{table}", build)

    def tenant_hour_profile(self) -> np.ndarray:
        """The tenant's hour distribution, Laplace-smoothed (24 floats summing to 1)."""
        def build() -> np.ndarray:
            h = self.hours("tenant")
            counts = h[0].astype(np.float64) if len(h) else np.zeros(24)
            return (counts + 1.0) / (counts.sum() + 24.0)
        return self._once("tenant_hours", build)

    def name_pairs(self) -> tuple[KeyIndex | None, np.ndarray, np.ndarray]:
        """Index of (display name, address) pairs, their message counts and active days (-1: not in the snapshot)."""
        def build():
            if self.snapshot is None or not self.snapshot.arrow("display_name").num_rows:
                return (None, np.zeros(0, np.int32), np.zeros(0, np.int32))
            table = self.snapshot.arrow("display_name")
            offsets, address_keys = _flat_lists(table.column("address_keys"))
            _, counts = _flat_lists(table.column("address_counts"))
            names = self.column("display_name", "display_name_key")
            owner = np.repeat(names, np.diff(offsets))
            keys = pair_keys(owner, address_keys.astype(np.uint64))
            if "address_active_days" in table.column_names:
                _, days = _flat_lists(table.column("address_active_days"))
            else:
                days = np.full(len(keys), -1, np.int32)
            return (KeyIndex.build(keys), counts.astype(np.int32), days.astype(np.int32))
        return self._once("name_pairs", build)

    def written_to(self) -> tuple[KeyIndex | None, np.ndarray, np.ndarray]:
        """Per address the tenant wrote to: messages sent to it and the last time, from the pair table.

        The sender table's ``n_written_to`` covers only addresses that also sent
        mail; a vendor's first reply to the tenant is exactly the case it misses,
        so the signals derive the complete figures from the pairs (outbound and
        internal messages are the pair's messages minus its inbound ones).
        """
        def build():
            if self.snapshot is None or not self.snapshot.arrow("pair").num_rows:
                return (None, np.zeros(0, np.int32), np.zeros(0, np.int64))
            n = self.column("pair", "n_messages").astype(np.int64) - self.column("pair", "n_inbound")
            wrote = n > 0
            keys, n, last = self.column("pair", "recipient_key")[wrote], n[wrote], self.column("pair", "last_seen")[wrote]
            order = np.argsort(keys, kind="stable")
            keys, n, last = keys[order], n[order], last[order]
            uniq, start = np.unique(keys, return_index=True)
            if not len(uniq):
                return (None, np.zeros(0, np.int32), np.zeros(0, np.int64))
            return (KeyIndex.build(uniq), np.add.reduceat(n, start).astype(np.int32),
                    np.maximum.reduceat(last, start))
        return self._once("written_to", build)

    def known_domains(self) -> tuple[list[str], list[str], dict[str, int]]:
        """The tenant's own and known-contact domains, their skeletons and positions."""
        return self._once("known_domains", lambda: self._known_domains({}))

    def _known_domains(self, skeletons: Mapping[str, str]) -> tuple[list[str], list[str], dict[str, int]]:
        """:meth:`known_domains`, taking the skeletons of the domains in ``skeletons`` from there."""
        from ._lookalike import skeleton

        if self.snapshot is None or "known_contact_domains" not in self.snapshot.arrow("tenant").column_names:
            return ([], [], {})
        values = self.snapshot.arrow("tenant").column("known_contact_domains").to_pylist()
        known = [d for d in (values[0] or []) if d]
        return (known, [skeletons.get(d) or skeleton(d) for d in known], {d: i for i, d in enumerate(known)})

    def comparison(self, own: tuple[str, ...] = ()) -> tuple[tuple[list[str], list[str], dict[str, int]],
                                                             LookalikeCache]:
        """What a sender domain is compared with, given the tenant's own domains: the domains, skeletons and
        positions (as :meth:`known_domains`), and the cache of domains checked against them.

        The snapshot's known list plus the ``own`` domains not on it
        (:func:`~commgraph.signals._lookalike.compared_with`): the own domains
        as configured (the scorer's ``tenant_configs``, or
        :attr:`Messages.configured_own_domains`). When ``own`` adds none, these are
        :meth:`known_domains` and :meth:`lookalike_cache` themselves (seeded,
        shared with the live overlay); else a list and cache of their own, made
        once per ``own``. A privacy-mode view compares with nothing, ``own``
        included (its distance is the cap, as documented for privacy mode).

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> view = SnapshotView(_example())
        >>> view.comparison()[0] is view.known_domains(), view.comparison(("acme-brand.com",))[0][0][-1]
        (True, 'acme-brand.com')
        """
        known = self.known_domains()
        if not own or self.keys is not None or all(d in known[2] for d in own):
            return known, self.lookalike_cache()

        def build() -> tuple[tuple[list[str], list[str], dict[str, int]], LookalikeCache]:
            from ._lookalike import LookalikeCache, compared_with, skeleton

            domains = compared_with(known[0], own)
            skeletons = known[1] + [skeleton(d) for d in domains[len(known[0]):]]
            return (domains, skeletons, {d: i for i, d in enumerate(domains)}), LookalikeCache()
        return self._once("comparison:" + "\0".join(own), build)

    def own_domain_keys(self) -> frozenset[int]:
        """Keys of the tenant's own domains (:meth:`own_domains`; in privacy mode, of the sender domains that
        send as the tenant, which have keys only)."""
        def build():
            if self.snapshot is None:
                return frozenset()
            if self.keys is None:
                names = self.own_domains()
                return frozenset(int(k) for k in _plain_keys(list(names)))
            keys = self.column("sender_domain", "sender_domain_key")
            return frozenset(int(k) for k in keys[self.own_domain_mask()])
        return self._once("own_domains", build)

    def own_domains(self) -> tuple[str, ...]:
        """The tenant's own domains as its snapshot shows them (names; none in privacy mode).

        The sender domains that send as the tenant (:meth:`own_domain_mask`);
        for a snapshot with none (an inbound-only feed), the domains of the
        mailboxes receiving its inbound mail, chosen as
        :func:`commgraph.graph.infer_own_domains` chooses from a history. Read
        off the whole history, never off a batch being scored: one crafted
        message cannot make its sender's domain the tenant's.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> SnapshotView(_example()).own_domains()
        ('acme.com',)
        """
        def build():
            if self.snapshot is None or not self.has_column("sender_domain", "sender_domain"):
                return ()
            names = self.snapshot.arrow("sender_domain").column("sender_domain").to_numpy(zero_copy_only=False)
            # (a public suffix, say github.io with a page's mail relayed outward, is nobody's own domain)
            own = tuple(str(d) for d in names[self.own_domain_mask()] if isinstance(d, str) and may_be_own_domain(d))
            return own or _receiving_domains(self)
        return self._once("own_domain_names", build)

    def scalar(self) -> Any:
        """Scalar probes and reads for the single-message path (built once)."""
        found = self._scalar
        if found is None:
            from ._scalar import ScalarTables

            found = self._scalar = self._once("scalar", lambda: ScalarTables(self))
        return found

    def builtin_one(self) -> Any:
        """Every built-in signal of one message in one pass (:class:`BuiltinOne`, built once)."""
        found = self._builtin_one
        if found is None:
            from ._builtin_one import BuiltinOne

            found = self._builtin_one = self._once("builtin_one", lambda: BuiltinOne(self))
        return found

    def hour_totals(self, table: str) -> np.ndarray:
        """Messages per row of a table's hour histogram (int64)."""
        return self._once(f"hour_totals.{table}", lambda: self.hours(table).sum(axis=1, dtype=np.int64))

    def own_domain_mask(self) -> np.ndarray:
        """Rows of the sender_domain table that send as the tenant (internal or outbound mail) more often than
        they write to it: its own domains, but for the consumer providers and public suffixes among them, which
        :meth:`own_domains` (by name) and the scorer (a privacy-mode snapshot's keys, by the name asked) leave out.

        A majority, not any such message: a partner's mail re-sent outward by a
        mailbox's redirect rule keeps its From and is logged outbound, and would
        otherwise make the partner's domain the tenant's, and its mail internal.
        """
        n = self.column("sender_domain", "n_messages").astype(np.int64)
        sent_as = self.column("sender_domain", "n_internal").astype(np.int64) + self.column("sender_domain",
                                                                                            "n_outbound")
        return sent_as > n - sent_as

    def lookalike_cache(self) -> LookalikeCache:
        """Sender domains already checked: distance and position of the nearest known domain."""
        from ._lookalike import LookalikeCache

        return self._once("lookalike", LookalikeCache)

    def share_lookalikes(self, other: "SnapshotView") -> bool:
        """Reuse another view's known domains and look-alike results when both know the same domains.

        A sender domain's nearest known domain depends on that list alone: when
        both views have the same list, the refreshed one (the live overlay)
        skips re-skeletonising it and re-checking every domain. When the lists
        differ, only the skeletons of the domains in both are taken, and False
        is returned (the look-alike results are not shared).

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> base, again = SnapshotView(_example()), SnapshotView(_example())
        >>> again.share_lookalikes(base), again.lookalike_cache() is base.lookalike_cache()
        (True, True)
        """
        if self.snapshot is None or other.snapshot is None:
            return False
        mine, theirs = self.snapshot.arrow("tenant"), other.snapshot.arrow("tenant")
        name = "known_contact_domains"
        if name not in mine.column_names or name not in theirs.column_names:
            return False
        known, cache = other.known_domains(), other.lookalike_cache()
        if not mine.column(name).equals(theirs.column(name)):
            self._once("known_domains", lambda: self._known_domains(dict(zip(known[0], known[1]))))
            return False
        with self._lock:
            self._cache["known_domains"] = known
            self._cache["lookalike"] = cache  # one cache: a domain checked through either view serves both
            # The lists with configured own domains appended are equal too (the same list, the same domains after it).
            self._cache.update((k, v) for k, v in list(other._cache.items()) if k.startswith("comparison:"))
        return True

    def __repr__(self) -> str:
        mode = ", cold start" if self.cold else ", privacy mode" if self.keys is not None else ""
        return f"SnapshotView({self.tenant_id!r}{mode})"
