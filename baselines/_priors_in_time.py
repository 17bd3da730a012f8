"""The empirical-Bayes priors a snapshot would fit as of any instant, for many instants at once.

A snapshot fits each tenant's Beta prior of an entity kind on the distinct
``(trials, successes)`` of its entities as of ``as_of``, when the tenant has
enough of them and enough explicit labels; otherwise it borrows the global
prior: configured, pooled over every tenant of the build, or uniform. Asked for
the prior at many instants, this module follows the entities' outcome counts
through time (:func:`commgraph.baselines._pointintime.outcome_events`) as one
histogram over the ``(tenant, trials, successes)`` states that ever occur,
updated between consecutive instants by the changes in between, and fits only
where the answer can differ from the last fit: at instants where a tenant (or
the pool) has enough labels and its histogram changed since. The fits are
collected as the histogram moves, then solved together by
:func:`commgraph.baselines._smoothing.fit_summary_list`, the very function a
snapshot fits its priors with, on the very arrays it would build; each fit's
result does not depend on the others in the batch, so the priors are the
snapshots' to the bit.

What does it cost? The tests and the decision logic are vectorised; the fits
are one Newton optimisation for all of them at once (one special-function call
per step over every fit still searching), so asking for every distinct message
time of a tenant with labels costs the work of one fit per time, not its
per-call overhead. Callers that can do with a prior per day (fitted as of
midnight, still leak-free) ask for those instants instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ._config import BaselineConfig
from ._pointintime import code_order
from ._smoothing import fit_summary_list

__all__ = ["TenantOutcomes", "priors_at", "priors_at_kinds"]

#: The prior of last resort (as :data:`commgraph.baselines.DEFAULT_PRIOR`).
_UNIFORM = (1.0, 1.0)


@dataclass
class TenantOutcomes:
    """Outcome changes of one tenant's entities of one kind (see :func:`outcome_events`).

    Attributes
    ----------
    entity : ndarray of int64
        Entity code of each change (any dense code space of the tenant).
    time : ndarray of int64
        When it starts to count (a snapshot as of a later instant counts it).
    safe, trials, explicit : ndarray of int64
        Changes of the entity's successes and trials, and of the tenant's explicit label count.
    """

    entity: np.ndarray
    time: np.ndarray
    safe: np.ndarray
    trials: np.ndarray
    explicit: np.ndarray


def _merged(o: TenantOutcomes, instants: np.ndarray) -> dict[str, np.ndarray]:
    """One tenant's changes summed per entity and step, with each entity's trials and successes after each,
    in (entity, step) order.

    A change's ``step`` is how many of the asked ``instants`` (sorted) are at
    or before it: a snapshot as of ``instants[j]`` counts it when ``step <= j``,
    so the changes of one step (between two consecutive asked instants) are
    seen together by every snapshot asked about, and a busy entity's thousands
    of changes between two asked instants become one. Changes at or after the
    last instant drop out. Steps stand in for times from here on: they compare
    with the asked instants as the times do, and sort in a linear radix pass.

    Examples
    --------
    >>> o = TenantOutcomes(entity=np.array([1, 0, 1, 1]), time=np.array([5, 5, 15, 30]),
    ...                    safe=np.array([1, 0, 1, 1]), trials=np.array([1, 1, 1, 1]), explicit=np.zeros(4, np.int64))
    >>> m = _merged(o, np.array([10, 20]))
    >>> m["entity"].tolist(), m["step"].tolist(), m["n_after"].tolist(), m["k_after"].tolist()
    ([0, 1, 1], [0, 0, 1], [1, 1, 2], [0, 1, 2])
    """
    width = len(instants)
    step = np.searchsorted(instants, np.asarray(o.time, np.int64), side="right")
    asked = np.flatnonzero(step < width)
    entity, step = np.asarray(o.entity, np.int64)[asked], step[asked]
    order = code_order(entity, _step_order(step))  # (entity, step): radix passes
    key = (entity * width + step)[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    rows = asked[order]
    safe = np.add.reduceat(np.asarray(o.safe, np.int64)[rows], starts) if len(starts) else np.zeros(0, np.int64)
    trials = np.add.reduceat(np.asarray(o.trials, np.int64)[rows], starts) if len(starts) else np.zeros(0, np.int64)
    key = key[starts]
    keep = (safe != 0) | (trials != 0)
    key, safe, trials = key[keep], safe[keep], trials[keep]
    entity, step = np.divmod(key, max(width, 1))
    first = np.ones(len(entity), dtype=bool)
    first[1:] = entity[1:] != entity[:-1]
    return {"entity": entity, "step": step, "n_after": _running(trials, first), "k_after": _running(safe, first),
            "trials": trials, "safe": safe}


def _step_order(step: np.ndarray) -> np.ndarray:
    """A stable sort order of steps: numpy sorts 16-bit integers stably by radix (a day's steps over
    years fit), others by merging."""
    return np.argsort(step.astype(np.uint16) if len(step) and int(step.max()) < 1 << 16 else step, kind="stable")


def _running(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Cumulative sums restarted where ``first`` holds."""
    total = np.cumsum(values)
    segment_start = np.maximum.accumulate(np.where(first, np.arange(len(values)), 0))
    return total - (total - values)[segment_start]


def _states(outcomes: list[TenantOutcomes], instants: np.ndarray) -> dict[str, np.ndarray]:
    """Every tenant's changes merged per entity and step between asked ``instants`` (sorted, distinct), with
    the state before and after each, in step order (:func:`_merged`)."""
    parts = [(t, _merged(o, instants)) for t, o in enumerate(outcomes) if len(o.time)]
    parts = [(t, m) for t, m in parts if len(m["step"])]
    if not parts:
        return {c: np.zeros(0, np.int64) for c in ("tenant", "step", "before", "after", "first_trial")} | {
            "state_tenant": np.zeros(0, np.int64), "state_n": np.zeros(0), "state_k": np.zeros(0)}
    tenant = np.concatenate([np.full(len(m["step"]), t, np.int64) for t, m in parts])
    cols = {c: np.concatenate([m[c] for _, m in parts]) for c in ("step", "n_after", "k_after", "trials", "safe")}
    n_after, k_after = cols["n_after"], cols["k_after"]
    n_before, k_before = n_after - cols["trials"], k_after - cols["safe"]
    width_k = int(max(k_after.max(), k_before.max())) + 1
    width_n = int(max(n_after.max(), n_before.max())) + 1
    after = (tenant * width_n + n_after) * width_k + k_after
    # States with trials, numbered in (tenant, trials, successes) order: the order a
    # snapshot's distinct pairs come in, tenant by tenant.
    has_after, has_before = n_after > 0, n_before > 0
    # Hash first, then sort the distinct states only (np.unique's hash path was slower here).
    codes, distinct = pd.factorize(after[has_after])
    by_state = np.argsort(distinct)
    states = distinct[by_state]
    rank = np.empty(len(distinct), np.int64)
    rank[by_state] = np.arange(len(distinct))
    after_id = np.full(len(after), -1, np.int64)
    after_id[has_after] = rank[codes]
    # Each entity's changes are consecutive, in step order: a change's state before is its predecessor's after.
    before_id = np.where(has_before, np.roll(after_id, 1), -1)
    first_trial = has_after & ~has_before  # an entity's trials only grow: it enters the fit once
    order = _step_order(cols["step"])
    return {"tenant": tenant[order], "step": cols["step"][order], "before": before_id[order],
            "after": after_id[order], "first_trial": first_trial[order],
            "state_tenant": states // (width_n * width_k),
            "state_n": ((states // width_k) % width_n).astype(np.float64),
            "state_k": (states % width_k).astype(np.float64)}


def priors_at(outcomes: list[TenantOutcomes], requests: list[np.ndarray], config: BaselineConfig
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Beta prior of one entity kind that a snapshot as of each requested instant would use.

    Parameters
    ----------
    outcomes : list of TenantOutcomes
        One per tenant of the build, in tenant-id order (the order a build pools them in).
    requests : list of ndarray of int64
        Per tenant, the instants at which its prior is wanted.
    config : BaselineConfig
        Thresholds (``min_prior_entities``, ``min_prior_labels``) and ``global_prior``.

    Returns
    -------
    list of (ndarray, ndarray)
        Per tenant, ``alpha`` and ``beta`` at each requested instant.

    Examples
    --------
    Forty entities with five labelled messages each: too few labels at 10 (the
    uniform prior), the same fit a snapshot makes once all are known.

    >>> from commgraph.baselines import BaselineConfig, fit_beta_prior
    >>> entity, safe = np.repeat(np.arange(40), 5), (np.arange(200) % 7 != 0).astype(np.int64)
    >>> o = TenantOutcomes(entity=entity, time=np.arange(200), safe=safe, trials=np.ones(200, np.int64),
    ...                    explicit=np.ones(200, np.int64))
    >>> alpha, beta = priors_at([o], [np.array([10, 200])], BaselineConfig())[0]
    >>> float(alpha[0]), float(beta[0])
    (1.0, 1.0)
    >>> (float(alpha[1]), float(beta[1])) == fit_beta_prior(np.bincount(entity, safe), np.bincount(entity))
    True
    """
    return priors_at_kinds({"kind": outcomes}, requests, config)["kind"]


def priors_at_kinds(outcomes: Mapping[str, list[TenantOutcomes]], requests: list[np.ndarray],
                    config: BaselineConfig) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`priors_at` for several entity kinds at the same instants, their fits solved in one batch.

    Examples
    --------
    >>> from commgraph.baselines import BaselineConfig
    >>> entity, safe = np.repeat(np.arange(40), 5), (np.arange(200) % 7 != 0).astype(np.int64)
    >>> o = TenantOutcomes(entity=entity, time=np.arange(200), safe=safe, trials=np.ones(200, np.int64),
    ...                    explicit=np.ones(200, np.int64))
    >>> both = priors_at_kinds({"sender": [o], "recipient": [o]}, [np.array([200])], BaselineConfig())
    >>> both["sender"][0][0] == priors_at([o], [np.array([200])], BaselineConfig())[0][0]
    array([ True])
    """
    for kind, per_tenant in outcomes.items():
        if len(requests) != len(per_tenant):
            raise ValueError(f"priors_at needs one request array per tenant; got {len(requests)} for "
                             f"{len(per_tenant)} tenants of {kind!r}")
    # Messages share instants (a day's, with a prior per day): answer each distinct one once.
    distinct = [np.unique(np.asarray(r, dtype=np.int64), return_inverse=True) for r in requests]
    fits = _Fits()
    finish = {kind: _priors_at_distinct(per_tenant, [u for u, _ in distinct], config, fits, kind)
              for kind, per_tenant in outcomes.items()}
    alpha, beta = fits.solve()
    out = {}
    for kind, done in finish.items():
        fitted = done(alpha, beta)
        out[kind] = [(a[inverse], b[inverse]) for (a, b), (_, inverse) in zip(fitted, distinct)]
    return out


def _priors_at_distinct(outcomes: list[TenantOutcomes], requests: list[np.ndarray], config: BaselineConfig,
                        fits: "_Fits", scope: str) -> Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray,
                                                                                                      np.ndarray]]]:
    """:func:`priors_at` for sorted, distinct instants per tenant: asks ``fits`` for the fits it needs and
    returns what turns their solution (alpha and beta by fit number) into the priors."""
    n_tenants = len(outcomes)
    out = [(np.empty(len(r)), np.empty(len(r))) for r in requests]
    asked = np.unique(np.concatenate(requests + [np.zeros(0, np.int64)]))
    ev = _states(outcomes, asked)
    # Vectorised: does each tenant (and the pool) have enough to fit its own prior at each instant? Entities
    # enter at a step (in step order already), explicit labels at a time (sorted once).
    first_trial = [ev["step"][ev["first_trial"] & (ev["tenant"] == t)] for t in range(n_tenants)]
    explicit = [np.sort(np.repeat(o.time, np.asarray(o.explicit, np.int64))) for o in outcomes]
    all_entities = ev["step"][ev["first_trial"]]
    all_explicit = np.sort(np.concatenate(explicit + [np.zeros(0, np.int64)]))

    def enough(entities: np.ndarray, labels: np.ndarray, at: np.ndarray) -> np.ndarray:
        # Entities of steps up to an instant's position among the asked ones; labels strictly before it.
        return (np.searchsorted(entities, np.searchsorted(asked, at), side="right") >= config.min_prior_entities) & (
            np.searchsorted(labels, at, side="left") >= config.min_prior_labels)

    own = [enough(first_trial[t], explicit[t], requests[t]) for t in range(n_tenants)]
    # Tenants without enough borrow the global prior: pooled when the pool has enough.
    pooled = [np.zeros(len(r), bool) if config.global_prior is not None
              else ~own[t] & enough(all_entities, all_explicit, r) for t, r in enumerate(requests)]
    fallback = config.global_prior if config.global_prior is not None else _UNIFORM
    for t in range(n_tenants):
        borrowed = ~own[t] & ~pooled[t]
        out[t][0][borrowed], out[t][1][borrowed] = fallback
    # Fits: instants (sorted) where some tenant fits its own prior or borrows the pooled one.
    wanted = [(requests[t][own[t] | pooled[t]]) for t in range(n_tenants)]
    instants = np.unique(np.concatenate(wanted + [np.zeros(0, np.int64)]))
    if not len(instants):
        return lambda alpha, beta: out
    hist = np.zeros(len(ev["state_n"]), np.int64)
    seg = np.searchsorted(ev["state_tenant"], np.arange(n_tenants + 1))
    version = np.zeros(n_tenants, np.int64)
    applied = 0
    ends = np.searchsorted(ev["step"], np.searchsorted(asked, instants), side="right")  # changes counted by then
    per_tenant_fit: list[dict[int, int]] = [{} for _ in range(n_tenants)]  # instant -> fit number
    pooled_fit: dict[int, int] = {}
    own_at = [set(np.unique(requests[t][own[t]]).tolist()) for t in range(n_tenants)]
    pool_at = set(np.unique(np.concatenate([requests[t][pooled[t]] for t in range(n_tenants)])).tolist())
    for instant, end in zip(instants.tolist(), ends.tolist()):
        if end > applied:
            b, a = ev["before"][applied:end], ev["after"][applied:end]
            np.subtract.at(hist, b[b >= 0], 1)
            np.add.at(hist, a[a >= 0], 1)
            version += np.bincount(ev["tenant"][applied:end], minlength=n_tenants)
            applied = end
        for t in range(n_tenants):
            if instant in own_at[t]:
                per_tenant_fit[t][instant] = fits.ask(ev, hist, seg[t], seg[t + 1], (scope, t), int(version[t]))
        if instant in pool_at:
            pooled_fit[instant] = fits.ask(ev, hist, 0, len(hist), (scope, -1), int(version.sum()))

    def finish(alpha: np.ndarray, beta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        for t in range(n_tenants):
            for mask, table in ((own[t], per_tenant_fit[t]), (pooled[t], pooled_fit)):
                if mask.any():
                    times = requests[t][mask]
                    keys, inverse = np.unique(times, return_inverse=True)
                    number = np.array([table[k] for k in keys.tolist()], dtype=np.int64)[inverse]
                    out[t][0][mask], out[t][1][mask] = alpha[number], beta[number]
        return out

    return finish


# (n, k) pairs of the fits asked and not yet solved, at most: a history with a fit per message time asks
# for one tenant-wide histogram per message, which held together outgrew memory (22 GB for 600k messages).
_PENDING_PAIRS = 4_000_000


class _Fits:
    """The fits asked for while histograms move through time, solved in batches as they come.

    Each is a histogram's states ``lo:hi`` with their counts as they were when
    asked, numbered; a tenant (or the pool, -1) of a scope (an entity kind)
    asking again before its states changed gets the number of its last fit.
    Fits are independent (:func:`fit_summaries`): solving them in batches of at
    most ``pending_pairs`` pairs gives the same bits as one batch, in bounded memory."""

    def __init__(self, pending_pairs: int | None = None) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (n, k, count) of each fit not solved
        self.last: dict[tuple[str, int], tuple[int, int]] = {}  # (scope, who) -> (version, fit number)
        self.pending_pairs = pending_pairs or _PENDING_PAIRS
        self._pending = 0
        self._solved: list[tuple[np.ndarray, np.ndarray]] = []
        self._count = 0

    def ask(self, ev: dict[str, np.ndarray], hist: np.ndarray, lo: int, hi: int, who: tuple[str, int],
            version: int) -> int:
        known = self.last.get(who)
        if known is not None and known[0] == version:
            return known[1]
        nz = lo + np.flatnonzero(hist[lo:hi])
        self.parts.append((ev["state_n"][nz], ev["state_k"][nz], hist[nz]))
        self._pending += len(nz)
        number = self._count
        self._count += 1
        self.last[who] = (version, number)
        if self._pending >= self.pending_pairs:
            self._solve_pending()
        return number

    def _solve_pending(self) -> None:
        if self.parts:
            self._solved.append(fit_summary_list(self.parts))
            self.parts, self._pending = [], 0

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """``alpha`` and ``beta`` of every fit asked, by number."""
        self._solve_pending()
        if not self._solved:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([a for a, _ in self._solved]), np.concatenate([b for _, b in self._solved])
