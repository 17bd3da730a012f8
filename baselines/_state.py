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

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from commgraph.graph import CommGraphError

from ._aggregate import Decayed, Grouping, Histogram, KeyedAggregate
from ._events import (
    DAY_NS, EVENT_COLUMNS, FAILS, HOUR_NS, INBOUND, INTERNAL, OUTBOUND, PASS, concat_events, time_order,
)

__all__ = ["TenantState", "aggregate_rows", "merge_partials", "LIFETIME_TABLES", "DECAYED_TABLES", "WINDOW_TABLES"]

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_AUTH = ("spf", "dkim", "dmarc")
#: Keyed aggregates over every row before ``as_of``.
LIFETIME_TABLES = ("sender", "sender_day", "sender_domain", "sender_domain_day", "display_name", "pair",
                  "recipient", "written_to", "domain_out", "tenant")
DECAYED_TABLES = ("sender", "sender_domain", "tenant")
#: Tables with windowed counts (messages; inbound edges for recipients).
WINDOW_TABLES = ("sender", "sender_domain", "recipient", "tenant")


def _label_values(ev: dict[str, np.ndarray], cutoff: int, weight: np.ndarray | None = None
                  ) -> dict[str, np.ndarray | Histogram]:
    label = ev["label"]
    labelled = label >= 0
    # Presumed safe: messages older than the cutoff minus labels on them. A label
    # event for an old message cancels the presumption its message row made, so
    # the count stays a plain (signed) sum and merges by addition.
    if "presumed" in ev:  # given: the rows only pass the settle delay (see TenantState.advance)
        presumed = ev["presumed"]
    else:
        presumed = (ev["is_message"].astype(np.int64) - labelled) * (ev["timestamp"] < cutoff)
    if weight is not None:
        labelled = labelled & weight
        presumed = presumed * weight
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
        passed, failed = m[a] == PASS, np.isin(m[a], FAILS)
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


def aggregate_rows(ev: dict[str, np.ndarray], *, cutoff: int, anchor: int, half_life: int
                   ) -> tuple[dict[str, KeyedAggregate], dict[str, Decayed], dict[str, Grouping]]:
    """Every lifetime aggregate over some event rows, and the groupings of the rows.

    ``cutoff`` decides which rows are old enough to be presumed safe when
    unlabelled; ``anchor`` is the instant decayed sums are valued at. Each key
    column is factorised once and its grouping reused by every aggregate and
    subset that needs it.
    """
    heads = ev["head"]
    m = {c: ev[c][heads] for c in ("timestamp", "sender_key", "sender_domain_key", "display_name_key", "direction",
                                   "label", "is_message", "n_recipients", *_AUTH, "presumed") if c in ev}
    w = m["is_message"]
    mv = _message_values(m, cutoff)
    g_sender_e = Grouping.of({"sender_key": ev["sender_key"]})
    g_sender = g_sender_e.subset(heads)
    g_domain = Grouping.of({"sender_domain_key": m["sender_domain_key"]})
    g_day = _day_grouping(m["timestamp"] // DAY_NS)
    one = {"n_messages": np.ones(int(w.sum()), np.int64)}
    sum_ = {"n_messages": "sum"}
    aggs: dict[str, KeyedAggregate] = {}
    aggs["sender"] = g_sender.aggregate({"sender_domain_key": m["sender_domain_key"], **mv},
                                        _reducers({"sender_domain_key": 0, **mv}))
    aggs["sender_day"] = g_sender.combine(g_day).subset(w).aggregate(one, sum_)
    domain_values = {c: v for c, v in mv.items() if c != "n_recipients_total"}
    aggs["sender_domain"] = g_domain.aggregate(domain_values, _reducers(domain_values))
    aggs["sender_domain_day"] = g_domain.combine(g_day).subset(w).aggregate(one, sum_)
    named = w & (m["display_name_key"] != 0)
    g_display = Grouping.of({"display_name_key": m["display_name_key"][named]})
    aggs["display_name"] = g_display.combine(g_sender.subset(named)).aggregate(
        {"n_messages": np.ones(int(named.sum()), np.int64), "n_internal": m["direction"][named] != INBOUND},
        {"n_messages": "sum", "n_internal": "sum"})
    tenant_values = {c: v for c, v in mv.items() if c not in ("n_recipients_total",) + _AUTH}
    g_tenant = Grouping({"tenant": np.zeros(1, np.uint64)}, np.zeros(len(w), np.int64))
    aggs["tenant"] = g_tenant.aggregate(tenant_values, _reducers(tenant_values))

    # Edge-level statistics: every row.
    ew = ev["is_message"]
    ts = ev["timestamp"]
    direction = ev["direction"]
    g_recipient = Grouping.of({"recipient_key": ev["recipient_key"]})
    pair_values = {"n_messages": ew.astype(np.int64), "first_seen": np.where(ew, ts, _INT64_MAX),
                   "last_seen": np.where(ew, ts, _INT64_MIN), **_label_values(ev, cutoff),
                   "n_inbound": ew & (direction == INBOUND)}
    aggs["pair"] = g_sender_e.combine(g_recipient).aggregate(pair_values, _reducers(pair_values))
    mailbox = direction != OUTBOUND  # the recipient is one of the tenant's mailboxes
    sub = {c: ev[c][mailbox] for c in ("timestamp", "label", "is_message", "direction", "presumed") if c in ev}
    inbound = sub["direction"] == INBOUND
    recipient_values = {"n_inbound": sub["is_message"] & inbound, "n_internal": sub["is_message"] & ~inbound,
                        **_label_values(sub, cutoff, inbound)}
    aggs["recipient"] = g_recipient.subset(mailbox).aggregate(recipient_values, _reducers(recipient_values))
    wrote = direction != INBOUND  # the sender is one of the tenant's mailboxes
    last = {"n_messages": "sum", "last_seen": "max"}
    aggs["written_to"] = g_recipient.subset(wrote).aggregate(
        {"n_messages": ew[wrote].astype(np.int64), "last_seen": np.where(ew[wrote], ts[wrote], _INT64_MIN)}, last)
    out = direction == OUTBOUND
    aggs["domain_out"] = Grouping.of({"recipient_domain_key": ev["recipient_domain_key"][out]}).aggregate(
        {"n_messages": ew[out].astype(np.int64), "last_seen": np.where(ew[out], ts[out], _INT64_MIN)}, last)

    factor = np.exp2(-(int(anchor) - m["timestamp"]) / float(half_life)) * w
    decayed = {name: Decayed(g.aggregate({"n_messages": factor}, sum_), anchor=anchor, half_life=half_life)
               for name, g in (("sender", g_sender), ("sender_domain", g_domain), ("tenant", g_tenant))}
    groupings = {"sender": g_sender, "sender_domain": g_domain, "recipient": g_recipient}
    return aggs, decayed, groupings


def merge_partials(a: tuple[dict[str, KeyedAggregate], dict[str, Decayed]],
                   b: tuple[dict[str, KeyedAggregate], dict[str, Decayed]]
                   ) -> tuple[dict[str, KeyedAggregate], dict[str, Decayed]]:
    """Merge two sets of lifetime aggregates (and decayed sums), table by table."""
    return ({k: a[0][k].merge(b[0][k]) for k in a[0]}, {k: a[1][k].merge(b[1][k]) for k in a[1]})


def window_counts(ev: dict[str, np.ndarray], start: int, end: int,
                  groupings: dict[str, Grouping] | None = None) -> dict[str, KeyedAggregate]:
    """Per table of :data:`WINDOW_TABLES`, the message counts of the rows in ``[start, end)``.

    ``groupings`` (from :func:`aggregate_rows` over the same rows) saves factorising again.
    """
    ts, heads = ev["timestamp"], ev["head"]
    inside = ev["is_message"] & (ts >= start) & (ts < end)
    if groupings is None:
        groupings = {"sender": Grouping.of({"sender_key": ev["sender_key"][heads]}),
                     "sender_domain": Grouping.of({"sender_domain_key": ev["sender_domain_key"][heads]}),
                     "recipient": Grouping.of({"recipient_key": ev["recipient_key"]})}
    head_inside = inside[heads]
    inbound = inside & (ev["direction"] == INBOUND)
    count = {"n": "sum"}
    return {
        "sender": groupings["sender"].subset(head_inside).aggregate({"n": np.ones(int(head_inside.sum()), np.int64)},
                                                                    count),
        "sender_domain": groupings["sender_domain"].subset(head_inside).aggregate(
            {"n": np.ones(int(head_inside.sum()), np.int64)}, count),
        "recipient": groupings["recipient"].subset(inbound).aggregate({"n": np.ones(int(inbound.sum()), np.int64)},
                                                                      count),
        "tenant": KeyedAggregate({"tenant": np.zeros(1, np.uint64)}, {"n": np.array([int(head_inside.sum())])},
                                 count).take(np.array([bool(head_inside.any())])),
    }


def _subtract(a: KeyedAggregate, b: KeyedAggregate) -> KeyedAggregate:
    """``a`` minus ``b`` for count aggregates; groups that reach zero are dropped (as a rebuild has none)."""
    negative = KeyedAggregate(b.keys, {c: -v for c, v in b.values.items()}, b.reducers)
    out = a.merge(negative)
    return out.take(out.values["n"] != 0) if len(out) else out


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
    what is kept); ``pending`` the label events for mail still inside the settle delay.
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

    @classmethod
    def build(cls, tenant_id: str, rows: dict[str, np.ndarray], *, as_of: int, windows: tuple[int, ...],
              settle_delay: int, half_life: int, names: dict[str, np.ndarray], fingerprint: int) -> "TenantState":
        rows = _sorted(rows)
        lifetime, decayed, groupings = aggregate_rows(rows, cutoff=as_of - settle_delay, anchor=as_of,
                                                      half_life=half_life)
        counts = {str(w): window_counts(rows, as_of - w, as_of, groupings) for w in windows}
        messages = rows["is_message"]
        events = _slice({c: v[messages] for c, v in rows.items()}, as_of - max(windows), as_of)
        pending = _slice({c: v[~messages] for c, v in rows.items()}, as_of - settle_delay, as_of)
        return cls(tenant_id, as_of, lifetime, decayed, counts, [events], pending, _dedup_names(names), fingerprint)

    def advance(self, rows: dict[str, np.ndarray], *, as_of: int, windows: tuple[int, ...], settle_delay: int,
                half_life: int, names: dict[str, np.ndarray], fingerprint: int) -> "TenantState":
        """The state as of a later ``as_of``, given the event rows of ``[self.as_of, as_of)`` (and label events)."""
        before = self.as_of
        rows = _sorted(rows)
        new, new_decayed, groupings = aggregate_rows(rows, cutoff=as_of - settle_delay, anchor=as_of,
                                                     half_life=half_life)
        # Retained rows that passed the settle delay since the last refresh: they
        # add to the presumed-safe counts and to nothing else.
        settled = concat_events([_slice_chunks(self.events, before - settle_delay, as_of - settle_delay),
                                 _slice(self.pending, before - settle_delay, as_of - settle_delay)])
        n = len(settled["timestamp"])
        if n:
            passed = dict(settled, presumed=settled["is_message"].astype(np.int64) - (settled["label"] >= 0),
                          is_message=np.zeros(n, bool), label=np.full(n, -1, np.int8))
            extra, extra_decayed, _ = aggregate_rows(passed, cutoff=as_of, anchor=as_of, half_life=half_life)
            new, new_decayed = merge_partials((new, new_decayed), (extra, extra_decayed))
        lifetime, decayed = merge_partials((self.lifetime, self.decayed), (new, new_decayed))
        counts = {}
        for w in windows:
            entered = window_counts(rows, as_of - w, as_of, groupings)
            left = window_counts(_slice_chunks(self.events, before - w, min(as_of - w, before)), -np.inf, np.inf)
            counts[str(w)] = {t: _subtract(self.windows[str(w)][t].merge(entered[t]), left[t]) for t in WINDOW_TABLES}
        messages = rows["is_message"]
        # New mail comes after everything kept (it was sent at or after the last
        # as_of): append it as a chunk, and drop or trim chunks that left the longest window.
        start = as_of - max(windows)
        events = [_slice(c, start, as_of) for c in self.events + [{c: v[messages] for c, v in rows.items()}]
                  if len(c["timestamp"]) and c["timestamp"][-1] >= start]
        pending = _slice(_sorted(concat_events([self.pending, {c: v[~messages] for c, v in rows.items()}])),
                         as_of - settle_delay, as_of)
        merged_names = {"key": np.concatenate([self.names["key"], names["key"]]),
                        "value": pa.concat_arrays([self.names["value"], names["value"]])} if names else self.names
        with np.errstate(over="ignore"):
            fp = int((np.uint64(self.fingerprint) + np.uint64(fingerprint)))
        return TenantState(self.tenant_id, as_of, lifetime, decayed, counts, events, pending,
                           _dedup_names(merged_names), fp)

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
        return TenantState(self.tenant_id, self.as_of, lifetime, decayed, windows, events, pending, names,
                           (self.fingerprint + other.fingerprint) % 2**64)

    def event_rows(self) -> dict[str, np.ndarray]:
        """Every retained row (message chunks and pending label events), one table."""
        return concat_events(self.events + [self.pending])


def _sorted(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = time_order(rows)
    return {c: np.asarray(rows[c])[order].astype(d, copy=False) for c, d in EVENT_COLUMNS.items()}


def _dedup_names(names: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not names or not len(names.get("key", ())):
        return {"key": np.zeros(0, np.uint64), "value": pa.array([], pa.string())}
    keys = np.asarray(names["key"], np.uint64)
    uniq, first = np.unique(keys, return_index=True)
    return {"key": uniq, "value": names["value"].take(pa.array(first))}
