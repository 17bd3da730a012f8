"""Labelled attack scenarios for the synthetic enterprise-mail generator.

Each scenario turns into a few *incidents* per chunk (a Python loop over
incidents, never over messages; an incident is one to a few dozen messages).
Attacker-owned addresses that the world does not know yet are appended to an
:class:`Extras` table, so messages keep referring to addresses by integer id.
"""

from __future__ import annotations

import numpy as np

from . import _generate_names as W
from ._generate_world import (
    C_ATTACK, FAIL, INBOUND, INTERNAL, NONE, PASS, SOFTFAIL, VENDOR, Batch, World,
    pick_weighted, subject_ids,
)

__all__ = ["ATTACK_SCENARIOS", "lookalike_domain"]

#: The attack scenarios, in the order of their codes.
ATTACK_SCENARIOS: tuple[str, ...] = (
    "exec_impersonation", "lookalike_domain", "credential_phishing", "vendor_compromise",
    "lateral_phishing",
)
# Share of attack messages per scenario and the mean number of messages per incident.
_SHARE = np.array([0.2, 0.2, 0.3, 0.15, 0.15])
_MEAN_SIZE = np.array([2.0, 1.5, 15.5, 2.0, 9.0])

_KEYBOARD_NEIGHBOURS = {
    "a": "qs", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "q": "w", "r": "et", "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc",
    "y": "tu", "z": "x",
}
_HOMOGLYPHS = {"l": "1", "o": "0", "i": "l", "m": "rn", "w": "vv", "e": "3", "a": "4"}
_TLD_SWAPS = {"com": ("co", "cm", "om"), "net": ("ne", "nt"), "io": ("co", "is"),
              "org": ("og", "or"), "de": ("dk", "be"), "fr": ("fi", "fm"), "co": ("com", "cm"),
              "co.uk": ("com.uk",), "com.au": ("co.au",)}


def lookalike_domain(domain: str, rng: np.random.Generator, *, method: str | None = None,
                     taken: frozenset[str] | set[str] = frozenset()) -> str:
    """A registrable domain one or two edits away from ``domain``.

    Parameters
    ----------
    domain : str
        A real domain such as ``"acmesupply.com"``.
    rng : numpy.random.Generator
        Source of randomness.
    method : {"typo", "homoglyph", "hyphen", "tld"}, optional
        How to alter it; drawn at random when omitted. Falls back to ``"typo"`` when
        the method does not apply (no homoglyph letter, no known TLD swap).
    taken : set of str, optional
        Domains the result must differ from.

    Returns
    -------
    str
        The look-alike; its Levenshtein distance to ``domain`` is 1 or 2.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lookalike_domain("acmesupply.com", rng, method="tld")
    'acmesupply.om'
    >>> lookalike_domain("acmesupply.com", rng, method="hyphen")
    'acmesu-pply.com'
    """
    name, _, tld = domain.partition(".")
    methods = ("typo", "homoglyph", "hyphen", "tld")
    for attempt in range(50):
        m = method if method is not None and attempt < 10 else methods[rng.integers(0, 4)]
        out = _alter(name, tld, m, rng)
        if out and out != domain and out not in taken:
            return out
    raise RuntimeError(f"could not derive a look-alike of {domain!r}")  # pragma: no cover


def _alter(name: str, tld: str, method: str, rng: np.random.Generator) -> str | None:
    letters = [i for i, ch in enumerate(name) if ch.isalpha()]
    if method == "homoglyph":
        spots = [i for i in letters if name[i] in _HOMOGLYPHS]
        if not spots:
            return None
        i = spots[rng.integers(0, len(spots))]
        return f"{name[:i]}{_HOMOGLYPHS[name[i]]}{name[i + 1:]}.{tld}"
    if method == "hyphen":
        spots = [i for i in range(2, len(name) - 1) if name[i - 1] != "-" and name[i] != "-"]
        if not spots:
            return None
        i = spots[rng.integers(0, len(spots))]
        return f"{name[:i]}-{name[i:]}.{tld}"
    if method == "tld":
        swaps = _TLD_SWAPS.get(tld)
        if not swaps:
            return None
        return f"{name}.{swaps[rng.integers(0, len(swaps))]}"
    # typo: a neighbouring key, a dropped letter, a doubled letter or swapped neighbours
    if not letters:
        return None
    i = letters[rng.integers(0, len(letters))]
    kind = rng.integers(0, 4)
    if kind == 0:
        options = _KEYBOARD_NEIGHBOURS.get(name[i], "")
        if not options:
            return None
        new = name[:i] + options[rng.integers(0, len(options))] + name[i + 1:]
    elif kind == 1 and len(name) > 4:
        new = name[:i] + name[i + 1:]
    elif kind == 2:
        new = name[:i] + name[i] + name[i:]
    else:
        if i + 1 >= len(name) or not name[i + 1].isalpha() or name[i] == name[i + 1]:
            return None
        new = name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if new.startswith("-") or new.endswith("-"):
        return None
    return f"{new}.{tld}"


class Extras:
    """Addresses and IP prefixes that attackers bring (ids continue after the world's)."""

    def __init__(self, base: int):
        self.base = base
        self.address: list[str] = []
        self.display: list[str] = []
        self.domain: list[str] = []
        self.ip_prefix: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, address: str, display: str, ip_prefix: str) -> int:
        if address in self.index:
            return self.index[address]
        self.index[address] = self.base + len(self.address)
        self.address.append(address)
        self.display.append(display)
        self.domain.append(address.rsplit("@", 1)[1])
        self.ip_prefix.append(ip_prefix)
        return self.index[address]


def _random_prefix(rng: np.random.Generator) -> str:
    a, b, c = int(rng.integers(100, 223)), int(rng.integers(0, 256)), int(rng.integers(0, 256))
    return f"{a}.{b}.{c}"


def attack_batch(w: World, rng: np.random.Generator, *, day0: int, n_days: int, days: int,
                 n_benign: int, attack_rate: float, enabled: tuple[str, ...],
                 local_time, extras: Extras, first_seen: np.ndarray) -> Batch:
    """All attack messages of one chunk.

    ``local_time(day, n)`` draws UTC timestamps in working hours of the tenant's
    time zone; ``first_seen`` is, per world address, the first time it sent benign
    mail in this chunk or the tenant's earlier ones (int64 max if never). The
    caller drops messages past the end of the period.
    """
    batches: list[Batch] = []
    warmup = min(7, days // 2)
    # The rate is shared among the scenarios enabled: attack_rate attack messages per benign one, whichever they are.
    enabled_share = sum(_SHARE[code] for code, name in enumerate(ATTACK_SCENARIOS) if name in enabled)
    for code, name in enumerate(ATTACK_SCENARIOS):
        if name not in enabled:
            continue
        lam = attack_rate * n_benign * _SHARE[code] / enabled_share / _MEAN_SIZE[code]
        first_day = day0
        if name in ("lookalike_domain", "vendor_compromise"):
            # These need a vendor known for a while: none before the warm-up's end. The period's incidents
            # fall on its days after it, so a chunk takes its share of them by its days there (a chunk of
            # the first week none, a later one more than its own mail's share): the period's expected
            # number is the same whatever the chunk size.
            first_day = max(day0, warmup)
            lam *= (days / n_days) * max(0, day0 + n_days - first_day) / (days - warmup)
        n_incidents = int(rng.poisson(lam))
        if first_day >= day0 + n_days:
            continue
        maker = _MAKERS[name]
        for _ in range(n_incidents):
            day = int(rng.integers(first_day, day0 + n_days))
            b = maker(w, rng, day, local_time, extras, first_seen)
            if b is not None and len(b):
                b.msg["scenario"][:] = code
                b.msg["cls"][:] = C_ATTACK
                batches.append(b)
    return Batch.concat(batches)


def _burst_times(rng: np.random.Generator, start: int, n: int, minutes: float) -> np.ndarray:
    return start + np.sort(rng.integers(0, int(minutes * 60e9), n))


def _exec_impersonation(w: World, rng, day, local_time, extras: Extras, first_seen) -> Batch | None:
    vips = np.flatnonzero(w.is_vip)
    finance = np.flatnonzero(w.is_finance)
    if not len(vips) or not len(finance):
        return None
    # The chief executive and the finance chief are impersonated most.
    exec_id = int(vips[0] if rng.random() < 0.5 else vips[rng.integers(0, len(vips))])
    first, last = w.emp_first[exec_id], w.emp_last[exec_id]
    handle = (f"{first}.{last}{rng.integers(10, 99)}", f"{first}{last}.office",
              f"{last}.{first}.ceo", f"exec.{first}{last}")[rng.integers(0, 4)]
    free = W.FREEMAIL_DOMAINS[rng.integers(0, 4)]
    sender = extras.add(f"{handle}@{free}", w.display[exec_id], w.freemail_prefix.get(free, _random_prefix(rng)))
    n = int(rng.integers(1, 4))
    ts = _burst_times(rng, int(local_time(day, 1)[0]), n, 90)
    rcpt = finance[rng.choice(len(finance), size=n, replace=len(finance) < n)]
    reply_to = -1
    if rng.random() < 0.4:
        other = W.FREEMAIL_DOMAINS[rng.integers(0, 4)]
        reply_to = extras.add(f"{first}.{last}.private{rng.integers(1, 999)}@{other}", w.display[exec_id],
                              _random_prefix(rng))
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=np.full(n, sender), ts=ts,
                 direction=INBOUND, subject=subject_ids(rng, "exec_impersonation", n),
                 reply_to=reply_to, ip=np.full(n, sender), ip_last=rng.integers(1, 255, n))


def _known_vendor(w: World, rng, day: int, t: int, first_seen: np.ndarray) -> tuple[int, int] | None:
    """(organisation, contact) of a long-known vendor whose contact already wrote in before ``t``."""
    contacts = np.flatnonzero((w.kind[: len(first_seen)] == VENDOR) & (first_seen < t))
    if not len(contacts):
        return None
    org = w.org_of(contacts)
    ok = (w.org_start[org] < day - 30) & (w.org_end[org] > day)
    contacts, org = contacts[ok], org[ok]
    if not len(contacts):
        return None
    # Busy vendors are the likelier targets: sample by the organisation's weight.
    k = int(pick_weighted(rng, np.cumsum(w.org_weight[org]), 1)[0])
    return int(org[k]), int(contacts[k])


def _vendor_recipients(w: World, rng, org: int, n: int) -> np.ndarray:
    corr = w.correspondents(org)
    return corr[rng.integers(0, len(corr), n)]


def _lookalike(w: World, rng, day, local_time, extras: Extras, first_seen) -> Batch | None:
    t0 = int(local_time(day, 1)[0])
    found = _known_vendor(w, rng, day, t0, first_seen)
    if found is None:
        return None
    org, contact = found
    fake = lookalike_domain(w.org_domain[org], rng, taken=w.all_domains)
    local = w.address[contact].rsplit("@", 1)[0]
    sender = extras.add(f"{local}@{fake}", w.display[contact], _random_prefix(rng))
    n = int(rng.integers(1, 3))
    ts = _burst_times(rng, t0, n, 240)
    rcpt = _vendor_recipients(w, rng, org, n)
    dkim = PASS if rng.random() < 0.6 else NONE
    dmarc = PASS if dkim == PASS else NONE
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=np.full(n, sender), ts=ts,
                 direction=INBOUND, subject=subject_ids(rng, "lookalike_domain", n),
                 dkim=dkim, dmarc=dmarc, ip=np.full(n, sender), ip_last=rng.integers(1, 255, n))


def _phishing(w: World, rng, day, local_time, extras: Extras, first_seen) -> Batch | None:
    brand = W.PHISHING_BRANDS[rng.integers(0, len(W.PHISHING_BRANDS))]
    word = W.PHISHING_WORDS[rng.integers(0, len(W.PHISHING_WORDS))]
    token = "".join(chr(97 + c) for c in rng.integers(0, 26, 4))
    tld = W.PHISHING_TLDS[rng.integers(0, len(W.PHISHING_TLDS))]
    domain = f"{brand}-{word}-{token}.{tld}"
    local, display = W.PHISHING_SENDERS[rng.integers(0, len(W.PHISHING_SENDERS))]
    sender = extras.add(f"{local}@{domain}", display, _random_prefix(rng))
    n = int(rng.integers(5, 27))
    per = rng.integers(1, 4, n)
    total = int(per.sum())
    rcpt = rng.choice(w.n_emp, size=min(total, w.n_emp), replace=False)
    if total > w.n_emp:
        rcpt = np.concatenate([rcpt, rng.integers(0, w.n_emp, total - w.n_emp)])
    e_msg = np.repeat(np.arange(n), per)
    keep = ~_duplicated(e_msg, rcpt)
    ts = _burst_times(rng, int(local_time(day, 1)[0]), n, 60)
    spf = rng.choice([PASS, SOFTFAIL, FAIL, NONE], n, p=[0.4, 0.3, 0.1, 0.2])
    dkim = rng.choice([PASS, NONE, FAIL], n, p=[0.3, 0.5, 0.2])
    dmarc = np.where((spf == PASS) | (dkim == PASS), PASS, np.where(rng.random(n) < 0.5, FAIL, NONE))
    return Batch(n, e_msg[keep], rcpt[keep], np.zeros(int(keep.sum()), bool),
                 sender=np.full(n, sender), ts=ts, direction=INBOUND,
                 subject=subject_ids(rng, "credential_phishing", n), spf=spf, dkim=dkim, dmarc=dmarc,
                 ip=np.full(n, sender), ip_last=rng.integers(1, 255, n))


def _vendor_compromise(w: World, rng, day, local_time, extras: Extras, first_seen) -> Batch | None:
    t0 = int(local_time(day, 1)[0])
    found = _known_vendor(w, rng, day, t0, first_seen)
    if found is None:
        return None
    org, contact = found  # a genuine address that has written to the tenant before
    n = int(rng.integers(1, 4))
    ts = _burst_times(rng, t0, n, 180)
    rcpt = _vendor_recipients(w, rng, org, n)
    reply_to = -1
    if rng.random() < 0.7:
        local = w.address[contact].rsplit("@", 1)[0]
        if rng.random() < 0.5:
            fake = lookalike_domain(w.org_domain[org], rng, taken=w.all_domains)
        else:
            fake = W.FREEMAIL_DOMAINS[rng.integers(0, 4)]
            local = f"{local}.accounts"
        reply_to = extras.add(f"{local}@{fake}", w.display[contact], _random_prefix(rng))
    spf = dkim = dmarc = PASS
    if rng.random() < 0.7:  # off the vendor's habit
        if w.habit_fail[contact]:
            spf = dkim = dmarc = PASS
        else:
            spf, dkim, dmarc = SOFTFAIL, FAIL, FAIL
    elif w.habit_fail[contact]:
        spf, dkim, dmarc = SOFTFAIL, FAIL, FAIL
    ip = contact
    if rng.random() < 0.5:  # sent from attacker infrastructure rather than the vendor's
        ip = extras.add(f"relay{len(extras.address)}@{w.org_domain[org]}.invalid", "", _random_prefix(rng))
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=np.full(n, contact), ts=ts,
                 direction=INBOUND, subject=subject_ids(rng, "vendor_compromise", n),
                 reply_to=reply_to, spf=spf, dkim=dkim, dmarc=dmarc, ip=np.full(n, ip),
                 ip_last=rng.integers(1, 255, n))


def _lateral(w: World, rng, day, local_time, extras: Extras, first_seen) -> Batch | None:
    candidates = np.flatnonzero(~w.is_vip[: w.n_emp])
    account = int(candidates[rng.integers(0, len(candidates))])
    # Recipients the account never wrote to: outside its department, outside its
    # cross-department contacts, and nobody who writes to it (whom it would answer).
    ok = w.emp_dept != w.emp_dept[account]
    ok[w.cross[account]] = False
    ok &= ~(w.cross == account).any(axis=1)
    ok[account] = False
    targets = np.flatnonzero(ok)
    if not len(targets):
        return None
    n = int(rng.integers(3, 16))
    per = rng.integers(1, 4, n)
    total = int(per.sum())
    rcpt = targets[rng.choice(len(targets), size=min(total, len(targets)), replace=False)]
    e_msg = np.repeat(np.arange(n), per)[: len(rcpt)]
    n = int(e_msg.max()) + 1
    ts = _burst_times(rng, int(local_time(day, 1)[0]), n, 30)
    attacker_ip = extras.add(f"session{len(extras.address)}@{w.domains[0]}.invalid", "", _random_prefix(rng))
    return Batch(n, e_msg, rcpt, np.zeros(len(rcpt), bool), sender=np.full(n, account), ts=ts,
                 direction=INTERNAL, subject=subject_ids(rng, "lateral_phishing", n),
                 ip=np.full(n, attacker_ip), ip_last=rng.integers(1, 255, n))


def _duplicated(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    key = a.astype(np.int64) * (int(b.max(initial=0)) + 1) + b
    _, first = np.unique(key, return_index=True)
    dup = np.ones(len(key), bool)
    dup[first] = False
    return dup


_MAKERS = {
    "exec_impersonation": _exec_impersonation, "lookalike_domain": _lookalike,
    "credential_phishing": _phishing, "vendor_compromise": _vendor_compromise,
    "lateral_phishing": _lateral,
}
