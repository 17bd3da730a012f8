"""Online/offline consistency: do the signals an engine logged equal the signals recomputed from the history?"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from commgraph.baselines import BaselineConfig
from commgraph.graph import ConfigError, Messages
from commgraph.graph._validate import _blank_text_missing

from ._backfill import backfill
from ._provider import SignalProvider
from ._signal_set import SignalSet

__all__ = ["consistency_report", "ConsistencyReport"]

_EDGE_KEYS = ["tenant_id", "message_id", "recipient"]
_MESSAGE_KEYS = ["tenant_id", "message_id"]
_SHOWN = 5


@dataclass(repr=False)
class ConsistencyReport:
    """What an online log and the offline recomputation agree on, signal by signal.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per signal compared: ``rows`` compared, ``mismatches``,
        ``mismatch_rate``, ``max_abs_diff``, and the first rows where it differs
        most (``worst``: their keys, ``logged`` and ``offline`` values).
    missing : pandas.DataFrame
        Keys of rows the history says were scored in the logged period that the
        log does not have. A tenant's period runs from its first logged message
        (tenants may go live on different days) to the last logged message of
        any tenant: a tenant the engine stopped logging shows the rest as missing.
    extra : pandas.DataFrame
        Logged rows (keys) the history has no message for, or repeats of a logged row.
    largest : pandas.DataFrame
        The largest differences over every signal: keys, ``signal``, ``logged``, ``offline``, ``diff``.
    unknown_columns : list of str
        Logged columns that are neither keys nor signals of the set (not compared).
    mode : str
        How the offline side was computed (``as_deployed`` or ``fresh``).
    unlogged_tenants : list of str
        Tenants of the history with mail in the log's period and no logged row
        at all (named in the summary; a log may cover some tenants only, so
        they do not make the report inconsistent).

    Examples
    --------
    >>> report = ConsistencyReport(pd.DataFrame({"signal": ["pair_messages"], "rows": [3], "mismatches": [0],
    ...     "mismatch_rate": [0.0], "max_abs_diff": [0.0]}), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), [],
    ...     "as_deployed")
    >>> report.consistent
    True
    >>> report
    ConsistencyReport(consistent (as_deployed): 1 signal over 3 logged rows, 0 differ; 0 missing, 0 extra)
    """

    frame: pd.DataFrame
    missing: pd.DataFrame
    extra: pd.DataFrame
    largest: pd.DataFrame
    unknown_columns: list[str]
    mode: str
    unlogged_tenants: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """No mismatch, no missing and no extra row."""
        return not (self.frame["mismatches"].sum() or len(self.missing) or len(self.extra))

    def summary(self) -> str:
        """A few lines: rows compared, missing and extra rows, the signals that differ and by how much."""
        rows = int(self.frame["rows"].max()) if len(self.frame) else 0
        lines = [f"consistency of {len(self.frame)} signals over {rows:,} logged rows (offline: {self.mode}): "
                 f"{'consistent' if self.consistent else 'INCONSISTENT'}",
                 f"  missing rows (scored per the history, not logged): {len(self.missing):,}",
                 f"  extra rows (logged, not in the history or repeated): {len(self.extra):,}"]
        if self.unlogged_tenants:
            lines.append(f"  tenants with mail in the logged period and nothing logged: {len(self.unlogged_tenants)} "
                         f"({', '.join(self.unlogged_tenants[:_SHOWN])}{' ...' if len(self.unlogged_tenants) > _SHOWN else ''})")
        differ = self.frame[self.frame["mismatches"] > 0].sort_values("mismatch_rate", ascending=False)
        if len(differ):
            lines.append(f"  signals that differ: {len(differ)}")
            for r in differ.head(10).itertuples():
                lines.append(f"    {r.signal:<34} {r.mismatches:>8,} rows ({r.mismatch_rate:.2%}), "
                             f"largest difference {r.max_abs_diff:.6g}")
            if len(differ) > 10:
                lines.append(f"    ... and {len(differ) - 10} more")
        if self.unknown_columns:
            lines.append(f"  logged columns not compared (not signals of the set): {self.unknown_columns[:_SHOWN]}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        # Counts and the few largest differences, as the library's other reprs: the frames are attributes (the
        # dataclass's own repr printed them whole), print(report) gives the summary.
        signals, rows = len(self.frame), int(self.frame["rows"].max()) if len(self.frame) else 0
        differ = int((self.frame["mismatches"] > 0).sum()) if len(self.frame) else 0
        worst = "; ".join(f"{r.signal} of {r.tenant_id} {r.message_id!r}: logged {r.logged:.6g}, offline "
                          f"{r.offline:.6g}" for r in self.largest.head(3).itertuples())
        more = f" (and {len(self.largest) - 3} more)" if len(self.largest) > 3 else ""
        return (f"ConsistencyReport({'consistent' if self.consistent else 'INCONSISTENT'} ({self.mode}): "
                f"{signals} signal{'s' if signals != 1 else ''} over {rows:,} logged row{'s' if rows != 1 else ''}, "
                f"{differ} differ{'s' if differ == 1 else ''}; {len(self.missing):,} missing, {len(self.extra):,} "
                "extra" + (f"; largest differences: {worst}{more}" if worst else "") + ")")


def consistency_report(online_log: pd.DataFrame, messages: Messages, *,
                       mode: Literal["as_deployed", "fresh"] = "as_deployed", refresh_every: str | _dt.timedelta = "1D",
                       refresh_offset: str | _dt.timedelta = "0s", publish_delay: str | _dt.timedelta = "0s",
                       config: BaselineConfig | Mapping | None = None,
                       signals: SignalSet | Sequence[SignalProvider | str] | None = None, rtol: float = 1e-6,
                       atol: float = 1e-9) -> ConsistencyReport:
    """Recompute the signals an engine logged at scoring time from the history, and compare.

    Proves that training data built by :func:`backfill` matches what production
    saw, or shows where it does not: per signal the share of rows that differ
    and the largest differences, plus rows the engine should have logged and
    did not (missing) and logged rows the history cannot explain (extra).

    Parameters
    ----------
    online_log : pandas.DataFrame
        What the engine logged: ``tenant_id``, ``message_id``, ``recipient``
        (edge level; without it, message level) and any signal columns.
    messages : Messages
        The history (validated), including the logged messages.
    mode : {"as_deployed", "fresh"}, default "as_deployed"
        How the engine's snapshots relate to the mail: refreshed every
        ``refresh_every`` (as deployed) or current to the message (fresh).
    refresh_every, refresh_offset, publish_delay : timedelta or str
        The engine's refresh schedule (as deployed): every ``refresh_every``
        (default "1D"), at ``refresh_offset`` into each period (default "0s":
        midnight UTC), each snapshot serving from ``publish_delay`` after its
        instant (default "0s"); see :func:`~commgraph.signals.backfill`.
    config : BaselineConfig or mapping, optional
        The configuration the engine's baselines were built with.
    signals : SignalSet or list, optional
        The set the engine ran (default: the built-in set).
    rtol, atol : float
        Tolerance for float signals (the engine logs float32); missing values
        (nan) on both sides agree. Counts and flags (integer signals) are
        compared exactly, in the logged column's own dtype (a count logged as
        float32 is compared with the recomputed count rounded to float32, as
        the engine's own cast rounds it).

    Returns
    -------
    ConsistencyReport
        ``.frame`` one row per signal, ``.missing``, ``.extra``, ``.largest``;
        ``print(report)`` gives the summary.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"], "sender": "ann@vendor.com",
    ...     "recipients": "cy@acme.com"}), tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> log = backfill(m, mode="as_deployed", signals=["pair"])
    >>> log.loc[1, "pair_messages"] = 7  # what a bug in the engine would log
    >>> report = consistency_report(log, m, signals=["pair"])
    >>> report.frame[["signal", "rows", "mismatches", "max_abs_diff"]]
                       signal  rows  mismatches  max_abs_diff
    0           pair_messages     2           1           6.0
    1   pair_is_first_contact     2           0           0.0
    2    pair_days_since_last     2           0           0.0
    3  pair_recipient_replied     2           0           0.0
    >>> report  # doctest: +NORMALIZE_WHITESPACE
    ConsistencyReport(INCONSISTENT (as_deployed): 4 signals over 2 logged rows, 1 differs; 0 missing, 0 extra; largest
    differences: pair_messages of acme '2': logged 7, offline 1)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    consistency of 4 signals over 2 logged rows (offline: as_deployed): INCONSISTENT
      missing rows (scored per the history, not logged): 0
      extra rows (logged, not in the history or repeated): 0
      signals that differ: 1
        pair_messages                             1 rows (50.00%), largest difference 6
    """
    if not isinstance(online_log, pd.DataFrame):
        raise ConfigError(f"The 'online_log' parameter of consistency_report must be a DataFrame. "
                          f"Got {type(online_log).__name__} instead.")
    keys = _EDGE_KEYS if "recipient" in online_log.columns else _MESSAGE_KEYS
    absent = [k for k in keys if k not in online_log.columns]
    if absent:
        raise ConfigError(f"online_log lacks the key columns {absent}; it needs tenant_id and message_id, and "
                          "recipient for edge-level logs")
    signal_set = signals if isinstance(signals, SignalSet) else SignalSet(signals)
    compared = [n for n in signal_set.names if n in online_log.columns]
    level_dtype = {s.name: s.dtype if "recipient" in keys else s.message_dtype for s in signal_set.specs}
    unknown = [c for c in online_log.columns if c not in keys and c not in signal_set.names]
    if not compared:
        raise ConfigError(f"online_log has none of the signals of the set ({signal_set.names[:_SHOWN]} ...); "
                          f"its columns are {list(online_log.columns)[:10]}")
    level = "edge" if "recipient" in keys else "message"
    offline = backfill(messages, mode=mode, refresh_every=refresh_every, refresh_offset=refresh_offset,
                       publish_delay=publish_delay, level=level, config=config, signals=signal_set)
    log = online_log[keys + compared].astype({k: str for k in keys})
    offline = offline[keys + compared].astype({k: str for k in keys})
    repeated = log.duplicated(keys, keep="first")
    merged = log[~repeated].merge(offline, on=keys, how="outer", suffixes=("_logged", ""), indicator=True)
    extra = pd.concat([merged.loc[merged["_merge"] == "left_only", keys], log.loc[repeated, keys]],
                      ignore_index=True)
    missing, unlogged = _in_logged_period(merged.loc[merged["_merge"] == "right_only", keys], log, messages, keys)
    both = merged[merged["_merge"] == "both"].reset_index(drop=True)
    rows, largest = [], []
    for name in compared:
        given = _blank_text_missing(both[f"{name}_logged"])  # a blank logged value is a missing one
        logged = pd.to_numeric(given, errors="coerce").to_numpy(np.float64)
        # A value the engine logged that is no number ('ERR: timeout') is a mismatch, even beside a missing
        # offline value (a first contact's days since the last message): read as NaN, it passed as equal.
        junk = given.notna().to_numpy() & np.isnan(logged)
        recomputed = both[name].to_numpy(np.float64)
        if level_dtype[name] == "float32":
            same = np.isclose(logged, recomputed, rtol=rtol, atol=atol, equal_nan=True)
        else:  # a count is right or wrong: a tolerance would pass 1,000,001 for 1,000,000
            if _holds_float32(online_log[name].dtype):
                recomputed = recomputed.astype(np.float32).astype(np.float64)
            same = (logged == recomputed) | (np.isnan(logged) & np.isnan(recomputed))
        same &= ~junk
        diff = np.where(same, 0.0, np.abs(logged - recomputed))
        diff = np.where(~same & np.isnan(diff), np.inf, diff)  # a value on one side only: as far apart as can be
        worst = np.argsort(-diff, kind="stable")[:_SHOWN]
        worst = worst[diff[worst] > 0]
        rows.append({"signal": name, "rows": len(both), "mismatches": int((~same).sum()),
                     "mismatch_rate": float((~same).mean()) if len(both) else 0.0,
                     "max_abs_diff": float(diff.max()) if len(both) else 0.0,
                     "worst": [dict(zip(keys, both.loc[i, keys])) | {"logged": logged[i], "offline": recomputed[i]}
                               for i in worst]})
        if len(worst):
            part = both.loc[worst, keys].assign(signal=name, logged=logged[worst], offline=recomputed[worst],
                                                diff=diff[worst])
            largest.append(part)
    largest_frame = (pd.concat(largest, ignore_index=True).sort_values("diff", ascending=False, kind="stable")
                     .reset_index(drop=True) if largest else
                     pd.DataFrame(columns=keys + ["signal", "logged", "offline", "diff"]))
    return ConsistencyReport(pd.DataFrame(rows), missing.reset_index(drop=True), extra, largest_frame, unknown, mode,
                             unlogged)


def _in_logged_period(missing: pd.DataFrame, log: pd.DataFrame, messages: Messages, keys: list[str]
                      ) -> tuple[pd.DataFrame, list[str]]:
    """Rows of the history missing from the log within the logged period (the history may reach further
    back or forward than the log), and the tenants with mail in the log's period of which nothing was logged.

    A tenant's period starts at its own first logged message and ends at the log's last one: a tenant the
    engine stopped logging shows the rest of its mail as missing instead of shrinking its period."""
    frame = messages.frame
    times = pd.DataFrame({"tenant_id": frame["tenant_id"].astype(str).to_numpy(),
                          "message_id": frame["message_id"].astype(str).to_numpy(),
                          "timestamp": frame["timestamp"].to_numpy()})
    logged = times.merge(log[["tenant_id", "message_id"]].drop_duplicates(), on=["tenant_id", "message_id"])
    if logged.empty:
        return missing.iloc[:0], []
    end = logged["timestamp"].max()
    in_span = times["timestamp"].between(logged["timestamp"].min(), end)
    unlogged = sorted(set(times.loc[in_span, "tenant_id"]) - set(logged["tenant_id"]))
    first = logged.groupby("tenant_id")["timestamp"].min().rename("first")
    found = missing.merge(times, on=["tenant_id", "message_id"]).merge(first, left_on="tenant_id", right_index=True)
    inside = (found["timestamp"] >= found["first"]) & (found["timestamp"] <= end)
    return found.loc[inside, keys], unlogged


def _holds_float32(dtype: object) -> bool:
    """Whether a logged column holds float32 values: numpy's, pandas' nullable ``Float32`` or Arrow's ``float``."""
    return pd.api.types.is_float_dtype(dtype) and np.dtype(getattr(dtype, "numpy_dtype", dtype)) == np.float32
