"""A synthetic enterprise-mail generator with labelled attack scenarios.

Tenants of very different sizes exchange mail with their own employees, with
partners, vendors and customers, with freemail correspondents, newsletters and
automated notifiers; a small share of messages are attacks of five scenarios,
with the ground truth in a ``scenario`` column and ``label = "attack"``. The
output follows the message contract (one row per message, typed ``to``/``cc``
recipients separated by ``;``) so it can go straight into :func:`validate`.

How it is built (all vectorised; Python loops run over tenants, chunks of days,
organisations and attack incidents, never over messages):

* each tenant gets a *world* from its own seed: people, departments, executives,
  finance/payroll, external organisations with contacts, churn and an
  authentication habit (:mod:`._generate_world`);
* each chunk of days gets its own seed (``SeedSequence(seed, spawn_key=(2, tenant,
  chunk))``), so tenants and chunks are reproducible independently and the
  streaming form gives the same rows as :func:`generate`;
* per day and per kind of conversation a Poisson count of messages, senders and
  recipients drawn from heavy-tailed weights, local working hours and weekdays
  (holidays of the tenant's region), replies (two rounds) to conversations
  between people, then attacks and labels.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _generate_names as W
from ._errors import ConfigError, ParameterError
from ._generate_attacks import ATTACK_SCENARIOS, Extras, attack_batch, lookalike_domain
from ._generate_world import (
    C_ATTACK, C_BULK, C_IN_BIZ, C_IN_COLD, C_IN_FREE, C_INTERNAL, C_NOTIFY, C_OUT_BIZ, C_OUT_FREE,
    CROSS_CONTACTS, DAY_NS, DEPT_NAMES, FAIL, HOUR_NS, INBOUND, INTERNAL, KIND_NAMES,
    NAT, NEUTRAL, NONE, OUTBOUND, PASS, SOFTFAIL, SUBJECTS, Batch, World, build_world,
    pick_weighted, subject_ids,
)
from ._schema import (
    AUTH_DTYPE, DIRECTION_DTYPE, LABEL_DTYPE, STRING_DTYPE,
)

__all__ = [
    "ATTACK_SCENARIOS", "TenantSpec", "GeneratedMail", "tenant_specs", "generate", "generate_chunks",
    "write_generated", "lookalike_domain",
]

#: Columns of generated mail, in order. ``in_reply_to`` and ``scenario`` pass through
#: validation as extra columns; ``scenario`` is the ground truth (missing when benign).
COLUMNS: tuple[str, ...] = (
    "tenant_id", "message_id", "timestamp", "sender", "sender_display_name", "to", "cc",
    "direction", "subject", "reply_to", "sender_ip", "spf", "dkim", "dmarc", "label",
    "labeled_at", "in_reply_to", "scenario",
)

DEFAULT_START = "2025-01-06"  # a Monday
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

# Share of a tenant's daily volume per conversation kind (replies come on top).
_CLASS_SHARE = {C_INTERNAL: 0.28, C_IN_BIZ: 0.15, C_OUT_BIZ: 0.08, C_IN_FREE: 0.03,
                C_OUT_FREE: 0.015, C_BULK: 0.25, C_NOTIFY: 0.12, C_IN_COLD: 0.02}
# Probability that a message of a kind gets a reply, and the kind of the reply.
_REPLY_P = {C_INTERNAL: 0.3, C_IN_BIZ: 0.45, C_OUT_BIZ: 0.5, C_IN_FREE: 0.3, C_OUT_FREE: 0.4,
            C_IN_COLD: 0.08}
_REPLY_CLASS = {C_INTERNAL: C_INTERNAL, C_IN_BIZ: C_OUT_BIZ, C_OUT_BIZ: C_IN_BIZ,
                C_IN_FREE: C_OUT_FREE, C_OUT_FREE: C_IN_FREE, C_IN_COLD: C_OUT_BIZ}
_REPLY_AGAIN_P = 0.35
# Volume multipliers: (Saturday, Sunday, holiday) for people, bulk and automated mail.
_WEEKEND = {"people": (0.1, 0.07, 0.08), "bulk": (0.6, 0.5, 0.8), "automated": (0.4, 0.35, 0.4)}

_HOUR_CUM = np.cumsum(W.HOUR_PROFILE)
_HOUR_CUM_AUTO = np.cumsum(W.HOUR_PROFILE_AUTOMATED)


# --------------------------------------------------------------------------- parameters

def _param_error(name: str, caller: str, allowed: str, got: Any, python: str = "") -> ParameterError:
    return ParameterError(name, caller, allowed, got, python=python)


@dataclass(frozen=True)
class TenantSpec:
    """One synthetic tenant: its size, domains and time zone.

    Parameters
    ----------
    tenant_id : str
        Letters, digits, ``.``, ``_`` and ``-`` (it names a Parquet partition).
    mailboxes : int
        Number of mailboxes (employees plus a few role mailboxes), at least 10.
    domains : tuple of str, optional
        The tenant's own domains, the first being the primary one. Empty: drawn
        by the generator, distinct from every other tenant's.
    timezone : str, default "UTC"
        IANA time zone of the tenant's working hours and holidays.
    messages_per_mailbox_day : float, default 6.0
        Mean messages per mailbox on a working day, before replies (about 1.25x
        with replies).

    Examples
    --------
    >>> TenantSpec("acme", mailboxes=40, domains=("acme.example",), timezone="Europe/Paris")
    TenantSpec(tenant_id='acme', mailboxes=40, domains=('acme.example',), timezone='Europe/Paris', messages_per_mailbox_day=6.0)
    >>> TenantSpec("acme", mailboxes=3)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: 'mailboxes' must be an int from 10 to 5,000,000 (got 3)
    """

    tenant_id: str
    mailboxes: int
    domains: tuple[str, ...] = ()
    timezone: str = "UTC"
    messages_per_mailbox_day: float = 6.0

    def __post_init__(self) -> None:
        if not isinstance(self.tenant_id, str) or not _TENANT_ID.match(self.tenant_id):
            raise ConfigError(f"'tenant_id' must be 1-64 letters, digits, '.', '_' or '-' "
                              f"starting with a letter or digit (got {self.tenant_id!r})")
        if isinstance(self.mailboxes, bool) or not isinstance(self.mailboxes, (int, np.integer)) \
                or not 10 <= self.mailboxes <= 5_000_000:
            raise ConfigError(f"'mailboxes' must be an int from 10 to 5,000,000 (got {self.mailboxes!r})")
        object.__setattr__(self, "mailboxes", int(self.mailboxes))
        if isinstance(self.domains, str) or not all(isinstance(d, str) for d in self.domains):
            raise ConfigError(f"'domains' must be a tuple of domain names (got {self.domains!r})")
        object.__setattr__(self, "domains", tuple(self.domains))
        bad = [d for d in self.domains if not _DOMAIN.match(d)]
        if bad:
            raise ConfigError(f"'domains' must hold lower-case ASCII domain names such as "
                              f"'acme.example' (got {bad[0]!r})")
        if len(set(self.domains)) != len(self.domains):
            raise ConfigError(f"'domains' must not repeat a domain (got {self.domains!r})")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"'timezone' must be an IANA time zone such as 'Europe/Paris' "
                              f"(got {self.timezone!r})") from None
        rate = self.messages_per_mailbox_day
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 10_000:
            raise ConfigError(f"'messages_per_mailbox_day' must be a number in (0, 10000] (got {rate!r})")

    @property
    def holiday_region(self) -> str:
        """Which holiday calendar applies: ``"us"``, ``"eu"``, ``"jp"`` or ``"other"``."""
        if self.timezone.startswith("America/"):
            return "us"
        if self.timezone.startswith("Europe/"):
            return "eu"
        if self.timezone == "Asia/Tokyo":
            return "jp"
        return "other"

    def to_config(self):
        """The :class:`TenantConfig` validation needs: own domains and executives.

        Executives are only known once the tenant's world is drawn, so this gives
        the domains alone; :attr:`GeneratedMail.tenants` adds the VIP addresses.

        Examples
        --------
        >>> TenantSpec("acme", 40, domains=("acme.example",)).to_config().own_domains
        ('acme.example',)
        """
        from . import TenantConfig  # the contract module is imported lazily

        return TenantConfig(tenant_id=self.tenant_id, own_domains=self.domains)


def _check_random_state(random_state: Any, caller: str) -> np.random.SeedSequence:
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return np.random.SeedSequence(int(random_state))
    raise _param_error("random_state", caller, "an int >= 0", random_state, "a numpy SeedSequence or None")


def _entropy(seq: np.random.SeedSequence) -> int | Sequence[int]:
    return seq.entropy  # type: ignore[return-value]


def _child(seq: np.random.SeedSequence, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(_entropy(seq), spawn_key=tuple(seq.spawn_key) + key))


def tenant_specs(tenants: int | Sequence[TenantSpec] = 3, *, scale: float = 1.0,
                 random_state: int | np.random.SeedSequence | None = 0) -> tuple[TenantSpec, ...]:
    """The tenants :func:`generate` would produce, with their domains filled in.

    Parameters
    ----------
    tenants : int or sequence of TenantSpec, default 3
        A count (sizes spread log-uniformly from 30 to 3,000 mailboxes times
        ``scale``, largest first) or explicit specifications; specifications
        without domains get fresh ones.
    scale : float, default 1.0
        Multiplies the mailbox counts of a tenant count (``scale=10``: a few
        hundred to tens of thousands of mailboxes). Ignored for specifications.
    random_state : int, SeedSequence or None, default 0
        Seed.

    Returns
    -------
    tuple of TenantSpec

    Examples
    --------
    >>> for spec in tenant_specs(3):
    ...     print(spec.tenant_id, spec.mailboxes, spec.domains, spec.timezone)
    tenant-01 3000 ('truewind.com', 'truewind-group.com') America/Chicago
    tenant-02 300 ('atlasholdings.com',) Asia/Singapore
    tenant-03 30 ('eaglepeak.com',) America/New_York
    """
    return _resolve_tenants(tenants, scale, _check_random_state(random_state, "tenant_specs"),
                            "tenant_specs")


def _resolve_tenants(tenants: Any, scale: Any, seq: np.random.SeedSequence,
                     caller: str) -> tuple[TenantSpec, ...]:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 10_000:
        raise _param_error("scale", caller, "a number in (0, 10000]", scale)
    rng = _child(seq, 0)
    if isinstance(tenants, (int, np.integer)) and not isinstance(tenants, bool):
        if not 1 <= tenants <= 100_000:
            raise _param_error("tenants", caller, "an int in [1, 100000]", tenants, "a list of TenantSpec")
        n = int(tenants)
        sizes = np.geomspace(3000, 30, n) if n > 1 else np.array([300.0])
        sizes = np.maximum(10, np.round(sizes * scale)).astype(int)
        zones = rng.integers(0, len(W.TIME_ZONES), n)
        specs = [TenantSpec(f"tenant-{i + 1:0{max(2, len(str(n)))}d}", int(s),
                            timezone=W.TIME_ZONES[z][0]) for i, (s, z) in enumerate(zip(sizes, zones))]
    elif isinstance(tenants, Sequence) and not isinstance(tenants, str) and len(tenants) \
            and all(isinstance(t, TenantSpec) for t in tenants):
        specs = list(tenants)
    else:
        raise _param_error("tenants", caller, "an int in [1, 100000]", tenants, "a non-empty list of TenantSpec")
    ids = [s.tenant_id for s in specs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"'tenant_id' must be unique across tenants (got {dup[:5]!r} more than once)")
    taken: dict[str, str] = {}
    for s in specs:
        for d in s.domains:
            if d in taken:
                raise ConfigError(f"'domains' must not be shared between tenants "
                                  f"(got {d!r} in {taken[d]!r} and {s.tenant_id!r})")
            taken[d] = s.tenant_id
    space = len(W.TENANT_WORDS_1) * len(W.TENANT_WORDS_2)
    out = []
    for s in specs:
        if s.domains:
            out.append(s)
            continue
        for attempt in range(1000):
            code = int(rng.integers(0, space))
            a, b = divmod(code, len(W.TENANT_WORDS_2))
            name = W.TENANT_WORDS_1[a] + W.TENANT_WORDS_2[b] + (str(attempt) if attempt > 100 else "")
            primary = f"{name}.com"
            if primary not in taken:
                break
        domains = (primary,) if s.mailboxes < 1000 else (primary, f"{name}-group.com")
        for d in domains:
            taken[d] = s.tenant_id
        out.append(TenantSpec(s.tenant_id, s.mailboxes, domains, s.timezone, s.messages_per_mailbox_day))
    return tuple(out)


@dataclass(frozen=True)
class _Params:
    specs: tuple[TenantSpec, ...]
    days: int
    start: pd.Timestamp
    attack_rate: float
    scenarios: tuple[str, ...]
    seq: np.random.SeedSequence
    chunk_messages: int


def _check_params(caller: str, *, tenants, days, start, attack_rate, scenarios, random_state,
                  scale, chunk_messages) -> _Params:
    seq = _check_random_state(random_state, caller)
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or not 1 <= days <= 100_000:
        raise _param_error("days", caller, "an int in [1, 100000]", days)
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError):
        raise _param_error("start", caller, "a date such as '2025-01-06'", start) from None
    if ts is pd.NaT or ts.tzinfo is not None or ts != ts.normalize():
        raise _param_error("start", caller, "a date without time or time zone such as '2025-01-06' "
                           "(each tenant's day starts at its local midnight)", start)
    if isinstance(attack_rate, bool) or not isinstance(attack_rate, (int, float)) \
            or not 0.0 <= float(attack_rate) <= 1.0:
        raise _param_error("attack_rate", caller, "a number in [0, 1]", attack_rate)
    if scenarios is None:
        scenarios = ATTACK_SCENARIOS
    if isinstance(scenarios, str) or not isinstance(scenarios, (Sequence, set, frozenset)):
        raise _param_error("scenarios", caller, f"a list of names from {list(ATTACK_SCENARIOS)}", scenarios, "None")
    unknown = [s for s in scenarios if s not in ATTACK_SCENARIOS]
    if unknown:
        raise _param_error("scenarios", caller, f"a list of names from {list(ATTACK_SCENARIOS)}", unknown, "None")
    if isinstance(chunk_messages, bool) or not isinstance(chunk_messages, (int, np.integer)) \
            or chunk_messages < 1_000:
        raise _param_error("chunk_messages", caller, "an int >= 1000", chunk_messages)
    specs = _resolve_tenants(tenants, scale, seq, caller)
    return _Params(specs, int(days), ts, float(attack_rate),
                   tuple(s for s in ATTACK_SCENARIOS if s in set(scenarios)), seq, int(chunk_messages))


# --------------------------------------------------------------------------- calendar

def _holidays(region: str, years: range) -> set[_dt.date]:
    out: set[_dt.date] = set()
    for y in years:
        out.add(_dt.date(y, 1, 1))
        if region == "us":
            out |= {_nth_weekday(y, 5, 0, -1), _dt.date(y, 7, 4), _nth_weekday(y, 9, 0, 1),
                    _nth_weekday(y, 11, 3, 4), _dt.date(y, 12, 25)}
        elif region == "eu":
            easter = _easter(y)
            out |= {easter - _dt.timedelta(days=2), easter + _dt.timedelta(days=1), _dt.date(y, 5, 1),
                    _dt.date(y, 12, 25), _dt.date(y, 12, 26)}
        elif region == "jp":
            out |= {_dt.date(y, 1, 2), _dt.date(y, 1, 3), _dt.date(y, 4, 29), _dt.date(y, 5, 3),
                    _dt.date(y, 5, 4), _dt.date(y, 5, 5), _dt.date(y, 12, 31)}
        else:
            out |= {_dt.date(y, 12, 25), _dt.date(y, 12, 26)}
    return out


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> _dt.date:
    if n > 0:
        d = _dt.date(year, month, 1)
        d += _dt.timedelta(days=(weekday - d.weekday()) % 7 + 7 * (n - 1))
        return d
    d = _dt.date(year + (month == 12), month % 12 + 1, 1) - _dt.timedelta(days=1)
    return d - _dt.timedelta(days=(d.weekday() - weekday) % 7)


def _easter(y: int) -> _dt.date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a, b, c = y % 19, y // 100, y % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return _dt.date(y, month, day + 1)


@dataclass
class _Calendar:
    """Per day of the period: local midnight in UTC ns, UTC offset, volume multipliers."""

    midnight_utc: np.ndarray  # day -> UTC ns of local midnight (using the day's noon offset)
    offset: np.ndarray  # day -> local minus UTC, ns
    mult: dict[str, np.ndarray]
    end_utc: int  # the period's end: the UTC of the local midnight after its last day
    start_utc: int  # its start: the UTC of its first local midnight


def _calendar(w: World, start: pd.Timestamp, days: int) -> _Calendar:
    local_midnight = start.value + DAY_NS * np.arange(days + 1, dtype=np.int64)
    noon = pd.DatetimeIndex((local_midnight + 12 * HOUR_NS).view("datetime64[ns]"))
    # One UTC offset per local day (its noon's): DST switches at night, so only the
    # small hours of a switch day are off by an hour, and no local time is skipped.
    utc = noon.tz_localize(w.timezone).tz_convert("UTC").asi8
    offset = (local_midnight + 12 * HOUR_NS) - utc
    dates = pd.DatetimeIndex(local_midnight[:days].view("datetime64[ns]"))
    weekday = dates.day_of_week.to_numpy()
    hol = _holidays(w.holiday_region, range(dates[0].year, dates[-1].year + 1))
    is_hol = np.isin(dates.date, list(hol))
    mult = {}
    for kind, (sat, sun, holiday) in _WEEKEND.items():
        m = np.ones(days)
        m[weekday == 5], m[weekday == 6] = sat, sun
        m[is_hol] = np.minimum(m[is_hol], holiday)
        mult[kind] = m
    midnight_utc = local_midnight - offset
    # The period's bounds are the true local midnights: on a day daylight saving changes, the day's one offset
    # (its noon's) put a few small-hours messages before the first day or after the last.
    start_utc, end_utc = (pd.Timestamp(int(local_midnight[d])).tz_localize(w.timezone, ambiguous=True,
                                                                           nonexistent="shift_forward").value
                          for d in (0, days))
    return _Calendar(midnight_utc[:days], offset[:days], mult, end_utc, start_utc)


# --------------------------------------------------------------------------- one chunk

def _times(rng: np.random.Generator, cal: _Calendar, day: np.ndarray, cum: np.ndarray) -> np.ndarray:
    hour = np.searchsorted(cum, rng.random(len(day)) * cum[-1], side="right")
    return cal.midnight_utc[day] + hour * HOUR_NS + rng.integers(0, HOUR_NS, len(day))


def _day_counts(rng, w: World, cal: _Calendar, day0: int, n_days: int, cls: int, kind: str) -> np.ndarray:
    lam = w.rate * w.mailboxes * _CLASS_SHARE[cls] * cal.mult[kind][day0:day0 + n_days]
    counts = rng.poisson(lam)
    return np.repeat(np.arange(day0, day0 + n_days), counts)


def _first_slots(e_msg: np.ndarray, n: int) -> np.ndarray:
    """Position of each edge within its message (edges sorted by message)."""
    starts = np.searchsorted(e_msg, np.arange(n))
    return np.arange(len(e_msg)) - starts[e_msg]


def _dedupe_edges(n: int, e_msg, e_rcpt, sender) -> tuple[np.ndarray, np.ndarray]:
    """Drop self-addressed and repeated recipients; keep order."""
    keep = e_rcpt != sender[e_msg]
    key = pd.Series(e_msg * np.int64(2**31) + e_rcpt)
    keep &= ~key.duplicated().to_numpy()
    return e_msg[keep], e_rcpt[keep]


def _internal(rng, w: World, cal: _Calendar, day0: int, n_days: int) -> Batch:
    day = _day_counts(rng, w, cal, day0, n_days, C_INTERNAL, "people")
    n = len(day)
    sender = pick_weighted(rng, w.emp_cum, n)
    n_rcpt = np.minimum(rng.geometric(0.55, n), 8)
    e_msg = np.repeat(np.arange(n), n_rcpt)
    s = sender[e_msg]
    same = rng.random(len(e_msg)) < 0.7
    colleague = w.members(w.emp_dept[s], rng.random(len(e_msg)))
    contact = w.cross[s, rng.integers(0, CROSS_CONTACTS, len(e_msg))]
    e_msg, e_rcpt = _dedupe_edges(n, e_msg, np.where(same, colleague, contact), sender)
    # Messages left with nobody write to a cross-department contact instead.
    empty = np.flatnonzero(np.bincount(e_msg, minlength=n) == 0)
    if len(empty):
        e_msg = np.concatenate([e_msg, empty])
        e_rcpt = np.concatenate([e_rcpt, w.cross[sender[empty], 0]])
        order = np.argsort(e_msg, kind="stable")
        e_msg, e_rcpt = e_msg[order], e_rcpt[order]
    cc = (_first_slots(e_msg, n) > 0) & (rng.random(len(e_msg)) < 0.4)
    return Batch(n, e_msg, e_rcpt, cc, sender=sender, ts=_times(rng, cal, day, _HOUR_CUM),
                 direction=INTERNAL, cls=C_INTERNAL, subject=subject_ids(rng, "internal", n),
                 ip=sender, ip_last=rng.integers(1, 255, n))


def _active_orgs(rng, w: World, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An organisation per message, by weight among those active that day."""
    org = pick_weighted(rng, w.org_cum, len(day))
    for _ in range(8):
        bad = np.flatnonzero((w.org_start[org] > day) | (w.org_end[org] <= day))
        if not len(bad):
            break
        org[bad] = pick_weighted(rng, w.org_cum, len(bad))
    ok = (w.org_start[org] <= day) & (w.org_end[org] > day)
    return org[ok], day[ok]


def _inbound_auth(rng, w: World, sender: np.ndarray) -> dict[str, np.ndarray]:
    """Authentication results by each sender's habit: mostly pass; habitual DMARC failers fail."""
    n = len(sender)
    known = sender < len(w.habit_fail)  # first-time senders have no habit
    habit = known & w.habit_fail[np.where(known, sender, 0)]
    u = rng.random((3, n))
    spf = np.select([u[0] < 0.97, u[0] < 0.99], [PASS, SOFTFAIL], NEUTRAL).astype(np.int8)
    dkim = np.where(u[1] < 0.98, PASS, NONE).astype(np.int8)
    spf_f = np.select([u[0] < 0.3, u[0] < 0.8], [PASS, SOFTFAIL], FAIL).astype(np.int8)
    dkim_f = np.where(u[1] < 0.6, FAIL, NONE).astype(np.int8)
    spf, dkim = np.where(habit, spf_f, spf), np.where(habit, dkim_f, dkim)
    dmarc = np.where((spf == PASS) | (dkim == PASS), PASS, FAIL).astype(np.int8)
    # Habitual failers pass SPF for an unaligned envelope domain: DMARC still fails.
    dmarc = np.where(habit, np.where(u[2] < 0.95, FAIL, NONE), dmarc).astype(np.int8)
    return {"spf": spf, "dkim": dkim, "dmarc": dmarc}


def _business(rng, w: World, cal: _Calendar, day0: int, n_days: int, inbound: bool) -> Batch:
    cls = C_IN_BIZ if inbound else C_OUT_BIZ
    org, day = _active_orgs(rng, w, _day_counts(rng, w, cal, day0, n_days, cls, "people"))
    n = len(day)
    contact = w.org_contact_start[org] + (rng.random(n) * w.org_n_contacts[org]).astype(np.int64)
    corr = w.org_corr[org, (rng.random(n) * w.org_n_corr[org]).astype(np.int64)]
    corr2 = w.org_corr[org, (rng.random(n) * w.org_n_corr[org]).astype(np.int64)]
    second = rng.random(n) < 0.25
    ts = _times(rng, cal, day, _HOUR_CUM)
    if inbound:
        sender, first, other = contact, corr, corr2
        auth = _inbound_auth(rng, w, sender)
    else:
        sender, first = corr, contact
        other = np.where(rng.random(n) < 0.5,
                         w.org_contact_start[org] + (rng.random(n) * w.org_n_contacts[org]).astype(np.int64),
                         w.cross[corr, rng.integers(0, CROSS_CONTACTS, n)])
        auth = {}
    e_msg = np.concatenate([np.arange(n), np.flatnonzero(second)])
    e_rcpt = np.concatenate([first, other[second]])
    order = np.argsort(e_msg, kind="stable")
    e_msg, e_rcpt = _dedupe_edges(n, e_msg[order], e_rcpt[order], sender)
    cc = (_first_slots(e_msg, n) > 0) & (rng.random(len(e_msg)) < 0.6)
    return Batch(n, e_msg, e_rcpt, cc, sender=sender, ts=ts, direction=INBOUND if inbound else OUTBOUND,
                 cls=cls, subject=subject_ids(rng, "business", n), ip=sender,
                 ip_last=rng.integers(1, 255, n), **auth)


def _freemail(rng, w: World, cal: _Calendar, day0: int, n_days: int, inbound: bool) -> Batch:
    cls = C_IN_FREE if inbound else C_OUT_FREE
    day = _day_counts(rng, w, cal, day0, n_days, cls, "people")
    n = len(day)
    free = w.free_start + pick_weighted(rng, w.free_cum, n)
    owner = w.free_owner[free - w.free_start]
    sender, rcpt = (free, owner) if inbound else (owner, free)
    auth = _inbound_auth(rng, w, sender) if inbound else {}
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=sender,
                 ts=_times(rng, cal, day, _HOUR_CUM), direction=INBOUND if inbound else OUTBOUND,
                 cls=cls, subject=subject_ids(rng, "freemail", n), ip=sender,
                 ip_last=rng.integers(1, 255, n), **auth)


def _bulk(rng, w: World, cal: _Calendar, day0: int, n_days: int) -> Batch:
    day = _day_counts(rng, w, cal, day0, n_days, C_BULK, "bulk")
    n = len(day)
    b = pick_weighted(rng, w.bulk_cum, n)
    # Each bulk sender mails its own subscribers: a slice of a permutation of employees.
    j = (rng.random(n) * w.bulk_subs[b]).astype(np.int64)
    rcpt = w.emp_perm[(w.bulk_offset[b] + j) % w.n_emp]
    # A campaign goes out at the sender's hour, spread over 45 minutes.
    ts = cal.midnight_utc[day] + w.bulk_hour[b] * HOUR_NS + rng.integers(0, 45 * 60 * 10**9, n)
    sender = w.bulk_start + b
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=sender, ts=ts, direction=INBOUND,
                 cls=C_BULK, subject=subject_ids(rng, "bulk", n), ip=sender,
                 ip_last=rng.integers(1, 255, n), **_inbound_auth(rng, w, sender))


def _notifications(rng, w: World, cal: _Calendar, day0: int, n_days: int) -> Batch:
    day = _day_counts(rng, w, cal, day0, n_days, C_NOTIFY, "automated")
    n = len(day)
    sender = w.notify_start + pick_weighted(rng, w.notify_cum, n)
    rcpt = pick_weighted(rng, w.emp_cum, n)
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=sender,
                 ts=_times(rng, cal, day, _HOUR_CUM_AUTO), direction=INBOUND, cls=C_NOTIFY,
                 subject=subject_ids(rng, "notify", n), ip=sender, ip_last=rng.integers(1, 255, n),
                 **_inbound_auth(rng, w, sender))


class _ColdSenders:
    """First-time external senders (cold outreach, recruiters, event invitations), built with Arrow."""

    def __init__(self, rng: np.random.Generator, base: int, n: int):
        self.base, self.n = base, n
        names = [pa.array([x[k] for x in lst]) for lst in (W.FIRST_NAMES, W.LAST_NAMES) for k in (0, 1)]
        f, l_ = rng.integers(0, len(W.FIRST_NAMES), n), rng.integers(0, len(W.LAST_NAMES), n)
        first_disp, first, last_disp, last = (names[0].take(f), names[1].take(f),
                                              names[2].take(l_), names[3].take(l_))
        words = pa.array(W.ORG_WORDS).take(rng.integers(0, len(W.ORG_WORDS), n))
        suffix = pa.array(W.ORG_SUFFIXES).take(rng.integers(0, len(W.ORG_SUFFIXES), n))
        digits = pc.cast(pa.array(rng.integers(100, 10_000, n)), pa.string())
        tld = pa.array([t for t, _ in W.ORG_TLDS]).take(rng.integers(0, len(W.ORG_TLDS), n))
        # Digits in the name keep them apart from every organisation the world knows.
        company = pc.binary_join_element_wise(
            pc.binary_join_element_wise(words, suffix, digits, ""), tld, ".")
        free = pa.array(list(W.FREEMAIL_DOMAINS)).take(rng.integers(0, 4, n))
        use_free = pa.array(rng.random(n) < 0.3)
        self.domain = pc.if_else(use_free, free, company)
        local = pc.if_else(use_free, pc.binary_join_element_wise(first, last, digits, ""),
                           pc.binary_join_element_wise(first, last, "."))
        self.address = pc.binary_join_element_wise(local, self.domain, "@")
        self.display = pc.binary_join_element_wise(first_disp, last_disp, " ")
        octets = [pc.cast(pa.array(rng.integers(lo, hi, n)), pa.string()) for lo, hi in ((11, 224), (0, 256), (0, 256))]
        self.ip_prefix = pc.binary_join_element_wise(*octets, ".")


def _cold(rng, w: World, cal: _Calendar, day0: int, n_days: int) -> tuple[Batch, _ColdSenders]:
    day = _day_counts(rng, w, cal, day0, n_days, C_IN_COLD, "people")
    n = len(day)
    cold = _ColdSenders(rng, w.n_addresses, n)
    sender = w.n_addresses + np.arange(n, dtype=np.int64)
    rcpt = pick_weighted(rng, w.emp_cum, n)
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=sender,
                 ts=_times(rng, cal, day, _HOUR_CUM), direction=INBOUND, cls=C_IN_COLD,
                 subject=subject_ids(rng, "business", n), ip=sender, ip_last=rng.integers(1, 255, n),
                 **_inbound_auth(rng, w, sender)), cold


def _replies(rng, w: World, parents: Batch, p: np.ndarray) -> Batch:
    """Replies to ``parents`` (reply probability ``p`` per parent): the first recipient answers."""
    chosen = np.flatnonzero(rng.random(len(parents)) < p)
    n = len(chosen)
    first_edge = np.searchsorted(parents.e_msg, chosen)
    sender = parents.e_rcpt[first_edge]
    rcpt = parents.msg["sender"][chosen]
    pcls = parents.msg["cls"][chosen]
    cls = np.zeros(n, np.int8)
    for a, b in _REPLY_CLASS.items():
        cls[pcls == a] = b
    direction = np.select([cls == C_INTERNAL, (cls == C_IN_BIZ) | (cls == C_IN_FREE)],
                          [INTERNAL, INBOUND], OUTBOUND).astype(np.int8)
    delay = np.maximum(30.0, rng.lognormal(np.log(90 * 60), 1.0, n))
    auth = _inbound_auth(rng, w, sender)
    inbound = direction == INBOUND
    for k in auth:
        auth[k] = np.where(inbound, auth[k], PASS).astype(np.int8)
    return Batch(n, np.arange(n), rcpt, np.zeros(n, bool), sender=sender,
                 ts=parents.msg["ts"][chosen] + (delay * 1e9).astype(np.int64), direction=direction,
                 cls=cls, subject=parents.msg["subject"][chosen], is_reply=True, parent=chosen,
                 ip=sender, ip_last=rng.integers(1, 255, n), **auth)


def _with_replies(rng, w: World, initial: Batch) -> Batch:
    """Append two rounds of replies; parent indices refer to the combined batch."""
    p = np.zeros(len(initial))
    for cls, prob in _REPLY_P.items():
        p[initial.msg["cls"] == cls] = prob
    first = _replies(rng, w, initial, p)
    second = _replies(rng, w, first, np.full(len(first), _REPLY_AGAIN_P))
    parents = np.concatenate([initial.msg["parent"], first.msg["parent"],
                              second.msg["parent"] + len(initial)])
    out = Batch.concat([initial, first, second])
    out.msg["parent"] = parents  # concat treats parents as batch-local; these point across
    return out


def _labels(rng, w: World, b: Batch) -> None:
    """Labels as they arrive: attacks labelled, some safe mail released, spam reported, a few false positives."""
    n = len(b)
    cls, sender = b.msg["cls"], b.msg["sender"]
    u = rng.random(n)
    label = np.full(n, -1, np.int8)
    inbound_people = (cls == C_IN_BIZ) | (cls == C_IN_FREE)
    safe_p = np.select([inbound_people, cls == C_BULK, cls == C_NOTIFY, cls == C_INTERNAL],
                       [0.02, 0.002, 0.002, 0.001], 0.0)
    fp_p = np.where(inbound_people | (cls == C_NOTIFY), 0.0005, 0.0)
    spammy = np.zeros(n, bool)
    is_bulk = cls == C_BULK
    spammy[is_bulk] = w.bulk_spammy[sender[is_bulk] - w.bulk_start]
    spam_p = np.where(is_bulk, np.where(spammy, 0.4, 0.005), 0.0)
    is_spam = u < spam_p
    is_safe = ~is_spam & (u < spam_p + safe_p)
    is_fp = ~is_spam & ~is_safe & (u < spam_p + safe_p + fp_p)
    is_attack = cls == C_ATTACK
    label[is_safe], label[is_spam], label[is_fp | is_attack] = 0, 2, 1
    d = rng.lognormal(0.0, 1.0, n)
    delay_h = np.select([is_safe, is_spam, is_attack | is_fp], [20 * d, 2 * d, 5 * d], 0.0)
    labelled = label >= 0
    b.msg["label"] = label
    b.msg["labeled_at"] = np.where(labelled, b.msg["ts"] + np.maximum(60e9, delay_h * 3.6e12).astype(np.int64),
                                   NAT)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijection of uint64 (SplitMix64's finaliser): distinct counters give distinct ids."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _chunk(w: World, cal: _Calendar, p: _Params, tenant_index: int, chunk_index: int,
           day0: int, n_days: int, first_seen: np.ndarray) -> pd.DataFrame:
    """One chunk's mail. ``first_seen`` is, per world address, the first time it sent benign mail in the
    tenant's earlier chunks (int64 max if never): updated with this chunk's, so that the attacks that need
    a long-known vendor find the vendors of every chunk before, whatever the chunk size."""
    rng = _child(p.seq, 2, tenant_index, chunk_index)
    cold_batch, cold = _cold(rng, w, cal, day0, n_days)
    initial = Batch.concat([
        _internal(rng, w, cal, day0, n_days),
        _business(rng, w, cal, day0, n_days, inbound=True),
        _business(rng, w, cal, day0, n_days, inbound=False),
        _freemail(rng, w, cal, day0, n_days, inbound=True),
        _freemail(rng, w, cal, day0, n_days, inbound=False),
        _bulk(rng, w, cal, day0, n_days),
        _notifications(rng, w, cal, day0, n_days),
        cold_batch,
    ])
    benign = _with_replies(rng, w, initial)
    extras = Extras(w.n_addresses + cold.n)
    if p.attack_rate > 0 and p.scenarios:
        def local_time(day: int, n: int) -> np.ndarray:
            return _times(rng, cal, np.full(n, day), _HOUR_CUM)

        known = benign.msg["sender"] < w.n_addresses
        np.minimum.at(first_seen, benign.msg["sender"][known], benign.msg["ts"][known])
        attacks = attack_batch(w, rng, day0=day0, n_days=n_days, days=p.days, n_benign=len(benign),
                               attack_rate=p.attack_rate, enabled=p.scenarios, local_time=local_time,
                               extras=extras, first_seen=first_seen)
        b = Batch.concat([benign, attacks])
    else:
        b = benign
    # Keep the period: replies and bursts past its end are dropped (and the small hours a daylight-saving
    # change moves out of it).
    ts = b.msg["ts"]
    b = b.take(np.flatnonzero((ts >= cal.start_utc) & (ts < cal.end_utc)))
    _labels(rng, w, b)
    counter = (np.uint64(tenant_index) << np.uint64(44)) | (np.uint64(chunk_index) << np.uint64(26)) \
        | np.arange(len(b), dtype=np.uint64)
    order = np.lexsort((np.arange(len(b)), b.msg["ts"]))
    # XOR with a key of the seed keeps ids distinct within a run and different across seeds.
    key = np.random.SeedSequence(_entropy(p.seq), spawn_key=tuple(p.seq.spawn_key) + (3,))
    key = key.generate_state(1, np.uint64)[0]
    return _frame(w, cold, extras, b, _splitmix64(counter ^ key), order)


# --------------------------------------------------------------------------- to a frame

def _str_col(arr: pa.Array) -> pd.Series:
    return pd.Series(pd.array(arr, dtype=STRING_DTYPE), copy=False)


def _take(table: pa.Array, index: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    idx = pa.array(index, pa.int64(), mask=missing)
    return table.take(idx)


def _joined(addresses: pa.Array, b: Batch, select: np.ndarray, n: int, order_inv: np.ndarray) -> pa.Array:
    e_msg = order_inv[b.e_msg[select]]
    rcpt = b.e_rcpt[select]
    order = np.argsort(e_msg, kind="stable")
    e_msg, rcpt = e_msg[order], rcpt[order]
    counts = np.bincount(e_msg, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), addresses.take(pa.array(rcpt)),
                                     mask=pa.array(counts == 0))
    return pc.binary_join(lists, ";")


def _frame(w: World, cold: _ColdSenders, extras: Extras, b: Batch, ids: np.ndarray,
           order: np.ndarray) -> pd.DataFrame:
    n = len(b)
    m = {k: v[order] for k, v in b.msg.items()}
    order_inv = np.empty(n, np.int64)
    order_inv[order] = np.arange(n)
    def table(world: list[str], block: pa.Array, extra: list[str]) -> pa.Array:
        return pa.concat_arrays([pa.array(world, pa.string()), block, pa.array(extra, pa.string())])

    addresses = table(w.address, cold.address, extras.address)
    display = table(w.display, cold.display, extras.display)
    domains = table(w.domain, cold.domain, extras.domain)
    prefixes = table(w.ip_prefix, cold.ip_prefix, extras.ip_prefix)
    sender = m["sender"]
    # Ids follow the batch order (parents point there); rows follow ``order``.
    mid = pc.binary_join_element_wise(pc.cast(pa.array(ids), pa.string()),
                                      domains.take(pa.array(b.msg["sender"])), "@")
    message_id = mid.take(pa.array(order))
    parent = m["parent"]
    no_parent = parent < 0
    in_reply_to = mid.take(pa.array(np.where(no_parent, 0, parent), mask=no_parent))
    subject = SUBJECTS.take(pa.array(m["subject"]))
    subject = pc.if_else(pa.array(m["is_reply"]), pc.binary_join_element_wise("RE: ", subject, ""), subject)
    ip = pc.binary_join_element_wise(prefixes.take(pa.array(m["ip"])),
                                     pc.cast(pa.array(m["ip_last"]), pa.string()), ".")
    scen = m["scenario"]
    frame = pd.DataFrame({
        "tenant_id": _str_col(pa.repeat(pa.scalar(w.tenant_id), n)),
        "message_id": _str_col(message_id),
        "timestamp": pd.Series(pd.DatetimeIndex(m["ts"].view("datetime64[ns]")).tz_localize("UTC"),
                               copy=False),
        "sender": _str_col(addresses.take(pa.array(sender))),
        "sender_display_name": _str_col(display.take(pa.array(sender))),
        "to": _str_col(_joined(addresses, b, ~b.e_cc, n, order_inv)),
        "cc": _str_col(_joined(addresses, b, b.e_cc, n, order_inv)),
        "direction": pd.Categorical.from_codes(m["direction"], dtype=DIRECTION_DTYPE),
        "subject": _str_col(subject),
        "reply_to": _str_col(_take(addresses, np.maximum(m["reply_to"], 0), m["reply_to"] < 0)),
        "sender_ip": _str_col(ip),
        "spf": pd.Categorical.from_codes(m["spf"], dtype=AUTH_DTYPE),
        "dkim": pd.Categorical.from_codes(m["dkim"], dtype=AUTH_DTYPE),
        "dmarc": pd.Categorical.from_codes(m["dmarc"], dtype=AUTH_DTYPE),
        "label": pd.Categorical.from_codes(m["label"], dtype=LABEL_DTYPE),
        "labeled_at": pd.Series(pd.DatetimeIndex(m["labeled_at"].view("datetime64[ns]")).tz_localize("UTC"),
                                copy=False),
        "in_reply_to": _str_col(in_reply_to),
        "scenario": _str_col(_take(pa.array(ATTACK_SCENARIOS), np.maximum(scen, 0), scen < 0)),
    })
    return frame


# --------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class GeneratedMail:
    """What :func:`generate` returns: messages, the tenants and who is who.

    Attributes
    ----------
    messages : pandas.DataFrame
        One row per message in the message contract, sorted by tenant and time,
        with the extra columns ``in_reply_to`` (the message answered) and
        ``scenario`` (ground truth: an attack scenario, missing when benign).
    specs : tuple of TenantSpec
        The tenants, with their domains.
    directory : pandas.DataFrame
        Every address the tenants' worlds know (not attacker addresses):
        ``tenant_id``, ``address``, ``display_name``, ``kind`` (employee, partner,
        vendor, customer, freemail, bulk, notification), ``organisation`` (the
        domain of an external organisation), ``department``, ``title``,
        ``is_vip`` and ``is_finance``.

    Examples
    --------
    >>> mail = generate(tenants=2, days=5, scale=0.05, random_state=1)
    >>> mail
    GeneratedMail(2 tenants, 5,769 messages, 6,831 edges, 4 attacks)
    >>> mail.directory.groupby("kind").size().loc[["employee", "vendor", "bulk"]].to_dict()
    {'employee': 160, 'vendor': 73, 'bulk': 43}
    """

    messages: pd.DataFrame
    specs: tuple[TenantSpec, ...]
    directory: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        m = self.messages
        n_edges = _count_edges(m)
        n_attacks = int(m["scenario"].notna().sum())
        return (f"GeneratedMail({len(self.specs)} tenants, {len(m):,} messages, {n_edges:,} edges, "
                f"{n_attacks:,} attacks)")

    @property
    def tenants(self) -> list:
        """One :class:`TenantConfig` per tenant: its own domains and VIP addresses."""
        from . import TenantConfig  # the contract module is imported lazily

        vips = self.directory[self.directory["is_vip"]].groupby("tenant_id")["address"].agg(tuple)
        return [TenantConfig(tenant_id=s.tenant_id, own_domains=s.domains,
                             vip_addresses=vips.get(s.tenant_id, ())) for s in self.specs]


def _count_edges(frame: pd.DataFrame) -> int:
    total = 0
    for col in ("to", "cc"):
        s = frame[col].dropna()
        total += int(s.str.count(";").sum()) + len(s)
    return total


def _directory(w: World) -> pd.DataFrame:
    n = w.n_addresses
    kind = np.asarray(KIND_NAMES, dtype=object)[w.kind]
    dept = np.full(n, None, dtype=object)
    dept[: w.n_emp] = np.asarray(DEPT_NAMES, dtype=object)[w.emp_dept]
    org = np.where((w.kind >= 1) & (w.kind <= 3), np.asarray(w.domain, dtype=object), None)
    title = np.full(n, None, dtype=object)
    title[: w.n_emp] = [t or None for t in w.title]
    vip = np.zeros(n, bool)
    vip[: w.n_emp] = w.is_vip
    fin = np.zeros(n, bool)
    fin[: w.n_emp] = w.is_finance
    return pd.DataFrame({
        "tenant_id": pd.array([w.tenant_id] * n, dtype=STRING_DTYPE),
        "address": pd.array(w.address, dtype=STRING_DTYPE),
        "display_name": pd.array(w.display, dtype=STRING_DTYPE),
        "kind": pd.Categorical(kind, categories=list(KIND_NAMES[:-1])),
        "organisation": pd.array(org, dtype=STRING_DTYPE),
        "department": pd.array(dept, dtype=STRING_DTYPE),
        "title": pd.array(title, dtype=STRING_DTYPE),
        "is_vip": vip, "is_finance": fin,
    })


def _world(p: _Params, i: int) -> World:
    spec = p.specs[i]
    others = frozenset(d for j, s in enumerate(p.specs) if j != i for d in s.domains)
    return build_world(tenant_id=spec.tenant_id, mailboxes=spec.mailboxes, domains=spec.domains,
                       timezone=spec.timezone, holiday_region=spec.holiday_region,
                       rate=float(spec.messages_per_mailbox_day), days=p.days,
                       excluded_domains=others, rng=_child(p.seq, 1, i))


def _plan(p: _Params) -> list[tuple[int, int, int, int]]:
    """(tenant index, chunk index, first day, number of days) for every chunk."""
    plan = []
    for i, spec in enumerate(p.specs):
        per_day = spec.mailboxes * spec.messages_per_mailbox_day * 1.3
        step = int(max(1, min(p.days, p.chunk_messages // max(per_day, 1.0))))
        for c, day0 in enumerate(range(0, p.days, step)):
            plan.append((i, c, day0, min(step, p.days - day0)))
    return plan


def _chunks(p: _Params, on_world=None) -> Iterator[pd.DataFrame]:
    """Chunks in order: per tenant, each chunk holds the messages of its days.

    Replies and bursts that spill past a chunk's last day are carried into the
    next chunk of the tenant, so every tenant's stream is sorted by time.
    """
    world: World | None = None
    cal: _Calendar | None = None
    first_seen = np.zeros(0, np.int64)
    pending: pd.DataFrame | None = None
    plan = _plan(p)
    for k, (i, c, day0, n_days) in enumerate(plan):
        if world is None or world.tenant_id != p.specs[i].tenant_id:
            world = _world(p, i)
            cal = _calendar(world, p.start, p.days)
            first_seen = np.full(world.n_addresses, np.iinfo(np.int64).max)
            if on_world is not None:
                on_world(world)
        assert cal is not None
        frame = _chunk(world, cal, p, i, c, day0, n_days, first_seen)
        if pending is not None and len(pending):
            frame = pd.concat([pending, frame], ignore_index=True)
            ts = pd.DatetimeIndex(frame["timestamp"]).asi8
            frame = frame.take(np.argsort(ts, kind="stable")).reset_index(drop=True)
        last_of_tenant = k + 1 == len(plan) or plan[k + 1][0] != i
        if last_of_tenant:
            pending = None
            yield frame
            continue
        bound = cal.midnight_utc[day0 + n_days]
        later = pd.DatetimeIndex(frame["timestamp"]).asi8 >= bound
        if later.any():
            pending = frame[later].reset_index(drop=True)
            frame = frame[~later].reset_index(drop=True)
        else:
            pending = None
        yield frame


def generate_chunks(*, tenants: int | Sequence[TenantSpec] = 3, days: int = 30,
                    start: str | _dt.date | pd.Timestamp = DEFAULT_START, attack_rate: float = 0.001,
                    scenarios: Sequence[str] | None = None,
                    random_state: int | np.random.SeedSequence | None = 0, scale: float = 1.0,
                    chunk_messages: int = 500_000) -> Iterator[pd.DataFrame]:
    """Generate mail chunk by chunk, for sizes larger than memory.

    Takes the parameters of :func:`generate`. Each chunk is one tenant over a run
    of days (replies that spill past its last day move to the next chunk), sorted
    by time; concatenated, the chunks are exactly the frame of :func:`generate`.

    Parameters
    ----------
    chunk_messages : int, default 500_000
        About how many messages a chunk holds (at least one day of one tenant);
        changing it changes the mail generated (the draws), as in :func:`generate`.
    **params
        As in :func:`generate`.

    Yields
    ------
    pandas.DataFrame

    Examples
    --------
    >>> chunks = generate_chunks(tenants=2, days=20, scale=0.1, chunk_messages=5_000, random_state=1)
    >>> [(c["tenant_id"].iloc[0], len(c)) for c in chunks][:3]
    [('tenant-01', 4363), ('tenant-01', 4398), ('tenant-01', 2768)]
    """
    p = _check_params("generate_chunks", tenants=tenants, days=days, start=start, attack_rate=attack_rate,
                      scenarios=scenarios, random_state=random_state, scale=scale,
                      chunk_messages=chunk_messages)
    return _chunks(p)


def generate(*, tenants: int | Sequence[TenantSpec] = 3, days: int = 30,
             start: str | _dt.date | pd.Timestamp = DEFAULT_START, attack_rate: float = 0.001,
             scenarios: Sequence[str] | None = None,
             random_state: int | np.random.SeedSequence | None = 0, scale: float = 1.0,
             chunk_messages: int = 500_000) -> GeneratedMail:
    """Generate realistic enterprise mail for several tenants, with labelled attacks.

    Parameters
    ----------
    tenants : int or sequence of TenantSpec, default 3
        A count of tenants (see :func:`tenant_specs` for their sizes) or
        explicit specifications.
    days : int, default 30
        Length of the period, in days.
    start : date-like, default "2025-01-06"
        First day; each tenant's day starts at local midnight in its time zone.
    attack_rate : float, default 0.001
        Expected attack messages per benign message, in [0, 1].
    scenarios : list of str, optional
        Attack scenarios to include (default: all of :data:`ATTACK_SCENARIOS`):
        ``exec_impersonation`` (an executive's display name on a freemail
        address, to finance staff), ``lookalike_domain`` (a vendor's domain one
        or two edits away, continuing a conversation), ``credential_phishing``
        (bursts from brand-new domains to many employees), ``vendor_compromise``
        (a long-known vendor address, often with a ``reply_to`` elsewhere and
        authentication off its habit) and ``lateral_phishing`` (a compromised
        employee writing to colleagues it never wrote to).
    random_state : int, SeedSequence or None, default 0
        Seed; the same arguments give the same output, byte for byte.
    scale : float, default 1.0
        Multiplies tenant sizes when ``tenants`` is a count.
    chunk_messages : int, default 500_000
        Messages per internal chunk; changing it changes the mail generated
        (the draws: the same mail needs the same value, as the same seed).

    Returns
    -------
    GeneratedMail
        ``.messages`` (the frame), ``.specs``, ``.directory`` and ``.tenants``
        (the :class:`TenantConfig` list for validation).

    Raises
    ------
    ConfigError
        A parameter is out of range; the message names it, the allowed values
        and what was given.

    Examples
    --------
    >>> mail = generate(tenants=2, days=14, attack_rate=0.02, scale=0.1, random_state=7)
    >>> m = mail.messages
    >>> m["direction"].value_counts().to_dict()
    {'inbound': 13674, 'internal': 7621, 'outbound': 3647}
    >>> m["scenario"].value_counts().sort_index().to_dict()
    {'credential_phishing': 93, 'exec_impersonation': 79, 'lateral_phishing': 99, 'lookalike_domain': 115,
     'vendor_compromise': 69}
    >>> bool((m["labeled_at"].dropna() > m.loc[m["labeled_at"].notna(), "timestamp"]).all())
    True
    """
    p = _check_params("generate", tenants=tenants, days=days, start=start, attack_rate=attack_rate,
                      scenarios=scenarios, random_state=random_state, scale=scale,
                      chunk_messages=chunk_messages)
    directories: list[pd.DataFrame] = []
    frames = list(_chunks(p, on_world=lambda w: directories.append(_directory(w))))
    # Chunks come sorted by tenant then time; Arrow string columns concatenate without copying.
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    directory = pd.concat(directories, ignore_index=True)
    return GeneratedMail(frame, p.specs, directory)


def write_generated(out: str | os.PathLike, *, tenants: int | Sequence[TenantSpec] = 3, days: int = 30,
                    start: str | _dt.date | pd.Timestamp = DEFAULT_START, attack_rate: float = 0.001,
                    scenarios: Sequence[str] | None = None,
                    random_state: int | np.random.SeedSequence | None = 0, scale: float = 1.0,
                    chunk_messages: int = 500_000, progress: bool = True) -> dict[str, int]:
    """Generate mail straight to Parquet, partitioned by tenant and date (hive style).

    Writes ``out/tenant_id=<id>/date=<YYYY-MM-DD>/part-<chunk>-<n>.parquet`` (the
    UTC date of the message), one chunk at a time, so memory stays bounded. The
    directory must be empty or absent. Same arguments, same bytes.

    Parameters
    ----------
    out : path
        Output directory.
    progress : bool, default True
        Show a progress bar over chunks.
    **params
        As in :func:`generate`.

    Returns
    -------
    dict
        ``{"tenants": ..., "chunks": ..., "messages": ..., "edges": ..., "attacks": ...}``.

    Examples
    --------
    >>> import tempfile, pyarrow.dataset as ds
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     stats = write_generated(tmp, tenants=2, days=2, scale=0.05, random_state=1, progress=False)
    ...     table = ds.dataset(tmp, partitioning="hive").to_table()
    >>> stats["messages"] == table.num_rows, sorted(set(table["tenant_id"].to_pylist()))
    (True, ['tenant-01', 'tenant-02'])
    """
    from tqdm.auto import tqdm

    p = _check_params("write_generated", tenants=tenants, days=days, start=start, attack_rate=attack_rate,
                      scenarios=scenarios, random_state=random_state, scale=scale,
                      chunk_messages=chunk_messages)
    out = os.fspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ParameterError("out", "write_generated", "an empty or absent directory", out,
                             fix=f"It is {'not empty' if os.path.isdir(out) else 'a file'}: choose a new directory, "
                                 "or remove it.")
    plan = _plan(p)
    stats = {"tenants": len(p.specs), "chunks": len(plan), "messages": 0, "edges": 0, "attacks": 0}
    bar = tqdm(total=len(plan), unit="chunk", desc="generate", disable=not progress)
    try:
        for k, frame in enumerate(_chunks(p)):
            stats["messages"] += len(frame)
            stats["edges"] += _count_edges(frame)
            stats["attacks"] += int(frame["scenario"].notna().sum())
            _write_partitions(pa.Table.from_pandas(frame, preserve_index=False), out, k)
            bar.update(1)
            bar.set_postfix(messages=stats["messages"])
    finally:
        bar.close()
    return stats


def _write_partitions(table: pa.Table, out: str, chunk: int) -> None:
    """Write one chunk as ``out/tenant_id=<id>/date=<YYYY-MM-DD>/part-<chunk>-0.parquet``, one file a partition.

    The files ``pyarrow.dataset.write_dataset`` wrote before, byte for byte (rows in input order, the partition
    columns left out, the schema's pandas metadata kept), with ``pyarrow.parquet.write_table``: the dataset
    writer's threads could abort the interpreter at exit after everything was written ("terminate called
    without an active exception", apache/arrow#36980), failing a job that had succeeded.
    """
    import pyarrow.parquet as pq

    date = pc.strftime(table["timestamp"], format="%Y-%m-%d").to_numpy(zero_copy_only=False)
    tenant = table["tenant_id"].to_numpy(zero_copy_only=False)
    data = table.drop_columns(["tenant_id"])
    # Each partition's rows in input order (indices ascending), taken as the dataset writer took them.
    groups = pd.DataFrame({"tenant_id": tenant, "date": date}).groupby(["tenant_id", "date"], sort=False).indices
    for (tenant_id, day), rows in groups.items():
        # Tenant ids are letters, digits, '.', '_' and '-' (TenantSpec), dates digits and '-': no character the
        # dataset writer's URI encoding of hive values would change.
        folder = os.path.join(out, f"tenant_id={tenant_id}", f"date={day}")
        os.makedirs(folder, exist_ok=True)
        pq.write_table(data.take(rows), os.path.join(folder, f"part-{chunk:06d}-0.parquet"),
                       row_group_size=1 << 20)
