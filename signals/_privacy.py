"""Scoring privacy-mode snapshots: the batch keyed with the tenant's secret, as the refresh job keyed its history.

A privacy-mode snapshot (``BaselineConfig(privacy=True)``) holds keyed BLAKE2b
keys (:func:`commgraph.graph.stable_key` with the tenant's secret) and no raw
address, domain or display name. Mail scored against it must be keyed the same
way, with that tenant's secret and no other: :class:`TenantKeys` does it for one
tenant, memoising each distinct string's key within a bound (addresses repeat,
and a keyed BLAKE2b costs about a microsecond where XXH3 costs a tenth of that).

The secret is checked before anything is scored: a wrong one would make every
sender, pair and mailbox unknown (a flood of "new sender" alerts), so a view is
only made when the secret's check value equals the snapshot's ``secret_check``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from commgraph.baselines import Snapshot
from commgraph.baselines._build import _secret_check
from commgraph.baselines._secrets import MAX_SECRET_BYTES, MIN_SECRET_BYTES
from commgraph.graph import ConfigError, stable_key
from commgraph.graph import normalise_display_name as _normalise_display_name
from commgraph.graph._keys import keyed_key_function

from ._scalar import _Memo

__all__ = ["TenantKeys", "tenant_keys", "PRIVACY_LOSSES"]

#: What each signal loses in privacy mode, by name (every other signal is computed from keys and is
#: the same as against a snapshot built without privacy from the same history).
PRIVACY_LOSSES: dict[str, str] = {
    "lookalike_domain_distance": "privacy-mode snapshots keep no domain names to compare with: always the cap",
    "lookalike_domain_is_close": "follows the distance, which is always the cap: always 0",
}

#: Distinct strings whose keys one tenant keeps (two generations of this many at most: about 9 MB with the
#: strings, per privacy tenant served; a process serving hundreds of them must not hold gigabytes of memos).
KEY_MEMO_LIMIT = 1 << 15
#: Raw display names whose keys one tenant keeps (two generations; names repeat far less than addresses).
NAME_MEMO_LIMIT = 1 << 12


class TenantKeys:
    """How one privacy-mode tenant's strings become keys: BLAKE2b keyed with its secret, memoised.

    The keys equal :func:`commgraph.graph.stable_key` with the secret, so they
    match those the refresh job stored. Each tenant has its own object (and
    memo): one tenant's secret never keys another's mail. The secret is never
    shown (``repr`` names the tenant only).

    Parameters
    ----------
    tenant_id : str
    secret : bytes
        The tenant's secret (16 to 64 bytes).

    Examples
    --------
    >>> keys = TenantKeys("acme", b"0123456789abcdef")
    >>> keys.key("ann@vendor.com") == stable_key("ann@vendor.com", secret=b"0123456789abcdef")
    True
    >>> keys.keys(["ann@vendor.com", None]).tolist()[1], keys
    (0, TenantKeys('acme', secret hidden))
    """

    __slots__ = ("tenant_id", "_secret", "_hash", "_memo", "_names")

    def __init__(self, tenant_id: str, secret: bytes):
        if not isinstance(secret, (bytes, bytearray)) or not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
            raise ConfigError(f"the secret of tenant {tenant_id!r} must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} "
                              f"bytes; got {type(secret).__name__}"
                              + (f" of {len(secret)} bytes" if isinstance(secret, (bytes, bytearray)) else "")
                              + " (read secrets files with commgraph.baselines.load_secrets)")
        self.tenant_id = tenant_id
        self._secret = bytes(secret)
        self._hash = keyed_key_function(self._secret)  # stable_key with this secret, keyed once
        self._memo = _Memo(KEY_MEMO_LIMIT)  # normalised string -> key
        self._names = _Memo(NAME_MEMO_LIMIT)  # raw display name -> key of its normalised form (0: none)

    @property
    def secret(self) -> bytes:
        """The secret (for a refresh of the tenant's snapshot; never printed)."""
        return self._secret

    def key(self, text: str) -> int:
        """The key of one normalised string."""
        found = self._memo.get(text)
        if found is None:
            found = self._hash(text)
            self._memo.put(text, found)
        return found

    def keys(self, values: Any) -> np.ndarray:
        """Keys of distinct normalised strings (a sequence; None where missing gives 0), as ``uint64``."""
        memo = self._memo
        found = list(map(memo.new.get, values))  # one C-level pass: most strings were keyed before
        if None in found:
            # The rest in bulk: the older generation in one pass, then a keyed hash for what neither holds;
            # all of them join the newer generation at once (turning it over first if they would overflow it).
            where = [i for i, f in enumerate(found) if f is None]
            missing = [values[i] for i in where]
            got = list(map(memo.old.get, missing))
            got = [self._hash(v) if g is None and v is not None else g or 0 for v, g in zip(missing, got)]
            promoted = [(v, g) for v, g in zip(missing, got) if v is not None][-memo.limit:]
            if len(memo.new) + len(promoted) > memo.limit:
                memo.old, memo.new = memo.new, {}
            memo.new.update(promoted)
            for i, g in zip(where, got):
                found[i] = g
        return np.array(found, dtype=np.uint64)

    def name_key(self, raw: str | None) -> int:
        """The key of a display name as validation normalises it; 0 for none (as the batch keys it)."""
        if raw is None:
            return 0
        found = self._names.get(raw)
        if found is None:
            name = _normalise_display_name(raw)
            found = self.key(name) if name else 0
            self._names.put(raw, found)
        return found

    def key_message(self, m: Any, raw_name: str | None) -> None:
        """Replace the plain keys of a parsed message (:class:`OneMessage`) with this tenant's keyed ones."""
        key = self.key
        m.sender_key = key(m.sender)
        m.sender_domain_key = key(m.sender_domain)
        m.display_name_key = self.name_key(raw_name)
        m.recipient_keys = tuple([key(r) for r in m.recipients])

    def __reduce__(self):
        # Pickling would write the secret wherever the pickle goes (a cache, a log, a task queue).
        raise TypeError(f"TenantKeys of tenant {self.tenant_id!r} cannot be pickled: it holds the tenant's secret")

    def __repr__(self) -> str:
        return f"TenantKeys({self.tenant_id!r}, secret hidden)"


def tenant_keys(snapshot: Snapshot, secret: bytes | None) -> TenantKeys | None:
    """The keying a tenant's snapshot needs (None for a snapshot not in privacy mode), the secret checked.

    Raises
    ------
    ConfigError
        For a privacy-mode snapshot without its secret or with another secret
        than the one it was keyed with, and for a secret given for a snapshot
        not in privacy mode. Messages name the tenant and the fix, never the secret.

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> tenant_keys(_example(), None) is None
    True
    >>> tenant_keys(_example(), b"0123456789abcdef")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: tenant 'acme': a secret was given but its snapshot is not in privacy mode (plain keys, which no secret matches); remove the tenant from the secrets, or publish privacy-mode snapshots for it (privacy = true)
    """
    tenant = snapshot.tenant_id
    if not snapshot.config.privacy:
        if secret is not None:
            raise ConfigError(f"tenant {tenant!r}: a secret was given but its snapshot is not in privacy mode (plain "
                              "keys, which no secret matches); remove the tenant from the secrets, or publish "
                              "privacy-mode snapshots for it (privacy = true)")
        return None
    if secret is None:
        raise ConfigError(f"tenant {tenant!r}: its snapshot is in privacy mode (keys hashed with the tenant's "
                          f"secret), so mail is scored only with that secret: pass it (Scorer(..., secrets="
                          f"{{{tenant!r}: bytes}}), SnapshotView(snapshot, secret=...) for SignalSet.compute, or "
                          "--secrets FILE on the command line)")
    keys = TenantKeys(tenant, secret)
    if _secret_check(keys.secret) != snapshot.secret_check:
        raise ConfigError(f"tenant {tenant!r}: the secret given is not the one its snapshot was keyed with (the "
                          "snapshot's secret_check differs), and scoring with it would make every sender look new; "
                          "give the secret the refresh job used for this snapshot (the tenant's line in its secrets "
                          "file; after a rotation, the new secret)")
    return keys


def batch_keys(views: Mapping[str, Any]) -> dict[str, TenantKeys]:
    """The keying of every privacy-mode tenant among some views (empty when none is)."""
    return {t: v.keys for t, v in views.items() if getattr(v, "keys", None) is not None}
