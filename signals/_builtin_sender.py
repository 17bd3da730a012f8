"""Built-in sender and sender-domain signals (one value per message)."""

from __future__ import annotations

from typing import Any

import numpy as np

from commgraph.baselines._sweeps import _compiled, warmed_by
from commgraph.graph import ConfigError

from ._freemail import freemail_flags
from ._provider import SignalProvider, SignalSpec, builtin_compute_one, register_provider
from ._view import DAY_NS, SnapshotView, gather, probe

__all__ = ["SenderSignals", "SenderDomainSignals", "days_between"]

_NAT = np.iinfo(np.int64).min
NAN = float("nan")


def days_between(ts: np.ndarray, then: np.ndarray, *, never: float, compiled: bool = False) -> np.ndarray:
    """Days from ``then`` (int64 ns, NaT = int64 min) to ``ts``, at least 0; ``never`` where ``then`` is NaT.

    ``compiled`` (a backfill, which loads numba anyway: hundreds of thousands of edges per tenant) takes one
    compiled pass (:func:`_days_kernel`) instead of numpy's six, with their temporaries. Scoring leaves it off
    whatever the batch's size: loading numba (or compiling, with a cold cache) inside a scoring call would stall
    it. Both make the same operations: the same bits.

    Examples
    --------
    >>> days_between(np.array([3 * DAY_NS, DAY_NS, 5]), np.array([DAY_NS, 2 * DAY_NS, _NAT]), never=NAN).tolist()
    [2.0, 0.0, nan]
    """
    if (compiled and isinstance(ts, np.ndarray) and isinstance(then, np.ndarray)
            and ts.dtype == then.dtype == np.int64 and ts.shape == then.shape and ts.ndim == 1):
        out = np.empty(len(then), np.float32)
        _days_kernel(np.ascontiguousarray(ts), np.ascontiguousarray(then), float(never), out)
        return out
    return _days_between_numpy(ts, then, never=never)



def _days_between_numpy(ts: np.ndarray, then: np.ndarray, *, never: float) -> np.ndarray:
    """:func:`days_between` by numpy's passes (and the reference its compiled pass is tested against)."""
    known = then != _NAT
    # NaT rows subtract garbage (integer arrays wrap, silently) that ``never`` replaces: one pass to mask, not three.
    delta = np.subtract(ts, then)
    np.maximum(delta, 0, out=delta)
    return np.where(known, delta / DAY_NS, never).astype(np.float32)


_DAY = float(DAY_NS)


@_compiled
def _days_kernel(ts, then, never, out):  # pragma: no cover - compiled
    # numpy's operations per value: int64 subtraction (wrapping), the float64 quotient rounded to float32
    # (no fastmath: the same bits).
    nat = np.int64(_NAT)
    never32 = np.float32(never)
    for i in range(len(out)):
        t = then[i]
        if t == nat:
            out[i] = never32
        else:
            d = ts[i] - t
            out[i] = np.float32(np.float64(d if d > 0 else 0) / _DAY)


@warmed_by
def _warm() -> None:
    """The compiled pass over writable and read-only times (a tenant's times are read-only views of its batch;
    numba compiles each kind apart) (for ``warm_up``)."""
    for ts_writable in (True, False):
        for then_writable in (True, False):
            ts, then = np.zeros(1, np.int64), np.zeros(1, np.int64)
            ts.flags.writeable, then.flags.writeable = ts_writable, then_writable
            _days_kernel(ts, then, 0.0, np.empty(1, np.float32))


def window_column(view: SnapshotView, table: str, prefix: str, window: str, signal: str) -> str:
    name = f"{prefix}_{window}"
    if view.snapshot is not None and not view.has_column(table, name):
        raise ConfigError(f"signal {signal!r} needs the {window} window in the baselines of tenant "
                          f"{view.tenant_id!r}; their windows are {list(view.snapshot.config.window_names)}. Keep "
                          f"the {window} window in the baselines' configuration (windows = [...]) to serve the "
                          "built-in signals, or score with a SignalSet of signals the windows have")
    return name


@register_provider
class SenderSignals(SignalProvider):
    """Signals about the sender address (the tenant's baseline of that sender).

    Examples
    --------
    >>> [s.name for s in SenderSignals.signals][:3]
    ['sender_messages_7d', 'sender_messages_30d', 'sender_messages_90d']
    """

    name = "sender"
    level = "message"
    signals = (
        SignalSpec("sender_messages_7d", "int32", "Messages from this sender in the 7 days before the snapshot.",
                   "count", suspicious="low"),
        SignalSpec("sender_messages_30d", "int32", "Messages from this sender in the 30 days before the snapshot.",
                   "count", suspicious="low"),
        SignalSpec("sender_messages_90d", "int32", "Messages from this sender in the 90 days before the snapshot.",
                   "count", suspicious="low"),
        SignalSpec("sender_messages_decayed", "float32", "Exponentially decayed message count of this sender "
                   "(baseline half-life), as of the snapshot.", "count", suspicious="low"),
        SignalSpec("sender_days_known", "float32", "Days from the sender's first message to this one (0 if new).",
                   "days", suspicious="low"),
        SignalSpec("sender_active_days", "int32", "Distinct days on which this sender sent mail.", "count",
                   suspicious="low"),
        SignalSpec("sender_is_new", "int8", "1 if the tenant never saw mail from this sender, in "
                   "any direction (an internal address that only wrote outside is known).", "flag",
                   default=1.0, suspicious="high"),
        SignalSpec("sender_distinct_recipients", "int32", "Distinct recipients this sender has written to.",
                   "count", suspicious="low"),
        SignalSpec("sender_safe_likelihood", "float32", "Smoothed probability that this sender's mail is safe "
                   "(Beta-binomial posterior mean; the tenant prior mean for a new sender).", "probability",
                   default=None, suspicious="low"),
        SignalSpec("sender_attack_messages", "int32", "Messages from this sender labelled attack.", "count",
                   suspicious="high"),
        SignalSpec("sender_solicited_messages", "int32", "Messages the tenant sent to this address.", "count",
                   suspicious="low"),
        SignalSpec("sender_days_since_solicited", "float32", "Days since the tenant last wrote to this address "
                   "(nan: never).", "days", default=NAN, suspicious="high"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        pos = batch.rows(view, "sender")
        col = view.column
        ts = batch.timestamp
        out = {}
        for w in ("7d", "30d", "90d"):
            out[f"sender_messages_{w}"] = gather(
                col("sender", window_column(view, "sender", "n_messages", w, f"sender_messages_{w}")), pos, 0, "int32")
        out["sender_messages_decayed"] = gather(col("sender", "decayed_messages"), pos, 0.0, "float32")
        out["sender_days_known"] = days_between(ts, gather(col("sender", "first_seen"), pos, _NAT), never=0.0)
        out["sender_active_days"] = gather(col("sender", "active_days"), pos, 0, "int32")
        n = gather(col("sender", "n_messages"), pos, 0, "int32")
        out["sender_is_new"] = (n == 0).astype(np.int8)
        out["sender_distinct_recipients"] = gather(col("sender", "n_distinct_recipients"), pos, 0, "int32")
        out["sender_safe_likelihood"] = gather(col("sender", "likelihood_safe"), pos, view.prior_mean["sender"],
                                               "float32")
        out["sender_attack_messages"] = gather(col("sender", "n_attack"), pos, 0, "int32")
        index, counts, last = view.written_to()
        wpos = probe(index, batch.sender_key) if index is not None else np.full(batch.n_messages, -1, np.int64)
        out["sender_solicited_messages"] = gather(counts, wpos, 0, "int32")
        out["sender_days_since_solicited"] = days_between(ts, gather(last, wpos, _NAT), never=NAN)
        return out

    compute_one = builtin_compute_one


@register_provider
class SenderDomainSignals(SignalProvider):
    """Signals about the sender's registrable domain.

    A domain the tenant only wrote to is new as a sender domain, like an
    address it only wrote to (``sender_is_new``): no mail from it, so its
    counts are 0 and ``domain_is_new`` is 1, while
    ``domain_solicited_messages`` counts the tenant's mail to it.

    Examples
    --------
    >>> SenderDomainSignals().names[-3:]
    ['domain_is_freemail', 'domain_safe_likelihood', 'domain_solicited_messages']
    """

    name = "sender_domain"
    level = "message"
    signals = (
        SignalSpec("domain_messages_30d", "int32", "Messages from this domain in the 30 days before the snapshot.",
                   "count", suspicious="low"),
        SignalSpec("domain_days_known", "float32", "Days from the domain's first message to this one (0 if new).",
                   "days", suspicious="low"),
        SignalSpec("domain_distinct_senders", "int32", "Distinct addresses that sent from this domain.", "count",
                   suspicious="low"),
        SignalSpec("domain_is_new", "int8", "1 if the tenant never saw mail from this domain, in any "
                   "direction (even if it wrote to it: domain_solicited_messages counts that).", "flag",
                   default=1.0, suspicious="high"),
        SignalSpec("domain_is_freemail", "int8", "1 if the domain is a consumer mail provider (shipped list).",
                   "flag", suspicious="high"),
        SignalSpec("domain_safe_likelihood", "float32", "Smoothed probability that this domain's mail is safe "
                   "(the tenant prior mean for a new domain).", "probability", default=None, suspicious="low"),
        SignalSpec("domain_solicited_messages", "int32", "Messages the tenant sent to this domain.", "count",
                   suspicious="low"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        pos = batch.rows(view, "sender_domain")
        col = view.column
        out = {}
        out["domain_messages_30d"] = gather(
            col("sender_domain", window_column(view, "sender_domain", "n_messages", "30d", "domain_messages_30d")),
            pos, 0, "int32")
        out["domain_days_known"] = days_between(batch.timestamp, gather(col("sender_domain", "first_seen"), pos, _NAT),
                                                never=0.0)
        out["domain_distinct_senders"] = gather(col("sender_domain", "n_distinct_senders"), pos, 0, "int32")
        out["domain_is_new"] = (gather(col("sender_domain", "n_messages"), pos, 0, "int32") == 0).astype(np.int8)
        out["domain_is_freemail"] = freemail_flags(batch.sender_domain_code, batch.sender_domains,
                                                   batch.freemail_per_domain())
        out["domain_safe_likelihood"] = gather(col("sender_domain", "likelihood_safe"), pos,
                                               view.prior_mean["sender_domain"], "float32")
        out["domain_solicited_messages"] = gather(col("sender_domain", "n_outbound_to"), pos, 0, "int32")
        return out

    compute_one = builtin_compute_one
