"""Detection efficacy of signals and detector scores: ROC AUC, recall at a false-positive rate, alert budgets.

Detection engineers judge a signal by what it catches at a false-positive rate
the business can live with (one in ten thousand safe messages, or less), and an
unsupervised ranker by what an analyst sees within a fixed number of alerts per
tenant and day. :func:`evaluate` reports both for every column of a signal frame
(or any detector score) in one table.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from commgraph.graph import LABELS, ConfigError, SchemaError
from commgraph.graph._errors import Problem, ReasonCode

__all__ = ["evaluate", "alerts_within_budget", "suspicious_directions", "DIRECTIONS"]

#: How a column can point: larger values more suspicious ("high") or smaller ones ("low").
DIRECTIONS: tuple[str, ...] = ("high", "low")

#: Default false-positive rates at which recall and precision are reported.
DEFAULT_FPRS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)


def suspicious_directions(columns: Sequence[str], directions: Mapping[str, str] | None = None, *,
                          signal_set: Any = None, declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """The suspicious direction of each column: given, else the signal's declared one, else ``"high"``.

    Built-in signals declare theirs (``SignalSpec.suspicious``): ``sender_is_new``
    is suspicious when high, ``sender_active_days`` when low. Columns that are
    neither given nor declared (a detector's score, say) count as suspicious
    when high.

    Parameters
    ----------
    columns : sequence of str
        Column names.
    directions : mapping of str to {"high", "low"}, optional
        Directions that override the declared ones.
    signal_set : SignalSet, optional
        The set that computed the columns: its providers' declared directions
        count (a provider never registered declares its own only here).
    declared : mapping, optional
        More declared directions (the ``attrs["suspicious"]`` of a frame that
        :meth:`SignalSet.compute`, :meth:`Scorer.score` or ``backfill`` made).

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> suspicious_directions(["sender_is_new", "sender_active_days", "model_score"])
    {'sender_is_new': 'high', 'sender_active_days': 'low', 'model_score': 'high'}
    >>> suspicious_directions(["model_score"], {"model_score": "low"})
    {'model_score': 'low'}
    """
    from ._provider import provider_registry  # the registry fills as providers import

    extra = dict(declared or {})
    declared = {}
    providers = [*provider_registry().values(), *(signal_set.providers if signal_set is not None else ())]
    for provider in providers:
        for spec in provider.signals:
            if getattr(spec, "suspicious", None) is not None:
                declared[spec.name] = spec.suspicious
    declared.update(extra)
    given = dict(directions or {})
    unknown = sorted(set(given) - set(columns))
    if unknown:
        raise ConfigError(f"directions were given for columns that are not scored: {unknown[:5]}. "
                          f"Scored columns: {list(columns)[:5]}{' ...' if len(columns) > 5 else ''}.")
    out = {}
    for name in columns:
        direction = given.get(name, declared.get(name, "high"))
        if direction not in DIRECTIONS:
            raise ConfigError(f"The direction of column {name!r} must be one of {DIRECTIONS}. "
                              f"Got {direction!r} instead.")
        out[name] = direction
    return out


def oriented(values: np.ndarray, direction: str) -> np.ndarray:
    """Values as float64 where larger is more suspicious, missing values least suspicious (``-inf``)."""
    out = np.asarray(values, dtype=np.float64)
    out = -out if direction == "low" else out.copy()
    out[np.isnan(out)] = -np.inf
    return out


def alerts_within_budget(scores: np.ndarray | pd.Series, budget: int, *,
                         groups: np.ndarray | pd.Series | pd.DataFrame | None = None) -> np.ndarray:
    """Which rows an analyst sees when only the ``budget`` most suspicious rows of each group are alerted.

    Rows are ranked by ``scores`` (larger is more suspicious; ``nan`` never
    alerts), within each group (say, tenant and day). Ties at the budget's edge
    go to the earlier row, so each group raises at most ``budget`` alerts.

    Parameters
    ----------
    scores : array-like of float
        Suspicion per row, larger more suspicious.
    budget : int
        Alerts per group, at least 1.
    groups : array-like or DataFrame, optional
        Group of each row (several columns allowed); all rows form one group when omitted.

    Returns
    -------
    numpy.ndarray of bool
        True for alerted rows.

    Examples
    --------
    >>> alerts_within_budget([0.9, 0.1, 0.8, 0.7], 1, groups=["a", "a", "b", "b"])
    array([ True, False,  True, False])
    >>> alerts_within_budget([3.0, float("nan"), 3.0], 2)
    array([ True, False,  True])
    """
    values = np.asarray(scores, dtype=np.float64)
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"The 'budget' parameter of alerts_within_budget must be an integer >= 1. "
                          f"Got {budget!r} instead.")
    codes = _group_codes(groups, len(values))
    # One stable sort: by group, then most suspicious first, then row order.
    order = np.lexsort((np.arange(len(values)), -np.nan_to_num(values, nan=-np.inf), codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(order) else np.array([], int)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    alerted = np.zeros(len(values), dtype=bool)
    alerted[order[rank < budget]] = True
    alerted &= ~np.isnan(values)
    return alerted


def _group_codes(groups: Any, n: int) -> np.ndarray:
    """Integer group codes for ``n`` rows (one group when ``groups`` is None)."""
    if groups is None:
        return np.zeros(n, dtype=np.int64)
    if isinstance(groups, pd.DataFrame):
        codes = groups.groupby(list(groups.columns), sort=False, dropna=False).ngroup().to_numpy()
    else:
        codes = pd.factorize(pd.Series(np.asarray(groups, dtype=object) if not isinstance(groups, pd.Series)
                                       else groups.to_numpy()), use_na_sentinel=False)[0]
    if len(codes) != n:
        raise ConfigError(f"groups has {len(codes)} rows, the scores {n}; pass one group per scored row.")
    return np.asarray(codes, dtype=np.int64)


def _as_frame(scores: Any) -> pd.DataFrame:
    if isinstance(scores, pd.DataFrame):
        frame = scores
    elif isinstance(scores, pd.Series):
        frame = scores.to_frame(scores.name if scores.name is not None else "score")
    else:
        array = np.asarray(scores)
        if array.ndim == 1:
            frame = pd.DataFrame({"score": array})
        elif array.ndim == 2:
            frame = pd.DataFrame(array, columns=[f"score_{i}" for i in range(array.shape[1])])
        else:
            raise ConfigError(f"scores must be a DataFrame, a Series or a 1-D/2-D array. Got {array.ndim} dimensions.")
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if not numeric:
        raise ConfigError("scores has no numeric column to evaluate; pass the signal columns "
                          "(for example SignalSet().compute(..., level='message')).")
    return frame[numeric]


def _as_labels(labels: Any, n: int, positive: Any) -> np.ndarray:
    """Labels as bool (True = attack); unlabelled rows are an error naming them."""
    series = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels, dtype=object))
    if len(series) != n:
        raise ConfigError(f"labels has {len(series)} rows, the scores {n}; pass one label per scored row.")
    missing = series.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise SchemaError([Problem("labels", ReasonCode.MISSING_VALUE, [int(r) for r in rows], [None] * len(rows),
                                   f"{int(missing.sum())} scored rows have no label; evaluate labelled rows only "
                                   f"(for example scores[labels.notna()]).")])
    if isinstance(series.dtype, pd.CategoricalDtype):  # read as its categories' values (1 and 0 are numbers)
        series = series.astype(series.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series.infer_objects()):
        values = series.infer_objects().to_numpy()
        if not np.isin(values, (0, 1, True, False)).all():
            bad = np.flatnonzero(~np.isin(values, (0, 1, True, False)))
            raise SchemaError([Problem("labels", ReasonCode.INVALID_VALUE, [int(r) for r in bad],
                                       list(values[bad]), "numeric labels must be 1 (attack) or 0 (safe).")])
        return values.astype(bool)
    # The contract's text labels are read as validation reads them (white space stripped, case folded: "Attack"
    # is an attack), and so is positive= naming one of them when the labels are the contract's (labels of the
    # user's own, such as Attack/Benign, are compared as given); anything else is refused: a "1" read from a CSV
    # would silently be safe mail.
    if isinstance(positive, str) and positive not in LABELS and positive.strip().lower() in LABELS and \
            series.astype(str).str.strip().str.lower().isin(LABELS).all():
        positive = positive.strip().lower()  # (the labels are the contract's: positive is read as they are)
    if positive in LABELS:
        given, series = series, series.astype(str).str.strip().str.lower()
        odd = ~series.isin(LABELS).to_numpy(dtype=bool)
        if odd.any():
            bad = np.flatnonzero(odd)
            raise SchemaError([Problem("labels", ReasonCode.INVALID_VALUE, [int(r) for r in bad],
                                       list(given.iloc[bad]),
                                       f"text labels must be one of {', '.join(map(repr, LABELS))} ({positive!r} "
                                       "marks an attack): 1 and 0 go as numbers, and a label of your own with "
                                       "positive=")])
    return (series == positive).to_numpy(dtype=bool)


def _at_fpr(y: np.ndarray, s: np.ndarray, rates: Sequence[float], floor: float) -> dict[str, float]:
    """Recall, precision and threshold at the largest alert set whose false-positive rate is within each rate.

    Scores at or below ``floor`` (missing values) never alert.
    """
    from sklearn.metrics import roc_curve  # (here: importing commgraph.signals does not load scikit-learn)

    # roc_curve's points are the distinct thresholds (alert when score >= threshold), in growing FPR order;
    # the first point (threshold inf) alerts nothing.
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    last_usable = int(np.searchsorted(-thresholds, -floor, side="left")) - 1  # thresholds fall along the curve
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    out: dict[str, float] = {}
    for rate in rates:
        i = min(int(np.searchsorted(fpr, rate, side="right")) - 1, last_usable)  # the last point within the rate
        alerted = np.isfinite(thresholds[i]) and i > 0
        tp, fp = tpr[i] * n_pos, fpr[i] * n_neg
        out[f"recall@fpr={rate:g}"] = float(tpr[i]) if alerted else 0.0
        out[f"precision@fpr={rate:g}"] = float(tp / (tp + fp)) if alerted and tp + fp > 0 else np.nan
        out[f"fnr@fpr={rate:g}"] = 1.0 - out[f"recall@fpr={rate:g}"]
        out[f"threshold@fpr={rate:g}"] = float(thresholds[i]) if alerted else np.inf
    return out


def evaluate(scores: pd.DataFrame | pd.Series | np.ndarray, labels: Any, *,
             fpr: Sequence[float] = DEFAULT_FPRS, budget: int | None = None,
             groups: np.ndarray | pd.Series | pd.DataFrame | None = None,
             directions: Mapping[str, str] | None = None, positive: Any = "attack",
             signal_set: Any = None) -> pd.DataFrame:
    """Detection efficacy of every signal or detector score: AUC, recall at a false-positive rate, budgets.

    Each column is read in its suspicious direction (see
    :func:`suspicious_directions`); a message alerts when its value is at least
    the threshold, and missing values never alert. At each false-positive rate
    the threshold is the loosest whose rate on safe mail stays within it: with
    ``n`` safe messages a rate below ``1/n`` allows no false positive at all,
    so the ``safe`` column says how fine the rates can be read.

    Parameters
    ----------
    scores : DataFrame, Series or array
        One row per message (or edge), one numeric column per signal or score.
        Non-numeric columns (``message_id``, ``recipient``) are ignored.
    labels : array-like
        Per row: 1/True for an attack, 0/False for safe mail, or strings where
        ``positive`` marks an attack. Unlabelled rows are an error.
    fpr : float or sequence of float, default (1e-5, 1e-4, 1e-3, 1e-2)
        False-positive rates at which recall, precision and the false-negative
        rate are reported.
    budget : int, optional
        Also report recall and precision when only the ``budget`` most
        suspicious rows of each group alert (see :func:`alerts_within_budget`).
    groups : array-like or DataFrame, optional
        The budget's groups (say, tenant and day); one group when omitted.
    directions : mapping, optional
        ``{"column": "high" | "low"}``, overriding declared directions.
    signal_set : SignalSet, optional
        The set that computed ``scores``: the directions its providers declare
        (a provider of your own that was never registered, say) are read. A
        frame from :meth:`SignalSet.compute`, :meth:`Scorer.score` or
        ``backfill`` carries them (``attrs["suspicious"]``), but pandas drops
        them in a merge (and a concat of frames that differ): pass the set then.
    positive : object, default "attack"
        The label value that marks an attack when labels are not numeric (one of
        the contract's labels in any case: ``"Attack"`` is ``"attack"``).

    Returns
    -------
    pandas.DataFrame
        Indexed by column, with ``direction``, ``n``, ``attacks``, ``safe``,
        ``coverage`` (share of rows with a value), ``roc_auc`` (``nan`` when
        only one class is present), then ``recall@fpr=R``, ``precision@fpr=R``,
        ``fnr@fpr=R`` and ``threshold@fpr=R`` per rate (in the column's units: alert
        at values >= it, or <= it for a ``"low"`` column; ``inf``, or ``-inf`` for a
        ``"low"`` column, when no threshold stays within the rate), and with a budget
        ``alerts@budget=K``, ``recall@budget=K`` and ``precision@budget=K``.

    Examples
    --------
    >>> import pandas as pd
    >>> scores = pd.DataFrame({"sender_is_new": [1, 0, 0, 1, 0, 0],
    ...                        "sender_active_days": [0, 40, 12, 1, 30, 2]})
    >>> labels = ["attack", "safe", "safe", "attack", "safe", "safe"]
    >>> report = evaluate(scores, labels, fpr=(0.25,))
    >>> report[["direction", "roc_auc", "recall@fpr=0.25"]]
                       direction  roc_auc  recall@fpr=0.25
    signal
    sender_is_new           high      1.0              1.0
    sender_active_days       low      1.0              1.0
    >>> evaluate(scores, labels, fpr=(), budget=1, groups=[1, 1, 1, 2, 2, 2])["recall@budget=1"].tolist()
    [1.0, 1.0]
    """
    frame = _as_frame(scores)
    y = _as_labels(labels, len(frame), positive)
    try:  # (one rate alone, as recall at 1e-4 is asked for, is a list of one)
        rates = [float(fpr)] if isinstance(fpr, (int, float, np.number)) else [float(r) for r in fpr]
    except (TypeError, ValueError):
        rates = None
    if rates is None or isinstance(fpr, (str, bool, np.bool_)):
        raise ConfigError(f"The 'fpr' parameter of evaluate must be a rate in [0, 1] or a list of them. Got {fpr!r} "
                          "instead.")
    for rate in rates:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"The 'fpr' parameter of evaluate must hold rates in [0, 1]. Got {rate!r} instead.")
    heading = suspicious_directions(list(frame.columns), directions, signal_set=signal_set,
                                    declared=getattr(scores, "attrs", {}).get("suspicious"))
    codes = _group_codes(groups, len(frame)) if budget is not None else None
    n_pos = int(y.sum())
    rows = []
    for name in frame.columns:
        raw = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(raw).any():
            rows_inf = np.flatnonzero(np.isinf(raw))
            raise SchemaError([Problem(str(name), ReasonCode.INVALID_VALUE, list(frame.index[rows_inf]),
                                       list(raw[rows_inf]), "scores must be finite; use nan for a missing value.")])
        s = oriented(raw, heading[name])
        row: dict[str, Any] = {"direction": heading[name], "n": len(y), "attacks": n_pos, "safe": len(y) - n_pos,
                               "coverage": float(np.mean(~np.isnan(raw))) if len(raw) else np.nan}
        two_classes = 0 < n_pos < len(y)
        # Missing values rank below every value; roc_curve needs finite scores, so they sit just below the lowest.
        present = np.isfinite(s)
        finite = np.where(present, s, s[present].min() - 1.0 if present.any() else 0.0)
        row["roc_auc"] = float(_roc_auc(y, finite)) if two_classes else np.nan
        if two_classes:
            floor = float(finite[np.isneginf(s)][0]) if np.isneginf(s).any() else -np.inf
            row.update(_at_fpr(y, finite, rates, floor))
            if heading[name] == "low":  # back to the column's own units: alert when the value is <= it
                for rate in rates:
                    row[f"threshold@fpr={rate:g}"] = -row[f"threshold@fpr={rate:g}"]
        else:
            row.update({f"{m}@fpr={r:g}": np.nan for r in rates for m in ("recall", "precision", "fnr", "threshold")})
        if budget is not None:
            alerted = alerts_within_budget(np.where(np.isneginf(s), np.nan, s), budget, groups=codes)
            tp = int((alerted & y).sum())
            row[f"alerts@budget={budget}"] = int(alerted.sum())
            row[f"recall@budget={budget}"] = tp / n_pos if n_pos else np.nan
            row[f"precision@budget={budget}"] = tp / int(alerted.sum()) if alerted.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(frame.columns, name="signal"))


def _roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # (here: importing commgraph.signals does not load scikit-learn)

    return roc_auc_score(y, scores)
