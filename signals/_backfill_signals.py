"""The built-in providers' signals computed from baseline columns valued per message (for backfill).

Each function mirrors one provider's ``compute``: the same formulas and
dtypes (or values whose ``astype`` to the signal's dtype is the provider's: int64 counts, bool flags, float64
rates, which backfill casts as it writes them, with no temporary of the output's dtype), but reading :class:`commgraph.baselines._asof.AsOfTables` (each
message's keys as of its own instant) where the provider reads a snapshot, and
with a prior per message where the provider has one per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from commgraph.baselines import BaselineConfig
from commgraph.baselines._asof import AsOfTables, smoothed
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
    #: each message's prior (its position in the arrays of ``priors``: a fit per distinct instant asked), or None
    #: when the priors are per message
    prior_of: np.ndarray | None = None
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
        return columns[name]  # (int64 or int32 counts: written as int32)

    def likelihood(self, kind: str, columns: dict[str, np.ndarray], *, edges: bool = False,
                   lower: bool = False) -> tuple[np.ndarray, ...]:
        alpha, beta = self.priors[kind]
        message = self.batch.edge_message if edges else None
        if lower:
            return smoothed_by_prior(columns, alpha, beta, message, self.config, prior_of=self.prior_of)
        return (smoothed_mean(columns, alpha, beta, message, self.config, prior_of=self.prior_of),)


def smoothed_mean(columns: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray, message: np.ndarray | None,
                  config: BaselineConfig, *, prior_of: np.ndarray | None = None) -> np.ndarray:
    """:func:`smoothed`'s mean alone (float32) of rows whose prior is their message's, to the bit, in one pass.

    ``alpha``, ``beta``, ``message`` and ``prior_of`` as for :func:`smoothed_by_prior`. The
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
    >>> smoothed_mean(cols, np.array([2.0]), np.array([1.0]), None, BaselineConfig(),
    ...               prior_of=np.array([0, 0])).tolist() == smoothed(cols, np.full(2, 2.0), np.ones(2),
    ...                                                               BaselineConfig())[0].tolist()
    True
    """
    counts = _count_columns("smoothed_mean", columns, config)
    row_message, prior_index = _checked_rows("smoothed_mean", len(counts[0]), message, alpha, beta, prior_of)
    mean = np.empty(len(counts[0]), np.float32)
    if not _mean_kernel(*counts, config.label_policy == "presume_safe", np.asarray(alpha, np.float64),
                        np.asarray(beta, np.float64), row_message, prior_index, mean):
        alpha, beta = _per_row(alpha, beta, message, prior_of)
        return smoothed(columns, alpha, beta, config, lower=False)[0]
    return mean


def _checked_rows(caller: str, n_rows: int, message: np.ndarray | None, alpha: np.ndarray, beta: np.ndarray,
                  prior_of: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows' messages and the messages' priors as the kernels read them (int64; empty: the rows are the
    messages, the priors per message), checked in range (the kernels check no bounds)."""
    row_message = np.zeros(0, np.int64) if message is None else np.asarray(message, np.int64)
    prior_index = np.zeros(0, np.int64) if prior_of is None else np.asarray(prior_of, np.int64)
    n_messages = len(alpha) if prior_of is None else len(prior_index)
    fits = len(beta) == len(alpha) and (n_messages == n_rows if message is None else len(row_message) == n_rows)
    for index, size in ((row_message, n_messages), (prior_index, len(alpha))):
        fits = fits and (not len(index) or int(index.min()) >= 0 and int(index.max()) < size)
    if not fits:
        raise ValueError(f"{caller}: {n_rows} rows, {len(row_message)} row messages, "
                         f"{len(prior_index) if prior_of is not None else 'no'} message priors and {len(alpha)} and "
                         f"{len(beta)} priors; pass a message in range per row (or None), a prior in range per "
                         "message (or None: a prior per message)")
    return row_message, prior_index


def _per_row(alpha: np.ndarray, beta: np.ndarray, message: np.ndarray | None,
             prior_of: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's prior (for the general way)."""
    rows = slice(None) if message is None else message
    if prior_of is not None:
        rows = prior_of[rows]
    return alpha[rows], beta[rows]


def _count_columns(caller: str, columns: dict[str, np.ndarray], config: BaselineConfig
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The label columns :func:`commgraph.baselines._build._outcomes` reads, as int64 (no copy of int64 ones),
    for the kernels that add them up row by row (:func:`_outcomes_kernel`), checked of one length (the kernels
    check no bounds): ``n_safe``, ``n_presumed_safe`` (``n_safe`` again when the label policy ignores presumed
    labels, which the kernels then skip), ``n_attack`` and ``n_spam``."""
    presumed = "n_presumed_safe" if config.label_policy == "presume_safe" else "n_safe"
    counts = tuple(np.asarray(columns[c], np.int64) for c in ("n_safe", presumed, "n_attack", "n_spam"))
    if any(c.ndim != 1 or len(c) != len(counts[0]) for c in counts):
        raise ValueError(f"{caller}: label columns of shapes {[c.shape for c in counts]}; pass one row each")
    return counts


def _outcomes_counted(columns: dict[str, np.ndarray], config: BaselineConfig
                      ) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """:func:`commgraph.baselines._build._outcomes`' successes and trials (int64, the same values), in one
    compiled pass with no temporaries (numpy's took four, each a fresh row-sized array), and the smallest
    successes, largest successes and largest trials (each 0 when there are fewer: numpy's ``initial=0``)."""
    counts = _count_columns("smoothed_by_prior", columns, config)
    safe, trials = np.empty(len(counts[0]), np.int64), np.empty(len(counts[0]), np.int64)
    low_k, high_k, high_n = _outcomes_kernel(*counts, config.label_policy == "presume_safe", safe, trials)
    return safe, trials, int(low_k), int(high_k), int(high_n)


@_compiled
def _outcomes_kernel(n_safe, presumed, attack, spam, presume, safe, trials):  # pragma: no cover - compiled
    # _outcomes' n_safe + max(n_presumed_safe, 0) (presume) or n_safe, and that plus attacks and spam, per row
    # (int64, wrapping as numpy's does); returns the smallest and largest successes and the largest trials.
    low_k, high_k, high_n = 0, 0, 0
    for i in range(len(safe)):
        k = n_safe[i]
        if presume:
            k += max(presumed[i], 0)
        n = k + attack[i] + spam[i]
        safe[i] = k
        trials[i] = n
        low_k = min(low_k, k)
        high_k = max(high_k, k)
        high_n = max(high_n, n)
    return low_k, high_k, high_n


@_compiled
def _mean_kernel(n_safe, presumed, attack, spam, presume, alpha, beta, message, prior_of,
                 mean):  # pragma: no cover - compiled
    # posterior_mean's (k + alpha) / (n + alpha + beta) per row, of float64 counts, rounded to float32, the
    # counts added up as _outcomes_kernel does (no row-sized arrays of them); False (at once) where a count is
    # out of [0, trials], which posterior_mean refuses.
    by_message, by_prior = len(message) > 0, len(prior_of) > 0
    for i in range(len(mean)):
        m = message[i] if by_message else i
        if by_prior:
            m = prior_of[m]
        safe = n_safe[i]
        if presume:
            safe += max(presumed[i], 0)
        k, n = float(safe), float(safe + attack[i] + spam[i])
        if not (k >= 0.0 and k <= n):
            return False
        mean[i] = np.float32((k + alpha[m]) / (n + alpha[m] + beta[m]))
    return True


def smoothed_by_prior(columns: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray,
                      message: np.ndarray | None, config: BaselineConfig, *,
                      prior_of: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`smoothed` (mean and credible bound) of rows whose prior is their message's, to the bit.

    ``alpha`` and ``beta`` are per message, or per prior with ``prior_of`` each
    message's (a backfill's fit per day: a few hundred priors, not two arrays of
    float64 per message to write), ``message`` each row's message (edge
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
    >>> by_prior = smoothed_by_prior(cols, alpha, beta, message, BaselineConfig(), prior_of=np.array([1, 0, 1]))
    >>> expected = smoothed(cols, alpha[[1, 1, 1, 0]], beta[[1, 1, 1, 0]], BaselineConfig())
    >>> by_prior[0].tolist() == expected[0].tolist() and by_prior[1].tolist() == expected[1].tolist()
    True
    """
    safe, trials, low_k, high_k, high_n = _outcomes_counted(columns, config)
    row_message, prior_index = _checked_rows("smoothed_by_prior", len(safe), message, alpha, beta, prior_of)
    n_width, k_width = high_n + 1, high_k + 1
    if n_width * k_width >= 1 << 62 or low_k < 0:  # no room for one key: the general way
        return smoothed(columns, *_per_row(alpha, beta, message, prior_of), config)
    # The priors, numbered per message: a tenant's messages come in time order and its fits change a few
    # times, so only the first of each stretch of one prior is factorized (as a pair of floats).
    if len(alpha):
        starts = np.flatnonzero(np.concatenate([[True], (alpha[1:] != alpha[:-1]) | (beta[1:] != beta[:-1])]))
        a_code = pd.factorize(alpha[starts])[0]
        b_code, b_values = pd.factorize(beta[starts])
        prior_code, priors = pd.factorize(a_code.astype(np.int64) * len(b_values) + b_code)
        prior = np.repeat(prior_code.astype(np.int64), np.diff(np.append(starts, len(alpha))))
        if prior_of is not None:  # (numbered per prior: each message's is its prior's)
            prior = prior[prior_index]
    else:
        prior, priors = np.zeros(len(prior_index), np.int64), np.zeros(0)
    # Each row's key number as int32 (half the fresh memory to fault in), gathered from by a compiled pass.
    codes = np.empty(len(safe), np.int32 if len(safe) < 1 << 31 else np.int64)
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
        return smoothed(columns, *_per_row(alpha, beta, message, prior_of), config)
    # The mean and the bound depend on the key alone: each is computed once per distinct key, from the same
    # float64 values as per row (so to the same bits), and gathered to the rows as float32.
    mean, shape_a, shape_b = np.empty(len(first), np.float32), np.empty(len(first)), np.empty(len(first))
    if not _posterior_kernel(first, row_message, safe, trials, np.asarray(alpha, np.float64),
                             np.asarray(beta, np.float64), prior_index, mean, shape_a, shape_b):
        k, n = safe[first], trials[first]  # counts posterior_mean refuses: its error
        at = first if message is None else message[first]
        a, b = (alpha[at], beta[at]) if prior_of is None else (alpha[prior_index[at]], beta[prior_index[at]])
        mean = posterior_mean(k, n, a, b).astype(np.float32)
        shape_a, shape_b = k + a, n - k + b
    # posterior_lower_bound's quantile of Beta(k + alpha, n - k + beta), from the same float64 shapes.
    low = beta_quantile(shape_a, shape_b, 1.0 - config.credible_level, np.float32)
    row_mean, row_low = np.empty(len(codes), np.float32), np.empty(len(codes), np.float32)
    _gather_kernel(codes, mean, low, row_mean, row_low)
    return row_mean, row_low


@_compiled
def _posterior_kernel(first, message, safe, trials, alpha, beta, prior_of, mean, shape_a,
                      shape_b):  # pragma: no cover - compiled
    # Per distinct key (its ``first`` row, that row's message's prior, or the row's own where ``message`` is
    # empty): posterior_mean's (k + alpha) / (n + alpha + beta) of float64 counts, rounded to float32, and
    # the posterior's shapes k + alpha and (n - k) + beta, as numpy computed them (int64 counts converted to
    # float64 before each addition): one pass where numpy took a dozen. False (at once) where a count is out
    # of [0, trials], which posterior_mean refuses.
    by_message, by_prior = len(message) > 0, len(prior_of) > 0
    for j in range(len(first)):
        i = first[j]
        m = message[i] if by_message else i
        if by_prior:
            m = prior_of[m]
        k, n = safe[i], trials[i]
        if not (k >= 0 and k <= n):
            return False
        a, b = alpha[m], beta[m]
        mean[j] = np.float32((float(k) + a) / (float(n) + a + b))
        shape_a[j] = float(k) + a
        shape_b[j] = float(n - k) + b
    return True


@_compiled
def _gather_kernel(codes, mean, low, row_mean, row_low):  # pragma: no cover - compiled
    # Both answers of each row's key, in one pass (numpy's two gathers each cast int32 numbers to intp first).
    for i in range(len(codes)):
        c = codes[i]
        row_mean[i] = mean[c]
        row_low[i] = low[c]


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
    # The label columns as arrays of their own and as columns of one table (strided: compiled apart).
    table = np.ones((2, 4), np.int64)
    for cols in (columns, dict(zip(("n_safe", "n_attack", "n_spam", "n_presumed_safe"), table.T))):
        rows = np.zeros(len(cols["n_safe"]), np.int64)
        smoothed_mean(cols, np.ones(1), np.ones(1), rows, BaselineConfig())
        smoothed_by_prior(cols, np.ones(1), np.ones(1), rows, BaselineConfig())
    # A batch's message columns are read-only views where its tenant is one run of the input, writable copies
    # otherwise: numba compiles each kind apart, so both are warmed.
    _hour_rates(one, one, one, one)
    # The sender table's int32 columns are strided views (read in place), others int64 arrays of their own.
    auth_names = [f"{a}_{k}" for a in _AUTH for k in ("pass", "fail")]
    table = np.ones((2, len(auth_names)), np.int32)
    for writable in (True, False):
        codes, direction = np.full(1, -1, np.int8), np.zeros(1, np.int8)
        codes.flags.writeable = direction.flags.writeable = writable
        _auth_columns({name: one for name in auth_names}, [codes] * 3)
        two = np.full(2, -1, np.int8)
        two.flags.writeable = writable
        _auth_columns(dict(zip(auth_names, table.T)), [two] * 3)
        _identity_kernel(np.ones(1, np.uint64), one, np.ones(1, np.int8), direction, one, _INBOUND,
                         np.empty(1, np.int8), np.empty(1, np.int32), np.empty(1, np.int8))


def sender_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols, ts = t.sender, t.batch.timestamp
    out = {f"sender_messages_{w}": t.window(cols, "n_messages", w, f"sender_messages_{w}")
           for w in ("7d", "30d", "90d")}
    out["sender_messages_decayed"] = cols["decayed_messages"]  # (float64: written as float32)
    out["sender_days_known"] = days_between(ts, cols["first_seen"], never=0.0, compiled=True)
    out["sender_active_days"] = cols["active_days"].astype(np.int32, copy=False)
    out["sender_is_new"] = cols["n_messages"] == 0  # (bool: written as int8)
    out["sender_distinct_recipients"] = cols["n_distinct_recipients"].astype(np.int32, copy=False)
    out["sender_safe_likelihood"], = t.likelihood("sender", cols)
    out["sender_attack_messages"] = cols["n_attack"]
    counts, last = t.tables.written_to(t.instants)
    out["sender_solicited_messages"] = counts
    out["sender_days_since_solicited"] = days_between(ts, last, never=NAN, compiled=True)
    return out


def domain_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols, b = t.sender_domain, t.batch
    return {
        "domain_messages_30d": t.window(cols, "n_messages", "30d", "domain_messages_30d"),
        "domain_days_known": days_between(b.timestamp, cols["first_seen"], never=0.0, compiled=True),
        "domain_distinct_senders": cols["n_distinct_senders"].astype(np.int32, copy=False),
        "domain_is_new": cols["n_messages"] == 0,
        "domain_is_freemail": freemail_flags(b.sender_domain_code, b.sender_domains, t.freemail),
        "domain_safe_likelihood": t.likelihood("sender_domain", cols)[0],
        "domain_solicited_messages": cols["n_outbound_to"],
    }


def pair_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols = t.tables.pair(t.instants, reverse=False)
    n = cols["n_messages"]
    return {"pair_messages": n, "pair_is_first_contact": n == 0,
            # (the edges' times: the pair's table is read per edge)
            "pair_days_since_last": days_between(t.tables.ets, cols["last_seen"], never=NAN, compiled=True),
            "pair_recipient_replied": t.tables.replied(t.instants)}


def recipient_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    cols = t.tables.recipient(t.instants, windows=("30d",))
    mean, lower = t.likelihood("recipient", cols, edges=True, lower=True)
    return {"recipient_safe_likelihood": mean, "recipient_safe_likelihood_lower": lower,
            "recipient_inbound_30d": t.window(cols, "n_inbound", "30d", "recipient_inbound_30d"),
            "recipient_first_contact_rate": cols["first_time_share"].astype(np.float32, copy=False)}  # (float32)


def identity_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    b = t.batch
    cols = t.tables.display_name(t.instants)
    n = b.n_messages
    matches, days, new = np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int8)
    inputs = [np.ascontiguousarray(v, dtype=d) for v, d in (
        (b.display_name_key, np.uint64), (cols["n_with_name"], np.int64), (cols["is_internal"], np.int8),
        (b.direction, np.int8), (t.sender["active_days"], np.int64))]
    if any(len(v) != n for v in inputs):
        raise ValueError(f"identity_signals: columns of {[len(v) for v in inputs]} rows for {n} messages")
    _identity_kernel(*inputs, _INBOUND, matches, days, new)
    if _names_may_hold_at(b):  # (an address in a display name: rare, and each such name is read on its own)
        matches |= _claims_own_addresses(b, t.batch.own_domains.get(t.tenant_id, ()))
    return {"display_name_matches_internal": matches, "display_name_address_days": days,
            "display_name_is_new_for_address": new}


@_compiled
def _identity_kernel(name_key, n_with_name, is_internal, direction, active_days, inbound, matches, days,
                     new):  # pragma: no cover - compiled
    # IdentitySignals per message, in one pass: a name seen before from this address; internal and inbound
    # (or from an address that never used it) matches; the days are the provider's documented upper bound
    # (the baselines carry no per-(name, address) active days), as int32 the way numpy's astype converts.
    for i in range(len(matches)):
        has_name = name_key[i] != 0
        seen = n_with_name[i] > 0 and has_name
        matches[i] = is_internal[i] > 0 and has_name and (direction[i] == inbound or not seen)
        days[i] = np.int32(min(n_with_name[i], active_days[i])) if seen else np.int32(0)
        new[i] = has_name and not seen


def _names_may_hold_at(batch: SignalBatch) -> bool:
    """False when no display name of the batch's messages holds an ``@`` (so none claims an address), read off
    the bytes of the names' Arrow column over the span of the batch's rows, with no string made per message
    (a gather and a substring search per name took 30 ms over a million messages); True when one may.

    An ``@`` is one byte that no other UTF-8 character contains; a column that is not Arrow strings
    answers True (the names are then read one by one).
    """
    if "sender_display_name" not in batch.frame.columns or not batch.n_messages:
        return False
    try:
        chunks = batch.frame["sender_display_name"].array.__arrow_array__()
    except (AttributeError, TypeError):
        return True
    rows = batch.message_rows
    lo, hi = (0, len(batch.frame)) if rows is None else (int(rows.min()), int(rows.max()) + 1)
    start = 0
    for chunk in getattr(chunks, "chunks", [chunks]):
        a, b = max(lo - start, 0), min(hi - start, len(chunk))
        start += len(chunk)
        if a >= b:
            continue
        if chunk.type not in (pa.string(), pa.large_string()):
            return True
        _, offsets, data = chunk.buffers()
        if data is None:
            continue
        width = np.int32 if chunk.type == pa.string() else np.int64
        ends = np.frombuffer(offsets, width)[chunk.offset + a:chunk.offset + b + 1]
        if (np.frombuffer(data, np.uint8)[int(ends[0]):int(ends[-1])] == ord("@")).any():
            return True
    return False


def lookalike_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    # The tenant's configured own domains are on the list at every instant (LookalikeSignals).
    own = tuple(t.batch.own_domains.get(t.tenant_id, ()))
    distance = distances_as_of(t.tables.d, t.instants, t.domain_names, t.tables.known_contacts(), always=own)
    cols = t.sender_domain
    established = is_established(cols["n_outbound_to"], cols["n_internal"], cols["n_outbound"], cols["active_days"])
    established |= never_close_all(t.domain_names, own)[t.tables.d] if len(t.tables.d) else np.zeros(0, bool)
    return {"lookalike_domain_distance": distance,
            "lookalike_domain_is_close": (distance <= CLOSE_DISTANCE) & ~established}


def habit_signals(t: TenantAsOf) -> dict[str, np.ndarray]:
    b, cols = t.batch, t.sender
    at_hour, tenant_total = t.tables.tenant_hours(t.instants)
    p = _hour_rates(at_hour, tenant_total, t.tables.sender_hours(t.instants), cols["n_messages"])
    np.log2(p, out=p)
    rate, deviation = _auth_columns(cols, [getattr(b, a) for a in _AUTH])
    return {"sender_hour_surprise": np.negative(p, out=p), "sender_auth_fail_rate": rate,
            "auth_deviation": deviation}


def _hour_rates(at_hour: np.ndarray, tenant_total: np.ndarray, sender_hours: np.ndarray,
                n_messages: np.ndarray) -> np.ndarray:
    """The provider's (count + k * p_t) / (n + k) per message (float64), p_t = (at_hour + 1) / (total + 24) the
    tenant's Laplace-smoothed hour profile, ``k`` the pseudo-count.

    Integer counts take one compiled pass (:func:`_hour_rate_kernel`), numpy's float64 operations in their
    order (each count converted to float64 first), where numpy took five passes and two temporaries; others,
    numpy's passes in place.

    Examples
    --------
    >>> one = lambda *v: np.array(v, np.int64)
    >>> rates = _hour_rates(one(0, 5), one(10, 10), one(1, 0), one(4, 0))
    >>> rates.tolist() == (((one(0, 5) + 1.0) / 34.0 * HOUR_PSEUDO_COUNT + one(1, 0)) / (one(4, 0) + HOUR_PSEUDO_COUNT)
    ...                    ).tolist()
    True
    """
    counts = [np.asarray(c) for c in (at_hour, tenant_total, sender_hours, n_messages)]
    if all(c.ndim == 1 and c.dtype.kind in "biu" and np.can_cast(c.dtype, np.int64) and len(c) == len(counts[0])
           for c in counts):  # (each count exactly an int64: as numpy converts it to float64)
        rates = np.empty(len(counts[0]))
        _hour_rate_kernel(*(c.astype(np.int64, copy=False) for c in counts), float(HOUR_PSEUDO_COUNT), rates)
        return rates
    p = at_hour + 1.0  # the same float64 operations (a sum and a product either way round), in place
    p /= tenant_total + 24.0
    p *= HOUR_PSEUDO_COUNT
    p += sender_hours
    p /= n_messages + HOUR_PSEUDO_COUNT
    return p


@_compiled
def _hour_rate_kernel(at_hour, tenant_total, sender_hours, n_messages, k, rates):  # pragma: no cover - compiled
    # _hour_rates per message: numpy's operations in its order, each int64 count converted to float64 as numpy
    # converts it before the addition (no fastmath: no fused multiply-adds).
    for i in range(len(rates)):
        p = (float(at_hour[i]) + 1.0) / (float(tenant_total[i]) + 24.0)
        p *= k
        p += float(sender_hours[i])
        rates[i] = p / (float(n_messages[i]) + k)


def _auth_columns(cols: dict[str, np.ndarray], results: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``sender_auth_fail_rate`` (float32) and ``auth_deviation`` (int8) of :class:`HabitSignals` from the
    sender columns' passes and fails and each message's results (codes, in the order of ``_AUTH``): one
    compiled pass, where numpy made a dozen row-sized temporaries.

    The rate is the fails over all results (float64, as numpy divides two integers, then float32; 0 without
    results); a deviation is a check the sender normally passes (at least ``_MIN_PASSES`` passes, nine per
    fail) that this message fails.

    Examples
    --------
    >>> one = lambda *v: np.array(v, np.int64)
    >>> cols = {"spf_pass": one(3, 0), "spf_fail": one(0, 1), "dkim_pass": one(0, 0), "dkim_fail": one(1, 0),
    ...         "dmarc_pass": one(0, 0), "dmarc_fail": one(0, 0)}
    >>> fail = int(np.flatnonzero(_IS_FAIL)[0])
    >>> missing = np.array([-1, -1], np.int8)
    >>> rate, deviation = _auth_columns(cols, [np.array([fail, -1], np.int8), missing, missing])
    >>> rate.tolist(), deviation.tolist()
    ([0.25, 1.0], [1, 0])
    """
    n = len(cols["spf_pass"])
    counts = [_counts_as_read(cols[f"{a}_{k}"]) for a in _AUTH for k in ("pass", "fail")]
    codes = [np.ascontiguousarray(c, dtype=np.int8) for c in results]
    if len(codes) != len(_AUTH) or any(c.ndim != 1 or len(c) != n for c in counts + codes):
        raise ValueError(f"_auth_columns: columns of {[c.shape for c in counts + codes]}; pass one row per message")
    rate, deviation = np.empty(n, np.float32), np.empty(n, np.int8)
    if not _auth_kernel(*counts, *codes, _IS_FAIL, _MIN_PASSES, rate, deviation):
        raise IndexError(f"_auth_columns: a result code outside the {len(_IS_FAIL)} known (negative: from the end)")
    return rate, deviation


def _counts_as_read(column: np.ndarray) -> np.ndarray:
    """A count column as :func:`_auth_kernel` reads it: int32 or int64 as it is, strided or not (the sender
    table's int32 columns, read in place: six int64 copies of them cost a pass over the messages each), other
    dtypes as int64."""
    column = np.asarray(column)
    return column if column.dtype in (np.dtype(np.int32), np.dtype(np.int64)) else column.astype(np.int64)


@_compiled
def _auth_kernel(spf_pass, spf_fail, dkim_pass, dkim_fail, dmarc_pass, dmarc_fail, spf, dkim, dmarc, is_fail,
                 min_passes, rate, deviation):  # pragma: no cover - compiled
    # A negative code (-1: missing) reads the table from its end, as numpy's indexing does; False (at once)
    # where a code is outside the table either way (checked here, where numpy took two reductions per column).
    # Counts are added and multiplied as int64 (int32 columns widened, as numpy's int64 copies of them were).
    size = len(is_fail)
    for i in range(len(rate)):
        for code in (spf[i], dkim[i], dmarc[i]):
            if code < -size or code >= size:
                return False
        n_fail = np.int64(spf_fail[i]) + np.int64(dkim_fail[i]) + np.int64(dmarc_fail[i])
        n_all = n_fail + (np.int64(spf_pass[i]) + np.int64(dkim_pass[i]) + np.int64(dmarc_pass[i]))
        rate[i] = np.float32(float(n_fail) / float(n_all)) if n_all > 0 else np.float32(0.0)
        deviates = False
        for passes, fails, code in ((np.int64(spf_pass[i]), np.int64(spf_fail[i]), spf[i]),
                                    (np.int64(dkim_pass[i]), np.int64(dkim_fail[i]), dkim[i]),
                                    (np.int64(dmarc_pass[i]), np.int64(dmarc_fail[i]), dmarc[i])):
            if passes >= min_passes and passes >= 9 * fails and is_fail[code if code >= 0 else code + size]:
                deviates = True
        deviation[i] = deviates
    return True


#: Built-in provider classes and how their signals are backfilled (exact classes: a subclass may compute otherwise).
BUILTIN: dict[type, Callable[[TenantAsOf], dict[str, np.ndarray]]] = {
    SenderSignals: sender_signals, SenderDomainSignals: domain_signals, PairSignals: pair_signals,
    RecipientSignals: recipient_signals, IdentitySignals: identity_signals, LookalikeSignals: lookalike_signals,
    HabitSignals: habit_signals,
}
#: The entity kinds whose priors each built-in provider reads.
PRIOR_KINDS: dict[type, tuple[str, ...]] = {SenderSignals: ("sender",), SenderDomainSignals: ("sender_domain",),
                                            RecipientSignals: ("recipient",)}
