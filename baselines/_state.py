"""Event-time-resolved state of one tenant: what makes refresh exact, mergeable and cheap.

The state as of ``as_of`` holds:

* ``lifetime``: keyed aggregates (sums, minima, maxima, sets as keyed counts)
  over every row before ``as_of``, and decayed sums valued at ``as_of``;
* ``windows``: per window and table, the message counts of ``[as_of - w, as_of)``;
* ``events``: the rows of the longest window, in time order, kept as rows so
  that windows stay exact when ``as_of`` is mid-day and so that rows can leave
  a window or pass the settle delay later.

A refresh to ``as_of2`` touches only the new rows and two thin slices of the
retained ones: ``lifetime`` merges the aggregate of the new rows (decayed sums
rescale exactly to the later anchor); the presumed-safe counts add the rows
that passed the settle delay in between; each window adds the new rows and
subtracts the rows that left it. Every step is a monoid merge or its exact
inverse for sums, so the result equals a rebuild from scratch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from commgraph.graph import CommGraphError

from ._aggregate import Decayed, Grouping, Histogram, KeyedAggregate, Splice
from ._events import (
    DAY_NS, DOMAIN_HEAD, EVENT_COLUMNS, FAILED, HOUR_NS, INBOUND, INTERNAL, MESSAGE_KEY, NO_LABEL, OUTBOUND, PASS,
    concat_events, mix64, time_order,
)
from ._stacked import Stacked, merge_layouts, merge_many, merge_stacked, segment_splice, stackable

__all__ = ["TenantState", "NoLabelLedgerWarning", "advance_many", "aggregate_rows", "merge_partials",
           "LIFETIME_TABLES", "DECAYED_TABLES", "WINDOW_TABLES"]

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_AUTH = ("spf", "dkim", "dmarc")
#: Keyed aggregates over every row before ``as_of``.
LIFETIME_TABLES = ("sender", "sender_day", "sender_domain", "sender_domain_day", "display_name", "pair",
                  "recipient", "written_to", "domain_out", "tenant")
DECAYED_TABLES = ("sender", "sender_domain", "tenant")
#: Tables with windowed counts (messages; inbound edges for recipients).
WINDOW_TABLES = ("sender", "sender_domain", "recipient", "tenant")
#: The aggregated rows' sign of their label: -1 on the rows that retract a changed label's old value.
LABEL_SIGN = "label_sign"


def _presumed(ev: dict[str, np.ndarray], cutoff: int) -> np.ndarray:
    """Each row's (signed) contribution to the presumed-safe count, for rows counted as of ``cutoff``."""
    return (ev["is_message"].astype(np.int64) - (ev["label"] >= 0)) * (ev["timestamp"] < cutoff)


def _label_values(ev: dict[str, np.ndarray], cutoff: int, weight: np.ndarray | None = None
                  ) -> dict[str, np.ndarray | Histogram]:
    label = ev["label"]
    labelled = label >= 0
    # Presumed safe: messages older than the cutoff minus labels on them. A label
    # event for an old message cancels the presumption its message row made, so
    # the count stays a plain (signed) sum and merges by addition.
    presumed = ev["presumed"] if "presumed" in ev else _presumed(ev, cutoff)  # given: see TenantState.advance
    if weight is not None:
        labelled = labelled & weight
        presumed = presumed * weight
    if LABEL_SIGN in ev:  # a changed label's old value, retracted (see TenantState._counted)
        labelled = labelled * ev[LABEL_SIGN].astype(np.int64)
    return {"labels": Histogram(np.maximum(label, 0), 3, labelled), "n_presumed_safe": presumed}


def _message_values(m: dict[str, np.ndarray], cutoff: int) -> dict[str, np.ndarray | Histogram]:
    """Per-row contributions of message-level statistics (rows are message heads)."""
    w = m["is_message"]
    ts = m["timestamp"]
    out: dict[str, np.ndarray | Histogram] = {
        "n_messages": w.astype(np.int64),
        "first_seen": np.where(w, ts, _INT64_MAX),
        "last_seen": np.where(w, ts, _INT64_MIN),
        "n_recipients_total": np.where(w, m["n_recipients"], 0).astype(np.int64),
        "directions": Histogram(m["direction"], 3, w),
        **_label_values(m, cutoff),
        "hour_histogram": Histogram((ts // HOUR_NS) % 24, 24, w),
    }
    for a in _AUTH:
        passed, failed = m[a] == PASS, FAILED[m[a].astype(np.intp) + 1]
        out[a] = Histogram(failed, 2, w & (passed | failed))  # bin 0: pass, bin 1: fail
    return out


def _reducers(values: dict[str, np.ndarray]) -> dict[str, str]:
    return {c: ("min" if c.startswith("first") else "max" if c.startswith("last") or c.endswith("_key")
                else "sum") for c in values}


def expand(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Histogram columns as the named count columns of the tables."""
    out = dict(values)
    if "labels" in out:
        labels = out.pop("labels")
        out.update(n_safe=labels[:, 0], n_attack=labels[:, 1], n_spam=labels[:, 2])
    if "directions" in out:
        d = out.pop("directions")
        out.update(n_inbound=d[:, INBOUND], n_outbound=d[:, OUTBOUND], n_internal=d[:, INTERNAL])
    for a in _AUTH:
        if a in out:
            h = out.pop(a)
            out[f"{a}_pass"], out[f"{a}_fail"] = h[:, 0], h[:, 1]
    return out


def _day_grouping(day: np.ndarray) -> Grouping:
    first = int(day.min()) if len(day) else 0
    span = int(day.max()) - first + 1 if len(day) else 1
    return Grouping({"day": np.arange(first, first + span, dtype=np.int64).astype(np.uint64)}, day - first)


def _cell_counts(first: Grouping, second: Grouping) -> KeyedAggregate:
    """Rows counted per (first, second) group: one bincount over the cells when they are few, else a grouping."""
    n_second = max(second.n_groups, 1)
    cells = first.n_groups * n_second
    combined = first.codes * n_second + second.codes
    if cells > max(4 * len(combined), 1 << 16):
        return first.combine(second).aggregate({"n_messages": np.ones(len(combined), np.int64)},
                                               {"n_messages": "sum"})
    counts = np.bincount(combined, minlength=cells)
    used = np.flatnonzero(counts)
    keys = {**{k: v[used // n_second] for k, v in first.keys.items()},
            **{k: v[used % n_second] for k, v in second.keys.items()}}
    return KeyedAggregate(keys, {"n_messages": counts[used]}, {"n_messages": "sum"})


def _rollup(agg: KeyedAggregate, grouping: Grouping, columns: tuple[str, ...] | None = None) -> KeyedAggregate:
    """An aggregate's groups reduced again into coarser ones (``grouping`` has one row per group of ``agg``)."""
    columns = tuple(agg.values) if columns is None else columns
    return grouping.aggregate({c: agg.values[c] for c in columns}, {c: agg.reducers[c] for c in columns})


def aggregate_rows(ev: dict[str, np.ndarray], *, cutoff: int, anchor: int, half_life: int,
                   groupings: dict[str, Grouping] | None = None, tenant: Grouping | None = None
                   ) -> tuple[dict[str, KeyedAggregate], dict[str, Decayed], dict[str, Grouping]]:
    """Every lifetime aggregate over some event rows, and the groupings of the rows.

    ``cutoff`` decides which rows are old enough to be presumed safe when
    unlabelled; ``anchor`` is the instant decayed sums are valued at.
    ``groupings`` (from :class:`TenantEvents`, aligned with the rows) saves
    factorising the key columns; each key column is factorised at most once
    and its grouping reused by every aggregate and subset that needs it; a
    column only some rows are grouped by (display names, recipient domains)
    is factorised over those rows only, when not given. ``tenant``: the
    tenant of each row of stacked tenants (:func:`advance_many`), leading
    every grouping made here. Domain and tenant statistics roll up the
    senders' (a sender's address has one domain), so they cost the number
    of senders, not of rows. The
    tenant's mail to a domain counts the rows flagged :data:`DOMAIN_HEAD`
    (messages, not recipients).
    """
    given = groupings or {}

    def grouping(column: str, rows: np.ndarray | None = None) -> Grouping:
        """The rows grouped by ``column``, or some of them (``rows``, positions)."""
        if column in given:
            return given[column] if rows is None else given[column].subset(rows)
        own = Grouping.of({column: ev[column] if rows is None else ev[column][rows]})
        return own if tenant is None else (tenant if rows is None else tenant.subset(rows)).combine(own)

    heads = np.flatnonzero(ev["head"])
    m = {c: ev[c][heads] for c in ("timestamp", "sender_key", "sender_domain_key", "display_name_key", "direction",
                                   "label", "is_message", "n_recipients", *_AUTH, "presumed", LABEL_SIGN) if c in ev}
    w = m["is_message"]
    mv = _message_values(m, cutoff)
    g_sender_e = grouping("sender_key")
    g_sender = g_sender_e.subset(heads)
    g_domain_e = grouping("sender_domain_key")
    g_domain = g_domain_e.subset(heads)
    g_day = _day_grouping(m["timestamp"] // DAY_NS)
    aggs: dict[str, KeyedAggregate] = {}
    # The domain group of each sender, as its minimum and maximum (equal when the address has one domain).
    sender_values = {"sender_domain_key": m["sender_domain_key"], **mv, "domain_lo": g_domain.codes,
                     "domain_hi": g_domain.codes}
    sender = g_sender.aggregate(sender_values, {**_reducers(sender_values), "domain_lo": "min", "domain_hi": "max"})
    domain_lo, domain_hi = sender.values.pop("domain_lo"), sender.values.pop("domain_hi")
    sender.reducers.pop("domain_lo"), sender.reducers.pop("domain_hi")
    aggs["sender"] = sender
    by_domain = Grouping(g_domain.keys, domain_lo) if np.array_equal(domain_lo, domain_hi) else None
    if by_domain is None and "tenant" in sender.keys:
        # Summing domains from their rows instead of their senders can round floats differently: stacked
        # tenants must get the path each would get alone (see advance_many).
        raise _NoRollup
    messages = np.flatnonzero(w) if not w.all() else slice(None)
    aggs["sender_day"] = _cell_counts(g_sender.subset(messages), g_day.subset(messages))
    domain_columns = tuple(c for c in mv if c != "n_recipients_total")
    if by_domain is not None:
        aggs["sender_domain"] = _rollup(sender, by_domain, domain_columns)
    else:
        aggs["sender_domain"] = g_domain.aggregate({c: mv[c] for c in domain_columns},
                                                   _reducers({c: mv[c] for c in domain_columns}))
    aggs["sender_domain_day"] = _cell_counts(g_domain.subset(messages), g_day.subset(messages))
    named = np.flatnonzero(w & (m["display_name_key"] != 0))
    g_display = grouping("display_name_key", heads[named])
    aggs["display_name"] = g_display.combine(g_sender.subset(named)).aggregate(
        {"n_messages": np.ones(len(named), np.int64), "n_internal": m["direction"][named] != INBOUND},
        {"n_messages": "sum", "n_internal": "sum"})
    tenant_columns = tuple(c for c in mv if c not in ("n_recipients_total",) + _AUTH)
    if "tenant" in sender.keys:  # tenants stacked (advance_many): one row per tenant, keyed by its number
        n_tenants = int(sender.keys["tenant"][-1]) + 1 if len(sender) else 0
        g_tenant = Grouping({"tenant": np.arange(n_tenants, dtype=np.uint64)}, sender.keys["tenant"].astype(np.int64))
    else:
        g_tenant = Grouping({"tenant": np.zeros(1, np.uint64)}, np.zeros(len(sender), np.int64))
    aggs["tenant"] = _rollup(sender, g_tenant, tenant_columns)

    # Edge-level statistics: every row.
    ew = ev["is_message"]
    ts = ev["timestamp"]
    direction = ev["direction"]
    g_recipient = grouping("recipient_key")
    # (first_inbound: whether the pair began with its sender's first message sent from outside, for the
    # recipients' first-time senders; a sender's internal mail before does not make it one)
    pair_values = {"n_messages": ew.astype(np.int64), "first_seen": np.where(ew, ts, _INT64_MAX),
                   "last_seen": np.where(ew, ts, _INT64_MIN), **_label_values(ev, cutoff),
                   "n_inbound": ew & (direction == INBOUND),
                   "first_inbound": np.where(ew & (direction == INBOUND), ts, _INT64_MAX)}
    aggs["pair"] = g_sender_e.combine(g_recipient).aggregate(pair_values, _reducers(pair_values))
    mailbox = np.flatnonzero(direction != OUTBOUND)  # the recipient is one of the tenant's mailboxes
    sub = {c: ev[c][mailbox] for c in ("timestamp", "label", "is_message", "direction", "presumed", LABEL_SIGN)
           if c in ev}
    inbound = sub["direction"] == INBOUND
    recipient_values = {"n_inbound": sub["is_message"] & inbound, "n_internal": sub["is_message"] & ~inbound,
                        **_label_values(sub, cutoff, inbound)}
    aggs["recipient"] = g_recipient.subset(mailbox).aggregate(recipient_values, _reducers(recipient_values))
    wrote = np.flatnonzero(direction != INBOUND)  # the sender is one of the tenant's mailboxes
    last = {"n_messages": "sum", "last_seen": "max"}
    aggs["written_to"] = g_recipient.subset(wrote).aggregate(
        {"n_messages": ew[wrote].astype(np.int64), "last_seen": np.where(ew[wrote], ts[wrote], _INT64_MIN)}, last)
    out = np.flatnonzero(ev[DOMAIN_HEAD])  # outbound, each message once per recipient domain
    aggs["domain_out"] = grouping("recipient_domain_key", out).aggregate(
        {"n_messages": ew[out].astype(np.int64), "last_seen": np.where(ew[out], ts[out], _INT64_MIN)}, last)

    factor = np.exp2(-(int(anchor) - m["timestamp"]) / float(half_life)) * w
    sum_ = {"n_messages": "sum"}
    decayed_sender = g_sender.aggregate({"n_messages": factor}, sum_)
    decayed_domain = _rollup(decayed_sender, by_domain) if by_domain is not None else \
        g_domain.aggregate({"n_messages": factor}, sum_)
    decayed = {name: Decayed(agg, anchor=anchor, half_life=half_life) for name, agg in
               (("sender", decayed_sender), ("sender_domain", decayed_domain),
                ("tenant", _rollup(decayed_sender, g_tenant)))}
    # Row-level groupings, for window counts over the same rows.
    return aggs, decayed, {"sender": g_sender_e, "sender_domain": g_domain_e, "recipient": g_recipient}


def merge_partials(a: tuple[dict[str, KeyedAggregate], dict[str, Decayed]],
                   b: tuple[dict[str, KeyedAggregate], dict[str, Decayed]]
                   ) -> tuple[dict[str, KeyedAggregate], dict[str, Decayed]]:
    """Merge two sets of lifetime aggregates (and decayed sums), table by table."""
    return ({k: a[0][k].merge(b[0][k]) for k in a[0]}, {k: a[1][k].merge(b[1][k]) for k in a[1]})


def _counts(grouping: Grouping, codes: np.ndarray) -> KeyedAggregate:
    """Rows counted per group of ``grouping`` (``codes``: the group of each counted row)."""
    counts = np.bincount(codes, minlength=grouping.n_groups)
    used = np.flatnonzero(counts)
    return KeyedAggregate({k: v[used] for k, v in grouping.keys.items()}, {"n": counts[used]}, {"n": "sum"})


def window_counts(ev: dict[str, np.ndarray], groupings: dict[str, Grouping] | None = None, *,
                  start: int | None, end: int | None) -> dict[str, KeyedAggregate]:
    """Per table of :data:`WINDOW_TABLES`, the message counts of the rows in ``[start, end)``.

    Rows are in time order when a bound is given (None: unbounded), so the window
    is one slice. ``groupings`` (from :func:`aggregate_rows` over the same rows)
    saves factorising again.
    """
    ts = ev["timestamp"]
    lo = 0 if start is None else int(np.searchsorted(ts, np.int64(start)))
    hi = len(ts) if end is None else int(np.searchsorted(ts, np.int64(end)))
    rows = slice(lo, max(lo, hi))
    if groupings is None:
        groupings = {"sender": Grouping.of({"sender_key": ev["sender_key"][rows]}),
                     "sender_domain": Grouping.of({"sender_domain_key": ev["sender_domain_key"][rows]}),
                     "recipient": Grouping.of({"recipient_key": ev["recipient_key"][rows]})}
        rows = slice(0, rows.stop - rows.start)
        ev = {c: ev[c][lo:max(lo, hi)] for c in ("head", "is_message", "direction")}
    messages = ev["is_message"][rows]
    counted = np.flatnonzero(ev["head"][rows] & messages)
    inbound = np.flatnonzero(messages & (ev["direction"][rows] == INBOUND))
    n = len(counted)
    return {
        "sender": _counts(groupings["sender"], groupings["sender"].codes[rows][counted]),
        "sender_domain": _counts(groupings["sender_domain"], groupings["sender_domain"].codes[rows][counted]),
        "recipient": _counts(groupings["recipient"], groupings["recipient"].codes[rows][inbound]),
        "tenant": _tenant_total(n),
    }


def _tenant_total(n: int) -> KeyedAggregate:
    """The tenant table's count: one row holding ``n``, or none when it is 0 (as a rebuild has none)."""
    return KeyedAggregate({"tenant": np.zeros(1 if n else 0, np.uint64)}, {"n": np.full(1 if n else 0, n, np.int64)},
                          {"n": "sum"})


#: The keyed tables of :data:`WINDOW_TABLES` and the rows each counts (see :func:`_net_counts`).
_WINDOW_KEYED = {"sender": "sender", "sender_domain": "sender", "recipient": "recipient"}


def _net(grouping: Grouping, plus: np.ndarray, minus: np.ndarray) -> KeyedAggregate:
    """Rows counted per group of ``grouping`` (``plus``: the groups of rows that add one, ``minus``: of rows that
    take one away), for the groups where they do not cancel out."""
    net = np.bincount(plus, minlength=grouping.n_groups) - np.bincount(minus, minlength=grouping.n_groups)
    used = net.nonzero()[0]
    return KeyedAggregate({k: v[used] for k, v in grouping.keys.items()}, {"n": net[used]}, {"n": "sum"})


def _net_counts(groupings: dict[str, Grouping], counted: dict[str, np.ndarray], entered: slice | np.ndarray,
                left: slice | np.ndarray) -> dict[str, KeyedAggregate]:
    """Per table of :data:`WINDOW_TABLES`, the counted rows of ``entered`` minus those of ``left`` (slices or
    boolean masks of the rows), for the groups where they differ (``counted``: the rows each table counts,
    ``sender`` also for domains and tenant)."""
    out = {}
    for table, flags in _WINDOW_KEYED.items():
        g = groupings[table]
        out[table] = _net(g, g.codes[entered][counted[flags][entered]], g.codes[left][counted[flags][left]])
    n = int(np.count_nonzero(counted["sender"][entered])) - int(np.count_nonzero(counted["sender"][left]))
    out["tenant"] = _tenant_total(n)
    return out


def _shift(counts: KeyedAggregate, delta: KeyedAggregate) -> KeyedAggregate:
    """Window counts plus the net change of the rows that entered and left; groups that reach zero are
    dropped (as a rebuild has none)."""
    out = counts.merge(delta)
    if not len(out):
        return out
    zero = out.values["n"] == 0
    return out.take(~zero) if zero.any() else out


def _slice(ev: dict[str, np.ndarray], start: int, end: int) -> dict[str, np.ndarray]:
    """The rows with ``start <= timestamp < end`` of time-ordered rows (two binary searches, views)."""
    lo, hi = np.searchsorted(ev["timestamp"], [start, end])
    return {c: v[lo:hi] for c, v in ev.items()}


def _slice_chunks(chunks: list[dict[str, np.ndarray]], start: int, end: int) -> dict[str, np.ndarray]:
    return concat_events([_slice(c, start, end) for c in chunks])


@dataclass
class TenantState:
    """The mergeable state of one tenant as of ``as_of`` (all times in ns since the epoch, UTC).

    ``events`` holds the message rows of the longest window as chunks, each in
    time order (a refresh appends one and a merge keeps both sides': no copy of
    what is kept); ``pending`` the label events for mail still inside the settle delay, and
    for each message there whose label was withdrawn, rows flagged as messages with no label
    that give its presumption back when it settles (they count there, and nowhere else).
    ``labelled`` is the ledger of every message whose label the lifetime
    aggregates count: its key (of its id, sender and time) and that label,
    sorted by key (None in a state written before ledgers: such a state counts
    a changed label beside the old one, and warns). A label that
    changes later (an analyst's verdict replacing a user's report) is then
    retracted where it was counted before the new one counts, as a rebuild over
    the corrected archive counts only the new one; a label withdrawn is
    retracted, and the message presumed safe again once it settles.
    """

    tenant_id: str
    as_of: int
    lifetime: dict[str, KeyedAggregate]
    decayed: dict[str, Decayed]
    windows: dict[str, dict[str, KeyedAggregate]]  # window length (ns, as str) -> table -> counts
    events: list[dict[str, np.ndarray]]
    pending: dict[str, np.ndarray]
    names: dict[str, np.ndarray] = field(default_factory=dict)
    fingerprint: int = 0
    labelled: dict[str, np.ndarray] | None = field(default_factory=lambda: _ledger({}))

    @classmethod
    def build(cls, tenant_id: str, rows: dict[str, np.ndarray], *, as_of: int, windows: tuple[int, ...],
              settle_delay: int, half_life: int, names: dict[str, np.ndarray], fingerprint: int,
              groupings: dict[str, Grouping] | None = None) -> "TenantState":
        rows, groupings = _sorted_grouped(rows, groupings)
        lifetime, decayed, groupings = aggregate_rows(rows, cutoff=as_of - settle_delay, anchor=as_of,
                                                      half_life=half_life, groupings=groupings)
        counts = {str(w): window_counts(rows, groupings, start=as_of - w, end=as_of) for w in windows}
        events, pending = _split(rows)
        events = _slice(events, as_of - max(windows), as_of)
        pending = _slice(pending, as_of - settle_delay, as_of)
        return cls(tenant_id, as_of, lifetime, decayed, counts, [events], pending, _dedup_names(names), fingerprint,
                   _ledger(rows))

    def advance(self, rows: dict[str, np.ndarray], *, as_of: int, windows: tuple[int, ...], settle_delay: int,
                half_life: int, names: dict[str, np.ndarray], fingerprint: int,
                groupings: dict[str, Grouping] | None = None) -> "TenantState":
        """The state as of a later ``as_of``, given the event rows of ``[self.as_of, as_of)`` (and label events)."""
        self.check_ledger(rows)
        rows, groupings = _sorted_grouped(rows, groupings)
        kept, changes = self._label_changes(rows)
        rows, groupings = kept, groupings if kept is rows else None
        counted = self._counted(rows, changes, as_of=as_of, settle_delay=settle_delay)
        new, new_decayed, _ = aggregate_rows(counted, cutoff=as_of - settle_delay, anchor=as_of, half_life=half_life,
                                             groupings=groupings if counted is rows else None)
        lifetime, decayed = merge_partials((self.lifetime, self.decayed), (new, new_decayed))
        deltas = self._window_deltas(rows, as_of=as_of, windows=windows)
        counts = {str(w): {t: _shift(self.windows[str(w)][t], deltas[str(w)][t]) for t in WINDOW_TABLES}
                  for w in windows}
        return self._advanced(rows, changes, lifetime, decayed, counts, as_of=as_of, windows=windows,
                              settle_delay=settle_delay, names=_merge_names(self.names, names),
                              fingerprint=fingerprint)

    def _counted(self, rows: dict[str, np.ndarray], changes: tuple[np.ndarray, np.ndarray], *, as_of: int,
                 settle_delay: int) -> dict[str, np.ndarray]:
        """The rows whose lifetime aggregates a refresh to ``as_of`` adds: ``rows`` (time-ordered new rows)
        themselves, or with the retained rows that passed the settle delay since the last refresh and the rows
        retracting changed labels (``changes``: :meth:`_label_changes`'s)."""
        before = self.as_of
        n_new = len(rows["timestamp"])
        # Retained rows that passed the settle delay since the last refresh add to
        # the presumed-safe counts and to nothing else: aggregated in one pass
        # with the new rows (one call's fixed cost, not two).
        settled = concat_events([_slice_chunks(self.events, before - settle_delay, as_of - settle_delay),
                                 _slice(self.pending, before - settle_delay, as_of - settle_delay)])
        changed, old_labels = changes
        n_settled, n_changed = len(settled["timestamp"]), len(changed)
        if not n_settled and not n_changed:
            return rows
        # A changed label's rows count the new label; rows retracting the old one
        # (the same edges, the old label, sign -1) are aggregated with them. Neither
        # touches the presumed-safe counts (the old label already withdrew the
        # presumption), unless the label was withdrawn.
        retracted = {c: rows[c][changed] for c in EVENT_COLUMNS}
        retracted["label"] = old_labels
        presumed = _presumed(rows, as_of - settle_delay)
        presumed[changed] = 0
        # A withdrawn label (none now) gives a settled message its presumption back (one still settling gets
        # it when it settles: see _advanced).
        settled_now = rows["timestamp"][changed] < as_of - settle_delay
        restored = ((rows["label"][changed] < 0) & settled_now).astype(np.int64)
        counted = {c: np.concatenate([rows[c], settled[c], retracted[c]]) for c in EVENT_COLUMNS}
        settling = settled["is_message"].astype(np.int64) - (settled["label"] >= 0)
        counted["presumed"] = np.concatenate([presumed, settling, restored])
        counted[DOMAIN_HEAD] = np.concatenate([rows[DOMAIN_HEAD], np.zeros(n_settled + n_changed, bool)])
        counted["is_message"][n_new:] = False
        counted["label"][n_new:n_new + n_settled] = NO_LABEL
        if n_changed:
            counted[LABEL_SIGN] = np.concatenate([np.ones(n_new + n_settled, np.int8), np.full(n_changed, -1, np.int8)])
        return counted

    def check_ledger(self, rows: dict[str, np.ndarray]) -> None:
        """Warn when labels of older mail arrive for a state with no ledger (written before commgraph kept one):
        a changed label among them cannot be retracted, and counts beside the old one until a full build."""
        if self.labelled is None and len(rows["is_message"]) and not rows["is_message"].all():
            warnings.warn(
                f"the refresh state of tenant {self.tenant_id!r} was written before commgraph kept a ledger of "
                "counted labels: a label that changed since it was counted is counted beside the old one. "
                "Build this tenant's snapshot again in full (build_baselines, or commgraph refresh, which "
                "does so by itself for such snapshots) to count each message's latest label once",
                NoLabelLedgerWarning, stacklevel=4)

    def _label_changes(self, rows: dict[str, np.ndarray]
                       ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Time-ordered ``rows`` without the withdrawals of labels this state never counted (mail archived late,
        or labelled and withdrawn in one period: label events with nothing to count, which would only add empty
        rows to the tables; ``rows`` itself when there are none), and the label events among them that change a
        counted label (their positions, and the label counted): what a refresh retracts."""
        changed, old_labels = self._relabels(rows)
        stray = ~rows["is_message"] & (rows["label"] < 0)
        stray[changed] = False
        if not stray.any():
            return rows, (changed, old_labels)
        keep = ~stray
        return {c: v[keep] for c, v in rows.items()}, ((np.cumsum(keep) - 1)[changed], old_labels)

    def _relabels(self, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The label events among ``rows`` whose message's label is counted already (the rows' positions), and
        that counted label of each."""
        keys = rows.get(MESSAGE_KEY)
        ledger = self.labelled
        if keys is None or ledger is None or not len(ledger["key"]):
            return np.zeros(0, np.int64), np.zeros(0, np.int8)
        at = np.flatnonzero(~rows["is_message"] & (keys != 0))
        pos = np.minimum(np.searchsorted(ledger["key"], keys[at]), len(ledger["key"]) - 1)
        hit = ledger["key"][pos] == keys[at]
        return at[hit], ledger["label"][pos[hit]]

    def _advanced(self, rows: dict[str, np.ndarray], changes: tuple[np.ndarray, np.ndarray],
                  lifetime: dict[str, KeyedAggregate],
                  decayed: dict[str, Decayed], counts: dict[str, dict[str, KeyedAggregate]], *, as_of: int,
                  windows: tuple[int, ...], settle_delay: int, names: dict[str, np.ndarray], fingerprint: int
                  ) -> "TenantState":
        """The state as of ``as_of`` from the new rows and the merged aggregates: lifetime and decayed (with the
        aggregates of :meth:`_counted`'s rows), and each window's counts (shifted by its net change); ``names``:
        the state's names with the new rows' merged in (:func:`_merge_names`)."""
        changed, old_labels = changes
        new_events, new_pending = _split(rows)
        if len(new_pending["timestamp"]):
            # A changed label stays out of the settle delay's events (it withdraws no presumption), as does a
            # label event without a label (a withdrawal). A withdrawn label of mail still settling gives the
            # presumption back when it settles: a row that counts +1 there (as an unlabelled message row does).
            keep = rows["label"] >= 0
            keep[changed] = False
            settling = changed[(rows["label"][changed] < 0) & (rows["timestamp"][changed] >= as_of - settle_delay)]
            restore = {c: v[settling] for c, v in rows.items()}
            restore["is_message"] = np.ones(len(settling), bool)
            new_pending = concat_events([{c: v[keep[~rows["is_message"]]] for c, v in new_pending.items()}, restore])
        # New mail comes after everything kept (it was sent at or after the last
        # as_of): append it as a chunk, and drop or trim chunks that left the longest window.
        start = as_of - max(windows)
        events = [_slice(c, start, as_of) for c in self.events + [new_events]
                  if len(c["timestamp"]) and c["timestamp"][-1] >= start]
        pending = _slice(_sorted(concat_events([self.pending, new_pending])), as_of - settle_delay, as_of)
        with np.errstate(over="ignore"):
            # The input fingerprint counts each message's label once: the old one of a changed label goes.
            heads = changed[rows["head"][changed]]
            gone = mix64(mix64(rows["sender_key"][heads], rows["timestamp"][heads].view(np.uint64)),
                         old_labels[rows["head"][changed]].astype(np.uint64) + np.uint64(1))
            fp = int(np.uint64(self.fingerprint) + np.uint64(fingerprint) - np.sum(gone, dtype=np.uint64))
        return TenantState(self.tenant_id, as_of, lifetime, decayed, counts, events, pending,
                           names, fp, _merge_ledgers(self.labelled, _ledger(rows)))

    def _window_deltas(self, rows: dict[str, np.ndarray], *, as_of: int, windows: tuple[int, ...]
                       ) -> dict[str, dict[str, KeyedAggregate]]:
        """Per window and table, the counts of the new rows that entered it minus those of the retained rows
        that left it (``rows``: the time-ordered new rows)."""
        before = self.as_of
        n_new = len(rows["timestamp"])
        # Windows: the new rows entered them, and the retained rows of a slice per
        # window left them: grouped together, then netted per window and table in
        # one signed count, so each window's counts are spliced once.
        left = [_slice_chunks(self.events, before - w, min(as_of - w, before)) for w in windows]
        bounds = np.cumsum([0, n_new] + [len(part["timestamp"]) for part in left])
        both = concat_events([rows] + left)
        both_groupings = {"sender": Grouping.of({"sender_key": both["sender_key"]}),
                          "sender_domain": Grouping.of({"sender_domain_key": both["sender_domain_key"]}),
                          "recipient": Grouping.of({"recipient_key": both["recipient_key"]})}
        messages = both["is_message"]
        counted_rows = {"sender": both["head"] & messages, "recipient": messages & (both["direction"] == INBOUND)}
        ts = rows["timestamp"]
        end = int(np.searchsorted(ts, np.int64(as_of)))
        deltas = {}
        for i, w in enumerate(windows):
            # New mail was sent at or after the last as_of: a window reaching back that far takes all of it.
            start = 0 if as_of - w <= before else min(int(np.searchsorted(ts, np.int64(as_of - w))), end)
            deltas[str(w)] = _net_counts(both_groupings, counted_rows, slice(start, end),
                                         slice(bounds[i + 1], bounds[i + 2]))
        return deltas

    def merge(self, other: "TenantState") -> "TenantState":
        """The state over both states' mail: partial states of one tenant as of one instant, built from
        disjoint sets of messages (chunks of an archive, partitions of a Spark job).

        Each part merges as a monoid (aggregates re-reduce, decayed sums share
        the anchor, windows add, rows and fingerprints concatenate and add), so
        merging the states of the parts equals the state built over the whole.
        """
        if self.tenant_id != other.tenant_id or self.as_of != other.as_of or set(self.windows) != set(other.windows):
            raise CommGraphError(
                f"cannot merge the state of tenant {self.tenant_id!r} as of {self.as_of} (windows "
                f"{sorted(self.windows)}) with that of tenant {other.tenant_id!r} as of {other.as_of} (windows "
                f"{sorted(other.windows)}); partial states merge only within one tenant, instant and configuration")
        lifetime, decayed = merge_partials((self.lifetime, self.decayed), (other.lifetime, other.decayed))
        windows = {w: {t: agg.merge(other.windows[w][t]) for t, agg in tables.items()}
                   for w, tables in self.windows.items()}
        events = [c for c in self.events + other.events if len(c["timestamp"])]
        pending = _sorted(concat_events([self.pending, other.pending]))
        names = _dedup_names({"key": np.concatenate([self.names["key"], other.names["key"]]),
                              "value": pa.concat_arrays([self.names["value"], other.names["value"]])})
        ledger = None if self.labelled is None or other.labelled is None else \
            _merge_ledgers(self.labelled, other.labelled)
        return TenantState(self.tenant_id, self.as_of, lifetime, decayed, windows, events, pending, names,
                           (self.fingerprint + other.fingerprint) % 2**64, ledger)


class NoLabelLedgerWarning(UserWarning):
    """A refresh read labels of older mail for a state written before commgraph kept a ledger of counted labels.

    Such a state cannot retract a label that changed since it was counted; a
    full build (which ``commgraph refresh`` runs by itself for such snapshots)
    counts each message's latest label once from then on.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", NoLabelLedgerWarning)  # (a known old store, rebuilt tonight)
    ...     issubclass(NoLabelLedgerWarning, UserWarning)
    True
    """


class _NoRollup(Exception):
    """Stacked tenants' domain statistics cannot roll up from their senders (a sender with two domains)."""


#: The key columns :func:`aggregate_rows` groups every row by.
_ROW_KEYS = ("sender_key", "sender_domain_key", "recipient_key")


def advance_many(states: list[TenantState], rows: list[dict[str, np.ndarray]], *, as_of: int,
                 windows: tuple[int, ...], settle_delay: int, half_life: int, names: list[dict[str, np.ndarray]],
                 fingerprints: list[int]) -> list[TenantState]:
    """:meth:`TenantState.advance` of several tenants' states (one configuration), each to the same bytes.

    The rows every state adds to its lifetime aggregates are stacked and
    aggregated in one pass, the tenant leading every grouping (a ``tenant`` key
    column: its number in ``states``), then split at the tenant boundaries
    into views. The merges into the states' lifetime tables, decayed sums and
    window counts run stacked too (:func:`merge_many`: one splice per table
    for every tenant). The fixed cost of the many small steps of an
    aggregation and a merge is paid once, not per tenant, and tenants never
    mix: every group holds rows of one tenant only.
    """
    if not states:  # (nothing to stack)
        return []
    cutoff = as_of - settle_delay
    for state, r in zip(states, rows):
        state.check_ledger(r)
    prepared = [state._label_changes(_sorted(r)) for state, r in zip(states, rows)]
    ordered, changes = [r for r, _ in prepared], [c for _, c in prepared]
    counted = [state._counted(r, c, as_of=as_of, settle_delay=settle_delay)
               for state, r, c in zip(states, ordered, changes)]
    new, new_decayed = _aggregate_stacked(counted, cutoff=cutoff, anchor=as_of, half_life=half_life)
    deltas = _window_deltas_many(states, ordered, as_of=as_of, windows=windows)
    # Each table merged for every tenant at once (one stacked splice), each tenant's result a view of it.
    lifetime = {name: merge_many([s.lifetime[name] for s in states], new[name]) for name in states[0].lifetime}
    decayed = _decayed_many([s.decayed for s in states], new_decayed, as_of=as_of, half_life=half_life)
    counts = {str(w): {t: _shift_many([s.windows[str(w)][t] for s in states], deltas[str(w)][t])
                       for t in WINDOW_TABLES} for w in windows}
    merged_names = _merge_names_many([s.names for s in states], names)
    return [state._advanced(r, changes[i], {name: lifetime[name][i] for name in state.lifetime},
                            {name: decayed[name][i] for name in state.decayed},
                            {w: {t: counts[w][t][i] for t in WINDOW_TABLES} for w in counts}, as_of=as_of,
                            windows=windows, settle_delay=settle_delay, names=n, fingerprint=fp)
            for i, (state, r, n, fp) in enumerate(zip(states, ordered, merged_names, fingerprints))]


def _decayed_many(bases: list[dict[str, Decayed]], new: dict[str, Stacked | list[KeyedAggregate]], *, as_of: int,
                  half_life: int) -> dict[str, list[Decayed]]:
    """Per table, each tenant's ``Decayed.merge`` of its decayed sums with those of its new rows (valued at
    ``as_of``; stacked, or one per tenant): the sums brought to ``as_of`` by each tenant's own factor, then
    merged stacked."""
    if any(d.half_life != half_life or d.anchor > as_of for b in bases for d in b.values()):
        # (merged one by one, the mismatch raises the error Decayed.merge gives)
        return {name: [b[name].merge(Decayed(n, anchor=as_of, half_life=half_life))
                       for b, n in zip(bases, _parts(new[name]))] for name in bases[0]}
    out = {}
    for name in bases[0]:
        # The factor Decayed.decay_to applies, computed as it does (a scalar per tenant: the same bits).
        scale = [np.exp2(-(as_of - b[name].anchor) / float(half_life)) for b in bases]
        merged = merge_many([b[name].aggregate for b in bases], new[name], scale)
        out[name] = [Decayed(agg, anchor=as_of, half_life=half_life) for agg in merged]
    return out


def _parts(aggs: Stacked | list[KeyedAggregate]) -> list[KeyedAggregate]:
    return aggs.parts() if isinstance(aggs, Stacked) else aggs


def _shift_many(counts: list[KeyedAggregate], deltas: Stacked) -> list[KeyedAggregate]:
    """:func:`_shift` of each tenant's window counts, merged stacked and the zero groups dropped at once."""
    if not stackable([*counts, deltas.aggregate]):
        return [_shift(c, d) for c, d in zip(counts, deltas.parts())]
    merged, bounds = merge_stacked(counts, deltas)
    keep = merged.values["n"] != 0
    if not keep.all():
        bounds = np.concatenate([[0], np.cumsum(keep)])[bounds]
        merged = merged.take(keep)
    return Stacked(merged, bounds).parts(merge_layouts(counts, deltas))


def _window_deltas_many(states: list[TenantState], rows: list[dict[str, np.ndarray]], *, as_of: int,
                        windows: tuple[int, ...]) -> dict[str, dict[str, Stacked]]:
    """:meth:`TenantState._window_deltas` of each state, counted over every tenant's rows stacked (the
    tenant leading every grouping): per window and table, the tenants' net counts stacked."""
    n_tenants = len(states)
    # Only the columns the counts read (of every part: a day's new rows and the retained rows of three days).
    columns = {c: EVENT_COLUMNS[c] for c in ("timestamp", "head", "is_message", "direction",
                                             *(f"{t}_key" for t in _WINDOW_KEYED))}
    # Every tenant's new rows, then for each window every tenant's retained rows that left it (the rows of
    # each of its chunks in the window's slice, those columns only): each block of rows a slice of the stacked
    # rows (rows of one tenant need not be together: the tenant leads the keys).
    parts, owners, edges = list(rows), list(range(n_tenants)), [0, sum(len(r["timestamp"]) for r in rows)]
    for w in windows:
        n_left = 0
        for i, state in enumerate(states):
            for chunk in state.events:
                lo, hi = np.searchsorted(chunk["timestamp"], [state.as_of - w, min(as_of - w, state.as_of)]).tolist()
                if hi > lo:
                    parts.append({c: chunk[c][lo:hi] for c in columns})  # (cast below, with the new rows)
                    owners.append(i)
                    n_left += hi - lo
        edges.append(edges[-1] + n_left)
    tenant = np.repeat(np.asarray(owners), [len(p["timestamp"]) for p in parts])
    both = {c: np.concatenate([np.asarray(p[c]).astype(d, copy=False) for p in parts]) for c, d in columns.items()}
    messages = both["is_message"]
    counted = {"sender": both["head"] & messages, "recipient": messages & (both["direction"] == INBOUND)}
    # Each table groups only the rows it counts (a sender's messages, a mailbox's inbound edges): fewer rows
    # to factorise, and a group without any would net to zero and be dropped anyway.
    rows_of = {flags: np.flatnonzero(counted[flags]) for flags in set(_WINDOW_KEYED.values())}
    # Where each block's rows start among each table's counted rows.
    starts = {flags: np.searchsorted(rows_t, edges).tolist() for flags, rows_t in rows_of.items()}
    g_tenant = Grouping({"tenant": np.arange(n_tenants, dtype=np.uint64)}, tenant)
    groupings = {table: g_tenant.subset(rows_of[flags]).combine(
                     Grouping.of({f"{table}_key": both[f"{table}_key"][rows_of[flags]]}))
                 for table, flags in _WINDOW_KEYED.items()}
    n_new = edges[1]
    ts, new_tenant = both["timestamp"][:n_new], tenant[:n_new]
    since = np.asarray([state.as_of for state in states], np.int64)[new_tenant]
    heads = counted["sender"]
    out: dict[str, dict[str, Stacked]] = {}
    for i, w in enumerate(windows):
        # The new rows before as_of that entered the window: all of them when it reaches back to the
        # tenant's last as_of (as the single-state slice takes them), else those sent inside it.
        entered = (ts < as_of) & ((ts >= as_of - w) | (since >= as_of - w))
        # The tenant leads every grouping's keys: each table's net counts, stacked by tenant.
        counts = {}
        for table, flags in _WINDOW_KEYED.items():
            g, rows_t, at = groupings[table], rows_of[flags], starts[flags]
            net = _net(g, g.codes[:at[1]][entered[rows_t[:at[1]]]], g.codes[at[i + 1]:at[i + 2]])
            counts[table] = Stacked.by_tenant(net, n_tenants)
        gone = slice(edges[i + 1], edges[i + 2])
        n = (np.bincount(new_tenant[heads[:n_new] & entered], minlength=n_tenants)
             - np.bincount(tenant[gone][heads[gone]], minlength=n_tenants))
        out[str(w)] = {**counts, "tenant": _tenant_totals(n)}
    return out


def _tenant_totals(n: np.ndarray) -> Stacked:
    """:func:`_tenant_total` of each tenant's count, stacked."""
    nonzero = n != 0
    agg = KeyedAggregate({"tenant": np.zeros(int(nonzero.sum()), np.uint64)}, {"n": n[nonzero].astype(np.int64)},
                         {"n": "sum"})
    return Stacked(agg, np.concatenate([[0], np.cumsum(nonzero)]))


def _aggregate_stacked(counted: list[dict[str, np.ndarray]], *, cutoff: int, anchor: int, half_life: int
                       ) -> tuple[dict[str, Stacked | list[KeyedAggregate]], dict[str, Stacked | list[KeyedAggregate]]]:
    """Per table, :func:`aggregate_rows` of each tenant's rows (and the aggregates of its decayed sums),
    computed over every tenant's rows stacked: the tenants' aggregates stacked (one per tenant when a
    sender has two domains: each tenant's own rows then, as advance aggregates them)."""
    n_tenants = len(counted)
    # Every part with the presumed-safe contributions precomputed (what aggregate_rows computes from the
    # rows when they are not given: the same values), so that the parts share one set of columns.
    columns = (*EVENT_COLUMNS, DOMAIN_HEAD)
    stacked = {c: np.concatenate([part[c] for part in counted]) for c in columns}
    stacked["presumed"] = np.concatenate([part["presumed"] if "presumed" in part else _presumed(part, cutoff)
                                          for part in counted])
    if any(LABEL_SIGN in part for part in counted):
        stacked[LABEL_SIGN] = np.concatenate([part[LABEL_SIGN] if LABEL_SIGN in part else
                                              np.ones(len(part["timestamp"]), np.int8) for part in counted])
    tenant = Grouping({"tenant": np.arange(n_tenants, dtype=np.uint64)},
                      np.repeat(np.arange(n_tenants), [len(part["timestamp"]) for part in counted]))
    # Every row grouped by its sender, sender domain and recipient (display names and recipient domains
    # group some rows only: aggregate_rows groups those rows alone, the tenant leading).
    groupings = {c: tenant.combine(Grouping.of({c: stacked[c]})) for c in _ROW_KEYS}
    try:
        aggs, decayed, _ = aggregate_rows(stacked, cutoff=cutoff, anchor=anchor, half_life=half_life,
                                          groupings=groupings, tenant=tenant)
    except _NoRollup:  # each tenant alone, as advance does it
        alone = [aggregate_rows(part, cutoff=cutoff, anchor=anchor, half_life=half_life)[:2] for part in counted]
        return ({name: [a[name] for a, _ in alone] for name in alone[0][0]},
                {name: [d[name].aggregate for _, d in alone] for name in alone[0][1]})
    return ({name: Stacked.by_tenant(agg, n_tenants) for name, agg in aggs.items()},
            {name: Stacked.by_tenant(d.aggregate, n_tenants) for name, d in decayed.items()})


def _sorted(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows in time order (no copy when they already are)."""
    return _sorted_grouped(rows, None)[0]


def _sorted_grouped(rows: dict[str, np.ndarray], groupings: dict[str, Grouping] | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, Grouping] | None]:
    """Rows in time order (no copy when they already are), with their groupings in the same order.

    Extracted rows keep their :data:`DOMAIN_HEAD` flags and :data:`MESSAGE_KEY` keys (stored rows have none).
    """
    ts = np.asarray(rows["timestamp"])
    columns = {**EVENT_COLUMNS, **{c: d for c, d in ((DOMAIN_HEAD, "bool"), (MESSAGE_KEY, "uint64")) if c in rows}}
    if len(ts) < 2 or (ts[1:] >= ts[:-1]).all():
        return {c: np.asarray(rows[c]).astype(d, copy=False) for c, d in columns.items()}, groupings
    order = time_order(rows)
    if groupings is not None:
        groupings = {c: Grouping(g.keys, g.codes[order]) for c, g in groupings.items()}
    return {c: np.asarray(rows[c])[order].astype(d, copy=False) for c, d in columns.items()}, groupings


def _split(rows: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Message rows and label events (views when there are no label events)."""
    messages = rows["is_message"]
    if messages.all():
        return rows, {c: v[:0] for c, v in rows.items()}
    return {c: v[messages] for c, v in rows.items()}, {c: v[~messages] for c, v in rows.items()}


def _merge_names(names: dict[str, np.ndarray], more: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Names (sorted, distinct keys) with more names spliced in: a lookup of the new keys, no re-sort."""
    more = _dedup_names(more)
    if not len(more["key"]):
        return names
    if not len(names.get("key", ())):
        return more
    plan = Splice.of([names["key"]], [more["key"]])
    if not len(plan.new):
        return names
    # Strings by position in (old strings, new strings): the kept order of a sorted merge.
    index = plan.apply(np.arange(len(names["key"])), np.arange(len(more["key"])) + len(names["key"]),
                       lambda kept, _: kept)
    return {"key": plan.apply(names["key"], more["key"]),
            "value": pa.concat_arrays([names["value"], more["value"]]).take(pa.array(index))}


def _merge_names_many(names: list[dict[str, np.ndarray]], more: list[dict[str, np.ndarray] | None]
                      ) -> list[dict[str, np.ndarray]]:
    """Each tenant's ``_merge_names(names[i], more[i])``, to the same keys and strings, for every tenant at once:
    the new names of each tenant deduplicated (its first row of a key gives the string, as in
    :func:`_dedup_names`), looked up in its old ones and spliced in by one plan; each tenant's keys are then a
    slice of the stacked ones, its strings taken from every tenant's (a tenant that gains none keeps its own)."""
    new_keys = [np.asarray(m["key"], np.uint64) if m and len(m.get("key", ())) else _NO_KEYS for m in more]
    old_keys = [o["key"] if len(o.get("key", ())) else _NO_KEYS for o in names]
    strings = [*(o["value"] for o, k in zip(names, old_keys) if len(k)),
               *(m["value"] for m, k in zip(more, new_keys) if len(k))]
    if not strings or len({a.type for a in strings}) > 1 or any(k.dtype != np.uint64 for k in old_keys):
        return [_merge_names(o, m) for o, m in zip(names, more)]  # (nothing new, or the arrays would not stack)
    n_tenants = len(names)
    lengths = [len(k) for k in new_keys]
    # Each tenant's new keys sorted (a sort per tenant costs less than one sort of every key by tenant and key);
    # of the rows of one key, the first (the least row number) gives its string.
    offsets = np.cumsum([0] + lengths[:-1]).tolist()
    order = np.concatenate([np.argsort(k) + lo for k, lo in zip(new_keys, offsets)])
    keys, tenant = np.concatenate(new_keys)[order], np.repeat(np.arange(n_tenants), lengths)[order]
    head = np.ones(len(keys), bool)
    head[1:] = (keys[1:] != keys[:-1]) | (tenant[1:] != tenant[:-1])
    starts = np.flatnonzero(head)
    first, keys, tenant = np.minimum.reduceat(order, starts), keys[starts], tenant[starts]
    # Looked up in each tenant's old keys, and spliced in with the old string kept for a key in both.
    old_bounds = np.cumsum([0] + [len(k) for k in old_keys])
    base = np.concatenate(old_keys)
    plan, bounds = segment_splice([base], [keys], old_bounds, np.searchsorted(tenant, np.arange(n_tenants + 1)))
    gained = (np.diff(bounds) > np.diff(old_bounds)).tolist()
    merged_keys = plan.apply(base, keys)
    index = plan.apply(np.arange(len(base)), first + len(base), lambda kept, _: kept)
    strings = pa.concat_arrays(strings)
    # (each tenant's strings taken on their own: a slice of the stacked ones writes other Arrow IPC bytes)
    bounds = bounds.tolist()
    return [{"key": merged_keys[lo:hi], "value": strings.take(pa.array(index[lo:hi]))} if new else old
            for old, new, lo, hi in zip(names, gained, bounds[:-1], bounds[1:])]


_NO_KEYS = np.zeros(0, np.uint64)


def _dedup_names(names: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not names or not len(names.get("key", ())):
        return {"key": np.zeros(0, np.uint64), "value": pa.array([], pa.string())}
    keys = np.asarray(names["key"], np.uint64)
    uniq, first = np.unique(keys, return_index=True)
    return {"key": uniq, "value": names["value"].take(pa.array(first))}


def _ledger(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ledger of the labelled messages among some rows: each message's key once, with its label."""
    keys = rows.get(MESSAGE_KEY)
    if keys is None or not len(keys):
        return {"key": np.zeros(0, np.uint64), "label": np.zeros(0, np.int8)}
    at = np.flatnonzero(keys != 0)
    unique, first = np.unique(keys[at], return_index=True)
    return {"key": unique, "label": rows["label"][at[first]].astype(np.int8)}


def _merge_ledgers(old: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """A ledger (sorted, unique keys) updated by a later one: a key in both takes the later label, and a withdrawn
    label (-1) leaves (None, no ledger, stays None: what it counted before is unknown)."""
    if old is None or not len(new["key"]):
        return old
    plan = Splice.of([old["key"]], [new["key"]])
    keys, labels = plan.apply(old["key"], new["key"]), plan.apply(old["label"], new["label"])
    kept = labels >= 0
    return {"key": keys[kept], "label": labels[kept]}
