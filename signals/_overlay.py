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
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from commgraph.baselines import refresh
from commgraph.graph import ConfigError, Messages

from ._view import SnapshotView

__all__ = ["Overlay"]


def _latest_versions(messages: Messages) -> Messages:
    """One row per message id: the one observed last (a message observed again carries its late label)."""
    repeated = messages.frame["message_id"].duplicated(keep="last").to_numpy()
    return messages.subset(~repeated) if repeated.any() else messages


def _uncovered(messages: Messages, as_of: pd.Timestamp) -> np.ndarray:
    """Rows a snapshot as of ``as_of`` has not counted: mail at or after it, or a label known at or after it.

    A refresh from that snapshot reads nothing else of the delta (older mail is
    counted, older labels known), so dropping the rest changes no view.
    """
    frame = messages.frame
    ts = frame["timestamp"]
    if "labeled_at" in frame:
        label_time = frame["labeled_at"].fillna(ts)  # unknown labelling time: known when sent
    else:
        label_time = ts
    labelled = frame["label"].notna() if "label" in frame else pd.Series(False, index=frame.index)
    return ((ts >= as_of) | (labelled & (label_time >= as_of))).to_numpy()


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
    >>> overlay.observe(mail, as_of=pd.Timestamp("2024-05-04T09:01Z"))
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
        self._generation: dict[str, int] = {}
        # tenant -> (base view, delta generation, as_of in ns, combined view)
        self._views: dict[str, tuple[SnapshotView, int, int, SnapshotView]] = {}
        self._lock = threading.Lock()  # guards parts, generations and as_of (held briefly)
        self._building: dict[str, threading.Lock] = {}  # one combined view built at a time per tenant

    def observe(self, messages: Messages, *, as_of: pd.Timestamp,
                covered: Mapping[str, pd.Timestamp] | None = None) -> None:
        """Add validated messages (of tenants the caller checked it serves) and move as_of forward.

        ``covered`` gives, per tenant, the as_of of the snapshot served: rows it
        already counted (mail before it, with any label known before it) are
        not kept, since no view would read them.

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
        with self._lock:
            if self.as_of is not None and as_of < self.as_of:
                raise ConfigError(f"The 'as_of' parameter of observe must not move back: the overlay is complete "
                                  f"up to {self.as_of.isoformat()}. Got {as_of.isoformat()!r} instead.")
            for tenant in messages.tenants if len(messages) else ():
                part = messages.for_tenant(tenant)
                if covered is not None and tenant in covered:
                    part = part.subset(_uncovered(part, covered[tenant]))
                if len(part):
                    self._parts.setdefault(tenant, []).append(part)
                    self._generation[tenant] = self._generation.get(tenant, 0) + 1
            self.as_of = as_of

    def _delta(self, tenant: str) -> tuple[Messages | None, int, pd.Timestamp | None]:
        """The tenant's delta as one table (latest version of each message), its generation and the as_of."""
        with self._lock:
            parts = list(self._parts.get(tenant, ()))
            generation = self._generation.get(tenant, 0)
            as_of = self.as_of
        if not parts:
            return None, generation, as_of
        joined = _latest_versions(parts[0] if len(parts) == 1 else Messages.concat(parts))
        if len(parts) > 1:
            with self._lock:  # keep the joined table, unless an observe came in between
                if self._generation.get(tenant, 0) == generation:
                    self._parts[tenant] = [joined]
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
            view = SnapshotView(refresh(base.snapshot, delta, as_of=as_of))
            shared = view.share_lookalikes(base)
            if self.prepare is not None:
                # With the base's look-alike results, checking the new sender domains is cheap; without
                # them, every domain of the snapshot would be: lookups check the ones they meet instead.
                view = self.prepare(view, lookalikes=shared)
            self._views[tenant] = (base, generation, as_of.value, view)
            return view

    def retire(self, tenant: str, as_of: pd.Timestamp) -> None:
        """Drop what a newly served snapshot as of ``as_of`` covers: mail before it whose label (if any) was known.

        Examples
        --------
        >>> overlay = Overlay()
        >>> overlay.retire("acme", pd.Timestamp("2024-05-04T09:00Z"))
        >>> overlay.pending()
        {}
        """
        with self._lock:  # a reload is rare: hold observes back while the delta shrinks
            self._views.pop(tenant, None)  # built on the replaced snapshot: let it go
            parts = self._parts.pop(tenant, None)
            if not parts:
                return
            delta = _latest_versions(parts[0] if len(parts) == 1 else Messages.concat(parts))
            kept = delta.subset(_uncovered(delta, as_of))
            if len(kept):
                self._parts[tenant] = [kept]
            self._generation[tenant] = self._generation.get(tenant, 0) + 1

    def pending(self) -> dict[str, int]:
        """Observed messages held per tenant (rows a published snapshot has not covered yet)."""
        with self._lock:
            return {t: sum(len(p) for p in parts) for t, parts in sorted(self._parts.items()) if parts}

    def __repr__(self) -> str:
        held = self.pending()
        when = "nothing observed" if self.as_of is None else f"as of {self.as_of.isoformat()}"
        return f"Overlay({when}; {sum(held.values())} messages held for {len(held)} tenants)"
