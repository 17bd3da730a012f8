"""Built-in identity (display name), look-alike domain and sending-habit signals (one value per message)."""

from __future__ import annotations

import functools
import re
from typing import Any, Collection

import numpy as np

from ._batch import DIRECTION_CODES, FAIL_CODES
from ._lookalike import CLOSE_DISTANCE, DISTANCE_CAP, ESTABLISHED_DAYS, _decode, is_established, nearest_known, \
    never_close
from ._provider import SignalProvider, SignalSpec, builtin_compute_one, register_provider
from ._view import SnapshotView, gather, probe

__all__ = ["IdentitySignals", "LookalikeSignals", "HabitSignals", "HOUR_PSEUDO_COUNT", "claimed_own_address",
           "claims_own_address"]

_INBOUND = DIRECTION_CODES["inbound"]
#: Weight, in messages, of the tenant's hour profile in a sender's smoothed profile.
HOUR_PSEUDO_COUNT = 10.0
#: A sender "normally passes" a check with at least this many passes and a 90% pass rate.
_MIN_PASSES = 3
_AUTH = ("spf", "dkim", "dmarc")
# Whether an authentication code is a failure, indexed by code; -1 (missing) reads the last entry.
_IS_FAIL = np.zeros(max(FAIL_CODES) + 2, bool)
_IS_FAIL[list(FAIL_CODES)] = True
# A display name that is an address, whole ("jane.doe@acme.com", quoted or bracketed), or one that ends with
# one in angle brackets ("Jane Doe <jane.doe@acme.com>", a From header inside the name).
# Each part is greedy and no part's characters are the next part's, so a match costs one pass however the
# attacker writes the name (a lazy domain before a class that also took dots cost the square of its length).
_WHOLE_ADDRESS = re.compile(r"""^[\s"'<(\[]*([^\s"'<>()\[\],;@]+@[^\s"'<>()\[\],;@]+)[\s"'>)\]]*$""")
_NESTED_ADDRESS = re.compile(r"""<\s*([^\s"'<>()\[\],;@]+@[^\s"'<>()\[\],;@]+)\s*>[\s"')\]]*$""")


@functools.lru_cache(maxsize=4096)
def claimed_own_address(name: str, own: tuple[str, ...]) -> str | None:
    """The address a display name claims when it is, or ends with, an address at one of ``own`` (or a
    subdomain); None otherwise. ``name`` is normalised (:func:`commgraph.graph.normalise_display_name`: a
    full-width ``＠`` or a zero-width space inside it reads as the name shows), ``own`` as configurations
    normalise domains (an internationalised one in punycode).

    An outsider writing as ``"jane.doe@acme.com" <ceo@evil.com>`` shows the
    recipient an internal address where a name would be, and matches no
    internal mailbox's name.

    Examples
    --------
    >>> own = ("acme.com",)
    >>> claimed_own_address('"Jane.Doe@ACME.com"', own), claimed_own_address("x@mail.acme.com", own)
    ('jane.doe@acme.com', 'x@mail.acme.com')
    >>> claimed_own_address("Jane Doe <jane.doe@acme.com>", own)
    'jane.doe@acme.com'
    >>> claimed_own_address("jane.doe@acme.com via DocuSign", own), claimed_own_address("a@evil.com", own)
    (None, None)
    >>> claimed_own_address("ceo@bucher.de.", ("xn--bcher-kva.de",))  # 'ceo@bücher.de.', normalised
    'ceo@bucher.de'
    """
    if "@" not in name or not own:
        return None
    found = _WHOLE_ADDRESS.match(name) or _NESTED_ADDRESS.search(name)
    if found is None:
        return None
    address = found.group(1).lower().rstrip(".")
    domain = address.rpartition("@")[2]
    return address if any(domain == o or domain.endswith("." + o) for o in _as_names(own)) else None


@functools.lru_cache(maxsize=1024)
def _as_names(own: tuple[str, ...]) -> tuple[str, ...]:
    """Own domains as a normalised display name writes them, besides as configured: an internationalised one
    decoded and without its accents (``xn--bcher-kva.de`` also as ``bucher.de``, as 'ceo@bücher.de' reads)."""
    from commgraph.graph import normalise_display_name

    forms = dict.fromkeys(own)
    for domain in own:
        if "xn--" in domain:
            forms.setdefault(normalise_display_name(_decode(domain)) or domain)
    return tuple(forms)


def claims_own_address(name: str | None, sender: str, inbound: bool, own: Collection[str]) -> bool:
    """Whether a display name claims an own-domain address (:func:`claimed_own_address`) on mail from outside,
    or on mail from another address: part of ``display_name_matches_internal`` on every path.

    Examples
    --------
    >>> claims_own_address("jane.doe@acme.com", "ceo@evil.com", True, ("acme.com",))
    True
    >>> claims_own_address("jane.doe@acme.com", "jane.doe@acme.com", False, ("acme.com",))  # her own client's
    False
    >>> claims_own_address("ceo@bucher.de", "ceo@xn--bcher-kva.de", False, ("xn--bcher-kva.de",))  # 'ceo@bücher.de'
    False
    """
    if not name:
        return False
    address = claimed_own_address(name, tuple(own))
    return address is not None and (inbound or address != _as_name(sender))


@functools.lru_cache(maxsize=4096)
def _as_name(address: str) -> str:
    """An address as a normalised display name writes it (punycode decoded, accents stripped): the form a
    claimed address is compared in, so that 'ceo@bücher.de' shown by her own client is her own address."""
    from commgraph.graph import normalise_display_name

    if address.isascii() and "xn--" not in address:
        return address
    local, _, domain = address.rpartition("@")
    return normalise_display_name(f"{local}@{_decode(domain)}") or address


def _claims_own_addresses(batch: Any, own: Collection[str]) -> np.ndarray:
    """:func:`claims_own_address` of each message of a batch (names holding an ``@`` are few: a loop over them)."""
    out = np.zeros(batch.n_messages, bool)
    if not own or "sender_display_name" not in batch.frame.columns:
        return out
    names = batch.message_column("sender_display_name")
    at = np.flatnonzero(names.str.contains("@", regex=False).fillna(False).to_numpy(dtype=bool))
    if len(at):
        senders = batch.message_column("sender").to_numpy(dtype=object)[at]
        inbound = batch.direction[at] == _INBOUND
        out[at] = [claims_own_address(n, s, i, own)
                   for n, s, i in zip(names.to_numpy(dtype=object)[at], senders, inbound)]
    return out


@register_provider
class IdentitySignals(SignalProvider):
    """Display-name signals: impersonation of an internal name, a name new for this address.

    ``display_name_address_days`` is the upper bound ``min(messages with this
    name from this address, the sender's active days)``, exact whenever either
    is 0 or 1: the baselines keep no active days per (name, address) (a
    snapshot that carried ``display_name.address_active_days`` would be read
    exactly; no build writes them).

    Examples
    --------
    >>> IdentitySignals().names
    ['display_name_matches_internal', 'display_name_address_days', 'display_name_is_new_for_address']
    """

    name = "identity"
    level = "message"
    signals = (
        SignalSpec("display_name_matches_internal", "int8", "1 if the display name is used by an internal "
                   "mailbox and the message is inbound (from outside: under that mailbox's own address too, "
                   "spoofed), or comes from an address that never used it; also if the name is, or ends with, an "
                   "address at one of the tenant's configured own domains, on inbound mail or mail from another "
                   "address (0 without a display name).", "flag", suspicious="high"),
        SignalSpec("display_name_address_days", "int32", "Days on which this display name was seen with this "
                   "address before, at most (an upper bound: the days the address sent mail, capped by the "
                   "messages it sent under the name; see the class notes).", "days", suspicious="low"),
        SignalSpec("display_name_is_new_for_address", "int8", "1 if this address never used this display name "
                   "before (0 without a display name).", "flag", suspicious="high"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        name_key = batch.display_name_key
        has_name = name_key != 0
        name_pos = batch.rows(view, "display_name")
        internal_name = gather(view.column("display_name", "is_internal"), name_pos, 0, "int8") > 0
        index, counts, days = view.name_pairs()
        if index is None:
            pair_pos = np.full(batch.n_messages, -1, np.int64)
        else:
            from commgraph.baselines import pair_keys

            pair_pos = probe(index, pair_keys(name_key, batch.sender_key))
        seen = (pair_pos >= 0) & has_name
        inbound = batch.direction == _INBOUND
        matches = internal_name & has_name & (inbound | ~seen)
        matches |= _claims_own_addresses(batch, batch.own_domains.get(view.tenant_id, ()))
        n_with_name = gather(counts, pair_pos, 0, "int32")
        stored_days = gather(days, pair_pos, -1, "int32")
        active = gather(view.column("sender", "active_days"), batch.rows(view, "sender"), 0, "int32")
        address_days = np.where(stored_days >= 0, stored_days, np.minimum(n_with_name, active))
        return {
            "display_name_matches_internal": matches.astype(np.int8),
            "display_name_address_days": np.where(seen, address_days, 0).astype(np.int32),
            "display_name_is_new_for_address": (has_name & ~seen).astype(np.int8),
        }

    compute_one = builtin_compute_one


@register_provider
class LookalikeSignals(SignalProvider):
    """Look-alike sender domains: edit distance to the tenant's own and known-contact domains after skeletons.

    The domains compared with are the snapshot's known-contact list plus the
    tenant's configured own domains (:attr:`SignalBatch.own_domains`: the
    validated messages', or the scorer's ``tenant_configs``; own domains
    validation inferred are left out on every path) that are not on it; those
    own domains and consumer mail providers' are never close (:func:`never_close`).

    Privacy-mode snapshots keep no domain names, so there is nothing to compare
    with: the distance is then the cap and ``lookalike_domain_is_close`` is 0
    (the one loss of scoring in privacy mode; see :class:`Scorer`).

    Examples
    --------
    >>> LookalikeSignals().names
    ['lookalike_domain_distance', 'lookalike_domain_is_close']
    """

    name = "lookalike"
    level = "message"
    signals = (
        SignalSpec("lookalike_domain_distance", "int32", "Smallest edit distance, after confusable-character "
                   "skeletons, from the sender domain to a different own (configured, or sending as the tenant) "
                   "or known-contact domain; the same name under another public suffix is one edit (acme.net, "
                   f"acme.co.uk next to acme.com) (capped at "
                   f"{DISTANCE_CAP}; {DISTANCE_CAP} also when there is none to compare, so always {DISTANCE_CAP} "
                   "against a privacy-mode snapshot, which keeps no domain names).", "edits", "min",
                   default=float(DISTANCE_CAP), suspicious="low"),
        SignalSpec("lookalike_domain_is_close", "int8", f"1 if that distance is at most {CLOSE_DISTANCE} and the "
                   "domain is not an established contact: the tenant never wrote to it, sends no internal or "
                   f"outbound mail from it, and it sent mail on fewer than {ESTABLISHED_DAYS} days; never for one "
                   "of the tenant's own domains, nor for a consumer mail provider's (domain_is_freemail: mail.com "
                   "next to gmail.com is no look-alike, nobody can register it to attack; gmaii.com is) (always 0 "
                   "against a privacy-mode snapshot: the distance is the cap).", "flag", "any",
                   suspicious="high"),
    )

    def _distances(self, domains: list[str], view: SnapshotView, own: tuple[str, ...] = ()) -> list[int]:
        (known, skeletons, _), cache = view.comparison(own)
        found = list(map(cache.distance.get, domains))  # one pass: domains are mostly known already
        if None in found:
            missing = [d for d, f in zip(domains, found) if f is None]
            dist, near = nearest_known(missing, known, skeletons)
            dist = dist.tolist()
            cache.add(missing, dist, near.tolist())
            checked = dict(zip(missing, dist))
            # From what was just checked, not the cache again: adding may have made it forget others.
            found = [checked[d] if f is None else f for d, f in zip(domains, found)]
        return found

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        codes = batch.sender_domain_code
        present = np.unique(codes[codes >= 0])
        own = tuple(batch.own_domains.get(view.tenant_id, ()))
        per_code = np.full(len(batch.sender_domains), DISTANCE_CAP, np.int32)
        never = np.ones(len(batch.sender_domains), bool)
        if len(present):
            domains = [batch.sender_domains[c] for c in present]
            per_code[present] = self._distances(domains, view, own)
            never[present] = [never_close(d, own) for d in domains]
        distance = np.where(codes >= 0, per_code.take(codes, mode="clip") if len(per_code) else DISTANCE_CAP,
                            DISTANCE_CAP).astype(np.int32)
        pos = batch.rows(view, "sender_domain")
        established = is_established(*(gather(view.column("sender_domain", c), pos, 0, "int32")
                                       for c in ("n_outbound_to", "n_internal", "n_outbound", "active_days")))
        if len(never):
            established |= np.where(codes >= 0, never.take(codes, mode="clip"), True)
        return {"lookalike_domain_distance": distance,
                "lookalike_domain_is_close": ((distance <= CLOSE_DISTANCE) & ~established).astype(np.int8)}

    compute_one = builtin_compute_one


@register_provider
class HabitSignals(SignalProvider):
    """Sending habits: the hour of day, authentication results.

    ``sender_hour_surprise`` is ``-log2 p(hour)`` where ``p`` is the sender's UTC
    hour histogram smoothed toward the tenant's (Laplace-smoothed) profile with
    :data:`HOUR_PSEUDO_COUNT` pseudo-messages; a new sender gets the tenant's.

    Examples
    --------
    >>> HabitSignals().names
    ['sender_hour_surprise', 'sender_auth_fail_rate', 'auth_deviation']
    """

    name = "habits"
    level = "message"
    signals = (
        SignalSpec("sender_hour_surprise", "float32", "How unusual this UTC hour is for this sender, in bits "
                   "(smoothed toward the tenant's hours).", "bits", default=None, suspicious="high"),
        SignalSpec("sender_auth_fail_rate", "float32", "Share of this sender's SPF, DKIM and DMARC pass and fail "
                   "results that failed (softfail and permerror fail; neutral, none, temperror and missing results "
                   "count neither way; 0 without any).", "rate", suspicious="high"),
        SignalSpec("auth_deviation", "int8", "1 if this message fails SPF, DKIM or DMARC while the sender "
                   f"normally passes that check (at least {_MIN_PASSES} passes, 90% of its pass and fail results).",
                   "flag",
                   suspicious="high"),
    )

    def compute(self, batch: Any, view: SnapshotView) -> dict[str, np.ndarray]:
        pos = batch.rows(view, "sender")
        hour = (batch.timestamp // 3_600_000_000_000) % 24
        hours = view.hours("sender")
        profile = view.tenant_hour_profile()
        known = pos >= 0
        safe_pos = np.where(known, pos, 0)
        count = np.where(known, hours[safe_pos, hour], 0) if len(hours) else np.zeros(len(pos))
        total = gather(view.hour_totals("sender"), pos, 0, "int64")
        p_t = profile[hour]
        p = (count + HOUR_PSEUDO_COUNT * p_t) / (total + HOUR_PSEUDO_COUNT)
        col = view.column
        passes = {a: gather(col("sender", f"{a}_pass"), pos, 0, "int64") for a in _AUTH}
        fails = {a: gather(col("sender", f"{a}_fail"), pos, 0, "int64") for a in _AUTH}
        n_fail = sum(fails.values())
        n_all = n_fail + sum(passes.values())
        rate = np.divide(n_fail, n_all, out=np.zeros(len(pos)), where=n_all > 0)
        deviation = np.zeros(len(pos), bool)
        for a in _AUTH:
            normal = (passes[a] >= _MIN_PASSES) & (passes[a] >= 9 * fails[a])
            deviation |= normal & _IS_FAIL[getattr(batch, a)]
        return {"sender_hour_surprise": (-np.log2(p)).astype(np.float32),
                "sender_auth_fail_rate": rate.astype(np.float32),
                "auth_deviation": deviation.astype(np.int8)}

    compute_one = builtin_compute_one
