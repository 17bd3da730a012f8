"""A tenant's snapshot from pieces of its mail: a partial state per piece, merged, then finished.

The bounded-memory refresh (chunks of a tenant's archive) and the Spark engine
(partitions of a distributed archive) build a snapshot the same way: each piece
becomes a partial :class:`TenantState` through the aggregate code of a whole
build, the partials merge (:meth:`TenantState.merge`: merged parts equal the
whole), and the merged state is finished into a :class:`Snapshot` as
:func:`build_baselines` finishes a tenant built on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from commgraph.graph import CommGraphError, Messages

from ._build import _finish, _global_priors, _tenant_priors, _windows
from ._config import BaselineConfig, duration_ns
from ._events import TenantEvents
from ._snapshot import Snapshot
from ._state import TenantState
from ._tables import derive_tables

__all__ = ["ReadCounts", "partial_state", "merge_states", "finish_snapshot", "no_usable_mail"]


@dataclass
class ReadCounts:
    """Input rows of one tenant read so far, over any number of pieces: what a :class:`TenantOutcome` reports.

    Examples
    --------
    >>> counts = ReadCounts()
    >>> counts.add({"messages": 5, "rejected_rows": 1, "rejects_by_reason": {"missing_value": 1}})
    >>> counts.add({"messages": 2, "rejected_rows": 0, "rejects_by_reason": {}})
    >>> counts.outcome_fields()
    {'rows_read': 8, 'rows_rejected': 1, 'rejects_by_reason': {'missing_value': 1}}
    """

    messages: int = 0
    rejected: int = 0
    by_reason: Counter = field(default_factory=Counter)
    #: The first reject message of each reason (what was wrong and the fix), for a tenant that fails for them.
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, summary: dict[str, Any]) -> None:
        """Add a piece's :meth:`Messages.summary` (or another ``ReadCounts``' :meth:`as_summary`)."""
        self.messages += int(summary["messages"])
        self.rejected += int(summary["rejected_rows"])
        self.by_reason.update({str(k): int(v) for k, v in summary["rejects_by_reason"].items()})
        for reason, text in summary.get("reject_examples", {}).items():
            self.examples.setdefault(str(reason), str(text))

    def add_messages(self, messages: Messages) -> None:
        """Add a piece of validated mail: its :meth:`Messages.summary`, and the first reject message of each reason.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> counts = ReadCounts()
        >>> counts.add_messages(validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1"], "timestamp":
        ...     ["2024-05-02 09:00"], "sender": "a@x.com", "recipients": "b@acme.com"}), strict=False))
        >>> counts.examples["naive_timestamp"][:60]
        "timestamp='2024-05-02 09:00'; naive_timestamp: pass timezone"
        """
        rejects = messages.rejects
        first = rejects.drop_duplicates("reject_reason") if len(rejects) else rejects
        self.add({**messages.summary(), "reject_examples": dict(zip(first["reject_reason"].astype(str),
                                                                    first["reject_message"].astype(str)))}
                 if len(first) else messages.summary())

    def as_summary(self) -> dict[str, Any]:
        """The counts in the shape of :meth:`Messages.summary` (to ship and :meth:`add` elsewhere)."""
        return {"messages": self.messages, "rejected_rows": self.rejected, "rejects_by_reason": dict(self.by_reason),
                "reject_examples": dict(self.examples)}

    def outcome_fields(self) -> dict[str, Any]:
        """``rows_read``, ``rows_rejected`` and ``rejects_by_reason`` (sorted by reason) of a TenantOutcome."""
        return {"rows_read": self.messages + self.rejected, "rows_rejected": self.rejected,
                "rejects_by_reason": dict(sorted(self.by_reason.items()))}


class NoUsableMail(CommGraphError):
    """A tenant none of whose rows passed the message contract; ``fields`` are its outcome's read counts
    (rows read and rejected, rejects by reason), for the job's report."""

    def __init__(self, message: str, fields: dict[str, Any]):
        super().__init__(message)
        self.fields = fields


def failure_counts(exc: BaseException) -> dict[str, Any]:
    """The read counts a tenant's failure carries (a tenant without usable mail), for its outcome; else none."""
    return dict(exc.fields) if isinstance(exc, NoUsableMail) else {}


def no_usable_mail(tenant_id: str, counts: ReadCounts) -> NoUsableMail:
    """The failure of a tenant none of whose rows passed the message contract, with the first row's problem and
    fix of each reason (its most frequent three).

    Examples
    --------
    >>> counts = ReadCounts()
    >>> counts.add({"messages": 0, "rejected_rows": 2, "rejects_by_reason": {"naive_timestamp": 2},
    ...             "reject_examples": {"naive_timestamp": "timestamp='09:00'; naive_timestamp: pass timezone=..."}})
    >>> print(no_usable_mail("acme", counts))
    tenant 'acme': no usable mail in the input (2 rows rejected: {'naive_timestamp': 2}); the first row of each \
problem: timestamp='09:00'; naive_timestamp: pass timezone=...
    """
    fields = counts.outcome_fields()
    examples = [counts.examples[reason] for reason, _ in counts.by_reason.most_common(3) if reason in counts.examples]
    shown = f"; the first row of each problem: {' | '.join(examples)}" if examples else ""
    return NoUsableMail(f"tenant {tenant_id!r}: no usable mail in the input ({fields['rows_rejected']} rows rejected: "
                        f"{fields['rejects_by_reason']}){shown}", fields)


def partial_state(events: TenantEvents, *, as_of: pd.Timestamp, config: BaselineConfig) -> TenantState:
    """The state of one piece of a tenant's mail, with the aggregate code of a whole build."""
    return TenantState.build(events.tenant_id, events.rows, as_of=as_of.value, windows=_windows(config),
                             settle_delay=duration_ns(config.settle_delay), half_life=duration_ns(config.half_life),
                             names=events.names, fingerprint=events.fingerprint)


def merge_states(states: Iterable[TenantState]) -> TenantState | None:
    """Merge partial states as they come, pairing equal-sized merges (a binary counter).

    Holds O(log n) states at once and touches each row O(log n) times, where
    merging each new piece into one running state would redo the growing whole
    every time. None when there is no state.
    """
    stack: list[tuple[int, TenantState]] = []
    for state in states:
        level = 0
        while stack and stack[-1][0] == level:
            state = stack.pop()[1].merge(state)
            level += 1
        stack.append((level, state))
    merged = None
    while stack:
        state = stack.pop()[1]
        merged = state if merged is None else state.merge(merged)
    return merged


def finish_snapshot(state: TenantState, config: BaselineConfig, secret: bytes | None = None) -> Snapshot:
    """The snapshot of a tenant built on its own, from its (merged) state.

    As in the refresh job, the tenant's cold-start prior comes from its own mail
    or the configuration, never from other tenants. ``secret``: the tenant's, in
    privacy mode (the state's keys were hashed with it; the snapshot records its check).
    """
    tables = derive_tables(state, config)
    infos = _tenant_priors(tables, config, summarise=config.global_prior is None)
    return _finish(state, tables, infos, config, _global_priors([infos], config), secret)
