"""Every built-in signal of one message in one pass: the single-message path of the default signal set.

:meth:`Scorer.score_one` spends its time on fixed costs, not on data: a
provider call, a dict per provider, a cache lookup per column bundle, a
probe per provider that wants the same row. Here each key is probed once
(linear probing over the snapshot's :class:`~commgraph.baselines.KeyIndex`
slots, as :class:`ScalarTables` does), each row's columns are read once
through ``memoryview``\\ s of the snapshot's own arrays (memory-mapped when
the snapshot comes from a store: no per-key Python structure), and the 35
columns are computed in one function on Python ints and floats. The values
equal the batch path's (:meth:`SignalSet.compute` at message level), column
for column: float32 columns are rounded as the batch stores them.

The built-in providers' ``compute_one`` read their columns from here, so
each signal's scalar logic is written once, in :meth:`BuiltinOne.values`.
"""

from __future__ import annotations

import copy
import math
from array import array
from typing import Any, Iterable

from commgraph.graph import ConfigError

from ._batch import DIRECTION_CODES, FAIL_CODES
from ._builtin_identity import _MIN_PASSES, HOUR_PSEUDO_COUNT, claims_own_address
from ._builtin_sender import window_column
from ._freemail import freemail_domains
from ._lookalike import CLOSE_DISTANCE, is_established, nearest_one, never_close
from ._scalar import find, mix64, normalised_name

__all__ = ["BuiltinOne", "BUILTIN_NAMES"]

_NAT = -(1 << 63)
_DAY_NS = 86_400 * 10**9
_NAN = math.nan
_INBOUND = DIRECTION_CODES["inbound"]
_FREEMAIL = freemail_domains()
_LOG2 = math.log2

#: The built-in columns in :data:`DEFAULT_PROVIDERS` order (what :meth:`BuiltinOne.values` returns after
#: ``tenant_id`` and ``message_id``).
BUILTIN_NAMES: tuple[str, ...] = (
    "sender_messages_7d", "sender_messages_30d", "sender_messages_90d", "sender_messages_decayed",
    "sender_days_known", "sender_active_days", "sender_is_new", "sender_distinct_recipients",
    "sender_safe_likelihood", "sender_attack_messages", "sender_solicited_messages", "sender_days_since_solicited",
    "domain_messages_30d", "domain_days_known", "domain_distinct_senders", "domain_is_new", "domain_is_freemail",
    "domain_safe_likelihood", "domain_solicited_messages",
    "pair_messages", "pair_is_first_contact", "pair_days_since_last", "pair_recipient_replied",
    "recipient_safe_likelihood", "recipient_safe_likelihood_lower", "recipient_inbound_30d",
    "recipient_first_contact_rate",
    "display_name_matches_internal", "display_name_address_days", "display_name_is_new_for_address",
    "lookalike_domain_distance", "lookalike_domain_is_close",
    "sender_hour_surprise", "sender_auth_fail_rate", "auth_deviation",
)


def _f32(value: float) -> float:
    """A float rounded to float32, as the batch path stores it."""
    return array("f", (value,))[0]


class _Missing:
    """Stands for a window column the snapshot lacks: reads 0, and :meth:`BuiltinOne.values` raises first
    when a wanted signal needs it (the batch path's error)."""

    def __getitem__(self, row: int) -> int:
        return 0


class BuiltinOne:
    """The built-in signals of one message against one tenant's snapshot view, in one pass.

    Made once per snapshot view (:meth:`SnapshotView.builtin_one`); holds only
    memoryviews of the snapshot's columns, the prepared key indexes and a few
    constants, so it is safe to share between threads.

    Parameters
    ----------
    view : SnapshotView
        The tenant's prepared view (a cold-start view answers every key as unknown).

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> from commgraph.signals._scalar import parse_one
    >>> from commgraph.signals._view import SnapshotView
    >>> one = BuiltinOne(SnapshotView(_example()))
    >>> m = parse_one({"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
    ...                "sender": "ann@vendor.com", "recipients": ["cy@acme.com", "new@acme.com"],
    ...                "direction": "inbound"}, lambda d: d)
    >>> v = one.values(m)
    >>> v["sender_messages_7d"], v["pair_messages"], v["pair_is_first_contact"]
    (2, 0, 1)
    >>> one.per_recipient(m, ["pair_messages", "pair_is_first_contact"])
    {'pair_messages': [2, 0], 'pair_is_first_contact': [0, 1]}
    """

    def __init__(self, view: Any):
        t = view.scalar()
        col = t.col
        self.view = view
        self.lookalike_cache = view.lookalike_cache()
        self.lookalike_distance = self.lookalike_cache.distance.get
        self.known_domains = view.known_domains()
        # Own domains (a message's ``own_domains``) -> (cache, comparison list) of view.comparison, looked up once.
        self.comparisons: dict[tuple[str, ...], tuple[Any, tuple]] = {}
        #: Signal name -> the error its missing window column raises (the batch path's ConfigError).
        self.missing: dict[str, Exception] = {}

        def windowed(table: str, prefix: str, window: str, signal: str) -> Any:
            try:
                return col(table, window_column(view, table, prefix, window, signal))
            except ConfigError as exc:  # kept, and raised when that signal is asked for
                self.missing[signal] = exc
                return _Missing()

        self.sender = t.probe("sender")
        self.domain = t.probe("sender_domain")
        self.pair = t.probe("pair")
        self.recipient = t.probe("recipient")
        self.name = t.probe("display_name")
        index, counts, last = view.written_to()
        self.written = t.probe_of("written_to", index)
        self.written_counts = t.array("written_to.counts", counts)
        self.written_last = t.array("written_to.last", last)
        index, counts, days = view.name_pairs()
        self.name_pair = t.probe_of("name_pairs", index)
        self.name_pair_counts = t.array("name_pairs.counts", counts)
        self.name_pair_days = t.array("name_pairs.days", days)
        self.sender_cols = (
            windowed("sender", "n_messages", "7d", "sender_messages_7d"),
            windowed("sender", "n_messages", "30d", "sender_messages_30d"),
            windowed("sender", "n_messages", "90d", "sender_messages_90d"),
            col("sender", "decayed_messages"), col("sender", "first_seen"), col("sender", "active_days"),
            col("sender", "n_messages"), col("sender", "n_distinct_recipients"), col("sender", "likelihood_safe"),
            col("sender", "n_attack"))
        self.habit_cols = (t.hours("sender"), t.array("hour_totals", view.hour_totals("sender")),
                           col("sender", "spf_pass"), col("sender", "spf_fail"), col("sender", "dkim_pass"),
                           col("sender", "dkim_fail"), col("sender", "dmarc_pass"), col("sender", "dmarc_fail"))
        self.domain_cols = (
            windowed("sender_domain", "n_messages", "30d", "domain_messages_30d"),
            col("sender_domain", "first_seen"), col("sender_domain", "n_distinct_senders"),
            col("sender_domain", "n_messages"), col("sender_domain", "likelihood_safe"),
            col("sender_domain", "n_outbound_to"), col("sender_domain", "n_internal"),
            col("sender_domain", "n_outbound"), col("sender_domain", "active_days"))
        self.pair_cols = (col("pair", "n_messages"), col("pair", "last_seen"), col("pair", "n_reverse"))
        self.recipient_cols = (col("recipient", "likelihood_safe"), col("recipient", "likelihood_safe_lower"),
                               windowed("recipient", "n_inbound", "30d", "recipient_inbound_30d"),
                               col("recipient", "first_time_share"))
        self.name_internal = col("display_name", "is_internal")
        # Unknown entities read the prior as the batch gathers it into a float32 column.
        self.priors = (_f32(view.prior_mean["sender"]), _f32(view.prior_mean["sender_domain"]),
                       _f32(view.prior_mean["recipient"]), _f32(view.prior_lower["recipient"]))
        # The tenant's hour profile weighted as pseudo-messages; a new sender has no hours of its own,
        # so its surprise is the tenant's, computed with the same float operations as the batch path.
        self.hour_profile = tuple(HOUR_PSEUDO_COUNT * p for p in view.tenant_hour_profile().tolist())
        self.new_sender_surprise = tuple(_f32(-_LOG2((0 + p) / (0 + HOUR_PSEUDO_COUNT))) for p in self.hour_profile)

    def values(self, m: Any, wanted: Iterable[str] | None = None) -> dict[str, Any]:
        """``tenant_id``, ``message_id`` and every built-in signal of one parsed message (:func:`parse_one`).

        Parameters
        ----------
        m : OneMessage
        wanted : iterable of str, optional
            The signals the caller will read (default: all); only they may raise
            for a window the snapshot lacks.
        """
        if self.missing:
            self._raise_missing(wanted)
        ts = m.timestamp
        sk = m.sender_key

        # Sender: its row, and the tenant's mail to this address (written_to, from the pair table).
        w = find(self.written, sk)
        if w >= 0:
            solicited = self.written_counts[w]
            then = self.written_last[w]
            since = _NAN if then == _NAT else max(ts - then, 0) / _DAY_NS
        else:
            solicited = 0
            since = _NAN
        r = find(self.sender, sk)
        if r >= 0:
            n7, n30, n90, decayed_col, first, active, n, distinct, likely, attack = self.sender_cols
            s7, s30, s90, decayed, s_active = n7[r], n30[r], n90[r], decayed_col[r], active[r]
            s_new, s_distinct, s_likely, s_attack = int(n[r] == 0), distinct[r], likely[r], attack[r]
            then = first[r]
            known_days = 0.0 if then == _NAT else max(ts - then, 0) / _DAY_NS
        else:
            s7 = s30 = s90 = s_active = s_distinct = s_attack = 0
            s_new = 1
            decayed = known_days = 0.0
            s_likely = self.priors[0]

        # Sender domain (and whether it is an established contact, for the look-alike flag).
        d = find(self.domain, m.sender_domain_key)
        if d >= 0:
            w30, first, senders, n, likely, outbound_to, internal, outbound, active = self.domain_cols
            d30, d_senders, d_new, d_likely, d_solicited = w30[d], senders[d], int(n[d] == 0), likely[d], outbound_to[d]
            then = first[d]
            domain_days = 0.0 if then == _NAT else max(ts - then, 0) / _DAY_NS
            established = is_established(d_solicited, internal[d], outbound[d], active[d])
        else:
            d30 = d_senders = d_solicited = 0
            d_new = 1
            domain_days = 0.0
            d_likely = self.priors[1]
            established = False

        # Pairs and recipients, aggregated over the recipients as the batch path's message level does
        # (nan-ignoring min/max for floats, like numpy's fmin/fmax).
        pair, box = self.pair, self.recipient
        pair_n, pair_last, pair_reverse = self.pair_cols
        like, lower, inbound, share = self.recipient_cols
        least = None
        first_contact = replied = inbound_sum = 0
        gap = worst_like = worst_lower = top_share = _NAN
        for rk in m.recipient_keys:
            p = find(pair, mix64(sk, rk))
            if p >= 0:
                n = pair_n[p]
                then = pair_last[p]
                if then != _NAT:
                    days = max(ts - then, 0) / _DAY_NS
                    if days > gap or gap != gap:
                        gap = days
                if not replied:  # a pair row carries its reverse's message count
                    replied = int(pair_reverse[p] > 0)
            else:
                n = 0
                if not replied:  # a first reply to a mailbox that wrote first: only the reverse row exists
                    back = find(pair, mix64(rk, sk))
                    replied = int(back >= 0 and pair_n[back] > 0)
            if least is None or n < least:
                least = n
            if n == 0:
                first_contact = 1
            q = find(box, rk)
            if q >= 0:
                v, lo, s, c = like[q], lower[q], share[q], inbound[q]
            else:
                v, lo, s, c = self.priors[2], self.priors[3], 0.0, 0
            if v < worst_like or worst_like != worst_like:
                worst_like = v
            if lo < worst_lower or worst_lower != worst_lower:
                worst_lower = lo
            if s > top_share or top_share != top_share:
                top_share = s
            inbound_sum += c

        # Display name: impersonation of an internal name, a name new for this address.
        key = m.display_name_key
        if key:
            q = find(self.name, key)
            internal_name = q >= 0 and self.name_internal[q] > 0
            p = find(self.name_pair, mix64(key, sk))
            if p >= 0:
                name_days = self.name_pair_days[p]
                if name_days < 0:  # the baselines carry no per-pair days: the documented upper bound
                    name_days = min(self.name_pair_counts[p], s_active)
                name_internal, name_new = int(internal_name and m.direction == _INBOUND), 0
            else:
                name_internal, name_days, name_new = int(internal_name), 0, 1
        else:
            name_internal = name_days = name_new = 0
        raw = m.display_name
        # An address shown as the name, read in the name as the batch path stores it (normalised). A plain ASCII
        # name without '@' or an encoded word normalises to none: most names skip the memo.
        if not name_internal and raw and m.own_domains and ("@" in raw or "=?" in raw or not raw.isascii()):
            name = normalised_name(raw)
            if "@" in name:
                name_internal = int(claims_own_address(name, m.sender, m.direction == _INBOUND, m.own_domains))

        # Look-alike domain: the per-snapshot cache (seeded with every sender domain of the snapshot), or with own
        # domains the snapshot's list lacks, the cache of that list with them (SnapshotView.comparison).
        own = m.own_domains
        if own:
            found = self.comparisons.get(own)
            if found is None:
                compared, cache = self.view.comparison(own)
                found = self.comparisons[own] = (cache, compared)
            cache, compared = found
            distance = cache.distance.get(m.sender_domain)
        else:
            cache, compared = self.lookalike_cache, self.known_domains
            distance = self.lookalike_distance(m.sender_domain)
        if distance is None:
            known, skeletons, _ = compared
            distance, nearest = nearest_one(m.sender_domain, known, skeletons, names=cache.names_of(known))
            cache.add([m.sender_domain], [distance], [nearest])

        # Habits: the hour against the sender's smoothed profile, authentication against its history.
        hour = m.hour
        deviation = 0
        if r >= 0:
            hours, totals, spf_ok, spf_bad, dkim_ok, dkim_bad, dmarc_ok, dmarc_bad = self.habit_cols
            surprise = -_LOG2((hours[r * 24 + hour] + self.hour_profile[hour]) / (totals[r] + HOUR_PSEUDO_COUNT))
            n_fail = n_all = 0
            for ok, bad, result in ((spf_ok[r], spf_bad[r], m.spf), (dkim_ok[r], dkim_bad[r], m.dkim),
                                    (dmarc_ok[r], dmarc_bad[r], m.dmarc)):
                n_fail += bad
                n_all += ok + bad
                if ok >= _MIN_PASSES and ok >= 9 * bad and result in FAIL_CODES:
                    deviation = 1
            fail_rate = n_fail / n_all if n_all else 0.0
        else:
            surprise = self.new_sender_surprise[hour]
            fail_rate = 0.0

        # The float32 columns computed in float64, rounded as the batch stores them, in one call.
        since, decayed, known_days, domain_days, gap, inbound_mean, surprise, fail_rate = array("f", (
            since, decayed, known_days, domain_days, gap, inbound_sum / len(m.recipient_keys), surprise, fail_rate))
        return {
            "tenant_id": m.tenant_id, "message_id": m.message_id,
            "sender_messages_7d": s7, "sender_messages_30d": s30, "sender_messages_90d": s90,
            "sender_messages_decayed": decayed, "sender_days_known": known_days, "sender_active_days": s_active,
            "sender_is_new": s_new, "sender_distinct_recipients": s_distinct, "sender_safe_likelihood": s_likely,
            "sender_attack_messages": s_attack, "sender_solicited_messages": solicited,
            "sender_days_since_solicited": since,
            "domain_messages_30d": d30, "domain_days_known": domain_days, "domain_distinct_senders": d_senders,
            "domain_is_new": d_new, "domain_is_freemail": int(m.sender_domain in _FREEMAIL),
            "domain_safe_likelihood": d_likely, "domain_solicited_messages": d_solicited,
            "pair_messages": least, "pair_is_first_contact": first_contact, "pair_days_since_last": gap,
            "pair_recipient_replied": replied,
            "recipient_safe_likelihood": worst_like, "recipient_safe_likelihood_lower": worst_lower,
            "recipient_inbound_30d": inbound_mean, "recipient_first_contact_rate": top_share,
            "display_name_matches_internal": name_internal, "display_name_address_days": name_days,
            "display_name_is_new_for_address": name_new,
            "lookalike_domain_distance": distance,
            "lookalike_domain_is_close": int(distance <= CLOSE_DISTANCE and not established
                                             and not never_close(m.sender_domain, own)),
            "sender_hour_surprise": surprise, "sender_auth_fail_rate": fail_rate, "auth_deviation": deviation,
        }

    def per_recipient(self, m: Any, names: Iterable[str], *, as_int: Iterable[str] = ()) -> dict[str, list]:
        """Edge-level values: for each of ``names``, one value per recipient (the message alone with it).

        ``as_int`` names columns whose message-level value is a mean but whose
        edge value is an integer. The contract of ``SignalProvider.compute_one``
        for edge-level providers; the scorer itself never needs it.
        """
        names = list(names)
        ints = set(as_int)
        out: dict[str, list] = {n: [] for n in names}
        alone = copy.copy(m)
        for rk in m.recipient_keys:
            alone.recipient_keys = (rk,)
            values = self.values(alone, names)
            for n in names:
                out[n].append(int(values[n]) if n in ints else values[n])
        return out

    def _raise_missing(self, wanted: Iterable[str] | None) -> None:
        for name in (self.missing if wanted is None else wanted):
            if name in self.missing:
                raise self.missing[name]
