"""Privacy mode in the refresh job: secrets from a protected file, keyed snapshots equal to a direct build,
no raw string at rest, a tenant without its secret failing alone, and a wrong secret never published."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines, load_secrets, run_refresh
from commgraph.graph import ConfigError, generate, validate
from commgraph.signals._cli import main

AS_OF = "2025-01-14T00:00Z"
EARLIER = "2025-01-11T00:00Z"
PRIVATE = {"privacy": True, "global_prior": (9.0, 1.0)}
SECRETS = {"tenant-01": bytes(range(32)), "tenant-02": b"\x02" * 16, "tenant-03": bytes(range(64))}


@pytest.fixture(scope="module")
def mail():
    return generate(tenants=3, days=10, scale=0.1, random_state=5)


def secrets_file(path: Path, secrets: dict[str, bytes], mode: int = 0o600) -> Path:
    path.write_text("[secrets]\n" + "".join(f'"{t}" = "{s.hex()}"\n' for t, s in secrets.items()))
    os.chmod(path, mode)
    return path


def raw_strings(mail) -> set[str]:
    frame = mail.messages
    raw = set(frame["sender"].astype(str)) | set(frame["sender_display_name"].dropna().astype(str)) \
        | set(validate(frame, tenants=mail.tenants).edges()["recipient"].astype(str))
    return {s for s in raw if len(s) >= 6}


def test_a_private_job_equals_a_direct_keyed_build_and_stores_no_raw_string(tmp_path, mail):
    path = secrets_file(tmp_path / "secrets.toml", SECRETS)
    report = run_refresh(mail.messages, store=tmp_path / "store", as_of=AS_OF, tenant_configs=mail.tenants,
                         config=PRIVATE, secrets=path, chunk_rows=400)  # tenant-01 and -02 built in chunks
    assert report.exit_code == 0 and {o.status for o in report.outcomes} == {"published"}
    direct = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF,
                             config=BaselineConfig(**PRIVATE), secrets=SECRETS)
    store = SnapshotStore(tmp_path / "store")
    for tenant, snapshot in direct.items():
        assert store.load(tenant).equals(snapshot), tenant
        assert store.manifest(tenant)["secret_check"] == snapshot.secret_check is not None
    blob = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    leaked = [s for s in raw_strings(mail) if s.encode() in blob]
    assert not leaked, f"raw strings in the store: {leaked[:5]}"
    assert not any(s.hex().encode() in blob or s in blob for s in SECRETS.values())


def test_an_incremental_private_job_equals_a_full_one(tmp_path, mail):
    run_refresh(mail.messages, store=tmp_path / "inc", as_of=EARLIER, tenant_configs=mail.tenants, config=PRIVATE,
                secrets=SECRETS)
    inc = run_refresh(mail.messages, store=tmp_path / "inc", as_of=AS_OF, tenant_configs=mail.tenants,
                      config=PRIVATE, secrets=SECRETS, incremental=True)
    full = run_refresh(mail.messages, store=tmp_path / "full", as_of=AS_OF, tenant_configs=mail.tenants,
                       config=PRIVATE, secrets={t: s.hex() for t, s in SECRETS.items()})
    assert {o.mode for o in inc.outcomes} == {"incremental"} and inc.exit_code == full.exit_code == 0
    a, b = SnapshotStore(tmp_path / "inc"), SnapshotStore(tmp_path / "full")
    for tenant in SECRETS:
        assert a.load(tenant).equals(b.load(tenant)), tenant


@pytest.mark.parametrize("incremental", [False, True])
def test_a_tenant_without_its_secret_fails_alone(tmp_path, mail, incremental):
    if incremental:
        run_refresh(mail.messages, store=tmp_path, as_of=EARLIER, tenant_configs=mail.tenants, config=PRIVATE,
                    secrets=SECRETS)
    partial = {t: s for t, s in SECRETS.items() if t != "tenant-02"}
    report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                         secrets=partial, incremental=incremental)
    assert report.failed == ["tenant-02"] and report.exit_code == 3
    error = next(o.error for o in report.outcomes if o.tenant_id == "tenant-02")
    assert "tenant 'tenant-02'" in error and "secrets hold none" in error
    assert {o.tenant_id: o.status for o in report.outcomes if o.status != "failed"} == {
        "tenant-01": "published", "tenant-03": "published"}
    assert SnapshotStore(tmp_path).versions("tenant-02") == ([1] if incremental else [])


def test_a_wrong_secret_is_never_published_and_rotation_needs_force(tmp_path, mail):
    run_refresh(mail.messages, store=tmp_path, as_of=EARLIER, tenant_configs=mail.tenants, config=PRIVATE,
                secrets=SECRETS)
    wrong = {**SECRETS, "tenant-03": b"\x03" * 32}
    for incremental, message in ((True, "not the one its snapshot was built with"),
                                 (False, "keyed with another secret")):
        report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                             config=PRIVATE, secrets=wrong, incremental=incremental)
        assert report.failed == ["tenant-03"], incremental
        assert message in next(o.error for o in report.outcomes if o.tenant_id == "tenant-03")
        assert SnapshotStore(tmp_path).versions("tenant-03") == [1]
    # The right secret publishes the tenant the wrong one could not; the others are unchanged.
    again = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                        secrets=SECRETS)
    assert {o.tenant_id: o.status for o in again.outcomes} == {
        "tenant-01": "unchanged", "tenant-02": "unchanged", "tenant-03": "published"}
    same = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                       secrets=SECRETS)
    assert {o.status for o in same.outcomes} == {"unchanged"}
    # Run again at the snapshots' own as_of, incrementally, with a wrong secret: it failed, not 'unchanged'.
    rerun = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                        secrets=wrong, incremental=True)
    assert {o.tenant_id: o.status for o in rerun.outcomes} == {
        "tenant-01": "unchanged", "tenant-02": "unchanged", "tenant-03": "failed"}
    rotated = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                          secrets=wrong, tenants=["tenant-03"], force=True)
    assert [o.status for o in rotated.outcomes] == ["published"]
    following = run_refresh(mail.messages, store=tmp_path, as_of="2025-01-15T00:00Z", tenant_configs=mail.tenants,
                            config=PRIVATE, secrets=wrong, tenants=["tenant-03"], incremental=True)
    assert [(o.status, o.mode) for o in following.outcomes] == [("published", "incremental")]


def test_secrets_and_privacy_go_together(tmp_path, mail):
    with pytest.raises(ConfigError, match="privacy = true: pass each tenant's secret"):
        run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE)
    with pytest.raises(ConfigError, match="privacy = false"):
        run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, secrets=SECRETS)
    assert not SnapshotStore(tmp_path).tenants()


def test_a_direct_build_checks_its_secrets_as_a_secrets_file_is_checked(mail):
    # build_baselines and refresh took any secret: an empty one keys nothing (keyed BLAKE2b with no key), a byte's
    # is found in 256 tries from the manifest's secret check; secrets without privacy mode stored raw strings.
    from commgraph.baselines import refresh

    messages = validate(mail.messages, tenants=mail.tenants)
    private = BaselineConfig(**PRIVATE)
    for weak, words in ((b"", "has 0 bytes"), (b"x", "has 1 bytes"), (b"x" * 65, "has 65 bytes"),
                        ("zz", "is not hexadecimal")):
        with pytest.raises(ConfigError, match=f"the secret of tenant 'tenant-01' given to build_baselines {words}"):
            build_baselines(messages, as_of=EARLIER, config=private, secrets={**SECRETS, "tenant-01": weak})
    as_hex = build_baselines(messages, as_of=EARLIER, config=private,
                             secrets={t: s.hex() for t, s in SECRETS.items()})
    keyed = build_baselines(messages, as_of=EARLIER, config=private, secrets=SECRETS)
    assert all(as_hex[t].equals(keyed[t]) for t in keyed)
    with pytest.raises(ConfigError, match="given to refresh has 1 bytes"):
        refresh(keyed["tenant-01"], messages, as_of=AS_OF, secret=b"x")
    with pytest.raises(ConfigError, match="secrets were given to build_baselines but the configuration has privacy"):
        build_baselines(messages, as_of=EARLIER, secrets=SECRETS)
    plain = build_baselines(messages, as_of=EARLIER)["tenant-01"]
    with pytest.raises(ConfigError, match="whose snapshot is not in privacy mode"):
        refresh(plain, messages, as_of=AS_OF, secret=SECRETS["tenant-01"])


def test_each_worker_receives_only_its_own_tenants_secrets(tmp_path, mail, monkeypatch):
    from commgraph.baselines import _job

    # A unit of work (a tenant alone, or a batch built together) holds the secrets of its own tenants only.
    seen = {}
    alone, together = _job._refresh_tenant, _job._build_batch

    def recording(tenant_id, *args, **kwargs):
        seen[(tenant_id,)] = dict(args[10])
        return alone(tenant_id, *args, **kwargs)

    def recording_batch(tenant_ids, *args, **kwargs):
        seen[tuple(tenant_ids)] = dict(args[10])
        return together(tenant_ids, *args, **kwargs)

    monkeypatch.setattr(_job, "_refresh_tenant", recording)
    monkeypatch.setattr(_job, "_build_batch", recording_batch)
    monkeypatch.setattr(_job, "REFRESH_BATCH", 2)  # (units of two tenants and of one)
    report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=PRIVATE,
                         secrets=SECRETS)
    assert [o.status for o in report.outcomes] == ["published"] * len(SECRETS)
    assert sorted(seen) == [("tenant-01", "tenant-02"), ("tenant-03",)], seen
    assert all(secrets == {t: SECRETS[t] for t in unit} for unit, secrets in seen.items()), seen


def test_command_line_reads_the_secrets_file_and_refuses_one_others_can_read(tmp_path, mail, capsys):
    config = tmp_path / "privacy.toml"
    config.write_text("privacy = true\nglobal_prior = [9.0, 1.0]\n")
    source = tmp_path / "mail.parquet"
    mail.messages.to_parquet(source)
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("".join(f'[[tenant]]\ntenant_id = "{c.tenant_id}"\nown_domains = {list(c.own_domains)!r}\n'
                               .replace("'", '"') for c in mail.tenants))
    args = ["refresh", "--input", str(source), "--store", str(tmp_path / "store"), "--as-of", AS_OF,
            "--config", str(config), "--tenant-config", str(tenants), "--secrets"]
    shared = secrets_file(tmp_path / "shared.toml", SECRETS, mode=0o640)
    assert main(args + [str(shared)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert main(args + [str(secrets_file(tmp_path / "own.toml", SECRETS))]) == 0
    out = capsys.readouterr()
    assert all(s.hex() not in out.out + out.err for s in SECRETS.values())
    assert sorted(SnapshotStore(tmp_path / "store").tenants()) == sorted(SECRETS)


def test_load_secrets_checks_every_entry_and_never_prints_a_secret(tmp_path):
    good = "ab" * 32
    cases = {
        '[secrets]\nacme = "xyz"\n': "tenant 'acme' in .* is not hexadecimal text",
        '[secrets]\nacme = "abcd"\n': "tenant 'acme' in .* has 2 bytes; privacy mode needs 16 to 64",
        f'[secrets]\nacme = "{"00" * 65}"\n': "has 65 bytes",
        f'[secrets]\nacme = 12\n': "must be bytes or hex text; got int",
        f'[secrets]\n" acme" = "{good}"\n': "tenant id ' acme' must be a non-empty string",
        f'acme = "{good}"\n': "one \\[secrets\\] table .* found key 'acme'",
        f'[secrets]\nacme = "{good}\n': "is not valid TOML \\(at line 2",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"s{i}.toml"
        path.write_text(text)
        os.chmod(path, 0o600)
        with pytest.raises(ConfigError, match=message) as caught:
            load_secrets(path)
        assert good not in str(caught.value) and "xyz" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read the secrets file"):
        load_secrets(tmp_path / "absent.toml")
    folder = tmp_path / "folder.toml"
    folder.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="Is a directory|is not a regular file"):
        load_secrets(folder)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[secrets]\nacme = "\xff"\n')
    os.chmod(latin, 0o600)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_secrets(latin)
    if os.geteuid() == 0:  # root can give a file away: one owned by another user is refused
        foreign = secrets_file(tmp_path / "foreign.toml", {"acme": bytes.fromhex(good)})
        os.chown(foreign, 65534, 65534)
        with pytest.raises(ConfigError, match="belongs to user id 65534"):
            load_secrets(foreign)
    with pytest.raises(ConfigError, match="a TOML file path or a mapping"):
        load_secrets([("acme", good)])
    assert load_secrets({"acme": bytearray(16)}) == {"acme": bytes(16)}
    assert load_secrets(secrets_file(tmp_path / "ok.toml", {"acme": bytes.fromhex(good)}, 0o400)) == {
        "acme": bytes.fromhex(good)}
