"""The snapshot store: versioned, checksummed, atomically published, memory-mapped on load.

Layout::

    <root>/<tenant_id>/CURRENT              "v000042": the version readers load
    <root>/<tenant_id>/v000042/manifest.json
    <root>/<tenant_id>/v000042/<table>.arrow          baseline tables (Arrow IPC, uncompressed)
    <root>/<tenant_id>/v000042/index.<table>.arrow    key-index slots
    <root>/<tenant_id>/v000042/state.<part>.arrow     refresh state (lifetime aggregates, windows, events, names)

Publishing writes a new version under a temporary name, fsyncs every file
(together, from threads) and the directory, renames it into place, then
swaps ``CURRENT`` with a temporary file and ``os.replace``: each step is atomic, so a reader sees the old version
or the new one, never a mix, and a publish killed at any point leaves the
previous version current (a publish that fails with an error, a full disk say,
removes its temporary directory; one killed leaves it to the next publish).
Version numbers only grow: a new one is above every folder and above the one
``CURRENT`` names, even when that folder is gone. An unreadable current version
(damaged ``CURRENT``, folder gone, manifest failing its checksum) is handed to
the publisher's ``decide`` to replace or keep; one written by a newer commgraph
is never replaced by an older one. A snapshot loaded from the store reads its
refresh state only when a refresh needs it, and says so if that version was
pruned meanwhile. Root entries whose names are no tenant id are not tenants
(:meth:`SnapshotStore.foreign` lists them).

The manifest lists every file's SHA-256 and carries its own (over its
canonical JSON), checked on every load, so a damaged ``as_of`` or prior is refused
too. These checksums catch corruption, not tampering: whoever can write the store
can recompute them (or remove the manifest's, as manifests written before it have none).

Format, chosen by measurement (benchmarks/bench_baselines.py, a tenant with 1M
senders): the tables signals read are uncompressed Arrow IPC, memory-mapped on
load (sender table 267 MB, mapped in under 1 ms; the whole snapshot loads in
about 4 ms, zero-copy, and the engine processes of one host share the page
cache), where Parquet is 5x smaller (52 MB) but takes about 1 s to decode. The
refresh state is lz4-compressed Arrow IPC, read only when a refresh needs it.
Parquet remains the interchange format for analysts: ``snapshot.arrow(name)``
writes with ``pyarrow.parquet.write_table``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from commgraph.graph import CommGraphError, ConfigError

from ._config import BaselineConfig
from ._index import KeyIndex
from ._snapshot import FIRST_INBOUND, SCHEMA_VERSION, Snapshot, check_tenant, to_numpy
from ._tables import KEY_COLUMNS, TABLES

__all__ = ["SnapshotStore", "CorruptSnapshotError"]

_FSYNC_THREADS = 16  # a version has about 40 files
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")  # always fullmatch: "$" accepts a final newline
_VERSION = re.compile(r"v(\d{6,})")
_CHUNK = 1 << 22


class CorruptSnapshotError(CommGraphError):
    """A stored snapshot failed its checksum, or has a layout this library cannot read.

    Parameters
    ----------
    message : str
    reason : str, default "damaged"
        Why, one of :attr:`REASONS`, so that a caller can act on it without
        parsing the message: ``"newer_schema"`` (written by a newer commgraph:
        upgrade, never replace it with an older build), ``"older_schema"``
        (written by an older commgraph: rebuild it), ``"checksum"`` (a file or
        the manifest fails its SHA-256), ``"missing"`` (the version folder, its
        manifest or a file it lists is gone), ``"damaged"`` (a manifest that is
        not a JSON object), ``"pointer"`` (the tenant's ``CURRENT`` names no
        version), ``"other_tenant"`` (the manifest names another tenant).
    schema_version : int, optional
        The snapshot schema the manifest declares, for the two schema reasons.

    Examples
    --------
    >>> issubclass(CorruptSnapshotError, CommGraphError)
    True
    >>> err = CorruptSnapshotError("written by a newer commgraph", reason="newer_schema", schema_version=3)
    >>> err.reason, err.schema_version
    ('newer_schema', 3)
    >>> import pickle; pickle.loads(pickle.dumps(err)).reason
    'newer_schema'
    """

    REASONS = ("newer_schema", "older_schema", "checksum", "missing", "damaged", "pointer", "other_tenant")

    def __init__(self, message: str, *, reason: str = "damaged", schema_version: int | None = None):
        if reason not in self.REASONS:
            raise ValueError(f"The 'reason' parameter of CorruptSnapshotError must be one of {self.REASONS}. "
                             f"Got {reason!r} instead.")
        super().__init__(message)
        self.reason = reason
        self.schema_version = schema_version

    def __reduce__(self):
        # Keyword-only fields survive pickling (errors cross the refresh job's worker processes).
        return (_corrupt, (str(self), self.reason, self.schema_version))


def _corrupt(message: str, reason: str, schema_version: int | None) -> CorruptSnapshotError:
    return CorruptSnapshotError(message, reason=reason, schema_version=schema_version)


def _library_version() -> str:
    try:
        from importlib.metadata import version

        return version("commgraph")
    except Exception:  # an uninstalled checkout still writes a manifest
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of a manifest's content, itself aside, in a canonical JSON form (sorted keys, no white space):
    the manifest carries as_of, priors, configuration and the files' checksums, so it is checked too."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _fsync_all(paths: list[Path]) -> None:
    """Flush the files to disk together: fsyncs issued from threads (they release the GIL) share the
    filesystem's journal commits, where one after the other each waits for its own (40 files of a
    version: about 16 ms against 55-90 ms on this project's machines)."""
    with ThreadPoolExecutor(max_workers=min(_FSYNC_THREADS, len(paths)) or 1) as pool:
        list(pool.map(_fsync_path, paths))  # list(): re-raises the first error


def _fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The state file that holds a snapshot's ledger of counted labels (absent from snapshots written before it).
LEDGER_FILE = "state.labelled.arrow"
# (the pairs' first inbound times: a state without them counts first-time senders as before; see _snapshot)
FIRST_INBOUND_FILE = f"state.{FIRST_INBOUND}.arrow"

#: The codec of the refresh state's files. Measured on the 100 tenants of the refresh-job harness (2,900 state
#: files, 854 MB uncompressed; each file's best of 5, written then hashed then read): zstd (Arrow's default level)
#: writes in 1.98 s, hashes in 0.25 s, reads in 0.87 s, 195 MB; zstd at level -3: 1.83, 0.28, 0.82 s, 239 MB;
#: lz4_frame: 1.51, 0.30, 0.49 s, 291 MB; none: 0.82, 0.63, 0.16 s, 854 MB, whose fsyncs and load-time checksums
#: (both once more per night) then cost what it saves, for 4.4 times the disk. Files written with another codec
#: stay readable: an Arrow file records each buffer's codec.
_STATE_CODEC = "lz4"


def _write_ipc(path: Path, table: pa.Table, *, compress: bool = False) -> None:
    # Tables that signals read stay uncompressed (memory-mapped, zero-copy); the
    # refresh state is read once per refresh, so it is compressed (_STATE_CODEC) to save disk.
    # Not flushed to disk here: publish fsyncs all of a version's files together.
    # Compressed in this thread, not from Arrow's thread pool (as _READ_OPTIONS, the same bytes): the incremental
    # job's best wall time over 3 rounds of 3 runs, interleaved, 12.30 -> 11.80 s (each round's best 0.16-0.94 s less).
    options = pa.ipc.IpcWriteOptions(compression=_STATE_CODEC, use_threads=False) if compress else None
    with open(path, "wb") as fh:
        with pa.ipc.new_file(fh, table.schema, options=options) as writer:
            writer.write_table(table)


#: Files at least this large are memory-mapped; smaller ones are read into memory. A process may hold about 65,000
#: mappings (Linux's vm.max_map_count): mapping every file of a snapshot (a dozen) stopped a scorer at about 5,900
#: tenants, most of whose files are a few kilobytes (read in microseconds), while a large tenant's tables load
#: zero-copy as before.
_MAP_AT_LEAST = 1 << 20
#: The refresh state's files are decompressed in the reading thread, not from Arrow's thread pool. Measured on the
#: 2,900 state files of the refresh-job harness's 100 tenants, 15 tenants held at a time (as the job's batches), 3 runs
#: each: decoded in 0.38-0.41 s against 0.64-1.34 s, the difference mostly system time (0.19-0.23 s against
#: 0.40-1.57 s: fresh memory the kernel maps for the pool's threads). The uncompressed tables are zero-copy either way.
_READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)


def _read_ipc(path: Path) -> pa.Table:
    """A stored Arrow file, memory-mapped when large (zero-copy: buffers point into the mapped file), read into
    memory when small (zero-copy from that buffer); a file that is gone or is not Arrow IPC is a
    :class:`CorruptSnapshotError` naming it."""
    try:
        if path.stat().st_size < _MAP_AT_LEAST:
            return pa.ipc.open_file(pa.py_buffer(path.read_bytes()), options=_READ_OPTIONS).read_all()
        return pa.ipc.open_file(pa.memory_map(str(path), "r"), options=_READ_OPTIONS).read_all()
    except FileNotFoundError:
        raise CorruptSnapshotError(f"{path} is missing; the manifest lists it: {_REPUBLISH}",
                                   reason="missing") from None
    except MemoryError as exc:  # (pyarrow's ArrowMemoryError too: the machine's, not the file's)
        raise CommGraphError(f"{path} cannot be read into memory ({exc or 'out of memory'}); free memory or serve "
                             "fewer tenants per process, then load it again") from None
    except OSError as exc:
        if "Cannot allocate memory" in str(exc):  # (mmap's ENOMEM: the process's mappings or memory, not the file)
            raise CommGraphError(f"{path} cannot be memory-mapped ({exc}): the process has reached its limit of "
                                 "memory mappings (vm.max_map_count) or of memory; serve fewer tenants per process "
                                 "(Scorer.from_store(store, tenants=[...])) or raise the limit, then load it "
                                 "again") from None
        if exc.errno is not None and not isinstance(exc, pa.ArrowException):
            # The machine's, not the file's: permissions, open-file limits, I/O errors.
            raise CommGraphError(f"{path} cannot be read ({exc}); check the store's permissions and the process's "
                                 "limits (ulimit -n), then load it again") from None
        raise _damaged(path, exc) from None
    except pa.ArrowException as exc:  # (its bytes: not Arrow IPC, cut short, or flipped)
        raise _damaged(path, exc) from None


def _damaged(path: Path, exc: Exception) -> CorruptSnapshotError:
    return CorruptSnapshotError(f"{path} cannot be read as an Arrow file ({exc}): {_REPUBLISH}", reason="damaged")


# What a reader can do about a version it cannot read.
_REPUBLISH = "the snapshot is refused: load an earlier version or republish"
# Loads of the current version retried when a publish moved CURRENT on and pruned the version it named
# meanwhile (each retry follows a publish that completed: a bound, not a wait).
_LOAD_ATTEMPTS = 5


def _version_number(version: object, caller: str) -> int | None:
    """A version argument as an int (None: the current version); anything else refused."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ConfigError(f"The 'version' parameter of {caller} must be a version number (an int >= 1, as "
                          f"SnapshotStore.versions lists them) or None for the current one. Got {version!r} instead.")
    return int(version)


def _is_tenant_id(name: object) -> bool:
    return isinstance(name, str) and _TENANT.fullmatch(name) is not None


def _may_hold_pointer(entry: Path) -> bool:
    """Whether a root entry under a tenant's name may hold a ``CURRENT`` pointer (a tenant's folder)."""
    try:
        return (entry / "CURRENT").exists()
    except OSError:  # (permissions, I/O: listed, so that reading it names the error rather than hiding the tenant)
        return True


def _unreadable_entry(tenant_id: str, path: Path, exc: OSError) -> CommGraphError:
    """The error for a tenant's entry that the operating system refuses to read (a file in place of its folder,
    a looping link, permissions, I/O): that tenant's failure, naming the path, not an OSError out of a job."""
    return CommGraphError(f"tenant {tenant_id!r}: {path} cannot be read ({type(exc).__name__}: "
                          f"{exc.strerror or exc}); the store holds each tenant in a folder this process can read: "
                          "check the tenant's entry in the store (a file or a broken link in its place, its "
                          "permissions, the disk), then run again")


def _no_step(step: str) -> None:
    """The default publish-step hook of :class:`SnapshotStore`: nothing."""


class _StateLoader:
    """Reads the refresh state of one stored version when a refresh first needs it (an engine never does).

    By then retention may have pruned the version, or the tenant been rebuilt under the same number: its
    manifest must still list these very files, else the state would belong to another snapshot. A class, not a
    closure, so that a loaded snapshot pickles (for worker processes) and reads its state there too.
    """

    __slots__ = ("root", "tenant_id", "version", "state_files")

    def __init__(self, root: Path, tenant_id: str, version: int, state_files: dict[str, str]):
        self.root = root  # absolute (SnapshotStore.path)
        self.tenant_id = tenant_id
        self.version = version
        self.state_files = state_files

    def __call__(self) -> dict[str, pa.Table]:
        folder = self.root / self.tenant_id / f"v{self.version:06d}"
        try:
            now = SnapshotStore._read_manifest(self.tenant_id, folder)["files"]
            if {f: now.get(f) for f in self.state_files} == self.state_files:
                return {f[len("state."):-len(".arrow")]: _read_ipc(folder / f) for f in self.state_files}
        except (CorruptSnapshotError, FileNotFoundError):  # (_read_ipc: a CorruptSnapshotError)
            pass
        raise CommGraphError(f"version {self.version} of tenant {self.tenant_id!r} was pruned (or replaced) in "
                             f"{self.root} since it was loaded, and a refresh reads its state then; load the "
                             "tenant again and refresh that")


class SnapshotStore:
    """Versioned snapshots of many tenants under one directory.

    Parameters
    ----------
    path : str or PathLike
        Root directory. Nothing is created until the first publish (or
        :meth:`ensure_writable`, which a job calls before it starts).
    retain : int, default 5
        Versions kept per tenant after each publish (the current one always is).

    Examples
    --------
    >>> import tempfile
    >>> from commgraph.baselines._snapshot import _example
    >>> store = SnapshotStore(tempfile.mkdtemp(), retain=2)
    >>> snap = _example()
    >>> store.publish(snap), store.publish(snap), store.publish(snap)
    (1, 2, 3)
    >>> store.versions("acme"), store.current("acme")
    ([2, 3], 3)
    >>> loaded = store.load("acme")
    >>> loaded.equals(snap), loaded.table("sender")["n_messages"].tolist()
    (True, [1, 2])
    >>> store.load("globex")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.CommGraphError: tenant 'globex' has no published snapshot in this store
    """

    def __init__(self, path: str | PathLike, *, retain: int = 5, _on_step: Callable[[str], None] | None = None):
        if isinstance(retain, bool) or not isinstance(retain, int) or retain < 1:
            raise ConfigError(f"The 'retain' parameter of SnapshotStore must be an int >= 1. Got {retain!r} instead.")
        # Absolute now: a relative path re-read after a chdir (a daemon's chdir('/'), gunicorn --chdir) would name
        # another folder, where every tenant's snapshot seems gone.
        self.path = Path(path).absolute()
        self.retain = retain
        # Fault injection for crash tests: called with the name of each publish step. (A module-level default:
        # a store pickles, for worker processes.)
        self._on_step = _on_step or _no_step

    def ensure_writable(self) -> None:
        """Create the root directory when missing and check that this process can write in it.

        A job calls it before it starts, so an unwritable store fails at once
        rather than after every tenant was built.

        Raises
        ------
        ConfigError
            The root cannot be created, or a file cannot be written in it (the
            message names the path and the operating system's error).

        Examples
        --------
        >>> import os, tempfile
        >>> root = os.path.join(tempfile.mkdtemp(), "snapshots")
        >>> store = SnapshotStore(root)
        >>> os.path.isdir(root)
        False
        >>> store.ensure_writable()
        >>> os.listdir(root)  # the probe file is gone
        []
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=self.path)
            try:
                os.write(fd, b"probe")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"the snapshot store {str(self.path)!r} is not writable: {exc.strerror or exc} "
                              f"({type(exc).__name__}, errno {exc.errno}); create it or give this process write "
                              "access to it, or use another directory") from None

    # ------------------------------------------------------------------ paths
    def _tenant_dir(self, tenant_id: str) -> Path:
        if not _is_tenant_id(tenant_id):
            raise ConfigError(f"tenant id {tenant_id!r} cannot name a store directory; use letters, digits and "
                              "'.', '_', '@', '+', '-' (at most 128 characters)")
        return self.path / tenant_id

    def tenants(self) -> list[str]:
        """Tenants with a current version, sorted.

        A folder whose name no tenant can have (``old backup``, say) is not a
        tenant, whatever it holds: :meth:`foreign` lists those names.

        Examples
        --------
        >>> import tempfile
        >>> SnapshotStore(tempfile.mkdtemp()).tenants()
        []
        """
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if _is_tenant_id(p.name) and _may_hold_pointer(p))

    def foreign(self) -> list[str]:
        """Entries of the root directory that are not tenants' folders, sorted: names no tenant id can be, and
        entries under a tenant's name that are not folders (a file, a broken or looping link).

        The store never reads them; a caller may report them (a copy of a
        tenant's folder under a valid name, such as ``acme.bak``, is listed
        by :meth:`tenants` instead, and refused when loaded: its manifest
        names another tenant).

        Examples
        --------
        >>> import os, tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> os.mkdir(store.path / "old backup"); _ = (store.path / "globex").write_text("")
        >>> store.tenants(), store.foreign()
        (['acme'], ['globex', 'old backup'])
        """
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if not _is_tenant_id(p.name) or not p.is_dir())

    def versions(self, tenant_id: str) -> list[int]:
        """Complete versions of a tenant, oldest first.

        Raises
        ------
        CommGraphError
            The tenant's entry cannot be read (not a folder, permissions, I/O); the message names it.

        Examples
        --------
        >>> import tempfile
        >>> SnapshotStore(tempfile.mkdtemp()).versions("acme")
        []
        """
        root = self._tenant_dir(tenant_id)
        try:
            if not root.exists():
                return []
            found = [_VERSION.fullmatch(p.name) for p in root.iterdir() if p.is_dir()]
        except FileNotFoundError:  # (removed meanwhile)
            return []
        except OSError as exc:
            raise _unreadable_entry(tenant_id, root, exc) from None
        return sorted(int(m.group(1)) for m in found if m)

    def current(self, tenant_id: str) -> int | None:
        """The version readers load, or None before the first publish.

        Raises
        ------
        CorruptSnapshotError
            ``CURRENT`` names no version (it is empty or damaged); its
            ``reason`` is ``"pointer"``.
        CommGraphError
            The operating system refuses to read it (the tenant's entry is
            not a folder, permissions, I/O); the message names the path.

        Examples
        --------
        >>> import tempfile
        >>> SnapshotStore(tempfile.mkdtemp()).current("acme") is None
        True
        """
        pointer = self._tenant_dir(tenant_id) / "CURRENT"
        try:
            text = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, IsADirectoryError) as exc:
            raise CorruptSnapshotError(f"{pointer} cannot be read as a version name ({exc})",
                                       reason="pointer") from None
        except OSError as exc:  # (the machine's, not the pointer's: no CorruptSnapshotError, which --force replaces)
            raise _unreadable_entry(tenant_id, pointer, exc) from None
        m = _VERSION.fullmatch(text)
        if not m:
            raise CorruptSnapshotError(f"{pointer} holds {text!r}, not a version name like 'v000001'", reason="pointer")
        return int(m.group(1))

    def current_problem(self, tenant_id: str) -> CorruptSnapshotError | None:
        """Why the tenant's current version cannot be read, or None (it can, or there is none).

        Checks what :meth:`publish` checks before calling ``decide``: the
        ``CURRENT`` pointer, the version folder it names and that version's
        manifest (checksum, schema, tenant); not the data files, whose
        checksums :meth:`load` checks. ``decide`` receives no manifest when
        there is a problem; it can call this (under the same lock, so the
        answer is the one ``publish`` saw) to learn its ``reason``.

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> store.current_problem("acme") is None
        True
        >>> _ = (store.path / "acme" / "CURRENT").write_text("")
        >>> store.current_problem("acme").reason
        'pointer'
        """
        return self._current_state(tenant_id)[2]

    def _current_state(self, tenant_id: str) -> tuple[int | None, dict[str, Any] | None, CorruptSnapshotError | None]:
        """The current version, its manifest, and why that cannot be read. When ``CURRENT`` itself cannot be
        read the version is the newest one on disk (0 when none): the one the damaged pointer most likely named."""
        try:
            current = self.current(tenant_id)
        except CorruptSnapshotError as exc:
            return max(self.versions(tenant_id), default=0), None, exc
        if current is None:
            return None, None, None
        folder = self._tenant_dir(tenant_id) / f"v{current:06d}"
        if not folder.is_dir():
            return current, None, self._pointer_to_nothing(tenant_id, current)
        try:
            return current, self._read_manifest(tenant_id, folder), None
        except CorruptSnapshotError as exc:
            return current, None, exc

    def _pointer_to_nothing(self, tenant_id: str, version: int) -> CorruptSnapshotError:
        root = self._tenant_dir(tenant_id)
        versions = self.versions(tenant_id)
        fix = (f"load one of them by number, or republish the tenant (commgraph refresh --force) to point "
               "CURRENT at a complete version") if versions else "republish the tenant (commgraph refresh --force)"
        return CorruptSnapshotError(f"{root / 'CURRENT'} names version {version}, whose folder is gone; versions: "
                                    f"{versions}: {fix}", reason="missing")

    def _next_version(self, tenant_id: str, current: int | None) -> int:
        """One more than any version number in use: folders, files with a version's name, and the one
        ``CURRENT`` names even when its folder is gone (a reader that loaded it must see a new number)."""
        taken = (_VERSION.fullmatch(p.name) for p in self._tenant_dir(tenant_id).iterdir())
        return max([int(m.group(1)) for m in taken if m] + [current or 0]) + 1

    @contextmanager
    def _lock(self, tenant_id: str) -> Iterator[None]:
        root = self._tenant_dir(tenant_id)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # one publisher per tenant at a time
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ publish
    def publish(self, snapshot: Snapshot, *,
                decide: Callable[[int, dict[str, Any] | None], int | None] | None = None) -> int:
        """Write a snapshot as the tenant's next version and make it current, atomically.

        Parameters
        ----------
        snapshot : Snapshot
        decide : callable, optional
            ``decide(current_version, current_manifest)``, called when the
            tenant has a current version, under the lock that serialises the
            tenant's publishers (other processes included): so what it checks
            cannot change before the new version is current. The manifest is
            None when the current version cannot be read: its manifest fails
            its checksum or is missing, its folder is gone, or ``CURRENT``
            names no version (then ``current_version`` is the newest version
            on disk, 0 when none); :meth:`current_problem` says which. It
            returns None to publish, or a version number to publish nothing
            and return that number (say, the current version, when it already
            holds this content); raising aborts the publish and leaves the
            store as it was.

        Returns
        -------
        int
            The new version number (or what ``decide`` returned).

        Raises
        ------
        CorruptSnapshotError
            The current version was written by a newer commgraph (``reason``
            ``"newer_schema"``): an older one never replaces it.

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp())
        >>> store.publish(_example())
        1
        >>> store.publish(_example(), decide=lambda version, manifest: version)  # already current: kept
        1
        """
        if not isinstance(snapshot, Snapshot):
            raise ConfigError(f"The 'snapshot' parameter of SnapshotStore.publish must be a Snapshot. "
                              f"Got {type(snapshot).__name__} instead.")
        tenant = snapshot.tenant_id
        root = self._tenant_dir(tenant)
        with self._lock(tenant):
            current, manifest, problem = self._current_state(tenant)
            if problem is not None and problem.reason == "newer_schema":
                # A mixed-version rollout: replacing it would move the tenant back to an older format.
                raise CorruptSnapshotError(
                    f"tenant {tenant!r}: the current snapshot (version {current}) was written by a newer commgraph "
                    f"(snapshot schema {problem.schema_version}; this one writes {SCHEMA_VERSION}); an older "
                    "commgraph never replaces it: upgrade commgraph where this runs (to roll the tenant back, "
                    "remove its newer versions from the store first)",
                    reason="newer_schema", schema_version=problem.schema_version)
            if decide is not None and current is not None:
                kept = decide(current, manifest)
                if kept is not None:
                    return kept
            for stale in [*root.glob(".tmp-*"), *root.glob(".CURRENT.tmp-*")]:  # left by a publish that died
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
            version = self._next_version(tenant, current)
            name = f"v{version:06d}"
            tmp = root / f".tmp-{name}-{os.getpid()}"
            try:
                self._write_version(snapshot, tmp, version)
                os.rename(tmp, root / name)
            except BaseException:
                # Disk full, an error, an interrupt: nothing of this publish stays behind (the current
                # version is another folder, untouched).
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_path(root)
            self._on_step("rename")
            pointer = root / f".CURRENT.tmp-{os.getpid()}"
            try:
                with open(pointer, "w") as fh:
                    fh.write(name + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(pointer, root / "CURRENT")
            except BaseException:
                pointer.unlink(missing_ok=True)
                raise
            _fsync_path(root)
            self._on_step("current")
            self._apply_retention(tenant, keep=version)
        return version

    def _write_version(self, snapshot: Snapshot, tmp: Path, version: int) -> None:
        """Every file of a version and its manifest, under a temporary name, flushed to disk."""
        tmp.mkdir()
        self._on_step("mkdir")
        files: dict[str, pa.Table] = {f"{t}.arrow": snapshot.arrow(t) for t in TABLES}
        for t in TABLES:
            slots = snapshot.index(t).slots
            files[f"index.{t}.arrow"] = pa.table({"slot": pa.array(slots)})
        for part, table in snapshot.state_tables().items():
            files[f"state.{part}.arrow"] = table
        checksums = {}
        for filename, table in files.items():
            _write_ipc(tmp / filename, table, compress=filename.startswith("state."))
            checksums[filename] = _sha256(tmp / filename)
            self._on_step(f"write:{filename}")
        manifest = {
            "schema_version": SCHEMA_VERSION, "library_version": _library_version(), "version": version,
            **snapshot.meta(), "files": checksums,
        }
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
        # Every file on disk before the directory is renamed into place: a crash
        # after the rename finds a complete version.
        _fsync_all([tmp / filename for filename in [*files, "manifest.json"]])
        _fsync_path(tmp)
        self._on_step("manifest")

    def _apply_retention(self, tenant_id: str, *, keep: int) -> None:
        root = self._tenant_dir(tenant_id)
        for v in self.versions(tenant_id)[:-self.retain]:
            if v != keep:
                # Out of the versions' names in one rename, then deleted: a publish killed while deleting
                # leaves a leftover the next publish removes, never a version listed but half gone.
                doomed = root / f".tmp-pruned-v{v:06d}-{os.getpid()}"
                try:
                    os.rename(root / f"v{v:06d}", doomed)
                except FileNotFoundError:
                    continue
                shutil.rmtree(doomed, ignore_errors=True)

    # ------------------------------------------------------------------ load
    def manifest(self, tenant_id: str, version: int | None = None) -> dict[str, Any]:
        """The manifest of the current (or a named) version.

        Raises
        ------
        CorruptSnapshotError
            It cannot be read; ``reason`` says why (see the exception).

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> m = store.manifest("acme")
        >>> m["schema_version"], m["tenant_id"], m["row_counts"]["sender"]
        (2, 'acme', 2)
        """
        return self._read_manifest(tenant_id, self._locate(tenant_id, version)[1])

    @staticmethod
    def _read_manifest(tenant_id: str, folder: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError:
            raise CorruptSnapshotError(f"{folder} has no manifest.json: {_REPUBLISH}", reason="missing") from None
        except ValueError as exc:  # not JSON, or not text
            raise CorruptSnapshotError(f"{folder} has no readable manifest.json ({exc}): {_REPUBLISH}",
                                       reason="damaged") from None
        if not isinstance(manifest, dict):
            raise CorruptSnapshotError(f"{folder / 'manifest.json'} holds a JSON {type(manifest).__name__}, not an "
                                       "object", reason="damaged")
        # Always checked (a few microseconds): a damaged as_of or prior would load silently otherwise. First:
        # the digest covers the schema version too, and a flipped bit there must read as damage (replaceable),
        # not as a newer commgraph's snapshot (which a job refuses to replace, even with --force).
        # Manifests written before the check existed have no digest and are read as they are.
        if "manifest_sha256" in manifest and manifest["manifest_sha256"] != _manifest_digest(manifest):
            raise CorruptSnapshotError(f"{folder / 'manifest.json'} fails its SHA-256 checksum: its content was "
                                       f"changed after publishing; {_REPUBLISH}", reason="checksum")
        schema = manifest.get("schema_version")
        if schema != SCHEMA_VERSION:
            known = isinstance(schema, int) and not isinstance(schema, bool)
            if known and schema > SCHEMA_VERSION:
                raise CorruptSnapshotError(
                    f"{folder} has snapshot schema version {schema}; this library reads version {SCHEMA_VERSION} "
                    f"only: it was written by a newer commgraph ({manifest.get('library_version', 'unknown')}). "
                    "Upgrade commgraph to load it.", reason="newer_schema", schema_version=schema)
            raise CorruptSnapshotError(
                f"{folder} has snapshot schema version {schema!r}; this library reads "
                f"version {SCHEMA_VERSION} only. Rebuild the snapshot, or load it with a matching commgraph.",
                reason="older_schema" if known else "damaged", schema_version=schema if known else None)
        try:
            check_tenant(manifest.get("tenant_id"), tenant_id, f"stored snapshot {folder}")
        except CommGraphError as exc:
            raise CorruptSnapshotError(str(exc), reason="other_tenant") from None
        return manifest

    def _locate(self, tenant_id: str, version: int | None) -> tuple[int, Path]:
        """A version and its folder; ``CURRENT`` is read once, when no version is named."""
        root = self._tenant_dir(tenant_id)
        if version is None:
            version = self.current(tenant_id)
            if version is None:
                raise CommGraphError(f"tenant {tenant_id!r} has no published snapshot in this store")
            folder = root / f"v{version:06d}"
            if not folder.is_dir():
                raise self._pointer_to_nothing(tenant_id, version)
            return version, folder
        version = _version_number(version, "SnapshotStore.manifest")
        folder = root / f"v{version:06d}"
        if not folder.is_dir():
            raise CommGraphError(f"tenant {tenant_id!r} has no version {version}; versions: "
                                 f"{self.versions(tenant_id)}")
        return int(version), folder

    def _version_dir(self, tenant_id: str, version: int | None) -> Path:
        return self._locate(tenant_id, version)[1]

    def load(self, tenant_id: str, version: int | None = None, *, verify: bool = True) -> Snapshot:
        """Memory-map the current (or a named) version of a tenant's snapshot.

        Parameters
        ----------
        tenant_id : str
        version : int, optional
            Default: the current version (``CURRENT`` is read once, so a
            publish landing meanwhile never mixes two versions).
        verify : bool, default True
            Check every file's SHA-256 against the manifest first (reads every
            byte once). Without it, loading only maps the files. The refresh
            state is read later, when a refresh first needs it: if retention
            has pruned the version by then, that refresh is refused (load the
            tenant again).

        Returns
        -------
        Snapshot

        Raises
        ------
        CorruptSnapshotError
            A checksum differs, a file is missing, or the schema version is unknown.

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp()); _ = store.publish(_example())
        >>> store.load("acme", 1, verify=False)
        Snapshot('acme' as of 2024-05-04 00:00 UTC: 2 senders, 3 pairs, 3 mailboxes)
        """
        return self.load_numbered(tenant_id, _version_number(version, "SnapshotStore.load"), verify=verify)[1]

    def load_numbered(self, tenant_id: str, version: int | None = None, *, verify: bool = True
                      ) -> tuple[int, Snapshot]:
        """:meth:`load`, with the number of the version loaded (the current one's as ``CURRENT`` named it).

        A publish may prune the current version between reading ``CURRENT``
        and mapping its files (retention may keep as few as one): the version
        ``CURRENT`` names then is loaded instead, so a reader gets the old
        version or the new one, never an error for a race.

        Examples
        --------
        >>> import tempfile
        >>> from commgraph.baselines._snapshot import _example
        >>> store = SnapshotStore(tempfile.mkdtemp(), retain=1)
        >>> _ = store.publish(_example()); _ = store.publish(_example())
        >>> store.load_numbered("acme")[0], store.versions("acme")
        (2, [2])
        """
        version = _version_number(version, "SnapshotStore.load_numbered")
        if version is not None:
            return version, self._load(tenant_id, version, verify)
        for _ in range(_LOAD_ATTEMPTS - 1):
            current = self.current(tenant_id)
            if current is None:
                break
            try:
                return current, self._load(tenant_id, current, verify)
            except CommGraphError:
                if self.current(tenant_id) == current:  # not a publish moving on: the version's own problem
                    raise
        current = self.current(tenant_id)
        if current is None:
            raise CommGraphError(f"tenant {tenant_id!r} has no published snapshot in this store")
        return current, self._load(tenant_id, current, verify)

    def _load(self, tenant_id: str, version: int, verify: bool) -> Snapshot:
        folder = self._tenant_dir(tenant_id) / f"v{version:06d}"
        if not folder.is_dir():
            if self.current(tenant_id) == version:
                raise self._pointer_to_nothing(tenant_id, version)
            raise CommGraphError(f"tenant {tenant_id!r} has no version {version}; versions: "
                                 f"{self.versions(tenant_id)}")
        manifest = self._read_manifest(tenant_id, folder)
        files = manifest["files"]
        for filename, expected in files.items():
            path = folder / filename
            try:
                digest = _sha256(path) if verify else None
            except FileNotFoundError:
                digest = None
            if not path.exists():
                raise CorruptSnapshotError(f"{path} is missing; the manifest lists it: {_REPUBLISH}",
                                           reason="missing")
            if verify and digest != expected:
                raise CorruptSnapshotError(f"{path} fails its SHA-256 checksum (manifest {expected[:12]}...); "
                                           f"{_REPUBLISH}", reason="checksum")
        tables = {t: _read_ipc(folder / f"{t}.arrow") for t in TABLES}
        indexes = {}
        for t in TABLES:
            keys = to_numpy(tables[t].column(KEY_COLUMNS[t])) if tables[t].num_rows else np.zeros(0, np.uint64)
            slots = to_numpy(_read_ipc(folder / f"index.{t}.arrow").column("slot"))
            indexes[t] = KeyIndex(keys, slots)
        state_files = {f: digest for f, digest in files.items() if f.startswith("state.")}
        load_state = _StateLoader(self.path, tenant_id, version, state_files)
        return Snapshot(tenant_id=manifest["tenant_id"], as_of=pd.Timestamp(manifest["as_of"]),
                        config=BaselineConfig.from_dict(manifest["config"]), tables=tables, state=None,
                        priors=manifest["priors"], fingerprint=manifest["input_fingerprint"],
                        secret_check=manifest.get("secret_check"), indexes=indexes, state_loader=load_state,
                        own_domains_digest=manifest.get("own_domains_sha256"),
                        ledger_stored=LEDGER_FILE in state_files,
                        display_name_form=manifest.get("display_name_form", 1))  # (1: recorded by none)

    def __repr__(self) -> str:
        return f"SnapshotStore({str(self.path)!r}, retain={self.retain})"
