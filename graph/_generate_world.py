"""The people and organisations of one synthetic tenant, and batches of messages.

A :class:`World` is built once per tenant from the tenant's own seed: employees
(departments, executives, finance/payroll, role mailboxes), external
organisations (partners, vendors, customers with their contacts, the employees
who talk to them, when they appear and go quiet, their authentication habit),
freemail correspondents, bulk senders and automated notifiers. Every address has
an integer id; messages refer to addresses by id until the very end.

A :class:`Batch` holds messages as parallel numpy arrays plus their recipients as
edge arrays; the generator concatenates batches and turns them into a frame once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from . import _generate_names as W

__all__: list[str] = []

# Address kinds (``World.kind``).
EMPLOYEE, PARTNER, VENDOR, CUSTOMER, FREEMAIL, BULK, NOTIFIER, ATTACKER = range(8)
KIND_NAMES = ("employee", "partner", "vendor", "customer", "freemail", "bulk", "notification",
              "attacker")

# Message classes (``Batch.msg["cls"]``): what kind of conversation a message belongs to.
C_INTERNAL, C_IN_BIZ, C_OUT_BIZ, C_IN_FREE, C_OUT_FREE, C_BULK, C_NOTIFY, C_ATTACK, C_IN_COLD = range(9)

# Direction codes follow schema.DIRECTIONS; auth codes follow schema.AUTH_RESULTS.
INBOUND, OUTBOUND, INTERNAL = 0, 1, 2
PASS, FAIL, SOFTFAIL, NEUTRAL, NONE = 0, 1, 2, 3, 4

NAT = np.iinfo(np.int64).min
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9

DEPT_NAMES = tuple(d[0] for d in W.DEPARTMENTS)
D_EXEC, D_FINANCE, D_PAYROLL = 0, 1, 2
CROSS_CONTACTS = 6

# Departments that talk to each kind of organisation (weights over DEPT_NAMES).
_KIND_DEPTS = {
    PARTNER: {"Executive": 0.1, "Sales": 0.1, "Marketing": 0.2, "Engineering": 0.3,
              "Research": 0.2, "Legal": 0.1},
    VENDOR: {"Finance": 0.35, "Procurement": 0.25, "Operations": 0.25, "IT": 0.15},
    CUSTOMER: {"Sales": 0.5, "Customer Support": 0.4, "Finance": 0.1},
}

# Subject lines: one table, each list at an offset.
_SUBJECT_LISTS = {
    "internal": W.SUBJECTS_INTERNAL, "business": W.SUBJECTS_BUSINESS,
    "freemail": W.SUBJECTS_FREEMAIL, "bulk": W.SUBJECTS_BULK, "notify": W.SUBJECTS_NOTIFY,
    "exec_impersonation": W.SUBJECTS_EXEC_IMPERSONATION, "lookalike_domain": W.SUBJECTS_LOOKALIKE,
    "credential_phishing": W.SUBJECTS_PHISHING,
    "vendor_compromise": W.SUBJECTS_VENDOR_COMPROMISE, "lateral_phishing": W.SUBJECTS_LATERAL,
}
SUBJECT_OFFSET: dict[str, tuple[int, int]] = {}
_subjects: list[str] = []
for _name, _items in _SUBJECT_LISTS.items():
    SUBJECT_OFFSET[_name] = (len(_subjects), len(_items))
    _subjects.extend(_items)
SUBJECTS = pa.array(_subjects, pa.string())


def subject_ids(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """Random subject ids of one list."""
    off, size = SUBJECT_OFFSET[kind]
    return off + rng.integers(0, size, n, dtype=np.int64)


def pick_weighted(rng: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` indices with probability proportional to the weights whose cumsum is ``cum``."""
    return np.searchsorted(cum, rng.random(n) * cum[-1], side="right").astype(np.int64)


def _ip_prefixes(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice(np.r_[11:100, 101:126, 128:169, 170:172, 173:192, 193:224], n)
    rest = rng.integers(0, 256, (n, 2))
    return [f"{a}.{b}.{c}" for a, (b, c) in zip(first.tolist(), rest.tolist())]


def _unique_locals(base: list[str], taken: set[str]) -> list[str]:
    """Make local parts unique by numbering repeats (``john.smith``, ``john.smith2``)."""
    out = []
    for local in base:
        candidate, k = local, 1
        while candidate in taken:
            k += 1
            candidate = f"{local}{k}"
        taken.add(candidate)
        out.append(candidate)
    return out


@dataclass
class World:
    """Everyone one tenant exchanges mail with (see module docstring)."""

    tenant_id: str
    domains: tuple[str, ...]
    timezone: str
    holiday_region: str
    mailboxes: int
    rate: float
    # one entry per address id
    address: list[str] = field(default_factory=list)
    display: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    ip_prefix: list[str] = field(default_factory=list)
    kind: np.ndarray = None  # type: ignore[assignment]
    habit_fail: np.ndarray = None  # type: ignore[assignment]  # habitually fails DMARC
    # employees: ids 0 .. n_emp-1
    n_emp: int = 0
    emp_dept: np.ndarray = None  # type: ignore[assignment]
    emp_cum: np.ndarray = None  # type: ignore[assignment]
    emp_first: list[str] = field(default_factory=list)
    emp_last: list[str] = field(default_factory=list)
    is_vip: np.ndarray = None  # type: ignore[assignment]
    is_finance: np.ndarray = None  # type: ignore[assignment]
    title: list[str] = field(default_factory=list)
    dept_members: np.ndarray = None  # type: ignore[assignment]
    dept_start: np.ndarray = None  # type: ignore[assignment]
    dept_size: np.ndarray = None  # type: ignore[assignment]
    cross: np.ndarray = None  # type: ignore[assignment]
    # organisations
    org_kind: np.ndarray = None  # type: ignore[assignment]
    org_domain: list[str] = field(default_factory=list)
    org_contact_start: np.ndarray = None  # type: ignore[assignment]
    org_n_contacts: np.ndarray = None  # type: ignore[assignment]
    org_corr: np.ndarray = None  # type: ignore[assignment]
    org_n_corr: np.ndarray = None  # type: ignore[assignment]
    org_cum: np.ndarray = None  # type: ignore[assignment]
    org_weight: np.ndarray = None  # type: ignore[assignment]
    org_start: np.ndarray = None  # type: ignore[assignment]
    org_end: np.ndarray = None  # type: ignore[assignment]
    # freemail correspondents (ids free_start .. free_start+n_free-1) and their employee
    free_start: int = 0
    free_owner: np.ndarray = None  # type: ignore[assignment]
    free_cum: np.ndarray = None  # type: ignore[assignment]
    freemail_prefix: dict[str, str] = field(default_factory=dict)
    # bulk senders
    bulk_start: int = 0
    bulk_cum: np.ndarray = None  # type: ignore[assignment]
    bulk_hour: np.ndarray = None  # type: ignore[assignment]
    bulk_spammy: np.ndarray = None  # type: ignore[assignment]
    bulk_subs: np.ndarray = None  # type: ignore[assignment]
    bulk_offset: np.ndarray = None  # type: ignore[assignment]
    emp_perm: np.ndarray = None  # type: ignore[assignment]
    # automated notifiers
    notify_start: int = 0
    notify_cum: np.ndarray = None  # type: ignore[assignment]
    all_domains: frozenset[str] = frozenset()

    @property
    def n_addresses(self) -> int:
        return len(self.address)

    def org_of(self, ids: np.ndarray) -> np.ndarray:
        """Organisation index of contact ids (searchsorted over contact starts)."""
        return np.searchsorted(self.org_contact_start, ids, side="right") - 1

    def correspondents(self, org: int) -> np.ndarray:
        return self.org_corr[org, : self.org_n_corr[org]]

    def members(self, dept: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A uniform member of each department (any employee for empty departments)."""
        size = self.dept_size[dept]
        pos = np.where(size > 0, self.dept_start[dept] + (u * np.maximum(size, 1)).astype(np.int64),
                       (u * self.n_emp).astype(np.int64))
        return np.where(size > 0, self.dept_members[np.minimum(pos, self.n_emp - 1)], pos)

    def vip_addresses(self) -> tuple[str, ...]:
        return tuple(self.address[i] for i in np.flatnonzero(self.is_vip).tolist())


def build_world(*, tenant_id: str, mailboxes: int, domains: tuple[str, ...], timezone: str,
                holiday_region: str, rate: float, days: int, excluded_domains: frozenset[str],
                rng: np.random.Generator) -> World:
    """Draw the people and organisations of one tenant."""
    w = World(tenant_id=tenant_id, domains=domains, timezone=timezone,
              holiday_region=holiday_region, mailboxes=mailboxes, rate=rate)
    _build_employees(w, rng)
    _build_organisations(w, rng, days, excluded_domains)
    w.kind = np.asarray(w.kind, dtype=np.int8)
    w.habit_fail = np.asarray(w.habit_fail, dtype=bool)
    w.all_domains = frozenset(w.domain) | excluded_domains
    return w


def _build_employees(w: World, rng: np.random.Generator) -> None:
    n = w.mailboxes
    n_depts = len(W.DEPARTMENTS)
    roles = W.ROLE_MAILBOXES if n >= 20 else ()
    n_exec = max(2, round(0.01 * n))
    n_fin = max(2, round(0.05 * n))
    n_pay = max(1, round(0.01 * n))
    rest = n - n_exec - n_fin - n_pay - len(roles)
    weights = np.array([d[1] for d in W.DEPARTMENTS])
    sizes = np.zeros(n_depts, dtype=np.int64)
    sizes[D_EXEC], sizes[D_FINANCE], sizes[D_PAYROLL] = n_exec, n_fin, n_pay
    sizes += rng.multinomial(rest, weights / weights.sum())
    people = n - len(roles)
    dept = np.repeat(np.arange(n_depts), sizes)
    first = rng.integers(0, len(W.FIRST_NAMES), people)
    last = rng.integers(0, len(W.LAST_NAMES), people)
    style = rng.choice(4, people, p=[0.88, 0.07, 0.03, 0.02])
    locals_ = []
    for f, l, s in zip(first.tolist(), last.tolist(), style.tolist()):
        fa, la = W.FIRST_NAMES[f][1], W.LAST_NAMES[l][1]
        locals_.append((f"{fa}.{la}", f"{fa[0]}{la}", f"{fa}_{la}", f"{fa}{la[0]}")[s])
    taken = {r[0] for r in roles}
    locals_ = _unique_locals(locals_, taken)
    # Large tenants have a second (subsidiary) domain; a few mailboxes live there.
    dom_idx = np.zeros(people, dtype=np.int64)
    if len(w.domains) > 1:
        dom_idx = np.where(rng.random(people) < 0.8, 0, rng.integers(1, len(w.domains), people))
    w.address = [f"{loc}@{w.domains[d]}" for loc, d in zip(locals_, dom_idx.tolist())]
    w.address += [f"{r[0]}@{w.domains[0]}" for r in roles]
    w.display = [f"{W.FIRST_NAMES[f][0]} {W.LAST_NAMES[l][0]}" for f, l in zip(first.tolist(), last.tolist())]
    w.display += [r[1] for r in roles]
    w.emp_first = [W.FIRST_NAMES[f][1] for f in first.tolist()] + [""] * len(roles)
    w.emp_last = [W.LAST_NAMES[l][1] for l in last.tolist()] + [""] * len(roles)
    dept = np.concatenate([dept, [DEPT_NAMES.index(r[2]) for r in roles]]).astype(np.int64)
    w.n_emp = n
    w.emp_dept = dept
    w.domain = [a.rsplit("@", 1)[1] for a in w.address]
    w.ip_prefix = [f"10.{d}.{k}" for d, k in zip(dept.tolist(), rng.integers(0, 256, n).tolist())]
    w.kind = [EMPLOYEE] * n
    w.habit_fail = [False] * n
    w.is_vip = dept == D_EXEC
    w.is_finance = (dept == D_FINANCE) | (dept == D_PAYROLL)
    w.title = [""] * n
    for rank, i in enumerate(np.flatnonzero(w.is_vip).tolist()):
        w.title[i] = W.EXECUTIVE_TITLES[rank] if rank < len(W.EXECUTIVE_TITLES) else "Vice President"
    weight = rng.lognormal(0.0, 1.0, n)
    weight[w.is_vip] *= 0.5
    w.emp_cum = np.cumsum(weight)
    order = np.argsort(dept, kind="stable")
    w.dept_members = order
    w.dept_size = np.bincount(dept, minlength=n_depts)
    w.dept_start = np.concatenate([[0], np.cumsum(w.dept_size)[:-1]])
    cross = rng.integers(0, n - 1, (n, CROSS_CONTACTS))
    cross += cross >= np.arange(n)[:, None]  # never oneself
    w.cross = cross
    w.emp_perm = rng.permutation(n)


def _domain_names(rng: np.random.Generator, n: int, excluded: set[str]) -> list[str]:
    tlds = [t for t, _ in W.ORG_TLDS]
    p = np.array([pw for _, pw in W.ORG_TLDS])
    space = len(W.ORG_WORDS) * len(W.ORG_SUFFIXES) * 2
    picks = rng.choice(space, min(n, space), replace=False)
    if n > space:
        picks = np.concatenate([picks, rng.integers(0, space, n - space)])
    tld = rng.choice(len(tlds), n, p=p / p.sum())
    out = []
    for k, (code, t) in enumerate(zip(picks.tolist(), tld.tolist())):
        word, rest = divmod(code, len(W.ORG_SUFFIXES) * 2)
        suffix, hyphen = divmod(rest, 2)
        name = f"{W.ORG_WORDS[word]}{'-' if hyphen else ''}{W.ORG_SUFFIXES[suffix]}"
        if k >= space:
            name += str(k)
        dom = f"{name}.{tlds[t]}"
        while dom in excluded:
            dom = f"{name}{k}.{tlds[t]}"
            k += 1
        excluded.add(dom)
        out.append(dom)
    return out


def _person_names(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    first = rng.integers(0, len(W.FIRST_NAMES), n).tolist()
    last = rng.integers(0, len(W.LAST_NAMES), n).tolist()
    locals_ = [f"{W.FIRST_NAMES[f][1]}.{W.LAST_NAMES[l][1]}" for f, l in zip(first, last)]
    display = [f"{W.FIRST_NAMES[f][0]} {W.LAST_NAMES[l][0]}" for f, l in zip(first, last)]
    return locals_, display


def _build_organisations(w: World, rng: np.random.Generator, days: int,
                         excluded_domains: frozenset[str]) -> None:
    n = w.mailboxes
    # --- partners, vendors, customers
    n_org = int(6 + 1.5 * n ** 0.7)
    w.org_kind = rng.choice([PARTNER, VENDOR, CUSTOMER], n_org, p=[0.25, 0.4, 0.35]).astype(np.int8)
    taken = set(excluded_domains) | set(w.domains)
    w.org_domain = _domain_names(rng, n_org, taken)
    n_contacts = np.minimum(rng.geometric(0.45, n_org), 8)
    w.org_n_contacts = n_contacts
    w.org_contact_start = len(w.address) + np.concatenate([[0], np.cumsum(n_contacts)[:-1]])
    fail = rng.random(n_org) < 0.04
    prefixes = _ip_prefixes(rng, n_org)
    locals_, display = _person_names(rng, int(n_contacts.sum()))
    pos = 0
    for o in range(n_org):
        k = int(n_contacts[o])
        uniq = _unique_locals(locals_[pos:pos + k], set())
        w.address += [f"{loc}@{w.org_domain[o]}" for loc in uniq]
        w.display += display[pos:pos + k]
        pos += k
    w.domain += np.repeat(np.array(w.org_domain, dtype=object), n_contacts).tolist()
    w.ip_prefix += np.repeat(np.array(prefixes, dtype=object), n_contacts).tolist()
    w.kind += np.repeat(w.org_kind, n_contacts).tolist()
    w.habit_fail += np.repeat(fail, n_contacts).tolist()
    # The employees each organisation talks to, from the departments that fit its kind.
    max_corr = 6
    n_corr = np.minimum(rng.geometric(0.5, n_org), max_corr)
    dept_p = np.zeros((3, len(DEPT_NAMES)))
    for row, kind in enumerate((PARTNER, VENDOR, CUSTOMER)):
        for name, p in _KIND_DEPTS[kind].items():
            dept_p[row, DEPT_NAMES.index(name)] = p
    cum = np.cumsum(dept_p, axis=1)
    row = w.org_kind.astype(np.int64) - PARTNER
    u = rng.random((n_org, max_corr)) * cum[row, -1][:, None]
    dept = (u[..., None] >= cum[row][:, None, :]).sum(axis=2)
    w.org_corr = w.members(dept.ravel(), rng.random(dept.size)).reshape(n_org, max_corr)
    w.org_n_corr = n_corr
    w.org_weight = rng.lognormal(0.0, 1.4, n_org)
    w.org_cum = np.cumsum(w.org_weight)
    # Churn: most organisations predate the period, some appear, some go quiet.
    never = np.int64(10**7)
    start = np.where(rng.random(n_org) < 0.8, -never, rng.integers(0, max(days, 1), n_org))
    end = np.where(rng.random(n_org) < 0.12, rng.integers(0, max(days, 1), n_org) + 1, never)
    end = np.where(end <= start, never, end)
    w.org_start, w.org_end = start.astype(np.int64), end.astype(np.int64)

    # --- freemail correspondents: personal contacts of one employee each
    n_free = 5 + n // 4
    w.free_start = len(w.address)
    locals_, display = _person_names(rng, n_free)
    style = rng.integers(0, 3, n_free).tolist()
    digits = rng.integers(1, 99, n_free).tolist()
    fdom = rng.choice(len(W.FREEMAIL_DOMAINS), n_free, p=_freemail_p()).tolist()
    raw = [(loc, f"{loc.replace('.', '')}{d}", f"{loc}{d}")[s] for loc, s, d in zip(locals_, style, digits)]
    seen: set[str] = set()
    addrs = []
    for loc, fd in zip(raw, fdom):
        a, k = f"{loc}@{W.FREEMAIL_DOMAINS[fd]}", 1
        while a in seen:
            k += 1
            a = f"{loc}{k}@{W.FREEMAIL_DOMAINS[fd]}"
        seen.add(a)
        addrs.append(a)
    w.freemail_prefix = dict(zip(W.FREEMAIL_DOMAINS, _ip_prefixes(rng, len(W.FREEMAIL_DOMAINS))))
    w.address += addrs
    w.display += display
    w.domain += [W.FREEMAIL_DOMAINS[fd] for fd in fdom]
    w.ip_prefix += [w.freemail_prefix[W.FREEMAIL_DOMAINS[fd]] for fd in fdom]
    w.kind += [FREEMAIL] * n_free
    w.habit_fail += [False] * n_free
    w.free_owner = pick_weighted(rng, w.emp_cum, n_free)
    w.free_cum = np.cumsum(rng.lognormal(0.0, 1.0, n_free))

    # --- newsletters and bulk senders
    variants = ("", "news", "mail", "online", "hq", "daily", "media", "club")
    space = len(W.BULK_BRANDS) * len(variants)
    n_bulk = int(min(10 + n ** 0.6, space))
    picks = rng.choice(space, n_bulk, replace=False).tolist()
    w.bulk_start = len(w.address)
    for code in picks:
        brand, var = divmod(code, len(variants))
        dom = f"{W.BULK_BRANDS[brand]}{variants[var]}.com"
        local = W.BULK_LOCALS[code % len(W.BULK_LOCALS)]
        w.address.append(f"{local}@{dom}")
        w.display.append(f"{W.BULK_BRANDS[brand].title()}{variants[var].title()}")
        w.domain.append(dom)
    w.ip_prefix += _ip_prefixes(rng, n_bulk)
    w.kind += [BULK] * n_bulk
    w.habit_fail += (rng.random(n_bulk) < 0.1).tolist()
    w.bulk_cum = np.cumsum(rng.pareto(1.2, n_bulk) + 0.2)
    w.bulk_hour = rng.integers(5, 11, n_bulk)
    w.bulk_spammy = rng.random(n_bulk) < 0.15
    w.bulk_subs = np.maximum(1, (np.clip(rng.lognormal(-2.0, 1.0, n_bulk), 0.01, 1.0) * n).astype(np.int64))
    w.bulk_offset = rng.integers(0, n, n_bulk)

    # --- automated notifications (no-reply addresses of SaaS tools)
    variants = ("", "app", "mail", "cloud")
    space = len(W.SAAS_BRANDS) * len(variants)
    n_notify = int(min(5 + n ** 0.45, space))
    picks = rng.choice(space, n_notify, replace=False).tolist()
    w.notify_start = len(w.address)
    for code in picks:
        brand, var = divmod(code, len(variants))
        dom = f"{W.SAAS_BRANDS[brand]}{variants[var]}.com"
        w.address.append(f"{W.NOTIFY_LOCALS[code % len(W.NOTIFY_LOCALS)]}@{dom}")
        w.display.append(f"{W.SAAS_BRANDS[brand].title()} Notifications")
        w.domain.append(dom)
    w.ip_prefix += _ip_prefixes(rng, n_notify)
    w.kind += [NOTIFIER] * n_notify
    w.habit_fail += [False] * n_notify
    w.notify_cum = np.cumsum(rng.pareto(1.5, n_notify) + 0.3)


def _freemail_p() -> np.ndarray:
    p = np.array([0.4, 0.2, 0.12, 0.08, 0.07, 0.04, 0.04, 0.03, 0.02])
    return p / p.sum()


# --------------------------------------------------------------------------- batches

MSG_FIELDS: dict[str, tuple[type, int]] = {
    "sender": (np.int64, -1), "ts": (np.int64, 0), "direction": (np.int8, INTERNAL),
    "cls": (np.int8, C_INTERNAL), "subject": (np.int64, 0), "is_reply": (bool, False),
    "parent": (np.int64, -1), "reply_to": (np.int64, -1), "spf": (np.int8, PASS),
    "dkim": (np.int8, PASS), "dmarc": (np.int8, PASS), "scenario": (np.int8, -1),
    "label": (np.int8, -1), "labeled_at": (np.int64, NAT), "ip": (np.int64, -1),
    "ip_last": (np.int64, 1),
}


class Batch:
    """Messages as parallel arrays (``msg``) and their recipients as edges."""

    __slots__ = ("msg", "e_msg", "e_rcpt", "e_cc")

    def __init__(self, n: int, e_msg: np.ndarray, e_rcpt: np.ndarray, e_cc: np.ndarray, **fields):
        self.msg = {}
        for name, (dtype, default) in MSG_FIELDS.items():
            value = fields.pop(name, default)
            arr = np.asarray(value, dtype=dtype)
            self.msg[name] = np.full(n, arr, dtype=dtype) if arr.ndim == 0 else arr
        if fields:
            raise TypeError(f"unknown batch fields {sorted(fields)}")
        self.e_msg = np.asarray(e_msg, dtype=np.int64)
        self.e_rcpt = np.asarray(e_rcpt, dtype=np.int64)
        self.e_cc = np.asarray(e_cc, dtype=bool)

    def __len__(self) -> int:
        return len(self.msg["sender"])

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return Batch(0, [], [], [])
        offsets = np.cumsum([0] + [len(b) for b in batches[:-1]])
        fields = {k: np.concatenate([b.msg[k] for b in batches]) for k in MSG_FIELDS}
        parents = [np.where(b.msg["parent"] >= 0, b.msg["parent"] + o, -1) for b, o in zip(batches, offsets)]
        fields["parent"] = np.concatenate(parents)
        n = int(sum(len(b) for b in batches))
        return Batch(n, np.concatenate([b.e_msg + o for b, o in zip(batches, offsets)]),
                     np.concatenate([b.e_rcpt for b in batches]),
                     np.concatenate([b.e_cc for b in batches]), **fields)

    def take(self, index: np.ndarray) -> Batch:
        """Keep the messages at ``index`` (in that order); parents not kept become -1."""
        n_old = len(self)
        new_pos = np.full(n_old + 1, -1, dtype=np.int64)
        new_pos[index] = np.arange(len(index))
        fields = {k: v[index] for k, v in self.msg.items()}
        fields["parent"] = new_pos[fields["parent"]]  # -1 maps to new_pos[-1] == -1
        keep = new_pos[self.e_msg] >= 0
        e_msg = new_pos[self.e_msg[keep]]
        order = np.argsort(e_msg, kind="stable")
        return Batch(len(index), e_msg[order], self.e_rcpt[keep][order], self.e_cc[keep][order], **fields)
