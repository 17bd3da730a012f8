"""Directed anomaly scoring: rank messages by how few others are at least as suspicious on every signal.

Each signal has a suspicious direction (a new sender is more suspicious than a
known one; fewer active days more than many). A message's directed anomaly
score (DAS, after Ho et al., "Detecting Credential Spearphishing in Enterprise
Settings", USENIX Security 2017) is the number of reference messages that are at
least as suspicious as it on *every* signal. A message that is extreme on even
one signal has few such peers, so the lowest scores are the alerts; no weights
and no training labels are needed.

The count is exact and vectorised, with no pairwise Python loop. Reference rows
are deduplicated (mail repeats) and weighted by their multiplicity. Each signal
becomes integer levels: its distinct values, or, past ``max_levels`` of them,
quantile ranges. For every (signal, level) a bitset marks the reference rows at
or above it, so a message's candidates are the AND of one bitset per signal:
``popcount`` counts the rows strictly above its level on every ranged signal
(certainly at least as suspicious), and only the few rows that share a range
with it are compared value by value. The work is ``O(m * u * d / 64)`` word
operations for ``m`` messages, ``u`` distinct reference rows and ``d`` signals,
plus those few comparisons.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from commgraph.graph import ConfigError

from ._evaluate import oriented, suspicious_directions

__all__ = ["directed_anomaly_score"]

# Bytes of the per-block working set: the AND of one block's bitsets is (block, words) uint64.
_BLOCK_BYTES = 32 << 20
# Default ranges per signal: enough that few reference rows share a message's range (those are compared by
# value), within a memory budget for the bitsets.
_MIN_LEVELS, _MAX_LEVELS, _BITSET_BYTES = 256, 4096, 256 << 20


def _levels(query: np.ndarray, reference: np.ndarray, distinct: np.ndarray, max_levels: int
            ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Integer levels (larger = more suspicious) of one oriented signal, their count, and whether it was cut.

    ``distinct`` holds the reference's sorted distinct values. A reference row is a
    candidate for a query row when its level is at least the query's.
    """
    if len(distinct) <= max_levels:
        # Exact: a reference value's level is its rank among the distinct values, a query's the rank of the
        # first value >= it (len(distinct), an empty level, when it exceeds them all).
        ref_levels = np.searchsorted(distinct, reference, side="left")
        query_levels = np.searchsorted(distinct, query, side="left")
        return query_levels, ref_levels, len(distinct) + 1, False
    # Cut: quantile edges of the reference; a level holds a range of values, so a reference value below the
    # query's but in its level is a candidate too (the caller compares those by value). Below every edge: 0.
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, max_levels), method="lower"))
    ref_levels = np.searchsorted(edges, reference, side="right") - 1
    query_levels = np.maximum(np.searchsorted(edges, query, side="right") - 1, 0)
    return query_levels, ref_levels, len(edges), True


def _set_bits(owner: np.ndarray, word: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (owner, row) pairs of the set bits of uint64 ``bits`` found at word ``word`` of ``owner``'s bitset."""
    unpacked = np.unpackbits(bits.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    entry, bit = np.nonzero(unpacked)
    return owner[entry], word[entry] * 64 + bit


def directed_anomaly_score(signals: pd.DataFrame, *, reference: pd.DataFrame | None = None,
                           directions: Mapping[str, str] | None = None, columns: list[str] | None = None,
                           max_levels: int | None = None, signal_set: Any = None) -> pd.Series:
    """For each row, how many reference rows are at least as suspicious on every signal (lower = more anomalous).

    Parameters
    ----------
    signals : DataFrame
        The messages to score, one numeric column per signal (message level, say).
    reference : DataFrame, optional
        The population to compare with (say, the tenant's last 60 days). When
        omitted, each row is compared with the other rows of ``signals``
        (itself excluded).
    directions : mapping, optional
        ``{"signal": "high" | "low"}`` overriding the declared suspicious
        directions (see :func:`commgraph.signals.suspicious_directions`).
    columns : list of str, optional
        The signals to use; default every numeric column of ``signals``.
    max_levels : int, optional
        Signals with more distinct reference values are grouped into this many
        quantile ranges for the bitsets; the count stays exact (rows sharing a
        range with a message are compared by value), only the work changes.
        Default: between 256 and 4096, as many as keep the bitsets within 256 MiB.
    signal_set : SignalSet, optional
        The set that computed ``signals``: the directions its providers declare
        are read (see :func:`commgraph.signals.suspicious_directions`).

    Returns
    -------
    pandas.Series of int64
        Aligned with ``signals``. Missing values count as the least suspicious.
        ``attrs["ranged_signals"]`` lists the signals grouped into ranges.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"sender_is_new": [0, 0, 1, 0], "sender_active_days": [40, 35, 0, 2]})
    >>> directed_anomaly_score(frame).tolist()
    [3, 2, 0, 1]

    The new sender is the only message no other message matches in suspicion;
    the one with two active days is matched only by the new sender.
    """
    if not isinstance(signals, pd.DataFrame):
        raise ConfigError(f"signals must be a DataFrame of signal columns. Got {type(signals).__name__} instead.")
    if max_levels is not None and (not isinstance(max_levels, (int, np.integer)) or max_levels < 2):
        raise ConfigError(f"The 'max_levels' parameter of directed_anomaly_score must be an integer >= 2. "
                          f"Got {max_levels!r} instead.")
    names = columns if columns is not None else [c for c in signals.columns
                                                  if pd.api.types.is_numeric_dtype(signals[c])]
    ref_frame = signals if reference is None else reference
    missing = [c for c in names if c not in signals.columns or c not in ref_frame.columns]
    if missing:
        raise ConfigError(f"signal columns {missing[:5]} are missing from "
                          f"{'signals' if reference is None else 'signals or reference'}; "
                          f"pass columns= with the signals both frames have.")
    typos = sorted(set(directions or {}) - set(signals.columns))
    if typos:  # (a direction for a column of the frame not scored here is fine: one mapping serves many calls)
        raise ConfigError(f"directions were given for columns that signals does not have: {typos[:5]}. Its "
                          f"columns: {list(signals.columns)[:5]}{' ...' if len(signals.columns) > 5 else ''}.")
    heading = suspicious_directions(names, {k: v for k, v in (directions or {}).items() if k in names},
                                    signal_set=signal_set, declared=signals.attrs.get("suspicious"))
    n_query, n_ref = len(signals), len(ref_frame)
    if not names or n_query == 0 or n_ref == 0:
        return pd.Series(np.full(n_query, max(n_ref - (reference is None), 0), dtype=np.int64), index=signals.index)

    query = np.column_stack([oriented(signals[c].to_numpy(dtype=np.float64, na_value=np.nan), heading[c])
                             for c in names])
    ref = query if reference is None else np.column_stack(
        [oriented(ref_frame[c].to_numpy(dtype=np.float64, na_value=np.nan), heading[c]) for c in names])
    # Distinct reference rows with their multiplicities: mail repeats, so there are far fewer than n_ref.
    group = pd.DataFrame(ref).groupby(list(range(ref.shape[1])), sort=False).ngroup().to_numpy()
    weights = np.bincount(group)
    rows = ref[np.unique(group, return_index=True)[1]]
    # Rows that occur more than once go first, so that a popcount counts every row once and only the
    # first words need a second look for the extra occurrences.
    repeated_first = np.argsort(weights == 1, kind="stable")
    rows, weights = rows[repeated_first], weights[repeated_first]
    repeated_words = (int(np.count_nonzero(weights > 1)) + 63) // 64
    n_words = (len(rows) + 63) // 64

    distinct = [np.unique(rows[:, j]) for j in range(len(names))]
    if max_levels is None:  # as many ranges as keep the bitsets of the ranged signals within the memory budget
        many = sum(len(values) > _MIN_LEVELS for values in distinct)
        max_levels = int(np.clip(_BITSET_BYTES // (8 * n_words * max(many, 1)), _MIN_LEVELS, _MAX_LEVELS))
    query_levels = np.empty(query.shape, dtype=np.int64)
    row_levels = np.empty(rows.shape, dtype=np.int64)
    n_levels, cut = [], np.zeros(len(names), dtype=bool)
    for j in range(len(names)):
        query_levels[:, j], row_levels[:, j], k, cut[j] = _levels(query[:, j], rows[:, j], distinct[j], max_levels)
        n_levels.append(k)
    offsets = np.concatenate([[0], np.cumsum(n_levels)])
    query_levels += offsets[:-1]

    # at_or_above[offsets[j] + j + v]: rows whose level of signal j is >= v, one extra, empty, level per
    # signal so that "strictly above the last level" exists. Each row's bit is set at its own level, then
    # OR-ed down from the top level.
    at_or_above = np.zeros((int(offsets[-1]) + len(names), n_words), dtype=np.uint64)
    word_of_row, bit_of_row = np.divmod(np.arange(len(rows)), 64)
    for j in range(len(names)):
        table = at_or_above[offsets[j] + j:offsets[j + 1] + j + 1]
        np.bitwise_or.at(table, (row_levels[:, j], word_of_row), np.uint64(1) << bit_of_row.astype(np.uint64))
        table[:] = np.bitwise_or.accumulate(table[::-1], axis=0)[::-1]
    at_or_above_index = query_levels + np.arange(len(names))  # each signal's table is one row longer
    cut_columns = np.flatnonzero(cut)
    ranged_rows, ranged_query = rows[:, cut_columns], query[:, cut_columns]

    # AND the most selective signals first (least of the reference at or above the message's level), exact
    # signals before ranged ones; once a block's candidates are sparse, carry on with the non-zero words only.
    share_at_or_above = []
    for j, k in enumerate(n_levels):
        at_or_above_level = np.cumsum(np.bincount(row_levels[:, j], minlength=k + 1)[::-1])[::-1]
        share_at_or_above.append(at_or_above_level[query_levels[:, j] - offsets[j]].mean())
    order = sorted(range(len(names)), key=lambda j: (cut[j], share_at_or_above[j]))
    scores = np.empty(n_query, dtype=np.int64)
    block = max(1, _BLOCK_BYTES // (8 * n_words))
    for start in range(0, n_query, block):
        index = at_or_above_index[start:start + block]
        # Candidates: rows at or above the message's level on every signal; certain: and strictly above its
        # range on every ranged signal (so at least as suspicious for sure). Dense while most words are set.
        candidates = at_or_above[index[:, order[0]]]
        certain = at_or_above[index[:, order[0]] + 1] if cut[order[0]] else candidates
        step = 1
        while step < len(order) and np.count_nonzero(candidates) > candidates.size // 8:
            j = order[step]
            narrowed = candidates & at_or_above[index[:, j]]
            # Exact signals come first, and until a ranged one the two sets are the same array.
            certain = narrowed if certain is candidates and not cut[j] else certain & at_or_above[
                index[:, j] + cut[j]]
            candidates = narrowed
            step += 1
        q, word = np.nonzero(candidates)
        candidate_words, certain_words = candidates[q, word], certain[q, word]
        for j in order[step:]:
            levels = index[q, j]
            candidate_words = candidate_words & at_or_above[levels, word]
            certain_words = certain_words & at_or_above[levels + cut[j], word]
            keep = candidate_words != 0
            q, word, candidate_words, certain_words = q[keep], word[keep], candidate_words[keep], certain_words[keep]
        total = np.bincount(q, weights=np.bitwise_count(certain_words), minlength=len(index)).astype(np.int64)
        in_repeated = word < repeated_words
        if in_repeated.any():
            q_of_row, row = _set_bits(q[in_repeated], word[in_repeated], certain_words[in_repeated])
            total += np.bincount(q_of_row, weights=weights[row] - 1, minlength=len(index)).astype(np.int64)
        # The rest of the candidates share a range with the message on some ranged signal: compare by value.
        boundary = candidate_words & ~certain_words
        if len(cut_columns) and boundary.any():
            has = boundary != 0
            q_of_pair, row = _set_bits(q[has], word[has], boundary[has])
            dominates = (ranged_rows[row] >= ranged_query[start + q_of_pair]).all(axis=1)
            total += np.bincount(q_of_pair[dominates], weights=weights[row[dominates]],
                                 minlength=len(index)).astype(np.int64)
        scores[start:start + block] = total
    if reference is None:
        scores -= 1  # every row is at least as suspicious as itself
    out = pd.Series(scores, index=signals.index, name="directed_anomaly_score")
    out.attrs["ranged_signals"] = [names[j] for j in cut_columns]
    return out
