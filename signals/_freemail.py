"""Consumer (free) mail providers as signals: flags per message or per domain.

The list itself (``freemail_domains``, ``is_freemail``) lives in the graph
layer, which also needs it (a consumer provider is never a tenant's own domain).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from commgraph.graph._freemail import freemail_domains, is_freemail

__all__ = ["freemail_domains", "is_freemail", "freemail_flags", "freemail_domain_flags"]


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
