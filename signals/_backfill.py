"""Leak-free backfill: every message's signals as its snapshot would have given them, for a whole history at once."""

from __future__ import annotations

import datetime as _dt
import warnings
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.baselines._asof import AsOfTables
from commgraph.baselines._build import _config
from commgraph.baselines._events import _codes, _ns
from commgraph.baselines._pages import no_hugepage_stalls
from commgraph.baselines._priors_in_time import priors_at_kinds
from commgraph.baselines._sweeps import _compiled, warmed_by
from commgraph.graph import ConfigError, Messages
from commgraph.graph._tenants import caller_stacklevel
from commgraph.graph._timestamps import duration

from ._backfill_signals import BUILTIN, PRIOR_KINDS, TenantAsOf
from ._batch import SignalBatch, _as_slice, _column, _increasing_as_slice, string_keys
from ._freemail import freemail_domain_flags
from ._provider import SignalProvider, checked_output
from ._signal_set import LEVELS, SignalSet, to_level, view_of

__all__ = ["backfill", "deployed_instants", "MODES"]

#: ``fresh``: as if baselines were current to the instant of each message;
#: ``as_deployed``: as of the last scheduled refresh before it, as the engine saw it.
MODES: tuple[str, ...] = ("fresh", "as_deployed")


def _duration(value: Any, name: str, *, zero: bool = False) -> int:
    """Nanoseconds of a positive (or, with ``zero``, non-negative) duration given as a timedelta or a pandas
    string ("1D", "6h")."""
    try:
        if isinstance(value, (bool, int, float)):
            raise TypeError
        td = duration(value)
    except (TypeError, ValueError):
        td = None
    if td is None or pd.isna(td) or td < pd.Timedelta(0) or (td == pd.Timedelta(0) and not zero):
        raise ConfigError(f"The {name!r} parameter of backfill must be a duration {'>=' if zero else '>'} 0 (a "
                          f"timedelta or a string such as '1D' or '6h'). Got {value!r} instead.")
    return int(td.value)


def deployed_instants(timestamps: np.ndarray, every: int, offset: int = 0, delay: int = 0) -> np.ndarray:
    """The as-of instant of the snapshot an engine on a refresh schedule scored each message with (ns).

    Refreshes run at ``offset + k * every`` since the Unix epoch (UTC), each
    building a snapshot as of its own instant that serves from ``delay`` later
    on: a message at ``t`` was scored with the latest refresh ``b`` such that
    ``b + delay <= t``.

    Examples
    --------
    >>> hour = 3_600 * 10**9
    >>> t = np.array([1, 2, 3]) * hour + 30 * 60 * 10**9  # 01:30, 02:30, 03:30 on 1970-01-01
    >>> (deployed_instants(t, 24 * hour) // hour).tolist()  # at midnight
    [0, 0, 0]
    >>> (deployed_instants(t, 24 * hour, offset=2 * hour) // hour).tolist()  # at 02:00: before it, the day before's
    [-22, 2, 2]
    >>> (deployed_instants(t, 24 * hour, offset=2 * hour, delay=hour) // hour).tolist()  # live at 03:00
    [-22, -22, 2]
    """
    return ((timestamps - offset - delay) // every) * every + offset


def _signal_set(signals: SignalSet | Sequence[SignalProvider | str] | None) -> SignalSet:
    return signals if isinstance(signals, SignalSet) else SignalSet(signals)


@no_hugepage_stalls()  # a backfill fills hundreds of fresh large arrays once each (see baselines/_pages.py)
def backfill(messages: Messages, *, mode: Literal["fresh", "as_deployed"] = "fresh",
             refresh_every: str | _dt.timedelta = "1D", refresh_offset: str | _dt.timedelta = "0s",
             publish_delay: str | _dt.timedelta = "0s", level: Literal["edge", "message"] = "edge",
             config: BaselineConfig | Mapping | None = None,
             signals: SignalSet | Sequence[SignalProvider | str] | None = None,
             prior_every: str | _dt.timedelta | None = None) -> pd.DataFrame:
    """Signals for every message of a history, each from the mail strictly before it: leak-free training data.

    Equals scoring each message with :class:`SignalSet` against the snapshot
    :func:`commgraph.baselines.build_baselines` builds over the same
    ``messages`` as of an instant of the message's own: its timestamp
    (``fresh``) or the last refresh boundary at or before it (``as_deployed``).
    So a signal never counts the message itself, mail at the same instant or
    later, or a label not yet known (``labeled_at``) then. Counts are computed
    vectorised from the whole history at once (sorted by key and time,
    cumulative sums, binary searches; decay exact), not snapshot by snapshot.

    Parameters
    ----------
    messages : Messages
        Validated messages (:func:`commgraph.graph.validate`) of any tenants, in
        any order: both the history and the messages scored. Tenants never mix,
        except through the pooled prior of tenants too new to fit their own, as
        in a build.
    mode : {"fresh", "as_deployed"}, default "fresh"
        Value each message as of its own timestamp, or as of the last refresh
        boundary (``refresh_offset`` plus multiples of ``refresh_every`` since
        the Unix epoch, UTC) whose snapshot served at its time, as an engine
        refreshed on that schedule saw it (see :func:`deployed_instants`).
    refresh_every : timedelta or str, default "1D"
        The refresh schedule of ``as_deployed``.
    refresh_offset : timedelta or str, default "0s"
        ``as_deployed``: when in each period the refresh runs ("2h": daily at
        02:00 UTC with the default ``refresh_every``); less than ``refresh_every``.
    publish_delay : timedelta or str, default "0s"
        ``as_deployed``: how long after its instant a refresh's snapshot starts
        serving (the job's run time): mail in between was scored with the
        snapshot before.
    level : {"edge", "message"}, default "edge"
        One row per (message, recipient) or per message, as :meth:`SignalSet.compute`.
    config : BaselineConfig or mapping, optional
        The baselines' configuration (default ``BaselineConfig()``); privacy mode
        is not supported (backfill computes from the raw history itself).
    signals : SignalSet or list of providers or names, optional
        Default: the built-in set. Providers of other classes than the built-in
        ones are computed against snapshots built per distinct instant (exact,
        but one build per instant).
    prior_every : timedelta or str, optional
        ``fresh`` only. The smoothed likelihoods' empirical-Bayes prior is a
        tenant-wide fit; by default it is refitted as of every message's
        instant where the tenant's labelled counts changed (exact, one fit per
        such instant, about a millisecond each: minutes over a long history, and a
        warning past 50,000 instants). With a duration ("1D" suits any history),
        it is fitted as of the last multiple of it at or before each message
        (leak-free); every other count stays exact to the instant.

    Returns
    -------
    pandas.DataFrame
        The layout of :meth:`SignalSet.compute`: ``tenant_id``, ``message_id``,
        (``recipient``), then the signals.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-02T09:00Z"],
    ...     "sender": "ann@vendor.com", "recipients": ["cy@acme.com", "cy@acme.com", "di@acme.com"]}),
    ...     tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> backfill(m)[["message_id", "recipient", "sender_messages_7d", "pair_is_first_contact"]]
      message_id    recipient  sender_messages_7d  pair_is_first_contact
    0          1  cy@acme.com                   0                      1
    1          2  cy@acme.com                   1                      0
    2          3  di@acme.com                   1                      1
    >>> backfill(m, mode="as_deployed")["sender_messages_7d"].tolist()  # refreshed at midnight: yesterday's mail
    [0, 1, 1]
    """
    if not isinstance(messages, Messages):
        raise ConfigError(f"The 'messages' parameter of backfill must be validated Messages. Got "
                          f"{type(messages).__name__} instead; call commgraph.graph.validate(frame, tenants=...) "
                          "first.")
    if mode not in MODES:
        raise ConfigError(f"The 'mode' parameter of backfill must be one of {', '.join(map(repr, MODES))}. "
                          f"Got {mode!r} instead.")
    if level not in LEVELS:
        raise ConfigError(f"The 'level' parameter of backfill must be one of {', '.join(map(repr, LEVELS))}. "
                          f"Got {level!r} instead.")
    every = _duration(refresh_every, "refresh_every")
    offset, delay = _duration(refresh_offset, "refresh_offset", zero=True), _duration(publish_delay, "publish_delay",
                                                                                       zero=True)
    if offset >= every:
        raise ConfigError(f"The 'refresh_offset' parameter of backfill must be shorter than refresh_every "
                          f"({pd.Timedelta(every)}). Got {refresh_offset!r} instead.")
    if (offset or delay) and mode != "as_deployed":
        raise ConfigError("The 'refresh_offset' and 'publish_delay' parameters of backfill describe the refreshes "
                          f"of mode='as_deployed'. Got mode={mode!r}.")
    prior_grid = None
    if prior_every is not None:
        if mode != "fresh":
            raise ConfigError("The 'prior_every' parameter of backfill applies to mode='fresh' only (as deployed, "
                              f"priors are those of each refresh). Got prior_every={prior_every!r} with mode={mode!r}.")
        prior_grid = _duration(prior_every, "prior_every")
    config = _config(config, "backfill")
    if config.privacy:
        raise ConfigError("backfill does not support privacy mode: it computes each message's signals from the "
                          "raw history it is given (addresses and display names in the clear), which privacy mode "
                          "exists to keep out of reach; backfill a tenant's mail without privacy mode where raw "
                          "history may be read, or score it against published privacy-mode snapshots with "
                          "Scorer(..., secrets=...)")
    signal_set = _signal_set(signals)
    batch = SignalBatch.from_messages(messages)
    columns = _columns(messages)
    # The tenants' sub-batches share the batch's sender domains: each is looked up once, not once per tenant.
    columns["sender_domains"], columns["freemail"] = batch.sender_domains, freemail_domain_flags(batch.sender_domains)
    tenants = [_tenant(part, columns, config, mode, (every, offset, delay))
               for part in sorted(batch.by_tenant(), key=lambda p: p[0])]
    _add_priors(tenants, signal_set, config, prior_grid)
    size = batch.n_edges if level == "edge" else batch.n_messages
    dtypes = {s.name: (s.dtype if level == "edge" else s.message_dtype) for s in signal_set.specs}
    out = signal_set.empty_columns(size, dtypes)  # filled in place: the frame takes them without a copy
    custom = [p for p in signal_set.providers if type(p) not in BUILTIN]
    by_snapshot = _by_snapshots(custom, messages, tenants, config) if custom else {}
    # Largest tenant last (popped from the end): each tenant's tables (and the timelines and outcomes they
    # cache) are dropped once its rows are written, so the largest tables are built when every other
    # tenant's are gone, and the process's peak memory (all of it first touched) is lower. Each tenant
    # writes its own rows: the order changes nothing else.
    tenants.sort(key=lambda t: len(t.eds) + len(t.msgs), reverse=True)
    while tenants:
        _write(tenants.pop(), signal_set, by_snapshot, out, dtypes, level)  # no reference kept past its call
    return signal_set.frame(messages, out, level=level)


def _write(t: TenantAsOf, signal_set: SignalSet, by_snapshot: dict[tuple[int, str], dict[str, np.ndarray]],
           out: Mapping[str, np.ndarray], dtypes: Mapping[str, Any], level: str) -> None:
    """One tenant's signals written into its rows of the output columns."""
    rows = _increasing_as_slice(t.eds if level == "edge" else t.msgs)  # (by_tenant's positions)
    n, edge_message = t.batch.n_messages, t.batch.edge_message
    # Edges point at their messages (checked once here: the spread below reads values at them unchecked).
    spreads = isinstance(rows, slice) and edge_message.dtype == np.int64 and (
        not len(edge_message) or int(edge_message.min()) >= 0 and int(edge_message.max()) < n)
    for provider in signal_set.providers:
        computed = by_snapshot.get((id(provider), t.tenant_id))
        values = computed if computed is not None else BUILTIN[type(provider)](t)
        broadcast = provider.level == "message" and level == "edge" and spreads
        for spec in provider.signals:
            value = values[spec.name]
            castable = (value.dtype, np.dtype(dtypes[spec.name])) in _CASTS
            if broadcast and castable and value.shape == (n,):
                # A message's value gathered to its edges straight into the output rows (cast on the way): no
                # temporary column to allocate (and first touch) and copy.
                _spread(value, edge_message, out[spec.name][rows])
            elif provider.level == level and castable and value.ndim == 1:
                out[spec.name][rows] = value  # (cast as astype does: no temporary in the output's dtype)
            else:
                out[spec.name][rows] = to_level(value, provider.level, spec, t.batch, level, dtypes[spec.name])


#: (value dtype, output dtype) pairs a signal's values are written in as they come (the built-in backfill
#: functions leave counts in int64, flags bool, rates float64 where the output is narrower): the output dtypes
#: themselves, and the casts numpy's ``astype`` makes (wrapping integers, rounding floats to nearest, 0/1).
_CASTS = frozenset([(np.dtype(d), np.dtype(d)) for d in (np.int8, np.int32, np.float32, np.float64)] + [
    (np.dtype(a), np.dtype(b)) for a, b in ((np.int64, np.int32), (np.float64, np.float32), (np.bool_, np.int8))])


def _spread(values: np.ndarray, message: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = values[message[i]]`` for every edge ``i``, as ``np.take(values, message).astype(out.dtype)``.

    A compiled loop: ``np.take(..., mode="clip")`` clips every position, about twice the time of this pass
    over a million edges (27 message signals per edge in a backfill), and a cast to the output's dtype is
    another pass and temporary. ``message`` must hold positions in ``values`` (a batch's ``edge_message``
    over its messages' values): the kernel checks no bounds. The dtypes are a pair of :data:`_CASTS`.
    """
    if len(message) != len(out) or (values.dtype, out.dtype) not in _CASTS or values.ndim != 1:
        raise ValueError(f"_spread: {len(message)} positions for {len(out)} rows, {values.dtype} into {out.dtype}")
    _spread_kernel(values, message, out)


@_compiled
def _spread_kernel(values, message, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        out[i] = values[message[i]]


@warmed_by
def _warm() -> None:
    """The spread of each pair of :data:`_CASTS`, from contiguous values and from a strided view (a column of
    the tables' 2-D sums) (for ``warm_up``)."""
    for source, target in _CASTS:
        _spread(np.zeros(1, source), np.zeros(1, np.int64), np.empty(1, target))
        _spread(np.zeros(4, source)[::2], np.zeros(2, np.int64), np.empty(2, target))


def _columns(messages: Messages) -> dict[str, np.ndarray]:
    """What the history needs beyond the signal batch, for every message and edge, read once."""
    frame = messages.frame
    n = len(frame)
    domains = _column(messages.edges(message_columns=()), "recipient_domain")
    return {"label": _codes(frame["label"]) if "label" in frame else np.full(n, -1, np.int8),
            "labeled_at": _ns(frame["labeled_at"]) if "labeled_at" in frame else np.full(n, np.iinfo(np.int64).min),
            "domain_names": np.asarray(domains.categories, dtype=object),
            "domain_keys": string_keys(domains.categories), "domain_codes": np.asarray(domains.codes)}


def _tenant(part: tuple[str, np.ndarray, np.ndarray, SignalBatch], columns: dict[str, np.ndarray],
            config: BaselineConfig, mode: str, schedule: tuple[int, int, int]) -> TenantAsOf:
    """One tenant's :class:`TenantAsOf` (``columns``: from :func:`_columns`)."""
    tenant_id, msgs, eds, sub = part
    # A tenant of tenant-ordered input reads its runs of the columns as views, not copies (by_tenant's positions
    # increase: a run is told by its span).
    kept = sub.message_rows
    rows = _increasing_as_slice(msgs) if kept is None or kept is msgs else _as_slice(kept)
    label, labeled_at = columns["label"][rows], columns["labeled_at"][rows]
    codes = columns["domain_codes"][_increasing_as_slice(eds)]
    # (``take`` gathers by the categorical's int16/int32 codes as they are: indexing converts them to intp first,
    # twice the time over millions of edges)
    recipient_domain_key = np.take(columns["domain_keys"], codes)
    categories = columns["domain_names"]
    tables = AsOfTables(
        {"timestamp": sub.timestamp, "sender_key": sub.sender_key, "sender_domain_key": sub.sender_domain_key,
         "display_name_key": sub.display_name_key, "direction": sub.direction, "label": label,
         "labeled_at": labeled_at, "spf": sub.spf, "dkim": sub.dkim, "dmarc": sub.dmarc},
        {"edge_message": sub.edge_message, "recipient_key": sub.recipient_key,
         "recipient_domain_key": recipient_domain_key}, config)
    names = np.full(tables.n_dom, None, dtype=object)
    # Each domain's name read from one row of it (the last, as a scatter keeps): an integer scatter per row,
    # then an object gather per domain instead of per row.
    for domain, name_code, name_of in ((tables.rd, codes, categories), (
            tables.d, sub.sender_domain_code, np.asarray(sub.sender_domains, dtype=object))):
        row = _last_rows(domain, tables.n_dom)
        has = row >= 0
        names[has] = name_of[name_code[row[has]]]
    instants = sub.timestamp if mode == "fresh" else deployed_instants(sub.timestamp, *schedule)
    # The batch's freemail flags, when the caller looked them up (backfill does) and the sub-batch kept its domains.
    shared = columns.get("sender_domains")
    freemail = columns["freemail"] if shared is not None and sub.sender_domains is shared else None
    return TenantAsOf(tenant_id=tenant_id, batch=sub, tables=tables, instants=instants, config=config,
                      domain_names=names, msgs=msgs, eds=eds, freemail=freemail)


def _last_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """Each of ``n`` codes' last position in ``codes`` (-1: absent), as ``row[codes] = np.arange(len(codes))``
    leaves ``row = np.full(n, -1)``.

    A compiled pass (:func:`_last_rows_kernel`) for contiguous int64 codes in ``[0, n)`` (a tenant's dense
    domain codes: hundreds of thousands of edges over a few thousand domains), numpy's scatter and its
    ``arange`` otherwise (a negative code counted from the end, one past ``n`` raising IndexError).

    Examples
    --------
    >>> _last_rows(np.array([2, 0, 2]), 4).tolist(), _last_rows(np.array([-1, 0]), 2).tolist()
    ([1, -1, 2, -1], [1, 0])
    """
    row = np.full(n, -1, np.int64)
    if not (isinstance(codes, np.ndarray) and codes.dtype == np.int64 and codes.ndim == 1
            and codes.flags.c_contiguous and _last_rows_kernel(codes, row)):
        # (what the kernel wrote before a code out of range, the scatter writes again: those codes are here too)
        row[codes] = np.arange(len(codes))
    return row


@_compiled
def _last_rows_kernel(codes, row):  # pragma: no cover - compiled
    # numpy's scatter, in order (a later position overwrites an earlier one); stops at a code out of range,
    # which the caller's numpy scatter then takes as numpy does.
    n = len(row)
    for i in range(len(codes)):
        code = codes[i]
        if code < 0 or code >= n:
            return False
        row[code] = i
    return True


@warmed_by
def _warm_last_rows() -> None:
    """The compiled pass over writable and read-only codes (for ``warm_up``)."""
    for writable in (True, False):
        codes = np.zeros(1, np.int64)
        codes.flags.writeable = writable
        _last_rows_kernel(codes, np.empty(1, np.int64))


# Distinct message times past which exact priors (a fit per time) are worth a warning: about a minute of fits.
_EXACT_PRIORS_WARN = 50_000


def _add_priors(tenants: list[TenantAsOf], signal_set: SignalSet, config: BaselineConfig, grid: int | None) -> None:
    """Each message's prior of every entity kind the signals smooth, as its snapshot would have fitted it."""
    kinds = sorted({k for p in signal_set.providers for k in PRIOR_KINDS.get(type(p), ())})
    requests = [t.instants if grid is None else (t.instants // grid) * grid for t in tenants]
    if grid is None and kinds and sum(len(r) for r in requests) > _EXACT_PRIORS_WARN:
        # (no fit without enough explicit labels in the tenants together: each borrows the configured prior then)
        labels = sum(int(np.sum(t.tables.outcomes(kinds[0]).explicit)) for t in tenants)
        instants = sum(len(np.unique(r)) for r in requests) if labels >= config.min_prior_labels else 0
        if instants > _EXACT_PRIORS_WARN:
            warnings.warn(
                f"backfill fits the empirical-Bayes priors exactly as of each of {instants:,} distinct message "
                f"times ({len(kinds)} entity kinds): about a millisecond each, minutes for this history. "
                "prior_every='1D' fits them once a day instead, every count staying exact to the message",
                UserWarning, stacklevel=caller_stacklevel())
    # A fit per distinct instant, each message pointing at its own: no two float64 arrays per message and kind
    # to write (48 MB of fresh memory over a million messages and three kinds).
    distinct = [_distinct(r) for r in requests]
    fitted = priors_at_kinds({kind: [t.tables.outcomes(kind) for t in tenants] for kind in kinds},
                             [instants for instants, _ in distinct], config)
    for t, (_, prior_of) in zip(tenants, distinct):
        t.prior_of = prior_of
    for kind in kinds:
        for t, prior in zip(tenants, fitted[kind]):
            t.priors[kind] = prior


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``values`` (sorted) and each value's position among them.

    A tenant's messages come in time order: the distinct instants are then the starts of runs (no sort).

    Examples
    --------
    >>> [a.tolist() for a in _distinct(np.array([3, 3, 5, 9])) + _distinct(np.array([5, 3, 5]))]
    [[3, 5, 9], [0, 0, 1, 2], [3, 5], [1, 0, 1]]
    """
    values = np.asarray(values, dtype=np.int64)
    if len(values) > 1 and not (values[1:] >= values[:-1]).all():
        distinct, inverse = np.unique(values, return_inverse=True)
        return distinct, inverse.astype(np.int64, copy=False)
    new = np.empty(len(values), bool)
    new[:1] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    position = np.cumsum(new, dtype=np.int64)
    position -= 1
    return values[new], position


def _by_snapshots(providers: list[SignalProvider], messages: Messages, tenants: list[TenantAsOf],
                  config: BaselineConfig) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """Providers without a vectorised backfill, against a snapshot built as of each distinct instant."""
    out: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for t in tenants:
        for p in providers:
            size = t.batch.n_messages if p.level == "message" else t.batch.n_edges
            out[(id(p), t.tenant_id)] = {s.name: np.zeros(size, dtype=s.dtype) for s in p.signals}
    instants = np.unique(np.concatenate([t.instants for t in tenants]))
    for instant in instants.tolist():
        snapshots = build_baselines(messages, as_of=pd.Timestamp(instant, tz="UTC"), config=config)
        for t in tenants:
            here = np.flatnonzero(t.instants == instant)
            if not len(here):
                continue
            sub = t.batch.take(here, tenant=t.tenant_id)
            edges = np.flatnonzero(np.isin(t.batch.edge_message, here))
            view = view_of(snapshots[t.tenant_id])
            for p in providers:
                values = checked_output(p, p.compute(sub, view), sub)
                for s in p.signals:
                    out[(id(p), t.tenant_id)][s.name][here if p.level == "message" else edges] = values[s.name]
    return out
