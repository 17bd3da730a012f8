"""Why a signal has its value: the baseline evidence behind each signal of one message, in plain sentences."""

from __future__ import annotations

import html
import math
import warnings
from typing import Any, Mapping

import pandas as pd

from commgraph.baselines import Snapshot
from commgraph.graph import ConfigError
from commgraph.graph import normalise_display_name as _normalise_display_name

from ._batch import DIRECTION_CODES
from ._builtin_identity import HOUR_PSEUDO_COUNT, claimed_own_address
from ._freemail import is_freemail
from ._lookalike import CLOSE_DISTANCE, DISTANCE_CAP, is_established, nearest_one
from ._scalar import mix64, normalised_name, parse_one
from ._scorer import Scorer

__all__ = ["explain", "Explanation"]

_ENTITY_FIELDS = ("n_messages", "n_messages_30d", "first_seen", "last_seen", "active_days", "n_safe", "n_attack",
                  "n_spam", "n_presumed_safe", "likelihood_safe")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _row(view, table: str, key: int) -> dict[str, Any] | None:
    r = view.scalar().row(table, key)
    if r < 0:
        return None
    return view.snapshot.arrow(table).slice(r, 1).to_pylist()[0]


def _pick(row: dict | None, fields=_ENTITY_FIELDS) -> dict[str, Any]:
    if row is None:
        return {"seen": False}
    return {f: row[f] for f in fields if f in row}


def _days(v: float) -> str:
    return "never" if isinstance(v, float) and math.isnan(v) else f"{v:.1f} days"


def _impersonation(e: Mapping[str, Any]) -> str:
    """Why ``display_name_matches_internal`` is 1: the name of an internal mailbox on mail from outside (under
    that mailbox's own address too: inbound mail from it is spoofed), or on mail from an address inside that
    never used it; or an address at an own domain shown as the name.

    Examples
    --------
    >>> _impersonation({"display_name": "jane boss", "internal_addresses": ["jane@acme.com"], "inbound": False})
    "The display name 'jane boss' belongs to an internal mailbox (jane@acme.com) and this address never used it..."
    >>> _impersonation({"display_name": "jane boss", "internal_addresses": [], "privacy": True, "inbound": True})
    "The display name 'jane boss' belongs to an internal mailbox (privacy mode keeps no addresses for that name)..."
    >>> _impersonation({"message_display_name": "jane@acme.com", "claimed_address": "jane@acme.com", "inbound": True})
    "The display name 'jane@acme.com' shows the address jane@acme.com, at one of the tenant's own domains, on mail..."
    """
    if e.get("claimed_address") and not e.get("is_internal"):
        whence = "from outside the organisation." if e.get("inbound") else f"from another address ({e.get('sender')})."
        return (f"The display name {e.get('message_display_name')!r} shows the address {e['claimed_address']}, "
                f"at one of the tenant's own domains, on mail {whence}")
    owners = ", ".join(e.get("internal_addresses", [])[:3])
    if not owners:  # a privacy-mode snapshot stores no addresses: say so, rather than list none
        owners = "privacy mode keeps no addresses for that name" if e.get("privacy") else ""
    said = f"The display name {e.get('display_name')!r} belongs to an internal mailbox" + (
        f" ({owners})" if owners else "")
    if not e.get("inbound"):
        return f"{said} and this address never used it before."
    if e.get("under_own_address"):
        return f"{said} and this message came from outside the organisation under that mailbox's own address."
    return f"{said} and this message came from outside the organisation."


def _lookalike_distance(v: Any, e: Mapping[str, Any]) -> str:
    """Why ``lookalike_domain_distance`` has its value: the known domain the sender's resembles, if any; in
    privacy mode no comparison at all (the snapshot keeps no domain names), which the cap must not hide.

    Examples
    --------
    >>> _lookalike_distance(8, {"domain": "acrne.com", "resembles": None, "privacy": True})
    'acrne.com was not compared with any domain: a privacy-mode snapshot keeps no domain names to compare with, so...'
    """
    if e.get("privacy"):
        return (f"{e['domain']} was not compared with any domain: a privacy-mode snapshot keeps no domain names to "
                f"compare with, so the distance is always the cap ({DISTANCE_CAP}).")
    if e.get("resembles"):
        return (f"{e['domain']} is {v} edit(s) from the known domain {e['resembles']!r} after confusable characters "
                "are folded.")
    return f"{e['domain']} resembles no own or known-contact domain (within {DISTANCE_CAP - 1} edits)."


def _lookalike_close(v: Any, e: Mapping[str, Any]) -> str:
    """Why ``lookalike_domain_is_close`` has its value (in privacy mode: never checked, so always 0); a domain
    that resembles another but is never a look-alike says why (``never_close``, ``is_established``).

    Examples
    --------
    >>> _lookalike_close(0, {"domain": "mail.com", "resembles": "gmail.com", "provider": True})
    "mail.com is a consumer mail provider's domain: nobody can register it to attack with, so it is never a ..."
    """
    if e.get("privacy"):
        return "Not checked: a privacy-mode snapshot keeps no domain names to compare with, so this is always 0."
    if v:
        return f"{e['domain']} looks like {e['resembles']!r} and is not an established contact."
    if e.get("resembles") and e.get("provider"):
        return (f"{e['domain']} is a consumer mail provider's domain: nobody can register it to attack with, so it "
                f"is never a look-alike (though it resembles {e['resembles']!r}).")
    return "No look-alike concern."


_SENTENCES = {
    "sender_messages_7d": lambda v, e: f"The tenant saw {v} messages from this sender (in any direction) in the 7 "
                                       "days before the snapshot.",
    "sender_messages_30d": lambda v, e: f"It saw {v} from this sender in the 30 days before the snapshot.",
    "sender_messages_90d": lambda v, e: f"It saw {v} from this sender in the 90 days before the snapshot.",
    "sender_messages_decayed": lambda v, e: f"Weighting recent mail more, that is about {v:.1f} messages.",
    "sender_days_known": lambda v, e: "This sender was never seen before." if not e.get("seen", True)
    else f"This sender was first seen {v:.1f} days before this message.",
    "sender_active_days": lambda v, e: f"The sender sent mail on {v} distinct days.",
    "sender_is_new": lambda v, e: "This sender is new to the tenant." if v else "The tenant knows this sender.",
    "sender_distinct_recipients": lambda v, e: f"The sender has written to {v} distinct recipients here.",
    "sender_safe_likelihood": lambda v, e: f"Smoothed, this sender's mail is safe with probability {v:.3f} "
                                           f"({e.get('n_safe', 0)} safe, {e.get('n_attack', 0)} attack, "
                                           f"{e.get('n_spam', 0)} spam labels"
                                           + (f", and {e['presumed_counted']} unreported messages past the settle "
                                              "delay presumed safe" if e.get("presumed_counted") else "")
                                           + f"; prior mean {e['prior_mean']:.3f}).",
    "sender_attack_messages": lambda v, e: f"{v} of this sender's messages were labelled attack.",
    "sender_solicited_messages": lambda v, e: f"The tenant wrote to this address {v} times." if v
    else "The tenant never wrote to this address.",
    "sender_days_since_solicited": lambda v, e: f"The tenant last wrote to this address {_days(v)} before." if v == v
    else "The tenant never wrote to this address.",
    "domain_messages_30d": lambda v, e: f"The domain {e['domain']} sent {v} messages in the 30 days before the "
                                        "snapshot.",
    "domain_days_known": lambda v, e: f"The domain was first seen {v:.1f} days before this message." if v
    else f"The domain {e['domain']} was not seen before this message.",
    "domain_distinct_senders": lambda v, e: f"{v} distinct addresses have sent from {e['domain']}.",
    "domain_is_new": lambda v, e: f"{e['domain']} is new to the tenant." if v else f"The tenant knows {e['domain']}.",
    "domain_is_freemail": lambda v, e: f"{e['domain']} is a consumer mail provider." if v
    else f"{e['domain']} is not on the consumer mail provider list.",
    "domain_safe_likelihood": lambda v, e: f"Smoothed, mail from {e['domain']} is safe with probability {v:.3f}.",
    "domain_solicited_messages": lambda v, e: f"The tenant sent {v} messages to {e['domain']}.",
    "pair_messages": lambda v, e: f"The sender wrote {v} times to the least-known recipient.",
    "pair_is_first_contact": lambda v, e: "This is the sender's first message to at least one recipient." if v
    else "The sender has written to every recipient before.",
    "pair_days_since_last": lambda v, e: f"The longest gap since the sender last wrote to a recipient is {_days(v)}."
    if v == v else "The sender never wrote to any of these recipients.",
    "pair_recipient_replied": lambda v, e: "At least one recipient has written to this sender." if v
    else "No recipient has ever written to this sender.",
    "recipient_safe_likelihood": lambda v, e: f"The least safe recipient's inbound mail is safe with probability "
                                              f"{v:.3f}.",
    "recipient_safe_likelihood_lower": lambda v, e: f"The lowest conservative (lower-bound) figure among the "
                                                    f"recipients is {v:.3f}.",
    "recipient_inbound_30d": lambda v, e: f"Recipients received {v:.1f} inbound messages each, on average, in the "
                                          "30 days before the snapshot.",
    "recipient_first_contact_rate": lambda v, e: f"Up to {v:.1%} of a recipient's inbound mail came from first-time "
                                                 "senders.",
    "display_name_matches_internal": lambda v, e: _impersonation(e) if v
    else "The display name does not impersonate an internal mailbox.",
    "display_name_address_days": lambda v, e: f"This name was seen with this address on up to {v} days.",
    "display_name_is_new_for_address": lambda v, e: "This address never used this display name before." if v
    else "This address has used this display name before (or there is none).",
    "lookalike_domain_distance": _lookalike_distance,
    "lookalike_domain_is_close": _lookalike_close,
    "sender_hour_surprise": lambda v, e: f"Sending at {e['hour']:02d}:00 UTC carries {v:.2f} bits of surprise "
                                         f"({e['sender_at_hour']} of the sender's {e['sender_total']} messages were "
                                         "at this hour).",
    "sender_auth_fail_rate": lambda v, e: f"{v:.1%} of the sender's SPF/DKIM/DMARC pass and fail results failed.",
    "auth_deviation": lambda v, e: "This message fails a check the sender normally passes." if v
    else "Authentication is in line with the sender's habits.",
}


class Explanation:
    """The signals of one message with their evidence and a sentence each.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``signal``, ``value``, ``evidence`` (a dict), ``sentence``.
    message : dict
        The normalised message (tenant, sender, domain, recipients, time).

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> e = explain({"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
    ...              "sender": "ann@vendor.com", "recipients": "cy@acme.com"}, _example())
    >>> e.sentence("pair_messages")
    'The sender wrote 2 times to the least-known recipient.'
    """

    def __init__(self, frame: pd.DataFrame, message: dict[str, Any]):
        self.frame = frame
        self.message = message

    def sentence(self, signal: str) -> str:
        """The plain sentence for one signal."""
        rows = self.frame.loc[self.frame["signal"] == signal, "sentence"]
        if rows.empty:
            raise ConfigError(f"no signal {signal!r} in this explanation; signals: {list(self.frame['signal'])[:5]}...")
        return str(rows.iloc[0])

    def _against(self) -> str:
        """What the evidence is read from: the snapshot as of when, or none (cold start)."""
        as_of = self.message.get("snapshot_as_of")
        return "no snapshot: cold start, the global prior" if as_of is None else \
            f"the snapshot as of {_fmt(pd.Timestamp(as_of))} UTC"

    def __repr__(self) -> str:
        head = (f"Explanation of {self.message['message_id']!r} from {self.message['sender']} to "
                f"{', '.join(self.message['recipients'])} (tenant {self.message['tenant_id']!r}; sent "
                f"{_fmt(pd.Timestamp(self.message['timestamp']))} UTC; against {self._against()})")
        lines = [f"  {r.signal} = {_fmt(r.value)}: {r.sentence}" for r in self.frame.itertuples()]
        return "\n".join([head, *lines])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(r.signal)}</code></td><td>{html.escape(_fmt(r.value))}</td>"
            f"<td>{html.escape(r.sentence)}</td><td><small>{html.escape(str(r.evidence))}</small></td></tr>"
            for r in self.frame.itertuples())
        m = self.message
        return (f"<div><b>Explanation</b> of <code>{html.escape(str(m['message_id']))}</code> from "
                f"<code>{html.escape(m['sender'])}</code> to {html.escape(', '.join(m['recipients']))} "
                f"(tenant {html.escape(m['tenant_id'])}, sent {html.escape(m['timestamp'])}; against "
                f"{html.escape(self._against())})"
                "<table><tr><th>signal</th><th>value</th><th>why</th><th>evidence</th></tr>"
                f"{rows}</table></div>")


def explain(message: Mapping[str, Any], scorer: Scorer | Snapshot, *, cold_start: bool | None = None,
            secret: bytes | None = None) -> Explanation:
    """Explain every signal of one message: its value, the baseline evidence and one sentence.

    Parameters
    ----------
    message : mapping
        One message in the contract (as for :meth:`Scorer.score_one`).
    scorer : Scorer or Snapshot
        What the engine scores with, or the tenant's snapshot.
    cold_start : bool, optional
        Explain a tenant without a snapshot against the global prior (default:
        as the scorer scores, :class:`Scorer`'s ``cold_start``).
    secret : bytes, optional
        The tenant's secret when ``scorer`` is a privacy-mode snapshot (a
        :class:`Scorer` holds its tenants' secrets). Privacy-mode snapshots
        store no addresses or display names: the evidence then holds counts
        and times only, besides the message's own strings (its sender, domain,
        recipients and display name), and the look-alike sentences say that
        no domain was compared.

    Returns
    -------
    Explanation
        Readable in a notebook (``_repr_html_``); ``.frame`` holds the table;
        both name the snapshot's ``as_of`` the evidence is read from.

    Warns
    -----
    UserWarning
        When the message was sent before the snapshot's ``as_of``: the
        baselines then count the message itself and the mail after it, so the
        values can differ from what the engine scored when the message
        arrived (a first contact then is no first contact now). For those,
        read :func:`backfill` with ``mode="as_deployed"``, or explain against
        the version served then (``SnapshotStore.load(tenant, version=...)``).

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> e = explain({"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
    ...              "sender": "eve@rnicrosoft.com", "recipients": "cy@acme.com"}, _example())
    >>> e.frame.loc[e.frame["signal"] == "sender_is_new", ["value", "sentence"]].values.tolist()
    [[1, 'This sender is new to the tenant.']]
    """
    if isinstance(scorer, Snapshot):
        scorer = Scorer({scorer.tenant_id: scorer},
                        secrets=None if secret is None else {scorer.tenant_id: secret})
    elif secret is not None:
        raise ConfigError("The 'secret' parameter of explain applies to a Snapshot; a Scorer holds its tenants' "
                          "secrets (Scorer(..., secrets=...)). Got a secret with a Scorer instead.")
    if not isinstance(scorer, Scorer):
        raise ConfigError(f"The 'scorer' parameter of explain must be a Scorer or a Snapshot. "
                          f"Got {type(scorer).__name__} instead.")
    values = scorer.score_one(message, cold_start=cold_start)  # (None: the scorer's cold_start)
    m = parse_one(message, scorer._registrable_domain, scorer._is_own, scorer._own_domains_known, scorer._loaded.keys)
    view = scorer._view(scorer._loaded, m.tenant_id)  # with the mail the scorer observed, as score_one read it
    if view is None:
        from ._view import SnapshotView

        view = SnapshotView(None, tenant_id=m.tenant_id, global_priors=scorer._loaded.global_priors)
    cold = view.snapshot is None
    sent = pd.Timestamp(m.timestamp, tz="UTC")
    if not cold and sent < view.snapshot.as_of:
        warnings.warn(f"message {m.message_id!r} was sent at {sent.isoformat()}, before the snapshot's as_of "
                      f"({view.snapshot.as_of.isoformat()}): its baselines count the message itself and the mail "
                      "after it, so these values can differ from what the engine scored when it arrived. For those, "
                      "read the engine's log or a backfill (mode='as_deployed'), or explain against the version "
                      "served then (an older version the store keeps)", UserWarning, stacklevel=2)
    privacy = not cold and bool(view.snapshot.config.privacy)  # no stored strings: counts, times and keys only
    sender = None if cold else _row(view, "sender", m.sender_key)
    domain = None if cold else _row(view, "sender_domain", m.sender_domain_key)
    name = None if cold or not m.display_name_key else _row(view, "display_name", m.display_name_key)
    pairs = {r: (None if cold else _row(view, "pair", mix64(m.sender_key, k))) for r, k in
             zip(m.recipients, m.recipient_keys)}
    mailboxes = {r: (None if cold else _row(view, "recipient", k)) for r, k in zip(m.recipients, m.recipient_keys)}
    own = scorer._compared_own.get(m.tenant_id, ())  # the configured own domains score_one compared with
    (known, skeletons, _), checked = view.comparison(own)
    nearest = checked.nearest_of(m.sender_domain)
    if nearest < 0 and m.sender_domain not in checked.distance:
        # Not checked on this view (a cold tenant's, made afresh here, or a cache that forgot it): checked now.
        nearest = nearest_one(m.sender_domain, known, skeletons, names=checked.names_of(known))[1]
    resembles = known[nearest] if nearest >= 0 else None

    sender_ev = {**_pick(sender), "sender": m.sender, "prior_mean": view.prior_mean["sender"]}
    # What the likelihood counts besides the labels: presumed-safe mail, under the default label policy.
    policy = view.snapshot.config.label_policy if view.snapshot is not None else "presume_safe"
    sender_ev["presumed_counted"] = max(int(sender_ev.get("n_presumed_safe") or 0), 0) \
        if policy == "presume_safe" else 0
    domain_ev = {**_pick(domain, _ENTITY_FIELDS + ("n_distinct_senders", "n_outbound_to")), "domain": m.sender_domain}
    pair_ev = {r: _pick(p, ("n_messages", "first_seen", "last_seen", "n_safe", "n_attack")) for r, p in pairs.items()}
    box_ev = {r: _pick(b, ("n_inbound", "n_inbound_30d", "first_time_share", "n_safe", "n_attack",
                           "likelihood_safe", "likelihood_safe_lower")) for r, b in mailboxes.items()}
    internal = []
    if name is not None:
        internal = [a for a in (name.get("addresses") or []) if a and scorer._is_own(m.tenant_id, a.rpartition("@")[2])]
    # The name as the message gives it, normalised as its key was: a privacy-mode snapshot stores no name to show
    # (in plain mode it stores this same string). Whether the sender is one of the internal addresses that use the
    # name is read by key, which privacy mode keeps too.
    own_sender = scorer._is_own(m.tenant_id, m.sender.rpartition("@")[2])
    name_ev = {"display_name": None if m.display_name is None else _normalise_display_name(m.display_name),
               "message_display_name": m.display_name,
               "name_seen": name is not None, "is_internal": bool(name and name.get("is_internal")),
               "n_addresses": 0 if name is None else name.get("n_addresses", 0),
               "addresses": [] if name is None else (name.get("addresses") or [])[:5],
               "internal_addresses": internal, "inbound": m.direction == DIRECTION_CODES["inbound"],
               "sender": m.sender, "privacy": privacy,
               "under_own_address": bool(name and own_sender and m.sender_key in (name.get("address_keys") or [])),
               # (an own-domain address shown as the name: configured own domains, as score_one reads them)
               "claimed_address": claimed_own_address(normalised_name(m.display_name),
                                                      scorer._compared_own.get(m.tenant_id, ())) if m.display_name
               else None}
    hour = m.hour
    hist = (sender or {}).get("hour_histogram") or [0] * 24
    habit_ev = {"hour": hour, "sender_at_hour": hist[hour], "sender_total": sum(hist),
                "tenant_share_at_hour": float(view.tenant_hour_profile()[hour]), "pseudo_count": HOUR_PSEUDO_COUNT,
                **{f"{a}_{r}": (sender or {}).get(f"{a}_{r}", 0) for a in ("spf", "dkim", "dmarc")
                   for r in ("pass", "fail")},
                "message_auth": {a: message.get(a) for a in ("spf", "dkim", "dmarc")}}
    look_ev = {"domain": m.sender_domain, "resembles": resembles, "close_at_most": CLOSE_DISTANCE, "privacy": privacy,
               "own": m.sender_domain in own, "provider": is_freemail(m.sender_domain),
               "established": bool(domain and is_established(*(domain.get(c) or 0 for c in (
                   "n_outbound_to", "n_internal", "n_outbound", "active_days")))) or m.sender_domain in own}

    evidence_of = {}
    for spec in scorer.signal_set.specs:
        n = spec.name
        if n.startswith("sender_hour") or n in ("sender_auth_fail_rate", "auth_deviation"):
            evidence_of[n] = habit_ev
        elif n.startswith("sender_"):
            evidence_of[n] = sender_ev
        elif n.startswith("domain_"):
            evidence_of[n] = domain_ev
        elif n.startswith("pair_"):
            evidence_of[n] = pair_ev
        elif n.startswith("recipient_"):
            evidence_of[n] = box_ev
        elif n.startswith("display_name_"):
            evidence_of[n] = name_ev
        elif n.startswith("lookalike_"):
            evidence_of[n] = look_ev
        else:
            evidence_of[n] = {}
    rows = []
    for spec in scorer.signal_set.specs:
        v, ev = values[spec.name], evidence_of[spec.name]
        template = _SENTENCES.get(spec.name)
        try:
            sentence = template(v, {**ev, "domain": m.sender_domain}) if template else spec.description
        except (KeyError, TypeError, ValueError):
            sentence = spec.description
        rows.append({"signal": spec.name, "value": v, "evidence": ev, "sentence": sentence})
    summary = {"tenant_id": m.tenant_id, "message_id": m.message_id, "sender": m.sender,
               "sender_domain": m.sender_domain, "recipients": list(m.recipients),
               "timestamp": sent.isoformat(),
               "snapshot_as_of": None if cold else view.snapshot.as_of.isoformat()}
    frame = pd.DataFrame(rows, columns=["signal", "value", "evidence", "sentence"])
    frame["value"] = pd.Series([r["value"] for r in rows], dtype=object)  # ints stay ints
    return Explanation(frame, summary)
