"""The backfill peer: one pass over the history in time order, the state in Python dicts.

The straightforward way to compute leak-free signals: walk the mail in time
order; before the messages of each instant, apply whatever became known
strictly before it (labels, presumptions of safety, the daily prior refit),
score those messages from the dicts, then add them to the dicts. Keys are
address strings. It computes the same 35 signals as
``backfill(messages, prior_every="1D")`` (the benchmark checks them equal) and
reuses the library only where a definition is the point (look-alike skeletons
and distances, the prior fit, the credible bound), never its data structures.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque

import numpy as np
import pandas as pd

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
FAILS = frozenset({"fail", "softfail", "permerror"})
NAMES = ["sender_messages_7d", "sender_messages_30d", "sender_messages_90d", "sender_messages_decayed",
         "sender_days_known", "sender_active_days", "sender_is_new", "sender_distinct_recipients",
         "sender_safe_likelihood", "sender_attack_messages", "sender_solicited_messages",
         "sender_days_since_solicited", "domain_messages_30d", "domain_days_known", "domain_distinct_senders",
         "domain_is_new", "domain_is_freemail", "domain_safe_likelihood", "domain_solicited_messages",
         "pair_messages", "pair_is_first_contact", "pair_days_since_last", "pair_recipient_replied",
         "recipient_safe_likelihood", "recipient_safe_likelihood_lower", "recipient_inbound_30d",
         "recipient_first_contact_rate", "display_name_matches_internal", "display_name_address_days",
         "display_name_is_new_for_address", "lookalike_domain_distance", "lookalike_domain_is_close",
         "sender_hour_surprise", "sender_auth_fail_rate", "auth_deviation"]
_MESSAGE_LEVEL = NAMES[:19] + NAMES[27:]
_WINDOWS = (("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY))


class _Sender:
    __slots__ = ("n", "first", "decayed", "decayed_at", "windows", "last_day", "days", "recipients", "auth",
                 "hours")

    def __init__(self):
        self.n, self.first, self.decayed, self.decayed_at = 0, 0, 0.0, 0
        self.windows = {w: deque() for w, _ in _WINDOWS}
        self.last_day, self.days = None, 0
        self.recipients: set = set()
        self.auth = {a: [0, 0] for a in ("spf", "dkim", "dmarc")}
        self.hours = [0] * 24


class _Domain:
    __slots__ = ("n", "first", "window", "last_day", "days", "senders", "internal")

    def __init__(self):
        self.n, self.first, self.window, self.last_day, self.days = 0, 0, deque(), None, 0
        self.senders: set = set()
        self.internal = 0


class _Pair:
    __slots__ = ("n", "first", "last", "wrote", "inbound")

    def __init__(self, t: int):
        self.n, self.first, self.last, self.wrote, self.inbound = 0, t, t, False, False


class _Mailbox:
    __slots__ = ("n_inbound", "window", "first_time")

    def __init__(self):
        self.n_inbound, self.window, self.first_time = 0, deque(), 0


class _Contacts:
    """The known-contact list of a tenant, kept as mail streams by.

    Every own domain (it sends internal or outbound mail) and every domain the tenant wrote
    to is a member for good; of the others, the ``limit`` busiest (messages from
    the domain plus messages to it), the smaller key first on ties. Scores only
    grow, so the others' top is a min-heap of members beside a max-heap of the
    waiting, both with stale entries skipped when met.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.score: dict[str, int] = {}
        self.always: set = set()
        self.top: set = set()       # the others' current top
        self.heap: list = []        # (score, key, domain) of the top, weakest first
        self.waiting: list = []     # (-score, -key, domain) of the other others, strongest first
        self.members: set = set()
        self.version = 0
        self.listed: tuple | None = None

    @staticmethod
    def _key(domain: str) -> int:
        from xxhash import xxh3_64_intdigest

        return -xxh3_64_intdigest(domain.encode("utf-8"))  # larger is the smaller hash: it wins a tie

    def _weakest(self) -> tuple:
        while True:
            score, key, domain = self.heap[0]
            if domain not in self.top:
                heapq.heappop(self.heap)
            elif self.score[domain] != score:
                heapq.heapreplace(self.heap, (self.score[domain], key, domain))
            else:
                return score, key, domain

    def _fill(self) -> None:
        while len(self.top) < self.limit and self.waiting:
            score, key, domain = heapq.heappop(self.waiting)
            if domain in self.always or domain in self.top or self.score[domain] != -score:
                continue  # stale: promoted, already back in the top, or pushed again since
            self.top.add(domain)
            self.members.add(domain)
            heapq.heappush(self.heap, (-score, -key, domain))
            self.version += 1

    def seen(self, domain: str, own: bool, written: bool) -> None:
        score = self.score[domain] = self.score.get(domain, 0) + 1
        if domain in self.always:
            return
        if own or written:
            self.always.add(domain)
            if domain in self.top:
                self.top.discard(domain)  # its heap entry goes stale; a waiting domain takes its place
                self._fill()
            else:
                self.members.add(domain)
                self.version += 1
            return
        if domain in self.top:
            return  # its heap entry is refreshed when it is met as the weakest
        key = self._key(domain)
        if len(self.top) < self.limit:
            self.top.add(domain)
            self.members.add(domain)
            heapq.heappush(self.heap, (score, key, domain))
            self.version += 1
            return
        weakest = self._weakest()
        if (score, key) > weakest[:2]:
            heapq.heapreplace(self.heap, (score, key, domain))
            self.top.discard(weakest[2])
            self.members.discard(weakest[2])
            heapq.heappush(self.waiting, (-weakest[0], -weakest[1], weakest[2]))
            self.top.add(domain)
            self.members.add(domain)
            self.version += 1
        else:
            heapq.heappush(self.waiting, (-score, -key, domain))


class StreamingBackfill:
    """Signals per edge by one pass over the mail in time order (see the module docstring)."""

    def __init__(self, config, tenants: list[str], own_domains: dict | None = None):
        from commgraph.signals import freemail_domains

        self.config = config
        self.tenants = sorted(tenants)
        self.presume = config.label_policy == "presume_safe"
        self.settle = int(config.settle_delay.total_seconds() * 10**9)
        self.half = config.half_life.total_seconds() * 10**9
        self.free = freemail_domains()
        # Each tenant's own domains as validation used them: look-alike targets (and never look-alikes) from the
        # start, whether or not they have sent mail yet.
        self.own = {t: tuple((own_domains or {}).get(t, ())) for t in tenants}
        self.senders: dict = {}
        self.domains: dict = {}
        self.pairs: dict = {}
        self.wrote: dict = {}        # (tenant, address) -> [non-inbound edges to it, last of its pairs once written on]
        self.out_to: Counter = Counter()
        self.mailboxes: dict = {}
        self.internal_names: set = set()
        self.name_pairs: Counter = Counter()
        self.tenant_hours = {t: [0] * 24 for t in tenants}
        self.tenant_total: Counter = Counter()
        self.outcomes: dict = {}     # (tenant, kind, entity) -> [safe, attack, spam, presumed]
        self.states: dict = {}       # (tenant, kind) -> Counter of (trials, successes) with trials > 0
        self.explicit: Counter = Counter()
        self.prior: dict = {}
        self.contacts = {t: _Contacts(config.known_contact_domains) for t in tenants}
        self.distances: dict = {}
        self.bounds: dict = {}
        self.pending: list = []
        self.seq = 0

    # ------------------------------------------------------------ outcomes and priors
    def _kn(self, counts: list) -> tuple[int, int]:
        k = counts[0] + (max(counts[3], 0) if self.presume else 0)
        return k, k + counts[1] + counts[2]

    def _apply(self, event: tuple) -> None:
        _, _, tenant, kind, entity, change = event
        counts = self.outcomes.setdefault((tenant, kind, entity), [0, 0, 0, 0])
        states = self.states.setdefault((tenant, kind), Counter())
        k, n = self._kn(counts)
        if n:
            states[(n, k)] -= 1
            if not states[(n, k)]:
                del states[(n, k)]
        for i, c in enumerate(change[:4]):
            counts[i] += c
        k, n = self._kn(counts)
        if n:
            states[(n, k)] += 1
        self.explicit[(tenant, kind)] += change[4]

    def _schedule(self, t: int, label, labeled_at: int, tenant: str, kind: str, entity: str) -> None:
        known = labeled_at if labeled_at != np.iinfo(np.int64).min else t
        events = []
        if label is not None:
            events.append((max(t, known), (int(label == "safe"), int(label == "attack"), int(label == "spam"), 0, 1)))
        if label is None or known > t + self.settle:  # presumed safe after the settle delay, until a label
            events.append((t + self.settle, (0, 0, 0, 1, 0)))
            if label is not None:
                events.append((known, (0, 0, 0, -1, 0)))
        for when, change in events:
            heapq.heappush(self.pending, (when, self.seq, tenant, kind, entity, change))
            self.seq += 1

    def _refit(self) -> None:
        from commgraph.baselines._smoothing import fit_summary_list

        # Every tenant's and the pool's prior of each kind as of this instant, in one batch (each
        # fit as if alone): (tenant or None for the pool, kind) -> the (n, k) states and their counts.
        cfg = self.config
        wanted: dict[tuple[str | None, str], list] = {}
        for kind in ("sender", "sender_domain", "recipient"):
            parts = [sorted(self.states.get((t, kind), Counter()).items()) for t in self.tenants]
            for t, items in zip(self.tenants, parts):
                if sum(c for _, c in items) >= cfg.min_prior_entities and \
                        self.explicit[(t, kind)] >= cfg.min_prior_labels:
                    wanted[(t, kind)] = items
            pooled = [item for items in parts for item in items]
            if cfg.global_prior is None and sum(c for _, c in pooled) >= cfg.min_prior_entities and \
                    sum(self.explicit[(t, kind)] for t in self.tenants) >= cfg.min_prior_labels:
                wanted[(None, kind)] = pooled
        fitted = {}
        if wanted:
            alpha, beta = fit_summary_list([(np.array([s[0] for s, _ in found], np.float64),
                                             np.array([s[1] for s, _ in found], np.float64),
                                             np.array([c for _, c in found], np.int64)) for found in wanted.values()])
            fitted = dict(zip(wanted, zip(alpha.tolist(), beta.tolist())))
        for kind in ("sender", "sender_domain", "recipient"):
            borrowed = cfg.global_prior if cfg.global_prior is not None else fitted.get((None, kind), (1.0, 1.0))
            for t in self.tenants:
                self.prior[(t, kind)] = fitted.get((t, kind), borrowed)

    def _likelihood(self, tenant: str, kind: str, entity: str) -> float:
        a, b = self.prior[(tenant, kind)]
        k, n = self._kn(self.outcomes.get((tenant, kind, entity), (0, 0, 0, 0)))
        return (k + a) / (n + a + b)

    def _lower(self, tenant: str, entity: str) -> float:
        from scipy import special

        a, b = self.prior[(tenant, "recipient")]
        k, n = self._kn(self.outcomes.get((tenant, "recipient", entity), (0, 0, 0, 0)))
        found = self.bounds.get((k, n, a, b))
        if found is None:
            found = self.bounds[(k, n, a, b)] = float(special.betaincinv(k + a, n - k + b,
                                                                        1.0 - self.config.credible_level))
        return found

    def _distance(self, tenant: str, domain: str) -> int:
        from commgraph.signals._lookalike import nearest_one, skeleton

        c = self.contacts[tenant]
        found = self.distances.get((tenant, domain, c.version))
        if found is None:
            if c.listed is None or c.listed[0] != c.version:
                known = sorted(c.members)
                known += [o for o in self.own[tenant] if o not in c.members]
                c.listed = (c.version, known, [skeleton(k) for k in known])
            found = self.distances[(tenant, domain, c.version)] = nearest_one(domain, c.listed[1], c.listed[2])[0]
        return found

    # ------------------------------------------------------------ one message
    def score(self, m: dict, t: int, edges: list[tuple[str, str]]) -> tuple[list, list]:
        """The message-level values and, per edge, the edge-level values, from what is known before ``t``."""
        tenant, sender, domain, name = m["tenant_id"], m["sender"], m["sender_domain"], m["name"]
        s = self.senders.get((tenant, sender))
        d = self.domains.get((tenant, domain))
        inbound = m["direction"] == "inbound"
        msg = []
        if s is None:
            msg += [0, 0, 0, 0.0, 0.0, 0, 1, 0]
        else:
            for w, span in _WINDOWS:
                times = s.windows[w]
                while times and times[0] < t - span:
                    times.popleft()
                msg.append(len(times))
            msg += [s.decayed * 2.0 ** (-(t - s.decayed_at) / self.half), max(t - s.first, 0) / DAY, s.days, 0,
                    len(s.recipients)]
        msg.append(self._likelihood(tenant, "sender", sender))
        msg.append(self.outcomes.get((tenant, "sender", sender), (0, 0))[1])
        wrote = self.wrote.get((tenant, sender))
        msg += [wrote[0], max(t - wrote[1], 0) / DAY] if wrote else [0, math.nan]
        if d is None:
            msg += [0, 0.0, 0, 1]
        else:
            while d.window and d.window[0] < t - 30 * DAY:
                d.window.popleft()
            msg += [len(d.window), max(t - d.first, 0) / DAY, len(d.senders), 0]
        msg += [int(domain in self.free), self._likelihood(tenant, "sender_domain", domain),
                self.out_to[(tenant, domain)]]  # a domain only written to counts its outbound mail too
        # identity
        with_name = self.name_pairs[(tenant, name, sender)] if name is not None else 0
        seen = with_name > 0
        internal = name is not None and (tenant, name) in self.internal_names
        msg += [int(internal and (inbound or not seen)), min(with_name, s.days if s else 0) if seen else 0,
                int(name is not None and not seen)]
        # look-alike
        distance = self._distance(tenant, domain)
        established = (self.out_to[(tenant, domain)] > 0 or (d is not None and (d.internal > 0 or d.days >= 14))
                       or domain in self.free or domain in self.own[tenant])  # (providers, own domains: never)
        msg += [distance, int(distance <= 2 and not established)]
        # habits
        hour = (t // HOUR) % 24
        p_t = (self.tenant_hours[tenant][hour] + 1.0) / (self.tenant_total[tenant] + 24.0)
        count, total = (s.hours[hour], s.n) if s else (0, 0)
        msg.append(-math.log2((count + 10.0 * p_t) / (total + 10.0)))
        fails = sum(s.auth[a][1] for a in s.auth) if s else 0
        alls = fails + (sum(s.auth[a][0] for a in s.auth) if s else 0)
        msg.append(fails / alls if alls else 0.0)
        deviation = 0
        if s:
            for a, (ok, bad) in s.auth.items():
                if ok >= 3 and ok >= 9 * bad and m[a] in FAILS:
                    deviation = 1
        msg.append(deviation)
        per_edge = []
        for recipient, _ in edges:
            p = self.pairs.get((tenant, sender, recipient))
            back = self.pairs.get((tenant, recipient, sender))
            box = self.mailboxes.get((tenant, recipient))
            n_in30 = share = 0
            if box is not None:
                while box.window and box.window[0] < t - 30 * DAY:
                    box.window.popleft()
                n_in30 = len(box.window)
                share = box.first_time / box.n_inbound if box.n_inbound else 0.0
            per_edge.append([p.n if p else 0, int(p is None), max(t - p.last, 0) / DAY if p else math.nan,
                             int(back is not None and back.n > 0),
                             self._likelihood(tenant, "recipient", recipient), self._lower(tenant, recipient),
                             n_in30, share])
        return msg, per_edge

    def add(self, m: dict, t: int, edges: list[tuple[str, str]]) -> None:
        """Count a message that was scored (every message of its instant was scored first)."""
        tenant, sender, domain, name, direction = m["tenant_id"], m["sender"], m["sender_domain"], m["name"], \
            m["direction"]
        s = self.senders.get((tenant, sender))
        if s is None:
            s = self.senders[(tenant, sender)] = _Sender()
            s.first = t
        s.decayed = s.decayed * 2.0 ** (-(t - s.decayed_at) / self.half) + 1.0 if s.n else 1.0
        s.decayed_at = t
        s.n += 1
        for w, _ in _WINDOWS:
            s.windows[w].append(t)
        if s.last_day != t // DAY:
            s.last_day, s.days = t // DAY, s.days + 1
        for a in ("spf", "dkim", "dmarc"):
            if m[a] == "pass":
                s.auth[a][0] += 1
            elif m[a] in FAILS:
                s.auth[a][1] += 1
        hour = (t // HOUR) % 24
        s.hours[hour] += 1
        self.tenant_hours[tenant][hour] += 1
        self.tenant_total[tenant] += 1
        d = self.domains.get((tenant, domain))
        if d is None:
            d = self.domains[(tenant, domain)] = _Domain()
            d.first = t
        d.n += 1
        d.window.append(t)
        if d.last_day != t // DAY:
            d.last_day, d.days = t // DAY, d.days + 1
        d.senders.add(sender)
        d.internal += direction != "inbound"  # (mail the tenant sent from the domain: an own domain)
        if name is not None:
            self.name_pairs[(tenant, name, sender)] += 1
            if direction != "inbound":
                self.internal_names.add((tenant, name))
        self._schedule(t, m["label"], m["labeled_at"], tenant, "sender", sender)
        self._schedule(t, m["label"], m["labeled_at"], tenant, "sender_domain", domain)
        contacts = self.contacts[tenant]
        contacts.seen(domain, direction != "inbound", False)
        written: set = set()  # the domains this message wrote to: it counts once per domain
        for recipient, recipient_domain in edges:
            s.recipients.add(recipient)
            p = self.pairs.get((tenant, sender, recipient))
            if p is None:
                p = self.pairs[(tenant, sender, recipient)] = _Pair(t)
            p.n += 1
            p.last = t
            if direction != "inbound":
                p.wrote = True
                counts = self.wrote.setdefault((tenant, recipient), [0, t])
                counts[0] += 1
            if p.wrote:
                counts = self.wrote[(tenant, recipient)]
                counts[1] = max(counts[1], t)
            if direction == "inbound":
                box = self.mailboxes.get((tenant, recipient))
                if box is None:
                    box = self.mailboxes[(tenant, recipient)] = _Mailbox()
                box.n_inbound += 1
                box.window.append(t)
                if not p.inbound:
                    p.inbound = True
                    box.first_time += p.first == s.first
                self._schedule(t, m["label"], m["labeled_at"], tenant, "recipient", recipient)
            elif direction == "outbound":
                if recipient_domain not in written:  # a message counts once per domain it wrote to
                    self.out_to[(tenant, recipient_domain)] += 1
                    written.add(recipient_domain)
                    contacts.seen(recipient_domain, False, True)

    # ------------------------------------------------------------ the pass
    def run(self, frame: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
        """Signals per edge, rows in ``edges`` order."""
        ts = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        columns = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist()
                   for c in ("tenant_id", "sender", "sender_domain", "direction", "spf", "dkim", "dmarc", "label")}
        columns["name"] = frame["sender_display_name"].astype(object).where(
            frame["sender_display_name"].notna(), None).tolist()
        labeled_at = frame["labeled_at"].to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
        edges_of: list[list] = [[] for _ in range(len(frame))]
        for e, (m, r, rd) in enumerate(zip(edges["message_index"].tolist(), edges["recipient"].astype(str).tolist(),
                                           edges["recipient_domain"].astype(str).tolist())):
            edges_of[m].append((e, r, rd))
        values = np.zeros((len(edges), len(NAMES)))
        order = np.argsort(ts, kind="stable").tolist()
        times = ts.tolist()
        day = None
        i = 0
        while i < len(order):
            t = times[order[i]]
            j = i
            while j < len(order) and times[order[j]] == t:
                j += 1
            if day != t // DAY:  # the day's prior, fitted on what was known before midnight
                while self.pending and self.pending[0][0] < (t // DAY) * DAY:
                    self._apply(heapq.heappop(self.pending))
                self._refit()
                day = t // DAY
            while self.pending and self.pending[0][0] < t:
                self._apply(heapq.heappop(self.pending))
            scored = []
            for m in order[i:j]:
                message = {c: v[m] for c, v in columns.items()}
                message["labeled_at"] = labeled_at[m]
                pairs = [(r, rd) for _, r, rd in edges_of[m]]
                scored.append((m, message, pairs, *self.score(message, t, pairs)))
            for m, message, pairs, msg, per_edge in scored:
                for (e, _, _), edge_values in zip(edges_of[m], per_edge):
                    values[e, :19] = msg[:19]
                    values[e, 19:27] = edge_values
                    values[e, 27:] = msg[19:]
            for m, message, pairs, _, _ in scored:
                self.add(message, t, pairs)
            i = j
        return pd.DataFrame(values, columns=NAMES)
