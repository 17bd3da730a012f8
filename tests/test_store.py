"""The snapshot store: round trips, versions, checksums, crash safety, privacy and tenant isolation."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
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
    manifest = json.loads((tmp_path / tenant / "v000002" / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (tmp_path / tenant / "v000002" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptSnapshotError, match=f"schema version 99; this library reads version {SCHEMA_VERSION}"):
        store.load(tenant)
    manifest["schema_version"] = 1  # counted mail to a domain in recipients, not messages
    (tmp_path / tenant / "v000002" / "manifest.json").write_text(json.dumps(manifest))
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
        refresh(loaded, mail, as_of="2025-01-13", secret=b"wrong")
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
