"""The snapshot store: round trips, versions, checksums, crash safety, privacy and tenant isolation."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from commgraph.baselines import (
    SCHEMA_VERSION, BaselineConfig, CorruptSnapshotError, SnapshotStore, build_baselines, refresh,
)
from commgraph.graph import CommGraphError, ConfigError, generate, stable_keys, validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mail():
    g = generate(tenants=2, days=10, random_state=5, scale=0.2, attack_rate=0.01)
    return validate(g.messages, tenants=g.tenants)


@pytest.fixture(scope="module")
def snaps(mail):
    return build_baselines(mail, as_of="2025-01-12T08:00Z", config=BaselineConfig(windows=("1d", "3d"), settle_delay="1d"))


def test_round_trip_and_refresh_from_a_loaded_snapshot(tmp_path, mail, snaps) -> None:
    store = SnapshotStore(tmp_path)
    tenant, snap = next(iter(snaps.items()))
    assert store.publish(snap) == 1
    loaded = store.load(tenant)
    assert loaded.equals(snap) and loaded.fingerprint == snap.fingerprint and loaded.priors == snap.priors
    keys = snap.column("sender", "sender_key")
    probe = np.concatenate([keys[::7], stable_keys(["nobody@nowhere.example"])])
    assert loaded.lookup("sender", probe).tolist() == list(range(0, len(keys), 7)) + [-1]
    # The refresh state survives the store: refreshing the loaded copy equals refreshing the original.
    later = "2025-01-14T17:00Z"
    assert refresh(loaded, mail, as_of=later).equals(refresh(snap, mail, as_of=later))
    manifest = store.manifest(tenant)
    assert manifest["input_fingerprint"] == snap.fingerprint
    assert set(manifest) >= {"schema_version", "library_version", "tenant_id", "as_of", "config", "row_counts",
                             "files", "input_fingerprint"}
    assert BaselineConfig.from_dict(manifest["config"]) == snap.config


def test_versions_and_retention(tmp_path, snaps) -> None:
    store = SnapshotStore(tmp_path, retain=3)
    tenant, snap = next(iter(snaps.items()))
    for expected in range(1, 6):
        assert store.publish(snap) == expected
    assert store.versions(tenant) == [3, 4, 5] and store.current(tenant) == 5
    assert store.load(tenant, 4).equals(snap)
    with pytest.raises(CommGraphError, match="no version 1"):
        store.load(tenant, 1)
    assert store.tenants() == [tenant]


def test_every_file_of_a_version_is_on_disk_before_it_is_renamed_into_place(tmp_path, snaps, monkeypatch) -> None:
    # The files are fsynced together (from threads): each must still be flushed
    # before the rename that makes the version visible, and the pointer after it.
    import os

    synced: set[str] = set()
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace
    renamed: list[tuple[set[str], bool]] = []

    def fsync(fd: int) -> None:
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def rename(src, dst) -> None:
        files = {str(p) for p in Path(src).iterdir()}
        renamed.append((files - synced, str(src) in synced))
        real_rename(src, dst)

    def replace(src, dst) -> None:
        assert str(src) in synced, "the CURRENT pointer must be on disk before it replaces the old one"
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    store = SnapshotStore(tmp_path)
    tenant, snap = next(iter(snaps.items()))
    store.publish(snap)
    (unflushed, directory_flushed), = renamed
    assert not unflushed and directory_flushed, sorted(unflushed)
    assert len(synced) > 30 and any(f.endswith("manifest.json") for f in synced)
    monkeypatch.undo()
    assert store.load(tenant).equals(snap)


def test_a_corrupt_or_unknown_snapshot_is_refused(tmp_path, snaps) -> None:
    store = SnapshotStore(tmp_path)
    tenant, snap = next(iter(snaps.items()))
    store.publish(snap)
    folder = tmp_path / tenant / "v000001"
    target = folder / "sender.arrow"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshotError, match="sender.arrow fails its SHA-256 checksum"):
        store.load(tenant)
    store.publish(snap)
    path = tmp_path / tenant / "v000002" / "manifest.json"
    _rewrite_manifest(path, schema_version=99)  # (its digest made anew: written so, not damaged)
    with pytest.raises(CorruptSnapshotError, match=f"schema version 99; this library reads version {SCHEMA_VERSION}"):
        store.load(tenant)
    _rewrite_manifest(path, schema_version=1)  # counted mail to a domain in recipients, not messages
    with pytest.raises(CorruptSnapshotError, match="schema version 1; .* Rebuild the snapshot"):
        store.load(tenant)


def test_a_changed_manifest_is_refused(tmp_path, snaps) -> None:
    # The manifest carries as_of, the priors and the files' checksums: a change to any of them is refused,
    # where before only the data files were checked (a year's difference in as_of loaded silently).
    store = SnapshotStore(tmp_path)
    tenant, snap = next(iter(snaps.items()))
    store.publish(snap)
    path = tmp_path / tenant / "v000001" / "manifest.json"
    text = path.read_text()
    year = snap.as_of.year
    for changed in (text.replace(f'"as_of": "{year}', f'"as_of": "{year - 1}', 1),
                    text.replace('"alpha": ', '"alpha": 1', 1)):
        assert changed != text
        path.write_text(changed)
        for verify in (True, False):
            with pytest.raises(CorruptSnapshotError, match="manifest.json fails its SHA-256 checksum"):
                store.load(tenant, verify=verify)
    # A manifest written before manifests carried their digest loads as it is.
    manifest = json.loads(text)
    del manifest["manifest_sha256"]
    path.write_text(json.dumps(manifest))
    assert store.load(tenant).equals(snap)


def _ipc_bytes(table: pa.Table, codec: str | None) -> bytes:
    """An Arrow file of a table as plain pyarrow writes it (the reference for the store's files)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_the_state_is_stored_with_lz4_and_the_tables_signals_read_uncompressed(tmp_path, snaps) -> None:
    # Each stored file is the bytes plain pyarrow writes for the table it holds: the refresh state compressed
    # with lz4_frame, the tables and key indexes that signals memory-map without compression.
    store = SnapshotStore(tmp_path)
    tenant, snap = next(iter(snaps.items()))
    store.publish(snap)
    folder = tmp_path / tenant / "v000001"
    files = list(store.manifest(tenant)["files"])
    assert sum(f.startswith("state.") for f in files) > 20 and "sender.arrow" in files and "index.pair.arrow" in files
    for filename in files:
        stored = (folder / filename).read_bytes()
        table = pa.ipc.open_file(pa.py_buffer(stored)).read_all()
        assert stored == _ipc_bytes(table, "lz4" if filename.startswith("state.") else None), filename


def test_a_state_stored_with_zstd_still_loads_and_refreshes(tmp_path, mail, snaps, monkeypatch) -> None:
    # Stores published before the state moved from zstd to lz4: an Arrow file records each buffer's codec, so
    # they load, refresh and publish (with lz4) as before.
    from commgraph.baselines import _store

    tenant, snap = next(iter(snaps.items()))
    monkeypatch.setattr(_store, "_STATE_CODEC", "zstd")
    SnapshotStore(tmp_path).publish(snap)
    monkeypatch.undo()
    old = tmp_path / tenant / "v000001" / "state.events.arrow"
    assert old.read_bytes() == _ipc_bytes(snap.state_tables()["events"], "zstd")  # (written the old way)
    store = SnapshotStore(tmp_path)
    loaded = store.load(tenant)
    state = loaded.state_tables()
    assert set(state) == set(snap.state_tables()) and all(state[k].equals(t) for k, t in snap.state_tables().items())
    later = "2025-01-14T17:00Z"
    refreshed = refresh(loaded, mail, as_of=later)
    assert refreshed.equals(refresh(snap, mail, as_of=later))
    store.publish(refreshed)
    again = store.load(tenant)
    assert again.equals(refreshed) and again.tenant_state().as_of == refreshed.tenant_state().as_of


def test_tenant_isolation(tmp_path, snaps) -> None:
    store = SnapshotStore(tmp_path)
    (a, snap_a), (b, _) = list(snaps.items())[:2]
    store.publish(snap_a)
    # A version of tenant a copied under tenant b is refused: the manifest names its tenant.
    shutil.copytree(tmp_path / a, tmp_path / b)
    with pytest.raises(CommGraphError, match=f"belongs to tenant {a!r}, not {b!r}"):
        store.load(b)
    with pytest.raises(CommGraphError, match="only answers for its own tenant"):
        store.load(a).check_tenant(b)
    with pytest.raises(ConfigError, match="cannot name a store directory"):
        store.load("../etc")


def test_privacy_mode_writes_no_raw_strings(tmp_path, mail) -> None:
    tenants = sorted(mail.frame["tenant_id"].unique())
    secrets = {t: f"secret-{t}".encode() for t in tenants}
    config = BaselineConfig(privacy=True)
    snaps = build_baselines(mail, as_of="2025-01-12", config=config, secrets=secrets)
    store = SnapshotStore(tmp_path)
    for snap in snaps.values():
        store.publish(snap)
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    f = mail.frame
    raw = set(f["sender"]) | set(f["sender_display_name"].dropna()) | set(mail.edges()["recipient"].astype(str))
    raw = {s for s in raw if len(s) >= 6}
    leaked = [s for s in raw if s.encode() in blob]
    assert not leaked, f"raw strings in the store: {leaked[:5]}"
    # Keys are keyed: the plain key of an address is not the stored one.
    tenant = tenants[0]
    loaded = store.load(tenant)
    address = f.loc[f["tenant_id"] == tenant, "sender"].iloc[0]
    assert loaded.lookup("sender", stable_keys([address]))[0] == -1
    assert loaded.lookup("sender", stable_keys([address], secret=secrets[tenant]))[0] >= 0
    # A refresh needs the same secret.
    with pytest.raises(ConfigError, match="not the one its snapshot was built with"):
        refresh(loaded, mail, as_of="2025-01-13", secret=b"wrong-secret-0123")
    again = refresh(loaded, mail, as_of="2025-01-13", secret=secrets[tenant])
    assert again.equals(build_baselines(mail, as_of="2025-01-13", config=config, secrets=secrets)[tenant])


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from commgraph.baselines import SnapshotStore
    from commgraph.baselines._snapshot import _example
    snap = _example()
    root, kill_at = sys.argv[1], sys.argv[2]
    def step(name):
        if name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    store = SnapshotStore(root, _on_step=step)
    print("ready", flush=True)
    while True:
        store.publish(snap)
""")

STEPS = ["mkdir", "write:sender.arrow", "write:index.pair.arrow", "write:state.events.arrow", "manifest", "rename",
         "current"]


def _child(root: Path, kill_at: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(root), kill_at], stdout=subprocess.PIPE, cwd=ROOT)


def _assert_consistent(store: SnapshotStore, previous: int) -> None:
    current = store.current("acme")
    assert current is not None and current >= previous
    loaded = store.load("acme")  # verifies every checksum
    assert loaded.table("tenant")["n_messages"].iloc[0] == 3


def test_a_publish_killed_at_any_step_leaves_the_previous_version_current(tmp_path) -> None:
    from commgraph.baselines._snapshot import _example

    store = SnapshotStore(tmp_path)
    store.publish(_example())
    for step in STEPS:
        shutil.copytree(tmp_path / "acme", tmp_path / step / "acme")
    procs = {step: _child(tmp_path / step, step) for step in STEPS}
    for step, proc in procs.items():
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, step
        child_store = SnapshotStore(tmp_path / step)
        # Killed before the pointer swap: version 1 stays current; after it: version 2 is complete.
        expected = 2 if step == "current" else 1
        assert child_store.current("acme") == expected, step
        _assert_consistent(child_store, expected)
        assert child_store.publish(_example()) == max(child_store.versions("acme")) and \
            not list((tmp_path / step / "acme").glob(".tmp-*")), step


def test_sigkill_at_random_moments_never_leaves_a_half_written_version(tmp_path) -> None:
    from commgraph.baselines._snapshot import _example

    rng = random.Random(7)
    SnapshotStore(tmp_path).publish(_example())
    for _ in range(2):
        proc = _child(tmp_path, "never")
        proc.stdout.readline()  # imports done, publishing in a loop
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _assert_consistent(SnapshotStore(tmp_path), 1)


# ---------------------------------------------------------------------- review fixes: an unreadable current version
def _damage(root: Path, how: str) -> None:
    """Damage tenant acme's current version the ways operators and crashes do."""
    if how == "empty pointer":
        (root / "acme" / "CURRENT").write_text("")
    elif how == "garbage pointer":
        (root / "acme" / "CURRENT").write_text("garbage\n")
    elif how == "binary pointer":
        (root / "acme" / "CURRENT").write_bytes(b"\xff\xfe\x00v1")
    elif how == "folder gone":
        shutil.rmtree(root / "acme" / "v000002")
    elif how == "manifest checksum":
        path = root / "acme" / "v000002" / "manifest.json"
        path.write_text(path.read_text().replace('"as_of": "2024', '"as_of": "2023', 1))


@pytest.mark.parametrize("how, reason", [("empty pointer", "pointer"), ("garbage pointer", "pointer"),
                                         ("binary pointer", "pointer"), ("folder gone", "missing"),
                                         ("manifest checksum", "checksum")])
def test_an_unreadable_current_version_goes_to_decide_and_can_be_replaced(tmp_path, how, reason) -> None:
    # Before, only a manifest failing its checksum reached decide (the job's --force): a damaged CURRENT raised
    # CorruptSnapshotError and a version folder gone a plain CommGraphError, before decide, so --force could not
    # recover the tenant.
    from commgraph.baselines._snapshot import _example

    store = SnapshotStore(tmp_path)
    snap = _example()
    store.publish(snap), store.publish(snap)
    _damage(tmp_path, how)
    seen = []

    def refuse(current, manifest):
        seen.append((current, manifest, store.current_problem("acme").reason))
        raise ConfigError("not without --force")

    with pytest.raises(ConfigError, match="without --force"):
        store.publish(snap, decide=refuse)
    # The version CURRENT names, folder or not; the newest one on disk when it names none (2 either way here).
    assert seen == [(2, None, reason)]
    assert not list((tmp_path / "acme").glob(".tmp-*"))
    # Replaced: a number above every one in use, the one a gone folder's pointer names included (a reader
    # that loaded version 2 must see a new number, not 2 again).
    assert store.publish(snap, decide=lambda current, manifest: None) == 3
    assert store.current("acme") == 3 and store.current_problem("acme") is None
    assert store.load("acme").equals(snap)


def test_the_job_replaces_an_unreadable_pointer_with_force_only(tmp_path) -> None:
    # The command-line repro: `echo garbage > CURRENT; commgraph refresh --force` failed with rc=3.
    from commgraph.baselines._job import publish_snapshot
    from commgraph.baselines._snapshot import _example

    store = SnapshotStore(tmp_path)
    snap = _example()
    store.publish(snap)
    _damage(tmp_path, "garbage pointer")
    with pytest.raises(ConfigError, match="cannot be read"):
        publish_snapshot(store, snap, force=False)
    assert (tmp_path / "acme" / "CURRENT").read_text() == "garbage\n"
    assert publish_snapshot(store, snap, force=True) == ("published", 2)
    assert store.load("acme").equals(snap)


def _rewrite_manifest(path: Path, **changes) -> None:
    from commgraph.baselines._store import _manifest_digest

    manifest = json.loads(path.read_text())
    manifest.update(changes)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


def test_the_store_says_why_a_manifest_cannot_be_read_and_never_downgrades_a_newer_schema(tmp_path) -> None:
    # A newer commgraph's snapshot was reported as "fails its checksum or is missing" and --force replaced it
    # with an older format during a mixed-version rollout.
    import pickle

    from commgraph.baselines._job import publish_snapshot
    from commgraph.baselines._snapshot import _example

    store = SnapshotStore(tmp_path)
    snap = _example()
    store.publish(snap)
    path = tmp_path / "acme" / "v000001" / "manifest.json"
    text = path.read_text()
    _rewrite_manifest(path, schema_version=SCHEMA_VERSION + 1, library_version="9.0.0")
    with pytest.raises(CorruptSnapshotError, match=r"written by a newer commgraph \(9\.0\.0\)") as info:
        store.load("acme")
    assert (info.value.reason, info.value.schema_version) == ("newer_schema", SCHEMA_VERSION + 1)
    again = pickle.loads(pickle.dumps(info.value))  # errors cross the job's worker processes
    assert (type(again), str(again), again.reason, again.schema_version) == \
        (CorruptSnapshotError, str(info.value), "newer_schema", SCHEMA_VERSION + 1)
    problem = store.current_problem("acme")
    assert (problem.reason, problem.schema_version) == ("newer_schema", SCHEMA_VERSION + 1)
    called = []
    for attempt in (lambda: store.publish(snap, decide=lambda c, m: called.append(c)),
                    lambda: store.publish(snap), lambda: publish_snapshot(store, snap, force=True)):
        with pytest.raises(CorruptSnapshotError, match="newer commgraph .* never replaces it: upgrade commgraph"):
            attempt()
    assert not called and store.versions("acme") == [1] and store.current("acme") == 1
    # An older schema, a damaged manifest, a changed one: each says so, and decide may replace them.
    for changes, reason, schema in [({"schema_version": 1}, "older_schema", 1),
                                    ({"schema_version": "2"}, "damaged", None)]:
        path.write_text(text)
        _rewrite_manifest(path, **changes)
        problem = store.current_problem("acme")
        assert (problem.reason, problem.schema_version) == (reason, schema)
        with pytest.raises(CorruptSnapshotError) as info:
            store.manifest("acme")
        assert info.value.reason == reason
    for damaged, reason in [("[1, 2]", "damaged"), ("{not json", "damaged"),
                            (text.replace('"as_of": "2024', '"as_of": "2023', 1), "checksum"),
                            # A flipped bit in the version reads as damage (replaceable), not a newer commgraph's.
                            (text.replace(f'"schema_version": {SCHEMA_VERSION}',
                                          f'"schema_version": {SCHEMA_VERSION + 1}', 1), "checksum")]:
        assert damaged != text
        path.write_text(damaged)
        assert store.current_problem("acme").reason == reason
    path.unlink()
    assert store.current_problem("acme").reason == "missing"
    assert store.publish(snap, decide=lambda current, manifest: None) == 2


def test_load_reads_current_once_so_a_publish_meanwhile_never_mixes_versions(tmp_path, mail, snaps) -> None:
    # load() read CURRENT in manifest() and again for the folder: a publish in between gave version N's
    # manifest (as_of, priors) over version N+1's tables, or a false checksum alarm.
    tenant, early = next(iter(snaps.items()))
    late = refresh(early, mail, as_of="2025-01-14T17:00Z")
    assert not late.equals(early)

    class PublishMeanwhile(SnapshotStore):
        def _read_manifest(self, tenant_id, folder):
            manifest = super()._read_manifest(tenant_id, folder)
            if not getattr(self, "raced", False):
                self.raced = True
                SnapshotStore(self.path).publish(late)  # another process's publish lands here
            return manifest

    SnapshotStore(tmp_path).publish(early)
    for verify in (True, False):
        store = PublishMeanwhile(tmp_path)
        before = store.current(tenant)
        loaded = store.load(tenant, verify=verify)
        assert store.current(tenant) == before + 1  # the publish did land
        assert loaded.as_of == early.as_of and loaded.equals(early), verify
        SnapshotStore(tmp_path).publish(early)


def test_a_load_while_a_publish_prunes_the_current_version_loads_the_new_one(tmp_path, mail, snaps) -> None:
    # With retain=1 a publish deletes the version a reader has just read CURRENT for: load() raised a bare
    # FileNotFoundError (or a CorruptSnapshotError that read as damage), and Scorer.from_store then failed
    # for every tenant of the store.
    from commgraph.signals import Scorer

    tenant, early = next(iter(snaps.items()))
    late = refresh(early, mail, as_of="2025-01-14T17:00Z")

    class PruneMeanwhile(SnapshotStore):
        def _read_manifest(self, tenant_id, folder):
            if not getattr(self, "raced", False):  # between reading CURRENT and reading the version
                self.raced = True
                SnapshotStore(self.path, retain=1).publish(late)
            return super()._read_manifest(tenant_id, folder)

    def store_versions(path):
        return SnapshotStore(path).versions(tenant)

    for verify in (True, False):
        SnapshotStore(tmp_path, retain=1).publish(early)
        version, loaded = PruneMeanwhile(tmp_path).load_numbered(tenant, verify=verify)
        assert loaded.equals(late) and version == store_versions(tmp_path)[-1], verify
        assert PruneMeanwhile(tmp_path).load(tenant, verify=verify).equals(late)
        SnapshotStore(tmp_path, retain=1).publish(early)
        scorer = Scorer.from_store(PruneMeanwhile(tmp_path), verify=verify)
        assert scorer.snapshot(tenant).equals(late) and scorer.versions[tenant] == store_versions(tmp_path)[-1]


def test_a_publish_killed_while_pruning_leaves_no_version_half_deleted(tmp_path, snaps, monkeypatch) -> None:
    # Retention deleted a version's files in place: killed midway, the store listed a version with no
    # manifest, every load of it failed, and `commgraph inspect` reported damage until the next publish.
    import commgraph.baselines._store as store_module

    tenant, snap = next(iter(snaps.items()))
    store = SnapshotStore(tmp_path, retain=1)
    store.publish(snap)

    def killed(path, ignore_errors=False):
        (Path(path) / "manifest.json").unlink()
        raise KeyboardInterrupt  # the process dies with the folder half deleted

    monkeypatch.setattr(store_module.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        store.publish(snap)
    monkeypatch.undo()
    assert store.versions(tenant) == [2] and all(store.load(tenant, v) is not None for v in store.versions(tenant))
    store.publish(snap)  # the leftover goes with the next publish
    assert not list((tmp_path / tenant).glob(".tmp-*")) and store.versions(tenant) == [3]


def test_an_unreadable_file_is_named_even_unverified(tmp_path, snaps) -> None:
    # verify=False mapped the files without a check: a damaged one raised pyarrow's "Not an Arrow file",
    # naming no file, and Scorer.from_store(verify=False) failed for every tenant.
    from commgraph.signals import ReloadWarning, Scorer

    store = SnapshotStore(tmp_path)
    for snap in snaps.values():
        store.publish(snap)
    damaged, kept = sorted(snaps)
    (tmp_path / damaged / "v000001" / "pair.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(CorruptSnapshotError, match="pair.arrow cannot be read as an Arrow file") as info:
        store.load(damaged, verify=False)
    assert info.value.reason == "damaged"
    with pytest.warns(ReloadWarning, match=f"tenant {damaged!r} is not served"):
        scorer = Scorer.from_store(store, verify=False)
    assert scorer.tenants == [kept]


def test_flipped_bytes_in_an_unverified_file_are_damage_never_a_machine_error(tmp_path, snaps) -> None:
    # Arrow reports some corruptions as an OSError of its own ("Verification of flatbuffer-encoded Footer
    # failed"), others as NotImplemented: each must read as a damaged snapshot, not as permissions or limits.
    tenant, snap = next(iter(snaps.items()))
    store = SnapshotStore(tmp_path)
    store.publish(snap)
    path = tmp_path / tenant / "v000001" / "sender.arrow"
    original = path.read_bytes()
    rng = np.random.default_rng(3)
    for _ in range(60):
        data = bytearray(original)
        for at in rng.integers(0, len(data), 8):
            data[at] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            store.load(tenant, verify=False)
        except CorruptSnapshotError as exc:
            assert exc.reason == "damaged"
    path.write_bytes(original)
    assert store.load(tenant).equals(snap)


@pytest.mark.parametrize("version", ["abc", 1.5, True, 0])
def test_a_version_must_be_a_version_number(tmp_path, snaps, version) -> None:
    # "abc" raised int()'s ValueError; 1.5 and True loaded version 1.
    tenant, snap = next(iter(snaps.items()))
    store = SnapshotStore(tmp_path)
    store.publish(snap), store.publish(snap)
    for call in (store.load, store.manifest):
        with pytest.raises(ConfigError, match="'version' parameter .* must be a version number"):
            call(tenant, version)


def test_a_whole_store_reload_keeps_serving_a_tenant_whose_pointer_vanished(tmp_path, snaps) -> None:
    # Scorer.reload() over the whole store dropped the tenant without a word (every batch with its mail
    # failing from then on), where a scorer of named tenants kept it and warned.
    from commgraph.signals import ReloadWarning, Scorer

    store = SnapshotStore(tmp_path)
    for snap in snaps.values():
        store.publish(snap)
    gone, kept = sorted(snaps)
    scorers = Scorer.from_store(store), Scorer.from_store(store, tenants=sorted(snaps))
    (tmp_path / gone / "CURRENT").unlink()
    for scorer in scorers:
        with pytest.warns(ReloadWarning, match=f"no longer has a published snapshot .* {gone!r}; it keeps"):
            assert scorer.reload() == []
        assert scorer.tenants == sorted(snaps) and scorer.snapshot(gone).equals(snaps[gone])


@pytest.mark.parametrize("retain", [3, 1])
def test_inspect_skips_a_version_pruned_while_it_runs(tmp_path, snaps, monkeypatch, capsys, retain) -> None:
    # A publish pruning a version that inspect had listed (with retain=1: the one it read as current) made it
    # report "FAILED" and exit 1 (a monitoring alarm) although every version left was intact.
    from commgraph.signals._cli import main

    tenant, snap = next(iter(snaps.items()))
    for _ in range(retain):
        SnapshotStore(tmp_path, retain=retain).publish(snap)
    real = SnapshotStore.manifest

    def prune_first(self, tenant_id, version=None):
        if version == 1 and (tmp_path / tenant_id / "v000001").exists():
            SnapshotStore(tmp_path, retain=retain).publish(snap)  # another process's publish prunes version 1
        return real(self, tenant_id, version)

    monkeypatch.setattr(SnapshotStore, "manifest", prune_first)
    assert main(["inspect", "--store", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "FAILED" not in out and out.count(tenant) == retain - 1  # (the versions after 1 listed; not the new)
    assert f"pruned by a publish while inspect ran (not checked): {tenant} v1" in err


def test_a_file_the_machine_cannot_read_is_not_called_damaged(tmp_path, snaps, monkeypatch) -> None:
    # Every OSError (permissions, the open-file limit) was a CorruptSnapshotError advising to republish.
    import errno

    import commgraph.baselines._store as store_module

    tenant, snap = next(iter(snaps.items()))
    store = SnapshotStore(tmp_path)
    store.publish(snap)

    def no_descriptors(path, mode):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(store_module.pa, "memory_map", no_descriptors)
    monkeypatch.setattr(store_module, "_MAP_AT_LEAST", 0)  # (every file mapped, as a large tenant's are)
    with pytest.raises(CommGraphError, match="Too many open files.*permissions and the process's limits") as info:
        store.load(tenant, verify=False)
    assert not isinstance(info.value, CorruptSnapshotError)


def test_small_snapshots_take_no_memory_mappings_and_a_mapping_limit_is_not_called_damage(tmp_path, monkeypatch):
    # Every file of every snapshot was memory-mapped (a dozen per tenant): a scorer stopped at about 5,900 tenants
    # (Linux's vm.max_map_count), each further tenant refused as a damaged snapshot to republish.
    import commgraph.baselines._store as store_module
    from commgraph.baselines._snapshot import _example

    store = SnapshotStore(tmp_path)
    store.publish(_example())

    def mappings() -> int:
        with open("/proc/self/maps") as fh:
            return sum(1 for _ in fh)

    before = mappings()
    held = [store.load("acme", verify=False) for _ in range(40)]
    assert mappings() - before < 40  # (12 files each were 480 mappings)
    assert int(held[-1].table("sender")["n_messages"].sum()) > 0

    def no_room(path, mode):
        raise OSError("Memory mapping file failed: Cannot allocate memory")

    monkeypatch.setattr(store_module.pa, "memory_map", no_room)
    monkeypatch.setattr(store_module, "_MAP_AT_LEAST", 0)
    with pytest.raises(CommGraphError, match=r"cannot be memory-mapped .* limit of memory mappings "
                                             r"\(vm.max_map_count\)") as info:
        store.load("acme", verify=False)
    assert not isinstance(info.value, CorruptSnapshotError)


def test_a_failed_publish_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    # A disk-full publish left its .tmp-v00000N-PID folder (the size of a snapshot) until the next publish.
    import errno
    import os

    from commgraph.baselines._snapshot import _example

    snap = _example()
    SnapshotStore(tmp_path).publish(snap)
    before = sorted(os.listdir(tmp_path / "acme"))

    def fail_at(step_name, exc):
        def step(name):
            if name == step_name:
                raise exc
        return step

    for step_name, exc in [("write:pair.arrow", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))),
                           ("manifest", KeyboardInterrupt()), ("mkdir", MemoryError())]:
        with pytest.raises(type(exc)):
            SnapshotStore(tmp_path, _on_step=fail_at(step_name, exc)).publish(snap)
        assert sorted(os.listdir(tmp_path / "acme")) == before, step_name
    # The pointer swap failing: its temporary file goes; the complete new folder stays, not current.
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        SnapshotStore(tmp_path).publish(snap)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(os.listdir(tmp_path / "acme")) == sorted([*before, "v000002"])
    store = SnapshotStore(tmp_path)
    assert store.current("acme") == 1 and store.load("acme").equals(snap)
    assert store.publish(snap) == 3


def test_a_snapshot_whose_version_was_pruned_says_so_when_refreshed(tmp_path, mail, snaps) -> None:
    # Its tables stay readable (memory-mapped), but its refresh state is read by path when a refresh needs
    # it: a FileNotFoundError then, or, worse, the state of another snapshot published under the same number.
    tenant, snap = next(iter(snaps.items()))
    later = "2025-01-14T17:00Z"
    store = SnapshotStore(tmp_path, retain=2)
    store.publish(snap)
    held = store.load(tenant)
    store.publish(snap), store.publish(snap)
    assert store.versions(tenant) == [2, 3]
    assert len(held.table("sender")) == len(snap.table("sender"))
    with pytest.raises(CommGraphError, match=f"version 1 of tenant {tenant!r} was pruned .* load the tenant again"):
        refresh(held, mail, as_of=later)
    # The tenant removed and rebuilt: version 1 again, another snapshot's state.
    held = store.load(tenant, 3)
    shutil.rmtree(tmp_path / tenant)
    other = refresh(snap, mail, as_of="2025-01-13T08:00Z")
    store.publish(other), store.publish(other), store.publish(other)
    with pytest.raises(CommGraphError, match="version 3 .* was pruned \\(or replaced\\)"):
        refresh(held, mail, as_of=later)
    # A version still in place refreshes as the original does.
    assert refresh(store.load(tenant), mail, as_of=later).equals(refresh(other, mail, as_of=later))


def test_foreign_folders_in_the_root_are_not_tenants(tmp_path, snaps) -> None:
    # `tenants()` listed any folder holding a CURRENT file: `old backup/` made Scorer.from_store (and
    # `commgraph score`, `inspect`) fail for every tenant.
    from commgraph.signals import Scorer

    store = SnapshotStore(tmp_path)
    (a, snap_a), (b, snap_b) = list(snaps.items())[:2]
    store.publish(snap_a), store.publish(snap_b)
    shutil.copytree(tmp_path / a, tmp_path / "old backup")
    (tmp_path / ".DS_Store").write_text("")
    (tmp_path / "notes\n").mkdir()
    assert store.tenants() == sorted([a, b])
    assert store.foreign() == [".DS_Store", "notes\n", "old backup"]
    assert sorted(Scorer.from_store(store).versions) == sorted([a, b])
    # A copy under a valid name is listed, and fails alone when loaded: its manifest names another tenant.
    shutil.copytree(tmp_path / a, tmp_path / f"{a}.bak")
    assert store.tenants() == sorted([a, b, f"{a}.bak"])
    with pytest.raises(CorruptSnapshotError, match=f"belongs to tenant {a!r}, not '{a}.bak'") as info:
        store.load(f"{a}.bak")
    assert info.value.reason == "other_tenant" and store.load(a).equals(snap_a) and store.load(b).equals(snap_b)


@pytest.mark.parametrize("tenant", ["acme\n", "acme\n\n", "\nacme", "acme/x", "", "a" * 129])
def test_a_tenant_id_must_be_whole(tmp_path, tenant) -> None:
    # `re.match` with `$` accepted a trailing newline: 'acme\n' named a folder 'acme\n'.
    store = SnapshotStore(tmp_path)
    for call in (store.load, store.versions, store.current):
        with pytest.raises(ConfigError, match="cannot name a store directory"):
            call(tenant)


def test_ensure_writable_creates_the_root_and_names_the_path_when_it_cannot(tmp_path) -> None:
    root = tmp_path / "a" / "b" / "store"
    store = SnapshotStore(root)
    assert not (tmp_path / "a").exists()  # constructing creates nothing
    store.ensure_writable()
    assert root.is_dir() and not list(root.iterdir())
    store.ensure_writable()  # again: it exists
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file", tmp_path / "file" / "store"):
        with pytest.raises(ConfigError, match=f"snapshot store {str(bad)!r} is not writable: .*(File exists|Not a "
                                              "directory)"):
            SnapshotStore(bad).ensure_writable()


def test_lookup_refuses_what_is_no_key(snaps) -> None:
    # Addresses gave numpy's "invalid literal for int()"; float keys (a key column after a merge added a
    # missing row) silently missed a known sender.
    from commgraph.graph import ConfigError, stable_keys

    snap = next(iter(snaps.values()))
    known = snap.table("sender")["sender_key"].to_numpy()[:3]
    assert (snap.lookup("sender", known) >= 0).all()
    assert (snap.lookup("sender", known.astype(np.int64)) >= 0).all()  # the same bits, signed
    for bad in (known.astype(np.float64), np.array(["ann@vendor.com"]), [1.5]):
        with pytest.raises(ConfigError, match="stable_keys"):
            snap.lookup("sender", bad)
    assert snap.lookup("sender", stable_keys(["nobody@nowhere.example"])).tolist() == [-1]
    # Python ints (on both sides of 2**63, which asarray makes floats of) and an empty list are keys.
    assert snap.lookup("sender", known.tolist()).tolist() == snap.lookup("sender", known).tolist()
    assert snap.lookup("sender", []).tolist() == []
    import pyarrow as pa  # the snapshot's own Arrow key columns, and one key

    assert snap.lookup("sender", pa.array(known)).tolist() == snap.lookup("sender", known).tolist()
    assert snap.lookup("sender", pa.chunked_array([known])).tolist() == snap.lookup("sender", known).tolist()
    assert snap.lookup("sender", int(known[0])).tolist() == snap.lookup("sender", known[:1]).tolist()
    assert snap.lookup("sender", (int(k) for k in known)).tolist() == snap.lookup("sender", known).tolist()
    assert snap.lookup("sender", pa.array([])).tolist() == []


def _os_refuses(monkeypatch, folder: Path) -> None:
    """Inject the OS's refusal (EACCES) of every read in ``folder`` (running as root, chmod denies nothing)."""
    def refuse(original):
        def patched(path, *args, **kwargs):
            if path == folder or folder in path.parents:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return original(path, *args, **kwargs)
        return patched

    for name in ("exists", "read_text", "iterdir"):
        monkeypatch.setattr(Path, name, refuse(getattr(Path, name)))


def test_a_tenant_entry_the_os_cannot_read_is_that_tenant_s_error_naming_its_path(tmp_path, snaps, monkeypatch):
    # A file in place of a tenant's folder made current() and versions() raise NotADirectoryError (which the
    # refresh job let out of run_refresh), and the entry was neither a tenant nor foreign (inspect said nothing).
    store = SnapshotStore(tmp_path)
    (a, snap_a), (b, snap_b) = list(snaps.items())[:2]
    store.publish(snap_a), store.publish(snap_b)
    shutil.rmtree(tmp_path / b)
    (tmp_path / b).write_text("not a folder\n")
    for read in (store.current, store.versions, store.load):
        with pytest.raises(CommGraphError, match=f"tenant {b!r}: .*{b}.* cannot be read \\(NotADirectoryError: "
                                                 "Not a directory\\)") as info:
            read(b)
        assert not isinstance(info.value, CorruptSnapshotError)  # (the machine's: not damage --force replaces)
    assert store.tenants() == [a] and store.foreign() == [b]
    # A folder it may not read (permissions, I/O) is still listed as a tenant, and each read of it names it.
    _os_refuses(monkeypatch, tmp_path / a)
    assert store.tenants() == [a]
    for read in (store.current, store.versions):
        with pytest.raises(CommGraphError, match=f"{tmp_path / a}.* cannot be read \\(PermissionError: "):
            read(a)


def test_a_store_opened_by_a_relative_path_keeps_its_folder_after_a_chdir(tmp_path, monkeypatch, snaps) -> None:
    # The path was kept relative and read against the working directory of each call: after a chdir (a daemon's
    # chdir('/'), gunicorn --chdir) a scorer's reload() warned that every CURRENT pointer "is gone", and
    # dropped its observed mail as if the version "was pruned", although the store was intact.
    import warnings

    from commgraph.signals import Scorer

    tenant, snap = next(iter(snaps.items()))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    store = SnapshotStore("snapshots")
    store.publish(snap)
    scorer = Scorer.from_store(SnapshotStore("snapshots"))
    loaded = store.load(tenant)
    monkeypatch.chdir(tmp_path / "elsewhere")
    SnapshotStore(tmp_path / "snapshots").publish(snap)  # the refresh job publishes version 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer.reload() == [tenant]
    assert scorer.versions == {tenant: 2}
    assert store.tenants() == [tenant] and store.current(tenant) == 2
    assert loaded.state_tables()  # a snapshot loaded before the chdir reads its state from the same folder
    assert store.path.is_absolute() and store.path.samefile(tmp_path / "snapshots")


def test_a_store_and_a_snapshot_loaded_from_it_pickle_for_worker_processes(tmp_path, snaps) -> None:
    # The store held a lambda (its default publish-step hook) and a loaded snapshot a local closure (its state
    # loader): neither pickled, so neither could be handed to a multiprocessing or concurrent.futures worker.
    import pickle

    tenant, snap = next(iter(snaps.items()))
    store = SnapshotStore(tmp_path, retain=3)
    store.publish(snap)
    again = pickle.loads(pickle.dumps(store))
    assert again.path == store.path and again.retain == 3 and again.current(tenant) == 1
    loaded = store.load(tenant)
    # In a fresh interpreter: the snapshot unpickles, and reads its refresh state from the store there.
    code = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
            "sys.stdout.buffer.write(pickle.dumps((s, s.state_tables())))")
    run = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(loaded), capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    there, state = pickle.loads(run.stdout)
    assert there.equals(loaded) and there.equals(snap) and there.as_of == loaded.as_of
    expected = loaded.state_tables()
    assert sorted(state) == sorted(expected) and all(state[k].equals(expected[k]) for k in expected)


def _reference_canonical(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Event rows in canonical order, sorted plainly: by time, the high 32 bits of the tie hash, then every
    column (lexsort is stable: identical rows keep their order)."""
    from commgraph.baselines._events import EVENT_COLUMNS, mix64

    h = mix64(mix64(rows["sender_key"], rows["recipient_key"]),
              (rows["label"].astype(np.uint64) << np.uint64(8)) | rows["is_message"])
    order = np.lexsort([rows[c] for c in reversed(EVENT_COLUMNS)] + [h >> np.uint64(32), rows["timestamp"]])
    return {c: rows[c][order] for c in EVENT_COLUMNS}


@pytest.mark.parametrize("seed", range(6))
def test_canonical_rows_of_chunks_equal_a_plain_sort_of_their_rows(seed) -> None:
    # canonical_rows joins time-disjoint chunks chunk by chunk and copies a chunk in canonical order already
    # (the stored rows) as it is: every way must give the rows a plain sort of all of them gives.
    from commgraph.baselines._events import EVENT_COLUMNS, canonical_order, canonical_rows, concat_events

    from commgraph.baselines._events import _in_canonical_order

    rng = np.random.default_rng(seed)
    n = 3000
    # Few instants and display names: ties; few addresses (even seeds): equal hashes with other columns, identical
    # rows, which the rows in order already cannot tell (sorted again); many (odd seeds): they tell them.
    rows = {c: rng.integers(0, 3, n).astype(d) for c, d in EVENT_COLUMNS.items()}
    rows["timestamp"] = np.sort(rng.integers(0, 400, n)).astype(np.int64)
    many = 2**60 if seed % 2 else 4
    rows["sender_key"] = rng.integers(0, many, n).astype(np.uint64)
    rows["recipient_key"] = rng.integers(0, many, n).astype(np.uint64)
    expected = _reference_canonical(rows)
    assert (canonical_order(expected) == np.arange(n)).all() and _in_canonical_order(expected) == bool(seed % 2)
    cuts = np.searchsorted(rows["timestamp"], [100, 250, 300])  # chunks of disjoint periods, in time order
    for sort_each in ([True, False, True, False], [False, True, True, True], [True] * 4, [False] * 4):
        parts = []
        for part, done in zip(np.split(np.arange(n), cuts), sort_each):
            shuffled = rng.permutation(part)
            parts.append(_reference_canonical({c: v[part] for c, v in rows.items()}) if done else
                         {c: v[shuffled] for c, v in rows.items()})
        got = canonical_rows(parts)
        assert all(got[c].dtype == np.dtype(d) and (got[c] == expected[c]).all() for c, d in EVENT_COLUMNS.items())
        # Chunks out of time order, or overlapping: the whole is sorted as one.
        for shuffled in (parts[::-1], [concat_events(parts[:3]), parts[1]]):
            whole = concat_events(shuffled)
            got = canonical_rows(shuffled)
            assert all((got[c] == whole[c][canonical_order(whole)]).all() for c in EVENT_COLUMNS)
            assert all((got[c] == _reference_canonical(whole)[c]).all() for c in EVENT_COLUMNS)
    assert all(len(v) == 0 for v in canonical_rows([]).values())


@pytest.mark.parametrize("rows", [1000, 400_000])  # read into memory, and memory-mapped (over _MAP_AT_LEAST)
def test_compressed_state_files_read_in_the_calling_thread_equal_arrows_own_read(tmp_path, rows) -> None:
    # The state files are decompressed without Arrow's thread pool (_READ_OPTIONS): the same table, column by
    # column, as Arrow's default read of the file gives.
    from commgraph.baselines._store import _MAP_AT_LEAST, _READ_OPTIONS, _read_ipc, _write_ipc

    rng = np.random.default_rng(7)
    table = pa.table({"key": rng.integers(0, 2**63, rows, dtype=np.uint64), "n": rng.integers(0, 9, rows),
                      "bits": rng.random(rows) < 0.3,
                      "hist": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(rows * 4)), 4)})
    path = tmp_path / "state.example.arrow"
    _write_ipc(path, table, compress=True)
    assert (path.stat().st_size >= _MAP_AT_LEAST) == (rows > 1000)
    expected = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()
    got = _read_ipc(path)
    assert not _READ_OPTIONS.use_threads
    assert got.schema.equals(expected.schema) and got.equals(expected) and got.equals(table)


@pytest.mark.parametrize("rows", [1000, 400_000])
def test_compressed_state_files_written_in_the_calling_thread_hold_the_bytes_of_arrows_threaded_writer(tmp_path,
                                                                                                        rows) -> None:
    # _write_ipc compresses the state files without Arrow's thread pool: the bytes (hence the checksums) stay
    # those of Arrow's default, threaded, writer.
    from commgraph.baselines._store import _STATE_CODEC, _write_ipc

    rng = np.random.default_rng(8)
    table = pa.table({"key": rng.integers(0, 2**20, rows, dtype=np.uint64), "n": rng.integers(0, 9, rows),
                      "hist": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(rows * 4)), 4)})
    _write_ipc(tmp_path / "state.example.arrow", table, compress=True)
    assert (tmp_path / "state.example.arrow").read_bytes() == _ipc_bytes(table, _STATE_CODEC)
