"""Per-tenant secrets for privacy mode: read from a protected TOML file or given in memory, checked.

In privacy mode every key is a BLAKE2b hash keyed with the tenant's secret, so
the secret is what keeps the store's keys from being reversed by hashing
guessed addresses. A job therefore takes secrets only from a file that no other
user can read, holding enough key material, and never prints one.
"""

from __future__ import annotations

import os
import stat
import tomllib
from os import PathLike
from typing import Any, Mapping

from commgraph.graph import ConfigError

__all__ = ["load_secrets", "MIN_SECRET_BYTES", "MAX_SECRET_BYTES"]

#: Shortest secret accepted (128 bits): fewer bits can be searched for a known address's key.
MIN_SECRET_BYTES = 16
#: Longest secret BLAKE2b takes as its key.
MAX_SECRET_BYTES = 64


def load_secrets(source: str | PathLike | Mapping[str, Any]) -> dict[str, bytes]:
    """Per-tenant secrets for privacy mode, checked.

    Parameters
    ----------
    source : path or mapping
        A TOML file with one ``tenant_id = "hex"`` line per tenant in a
        ``[secrets]`` table (only the owner may read or write it: mode 600 or
        400 on POSIX systems), or a mapping of tenant id to ``bytes`` or hex text.

    Returns
    -------
    dict of str to bytes
        Each tenant's secret, between :data:`MIN_SECRET_BYTES` and
        :data:`MAX_SECRET_BYTES` bytes.

    Raises
    ------
    ConfigError
        For a file others can read, a bad tenant id, or a secret that is not
        hex or not of an accepted length. Messages name the tenant and the fix,
        never the secret.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "secrets.toml"
    >>> _ = p.write_text('[secrets]\\nacme = "' + "ab" * 32 + '"\\n')
    >>> os.chmod(p, 0o600)
    >>> {tenant: len(secret) for tenant, secret in load_secrets(p).items()}
    {'acme': 32}
    >>> load_secrets({"acme": b"short"})
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: the secret of tenant 'acme' has 5 bytes; privacy mode needs 16 to 64 (e.g. 32 random bytes: python -c "import secrets; print(secrets.token_hex(32))")
    """
    if isinstance(source, (str, PathLike)):
        where = f" in {os.fspath(source)}"
        entries = _read_file(source)
    elif isinstance(source, Mapping):
        where, entries = "", source
    else:
        raise ConfigError(f"secrets must be a TOML file path or a mapping of tenant id to bytes; got "
                          f"{type(source).__name__}")
    return {_tenant_id(tenant, where): _secret(tenant, value, where) for tenant, value in entries.items()}


def _read_file(path: str | PathLike) -> Mapping[str, Any]:
    """The ``[secrets]`` table of a regular file only its owner (the job's user, or root) can use.

    The file is checked once opened (``fstat``), so it cannot be swapped between the check and the read.
    """
    where = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read the secrets file {where}: {exc.strerror}") from None
    with fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the secrets file {where} is not a regular file; give the path of a TOML file")
        if os.name == "posix":
            if info.st_uid not in (os.geteuid(), 0):
                raise ConfigError(f"the secrets file {where} belongs to user id {info.st_uid}, not to the job's user "
                                  f"({os.geteuid()}) or root: another user could replace the secrets. Give it to "
                                  f"the job's user: chown {os.geteuid()} {where}")
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"the secrets file {where} can be used by other users (mode "
                                  f"{stat.S_IMODE(info.st_mode):03o}); make it private to the job's user: "
                                  f"chmod 600 {where}")
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:  # its message may quote a character of a secret: say only where
            position = str(exc).rpartition(" (")[2].rstrip(")") or "somewhere"
            raise ConfigError(f"the secrets file {where} is not valid TOML ({position})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"the secrets file {where} is not UTF-8 text (byte {exc.start}); write it as UTF-8 "
                              "TOML") from None
    unknown = [key for key in data if key != "secrets"]
    if unknown or not isinstance(data.get("secrets", {}), dict):
        raise ConfigError(f"the secrets file {where} must hold one [secrets] table of tenant_id = \"hex\" lines; "
                          f"found {'key ' + repr(unknown[0]) if unknown else 'secrets that is not a table'}")
    return data.get("secrets", {})


def _tenant_id(tenant: Any, where: str) -> str:
    if not isinstance(tenant, str) or not tenant.strip() or tenant != tenant.strip():
        raise ConfigError(f"secrets{where}: tenant id {tenant!r} must be a non-empty string without surrounding "
                          "white space")
    return tenant


def _secret(tenant: str, value: Any, where: str) -> bytes:
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise ConfigError(f"the secret of tenant {tenant!r}{where} is not hexadecimal text; write it as hex "
                              "digits (e.g. the output of: python -c \"import secrets; print(secrets.token_hex(32))\")"
                              ) from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
    else:
        raise ConfigError(f"the secret of tenant {tenant!r}{where} must be bytes or hex text; got "
                          f"{type(value).__name__}")
    if not MIN_SECRET_BYTES <= len(value) <= MAX_SECRET_BYTES:
        raise ConfigError(f"the secret of tenant {tenant!r}{where} has {len(value)} bytes; privacy mode needs "
                          f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} (e.g. 32 random bytes: python -c \"import "
                          "secrets; print(secrets.token_hex(32))\")")
    return value
