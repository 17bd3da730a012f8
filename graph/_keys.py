"""Stable 64-bit keys for addresses, domains and display names.

A key must be the same in every process, on every platform and in every release,
because snapshots written by one refresh job are read by many engine processes.
Python's ``hash()`` is salted per process and pandas' ``hash_array`` is an
implementation detail, so neither qualifies.

Algorithm (part of the on-disk format; changing it is a breaking change):

* default: XXH3-64 with seed 0 over the UTF-8 bytes of the normalised string,
  read as an unsigned 64-bit integer (``xxhash.xxh3_64_intdigest``);
* privacy mode (``secret`` given): BLAKE2b with an 8-byte digest keyed with the
  tenant secret (RFC 7693 keyed mode), the digest read little-endian. A keyed
  cryptographic hash means the raw address cannot be recovered from the key
  without the secret.

Only distinct values are hashed: callers factorise first and map back with ``take``.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import xxhash

__all__ = ["stable_key", "stable_keys", "each_key", "keyed_key_function", "KEY_ALGORITHM"]

KEY_ALGORITHM = "xxh3_64(utf-8); privacy: blake2b-64 keyed"
_PERSON = b"commgraph"


def stable_key(value: str, *, secret: bytes | None = None) -> int:
    """The stable 64-bit key of one string.

    Parameters
    ----------
    value : str
        A normalised address, domain or display name.
    secret : bytes, optional
        Tenant secret for privacy mode (at most 64 bytes).

    Returns
    -------
    int
        An unsigned 64-bit integer.

    Examples
    --------
    >>> stable_key("alice@example.com")
    8569093714482247167
    >>> stable_key("alice@example.com", secret=b"tenant-secret") != stable_key("alice@example.com")
    True
    """
    data = value.encode("utf-8")
    if secret is None:
        return xxhash.xxh3_64_intdigest(data)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, key=secret, person=_PERSON).digest(), "little")


def each_key(values: Sequence[str] | np.ndarray, *, secret: bytes | None = None) -> np.ndarray:
    """:func:`stable_key` of each string, as ``uint64``: no factorising, for strings that are (nearly all)
    distinct, or that :func:`stable_keys` has made so.

    Examples
    --------
    >>> each_key(["alice@example.com", "bob@example.com"]).tolist() == [stable_key("alice@example.com"),
    ...                                                                  stable_key("bob@example.com")]
    True
    """
    if secret is None:
        xxh3 = xxhash.xxh3_64_intdigest
        return np.fromiter((xxh3(v.encode("utf-8")) for v in values), dtype=np.uint64, count=len(values))
    key = keyed_key_function(secret)
    return np.fromiter((key(v) for v in values), dtype=np.uint64, count=len(values))


def keyed_key_function(secret: bytes) -> Callable[[str], int]:
    """:func:`stable_key` with one secret, prepared once: for hashing many strings with a tenant's secret.

    The BLAKE2b state keyed with the secret is built once and copied for each
    string, which skips re-keying (about a third of a keyed hash's cost).

    Examples
    --------
    >>> key = keyed_key_function(b"tenant-secret")
    >>> key("alice@example.com") == stable_key("alice@example.com", secret=b"tenant-secret")
    True
    """
    keyed = hashlib.blake2b(digest_size=8, key=secret, person=_PERSON)
    from_bytes = int.from_bytes

    def key(value: str) -> int:
        h = keyed.copy()
        h.update(value.encode("utf-8"))
        return from_bytes(h.digest(), "little")
    return key


def stable_keys(values: Iterable[str] | pd.Series | np.ndarray, *, secret: bytes | None = None) -> np.ndarray:
    """Stable 64-bit keys of many strings, as a ``uint64`` array.

    Distinct values are hashed once. Missing values get key 0, which no string
    maps to in practice (a 2**-64 chance) and which callers treat as "absent".

    Parameters
    ----------
    values : iterable of str, Series or ndarray
        Normalised strings; missing values allowed.
    secret : bytes, optional
        Tenant secret for privacy mode.

    Returns
    -------
    numpy.ndarray of uint64

    Examples
    --------
    >>> stable_keys(["alice@example.com", None, "alice@example.com"])
    array([8569093714482247167,                   0, 8569093714482247167],
          dtype=uint64)
    """
    codes, uniques = pd.factorize(pd.Series(values, dtype="str") if not isinstance(values, pd.Series)
                                  else values, use_na_sentinel=True)
    uniques = uniques.to_numpy(dtype=object) if hasattr(uniques, "to_numpy") else uniques
    hashed = each_key(uniques, secret=secret)
    out = np.zeros(len(codes), dtype=np.uint64)
    present = codes >= 0
    out[present] = hashed[codes[present]]
    return out
