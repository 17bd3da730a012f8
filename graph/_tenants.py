"""Tenant configuration: the tenant's own domains and VIP addresses."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ._addresses import _normalise_domain, _public_suffix_list, normalise_address
from ._errors import ConfigError
from ._freemail import freemail_domains
from ._toml import read_toml

__all__ = ["TenantConfig", "load_tenant_configs", "InferredOwnDomainsWarning", "infer_own_domains",
           "normalise_own_domain", "may_be_own_domain"]

_FIELDS = ("tenant_id", "own_domains", "vip_addresses", "name")


class InferredOwnDomainsWarning(UserWarning):
    """A tenant had no configured own domains and commgraph inferred them from its mail.

    Raised once per tenant and read: a chunked ``read_messages`` infers them from
    the first chunk the tenant appears in and reuses them for its other chunks.

    Examples
    --------
    >>> import warnings
    >>> issubclass(InferredOwnDomainsWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():  # silence it once the inferred domains are checked
    ...     warnings.simplefilter("ignore", InferredOwnDomainsWarning)
    """


@dataclass(frozen=True)
class TenantConfig:
    """One tenant's configuration: who it is and which domains are its own.

    Parameters
    ----------
    tenant_id : str
        The tenant's id as it appears in the ``tenant_id`` column.
    own_domains : tuple of str
        Domains the tenant owns; subdomains count too (``mail.acme.com`` is
        internal when ``acme.com`` is). Decides ``direction`` when it is not given.
    vip_addresses : tuple of str, optional
        Executives and other high-value mailboxes, normalised and checked as
        addresses, kept with the configuration for the detector's own rules
        (a message to a VIP, a display name of one). No built-in signal and no
        baseline reads them: the signals are the same with or without them.
    name : str, optional
        A human-readable name for reports.

    A public suffix (``co.uk``, ``com``) is refused: it would make every
    address under it internal. A consumer mail provider (``gmail.com``) is
    accepted with a warning: only the provider itself owns it.

    Examples
    --------
    >>> cfg = TenantConfig.from_dict({"tenant_id": "acme", "own_domains": ["ACME.com", "bücher.de"],
    ...                               "vip_addresses": ["CEO@acme.com"]})
    >>> cfg.own_domains, cfg.vip_addresses
    (('acme.com', 'xn--bcher-kva.de'), ('ceo@acme.com',))
    >>> cfg.is_own_domain("mail.acme.com"), cfg.is_own_domain("notacme.com")
    (True, False)
    """

    tenant_id: str
    own_domains: tuple[str, ...] = ()
    vip_addresses: tuple[str, ...] = ()
    name: str | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TenantConfig":
        """Build and validate a configuration from a mapping (one TOML table).

        Unknown keys are refused, so a typo does not silently configure nothing.

        Examples
        --------
        >>> TenantConfig.from_dict({"tenant_id": "t1", "own_domain": ["x.com"]})
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: unknown field 'own_domain' in tenant configuration; allowed fields are 'tenant_id', 'own_domains', 'vip_addresses', 'name'
        """
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise ConfigError(f"unknown field {unknown[0]!r} in tenant configuration; allowed fields are "
                              + ", ".join(repr(f) for f in _FIELDS))
        return cls(tenant_id=data.get("tenant_id"), own_domains=data.get("own_domains", ()),
                   vip_addresses=data.get("vip_addresses", ()), name=data.get("name"))

    def __post_init__(self) -> None:
        # Checked and normalised however the configuration is made (the constructor, from_dict, TOML):
        # an own domain spelled 'ACME.com' or 'bücher.de' matched no mail, and a tenant id with stray white
        # space matched no row (its own domains were then inferred from the mail).
        tenant_id = self.tenant_id
        if not isinstance(tenant_id, str) or not tenant_id.strip():
            raise ConfigError(f"'tenant_id' must be a non-empty string (got {tenant_id!r})")
        domains = _string_list(self.own_domains, "own_domains")
        normalised = [normalise_own_domain(d, f"'own_domains' of tenant {tenant_id!r}") for d in domains]
        vips = []
        for a in _string_list(self.vip_addresses, "vip_addresses"):
            addr, _, problem = normalise_address(a)
            if problem:
                raise ConfigError(f"'vip_addresses' of tenant {tenant_id!r} holds {a!r}: {problem}")
            vips.append(addr)
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigError(f"'name' must be a string (got {self.name!r})")
        object.__setattr__(self, "tenant_id", tenant_id.strip())  # (frozen: set once, here)
        object.__setattr__(self, "own_domains", tuple(dict.fromkeys(normalised)))
        object.__setattr__(self, "vip_addresses", tuple(dict.fromkeys(vips)))

    @classmethod
    def from_toml(cls, path: str | PathLike) -> "TenantConfig":
        """Load one tenant from a TOML file whose top level is the tenant table.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "acme.toml"
        >>> _ = p.write_text('tenant_id = "acme"\\nown_domains = ["acme.com"]\\n')
        >>> TenantConfig.from_toml(p)
        TenantConfig(tenant_id='acme', own_domains=('acme.com',), vip_addresses=(), name=None)
        """
        return cls.from_dict(read_toml(path, "the tenant configuration"))

    @classmethod
    def _derived(cls, tenant_id: str, own_domains: tuple[str, ...], *, known: bool = False) -> "TenantConfig":
        """A configuration commgraph derives itself (a snapshot's own domains, normalised already), taken as it
        is: a domain an input's own ``direction`` made internal (a public suffix such as ``github.io``, a
        consumer provider) is what that tenant's mail says, not a user's setting to check. ``known``: the
        tenant's own domains are known even when none is given (a privacy-mode snapshot's, by key, none of them
        in the batch validated): validation then infers none."""
        config = object.__new__(cls)
        for name, value in (("tenant_id", tenant_id), ("own_domains", tuple(own_domains)), ("vip_addresses", ()),
                            ("name", None)):
            object.__setattr__(config, name, value)
        if known:
            object.__setattr__(config, "_own_known", True)
        return config

    @property
    def _knows_own(self) -> bool:
        """Whether validation takes this configuration's own domains as all there are (none inferred)."""
        return bool(self.own_domains) or getattr(self, "_own_known", False)

    @property
    def _own_inferred(self) -> bool:
        """Whether these own domains were inferred (carried from a chunk read before): not inferred again, but not
        known either, so mail from outside to none of them is refused rather than read as inbound."""
        return getattr(self, "_inferred_own", False)

    def evolve(self, **changes: Any) -> "TenantConfig":
        """A copy with some fields changed (validated again).

        Examples
        --------
        >>> TenantConfig("acme", ("acme.com",)).evolve(own_domains=["acme.com", "acme.io"]).own_domains
        ('acme.com', 'acme.io')
        """
        data = {f: getattr(self, f) for f in _FIELDS}
        data.update(changes)
        return TenantConfig.from_dict({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()
                                       if v is not None})

    def is_own_domain(self, domain: str) -> bool:
        """Whether ``domain`` (normalised) is one of the tenant's domains or a subdomain of one."""
        return any(domain == d or domain.endswith("." + d) for d in self.own_domains)


def _string_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'{name}' must be a list of strings (got {value!r})")
    return list(value)


def load_tenant_configs(source: str | PathLike | Iterable[TenantConfig | Mapping] | Mapping) -> dict[str, TenantConfig]:
    """Tenant configurations keyed by tenant id.

    Parameters
    ----------
    source : path, iterable or mapping
        A TOML file with one ``[[tenant]]`` table per tenant, an iterable of
        :class:`TenantConfig` or mappings, or a mapping ``tenant_id -> TenantConfig``.

    Returns
    -------
    dict of str to TenantConfig

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tenants.toml"
    >>> _ = p.write_text('[[tenant]]\\ntenant_id = "a"\\nown_domains = ["a.com"]\\n'
    ...                  '[[tenant]]\\ntenant_id = "b"\\nown_domains = ["b.org"]\\n')
    >>> sorted(load_tenant_configs(p))
    ['a', 'b']
    """
    if isinstance(source, (str, PathLike)):
        data = read_toml(source, "the tenants' configuration")
        unknown = [k for k in data if k != "tenant"]
        if unknown:
            raise ConfigError(f"unknown top-level key {unknown[0]!r} in {source}; tenants go in [[tenant]] tables")
        items: Iterable = data.get("tenant", [])
        if isinstance(items, Mapping):  # [tenant]: one table, whose keys would be read as tenants
            raise ConfigError(f"{source} has a [tenant] table; each tenant goes in a [[tenant]] table (two brackets: "
                              "one table per tenant)")
    elif isinstance(source, Mapping):
        if "tenant_id" in source and not isinstance(source["tenant_id"], (TenantConfig, Mapping)):
            raise ConfigError("tenant configurations were given as one tenant's mapping; give a list of them "
                              "([{'tenant_id': ..., 'own_domains': [...]}]) or a mapping tenant_id -> configuration")
        items = source.values()
    else:
        items = source
    configs: dict[str, TenantConfig] = {}
    for item in items:
        if not isinstance(item, (TenantConfig, Mapping)):
            raise ConfigError(f"a tenant configuration must be a TenantConfig or a mapping of its fields; got "
                              f"{item!r}")
        cfg = item if isinstance(item, TenantConfig) else TenantConfig.from_dict(item)
        if cfg.tenant_id in configs:
            raise ConfigError(f"tenant {cfg.tenant_id!r} is configured twice")
        configs[cfg.tenant_id] = cfg
    return configs


def normalise_own_domain(domain: str, where: str = "own domain") -> str:
    """One own domain as the rest of the library spells domains: IDN as punycode, lower case, no trailing dot.

    Raises :class:`ConfigError` for a value that is not a host name, or that is
    a public suffix (``co.uk``: every address under it would become internal);
    warns (``UserWarning``) for a consumer mail provider, which only the provider
    itself owns. A leading ``@`` is dropped (``@acme.com``).

    Parameters
    ----------
    domain : str
    where : str
        Names the setting in error messages.

    Returns
    -------
    str

    Examples
    --------
    >>> normalise_own_domain("Bücher.DE."), normalise_own_domain("@acme.com")
    ('xn--bcher-kva.de', 'acme.com')
    >>> normalise_own_domain("co.uk")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: own domain holds 'co.uk': it is a public suffix, shared by every domain registered under it; give the tenant's registered domain (as 'acme.co.uk')
    """
    norm, problem = _normalise_domain(domain.strip().lstrip("@")) if isinstance(domain, str) else (None, "not a string")
    if problem:
        raise ConfigError(f"{where} holds {domain!r}: {problem}")
    if _public_suffix_list().privatesuffix(norm) is None:
        raise ConfigError(f"{where} holds {domain!r}: it is a public suffix, shared by every domain registered "
                          f"under it; give the tenant's registered domain (as 'acme.{norm}')")
    if norm in freemail_domains():
        warnings.warn(f"{where} holds {domain!r}, a consumer mail provider: every mailbox there will count as "
                      "the tenant's own; list it only if the tenant is that provider", UserWarning, stacklevel=3)
    return norm


def may_be_own_domain(domain: str) -> bool:
    """Whether inference may take a registrable domain as a tenant's own: not a consumer mail
    provider (the shipped list), not a public suffix.

    Examples
    --------
    >>> may_be_own_domain("acme.co.uk"), may_be_own_domain("gmail.com"), may_be_own_domain("co.uk")
    (True, False, False)
    """
    return domain not in freemail_domains() and _public_suffix_list().privatesuffix(domain) is not None


def infer_own_domains(tenant_ids: pd.Series, recipient_domains: pd.Series, *, share: float = 0.5,
                      messages: pd.Series | np.ndarray | None = None,
                      weights: np.ndarray | None = None) -> dict[str, tuple[str, ...]]:
    """Guess each tenant's own domains from the domains that receive most of its messages.

    A message counts once per domain however many of its recipients are there
    (one mailing to sixteen addresses at a partner is one message). The top
    receiving registrable domain, plus any other receiving more than ``share``
    times as many messages as the top one, is taken as the tenant's own.
    Consumer mail providers (``gmail.com``, the shipped list) and public
    suffixes are never taken: a tenant's mail to its customers' mailboxes does
    not make their provider the tenant's. A tenant whose recipients are all at
    such domains gets no own domains (an empty tuple).

    Parameters
    ----------
    tenant_ids, recipient_domains : pandas.Series
        One value per edge (message x recipient), aligned; domains registrable.
    share : float, default 0.5
    messages : pandas.Series or numpy.ndarray, optional
        Each edge's message (any id that is equal for the edges of one message
        of a tenant). Without it every edge counts as a message of its own.
    weights : numpy.ndarray, optional
        Messages per row, when each row stands for several (a mailbox and the
        inbound messages it received, say); not with ``messages``.

    Returns
    -------
    dict of str to tuple of str

    Examples
    --------
    >>> infer_own_domains(pd.Series(["t"] * 5), pd.Series(["acme.com"] * 2 + ["gmail.com"] + ["partner.org"] * 2),
    ...                   messages=np.array([0, 1, 2, 3, 3]))
    {'t': ('acme.com',)}
    """
    t_codes, t_names = pd.factorize(tenant_ids, use_na_sentinel=True)
    d_codes, d_names = pd.factorize(recipient_domains, use_na_sentinel=True)
    known = (t_codes >= 0) & (d_codes >= 0)
    width = max(len(d_names), 1)
    # Integer codes, not strings, are hashed: one (tenant, domain) pair per code, distinct messages per pair.
    edges = pd.DataFrame({"pair": t_codes[known].astype(np.int64) * width + d_codes[known]})
    if messages is not None and weights is not None:
        raise ConfigError("infer_own_domains takes 'messages' or 'weights', not both: weights already count "
                          "each row's messages")
    if messages is not None:
        edges["m"] = pd.factorize(np.asarray(messages)[known])[0]
        edges = edges.drop_duplicates()
    if weights is not None:
        edges["w"] = np.asarray(weights, dtype=np.int64)[known]
        n = edges.groupby("pair", sort=False)["w"].sum()
        n = n[n > 0]
    else:
        n = edges["pair"].value_counts(sort=False)
    pair = n.index.to_numpy(dtype=np.int64)
    # Per tenant, most messages first (ties by name): the top is the first domain inference may take, and
    # another is taken while it receives more than ``share`` times the top's messages. All tenants at once.
    order = np.lexsort((np.asarray(d_names, dtype=object)[pair % width].astype(str), -n.to_numpy(), pair // width))
    t, d, k = (pair // width)[order], (pair % width)[order], n.to_numpy(dtype=np.int64)[order]
    free = np.asarray(pd.Index(d_names).isin(list(freemail_domains())), dtype=bool)
    keep = ~free[d]  # (a set lookup per domain; the public-suffix check, dearer, only where it decides)
    checked: dict[int, bool] = {}

    def may_be_own(codes: np.ndarray) -> np.ndarray:
        return np.fromiter((checked.setdefault(int(c), may_be_own_domain(str(d_names[c]))) for c in codes),
                           dtype=bool, count=len(codes))

    while True:  # the first kept row of each tenant, until every tenant's is a domain inference may take
        kept = np.flatnonzero(keep)
        firsts = kept[np.r_[True, t[kept][1:] != t[kept][:-1]]] if len(kept) else kept
        refused = firsts[~may_be_own(d[firsts])]
        if not len(refused):
            break
        keep[refused] = False
    tops = np.zeros(len(t_names) + 1, np.int64)
    tops[t[firsts]] = k[firsts]
    taken = kept[k[kept] > share * tops[t[kept]]]
    taken = np.union1d(taken, firsts)  # (the top itself, whatever the share)
    taken = taken[may_be_own(d[taken])]
    result: dict[str, tuple[str, ...]] = {str(name): () for name in t_names}
    names = np.asarray(t_names, dtype=object)
    bounds = np.flatnonzero(np.r_[True, t[taken][1:] != t[taken][:-1], True]) if len(taken) else np.zeros(1, int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        result[str(names[t[taken[lo]]])] = tuple(str(d_names[c]) for c in d[taken[lo:hi]])
    return dict(sorted(result.items()))


# commgraph's three layers, siblings of this folder (in a checkout and when installed): a warning is about the
# line of the caller outside them that asked for the work.
_LAYERS = tuple(str(Path(__file__).resolve().parent.parent / layer) + os.sep for layer in ("graph", "baselines",
                                                                                         "signals"))


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning name the first caller outside commgraph (as seen from the caller
    of ``warnings.warn``): validate, read_messages and Scorer.score reach the same warning at different depths.

    Examples
    --------
    >>> def warns():  # a function outside commgraph that would call warnings.warn: its own line is named
    ...     return caller_stacklevel()
    >>> warns()
    1
    """
    # scikit-learn's wrappers (fit's context) stand between BaselineSignals and its caller, and contextlib's
    # between a function decorated with a context manager and its caller: skipped too.
    sklearn = sys.modules.get("sklearn")
    skipped = _LAYERS + ((str(Path(sklearn.__file__).resolve().parent) + os.sep,) if sklearn is not None else ())
    frame, level = sys._getframe(1), 1
    while frame is not None and (str(Path(frame.f_code.co_filename).resolve()).startswith(skipped)
                                 or frame.f_code.co_filename == contextlib.__file__):
        frame, level = frame.f_back, level + 1
    return level


#: Up to this many tenants with inferred own domains are warned about one by one; more in one warning.
_WARN_EACH = 10


def warn_inferred(inferred: Mapping[str, tuple[str, ...]]) -> None:
    """Warn that own domains were inferred: per tenant for a few, in one warning for many (a warning per tenant
    of thousands, each finding its caller's line, cost more than the inference itself)."""
    if len(inferred) > _WARN_EACH:
        none = [t for t, domains in inferred.items() if not domains]
        shown = "; ".join(f"{t!r}: {list(domains)}" for t, domains in list(inferred.items())[:3])
        lacking = (f"; {len(none)} of them got none (recipients all at consumer mail providers or public "
                   f"suffixes: {none[:3]}{' ...' if len(none) > 3 else ''})") if none else ""
        warnings.warn(f"{len(inferred)} tenants: no own domains configured; inferred from the domains that receive "
                      f"most of their mail ({shown}; ...){lacking}. Pass tenants=[TenantConfig(<tenant id>, "
                      "own_domains=[...]), ...] to set them.", InferredOwnDomainsWarning,
                      stacklevel=caller_stacklevel())
        return
    for tenant, domains in inferred.items():
        if not domains:
            warnings.warn(
                f"tenant {tenant!r}: no own domains configured, and none could be inferred (its recipients are "
                f"all at consumer mail providers or public suffixes). Pass tenants=[TenantConfig({tenant!r}, "
                "own_domains=[...])] to set them.", InferredOwnDomainsWarning, stacklevel=caller_stacklevel())
            continue
        warnings.warn(
            f"tenant {tenant!r}: no own domains configured; inferred {list(domains)} from the domains that "
            f"receive most of its mail. Pass tenants=[TenantConfig({tenant!r}, own_domains=[...])] to set them.",
            InferredOwnDomainsWarning, stacklevel=caller_stacklevel())


def with_own_domains(tenants: Any, own_domains: Mapping[str, tuple[str, ...]]) -> dict[str, TenantConfig]:
    """The tenant configurations ``tenants`` (as :func:`load_tenant_configs` takes them), plus a
    configuration for each tenant of ``own_domains`` that has none, or none with own domains: its own domains
    as inferred.

    A chunked read infers a tenant's own domains from the first chunk it appears in and
    reuses them for the others, so every chunk gives the same mail the same direction.
    """
    configs = load_tenant_configs(tenants) if tenants is not None else {}
    for tenant, domains in own_domains.items():
        if not domains:
            continue
        if tenant not in configs:
            configs[tenant] = TenantConfig(tenant_id=tenant, own_domains=tuple(domains))
        elif not configs[tenant].own_domains:  # configured for its name or VIP addresses alone: inferred too
            configs[tenant] = configs[tenant].evolve(own_domains=tuple(domains))
        else:
            continue
        # Still inferred, though carried over: mail from outside to none of them is refused as in the first chunk
        # (validation reads only known own domains as the tenant's whole list).
        object.__setattr__(configs[tenant], "_inferred_own", True)
    return configs
