"""The engine-facing scorer: current snapshots per tenant, batch and single-message scoring, hot reload."""

from __future__ import annotations

import dataclasses
import math
import operator
import threading
import warnings
from array import array
from dataclasses import dataclass
import re
from typing import Any, Iterable, Literal, Mapping

import numpy as np
import pandas as pd

from commgraph.baselines import Snapshot, SnapshotStore, load_secrets
from commgraph.baselines._build import _timestamp
from commgraph.graph import CommGraphError, ConfigError, Messages, ReasonCode, SchemaError, TenantConfig, validate
from commgraph.graph._addresses import _normalise_domain
from commgraph.graph._messages import REJECT_COLUMNS
from commgraph.graph._schema import TYPED_RECIPIENT_COLUMNS
from commgraph.graph._tenants import may_be_own_domain
from commgraph.graph._validate import apply_column_mapping, id_text

from ._batch import SignalBatch
from ._overlay import Overlay
from ._privacy import TenantKeys, batch_keys
from ._scalar import _key, declared_columns, parse_one
from ._provider import checked_one, is_shipped, shipped_providers
from ._signal_set import DEFAULT_PROVIDERS, SignalSet, global_priors, stack
from ._view import SnapshotView

__all__ = ["ReloadWarning", "Scorer"]


class ReloadWarning(UserWarning):
    """A reload that could not do everything: a tenant kept its old snapshot, or was served an older one.

    Examples
    --------
    >>> issubclass(ReloadWarning, UserWarning)
    True
    """


_PSL: Any = None


def _registrable_one(domain: str) -> str:
    """One registrable domain, as :func:`commgraph.graph.registrable_domains` maps each value
    (the Public Suffix List shipped with ``publicsuffixlist``; a public suffix maps to itself)."""
    global _PSL
    if _PSL is None:
        from publicsuffixlist import PublicSuffixList

        _PSL = PublicSuffixList()
    return _PSL.privatesuffix(domain) or domain


@dataclass(frozen=True)
class _Loaded:
    """Everything one scoring call reads, swapped as one reference on reload."""

    views: dict[str, SnapshotView]
    versions: dict[str, int | None]
    global_priors: dict[str, Any] | None
    keys: dict[str, TenantKeys]  # the privacy-mode tenants' keying (empty when none is)
    #: Tenants not served whose published snapshot cannot be loaded, with why: never cold-started (every
    #: sender of a tenant with baselines would look new), refused until a reload loads them.
    unloadable: dict[str, str]
    #: Tenants of the store this scorer was not made to serve (``tenants=`` of :meth:`Scorer.from_store`): they
    #: have baselines, so their mail is refused, never cold-started.
    elsewhere: frozenset[str] = frozenset()

    @classmethod
    def of(cls, views: dict[str, SnapshotView], versions: dict[str, int | None],
           unloadable: Mapping[str, str] | None = None, elsewhere: Iterable[str] = ()) -> "_Loaded":
        return cls(views, versions, global_priors(views.values()), batch_keys(views),
                   {t: r for t, r in (unloadable or {}).items() if t not in views},
                   frozenset(t for t in elsewhere if t not in views))


def _unserved(loaded: _Loaded, tenant: str, cold: bool) -> CommGraphError | None:
    """Why a tenant the scorer does not serve cannot be scored (None: it may be, cold-started)."""
    if tenant in loaded.elsewhere:  # (a shard of the store: the tenant has baselines, served by another scorer)
        return CommGraphError(f"tenant {tenant!r} has a published snapshot in the store, but this scorer serves only "
                              f"the tenants it was made for ({sorted(loaded.views)[:5]}); its mail is not scored as "
                              "a tenant without one (every sender would look new). Score it with a scorer that "
                              "loads it: add it to tenants= of Scorer.from_store (commgraph score --tenants)")
    if tenant in loaded.unloadable:  # (cold start is for tenants without baselines, not with unreadable ones)
        return CommGraphError(f"tenant {tenant!r} has a published snapshot that cannot be loaded "
                              f"({loaded.unloadable[tenant]}); its mail is not scored as a tenant without one "
                              "(every sender would look new). Fix what the error names (a privacy-mode tenant: "
                              "give its secret, reload(secrets=...)), then reload")
    if not cold:
        return CommGraphError(f"no snapshot for tenant {tenant!r}; this scorer serves {sorted(loaded.views)[:5]}. "
                              "Publish its baselines and reload, or pass cold_start=True (commgraph score "
                              "--cold-start) to score it with the global prior")
    return None


def _elsewhere(store: SnapshotStore, tenants: list[str] | None) -> frozenset[str]:
    """The store's tenants a scorer made for ``tenants`` (None: all of them) does not serve."""
    return frozenset() if tenants is None else frozenset(store.tenants()) - frozenset(tenants)


def _prepare(view: SnapshotView, *, lookalikes: bool = True, own: tuple[str, ...] = ()) -> SnapshotView:
    """Build a view's derived structures before it serves (so no request pays for them).

    ``lookalikes=False`` leaves sender domains to be checked as lookups meet
    them: a view of the live overlay lives until the next observe, in which
    far fewer domains are looked up than the snapshot holds. ``own``: the
    tenant's configured own domains, which the look-alike check compares with
    (:meth:`SnapshotView.comparison`).
    """
    if view.snapshot is not None:
        view.builtin_one()
        view.name_pairs()
        view.written_to()
        view.known_domains()
        view.own_domain_keys()
        view.tenant_hour_profile()
        for table in ("sender", "sender_domain", "pair", "recipient", "display_name"):
            view.index(table)
        if lookalikes:
            _seed_lookalikes(view, own)
    return view


def _seed_lookalikes(view: SnapshotView, own: tuple[str, ...] = ()) -> None:
    """Check every sender domain of the snapshot for look-alikes before serving, in one vectorised call.

    A domain seen for the first time otherwise costs a scalar ``nearest_one`` (about 20 us) inside
    the request; sender domains of the snapshot are where new addresses mostly come from. The
    values are those the batch path caches (:func:`nearest_known`), so both paths stay equal.
    """
    if not view.has_column("sender_domain", "sender_domain"):
        return
    from ._lookalike import nearest_known

    (known, skeletons, _), cache = view.comparison(own)
    names = view.snapshot.arrow("sender_domain").column("sender_domain").to_pylist()
    missing = [d for d in names if d and d not in cache.distance]
    if missing:
        dist, near = nearest_known(missing, known, skeletons)
        cache.seed(missing, dist.tolist(), near.tolist())


def _keyings(secrets: Mapping[str, bytes] | None, caller: str) -> dict[str, TenantKeys]:
    """Each tenant's keying from its secret, checked as the refresh job checks secrets (held only inside
    :class:`TenantKeys`, which never shows it)."""
    if secrets is None:
        return {}
    if not isinstance(secrets, Mapping):
        raise ConfigError(f"The 'secrets' parameter of {caller} must be a mapping of tenant ids to bytes (read a "
                          f"secrets file with commgraph.baselines.load_secrets). Got {type(secrets).__name__} instead.")
    return {tenant: TenantKeys(tenant, secret) for tenant, secret in load_secrets(secrets).items()}


def _hold_state(view: SnapshotView, tenant: str) -> bool:
    """Map the refresh state of a served snapshot the overlay will refresh, while its version is in the store.

    Read when a refresh first needs it, the state of a version retention has pruned since it was loaded
    (a job publishing more versions than the store retains before the engine reloads) could not be read,
    and every lookup of the tenant would fail; mapped, its files outlive their removal. False (and a
    :class:`ReloadWarning`) when it is already gone: the tenant is then served its snapshot alone.
    """
    if view.snapshot is None:
        return True
    try:
        view.snapshot.hold_state()
    except CommGraphError as exc:
        warnings.warn(ReloadWarning(f"tenant {tenant!r} is served without the mail observed since its snapshot: "
                                    f"{exc}. Reload the scorer (Scorer.reload) to serve the current version; the "
                                    "observed mail is kept"), stacklevel=3)
        return False
    return True


#: Reject reasons of rows that are copies of what was read (folder copies and replays of a message, a recipient's
#: row repeated): the message contract keeps the first copy, so they are no error, in strict mode either.
_COPY_REASONS = frozenset({ReasonCode.DUPLICATE_MESSAGE_ID.value, ReasonCode.DUPLICATE_EDGE.value})


def _validated(batch: pd.DataFrame, configs: list[TenantConfig], *, strict: bool, **options: Any) -> Messages:
    """:func:`validate` of a raw batch with ``configs`` where, in strict mode too, copies are no error.

    Strict validation refuses a batch holding two rows with one message id, though its own advice for them is
    "nothing to do if these are copies" and lenient validation keeps the first: scoring would fail a whole batch
    for a replayed or twice-filed message (or one an attacker sends twice). So the batch is validated leniently,
    and strictly again only when something else is wrong, for the error that lists every problem but the copies.
    """
    messages = validate(batch, tenants=configs, strict=False, **options)
    if not strict or not len(messages.rejects):
        return messages
    if set(messages.rejects["reject_reason"].astype(str)) <= _COPY_REASONS:
        return messages
    try:  # (strict validation refuses what lenient validation rejected: this raises)
        return validate(batch, tenants=configs, **options)
    except SchemaError as error:
        problems = [p for p in error.problems if ReasonCode(p.reason).value not in _COPY_REASONS]
        raise SchemaError(problems or error.problems) from None


def _message_keys(batch: pd.DataFrame) -> pd.DataFrame:
    """Each row's tenant and message id as validation reads them ('9 ' is message '9'), positionally indexed."""
    return pd.DataFrame({c: id_text(batch[c].reset_index(drop=True))[0] for c in ("tenant_id", "message_id")})


def _input_rows(batch: pd.DataFrame, set_aside: pd.DataFrame) -> pd.DataFrame:
    """The reject columns of messages the overlay set aside, then each input row of those messages as given."""
    meta = set_aside[list(REJECT_COLUMNS)]
    # Columns named as reject columns are a previous run's (rejects resubmitted); validation drops them too.
    batch = batch.drop(columns=[c for c in batch.columns if c in REJECT_COLUMNS])
    if "recipient" not in batch.columns:
        # A row per message: each set-aside copy is its own row (copies of one message, a replay or its verdict,
        # are validated apart, and another copy may have been kept and counted).
        rows = batch.index.get_indexer(set_aside.index)
        return pd.concat([meta.assign(reject_row=pd.array(rows, dtype="Int64")), batch.iloc[rows]], axis=1)
    # Rows of one message are those with its tenant and id as validation reads them ('9 ' is message '9').
    keys = _message_keys(batch)
    first = keys.iloc[batch.index.get_indexer(set_aside.index)]
    owner = pd.MultiIndex.from_frame(first).get_indexer(pd.MultiIndex.from_frame(keys))
    rows = np.flatnonzero(owner >= 0)
    out = meta.iloc[owner[rows]].set_axis(batch.index[rows]).assign(reject_row=pd.array(rows, dtype="Int64"))
    return pd.concat([out, batch.iloc[rows]], axis=1)


def _mean_one(values: list) -> Any:
    return sum(values) / len(values)


def _extreme_one(pick: Any) -> Any:
    """A message's value from its recipients' for min/max/any, chosen once in the plan instead of per call.

    Values ignore nan, like numpy's ``fmin``/``fmax`` in the batch path (a first contact's nan
    does not hide a known gap); all nan gives nan. Every value is tested, whatever its type: a
    test of the first value's type missed numpy's float32 (no ``float``), so a first recipient's
    nan reached ``min``/``max``, whose answer then depended on the recipients' order.
    """
    def aggregate(values: list) -> Any:
        known = [v for v in values if v == v]  # nan-ignoring, like numpy's fmin/fmax (an int equals itself)
        return pick(known) if known else math.nan
    return aggregate


def _values_of(names: list[str]) -> Any:
    """A function giving a dict's values under ``names`` as a tuple (one C call per message)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda d: tuple(d[n] for n in names)


_AGGREGATE_ONE = {"mean": _mean_one, "min": _extreme_one(min), "max": _extreme_one(max), "any": _extreme_one(max)}


@dataclass(frozen=True)
class _OnePlan:
    """How :meth:`Scorer.score_one` runs a signal set, decided once.

    Built-in providers (exactly the shipped classes, whatever the registry
    holds) read their columns from the one-pass path (:class:`BuiltinOne`,
    which computes every built-in column at once: the set keeps its own),
    unchecked; any other provider, a subclass of a built-in included, runs its
    own ``compute_one``, held to what it declares (:func:`checked_one`, as the
    batch path holds ``compute``), given the message columns it declares
    (``message.columns``), its per-recipient lists aggregated by each column's
    rule and its float columns rounded to float32.
    """

    default: bool
    builtin_names: tuple[str, ...]
    steps: tuple[tuple[Any, Any], ...]
    floats: tuple[str, ...]
    floats_of: Any
    message_columns: tuple[str, ...] | None  # those other providers declare; None without other providers

    @classmethod
    def of(cls, signal_set: SignalSet) -> "_OnePlan":
        shipped = shipped_providers()
        steps, builtin_names, floats, columns = [], [], [], []
        for p in signal_set.providers:
            if is_shipped(p):
                steps.append((None, tuple(p.names)))
                builtin_names += p.names
                continue
            steps.append((p, None if p.level == "message" else
                          [(s.name, _AGGREGATE_ONE[s.aggregate]) for s in p.signals]))
            floats += [s.name for s in p.signals if s.message_dtype == "float32"]
            columns += p.message_columns
        default = [type(p) for p in signal_set.providers] == [shipped[name] for name in DEFAULT_PROVIDERS]
        users = any(p is not None for p, _ in steps)
        return cls(default, tuple(builtin_names), tuple(steps), tuple(floats), _values_of(floats),
                   tuple(dict.fromkeys(columns)) if users else None)


def _derived_config(tenant: str, view: SnapshotView) -> TenantConfig | None:
    """A tenant's own domains read off its snapshot (:meth:`SnapshotView.own_domains`), if it names them."""
    own = view.own_domains()
    # (derived from the snapshot: not a user's setting, so not checked as one)
    return TenantConfig._derived(tenant, own) if own else None


_DOMAIN_IN_TEXT = re.compile(r"@\[?([^\s<>;,\"'()\[\]@]+)")
#: The raw columns that may hold addresses (a batch in the message contract).
_ADDRESS_COLUMNS = ("sender", "recipients", "recipient", *TYPED_RECIPIENT_COLUMNS)


def _batch_domains(batch: pd.DataFrame) -> list[str]:
    """Every domain written after an ``@`` in a raw batch's address columns (the rows of one tenant),
    normalised as validation normalises a domain: the candidates a privacy-mode tenant's own domain keys are
    matched against.

    Over-inclusive on purpose (a display name holding an address adds its domain): a candidate counts only
    when its key, made with the tenant's secret, is one of the tenant's own domains.
    """
    found: set[str] = set()
    for column in _ADDRESS_COLUMNS:
        if column in batch:
            values = batch[column].dropna()
            text = values.map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
            for domains in text.str.findall(_DOMAIN_IN_TEXT):
                found.update(domains)
    normalised = (_normalise_domain(d.rstrip("."))[0] for d in sorted(found))
    return sorted({d for d in normalised if d})


def _by_tenant(batch: pd.DataFrame, tenants: Iterable[str]) -> dict[str, pd.DataFrame]:
    """The rows of each of ``tenants`` in a raw batch (tenant ids read as validation reads them)."""
    ids = id_text(batch["tenant_id"])[0].reset_index(drop=True)
    rows = ids[ids.isin(list(tenants))]
    return {str(t): batch.iloc[r] for t, r in rows.groupby(rows, sort=False).indices.items()}


class _Call:
    """What one scoring call reads: the snapshots served when it began, and each tenant's view (its observed
    mail folded in) fixed at its first use, so that validation and lookups read one state of a tenant even
    when a reload or an observe lands during the call."""

    __slots__ = ("loaded", "_scorer", "_views")

    def __init__(self, scorer: "Scorer"):
        self.loaded = scorer._loaded  # (one read: a reload swaps the reference)
        self._scorer = scorer
        self._views: dict[str, SnapshotView | None] = {}

    def view(self, tenant: str) -> SnapshotView | None:
        """The view the call reads for a tenant (None: not served)."""
        try:
            return self._views[tenant]
        except KeyError:
            loaded = self.loaded
            found = self._views[tenant] = (self._scorer._view(loaded, tenant) if tenant in loaded.views else None)
            return found

    def is_own(self, tenant: str, domain: str) -> bool:
        return self._scorer._is_own(tenant, domain, self)

    def own_known(self, tenant: str) -> bool:
        return self._scorer._own_domains_known(tenant, self)


def _with_own(config: TenantConfig | None, derived: TenantConfig) -> TenantConfig:
    """A tenant's configuration (None: none) with the own domains read off its snapshot (``derived``)."""
    if config is None:
        return derived
    merged = dataclasses.replace(config, own_domains=derived.own_domains)
    if derived._knows_own and not merged.own_domains:  # (known by key, none of them in the batch)
        object.__setattr__(merged, "_own_known", True)
    return merged


class Scorer:
    """Scores mail against the current baseline snapshot of each tenant.

    Parameters
    ----------
    snapshots : mapping of str to Snapshot
        The snapshot of each tenant served.
    signal_set : SignalSet, optional
        Default: the built-in set.
    tenant_configs : list of TenantConfig or mappings, optional
        Own domains per tenant, used to validate raw frames and to derive the
        direction of single messages; default: those each snapshot shows
        (:meth:`SnapshotView.own_domains`: the domains that sent as the tenant
        more often than they wrote to it, consumer providers and public
        suffixes never; for an inbound-only history, the domains its mail was
        delivered to), never inferred from the mail being scored, which an
        attacker writes. The configured own domains are also what the
        look-alike check compares with besides each snapshot's list (on every
        path: a history that never shows one sending, an inbound-only feed,
        still has it checked).
    cold_start : bool, default False
        Score tenants without a snapshot with the global prior instead of raising.
    secrets : mapping of str to bytes, optional
        The secret of each tenant served in privacy mode
        (``BaselineConfig(privacy=True)``), as the refresh job used it (bytes or
        hex text, or a secrets file through
        :func:`commgraph.baselines.load_secrets`). Required for each such
        tenant, checked against its snapshot's ``secret_check``, and refused
        for a tenant not in privacy mode: a missing or wrong secret raises
        :class:`ConfigError` naming the tenant (:meth:`reload` keeps that
        tenant's current snapshot instead). The secret of a tenant not served
        yet is kept for the reload that brings it. Never shown in a repr or
        message.

    Notes
    -----
    **Privacy mode.** A privacy tenant's mail is keyed with its own secret
    (keyed BLAKE2b, each distinct string once per tenant, memoised within a
    bound) in every path: :meth:`score`, :meth:`score_array`,
    :meth:`score_one`, :meth:`observe` and :func:`explain`. Every signal
    computed from keys (counts, windows, pairs, reciprocity, recipients,
    display names by key, likelihoods, habits, freemail flags, which read the
    message's own domain) equals the value against a snapshot built without
    privacy from the same history. What privacy-mode snapshots cannot give,
    having no stored strings: ``lookalike_domain_distance`` is always the cap
    and ``lookalike_domain_is_close`` always 0 (no known domain names to
    compare with); own domains are keys in the snapshot, so messages without
    ``direction`` take it from ``tenant_configs``, else from the domains of
    the mail whose keys are the tenant's own (inferred from the batch only
    when the history never showed one sending, as for a tenant without own
    domains); :func:`explain` shows no stored addresses or display names.

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> scorer = Scorer({"acme": _example()})
    >>> out = scorer.score_one({"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
    ...                         "sender": "ann@vendor.com", "recipients": ["cy@acme.com", "new@acme.com"]})
    >>> out["sender_messages_7d"], out["pair_is_first_contact"], out["pair_messages"]
    (2, 1, 0)
    >>> frame = pd.DataFrame({"tenant_id": ["acme"], "message_id": ["9"], "timestamp": ["2024-05-04T10:00Z"],
    ...                       "sender": ["ann@vendor.com"], "recipients": ["cy@acme.com; new@acme.com"]})
    >>> scorer.score(frame, level="message")[["sender_messages_7d", "pair_is_first_contact", "pair_messages"]]
       sender_messages_7d  pair_is_first_contact  pair_messages
    0                   2                      1              0
    """

    def __init__(self, snapshots: Mapping[str, Snapshot], *, signal_set: SignalSet | None = None,
                 tenant_configs: Iterable[TenantConfig | Mapping] | None = None, cold_start: bool = False,
                 secrets: Mapping[str, bytes] | None = None, _store: SnapshotStore | None = None,
                 _tenants: list[str] | None = None, _versions: dict[str, int | None] | None = None,
                 _unloadable: Mapping[str, str] | None = None, _elsewhere: Iterable[str] = ()):
        self.signal_set = signal_set if signal_set is not None else SignalSet()
        if not isinstance(self.signal_set, SignalSet):
            raise ConfigError(f"The 'signal_set' parameter of Scorer must be a SignalSet. "
                              f"Got {type(signal_set).__name__} instead.")
        self.cold_start = cold_start
        self.tenant_configs = ({c.tenant_id: c for c in (TenantConfig.from_dict(c) if isinstance(c, Mapping) else c
                                                         for c in tenant_configs)} if tenant_configs else {})
        # Tenants whose configuration names own domains: the others' are read off their snapshots, as for a
        # tenant not configured (validation infers a tenant's configured without any, as one not configured).
        self._own_configured = frozenset(t for t, c in self.tenant_configs.items() if c.own_domains)
        # What the look-alike check compares with besides each snapshot's list: the configured own domains, which
        # an inbound-only history never shows sending (SnapshotView.comparison), on every path of this scorer.
        self._compared_own = {t: self.tenant_configs[t].own_domains for t in self._own_configured}
        self._store = _store
        self._tenants = _tenants
        self._keyings = _keyings(secrets, "Scorer")
        self._reload_lock = threading.Lock()
        self._registrable: dict[str, str] = {}
        # "tenant\0domain" -> own? for configured tenants: string keys, so nothing for the garbage collector
        # to track. A tenant without a configuration memoises on its view (its own domains come from the
        # snapshot, so a reload that brings a new one starts afresh).
        self._own: dict[str, bool] = {}
        self._loaded = self._make(dict(snapshots),
                                  _versions if _versions is not None else {t: None for t in snapshots}, _unloadable,
                                  _elsewhere)
        self._plan = _OnePlan.of(self.signal_set)
        self._overlay = Overlay(self._prepare)
        # Served views whose snapshot's refresh state was pruned before it could be mapped (see _hold_state)
        self._stateless: dict[int, SnapshotView] = {}

    def _prepare(self, view: SnapshotView, *, lookalikes: bool = True) -> SnapshotView:
        """:func:`_prepare` with the tenant's configured own domains (look-alike checks seeded against them)."""
        return _prepare(view, lookalikes=lookalikes, own=self._compared_own.get(view.tenant_id, ()))

    def _make(self, snapshots: Mapping[str, Snapshot], versions: dict[str, int | None],
              unloadable: Mapping[str, str] | None = None, elsewhere: Iterable[str] = ()) -> _Loaded:
        views = {}
        for tenant, snap in snapshots.items():
            if not isinstance(snap, Snapshot):
                raise ConfigError(f"The 'snapshots' parameter of Scorer must map tenant ids to Snapshot objects. "
                                  f"Got {type(snap).__name__} for tenant {tenant!r} instead.")
            snap.check_tenant(tenant)
            views[tenant] = self._prepare(SnapshotView(snap, secret=self._keyings.get(tenant)))
        return _Loaded.of(views, versions, unloadable, elsewhere)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_store(cls, store: SnapshotStore, tenants: Iterable[str] | None = None, *,
                   signal_set: SignalSet | None = None, tenant_configs: Iterable[TenantConfig | Mapping] | None = None,
                   cold_start: bool = False, verify: bool = True,
                   secrets: Mapping[str, bytes] | None = None) -> "Scorer":
        """A scorer over the current published version of each tenant's snapshot (memory-mapped).

        Parameters
        ----------
        store : SnapshotStore
            Its directory must exist (a mistyped path is refused, not served
            as an empty store); an engine started before the first refresh
            job publishes serves an empty store that exists, and ``reload``
            picks the tenants up as they are published.
        tenants : iterable of str, optional
            Tenants to serve; default every tenant in the store.
        verify : bool, default True
            Check checksums when loading.
        secrets : mapping of str to bytes, optional
            The secrets of the tenants in privacy mode (see :class:`Scorer`).

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines import SnapshotStore
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> Scorer.from_store(store)
        Scorer(1 tenant: acme v1; 35 signals)
        """
        if not isinstance(store, SnapshotStore):
            raise ConfigError(f"The 'store' parameter of Scorer.from_store must be a SnapshotStore. "
                              f"Got {type(store).__name__} instead.")
        if not store.path.is_dir():  # a mistyped path is no empty store: it would serve nothing, or cold-start all
            raise ConfigError(f"no snapshot store at {str(store.path)!r}: give the directory the refresh job "
                              "publishes to (commgraph refresh --store)")
        wanted = list(tenants) if tenants is not None else store.tenants()
        if tenants is not None:  # a name the store does not hold: a typo, said as one (commgraph exits 2)
            held = store.tenants()
            unknown = [t for t in wanted if t not in held]
            if unknown:
                raise ConfigError(f"The 'tenants' parameter of Scorer.from_store names tenants the store at "
                                  f"{str(store.path)!r} does not hold: {unknown[:5]}; it holds {held[:10]}"
                                  f"{' ...' if len(held) > 10 else ''}. Give tenants it holds (commgraph score "
                                  "--tenants), or publish their snapshots first")
        versions, snapshots, failures = {}, {}, {}
        for t in wanted:
            try:
                versions[t], snapshots[t] = store.load_numbered(t, verify=verify)  # (a publish may prune it)
            except CommGraphError as exc:
                # Asked for by name, or written by a newer commgraph (every tenant will be, in a rollout):
                # serving without it is not what was asked.
                if tenants is not None or getattr(exc, "reason", None) == "newer_schema":
                    raise
                failures[t] = exc
                # Every tenant of the store: one that cannot be loaded (a damaged version, a copy of another
                # tenant's folder) is left out, named, instead of keeping the engine from starting for all.
                versions.pop(t, None)
                warnings.warn(ReloadWarning(f"tenant {t!r} is not served: its snapshot cannot be loaded ({exc}); "
                                            "a reload tries it again"), stacklevel=2)
        if failures and not snapshots:  # nothing to serve is no engine: say so at start, not at every call
            raise CommGraphError(f"no tenant of {store.path} can be loaded: " + "; ".join(
                f"{t!r}: {e}" for t, e in list(failures.items())[:5]) + ("; ..." if len(failures) > 5 else ""))
        scorer = cls(snapshots, signal_set=signal_set, tenant_configs=tenant_configs, cold_start=cold_start,
                     secrets=secrets, _store=store, _tenants=None if tenants is None else wanted,
                     _versions=versions,  # each view prepared once
                     # (published, not loadable: refused at scoring, never cold-started)
                     _unloadable={t: f"{type(e).__name__}: {e}" for t, e in failures.items()},
                     _elsewhere=_elsewhere(store, None if tenants is None else wanted))
        scorer._verify = verify
        return scorer

    def reload(self, *, secrets: Mapping[str, bytes] | None = None) -> list[str]:
        """Pick up newly published versions; returns the tenants whose snapshot changed.

        ``secrets`` (optional) replaces the secrets held for the tenants it
        names (a rotated secret comes with the snapshot keyed with it; the
        others are kept). A privacy tenant whose new snapshot is keyed with a
        secret the scorer does not hold (a rotation without the new secret)
        fails alone, as below: no mail is ever scored with the wrong keys.

        Every changed tenant's new snapshot is loaded and prepared first, then
        one reference is swapped: calls already running finish on the old
        snapshots, later calls see the new ones, none sees a mix. Only after
        the swap is the observed mail each new snapshot counted dropped from
        the live overlay (:meth:`observe`), and a call still reading a replaced
        snapshot reads it with that mail, so no call ever reads a snapshot
        with a delta trimmed for another.

        A tenant whose new version cannot be loaded (checksum mismatch,
        missing file, ...) fails alone: it keeps serving its current snapshot
        with all its observed mail, the others move on, and a
        :class:`ReloadWarning` names it and the error; it is not in the
        returned list, so the next reload tries it again. A tenant whose new
        snapshot is older than the one served (a rollback, or a slow job
        publishing last) is served, with a :class:`ReloadWarning` naming the
        gap: the overlay keeps only what the newest snapshot it served did not
        count, so mail observed in that gap is missing from the view until a
        snapshot covering it is published.

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines import SnapshotStore
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> scorer = Scorer.from_store(store)
        >>> scorer.reload()
        []
        >>> _ = store.publish(_example()); scorer.reload(), scorer.versions
        (['acme'], {'acme': 2})
        """
        if self._store is None:
            raise CommGraphError("this Scorer was made from snapshots, not a store: make it with Scorer.from_store "
                                 "to reload")
        given = _keyings(secrets, "Scorer.reload")
        with self._reload_lock:  # one reload at a time; scoring never waits for it
            self._keyings = {**self._keyings, **given}
            current = self._loaded
            # The whole store: its tenants now, and those served that it no longer lists (a pointer removed, a
            # folder moved away), which keep their snapshot with a warning below as named tenants do.
            wanted = self._tenants if self._tenants is not None else sorted(
                set(self._store.tenants()) | set(current.views))
            versions, failed = {}, {}
            for t in wanted:  # a damaged pointer is that tenant's failure (it keeps what it served), not all's
                try:
                    versions[t] = self._store.current(t)
                except CommGraphError as exc:
                    failed[t] = (None, exc)
                    if t in current.views:
                        versions[t] = current.versions.get(t)
            changed = sorted(t for t in versions if versions[t] != current.versions.get(t))
            elsewhere = _elsewhere(self._store, self._tenants)
            if not changed and not failed and set(wanted) == set(current.views) and elsewhere == current.elsewhere:
                return []
            views = {t: v for t, v in current.views.items() if t in versions and t not in changed}
            loaded = []
            for t in changed:
                try:
                    # (the version CURRENT names when loaded: a publish may have pruned the one read above)
                    versions[t], snap = self._store.load_numbered(t, verify=getattr(self, "_verify", True))
                    views[t] = self._prepare(SnapshotView(snap, secret=self._keyings.get(t)))
                    if self._overlay.as_of is not None and not _hold_state(views[t], t):  # (observing: refreshed)
                        self._stateless[id(views[t])] = views[t]
                except Exception as exc:  # noqa: BLE001 (one tenant's bad version must not stop the others)
                    failed[t] = (versions[t], exc)
                    if t in current.views:  # keep serving what it served, delta and all
                        views[t], versions[t] = current.views[t], current.versions.get(t)
                    else:
                        del versions[t]
                    continue
                loaded.append(t)
            # Published but not loadable, and not served before: refused at scoring until a reload loads it.
            unloadable = {t: f"{type(e).__name__}: {e}" for t, (v, e) in failed.items()
                          if t not in views and (v is not None or self._store.current_problem(t) is not None)}
            # (a tenant never loaded has no version served: every reload tries it again, until it loads)
            self._loaded = _Loaded.of(views, versions, unloadable, elsewhere)
            live = {id(v) for v in views.values()}
            for replaced in [k for k in list(self._stateless) if k not in live]:  # (list: one atomic copy)
                self._stateless.pop(replaced, None)
            # Only now that no call can read the old snapshots with it: trim the delta.
            for t in loaded:
                new_as_of = views[t].snapshot.as_of
                old = current.views.get(t)
                if old is not None and old.snapshot is not None and new_as_of < old.snapshot.as_of \
                        and self._overlay.as_of is not None:  # without observed mail, going back loses nothing
                    warnings.warn(ReloadWarning(
                        f"tenant {t!r}: the snapshot now served (version {versions[t]}, as of "
                        f"{new_as_of.isoformat()}) is older than the one it replaces (version "
                        f"{current.versions.get(t)}, as of {old.snapshot.as_of.isoformat()}); mail observed in "
                        f"[{new_as_of.isoformat()}, {old.snapshot.as_of.isoformat()}) was counted by the newer "
                        "snapshot and dropped from the live overlay, so the served baselines miss it until a "
                        "snapshot as of that end or later is published"), stacklevel=2)
                self._overlay.retire(t, new_as_of, ledger=views[t].snapshot.has_label_ledger,
                                     replaced=current.views.get(t))
            gone = {t: e for t, (v, e) in failed.items() if v is None and self._store.current_problem(t) is None}
            failed = {t: f for t, f in failed.items() if t not in gone}
            if gone:  # (no pointer at all: nothing published to load, not a version failing)
                warnings.warn(ReloadWarning(
                    f"{len(gone)} tenant{'s' if len(gone) > 1 else ''} served no longer "
                    f"{'have' if len(gone) > 1 else 'has'} a published snapshot in the store (its CURRENT pointer "
                    f"is gone): {', '.join(map(repr, list(gone)[:5]))}{', ...' if len(gone) > 5 else ''}; "
                    f"{'they keep' if len(gone) > 1 else 'it keeps'} the snapshot served, with the mail observed. "
                    "Republish to serve a new one, or make a new Scorer without them to stop serving them"),
                    stacklevel=2)
            kept = {t: f for t, f in failed.items() if t in views}
            if kept:
                warnings.warn(ReloadWarning(
                    f"{len(kept)} tenant{'s' if len(kept) > 1 else ''} kept {'their' if len(kept) > 1 else 'its'}"
                    f" current snapshot, the new version failing to load: "
                    + "; ".join(f"{t!r} version {v}: {type(e).__name__}: {e}" for t, (v, e) in list(kept.items())[:5])
                    + ("; ..." if len(kept) > 5 else "")
                    + ". Their observed mail is kept; republish those versions and reload again"), stacklevel=2)
            if unloadable:
                warnings.warn(ReloadWarning(
                    f"{len(unloadable)} tenant{'s' if len(unloadable) > 1 else ''} not served, the published "
                    "snapshot failing to load: " + "; ".join(f"{t!r}: {r}" for t, r in list(unloadable.items())[:5])
                    + ("; ..." if len(unloadable) > 5 else "") + ". Their mail is refused, not cold-started, until "
                    "a reload loads them"), stacklevel=2)
            return loaded

    @property
    def tenants(self) -> list[str]:
        """Tenants with a snapshot loaded."""
        return sorted(self._loaded.views)

    @property
    def versions(self) -> dict[str, int | None]:
        """The store version served per tenant (None for snapshots given directly)."""
        return dict(self._loaded.versions)

    def snapshot(self, tenant_id: str) -> Snapshot:
        """The snapshot currently served for a tenant.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> Scorer({"acme": _example()}).snapshot("acme").tenant_id
        'acme'
        """
        view = self._loaded.views.get(tenant_id)
        if view is None:
            raise CommGraphError(f"no snapshot for tenant {tenant_id!r}; loaded: {self.tenants[:5]}")
        return view.snapshot

    # ------------------------------------------------------------------ the live overlay
    def observe(self, batch: Messages | pd.DataFrame, *, as_of: Any) -> pd.DataFrame:
        """Fold mail scored since the last refresh into the baselines served, complete up to ``as_of``.

        Later lookups (:meth:`score`, :meth:`score_array`, :meth:`score_one`,
        :func:`explain`) see each tenant as the snapshot :func:`build_baselines`
        would build at ``as_of`` over the served snapshot's mail plus all the
        mail observed: counts, windows, decayed sums, first/last times, labels
        and likelihoods (a sender seen five minutes ago is no longer new). A
        tenant without a prior of its own keeps the global prior of its
        snapshot until the next one is published.

        Cost: validation and an append. The combined baselines of a tenant are
        built on its first lookup after an observe or reload (one
        :func:`commgraph.baselines.refresh` of that tenant) and kept until the
        next, so lookups in between cost what they cost without observed mail.
        :meth:`reload` drops the observed mail a newer snapshot counted (sent
        before its as_of, label known before it) and keeps the rest.

        Parameters
        ----------
        batch : Messages or DataFrame
            Mail of tenants this scorer serves, validated or a raw frame in the
            message contract (validated here leniently). A message (tenant and
            id) observed more than once, in one call or several, is one
            message, its copies merged: its recipients are the union of the
            copies' (so one-row-per-recipient input may be split over calls);
            a label once known is kept, the one with the latest ``labeled_at``
            known by the overlay's as_of winning (a label without it counts as
            known when sent; one known later waits, the earlier one read
            meanwhile); a copy
            that adds an outside recipient to internal mail makes it
            ``outbound``, as validation would; every other column comes from
            the latest copy. Copies of one message keep its sender and
            timestamp: a later row with the id but another sender or timestamp
            is another message (an attacker's twin of a vendor's message, say),
            which :meth:`score` rejects as a copy; it is not merged but comes
            back (``duplicate_message_id``, naming what differs), whether the
            first copy came earlier in the call or in one before (while the
            overlay holds it). So send a message's row again with ``label`` and
            ``labeled_at`` when its verdict arrives, and replays (at-least-once
            delivery) change nothing. The served baselines equal a rebuild
            given each message so merged. (Within one one-row-per-recipient
            frame a message's rows must agree, as validation requires.)
        as_of : timestamp-like
            The instant up to which the scorer has now seen all the mail of the
            tenants it serves (naive values are UTC); it never moves back. Mail
            and labels count only strictly before it, as in a snapshot built at
            it: later rows wait until an observe moves as_of past them. It is an
            argument, not read off the data, so that one skewed clock cannot
            move every window and no clock is read inside. The usual loop:
            ``score(batch)``, then ``observe(batch, as_of=end)`` where ``end`` is
            the instant the next batch starts from. An as_of before a served
            snapshot's changes nothing for that tenant: the snapshot, which
            already covers it, is served as it is, and the batch's mail comes
            back as ``before_snapshot`` (see Returns).

        Returns
        -------
        DataFrame
            The rows not used, with reasons (see
            :attr:`commgraph.graph.Messages.rejects`); empty when all were used:
            rows the message contract rejected, and rows of mail sent before
            the served snapshot's as_of whose label, if any, was known before
            it (``reject_reason`` ``before_snapshot``), and rows reusing the
            id of a message with another sender or timestamp
            (``duplicate_message_id``). The snapshot counted
            such mail if the refresh that built it read it; mail that reached
            the archive after that refresh is counted by the next rebuild (a
            refresh counts mail only in the period it was sent), and a label
            known only later must come with its ``labeled_at``. A verdict
            known after the snapshot for such mail is kept and counts; if the
            snapshot never saw the message itself, only the label counts until
            a rebuild. A verdict that reverses one the served snapshot counted
            (the same message id, sender and time, a new label, or none with a
            ``labeled_at``: withdrawn) replaces it: the snapshot's ledger of
            counted labels says which label to retract.
            Snapshots written before commgraph kept that ledger cannot retract:
            there a label for a message whose label a snapshot brought by
            :meth:`reload` counted while this scorer held the message comes
            back (``label_counted``; the scorer remembers those message ids for
            as long as it runs), and a reversal of a label counted before this
            scorer saw the message counts both labels until a rebuild.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> scorer = Scorer({"acme": _example()})
        >>> mail = {"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
        ...         "sender": "x@new.com", "recipients": "cy@acme.com"}
        >>> scorer.score_one(mail)["sender_is_new"]
        1
        >>> rejects = scorer.observe(pd.DataFrame([mail, {**mail, "message_id": "10", "sender": "no address"}]),
        ...                          as_of="2024-05-04T10:05Z")
        >>> rejects[["reject_column", "reject_reason"]]
          reject_column    reject_reason
        1        sender  invalid_address
        >>> later = {**mail, "message_id": "11", "timestamp": "2024-05-04T10:06:00+00:00"}
        >>> scorer.score_one(later)["sender_is_new"], scorer.score_one(later)["sender_messages_7d"]
        (0, 1)
        >>> scorer.observe(pd.DataFrame([{**mail, "tenant_id": "other"}]), as_of="2024-05-04T10:06Z")
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.CommGraphError: cannot observe mail of tenant 'other': this scorer serves no snapshot of it (it serves ['acme']). Publish its baselines and reload first
        """
        as_of_ts = _timestamp(as_of, "as_of", "Scorer.observe")
        if isinstance(batch, pd.DataFrame):
            if "tenant_id" in batch:  # before validating: no own domains are inferred for a tenant not served
                self._check_served(id_text(batch["tenant_id"])[0].dropna().unique().tolist())
            messages = self._validate_copies(batch)
        elif isinstance(batch, Messages):
            messages = batch
        else:
            raise ConfigError(f"The 'batch' parameter of Scorer.observe must be Messages or a DataFrame in the "
                              f"message contract. Got {type(batch).__name__} instead.")
        self._check_served(messages.tenants if len(messages) else [])
        loaded = self._loaded
        if self._overlay.as_of is None:
            # From the first observe on, every served snapshot is refreshed to the overlay's as_of, observed mail
            # or not: their states are mapped now (a reload maps those of the snapshots it serves from then on).
            for tenant, view in loaded.views.items():
                if not _hold_state(view, tenant):
                    self._stateless[id(view)] = view  # (the view is kept: its id names no other meanwhile)
        covered = {t: v.snapshot.as_of for t, v in loaded.views.items() if v.snapshot is not None}
        set_aside = self._overlay.observe(messages, as_of=as_of_ts, covered=covered)
        rejects = messages.rejects
        as_given = isinstance(batch, pd.DataFrame) and batch.index.is_unique
        if not set_aside.empty:
            # The row as given, as for every other reject (one row per recipient: each of the message's rows).
            rejects = pd.concat([rejects, _input_rows(batch, set_aside) if as_given else set_aside])
        if as_given and len(rejects) > 1:  # in input order (copies of a message were validated apart)
            rejects = rejects.iloc[np.argsort(batch.index.get_indexer_for(rejects.index), kind="stable")]
        return rejects

    def _validate_copies(self, batch: pd.DataFrame) -> Messages:
        """Validate a raw batch leniently, keeping every copy of a message given on its own row.

        Validation keeps the first of several rows with one message id (copies
        filed in several folders); here a later row may be the message's
        verdict, so each copy is validated apart and the overlay merges them as
        copies observed in separate calls. Rows of one message in
        one-row-per-recipient input are gathered by validation, as always.
        """
        configs = self._configs(batch, observed=False)
        if "recipient" in batch.columns or not {"tenant_id", "message_id"} <= set(batch.columns):
            return _validated(batch, configs, strict=False)
        # Copies are told apart by their ids as validation reads them ('9 ' is message '9').
        keys = _message_keys(batch)
        if not keys.duplicated().any():  # the common case: one validation
            return _validated(batch, configs, strict=False)
        copy_number = keys.groupby(["tenant_id", "message_id"], sort=False, dropna=False).cumcount().to_numpy()
        # (each copy's rejected rows numbered by their positions in the batch, not in the copies validated; the
        # copies joined, for the overlay to merge)
        return Messages.concat([_validated(batch[copy_number == k], configs, strict=False)._renumbered(
                                    np.flatnonzero(copy_number == k)) for k in range(int(copy_number.max()) + 1)],
                               copies=True)

    def _check_served(self, tenants: list[str]) -> None:
        served = self._loaded.views
        unknown = sorted(set(tenants) - set(served))
        if unknown:
            raise CommGraphError(f"cannot observe mail of tenant{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(map(repr, unknown[:5]))}: this scorer serves no snapshot of "
                                 f"{'them' if len(unknown) > 1 else 'it'} (it serves {sorted(served)[:5]}). "
                                 "Publish its baselines and reload first")

    @property
    def overlay(self) -> Overlay:
        """The mail observed since each tenant's snapshot (:meth:`observe`): its as_of and what it holds."""
        return self._overlay

    def _view(self, loaded: _Loaded, tenant: str) -> SnapshotView | None:
        """The view a lookup of a tenant reads: its snapshot, with the observed mail folded in if any."""
        view = loaded.views.get(tenant)
        if view is not None and self._overlay.as_of is not None and id(view) not in self._stateless:
            return self._overlay.view(tenant, view)
        return view

    # ------------------------------------------------------------------ batches
    def _configs(self, batch: pd.DataFrame | None = None, call: _Call | None = None, *,
                 observed: bool = True) -> list[TenantConfig]:
        """Validation's tenant configurations for a raw ``batch``: the scorer's, else own domains read off each
        tenant's snapshot.

        A tenant of the batch with observed mail reads them off the view its
        lookups read (:meth:`_view`): a domain that began sending as the tenant
        since the snapshot is its own there, as in the snapshot a rebuild would
        give (``observed=False``, for observing: the snapshots' own, since
        folding the mail in is what lookups pay for). A privacy-mode tenant's
        snapshot holds its own domains as keys only: its own domains are the
        batch's domains whose keys those are. Never inferred from the batch
        where the snapshot has them: one crafted message (a Cc to the
        attacker's own domain) would make that domain the tenant's, and its
        mail internal.
        """
        call = call if call is not None else _Call(self)
        loaded = call.loaded
        # (the batch's tenants matter only with observed mail or privacy-mode tenants: no pass over it otherwise)
        needed = batch is not None and "tenant_id" in batch and (
            (observed and self._overlay.as_of is not None) or bool(loaded.keys))
        tenants = id_text(batch["tenant_id"])[0].dropna().unique().tolist() if needed else []
        cached = getattr(self, "_configs_cache", None)
        if cached is None or cached[0] is not loaded:
            configs = dict(self.tenant_configs)
            for tenant, view in loaded.views.items():
                derived = None if tenant in self._own_configured else _derived_config(tenant, view)
                if derived is not None:
                    configs[tenant] = _with_own(configs.get(tenant), derived)
            cached = self._configs_cache = (loaded, configs)
        unconfigured = set(tenants) & loaded.views.keys() - self._own_configured
        private = [t for t in unconfigured if loaded.views[t].keys is not None] if batch is not None else []
        if self._overlay.as_of is None and not private:
            return list(cached[1].values())
        configs = dict(cached[1])
        if observed and self._overlay.as_of is not None:
            for tenant in unconfigured:
                view = call.view(tenant)
                if view is not loaded.views[tenant]:
                    memo = view.memo("validation")
                    if "config" not in memo:
                        memo["config"] = _derived_config(tenant, view)
                    if memo["config"] is not None:
                        configs[tenant] = _with_own(self.tenant_configs.get(tenant), memo["config"])
        if private:
            # Each tenant's own rows only: keying every domain of a batch with every tenant's secret cost
            # tenants x domains per call.
            for tenant, rows in _by_tenant(batch, private).items():
                view = call.view(tenant) if observed else loaded.views[tenant]
                keys = view.own_domain_keys()
                own = tuple(d for d in _batch_domains(rows) if self._keyed_own(view, d, keys))
                if own or keys:  # (own domains known by key, none in the batch: still none to infer)
                    derived = TenantConfig._derived(tenant, own, known=bool(keys))
                    configs[tenant] = _with_own(self.tenant_configs.get(tenant), derived)
        return list(configs.values())

    def validate(self, batch: pd.DataFrame, *, strict: bool = True, **options: Any) -> Messages:
        """Validate a raw frame as :meth:`score` does, with this scorer's tenant configurations.

        The own domains that decide ``direction`` are the scorer's: its
        ``tenant_configs``, else those each served snapshot (with any mail
        :meth:`observe` folded in) shows (see ``tenant_configs``), never
        inferred from the frame. So the messages
        returned score exactly as the frame would (``score(scorer.validate(frame))``
        equals ``score(frame)`` whenever the latter does not raise), and an
        engine can score every usable message of a batch and act on the rest.

        Parameters
        ----------
        batch : DataFrame
            Mail in the message contract.
        strict : bool, default True
            Raise one :class:`commgraph.graph.SchemaError` listing every
            problem, as :meth:`score` does; with ``False``, return the usable
            messages and name the others in ``Messages.rejects``, each with its
            reason. Either way copies are no problem: a repeated
            ``(tenant_id, message_id)`` keeps its first usable copy, the later
            ones in the rejects (``duplicate_message_id``, or
            ``duplicate_edge`` for a repeated row of one-row-per-recipient
            input), as the message contract says.
        **options
            Other options of :func:`commgraph.graph.validate` (``columns``,
            ``timezone``, ``timestamp_unit``, ...); ``tenants`` is the
            scorer's.

        Returns
        -------
        Messages

        Raises
        ------
        SchemaError
            In strict mode, when anything but a copy breaks the contract.

        Examples
        --------
        One message holds no valid sender: the other is scored, the first
        comes back with its reason.

        >>> from commgraph.baselines._snapshot import _example
        >>> scorer = Scorer({"acme": _example()})
        >>> frame = pd.DataFrame({"tenant_id": ["acme"] * 3, "message_id": ["8", "9", "9"],
        ...                       "timestamp": ["2024-05-04T10:00Z"] * 3, "sender": ["no address", "x@new.com",
        ...                       "x@new.com"], "recipients": ["cy@acme.com"] * 3})
        >>> messages = scorer.validate(frame, strict=False)
        >>> scorer.score(messages)[["message_id", "sender_is_new"]]
          message_id  sender_is_new
        0          9              1
        >>> messages.rejects[["message_id", "reject_column", "reject_reason"]]
          message_id reject_column         reject_reason
        0          8        sender       invalid_address
        2          9    message_id  duplicate_message_id
        """
        if not isinstance(batch, pd.DataFrame):
            raise ConfigError(f"The 'batch' parameter of Scorer.validate must be a DataFrame in the message "
                              f"contract. Got {type(batch).__name__} instead.")
        if "tenants" in options:
            raise ConfigError("Scorer.validate validates with the scorer's tenant configurations; give them as "
                              "Scorer(..., tenant_configs=...), not as 'tenants'")
        return self._validate(batch, _Call(self), strict=strict, **options)

    def _validate(self, batch: pd.DataFrame, call: _Call, *, strict: bool = True, **options: Any) -> Messages:
        """:meth:`validate` with the own domains of the snapshots (and views) a call reads."""
        # The caller's column names first: the own domains are worked out from the batch's tenants (and a privacy
        # tenant's from its addresses), which a mapping left unread would leave to inference from the batch.
        columns = options.pop("columns", None)
        if columns:
            batch = apply_column_mapping(batch, columns)
        return _validated(batch, self._configs(batch, call), strict=strict, **options)

    def _messages(self, batch: Messages | pd.DataFrame, call: _Call | None = None) -> Messages:
        if isinstance(batch, Messages):
            return batch
        if isinstance(batch, pd.DataFrame):
            return self._validate(batch, call if call is not None else _Call(self))
        raise ConfigError(f"The 'batch' parameter of Scorer.score must be Messages or a DataFrame in the message "
                          f"contract. Got {type(batch).__name__} instead.")

    def _columns(self, messages: Messages, level: str, cold_start: bool | None,
                 call: _Call) -> dict[str, np.ndarray]:
        loaded = call.loaded  # read once per call: a concurrent reload never mixes snapshots within it
        cold = self.cold_start if cold_start is None else cold_start
        # The look-alike check compares with the configured own domains, as score_one does (not with those
        # validation inferred for a batch, which a single message would not infer alike).
        sb = dataclasses.replace(SignalBatch.from_messages(messages), own_domains=self._compared_own)
        if loaded.keys:  # privacy-mode tenants: their rows keyed with their own secrets
            sb = sb.with_tenant_keys(messages, loaded.keys)
        views = dict(loaded.views)
        if self._overlay.as_of is not None:
            views.update((t, call.view(t)) for t in sb.tenants if t in views)
        missing = [t for t in sb.tenants if t not in views]
        for t in missing:
            refused = _unserved(loaded, t, cold)
            if refused is not None:
                raise refused
        for t in missing:
            views[t] = SnapshotView(None, tenant_id=t, global_priors=loaded.global_priors)
        return self.signal_set.compute_columns(sb, views, level=level)

    def score(self, batch: Messages | pd.DataFrame, *, level: Literal["edge", "message"] = "edge",
              cold_start: bool | None = None) -> pd.DataFrame:
        """Signals for a batch of any tenants (see :meth:`SignalSet.compute` for the output).

        Each message is scored against the baselines served, whatever its
        time: mail sent before a snapshot's as_of (delivered late, or old mail
        scored again) meets baselines that may already count it, so its sender
        is not new and the days since the last message are 0. To score old
        mail as it would have looked when sent, use
        :func:`commgraph.signals.backfill`.

        A raw frame is validated strictly (:meth:`validate`): one message that
        breaks the message contract raises for the whole batch. To score every
        usable message whatever the others hold, validate leniently first and
        act on the rejects::

            messages = scorer.validate(batch, strict=False)
            signals = scorer.score(messages)   # every usable message
            messages.rejects                   # the others, each with its reason

        Copies of a message (a repeated tenant and message id) are no error:
        the first is scored, the others are named in ``validate(batch).rejects``.

        Parameters
        ----------
        batch : Messages or DataFrame
            Validated messages, or a raw frame in the message contract (validated
            here with the scorer's tenant configurations, as :meth:`validate`
            does in strict mode).
        level : {"edge", "message"}, default "edge"
        cold_start : bool, optional
            Overrides the scorer's setting for this call.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> frame = pd.DataFrame({"tenant_id": ["acme"], "message_id": ["9"], "timestamp": ["2024-05-04T10:00Z"],
        ...                       "sender": ["x@new.com"], "recipients": ["cy@acme.com"]})
        >>> Scorer({"acme": _example()}).score(frame)[["recipient", "sender_is_new", "domain_is_new"]]
             recipient  sender_is_new  domain_is_new
        0  cy@acme.com              1              1
        """
        call = _Call(self)
        messages = self._messages(batch, call)
        return self.signal_set.frame(messages, self._columns(messages, level, cold_start, call), level=level)

    def score_array(self, batch: Messages | pd.DataFrame, *, level: Literal["edge", "message"] = "edge",
                    cold_start: bool | None = None) -> tuple[np.ndarray, list[str]]:
        """Signals as a 2-D float32 array plus the column names, for model runtimes.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> frame = pd.DataFrame({"tenant_id": ["acme"], "message_id": ["9"], "timestamp": ["2024-05-04T10:00Z"],
        ...                       "sender": ["x@new.com"], "recipients": ["cy@acme.com"]})
        >>> X, names = Scorer({"acme": _example()}).score_array(frame)
        >>> X.shape, X.dtype
        ((1, 35), dtype('float32'))
        """
        call = _Call(self)
        messages = self._messages(batch, call)
        names = self.signal_set.names
        return stack(self._columns(messages, level, cold_start, call), names), names

    # ------------------------------------------------------------------ one message
    def _registrable_domain(self, domain: str) -> str:
        found = self._registrable.get(domain)
        if found is None:
            found = _registrable_one(domain)
            if len(self._registrable) > 1 << 16:
                self._registrable.clear()
            self._registrable[domain] = found
        return found

    def _is_own(self, tenant: str, domain: str, call: _Call | None = None) -> bool:
        """Whether ``domain`` is one of the tenant's own: from its configuration, else from its snapshot (keyed
        with the tenant's secret in privacy mode)."""
        config = self.tenant_configs.get(tenant) if tenant in self._own_configured else None
        if config is not None:
            memo, key = self._own, f"{tenant}\0{domain}"
        else:
            view = (call if call is not None else _Call(self)).view(tenant)
            if view is None:  # not served: nothing is own, and nothing is memoised for it
                return False
            memo, key = view.memo("own_domain"), domain
        found = memo.get(key)
        if found is None:
            if config is not None:
                found = config.is_own_domain(domain)
            else:
                found = self._keyed_own(view, domain, view.own_domain_keys())
            if len(memo) > 1 << 16:
                memo.clear()
            memo[key] = found
        return found

    def _keyed_own(self, view: SnapshotView, domain: str, keys: frozenset[int]) -> bool:
        """Whether a domain's registrable domain is one of a view's own domain ``keys`` (keyed with the tenant's
        secret in privacy mode). Consumer providers and public suffixes never are, as names tell: a privacy-mode
        snapshot's keys cannot."""
        registrable = self._registrable_domain(domain)
        if view.keys is None:
            return _key(registrable) in keys
        return may_be_own_domain(registrable) and view.keys.key(registrable) in keys

    def _own_domains_known(self, tenant: str, call: _Call | None = None) -> bool:
        """Whether validation has own domains for a tenant (configured, or its snapshot's); else it infers them."""
        if tenant in self._own_configured:
            return True
        view = (call if call is not None else _Call(self)).view(tenant)
        # A privacy-mode snapshot's own domains are keys: validation of a batch names them from the batch's
        # domains with those keys (_configs), and this path asks the keys of the message's, alike.
        return view is not None and bool(view.own_domain_keys())

    def score_one(self, message: Mapping[str, Any], *, cold_start: bool | None = None) -> dict[str, Any]:
        """Signals of one message, aggregated over its recipients: a dict of Python scalars.

        A scalar path over the same tables as :meth:`score` (no pandas or numpy
        per message), equal to ``score(pd.DataFrame([message]), level="message")``
        column by column: the message is read as validation reads that frame.

        Parameters
        ----------
        message : mapping
            ``tenant_id``, ``message_id``, ``timestamp`` (aware datetime, ISO
            8601 string with an offset, or epoch seconds or milliseconds),
            ``sender``, ``recipients`` (list or a string separated by
            ``;``/``,``; or ``to``/``cc``/``bcc``, which take its place when
            present), and optionally ``sender_display_name`` (missing or blank:
            the From header's), ``direction``, ``spf``, ``dkim``, ``dmarc``;
            and any other column the signal set's providers read (their
            ``message_columns``), given to their ``compute_one`` as it is
            (``message.columns``).
            Missing values may be None or NaN (as ``to_dict("records")`` gives).

        Returns
        -------
        dict
            ``tenant_id``, ``message_id``, then every signal by name.

        Raises
        ------
        CommGraphError
            Where validation refuses the message in a field the signals read
            (a missing id, an invalid sender or recipient, a timestamp it
            cannot read or places outside its time range, an unknown
            ``direction``, ``spf``, ``dkim`` or ``dmarc`` value, a direction it
            cannot derive), naming the field, the value and the fix (fields
            no signal reads, such as ``label``, ``labeled_at`` or
            ``sender_ip``, are not read, so not checked: :meth:`score` of a
            frame checks them); when the
            tenant has no snapshot and ``cold_start`` is off; or when the
            message lacks a column a provider declares in ``message_columns``.
        ConfigError
            When a provider other than the built-ins returns what it does not
            declare (a column missing, one value per recipient from a
            message-level provider, a list of another length from an
            edge-level one, NaN, a fraction or a value out of range for an
            integer column, a value that is no number), as :meth:`score` does.

        Examples
        --------
        >>> from commgraph.baselines._snapshot import _example
        >>> s = Scorer({"acme": _example()})
        >>> one = s.score_one({"tenant_id": "acme", "message_id": "1", "timestamp": "2024-05-04T10:00:00+00:00",
        ...                    "sender": "Eve <eve@rnicrosoft.com>", "recipients": "cy@acme.com"})
        >>> one["sender_is_new"], one["pair_days_since_last"]
        (1, nan)
        """
        call = _Call(self)
        loaded = call.loaded
        m = parse_one(message, self._registrable_domain, call.is_own, call.own_known, loaded.keys)
        m.own_domains = self._compared_own.get(m.tenant_id, ())  # (as _columns gives the batch path)
        view = call.view(m.tenant_id)
        if view is None:
            refused = _unserved(loaded, m.tenant_id, self.cold_start if cold_start is None else cold_start)
            if refused is not None:
                raise refused
            view = SnapshotView(None, tenant_id=m.tenant_id, global_priors=loaded.global_priors)
        plan = self._plan
        if plan.default:  # the built-in set, in its order: the one-pass path's dict is the answer
            return view.builtin_one().values(m)
        values = view.builtin_one().values(m, plan.builtin_names) if plan.builtin_names else None
        if plan.message_columns is not None:  # other providers' compute_one read the message columns they declare
            m.columns = declared_columns(message, plan.message_columns)
        out: dict[str, Any] = {"tenant_id": m.tenant_id, "message_id": m.message_id}
        for provider, columns in plan.steps:
            if provider is None:  # a built-in provider: its columns from the one-pass path
                for name in columns:
                    out[name] = values[name]
                continue
            # Another provider's values are checked as the batch path checks them: unchecked, a missing column,
            # a NaN for an int column or a list from a message-level provider came back as if it were the value.
            computed = checked_one(provider, provider.compute_one(m, view), len(m.recipients))
            if columns is None:
                out.update(computed)
                continue
            for name, aggregate in columns:
                v = computed[name]
                out[name] = v[0] if len(v) == 1 else aggregate(v)
        if plan.floats:
            # Round other providers' float columns to float32 as the batch path stores them, in one call.
            out.update(zip(plan.floats, array("f", plan.floats_of(out)).tolist()))
        return out

    def __copy__(self) -> "Scorer":
        # A shallow copy shares everything (snapshots, overlay, locks), as it did before pickling was refused.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __reduce__(self):
        # A scorer holds locks, memory-mapped snapshots, the observed mail and privacy tenants' secrets: none of it
        # belongs in a pickle (a task queue, a cache). A worker makes its own from the store.
        raise TypeError("a Scorer cannot be pickled (it holds memory-mapped snapshots, locks, observed mail and "
                        "privacy-mode secrets): make one in each worker process, e.g. Scorer.from_store(store)")

    def __repr__(self) -> str:
        loaded = self._loaded
        parts = ", ".join(f"{t}" + (f" v{v}" if v is not None else "") for t, v in
                          sorted(loaded.versions.items())[:5])
        n = len(loaded.views)
        return (f"Scorer({n} tenant{'s' if n != 1 else ''}: {parts}{' ...' if n > 5 else ''}; "
                f"{len(self.signal_set.names)} signals)")
