"""The built-in providers' signals computed from baseline columns valued per message (for backfill).

Each function mirrors one provider's ``compute``: the same formulas and
dtypes, but reading :class:`commgraph.baselines._asof.AsOfTables` (each
message's keys as of its own instant) where the provider reads a snapshot, and
with a prior per message where the provider has one per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from commgraph.baselines import BaselineConfig
from commgraph.baselines._asof import AsOfTables, smoothed
from commgraph.baselines._build import _outcomes
from commgraph.baselines._smoothing import beta_quantile, posterior_mean
from commgraph.baselines._sweeps import _compiled, warmed_by
from commgraph.graph import ConfigError

from ._backfill_lookalike import distances_as_of
from ._batch import DIRECTION_CODES, SignalBatch
from ._builtin_identity import _IS_FAIL, _MIN_PASSES, HOUR_PSEUDO_COUNT, HabitSignals, IdentitySignals, \
    LookalikeSignals, _claims_own_addresses
from ._builtin_pair import PairSignals, RecipientSignals
from ._builtin_sender import NAN, SenderDomainSignals, SenderSignals, days_between
from ._freemail import freemail_flags
from ._lookalike import CLOSE_DISTANCE, is_established, never_close_all

__all__ = ["TenantAsOf", "BUILTIN", "PRIOR_KINDS"]

_INBOUND = DIRECTION_CODES["inbound"]
_AUTH = ("spf", "dkim", "dmarc")


@dataclass
class TenantAsOf:
    """One tenant's batch, its baseline columns as of each message's instant, and its priors per message."""

    tenant_id: str
    batch: SignalBatch
    tables: AsOfTables
    instants: np.ndarray
    config: BaselineConfig
    domain_names: np.ndarray
    priors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    msgs: np.ndarray | None = None  # positions of the tenant's messages and edges in the whole batch
    eds: np.ndarray | None = None
    #: freemail_domain_flags of ``batch.sender_domains`` (shared by a batch's tenants), or None: looked up here
    freemail: np.ndarray | None = None

    @cached_property
    def sender(self) -> dict[str, np.ndarray]:
        return self.tables.sender(self.instants, windows=("7d", "30d", "90d"))

    @cached_property
    def sender_domain(self) -> dict[str, np.ndarray]:
        return self.tables.sender_domain(self.instants, windows=("30d",))

    def window(self, columns: dict[str, np.ndarray], prefix: str, window: str, signal: str) -> np.ndarray:
        name = f"{prefix}_{window}"
        if name not in columns:
            raise ConfigError(f"signal {signal!r} needs the {window} window in the baselines of tenant "
                              f"{self.tenant_id!r}; their windows are {list(self.config.window_names)}")
        return columns[name].astype(np.int32)

    def likelihood(self, kind: str, columns: dict[str, np.ndarray], *, edges: bool = False,
                   lower: bool = False) -> tuple[np.ndarray, ...]:
        alpha, beta = self.priors[kind]
        if lower:
            return smoothed_by_prior(columns, alpha, beta, self.batch.edge_message if edges else None, self.config)
        return (smoothed_mean(columns, alpha, beta, self.batch.edge_message if edges else None, self.config),)


def smoothed_mean(columns: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray, message: np.ndarray | None,
                  config: BaselineConfig) -> np.ndarray:
    """:func:`smoothed`'s mean alone (float32) of rows whose prior is their message's, to the bit, in one pass.

    ``alpha``, ``beta`` and ``message`` as for :func:`smoothed_by_prior`. The
    same float64 operations per row as :func:`posterior_mean` (and its check of
    the counts) in one compiled pass, where numpy took a dozen over the rows;
    counts it refuses go the general way, which raises its error.

    Examples
    --------
    >>> cols = {"n_safe": np.array([3, 0]), "n_attack": np.array([1, 0]), "n_spam": np.zeros(2, np.int64),
    ...         "n_presumed_safe": np.zeros(2, np.int64)}
    >>> mean = smoothed_mean(cols, np.array([1.0, 2.0]), np.array([1.0, 1.0]), None, BaselineConfig())
    >>> mean.tolist() == smoothed(cols, np.array([1.0, 2.0]), np.array([1.0, 1.0]), BaselineConfig())[0].tolist()
    True
    """
    safe, trials = _outcomes(columns, config)
    row_message = np.zeros(0, np.int64) if message is None else np.asarray(message, np.int64)
    rows_fit = len(alpha) == len(safe) if message is None else len(row_message) == len(safe) and (
        not len(row_message) or int(row_message.min()) >= 0 and int(row_message.max()) < len(alpha))
    if len(beta) != len(alpha) or not rows_fit:  # (the kernel checks no bounds)
        raise ValueError(f"smoothed_mean: {len(safe)} rows, {len(row_message)} row messages and {len(alpha)} and "
                         f"{len(beta)} priors; pass a prior per message and a message in range per row (or None)")
    mean = np.empty(len(safe), np.float32)
    if not _mean_kernel(safe, trials, np.asarray(alpha, np.float64), np.asarray(beta, np.float64), row_message,
                        mean):
        rows = slice(None) if message is None else message
        return smoothed(columns, alpha[rows], beta[rows], config, lower=False)[0]
    return mean


@_compiled
def _mean_kernel(safe, trials, alpha, beta, message, mean):  # pragma: no cover - compiled
    # posterior_mean's (k + alpha) / (n + alpha + beta) per row, of float64 counts, rounded to float32; False
    # (at once) where a count is out of [0, trials], which posterior_mean refuses.
    by_message = len(message) > 0
    for i in range(len(mean)):
        m = message[i] if by_message else i
        k, n = float(safe[i]), float(trials[i])
        if not (k >= 0.0 and k <= n):
            return False
        mean[i] = np.float32((k + alpha[m]) / (n + alpha[m] + beta[m]))
    return True


def smoothed_by_prior(columns: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray,
                      message: np.ndarray | None, config: BaselineConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`smoothed` (mean and credible bound) of rows whose prior is their message's, to the bit.

    ``alpha`` and ``beta`` are per message, ``message`` each row's message (edge
    rows), or None when the rows are the messages. The bound, the costly part,
    is solved once per distinct (prior, trials, successes), as
    :func:`posterior_lower_bound` does; but rows are told apart by the number
    of their message's prior (a tenant's few fits, numbered per message) and
    their counts, where ``posterior_lower_bound`` must hash two floats per row
    to number the priors first.

    Examples
    --------
    >>> cols = {"n_safe": np.array([3, 3, 0, 3]), "n_attack": np.array([1, 1, 0, 1]),
    ...         "n_spam": np.zeros(4, np.int64), "n_presumed_safe": np.zeros(4, np.int64)}
    >>> alpha, beta, message = np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([0, 0, 0, 1])
    >>> mean, low = smoothed_by_prior(cols, alpha, beta, message, BaselineConfig())
    >>> expected = smoothed(cols, alpha[message], beta[message], BaselineConfig())
    >>> mean.tolist() == expected[0].tolist() and low.tolist() == expected[1].tolist()
    True
    """
    safe, trials = _outcomes(columns, config)
    row_message = np.zeros(0, np.int64) if message is None else np.asarray(message, np.int64)
    if len(row_message) != (0 if message is None else len(safe)) or len(row_message) and (
            int(row_message.min()) < 0 or int(row_message.max()) >= len(alpha)):  # (the kernel checks no bounds)
        raise ValueError(f"smoothed_by_prior: {len(row_message)} row messages for {len(safe)} rows and "
                         f"{len(alpha)} messages; pass one message in range per row")
    if message is None and len(alpha) != len(safe):
        raise ValueError(f"smoothed_by_prior: {len(alpha)} priors for {len(safe)} rows; pass one per row")
    n_width, k_width = int(trials.max(initial=0)) + 1, int(safe.max(initial=0)) + 1
    if n_width * k_width >= 1 << 62 or int(safe.min(initial=0)) < 0:  # no room for one key: the general way
        rows = slice(None) if message is None else message
        return smoothed(columns, alpha[rows], beta[rows], config)
    # The priors, numbered per message: a tenant's messages come in time order and its fits change a few
    # times, so only the first message of each stretch of one prior is factorized (as a pair of floats).
    if len(alpha):
        starts = np.flatnonzero(np.concatenate([[True], (alpha[1:] != alpha[:-1]) | (beta[1:] != beta[:-1])]))
        a_code = pd.factorize(alpha[starts])[0]
        b_code, b_values = pd.factorize(beta[starts])
        prior_code, priors = pd.factorize(a_code.astype(np.int64) * len(b_values) + b_code)
        prior = np.repeat(prior_code.astype(np.int64), np.diff(np.append(starts, len(alpha))))
    else:
        prior, priors = np.zeros(0, np.int64), np.zeros(0)
    codes = np.empty(len(safe), np.int64)
    first = np.empty(len(safe), np.int64)
    distinct = _stretch_keys_kernel(prior, len(priors), row_message, trials, safe, k_width, codes, first)
    if distinct >= 0:
        first = first[:distinct]
    elif len(priors) * n_width * k_width < 1 << 62:  # a prior came back after another: one integer key per row
        key = prior.copy() if message is None else prior[message]
        key *= n_width  # built in place: no row-sized temporaries per step
        key += trials
        key *= k_width
        key += safe
        codes, uniques = pd.factorize(key)
        del key
        first = np.empty(len(uniques), np.int64)
        first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # a row of each distinct key
    else:
        rows = slice(None) if message is None else message
        return smoothed(columns, alpha[rows], beta[rows], config)
    k, n = safe[first], trials[first]
    at = first if message is None else message[first]
    a, b = alpha[at], beta[at]
    # The mean and the bound depend on the key alone: each is computed once per distinct key, from the same
    # float64 values as per row (so to the same bits), and gathered to the rows as float32.
    mean = posterior_mean(k, n, a, b).astype(np.float32)
    # posterior_lower_bound's quantile of Beta(k + alpha, n - k + beta), from the same float64 shapes.
    low = beta_quantile(k + a, n - k + b, 1.0 - config.credible_level, np.float32)
    return mean[codes], low[codes]


@_compiled
def _stretch_keys_kernel(prior, n_priors, message, trials, safe, k_width, codes, first):  # pragma: no cover
    # Numbers the rows' distinct (prior, trials, successes) in order of first appearance, as pd.factorize of
    # one integer key does (``codes`` per row, ``first`` row of each; returns how many), where the rows come
    # in stretches of one prior, each prior in one stretch (a tenant's messages in time order, its fits
    # changing a few times); returns -1 at once where a prior comes back after another. No key of one
    # stretch is in another: each is hashed in a table of its own, a power of two above its rows (never
    # full), ``trials * k_width + safe`` and its number in each slot, one small array emptied for each
    # (in cache, where one table of every key missed it at each row, or fresh pages to fault in per prior,
    # took 1.5-2x the time). ``message`` is each row's message, or empty when the rows are the messages.
    n = len(codes)
    by_message = len(message) > 0
    seen = np.zeros(n_priors, np.bool_)
    ends = np.empty(n_priors, np.int64)
    stretches = 0
    current = -1
    for i in range(n):
        p = prior[message[i] if by_message else i]
        if p != current:
            if seen[p]:
                return -1
            seen[p] = True
            if i > 0:
                ends[stretches] = i
                stretches += 1
            current = p
    if n > 0:
        ends[stretches] = n
        stretches += 1
    longest, begin = 0, 0
    for s in range(stretches):
        longest = max(longest, ends[s] - begin)
        begin = ends[s]
    bits = 4
    while (1 << bits) <= longest:
        bits += 1
    table = np.empty((1 << bits, 2), np.int64)
    count, begin = 0, 0
    for s in range(stretches):
        end = ends[s]
        bits = 4
        while (1 << bits) <= end - begin:
            bits += 1
        mask = (1 << bits) - 1
        shift = np.uint64(64 - bits)
        table[:mask + 1, 1] = -1
        for i in range(begin, end):
            key = trials[i] * k_width + safe[i]
            slot = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> shift)  # Fibonacci hashing
            while True:
                c = table[slot, 1]
                if c < 0:
                    c = count
                    table[slot, 0] = key
                    table[slot, 1] = c
                    first[c] = i
                    count += 1
                    break
                if table[slot, 0] == key:
                    break
                slot = (slot + 1) & mask
            codes[i] = c
        begin = end
    return count


@warmed_by
def _warm() -> None:
    """The likelihoods' kernels on one row (for :func:`commgraph.baselines._sweeps.warm_up`)."""
    one, zero = np.ones(1, np.int64), np.zeros(1, np.int64)
    columns = {"n_safe": one, "n_attack": zero, "n_spam": zero, "n_presumed_safe": zero}
    smoothed_mean(columns, np.ones(1), np.ones(1), zero, BaselineConfig())
    smoothed_by_prior(columns, np.ones(1), np.ones(1), zero, BaselineConfig())


def sender_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols, ts = t.sender, t.batch.timestamp
    out = {f"sender_messages_{w}": t.window(cols, "n_messages", w, f"sender_messages_{w}")
           for w in ("7d", "30d", "90d")}
    out["sender_messages_decayed"] = cols["decayed_messages"].astype(np.float32)
    out["sender_days_known"] = days_between(ts, cols["first_seen"], never=0.0)
    out["sender_active_days"] = cols["active_days"].astype(np.int32)
    out["sender_is_new"] = (cols["n_messages"] == 0).astype(np.int8)
    out["sender_distinct_recipients"] = cols["n_distinct_recipients"].astype(np.int32)
    out["sender_safe_likelihood"], = t.likelihood("sender", cols)
    out["sender_attack_messages"] = cols["n_attack"].astype(np.int32)
    counts, last = t.tables.written_to(t.instants)
    out["sender_solicited_messages"] = counts.astype(np.int32)
    out["sender_days_since_solicited"] = days_between(ts, last, never=NAN)
    return out


def domain_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols, b = t.sender_domain, t.batch
    return {
        "domain_messages_30d": t.window(cols, "n_messages", "30d", "domain_messages_30d"),
        "domain_days_known": days_between(b.timestamp, cols["first_seen"], never=0.0),
        "domain_distinct_senders": cols["n_distinct_senders"].astype(np.int32),
        "domain_is_new": (cols["n_messages"] == 0).astype(np.int8),
        "domain_is_freemail": freemail_flags(b.sender_domain_code, b.sender_domains, t.freemail),
        "domain_safe_likelihood": t.likelihood("sender_domain", cols)[0],
        "domain_solicited_messages": cols["n_outbound_to"].astype(np.int32),
    }


def pair_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols = t.tables.pair(t.instants, reverse=False)
    n = cols["n_messages"].astype(np.int32)
    return {"pair_messages": n, "pair_is_first_contact": (n == 0).astype(np.int8),
            "pair_days_since_last": days_between(t.tables.ets, cols["last_seen"], never=NAN),  # edges' times
            "pair_recipient_replied": t.tables.replied(t.instants).astype(np.int8)}


def recipient_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols = t.tables.recipient(t.instants, windows=("30d",))
    mean, lower = t.likelihood("recipient", cols, edges=True, lower=True)
    return {"recipient_safe_likelihood": mean, "recipient_safe_likelihood_lower": lower,
            "recipient_inbound_30d": t.window(cols, "n_inbound", "30d", "recipient_inbound_30d"),
            "recipient_first_contact_rate": cols["first_time_share"].astype(np.float32, copy=False)}  # (float32)


def identity_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    b = t.batch
    cols = t.tables.display_name(t.instants)
    has_name = b.display_name_key != 0
    seen = (cols["n_with_name"] > 0) & has_name
    matches = (cols["is_internal"] > 0) & has_name & ((b.direction == _INBOUND) | ~seen)
    matches |= _claims_own_addresses(b, t.batch.own_domains.get(t.tenant_id, ()))
    # The baselines carry no per-(name, address) active days: the provider's documented upper bound.
    address_days = np.minimum(cols["n_with_name"], t.sender["active_days"])
    return {"display_name_matches_internal": matches.astype(np.int8),
            "display_name_address_days": np.where(seen, address_days, 0).astype(np.int32),
            "display_name_is_new_for_address": (has_name & ~seen).astype(np.int8)}


def lookalike_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    # The tenant's configured own domains are on the list at every instant (LookalikeSignals).
    own = tuple(t.batch.own_domains.get(t.tenant_id, ()))
    distance = distances_as_of(t.tables.d, t.instants, t.domain_names, t.tables.known_contacts(), always=own)
    cols = t.sender_domain
    established = is_established(cols["n_outbound_to"], cols["n_internal"], cols["n_outbound"], cols["active_days"])
    established |= never_close_all(t.domain_names, own)[t.tables.d] if len(t.tables.d) else np.zeros(0, bool)
    return {"lookalike_domain_distance": distance,
            "lookalike_domain_is_close": ((distance <= CLOSE_DISTANCE) & ~established).astype(np.int8)}


def habit_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    b, cols = t.batch, t.sender
    at_hour, tenant_total = t.tables.tenant_hours(t.instants)
    p_t = (at_hour + 1.0) / (tenant_total + 24.0)  # the tenant's Laplace-smoothed hour profile
    count = t.tables.sender_hours(t.instants)
    p = (count + HOUR_PSEUDO_COUNT * p_t) / (cols["n_messages"] + HOUR_PSEUDO_COUNT)
    passes = {a: cols[f"{a}_pass"] for a in _AUTH}
    fails = {a: cols[f"{a}_fail"] for a in _AUTH}
    n_fail = sum(fails.values())
    n_all = n_fail + sum(passes.values())
    deviation = np.zeros(b.n_messages, bool)
    for a in _AUTH:
        deviation |= (passes[a] >= _MIN_PASSES) & (passes[a] >= 9 * fails[a]) & _IS_FAIL[getattr(b, a)]
    return {"sender_hour_surprise": (-np.log2(p)).astype(np.float32),
            "sender_auth_fail_rate": np.divide(n_fail, n_all, out=np.zeros(b.n_messages),
                                               where=n_all > 0).astype(np.float32),
            "auth_deviation": deviation.astype(np.int8)}


#: Built-in provider classes and how their signals are backfilled (exact classes: a subclass may compute otherwise).
BUILTIN: dict[type, Callable[[TenantAsOf], dict[str, np.ndarray]]] = {
    SenderSignals: sender_signals, SenderDomainSignals: domain_signals, PairSignals: pair_signals,
    RecipientSignals: recipient_signals, IdentitySignals: identity_signals, LookalikeSignals: lookalike_signals,
    HabitSignals: habit_signals,
}
#: The entity kinds whose priors each built-in provider reads.
PRIOR_KINDS: dict[type, tuple[str, ...]] = {SenderSignals: ("sender",), SenderDomainSignals: ("sender_domain",),
                                            RecipientSignals: ("recipient",)}
