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
:func:`commgraph.baselines._smoothing.fit_summaries`, the very function a
snapshot fits its priors with (through ``fit_summary_list``), on the very
arrays it would build; each fit's
result does not depend on the others in the batch, so the priors are the
snapshots' to the bit.

What does it cost? The changes are merged per entity and step, and the states
numbered, by compiled passes (:func:`_merge_kernel`, :func:`_number_kernel`);
the tests and the decision logic are vectorised; the fits are one Newton
optimisation for all of them at once (one special-function call per step over
every fit still searching), so asking for every distinct message time of a
tenant with labels costs the work of one fit per time, not its per-call
overhead. Callers that can do with a prior per day (fitted as of
midnight, still leak-free) ask for those instants instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ._config import BaselineConfig
from ._smoothing import fit_summaries
from ._sweeps import _compiled, warmed_by

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
    safe, trials, explicit : ndarray of int64 or int8
        Changes of the entity's successes and trials, and of the tenant's explicit label count (int8 as
        :func:`commgraph.baselines._pointintime.outcome_changes` writes them: -1, 0 or 1).
    """

    entity: np.ndarray
    time: np.ndarray
    safe: np.ndarray
    trials: np.ndarray
    explicit: np.ndarray


_MERGED = ("entity", "step", "n_after", "k_after", "trials", "safe")  # the columns of :func:`_merged`


def _merged(o: TenantOutcomes, instants: np.ndarray, into: dict[str, np.ndarray] | None = None,
            scratch: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One tenant's changes summed per entity and step, with each entity's trials and successes after each,
    in (entity, step) order.

    A change's ``step`` is how many of the asked ``instants`` (sorted) are at
    or before it: a snapshot as of ``instants[j]`` counts it when ``step <= j``,
    so the changes of one step (between two consecutive asked instants) are
    seen together by every snapshot asked about, and a busy entity's thousands
    of changes between two asked instants become one. Changes at or after the
    last instant drop out. Steps stand in for times from here on: they compare
    with the asked instants as the times do.

    One compiled pass (:func:`_merge_kernel`) finds each change's step (by a
    pointer walked along the instants: the changes come nearly in time order),
    deals the changes into their entities' slots and sums each entity's per step. The columns are written
    into the arrays ``into`` (by name, :data:`_MERGED`, at least as long as the
    changes) when given, with the kernel's ``scratch`` (:func:`_merge_scratch`):
    a caller merging many tenants writes them all into one set of arrays, each
    after the last, and reuses the memory (fresh arrays cost a page fault per
    4 KiB).

    Examples
    --------
    >>> o = TenantOutcomes(entity=np.array([1, 0, 1, 1]), time=np.array([5, 5, 15, 30]),
    ...                    safe=np.array([1, 0, 1, 1]), trials=np.array([1, 1, 1, 1]), explicit=np.zeros(4, np.int64))
    >>> m = _merged(o, np.array([10, 20]))
    >>> m["entity"].tolist(), m["step"].tolist(), m["n_after"].tolist(), m["k_after"].tolist()
    ([0, 1, 1], [0, 0, 1], [1, 1, 2], [0, 1, 2])
    """
    entity = np.asarray(o.entity, np.int64)
    codes = None
    if len(entity) and (int(entity.min()) < 0 or int(entity.max()) >= 2 * len(entity) + 65536):
        codes, entity = np.unique(entity, return_inverse=True)  # a dense code space, in the same order
    n_codes = int(entity.max()) + 1 if len(entity) else 0
    into = {c: np.empty(len(entity), np.int64) for c in _MERGED} if into is None else into
    scratch = _merge_scratch(len(entity), n_codes, len(instants), {} if scratch is None else scratch)
    kept = _merge_kernel(entity, np.asarray(o.time, np.int64), np.asarray(instants, np.int64),
                         _steps(o.safe), _steps(o.trials), n_codes, len(instants),
                         *(scratch[c] for c in ("dealt", "start", "sums", "seen", "touched")),
                         *(into[c] for c in _MERGED))
    out = {c: into[c][:kept] for c in _MERGED}
    if codes is not None:
        out["entity"] = codes[out["entity"]]
    return out


def _steps(changes: np.ndarray) -> np.ndarray:
    """Changes as the merge's kernel reads them: int8 as they are (no int64 copy of a million), else int64."""
    changes = np.asarray(changes)
    return changes if changes.dtype == np.int8 else changes.astype(np.int64, copy=False)


def _merge_scratch(n_changes: int, n_codes: int, width: int, scratch: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """``scratch``, made (or grown) the working memory of :func:`_merge_kernel` for ``n_changes`` changes of
    ``n_codes`` entities between ``width`` instants (zeros where it keeps sums: it leaves them zero)."""
    if "dealt" not in scratch or len(scratch["dealt"]) < n_changes:
        scratch["dealt"] = np.empty((n_changes, 3), np.int64)
    if "start" not in scratch or len(scratch["start"]) < n_codes + 1:
        scratch["start"] = np.empty(n_codes + 1, np.int64)
    if "seen" not in scratch or len(scratch["seen"]) != width:
        scratch |= {"sums": np.zeros((2, width), np.int64), "seen": np.zeros(width, bool),
                    "touched": np.empty(width, np.int64)}
    return scratch


@_compiled
def _merge_kernel(entity, time, instants, safe, trials, n_codes, width, dealt, start, sums, seen, touched,
                  out_entity, out_step, out_n, out_k, out_trials, out_safe):  # pragma: no cover - compiled
    start[:n_codes + 1] = 0
    if width == 0:  # (no instant: every change at or after the last)
        return 0
    last = instants[width - 1]
    # The changes before the last instant dealt into their entity's slots (a counting sort, carrying them).
    for i in range(len(entity)):
        if time[i] < last:
            start[entity[i] + 1] += 1
    for e in range(n_codes):
        start[e + 1] += start[e]
    # Each change's step, np.searchsorted(instants, time, side="right"): the last change's when it still
    # holds (the changes come nearly in time order), a few steps from it, or a binary search (a change far
    # back among many instants).
    step = 0
    for i in range(len(entity)):  # start[e] moves on to entity e's end
        t = time[i]
        if t < last:
            moves = 0
            while moves < 4 and instants[step] <= t:  # (step < width: t is before the last instant)
                step += 1
                moves += 1
            while moves < 4 and step > 0 and instants[step - 1] > t:
                step -= 1
                moves += 1
            if instants[step] <= t or step > 0 and instants[step - 1] > t:
                lo, hi = 0, width - 1  # the first instant after t: before the last one, or it
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if instants[mid] <= t:
                        lo = mid + 1
                    else:
                        hi = mid
                step = lo
            p = start[entity[i]]
            dealt[p, 0], dealt[p, 1], dealt[p, 2] = step, safe[i], trials[i]
            start[entity[i]] = p + 1
    # Each entity's changes summed per step in a table over the steps (zeros between entities), read in step order.
    kept = 0
    begin = 0
    for e in range(n_codes):
        m = 0
        for p in range(begin, start[e]):
            s = dealt[p, 0]
            if not seen[s]:
                seen[s] = True
                touched[m] = s
                m += 1
            sums[0, s] += dealt[p, 2]
            sums[1, s] += dealt[p, 1]
        begin = start[e]
        steps = touched[:m]
        if m > 16:
            steps.sort()
        else:  # a few steps (most entities): by insertion
            for j in range(1, m):
                s = steps[j]
                i = j - 1
                while i >= 0 and steps[i] > s:
                    steps[i + 1] = steps[i]
                    i -= 1
                steps[i + 1] = s
        n = 0
        k = 0
        for s in steps:
            dn, dk = sums[0, s], sums[1, s]
            if dn != 0 or dk != 0:
                n += dn
                k += dk
                out_entity[kept], out_step[kept], out_n[kept], out_k[kept] = e, s, n, k
                out_trials[kept], out_safe[kept] = dn, dk
                kept += 1
            sums[0, s], sums[1, s], seen[s] = 0, 0, False
    return kept


def _states(outcomes: list[TenantOutcomes], instants: np.ndarray, scratch: dict[str, np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
    """Every tenant's changes merged per entity and step between asked ``instants`` (sorted, distinct), with
    the state before and after each, in step order (:func:`_merged`).

    ``scratch`` is working memory to reuse (an empty dict the first time): entity kinds in turn reuse the
    memory the first one wrote (fresh arrays cost a page fault per 4 KiB)."""
    # Every tenant's merged changes written into one set of columns, each after the last, with one working
    # memory. (Columns apart, not rows of one array: no larger than the allocator keeps and hands out again.)
    sizes = [len(o.time) for o in outcomes]
    scratch = _merge_scratch(max(sizes, default=0), 0, len(instants), {} if scratch is None else scratch)
    if "into_step" not in scratch or len(scratch["into_step"]) < sum(sizes):
        scratch |= {f"into_{c}": np.empty(sum(sizes), np.int64) for c in _MERGED}
    tenant_rows, at = [], 0
    for o in outcomes:
        kept = len(_merged(o, instants, {c: scratch[f"into_{c}"][at:] for c in _MERGED}, scratch)["step"])
        tenant_rows.append(kept)
        at += kept
    if not at:
        return {c: np.zeros(0, np.int64) for c in ("tenant", "step", "before", "after", "first_trial")} | {
            "state_tenant": np.zeros(0, np.int64), "state_n": np.zeros(0), "state_k": np.zeros(0)}
    tenant = np.repeat(np.arange(len(outcomes)), tenant_rows)
    cols = {c: scratch[f"into_{c}"][:at] for c in _MERGED}
    n_after, k_after = cols["n_after"], cols["k_after"]
    width_k = int(max(k_after.max(), (k_after - cols["safe"]).max())) + 1
    width_n = int(max(n_after.max(), (n_after - cols["trials"]).max())) + 1
    # States with trials, numbered in (tenant, trials, successes) order: the order a
    # snapshot's distinct pairs come in, tenant by tenant. Hash first, then sort the
    # distinct states only (np.unique's hash path was slower here).
    codes, distinct = pd.factorize(np.where(n_after > 0, (tenant * width_n + n_after) * width_k + k_after, -1))
    with_trials = np.flatnonzero(distinct >= 0)
    by_state = with_trials[np.argsort(distinct[with_trials])]
    states = distinct[by_state]
    rank = np.full(len(distinct), -1, np.int64)
    rank[by_state] = np.arange(len(by_state))
    out = {c: np.empty(at, np.int64) for c in ("tenant", "step", "before", "after")} | {
        "first_trial": np.empty(at, bool)}
    _number_kernel(codes, rank, cols["n_after"], cols["trials"], cols["step"], tenant, len(instants), out["tenant"],
                   out["step"], out["before"], out["after"], out["first_trial"])
    return out | {"state_tenant": states // (width_n * width_k),
                  "state_n": ((states // width_k) % width_n).astype(np.float64),
                  "state_k": (states % width_k).astype(np.float64)}


@_compiled
def _number_kernel(codes, rank, n_after, trials, step, tenant, width, out_tenant, out_step, out_before, out_after,
                   out_first):  # pragma: no cover - compiled
    # Rows in step order, stably (a counting sort by step), each with its state after and before.
    start = np.zeros(width + 1, np.int64)
    for i in range(len(step)):
        start[step[i] + 1] += 1
    for s in range(width):
        start[s + 1] += start[s]
    after = -1
    for i in range(len(step)):
        # Each entity's changes are consecutive, in step order: a change's state before is its predecessor's after.
        had_trials = n_after[i] - trials[i] > 0
        before = after if had_trials else -1
        after = rank[codes[i]]  # (-1 without trials)
        p = start[step[i]]
        start[step[i]] = p + 1
        out_tenant[p], out_step[p], out_before[p], out_after[p] = tenant[i], step[i], before, after
        out_first[p] = after >= 0 and not had_trials  # an entity's trials only grow: it enters the fit once


@warmed_by
def _warm() -> None:
    """The kernels of the changes, states and fits asked, on one tenant's few changes (for
    :func:`._sweeps.warm_up`)."""
    one, steps = np.ones(2, np.int64), np.ones(2, np.int8)
    ev = _states([TenantOutcomes(entity=np.array([0, 1]), time=np.array([5, 15]), safe=one, trials=one,
                                 explicit=one)], np.array([10, 20]))
    _states([TenantOutcomes(entity=np.array([0, 1]), time=np.array([5, 15]), safe=steps, trials=steps,
                            explicit=steps)], np.array([10, 20]))  # (int8 changes, as backfill's tables give)
    _Fits().ask(ev, one, 0, 1, ("kind", 0), 0)


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
    distinct = [_distinct(np.asarray(r, dtype=np.int64)) for r in requests]
    fits = _Fits()
    scratch: dict[str, np.ndarray] = {}  # the kinds' working memory, reused
    finish = {kind: _priors_at_distinct(per_tenant, [u for u, _ in distinct], config, fits, kind, scratch)
              for kind, per_tenant in outcomes.items()}
    del scratch  # (its memory back before the fits are solved)
    alpha, beta = fits.solve()
    out = {}
    for kind, done in finish.items():
        fitted = done(alpha, beta)
        out[kind] = [(spread(a), spread(b)) for (a, b), (_, spread) in zip(fitted, distinct)]
    return out


def _distinct(values: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The distinct ``values``, sorted, and what spreads an array over them back over the values.

    ``np.unique(values, return_inverse=True)`` and a gather through the
    inverse, unless the values are sorted already (a tenant's messages come in
    time order): then one pass finds them, and each distinct value's answer is
    repeated over its run (no sort of a million instants to find a day's, and
    a copy per run in place of a gather per message).

    Examples
    --------
    >>> for values in (np.array([3, 3, 5, 9, 9]), np.array([5, 3, 5])):
    ...     distinct, spread = _distinct(values)
    ...     print(distinct.tolist(), spread(distinct * 10).tolist())
    [3, 5, 9] [30, 30, 50, 90, 90]
    [3, 5] [50, 30, 50]
    """
    if len(values) > 1 and not (values[1:] >= values[:-1]).all():
        distinct, inverse = np.unique(values, return_inverse=True)
        return distinct, lambda answers: answers[inverse]
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else np.zeros(0, int)
    runs = np.diff(np.append(starts, len(values)))
    return values[starts], lambda answers: np.repeat(answers, runs)


def _priors_at_distinct(outcomes: list[TenantOutcomes], requests: list[np.ndarray], config: BaselineConfig,
                        fits: "_Fits", scope: str, scratch: dict[str, np.ndarray] | None = None
                        ) -> Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`priors_at` for sorted, distinct instants per tenant: asks ``fits`` for the fits it needs and
    returns what turns their solution (alpha and beta by fit number) into the priors (``scratch``: see
    :func:`_states`)."""
    n_tenants = len(outcomes)
    out = [(np.empty(len(r)), np.empty(len(r))) for r in requests]
    asked = np.unique(np.concatenate(requests + [np.zeros(0, np.int64)]))
    ev = _states(outcomes, asked, scratch)
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
    most ``pending_pairs`` pairs gives the same bits as one batch, in bounded memory.
    The pending fits' pairs are written one after another into columns kept
    for the batch (:func:`_asked_kernel`), the arrays ``fit_summary_list`` would
    have joined them into."""

    def __init__(self, pending_pairs: int | None = None) -> None:
        self.last: dict[tuple[str, int], tuple[int, int]] = {}  # (scope, who) -> (version, fit number)
        self.pending_pairs = pending_pairs or _PENDING_PAIRS
        self._columns = (np.empty(0), np.empty(0), np.empty(0, np.int64))  # (n, k, count) of the pending fits
        self._bounds = [0]  # where each pending fit's pairs start, and the end
        self._solved: list[tuple[np.ndarray, np.ndarray]] = []
        self._count = 0

    def ask(self, ev: dict[str, np.ndarray], hist: np.ndarray, lo: int, hi: int, who: tuple[str, int],
            version: int) -> int:
        known = self.last.get(who)
        if known is not None and known[0] == version:
            return known[1]
        used = self._bounds[-1]
        if len(self._columns[0]) < used + hi - lo:  # (grown by doubling: each pair copied a few times at most)
            size = max(2 * len(self._columns[0]), used + hi - lo, 1024)
            self._columns = tuple(np.concatenate([c[:used], np.empty(size - used, c.dtype)]) for c in self._columns)
        self._bounds.append(used + _asked_kernel(hist, lo, hi, ev["state_n"], ev["state_k"], used, *self._columns))
        number = self._count
        self._count += 1
        self.last[who] = (version, number)
        if self._bounds[-1] >= self.pending_pairs:
            self._solve_pending()
        return number

    def _solve_pending(self) -> None:
        if len(self._bounds) > 1:
            used = self._bounds[-1]
            # fit_summary_list's call on the columns it would have joined: the same bits.
            self._solved.append(fit_summaries(*(c[:used] for c in self._columns), np.array(self._bounds)))
            self._bounds = [0]

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """``alpha`` and ``beta`` of every fit asked, by number."""
        self._solve_pending()
        if not self._solved:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([a for a, _ in self._solved]), np.concatenate([b for _, b in self._solved])


@_compiled
def _asked_kernel(hist, lo, hi, state_n, state_k, at, n, k, count):  # pragma: no cover - compiled
    # The states lo:hi with a count, and their counts, written from ``at`` on; returns how many. (What
    # flatnonzero and three gathers per fit did, with their arrays, for a backfill's thousands of fits.)
    m = at
    for s in range(lo, hi):
        if hist[s] != 0:
            n[m], k[m], count[m] = state_n[s], state_k[s], hist[s]
            m += 1
    return m - at
