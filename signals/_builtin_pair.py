"""Built-in pair (sender -> recipient) and recipient signals (one value per edge)."""

from __future__ import annotations

from typing import Any

import numpy as np

from commgraph.baselines import pair_keys

from ._builtin_sender import NAN, days_between, window_column
from ._provider import SignalProvider, SignalSpec, builtin_compute_one, register_provider
from ._view import SnapshotView, gather

__all__ = ["PairSignals", "RecipientSignals"]

_NAT = np.iinfo(np.int64).min


@register_provider
class PairSignals(SignalProvider):
    """Signals about the (sender, recipient) relationship.

    Examples
    --------
    >>> PairSignals().names
    ['pair_messages', 'pair_is_first_contact', 'pair_days_since_last', 'pair_recipient_replied']
    """

    name = "pair"
    level = "edge"
    signals = (
        SignalSpec("pair_messages", "int32", "Messages this sender sent this recipient (message level: the "
                   "least-known recipient).", "count", "min", suspicious="low"),
        SignalSpec("pair_is_first_contact", "int8", "1 if this sender never wrote to this recipient before "
                   "(message level: any recipient).", "flag", "any", default=1.0, suspicious="high"),
        SignalSpec("pair_days_since_last", "float32", "Days since this sender last wrote to this recipient "
                   "(nan: never; message level: the longest gap among known pairs).", "days", "max", default=NAN,
                   suspicious="high"),
        SignalSpec("pair_recipient_replied", "int8", "1 if this recipient has written to this sender "
                   "(message level: any recipient).", "flag", "any", suspicious="low"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        pos = batch.rows(view, "pair")
        col = view.column
        n = gather(col("pair", "n_messages"), pos, 0, "int32")
        ts = batch.timestamp[batch.edge_message]
        # The reverse pair is probed on its own: when a mailbox wrote first, the
        # correspondent's first reply has no pair row of its own to carry n_reverse.
        reverse = view.lookup("pair", pair_keys(batch.recipient_key, batch.sender_key[batch.edge_message]))
        return {
            "pair_messages": n,
            "pair_is_first_contact": (n == 0).astype(np.int8),
            "pair_days_since_last": days_between(ts, gather(col("pair", "last_seen"), pos, _NAT), never=NAN),
            "pair_recipient_replied": (gather(col("pair", "n_messages"), reverse, 0, "int32") > 0).astype(np.int8),
        }

    compute_one = builtin_compute_one


@register_provider
class RecipientSignals(SignalProvider):
    """Signals about the recipient mailbox.

    Examples
    --------
    >>> RecipientSignals().names[0]
    'recipient_safe_likelihood'
    """

    name = "recipient"
    level = "edge"
    signals = (
        SignalSpec("recipient_safe_likelihood", "float32", "Smoothed probability that inbound mail to this "
                   "recipient is safe, from the labels of its inbound mail (internal mail counts toward "
                   "sender_safe_likelihood, not here; the tenant prior mean for an unknown recipient; message "
                   "level: the lowest).",
                   "probability", "min", default=None, suspicious="low"),
        SignalSpec("recipient_safe_likelihood_lower", "float32", "Lower credible bound of that probability "
                   "(the prior's bound for an unknown recipient; message level: the lowest bound, which may be "
                   "another recipient's than the lowest probability).", "probability", "min",
                   default=None, suspicious="low"),
        SignalSpec("recipient_inbound_30d", "int32", "Inbound messages this recipient received in the 30 days "
                   "before the snapshot (message level: the mean).", "count", "mean"),
        SignalSpec("recipient_first_contact_rate", "float32", "Share of this recipient's inbound mail that came "
                   "from first-time senders (0 if unknown; message level: the highest).", "rate", "max",
                   suspicious="high"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        pos = batch.rows(view, "recipient")
        col = view.column
        return {
            "recipient_safe_likelihood": gather(col("recipient", "likelihood_safe"), pos,
                                                view.prior_mean["recipient"], "float32"),
            "recipient_safe_likelihood_lower": gather(col("recipient", "likelihood_safe_lower"), pos,
                                                      view.prior_lower["recipient"], "float32"),
            "recipient_inbound_30d": gather(col("recipient", window_column(
                view, "recipient", "n_inbound", "30d", "recipient_inbound_30d")), pos, 0, "int32"),
            "recipient_first_contact_rate": gather(col("recipient", "first_time_share"), pos, 0.0, "float32"),
        }

    compute_one = builtin_compute_one
