"""Baseline columns as of many instants at once: what a snapshot would hold for each message's own keys.

:class:`AsOfTables` takes one tenant's messages and edges and answers, for
every message (or edge) and an instant of its own, the columns its sender,
sender domain, pair, recipient and display name would have in a snapshot built
as of that instant: the same statistics as :func:`derive_tables`, each read off
a :class:`Timeline` (sorted by key and time) instead of being aggregated again
per instant. Distinct counts count first occurrences (a pair counts from its
first edge), and the known-contact domain list follows the ranking a snapshot
uses, through time.

It is the engine of leak-free backfill (``commgraph.signals.backfill``): with
each message's own timestamp as its instant, every column uses only mail
strictly before that message, and labels only once known.
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np
import pandas as pd

from ._build import _outcomes
from ._config import BaselineConfig, duration_ns
from ._events import DAY_NS, FAILS, HOUR_NS, INBOUND, INTERNAL, OUTBOUND, PASS, domain_heads
from ._pointintime import (NAT, OutcomeChanges, QueryOrder, Timeline, code_order, dense_codes, outcome_changes,
                           subset_order)
from ._priors_in_time import TenantOutcomes
from ._sweeps import (compress, first_flagged, first_per_group, flagged_runs, own_count_last, pairs_in_order,
                      reverse_pairs)
from ._smoothing import posterior_lower_bound, posterior_mean
from ._own_time import first_used, follow_top, own_hour_counts, own_pair_counts, standing_in_time

__all__ = ["AsOfTables", "MESSAGE_FIELDS", "EDGE_FIELDS", "smoothed"]

#: Per message: what :class:`AsOfTables` reads (times int64 ns, NaT as int64 min; codes int8, -1 missing).
MESSAGE_FIELDS = ("timestamp", "sender_key", "sender_domain_key", "display_name_key", "direction", "label",
                  "labeled_at", "spf", "dkim", "dmarc")
#: Per edge: its message's position, and the recipient's keys.
EDGE_FIELDS = ("edge_message", "recipient_key", "recipient_domain_key")
_AUTH = ("spf", "dkim", "dmarc")
_LABEL_COLUMNS = ("n_safe", "n_attack", "n_spam", "n_presumed_safe")
# Packed known-contact ranking: own domain, then written to, then volume (below 2**41).
_OWN, _WRITTEN = 1 << 42, 1 << 41


def smoothed(columns: Mapping[str, np.ndarray], alpha: np.ndarray | float, beta: np.ndarray | float,
             config: BaselineConfig, *, lower: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``likelihood_safe`` and ``likelihood_safe_lower`` (float32) from label columns and each row's prior.

    The same outcomes (label policy) and posteriors as a snapshot's tables;
    ``lower=False`` skips the credible bound (None).

    Examples
    --------
    >>> cols = {"n_safe": np.array([0, 3]), "n_attack": np.array([0, 1]), "n_spam": np.array([0, 0]),
    ...         "n_presumed_safe": np.array([0, 0])}
    >>> mean, lower = smoothed(cols, 1.0, 1.0, BaselineConfig())
    >>> mean.tolist()
    [0.5, 0.6666666865348816]
    """
    k, n = _outcomes(columns, config)
    mean = posterior_mean(k, n, alpha, beta).astype(np.float32)
    if not lower:
        return mean, None
    return mean, posterior_lower_bound(k, n, alpha, beta, level=config.credible_level, dtype=np.float32)


class AsOfTables:
    """One tenant's baseline columns as of an instant per message (or edge), for the message's own keys.

    Parameters
    ----------
    messages : mapping of str to ndarray
        :data:`MESSAGE_FIELDS`, one value per message.
    edges : mapping of str to ndarray
        :data:`EDGE_FIELDS`, one value per (message, recipient).
    config : BaselineConfig
        Windows, half-life, label policy, settle delay, known-contact list length.

    Every method takes ``instants`` (int64 ns), one per message; edge-level
    methods value each edge at its message's instant. Only events strictly
    before an instant count.

    Examples
    --------
    >>> day = 86_400 * 10**9
    >>> m = {"timestamp": np.array([0, day, 2 * day]), "sender_key": np.array([5, 5, 6], dtype=np.uint64),
    ...      "sender_domain_key": np.array([1, 1, 2], dtype=np.uint64),
    ...      "display_name_key": np.zeros(3, np.uint64), "direction": np.zeros(3, np.int8),
    ...      "label": np.array([-1, -1, -1], dtype=np.int8), "labeled_at": np.full(3, NAT),
    ...      "spf": np.full(3, -1, np.int8), "dkim": np.full(3, -1, np.int8), "dmarc": np.full(3, -1, np.int8)}
    >>> e = {"edge_message": np.array([0, 1, 2]), "recipient_key": np.array([9, 9, 9], dtype=np.uint64),
    ...      "recipient_domain_key": np.array([3, 3, 3], dtype=np.uint64)}
    >>> t = AsOfTables(m, e, BaselineConfig())
    >>> t.sender(m["timestamp"])["n_messages"].tolist()  # each message sees the mail before it
    [0, 1, 0]
    >>> t.pair(m["timestamp"])["n_messages"].tolist()
    [0, 1, 0]
    """

    def __init__(self, messages: Mapping[str, np.ndarray], edges: Mapping[str, np.ndarray], config: BaselineConfig):
        self.config = config
        self.ts = np.asarray(messages["timestamp"], dtype=np.int64)
        self.direction = np.asarray(messages["direction"], dtype=np.int8)
        self.label = np.asarray(messages["label"], dtype=np.int8)
        self.labeled_at = np.asarray(messages["labeled_at"], dtype=np.int64)
        self.auth = {a: np.asarray(messages[a], dtype=np.int8) for a in _AUTH}
        self.edge_message = np.asarray(edges["edge_message"], dtype=np.int64)
        (self.s, self.r), self.addresses = dense_codes(messages["sender_key"], edges["recipient_key"])
        (self.d, self.rd), self.domains = dense_codes(messages["sender_domain_key"], edges["recipient_domain_key"])
        name_key = np.asarray(messages["display_name_key"], dtype=np.uint64)
        (name,), _ = dense_codes(name_key)
        self.name = np.where(name_key != 0, name, -1)
        self.es = self.s[self.edge_message]
        self.ets = self.ts[self.edge_message]
        self.edir = self.direction[self.edge_message]
        self.n_addr = len(self.addresses)
        self.n_dom = len(self.domains)
        self.windows = {n: duration_ns(w) for n, w in zip(config.window_names, config.windows)}
        self.half_life = duration_ns(config.half_life)

    # ------------------------------------------------------------------ timelines, built on first use
    @cached_property
    def _by_time(self) -> np.ndarray:
        return np.argsort(self.ts, kind="stable")

    @cached_property
    def _edges_by_time(self) -> np.ndarray:
        return np.argsort(self.ets, kind="stable")

    def _own(self, instants: np.ndarray, times: np.ndarray) -> bool:
        """Whether every row is asked about at its own time (fresh): then no binary search is needed."""
        if instants is times:
            return True
        # (asked hundreds of times per backfill: refresh boundaries (as deployed) mostly differ from the first or
        # last row's own time already, where a whole comparison is a pass over a million rows each time)
        return len(instants) == len(times) and (not len(times) or bool(
            instants[0] == times[0] and instants[-1] == times[-1] and np.array_equal(instants, times)))

    def _before(self, tl: Timeline, codes: np.ndarray, instants: np.ndarray, times: np.ndarray,
                shifts: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """``tl.before(codes, instants)``; rows asked at their own times (fresh) need no search, and their
        answers at ``instants - shift`` for each of ``shifts`` come out of the same walk, for
        :meth:`_before_shifted` to find."""
        if not self._own(instants, times):
            return tl.before(codes, instants, self._order(codes, instants))
        lo, hi, his = tl.before_own_shifts(shifts)
        times = self._canonical(instants)
        for s, shifted in zip(shifts, his):
            self._shifted[(id(tl), id(codes), id(times), s)] = (tl, codes, times, (lo, shifted))
        return lo, hi

    def _before_shifted(self, tl: Timeline, codes: np.ndarray, instants: np.ndarray, shift: int,
                        also: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """``tl.before(codes, instants - shift)``, found once per timeline, arrays and shift: a window as
        long as the settle delay (7 days by default) asks the sender timeline what the presumptions ask.

        ``also``: the other shifts the caller asks next (window lengths, the settle delay): walked in
        the same pass (:meth:`Timeline.before_shifts`).
        """
        instants = self._canonical(instants)

        def found(s: int) -> tuple | None:
            # (the arrays are kept with the answer, so their ids stay theirs)
            hit = self._shifted.get((id(tl), id(codes), id(instants), s))
            return hit if hit is not None and hit[0] is tl and hit[1] is codes and hit[2] is instants else None

        if found(shift) is None:
            missing = [s for s in dict.fromkeys((shift, *also)) if found(s) is None]
            lo, his = tl.before_shifts(codes, instants, missing, self._order(codes, instants))
            for s, hi in zip(missing, his):
                self._shifted[(id(tl), id(codes), id(instants), s)] = (tl, codes, instants, (lo, hi))
        return found(shift)[3]

    @cached_property
    def _shifted(self) -> dict[tuple[int, int, int, int], tuple]:
        return {}

    @cached_property
    def _orders(self) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, QueryOrder]]:
        return {}

    def _order(self, codes: np.ndarray, instants: np.ndarray) -> QueryOrder:
        """The :class:`QueryOrder` of (codes, instants), sorted once per pair of arrays and reused by every
        timeline asked about them (the arrays are kept with it, so their ids stay theirs), with the queries
        gathered in its order once for every walk over them."""
        instants = self._canonical(instants)
        key = (id(codes), id(instants))
        found = self._orders.get(key)
        if found is None or found[0] is not codes or found[1] is not instants:
            order = None
            by_time = self._time_order(instants)
            if by_time is not None:  # the rows' own time order sorts the instants: no sort of them
                timeline = "_sender" if codes is self.s else "_domain" if codes is self.d else None
                if timeline is not None and by_time is self._by_time:
                    # The timeline's (code, time) order, made from that time order, sorts these queries too; when
                    # the instants are the messages' own times, its events are these queries sorted.
                    tl = getattr(self, timeline)
                    order = QueryOrder(by_time, tl.order).keeping(codes, instants, tl.codes,
                                                                  tl.times if instants is self.ts else None)
                else:
                    order = QueryOrder(by_time, code_order(np.maximum(codes, 0), by_time)).keeping(codes, instants)
            found = self._orders[key] = (codes, instants, QueryOrder.of(codes, instants, keep=True)
                                         if order is None else order)
        return found[2]

    @cached_property
    def _instant_orders(self) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        return {}

    def _time_order(self, instants: np.ndarray) -> np.ndarray | None:
        """The messages' or the edges' time order when ``instants`` never decrease along it, else None.

        The rows' own times (fresh) do by definition; the instants of refresh boundaries (as deployed: a
        non-decreasing function of each row's time) do too, found by one gather and pass per instants array,
        where a stable argsort of them was made again for every code array asked about them (seven per
        tenant). Any order along which the instants never decrease sorts the queries by (code, instant) once
        their codes are dealt stably into slots (:func:`code_order`), and every walk answers a query from its
        code and instant alone: queries equal in both, in whichever order, get the same answers.
        """
        for times, by_time in ((self.ts, "_by_time"), (self.ets, "_edges_by_time")):
            if self._own(instants, times):
                return getattr(self, by_time)
        found = self._instant_orders.get(id(instants))
        if found is None or found[0] is not instants:
            order = None
            for times, by_time in ((self.ts, "_by_time"), (self.ets, "_edges_by_time")):
                if len(instants) == len(times):
                    along = instants[getattr(self, by_time)]
                    if bool((along[1:] >= along[:-1]).all()):
                        order = getattr(self, by_time)
                        break
            found = self._instant_orders[id(instants)] = (instants, order)
        return found[1]

    def _canonical(self, instants: np.ndarray) -> np.ndarray:
        """``self.ts`` or ``self.ets`` when ``instants`` equals them (the rows' own times), else ``instants``:
        query orders of equal arrays are sorted once."""
        for times in (self.ts, self.ets):
            if self._own(instants, times):
                return times
        return instants

    @cached_property
    def _edge_instants(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return {}

    def _at_edges(self, instants: np.ndarray) -> np.ndarray:
        """Each edge's instant (its message's), one array per instants array (so query orders are reused); the
        edges' own times when the messages are asked about at theirs (fresh): no gather, and every later check
        of the instants against the edges' times is one identity test, not a comparison of every edge."""
        if self._own(instants, self.ts):
            return self.ets
        found = self._edge_instants.get(id(instants))
        if found is None or found[0] is not instants:
            found = self._edge_instants[id(instants)] = (instants, instants[self.edge_message])
        return found[1]

    @cached_property
    def _sender(self) -> Timeline:
        return Timeline(self.s, self.ts, self.n_addr, self._by_time)

    @cached_property
    def _domain(self) -> Timeline:
        return Timeline(self.d, self.ts, self.n_dom, self._by_time)

    @cached_property
    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per edge its (sender, recipient) pair's code; the edges sorted by (pair, time); and each pair's key
        ``sender * n_addr + recipient``, increasing (pairs are numbered in that order).

        The edges' (recipient, time) order, sorted stably by sender, is the (pair, time) order: one compiled
        counting pass carrying the recipients and times along (kept in that order with the edges' query order:
        no gather), and one numbering the pairs (:func:`._sweeps.pairs_in_order`), instead of hashing every
        edge's pair and sorting the codes again.
        """
        rows = self._order(self.r, self.ets)
        recipients, times = rows.gathered(self.r, self.ets)
        codes, order, sorted_codes, sorted_times, keys = pairs_in_order(self.es[rows.by_key], rows.by_key, recipients,
                                                                        times, self.n_addr)
        # (for the pair timeline and the first edges of pairs: no gather again)
        self._sorted_pair_codes, self._sorted_pair_times = sorted_codes, sorted_times
        return codes, order, keys

    @cached_property
    def _pair(self) -> Timeline:
        codes, order, keys = self._pairs
        return Timeline(self._sorted_pair_codes, self._sorted_pair_times, len(keys), key_order=order, presorted=True)

    def _first_in_pairs(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first edge (in time) among ``edges`` (a mask) of each pair that has one, and that pair's code."""
        _, order, _ = self._pairs
        return first_flagged(order, self._sorted_pair_codes, edges)  # (one compiled pass along the pairs)

    @cached_property
    def _pair_first(self) -> np.ndarray:
        """Per pair, the time of its first edge."""
        pair = self._pair
        return pair.times[pair.starts[:-1]]

    @cached_property
    def _new_pairs(self) -> np.ndarray:
        """Per message, the pairs whose first edge it carries: its sender's distinct recipients grow by these."""
        pair = self._pair
        return np.bincount(self.edge_message[pair.order[pair.starts[:-1]]], minlength=len(self.ts))

    @cached_property
    def _head_of_sender(self) -> np.ndarray:
        """Per message, whether it is its sender's first (in time): the sender starts to count for its domain."""
        tl = self._sender
        flags = np.zeros(len(self.ts), dtype=bool)
        flags[tl.order] = tl.new_run()
        return flags

    @cached_property
    def _outbound(self) -> np.ndarray:
        return self.edir == OUTBOUND

    @cached_property
    def _domain_heads(self) -> np.ndarray:
        """One outbound edge per (message, recipient domain): the tenant's mail to a domain counts messages."""
        if len(self.edge_message) and bool((self.edge_message[1:] >= self.edge_message[:-1]).all()):
            # Edges message by message (as a batch lists them): one compiled pass, no sort of packed keys.
            return first_per_group(self.edge_message, self._outbound, self.rd, self.n_dom)
        return domain_heads(self.edge_message, self._outbound, self.rd)

    @cached_property
    def _domain_out(self) -> Timeline:
        out = self._domain_heads
        return Timeline(compress(out, self.rd), compress(out, self.ets), self.n_dom,
                        subset_order(self._edges_by_time, out))

    @cached_property
    def _inbound(self) -> Timeline:
        # Of all edges' rows: an edge asked about at its own instant needs no search.
        return Timeline.of_rows(self.r, self.ets, self.n_addr, self._order(self.r, self.ets), self.edir == INBOUND)

    @cached_property
    def _first_time_inbound(self) -> np.ndarray:
        """Per inbound edge (edge order), True where a recipient's first-time inbound count grows: the first inbound
        edge of a pair, when it came with its sender's first message."""
        inbound = self.edir == INBOUND
        edge, _ = self._first_in_pairs(inbound)
        sender = self._sender
        keep = self.ets[edge] == sender.times[sender.starts[self.es[edge]]]
        flags = np.zeros(len(self.ets), bool)  # a byte per edge: its prefix gathers bytes, not int64
        flags[np.compress(keep, edge)] = True
        return compress(inbound, flags)

    @cached_property
    def _written_to(self) -> tuple[Timeline, np.ndarray, np.ndarray]:
        # The pairs a mailbox wrote on (outbound or internal edges); each counts, with its last edge
        # of any direction, from its first such edge on.
        codes, order, keys = self._pairs
        wrote = self.edir != INBOUND
        # Which edges' pairs were written on, and whether an edge comes before its pair's first written one: one
        # compiled pass along the pairs (no first written time per pair, gathered per edge and compared).
        keep, waits = flagged_runs(order, self._sorted_pair_codes, self._sorted_pair_times, wrote)
        if not waits:
            # No edge waits for its pair's first written one (the usual case: a pair's edges all go one way):
            # each counts at its own time, and the edges' (recipient, time) order holds the timeline's order,
            # with the last times along it running maxima already.
            tl = Timeline.of_rows(self.r, self.ets, self.n_addr, self._order(self.r, self.ets), keep)
            return tl, tl.prefix(compress(keep, wrote)), tl.times
        first_wrote = np.full(len(keys), np.iinfo(np.int64).max)
        edge, code = self._first_in_pairs(wrote)  # the earliest (pairs sorted by time): no ufunc.at minimum
        first_wrote[code] = self.ets[edge]
        since = first_wrote[codes]
        ets = np.compress(keep, self.ets)
        tl = Timeline(np.compress(keep, self.r), np.maximum(ets, np.compress(keep, since)), self.n_addr)
        return tl, tl.prefix(np.compress(keep, wrote)), tl.running_max(ets)

    def _outcome_rows(self, kind: str) -> tuple[np.ndarray, OutcomeChanges]:
        """Entity code of each outcome change of a kind, and the changes (see :func:`outcome_changes`)."""
        found = self._outcome_cache.get(kind)
        if found is None:
            found = self._outcome_cache[kind] = self._outcome_rows_of(kind)
        return found

    @cached_property
    def _outcome_cache(self) -> dict[str, tuple[np.ndarray, OutcomeChanges]]:
        return {}

    def _outcome_rows_of(self, kind: str) -> tuple[np.ndarray, OutcomeChanges]:
        # Tables carry the presumed-safe counts whatever the policy; the policy decides what
        # counts as a success when likelihoods are computed (smoothed, outcomes).
        if kind == "recipient":  # a mailbox's likelihood counts its inbound mail: its edges' messages' changes
            ch = outcome_changes(self.ts, self.label, self.labeled_at, self.r, settle_delay=self._settle_delay,
                                 message=self.edge_message, keep=self.edir == INBOUND)
            return ch.columns["entity"], ch
        # Senders and sender domains: the same messages' changes, counted for another entity.
        ch = self._message_outcomes
        return (ch.columns["entity"] if kind == "sender" else self.d[ch.columns["row"]]), ch

    @cached_property
    def _message_outcomes(self) -> OutcomeChanges:
        return outcome_changes(self.ts, self.label, self.labeled_at, self.s, settle_delay=self._settle_delay,
                               rows=True)

    @cached_property
    def _settle_delay(self) -> int:
        return duration_ns(self.config.settle_delay)

    @cached_property
    def _outcome_timelines(self) -> dict[str, tuple[Timeline, np.ndarray, Timeline, np.ndarray]]:
        """Per entity kind: a timeline of the explicit labels and withdrawn presumptions (a few) with their
        counts (in sorted order); and the rows' own timeline with the cumulative count of presumptions they start.

        Nearly every row starts a presumption, exactly the settle delay after its own time: counting the
        rows before ``instant - settle_delay`` on the timeline the tables already have needs no timeline
        of a million presumption events.
        """
        out = {}
        for kind, n, rows in (("sender", self.n_addr, self._sender), ("sender_domain", self.n_dom, self._domain),
                              ("recipient", self.n_addr, self._inbound)):
            entity, (ev, few, started) = self._outcome_rows(kind)
            # The few (labels, withdrawals) come first, the presumptions started after them: slices, no masks.
            label = ev["label"][:few]
            tl = Timeline(entity[:few], ev["time"][:few], n)
            # In the order of _LABEL_COLUMNS.
            weights = [label == 0, label == 1, label == 2, np.where(label < 0, ev["safe"][:few], 0)]
            out[kind] = (tl, tl.sorted_weights(weights), rows, rows.prefix(started))
        return out

    def _label_columns(self, kind: str, codes: np.ndarray, instants: np.ndarray,
                       presumed: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The label columns of a kind; ``presumed``: the presumptions started per query, when the caller's walk
        over the kind's rows counted them."""
        tl, weights, rows, started = self._outcome_timelines[kind]
        # (int32 sums where they fit, flags of fewer than 2**24 labels: half the memory written at random; the
        # presumptions added below count rows, fewer than 2**31)
        out = dict(zip(_LABEL_COLUMNS, tl.sums_before(codes, instants, weights, self._order(codes, instants),
                                                      narrow=len(rows) < 1 << 31)))
        if presumed is None:
            # A presumption counts once its row is older than the settle delay: rows strictly before instant - delay.
            rlo, rhi = self._before_shifted(rows, codes, instants, self._settle_delay)
            presumed = started[rhi] - started[rlo]
        out["n_presumed_safe"] += presumed
        return out

    def outcomes(self, kind: str) -> TenantOutcomes:
        """The outcome changes of one entity kind (``sender``, ``sender_domain``, ``recipient``), for its priors.

        The label policy decides what counts as a success, as in a snapshot.
        """
        entity, (ev, _, _) = self._outcome_rows(kind)
        if self.config.label_policy == "ignore":
            keep = ev["label"] >= 0
            entity, ev = entity[keep], {c: v[keep] for c, v in ev.items()}
        return TenantOutcomes(entity=entity, time=ev["time"], safe=ev["safe"], trials=ev["trials"],
                              explicit=ev["explicit"])

    # ------------------------------------------------------------------ tables
    def _windows(self, names: tuple[str, ...] | None) -> dict[str, int]:
        return self.windows if names is None else {n: w for n, w in self.windows.items() if n in names}

    def sender(self, instants: np.ndarray, windows: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Sender-table columns of each message's sender (window counts: those of ``windows``, default all)."""
        q = np.asarray(instants, dtype=np.int64)
        tl = self._sender
        lo, hi, counts, _, presumed = self._counts(tl, "sender", self.s, q, self.ts, self._windows(windows))
        out: dict[str, np.ndarray] = {"n_messages": counts[0]}
        out.update((f"n_messages_{name}", c) for name, c in zip(self._windows(windows), counts[1:]))
        out["decayed_messages"] = tl.decayed(lo, hi, q, self.half_life)
        out["first_seen"] = tl.first(lo, hi)
        # Counts over each run, summed in one walk: active days (in sorted order), distinct recipients, and
        # each authentication result's passes and fails (the results gathered into sorted order once each,
        # a byte per message, and their flags made there).
        names, weights = ["active_days", "n_distinct_recipients"], [tl.new_period(DAY_NS), self._new_pairs]
        for a in _AUTH:
            codes = self.auth[a][tl.order]
            names += [f"{a}_pass", f"{a}_fail"]
            weights += [codes == PASS, _failed(codes)]
        weights = tl.sorted_weights(weights, [True, False] + [True] * (len(weights) - 2))
        # (int32 sums where they fit, as the signals read them: half the memory written at random)
        out.update(zip(names, tl.sums_before(self.s, q, weights, self._order(self.s, q), narrow=True)))
        out.update(self._label_columns("sender", self.s, q, presumed))
        return out

    def _counts(self, tl: Timeline, kind: str, codes: np.ndarray, q: np.ndarray, times: np.ndarray,
                windows: dict[str, int], extra: tuple[np.ndarray, ...] = (), edges: bool = True
                ) -> tuple[np.ndarray | None, np.ndarray | None, list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """A table's run edges ``lo``, ``hi`` (when ``edges``, else None), its counts (before each instant, then
        in each window), the differences of each of ``extra`` (prefix sums of flags along ``tl``) over the runs,
        and the presumptions of ``kind`` started before each instant less the settle delay (None: left to
        :meth:`_label_columns`).

        Rows asked about at their own times (``times``, fresh) are answered in one walk over ``tl`` reading them
        all (:meth:`Timeline.differences_before_own`): no run edges per shift written out, then subtracted and
        gathered from prefix sums at random, a pass and an array each; the run edges, when asked for, come out of
        the same walk (int32, as every answer of it).
        """
        shifts = tuple(dict.fromkeys((*windows.values(), self._settle_delay)))  # one walk for all
        if not self._own(q, times) or self._outcome_timelines[kind][2] is not tl:
            lo, hi = self._before(tl, codes, q, times, shifts)
            counts = [hi - lo, *(hi - self._before_shifted(tl, codes, q, w, shifts)[1] for w in windows.values())]
            first = [p[hi] - p[lo] for p in extra]
            return lo, hi, counts, first, None
        edge = {s: k + 2 for k, s in enumerate(shifts)}  # run edges: 0 lo, 1 hi, then the hi at each shift
        started = self._outcome_timelines[kind][3]  # presumptions started, along this very timeline
        if extra:
            prefixes = np.empty((len(tl) + 1, 1 + len(extra)), np.int64)
            prefixes[:, 0] = started
            for k, p in enumerate(extra):
                prefixes[:, k + 1] = p
        else:
            prefixes = started.reshape(-1, 1)  # (a view: no copy of a column)
        columns = [(-1, 1, 0), *((-1, 1, edge[w]) for w in windows.values()),
                   *((k + 1, 1, 0) for k in range(len(extra))), (0, edge[self._settle_delay], 0)]
        if edges:  # lo and hi themselves (edge b -1: nothing subtracted)
            columns += [(-1, 0, -1), (-1, 1, -1)]
        # (int32 answers: the prefixes count presumptions and flags of these events, and the signals read int32)
        runs = list(tl.differences_before_own(shifts, prefixes, np.array(columns, np.int64),
                                              narrow=len(tl) < 1 << 31))
        lo, hi = (runs.pop(-2), runs.pop(-1)) if edges else (None, None)
        return lo, hi, runs[:1 + len(windows)], runs[1 + len(windows):-1], runs[-1]

    def written_to(self, instants: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per message, messages the tenant's mailboxes sent its sender, and the last time of those pairs."""
        tl, counts, last = self._written_to
        q = np.asarray(instants, dtype=np.int64)
        lo, hi = tl.before(self.s, q, self._order(self.s, q))
        return counts[hi] - counts[lo], tl.at_last(last, lo, hi, NAT)

    def sender_hours(self, instants: np.ndarray) -> np.ndarray:
        """Per message, its sender's messages at the same UTC hour of day."""
        q = np.asarray(instants, dtype=np.int64)
        if self._own(q, self.ts):
            return self._own_hours[0]
        lo, hi = self._before(self._sender_hour, self.s * 24 + self._hour, q, self.ts)
        return hi - lo

    @cached_property
    def _own_hours(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per message at its own time: its sender's messages at its hour, the tenant's at its hour, and all the
        tenant's, in one walk in time order (no timeline by hour, no search per message)."""
        return own_hour_counts(self._by_time, self.ts, self.s, self.n_addr, HOUR_NS)

    @cached_property
    def _hour(self) -> np.ndarray:
        return (self.ts // HOUR_NS) % 24

    @cached_property
    def _sender_hour(self) -> Timeline:
        return Timeline(self.s * 24 + self._hour, self.ts, self.n_addr * 24, self._by_time)

    @cached_property
    def _tenant_hour(self) -> Timeline:
        return Timeline(self._hour, self.ts, 24, self._by_time)

    def tenant_hours(self, instants: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per message, the tenant's messages at its UTC hour of day, and all the tenant's messages."""
        q = np.asarray(instants, dtype=np.int64)
        if self._own(q, self.ts):
            return self._own_hours[1], self._own_hours[2]
        lo, hi = self._before(self._tenant_hour, self._hour, q, self.ts)
        return hi - lo, np.searchsorted(self.ts[self._by_time], q, side="left")

    def sender_domain(self, instants: np.ndarray, windows: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Sender-domain-table columns of each message's sender domain (window counts: those of ``windows``)."""
        q = np.asarray(instants, dtype=np.int64)
        tl = self._domain
        lo, hi, counts, _, presumed = self._counts(tl, "sender_domain", self.d, q, self.ts, self._windows(windows))
        out: dict[str, np.ndarray] = {"n_messages": counts[0]}
        order = self._order(self.d, q)
        out.update((f"n_messages_{name}", c) for name, c in zip(self._windows(windows), counts[1:]))
        out["first_seen"] = tl.first(lo, hi)
        # n_outbound with n_internal: together they say whether the domain is an own one (is_established).
        weights = [tl.new_period(DAY_NS), self._head_of_sender, self.direction == INTERNAL,
                   self.direction == OUTBOUND]  # days: sorted
        out.update(zip(("active_days", "n_distinct_senders", "n_internal", "n_outbound"),
                       tl.sums_before(self.d, q, tl.sorted_weights(weights, [True, False, False, False]), order,
                                      narrow=True)))
        olo, ohi = self._domain_out.before(self.d, q, order)
        # A domain the tenant only wrote to has a row too: its outbound count is known without inbound mail.
        out["n_outbound_to"] = ohi - olo
        out.update(self._label_columns("sender_domain", self.d, q, presumed))
        return out

    def pair(self, instants: np.ndarray, *, reverse: bool = True) -> dict[str, np.ndarray]:
        """Per edge, pair-table columns of (sender, recipient), and ``n_reverse`` of (recipient, sender).

        ``reverse=False`` leaves ``n_reverse`` out (:meth:`replied` answers whether it is above 0, cheaper).
        """
        q = self._at_edges(np.asarray(instants, dtype=np.int64))
        codes = self._pairs[0]
        tl = self._pair
        if q is self.ets:  # (fresh: the edges at their own times, the pair timeline's events themselves)
            n, last = own_count_last(tl.codes, tl.times, tl.order, NAT)
            out = {"n_messages": n, "last_seen": last}
        else:
            lo, hi = self._before(tl, codes, q, self.ets)
            out = {"n_messages": hi - lo, "last_seen": tl.last(lo, hi)}
        if reverse:
            rlo, rhi = tl.before(self._reverse_pair, q)
            out["n_reverse"] = rhi - rlo
        return out

    def replied(self, instants: np.ndarray) -> np.ndarray:
        """Per edge, whether its recipient wrote to its sender before the edge's instant (``n_reverse > 0``).

        The reverse pair's first edge decides it: a comparison per edge, no search.
        """
        q = self._at_edges(np.asarray(instants, dtype=np.int64))
        reverse = self._reverse_pair
        return (reverse >= 0) & (self._pair_first[np.maximum(reverse, 0)] < q)

    @cached_property
    def _reverse_pair(self) -> np.ndarray:
        """Per edge, the pair code of (recipient, sender), -1 where that pair never had an edge."""
        codes, _, keys = self._pairs
        # (pairs by recipient and merged with the keys in one compiled pass: no argsort of both, no temporaries)
        return reverse_pairs(keys, self.n_addr)[codes]

    def recipient(self, instants: np.ndarray, windows: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Per edge, recipient-table columns of its recipient (window counts: those of ``windows``)."""
        q = self._at_edges(np.asarray(instants, dtype=np.int64))
        tl = self._inbound
        named = self._windows(windows)
        _, _, counts, (first,), presumed = self._counts(tl, "recipient", self.r, q, self.ets, named,
                                                        (tl.prefix(self._first_time_inbound),), edges=False)
        out: dict[str, np.ndarray] = {"n_inbound": counts[0]}
        out.update((f"n_inbound_{name}", c) for name, c in zip(named, counts[1:]))
        out["n_first_time_inbound"] = first
        out["first_time_share"] = np.divide(first, counts[0], out=np.zeros(len(q)),
                                            where=counts[0] > 0).astype(np.float32)
        out.update(self._label_columns("recipient", self.r, q, presumed))
        return out

    @cached_property
    def _name_pairs(self) -> tuple[np.ndarray, Timeline]:
        named = self.name >= 0
        codes = np.full(len(self.ts), -1, np.int64)
        pair_codes, uniques = pd.factorize(self.name[named] * self.n_addr + self.s[named], sort=False)
        codes[named] = pair_codes
        return codes, Timeline.of_rows(codes, self.ts, len(uniques), self._order(codes, self.ts), named)

    @cached_property
    def _internal_names(self) -> np.ndarray:
        """Per display name, when a mailbox first sent mail under it (int64 max: never): internal from then on."""
        used = self.direction != INBOUND
        return first_used(self.name, used, self.ts, max(int(self.name.max()) + 1 if len(self.name) else 0, 1))

    @cached_property
    def _own_name_counts(self) -> np.ndarray:
        """Per message at its own time, the earlier messages with its display name from its address: the sender
        timeline's (address, time) order sorted stably by name is the (name, address, time) order."""
        order = code_order(self.name + 1, self._sender.order)  # (no name: code 0, counted as none)
        return own_pair_counts(order, self.name, self.s, self.ts)

    def display_name(self, instants: np.ndarray) -> dict[str, np.ndarray]:
        """Per message: whether its display name is internal, and messages with this name from this address."""
        q = np.asarray(instants, dtype=np.int64)
        named = self.name >= 0
        is_internal = (named & (self._internal_names[np.maximum(self.name, 0)] < q)).astype(np.int8)
        if self._own(q, self.ts):
            return {"is_internal": is_internal, "n_with_name": self._own_name_counts}
        codes, tl = self._name_pairs
        plo, phi = self._before(tl, codes, q, self.ts)
        return {"is_internal": is_internal, "n_with_name": phi - plo}

    # ------------------------------------------------------------------ known contacts
    def known_contacts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """When each domain enters and leaves the tenant's known-contact list: (domain code, time, +1 or -1).

        The list of a snapshot (``known_contact_domain_keys``): every own domain
        (it sent internal or outbound mail) and every domain the tenant wrote to, then the
        ``known_contact_domains`` most corresponded-with others (ties: the smaller
        key). A domain is on the list for instants after
        its last change before them (changes at one instant: the last one holds).
        Every score only grows, so the list is followed event by event with a
        heap of the weakest member and one of the best waiting domains.
        """
        # The events (each message at its sender domain, own as the snapshot reads it: sent internally or
        # out; each message's first edge to a domain, written to) in time order, a message ahead of an edge at
        # one time, each with its domain's score after it: own, then written to, then its events so far. One
        # compiled walk, no sort: scores only grow, and once own or written to a domain is a member for good
        # and the sweep never reads its scores again, so only each domain's first such event is kept.
        (codes, times, score), (first_codes, first_times) = standing_in_time(
            self._by_time, self.d, self.ts, self.direction != INBOUND, self._edges_by_time, self.rd, self.ets,
            self._domain_heads, self.n_dom, _OWN, _WRITTEN)
        limit = self.config.known_contact_domains
        if len(first_codes) <= limit:  # every domain fits: each joins when first seen, for good
            return first_codes, first_times, np.ones(len(first_codes), np.int64)
        # Key ranks break ties as the snapshot's sort does (smaller key first).
        key_rank = np.argsort(np.argsort(self.domains, kind="stable"), kind="stable")
        return follow_top(codes, times, score, key_rank, limit, _WRITTEN)  # (two lazy heaps, compiled)


def _failed(codes: np.ndarray) -> np.ndarray:
    """Whether each authentication code is a failure (:data:`FAILS`): a comparison per failure code, OR-ed in place
    (np.isin on a small int8 array: ~70x slower, 2 ms per 300k codes)."""
    failed = codes == FAILS[0]
    for code in FAILS[1:]:
        failed |= codes == code
    return failed
