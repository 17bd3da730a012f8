"""The live overlay: mail observed since each tenant's snapshot, folded into the baselines the scorer serves.

A snapshot describes its tenant as of the last refresh; the engine keeps
scoring mail after it. :meth:`Scorer.observe` hands that mail to an
:class:`Overlay`, which keeps it per tenant as a *delta* (validated messages,
nothing derived) and remembers the instant the delta is complete up to. The
first lookup of a tenant after that refreshes its snapshot with its delta
(:func:`commgraph.baselines.refresh`: the same merge that turns yesterday's
snapshot into today's, tested equal to a rebuild) and keeps the result until
the next observe or reload, so:

* ``observe`` costs validation and an append, never a rebuild;
* the first lookup of a touched tenant pays one refresh of that tenant; every
  lookup after it costs what a lookup costs without an overlay.

**The overlay's as_of is explicit**: each ``observe`` says up to which instant
the scorer has now seen all the mail of the tenants it serves. Mail and labels
count only strictly before it, exactly as in a snapshot built at that instant:
a row observed with a later time, or a label with a later ``labeled_at``,
waits in the delta until an ``observe`` moves as_of past it. An instant read
off the data (the newest observed time) would not keep that rule: one message
with a skewed clock would drag every window and decayed count forward, a
label known after the newest message would never count, and two scorers that
saw the same mail in other batches would disagree. With an explicit as_of the
served view is, by construction, the snapshot ``build_baselines`` would build
at that instant over the snapshot's mail plus the delta.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from commgraph.baselines._build import refresh_observed
from commgraph.graph import ConfigError, Messages
from commgraph.graph._messages import REJECT_COLUMNS, message_index
from commgraph.graph._schema import STRING_DTYPE

from ._view import SnapshotView

__all__ = ["Overlay"]


def _merged(messages: Messages) -> Messages:
    """One row per message id (of one tenant): copies of a message observed more than once merged into one.

    The rule (documented on :meth:`Scorer.observe`): the recipients are the
    union of the copies' (each recipient once, its most visible type winning,
    as :func:`commgraph.graph.validate` gathers one-row-per-recipient input);
    a label once known is kept, the one with the latest ``labeled_at`` (a label
    without it was known when sent) winning, a withdrawal (no label, a
    ``labeled_at``) counting as one; ``direction`` is ``outbound`` if
    any copy says so and the latest says ``internal`` (what validation infers
    for the united recipients); every other column comes from the latest copy.
    Copies share their sender and time: :meth:`Overlay.observe` rejects a row
    reusing an id with another sender or time (another message) before it is held.
    """
    repeated = messages.frame["message_id"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return messages
    merged = _merge_copies(messages.subset(repeated))
    if repeated.all():
        return merged
    return Messages.concat([messages.subset(~repeated), merged], copies=True)  # (none left: no need to look)


def _merge_copies(copies: Messages) -> Messages:
    """:func:`_merged` for rows that all have copies: one row per id, in order of first appearance."""
    frame = copies.frame
    group, _ = pd.factorize(frame["message_id"])
    n = int(group.max()) + 1
    position = np.arange(len(frame))
    latest = np.full(n, -1, dtype=np.int64)
    np.maximum.at(latest, group, position)
    # The copy whose label counts: the latest labelling time (ties: the later copy); unlabelled groups keep latest.
    # A withdrawal (no label, labeled_at saying when) is a labelling too: a later one replaces a verdict.
    labelled = _labelling(frame).to_numpy()
    label_from = latest.copy()
    if labelled.any():
        label_time = frame["labeled_at"].fillna(frame["timestamp"]).to_numpy("datetime64[ns]").view(np.int64)
        order = np.lexsort((position[labelled], label_time[labelled], group[labelled]))
        g, p = group[labelled][order], position[labelled][order]
        last = np.r_[g[1:] != g[:-1], True]
        label_from[g[last]] = p[last]
    out = frame.iloc[latest].copy()
    for column in ("label", "labeled_at"):
        out[column] = frame[column].iloc[label_from].set_axis(out.index)
    outbound = np.zeros(n, dtype=bool)
    outbound[group[(frame["direction"] == "outbound").to_numpy()]] = True
    out["direction"] = out["direction"].mask(pd.Series(outbound, index=out.index) & (out["direction"] == "internal"),
                                             "outbound")
    edges = copies.edges(message_columns=())
    edge_group = group[edges["message_index"].to_numpy()]
    rank = edges["recipient_type"].cat.codes.to_numpy().astype(np.int64)
    rank[rank < 0] = len(edges["recipient_type"].cat.categories)  # a recipient without a type: least visible
    edge_order = np.arange(len(edges))
    key = edges["recipient_key"].to_numpy()
    chosen = np.lexsort((edge_order, rank, key, edge_group))
    first = np.r_[True, (edge_group[chosen][1:] != edge_group[chosen][:-1]) | (key[chosen][1:] != key[chosen][:-1])]
    keep = np.sort(chosen[first])
    keep = keep[np.argsort(edge_group[keep], kind="stable")]  # message order, then the order observed
    edges = edges.iloc[keep].reset_index(drop=True)
    index = message_index(edge_group[keep], n)
    for column in ("tenant_id", "timestamp", "sender", "sender_domain", "sender_key", "direction"):
        values = out[column]
        if isinstance(edges[column].dtype, pd.CategoricalDtype):
            values = values.astype("category")
        edges[column] = values.array.take(index)
    edges["message_index"] = index
    out["n_recipients"] = np.bincount(index, minlength=n).astype(out["n_recipients"].dtype)
    return Messages(out, edges, copies.rejects.iloc[:0])


#: A message's identity as copies keep it: its sender (as given, for the reject's words), sender key and time (ns).
_Identity = tuple[str, int, int]


def _twins(part: Messages, seen: dict[str, _Identity]) -> tuple[np.ndarray, pd.DataFrame, dict[str, _Identity]]:
    """Rows of ``part`` (one tenant's) that reuse the id of another message, the first copy of each such row's id,
    and the identities of the ids ``part`` brings first.

    Copies of one message (a replay, its verdict row, its recipients split over calls) keep its sender and time,
    the identity the label ledger keys a message by; a row with the id of the first copy seen (``seen``: from an
    earlier call, else earlier in ``part``) but another sender or time is another message. Merged, it would
    replace the first copy's sender and time (every other column comes from the latest copy), though scoring
    keeps the first copy and rejects it: its sender would become known without any of its mail scored. One
    dictionary lookup per row: the held mail is never scanned (a tenant observed call after call, never looked up,
    would pay for all it holds at every call).
    """
    frame = part.frame
    ids = frame["message_id"].astype(str).tolist()
    senders = frame["sender"].tolist()
    keys = frame["sender_key"].to_numpy().tolist()
    times = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    twin = np.zeros(len(ids), dtype=bool)
    first: list[_Identity] = []
    new: dict[str, _Identity] = {}
    for i, (mid, sender, key, ts) in enumerate(zip(ids, senders, keys, times)):
        known = seen.get(mid) or new.get(mid)
        if known is None:
            new[mid] = (sender, key, ts)
        elif known[1] != key or known[2] != ts:
            twin[i] = True
            first.append(known)
    firsts = pd.DataFrame({"sender": [f[0] for f in first], "sender_key": np.array([f[1] for f in first], np.uint64),
                           "timestamp": pd.to_datetime(np.array([f[2] for f in first], np.int64), utc=True)})
    return twin, firsts, new


def _twin_records(frame: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """Reject records for rows that reuse the id of another message (``first``: that message's row, by row)."""
    explain = []
    same_sender = first["sender_key"].to_numpy() == frame["sender_key"].to_numpy()  # as _twins told them apart
    for sender, ts, sender0, ts0, kept in zip(frame["sender"], frame["timestamp"], first["sender"],
                                              first["timestamp"], same_sender):
        differs = [what for what, same in (("sender", kept), ("timestamp", ts == ts0)) if not same]
        explain.append(f"the message first observed with this id was sent by {sender0!r} at {ts0.isoformat()}; "
                       f"this row ({sender!r} at {ts.isoformat()}) differs in {' and '.join(differs)}, so it is "
                       "another message, not a copy (a replay or a verdict row keeps the sender and time) and is "
                       "not folded in, as scoring keeps the first copy; give distinct messages distinct ids")
    return _reject_records(frame, np.full(len(frame), "message_id"), "duplicate_message_id",
                           frame["message_id"].astype(str), explain)


def _uncovered(messages: Messages, as_of: pd.Timestamp) -> np.ndarray:
    """Rows a snapshot as of ``as_of`` has not counted: mail at or after it, or a label known (or withdrawn) at
    or after it.

    A refresh from that snapshot reads nothing else of the delta (older mail is
    counted, older labels known), so dropping the rest changes no view.
    """
    frame = messages.frame
    ts = frame["timestamp"]
    if "labeled_at" in frame:
        label_time = frame["labeled_at"].fillna(ts)  # unknown labelling time: known when sent
    else:
        label_time = ts
    return ((ts >= as_of) | (_labelling(frame) & (label_time >= as_of))).to_numpy()


class _Retired(NamedTuple):
    """The mail a retire dropped, kept for a call still reading the snapshot it replaced (or an older one)."""

    as_of: pd.Timestamp  #: the new snapshot's as_of
    mail: Messages | None  #: what the new snapshot counted (None: nothing)
    #: a weak reference to the replaced view (None once no call can hold it); None for a retire given no view:
    #: the entry then serves any base older than ``as_of``, until the tenant's next retire
    replaced: Callable[[], Any] | None


def _given_back(retired: tuple[_Retired, ...], base: SnapshotView) -> list[Messages] | None:
    """The mail a call reading ``base`` needs back, oldest first: None for a base no retire replaced.

    A base replaced at one retire was trimmed by it and by every later one: a call on it reads all their mail.
    """
    for i, held in enumerate(retired):
        if (held.replaced() is base) if held.replaced is not None else base.snapshot.as_of < held.as_of:
            return [later.mail for later in retired[i:] if later.mail is not None]
    return None


def _still_needed(retired: tuple[_Retired, ...]) -> tuple[_Retired, ...]:
    """The entries a call can still need: from the oldest whose replaced view is alive on.

    A later entry whose own view is gone stays: a call on an older view reads its mail too.
    """
    for i, held in enumerate(retired):
        if held.replaced is None or held.replaced() is not None:
            return retired[i:]
    return ()


def _compacted(parts: list[Messages], as_of: pd.Timestamp) -> list[Messages]:
    """The observed rows as one table of one row per message, and apart from it (a second table) the rows whose
    label becomes known only at or after ``as_of``.

    Merged with its message's other copies, such a label would replace one known before ``as_of`` (the latest
    labelling wins) and hide it until then; kept apart, each lookup reads the message with the latest label
    known by its as_of, and a later compaction merges it once as_of has passed it.
    """
    rows = parts[0] if len(parts) == 1 else Messages.concat(parts, copies=True)  # (copies merged below)
    waiting = _waiting(rows, as_of)
    if not waiting.any():
        return [_merged(rows)]
    if waiting.all():
        return [rows.subset(~waiting), rows]  # (no message known yet: an empty table, then the waiting rows)
    return [_merged(rows.subset(~waiting)), rows.subset(waiting)]


def _as_read(compacted: list[Messages]) -> Messages:
    """The delta a lookup reads from :func:`_compacted`'s tables: the waiting rows' messages without their label."""
    if len(compacted) == 1:
        return compacted[0]
    return _merged(Messages.concat([compacted[0], _without_labels(compacted[1])], copies=True))


def _waiting(messages: Messages, as_of: pd.Timestamp) -> np.ndarray:
    """Rows whose labelling (a label, or a withdrawal) becomes known only at or after ``as_of``."""
    frame = messages.frame
    if "labeled_at" not in frame:
        return np.zeros(len(frame), dtype=bool)
    label_time = frame["labeled_at"].fillna(frame["timestamp"])  # unknown labelling time: known when sent
    return (_labelling(frame) & (label_time >= as_of)).to_numpy()


def _without_labels(messages: Messages) -> Messages:
    """The messages with no label and no labelling time: the mail alone, its verdict not known yet."""
    frame = messages.frame.copy()
    for column in ("label", "labeled_at"):
        if column in frame:
            frame[column] = pd.Series(pd.NA if column == "label" else pd.NaT, index=frame.index,
                                      dtype=frame[column].dtype)
    return Messages(frame, messages._edges, messages.rejects.iloc[:0])


def _labelling(frame: pd.DataFrame) -> pd.Series:
    """Rows that say something of their message's label: a label, or a withdrawn one (no label, a labeled_at)."""
    labelled = frame["label"].notna() if "label" in frame else pd.Series(False, index=frame.index)
    return labelled | frame["labeled_at"].notna() if "labeled_at" in frame else labelled


_NOTHING_SET_ASIDE = pd.DataFrame({c: pd.array([], dtype="Int64" if c == "reject_row" else STRING_DTYPE)
                                   for c in REJECT_COLUMNS})


def _before_snapshot(frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Reject records for messages the served snapshot (as of ``as_of``) would have counted, and why.

    The snapshot holds counts, not message ids: whether it did count a message
    (a refresh read it) or not (it reached the archive after that refresh)
    cannot be told, so both are named, with what counts them.
    """
    labelled = frame["label"].notna().to_numpy()
    cut = as_of.isoformat()
    when = np.where(labelled, frame["labeled_at"].fillna(frame["timestamp"]).astype(str),
                    frame["timestamp"].astype(str))
    sent = ("sent before the served snapshot's as_of " + cut + ": the snapshot counted it if its refresh read "
            "it; mail that reached the archive after that refresh is counted by the next rebuild (a refresh "
            "counts mail only in the period it was sent)")
    label = ("sent, and its label known, before the served snapshot's as_of " + cut + " (a label without "
             "labeled_at counts as known when sent): the snapshot holds both if its refresh read them; give "
             "labeled_at when a verdict became known later, or rebuild to count mail that reached the archive late")
    return _reject_records(frame, np.where(labelled, "labeled_at", "timestamp"), "before_snapshot", when,
                           np.where(labelled, label, sent))


def _label_counted(frame: pd.DataFrame, counted: pd.Series) -> pd.DataFrame:
    """Reject records for labels of messages whose label a served snapshot already counted."""
    before = counted.reindex(frame["message_id"]).astype(str).to_numpy()
    explain = [f"the served snapshot already counted this message's label {b!r} (the overlay held it until the "
               "reload that brought that snapshot), and was written before snapshots kept a ledger of counted "
               "labels, so it cannot retract that one: another label, or the same one again, counts only in a "
               "rebuild" for b in before]
    return _reject_records(frame, np.full(len(frame), "label"), "label_counted", frame["label"].astype(str), explain)


def _reject_records(frame: pd.DataFrame, column, reason: str, value, explain) -> pd.DataFrame:
    """The reject columns of :attr:`commgraph.graph.Messages.rejects` for messages of ``frame``, then the rows."""
    meta = pd.DataFrame({
        "reject_column": pd.array(column, dtype=STRING_DTYPE),
        "reject_reason": pd.array([reason] * len(frame), dtype=STRING_DTYPE),
        "reject_value": pd.array(value, dtype=STRING_DTYPE),
        "reject_message": pd.array([f"{c}={v!r}; {reason}: {e}" for c, v, e in zip(column, value, explain)],
                                   dtype=STRING_DTYPE),
        "reject_action": pd.array(["row_rejected"] * len(frame), dtype=STRING_DTYPE),
        # Validated messages keep their rows' labels, not positions: Scorer.observe numbers the rows it was given.
        "reject_row": pd.array([None] * len(frame), dtype="Int64"),
    }, index=frame.index)
    return pd.concat([meta, frame], axis=1)


class Overlay:
    """Observed mail per tenant since its snapshot, and the combined view of each tenant (built on first use).

    Parameters
    ----------
    prepare : callable, optional
        ``prepare(view, lookalikes=bool)``, applied to each combined view before
        it serves (the scorer builds its indexes there, so no request pays for
        them); ``lookalikes`` says whether checking every sender domain for
        look-alikes is cheap (the base view's results were shared). Default: none.

    Notes
    -----
    ``as_of`` (None until the first :meth:`observe`) is the instant the delta
    is complete up to; it never moves back. A tenant whose snapshot is at or
    after it is served from its snapshot alone. A tenant without a prior of its
    own borrows the global prior its snapshot carries, as :func:`refresh` does,
    until the next published snapshot brings a new one.

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> from commgraph.graph import validate
    >>> base = SnapshotView(_example())
    >>> overlay = Overlay()
    >>> mail = validate(pd.DataFrame({"tenant_id": ["acme"], "message_id": ["n1"],
    ...     "timestamp": ["2024-05-04T09:00Z"], "sender": ["x@new.com"], "recipients": ["cy@acme.com"]}),
    ...     tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> overlay.observe(mail, as_of=pd.Timestamp("2024-05-04T09:01Z")).empty
    True
    >>> view = overlay.view("acme", base)
    >>> view.snapshot.as_of, int(view.lookup("sender", mail.frame["sender_key"].to_numpy())[0]) >= 0
    (Timestamp('2024-05-04 09:01:00+0000', tz='UTC'), True)
    >>> overlay.view("acme", base) is view   # kept until the next observe or reload
    True
    >>> overlay.pending()
    {'acme': 1}
    """

    def __init__(self, prepare: Callable[..., SnapshotView] | None = None):
        self.prepare = prepare
        self.as_of: pd.Timestamp | None = None
        self._parts: dict[str, list[Messages]] = {}
        # tenant -> the identity (sender, sender key, time) of each message id observed since its snapshot
        self._seen: dict[str, dict[str, _Identity]] = {}
        self._generation: dict[str, int] = {}
        # tenant -> (base view, delta generation, as_of in ns, combined view)
        self._views: dict[str, tuple[SnapshotView, int, int, SnapshotView]] = {}
        self._lock = threading.Lock()  # guards parts, generations and as_of (held briefly)
        self._building: dict[str, threading.Lock] = {}  # one combined view built at a time per tenant
        # tenant -> label per message id that a served snapshot counted after the overlay held it
        self._counted: dict[str, pd.Series] = {}
        # tenant -> what each retire dropped, oldest first, for a call still reading a snapshot a reload replaced
        # (it read the scorer's snapshots just before the swap). One entry per retire: a call that spans several
        # reads the mail of each (a tuple, replaced whole under the lock, so a lookup reads it without the lock).
        self._retired: dict[str, tuple[_Retired, ...]] = {}

    def observe(self, messages: Messages, *, as_of: pd.Timestamp,
                covered: Mapping[str, pd.Timestamp] | None = None) -> pd.DataFrame:
        """Add validated messages (of tenants the caller checked it serves) and move as_of forward.

        ``covered`` gives, per tenant, the as_of of the snapshot served: rows
        it would have counted (mail before it, with any label known before it)
        are not kept, since no view would read them, and come back instead.

        Returns
        -------
        DataFrame
            The messages not kept, one row each: the reject columns of
            :attr:`commgraph.graph.Messages.rejects` then the validated message
            row (only the reject columns when every message was kept).
            ``reject_reason`` is ``before_snapshot`` (the served snapshot would
            have counted it) or ``label_counted`` (a label for a message whose
            label a snapshot without a ledger of counted labels took over from
            this overlay in :meth:`retire`: it would count twice) or
            ``duplicate_message_id`` (the id of a message observed first with
            another sender or time, earlier in this call or held from one
            before: another message, which scoring rejects too, not a copy).

        Examples
        --------
        >>> Overlay().observe(None, as_of=pd.Timestamp("2024-05-04T09:00Z"))
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: The 'messages' parameter of Overlay.observe must be Messages. Got NoneType instead.
        """
        if not isinstance(messages, Messages):
            raise ConfigError(f"The 'messages' parameter of Overlay.observe must be Messages. "
                              f"Got {type(messages).__name__} instead.")
        set_aside = []
        with self._lock:
            for tenant, retired in list(self._retired.items()):
                needed = _still_needed(retired)
                if len(needed) < len(retired):  # no call can read the snapshots the rest was kept for any more
                    self._keep_retired(tenant, needed)
            if self.as_of is not None and as_of < self.as_of:
                raise ConfigError(f"The 'as_of' parameter of observe must not move back: the overlay is complete "
                                  f"up to {self.as_of.isoformat()}. Got {as_of.isoformat()!r} instead.")
            for tenant, part in (messages.by_tenant() if len(messages) else {}).items():  # (split in one pass)
                # The caller has the rejects: the delta keeps messages only.
                part = Messages(part.frame, part.edges(message_columns=()), part.rejects.iloc[:0])
                # Checked before the snapshot's cut: a twin of a copy set aside as before_snapshot is one all the same
                # (scoring rejects it as a copy of that message too), in this call or a later one.
                seen = self._seen.setdefault(tenant, {})
                twin, first, new = _twins(part, seen)
                seen.update(new)
                if twin.any():
                    set_aside.append(_twin_records(part.frame[twin], first))
                    part = part.subset(~twin)
                if covered is not None and tenant in covered:
                    keep = _uncovered(part, covered[tenant])
                    if not keep.all():
                        set_aside.append(_before_snapshot(part.frame[~keep], covered[tenant]))
                        part = part.subset(keep)
                counted = self._counted.get(tenant)
                if counted is not None and len(part):
                    again = (part.frame["label"].notna() & part.frame["message_id"].isin(counted.index)).to_numpy()
                    if again.any():
                        set_aside.append(_label_counted(part.frame[again], counted))
                        part = part.subset(~again)
                if len(part):
                    self._parts.setdefault(tenant, []).append(part)
                    self._generation[tenant] = self._generation.get(tenant, 0) + 1
            self.as_of = as_of
        if set_aside:
            return pd.concat(set_aside)
        return _NOTHING_SET_ASIDE.copy()  # the common case: no frame of the messages built for nothing

    def _delta(self, tenant: str) -> tuple[Messages | None, int, pd.Timestamp | None]:
        """The tenant's delta as one table (latest version of each message), its generation and the as_of."""
        with self._lock:
            parts = list(self._parts.get(tenant, ()))
            generation = self._generation.get(tenant, 0)
            as_of = self.as_of
        if not parts:
            return None, generation, as_of
        kept = _compacted(parts, as_of)
        joined = _as_read(kept)
        if len(parts) > 1 or len(kept) > 1:
            with self._lock:  # keep the compacted parts, unless an observe came in between
                if self._generation.get(tenant, 0) == generation:
                    self._parts[tenant] = kept
        return joined, generation, as_of

    def view(self, tenant: str, base: SnapshotView) -> SnapshotView:
        """The tenant's snapshot with its delta folded in, as of the overlay's as_of (``base`` when nothing to add).

        Built on the first call after an observe or a reload, then kept.
        """
        as_of = self.as_of
        if as_of is None or base.snapshot is None or as_of <= base.snapshot.as_of:
            return base
        found = self._views.get(tenant)
        if found is not None and found[0] is base and found[1] == self._generation.get(tenant, 0) \
                and found[2] == as_of.value:
            return found[3]
        with self._lock:
            building = self._building.setdefault(tenant, threading.Lock())
        with building:
            delta, generation, as_of = self._delta(tenant)
            found = self._views.get(tenant)
            if found is not None and found[0] is base and found[1] == generation and found[2] == as_of.value:
                return found[3]  # another thread built it meanwhile
            given_back = None
            if self._retired.get(tenant):  # (none, the common case: nothing to look up)
                with self._lock:  # what the retires dropped and the delta they left, read as one
                    given_back = _given_back(self._retired.get(tenant, ()), base)
                    held = list(self._parts.get(tenant, ())) if given_back is not None else []
            stale = given_back is not None
            if stale:  # a base a reload replaced: the mail it and every later one dropped, back
                if given_back or held:
                    delta = _as_read(_compacted([*given_back, *held], as_of))
                else:
                    delta = None
            # A privacy-mode tenant's observed mail is keyed with its secret, as its snapshot was.
            secret = base.keys.secret if base.keys is not None else None
            view = SnapshotView(refresh_observed(base.snapshot, delta, as_of=as_of, secret=secret), secret=base.keys)
            shared = view.share_lookalikes(base)
            if self.prepare is not None:
                # With the base's look-alike results, checking the new sender domains is cheap; without
                # them, every domain of the snapshot would be: lookups check the ones they meet instead.
                view = self.prepare(view, lookalikes=shared)
            if not stale:  # (a call on a replaced base is the last: its view is not kept)
                self._views[tenant] = (base, generation, as_of.value, view)
            return view

    def retire(self, tenant: str, as_of: pd.Timestamp, *, ledger: bool = True, replaced: Any = None) -> None:
        """Drop what a newly served snapshot as of ``as_of`` covers: mail before it whose label (if any) was known.

        A snapshot with a ledger of counted labels (``ledger``, as every
        snapshot written since commgraph keeps one) retracts a label that
        changes later, so a later label for such a message counts as any other.
        For one without (``ledger=False``), the labels so dropped are
        remembered by message id (for as long as the overlay lives: labels are
        few), so that :meth:`observe` sets aside a later label for one of those
        messages instead of counting a second.

        The mail dropped is kept for a lookup still reading the snapshot
        ``replaced`` (the view served before), or one an earlier retire
        replaced (it reads the mail of every retire since): until those views
        are gone, or, without ``replaced``, until the tenant's next retire.

        Examples
        --------
        >>> overlay = Overlay()
        >>> overlay.retire("acme", pd.Timestamp("2024-05-04T09:00Z"))
        >>> overlay.pending()
        {}
        """
        with self._lock:  # a reload is rare: hold observes back while the delta shrinks
            self._views.pop(tenant, None)  # built on the replaced snapshot: let it go
            if ledger:  # (labels are remembered only while the snapshot served cannot retract one)
                self._counted.pop(tenant, None)
            # An entry kept without a replaced view serves until this retire; the others while a call may need them.
            retired = _still_needed(tuple(held for held in self._retired.get(tenant, ()) if held.replaced is not None))
            # A call that read the replaced snapshot just before the swap reads it with the mail dropped here too,
            # never with a delta trimmed for the new one; kept while such a call may run (the replaced view alive).
            # Kept when nothing is dropped too: a call on that view needs what later retires drop, found from its
            # entry on (none before anything is observed: no call reads the overlay then).
            parts = self._parts.pop(tenant, None)
            self._seen.pop(tenant, None)  # (the ids of the mail still held: below)
            if not parts:
                if replaced is not None and self.as_of is not None:
                    retired = (*retired, _Retired(as_of, None, weakref.ref(replaced)))
                self._keep_retired(tenant, retired)
                return
            compacted = _compacted(parts, self.as_of)
            delta = compacted[0] if len(compacted) == 1 else Messages.concat(compacted, copies=True)
            keep = _uncovered(delta, as_of)
            dropped = delta.subset(~keep) if (~keep).any() else None
            if replaced is not None or dropped is not None:
                alive = weakref.ref(replaced) if replaced is not None else None
                retired = (*retired, _Retired(as_of, dropped, alive))
            self._keep_retired(tenant, retired)
            # The labels the new snapshot counted, one per message: the latest known before its as_of.
            covered = _merged(dropped) if dropped is not None else delta.subset(~keep)
            labelled = covered.frame[covered.frame["label"].notna().to_numpy()]
            if len(labelled) and not ledger:  # it counts these labels now: a later label for them would count twice
                counted = pd.Series(labelled["label"].astype(str).to_numpy(), index=labelled["message_id"].to_numpy())
                before = self._counted.get(tenant)
                if before is not None:
                    counted = pd.concat([before, counted])
                    counted = counted[~counted.index.duplicated(keep="last")]
                self._counted[tenant] = counted
            kept = delta.subset(keep)
            if len(kept):
                self._parts[tenant] = [kept]
                self._seen[tenant] = _twins(kept, {})[2]
            self._generation[tenant] = self._generation.get(tenant, 0) + 1

    def _keep_retired(self, tenant: str, retired: tuple[_Retired, ...]) -> None:
        """Keep a tenant's retired entries (under the lock), none held for a tenant without any."""
        if retired:
            self._retired[tenant] = retired
        else:
            self._retired.pop(tenant, None)

    def pending(self) -> dict[str, int]:
        """Observed messages held per tenant (rows a published snapshot has not covered yet)."""
        with self._lock:
            return {t: sum(len(p) for p in parts) for t, parts in sorted(self._parts.items()) if parts}

    def __repr__(self) -> str:
        held = self.pending()
        when = "nothing observed" if self.as_of is None else f"as of {self.as_of.isoformat()}"
        return f"Overlay({when}; {sum(held.values())} messages held for {len(held)} tenants)"
