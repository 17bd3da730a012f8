"""The refresh job and its command line: publish, idempotence, incremental == full, isolation, kills."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from commgraph.baselines import SnapshotStore, build_baselines
from commgraph.baselines import RefreshReport, TenantOutcome, run_refresh
from commgraph.baselines._snapshot import table_differences
from commgraph.graph import ConfigError, generate, validate, write_generated
from commgraph.graph._addresses import DISPLAY_NAME_FORM
from commgraph.signals._cli import main
from conftest import frame, write_hive

AS_OF = "2025-01-14T00:00Z"
GENERATED_TENANTS = ("tenant-01", "tenant-02", "tenant-03")


@pytest.fixture(scope="module")
def mail():
    return generate(tenants=3, days=10, scale=0.1, random_state=3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, mail):
    path = tmp_path_factory.mktemp("archive") / "mail"
    write_generated(path, tenants=3, days=10, scale=0.1, random_state=3, progress=False)
    return path


def tenants_toml(mail, path: Path) -> Path:
    lines = []
    for cfg in mail.tenants:
        lines += ["[[tenant]]", f'tenant_id = "{cfg.tenant_id}"', f"own_domains = {list(cfg.own_domains)!r}".replace("'", '"'), ""]
    path.write_text("\n".join(lines))
    return path


def test_refresh_publishes_every_tenant_and_equals_a_direct_build(tmp_path, mail):
    # With the cold-start prior given, one tenant at a time equals the all-tenant build on every column.
    config = {"global_prior": (9.0, 1.0)}
    report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, jobs=2,
                         config=config)
    assert report.exit_code == 0 and [o.status for o in report.outcomes] == ["published"] * 3
    direct = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF, config=config)
    store = SnapshotStore(tmp_path)
    for tenant, snapshot in direct.items():
        loaded = store.load(tenant)
        assert loaded.tenant_id == tenant
        assert loaded.equals(snapshot), tenant
    rows = {o.tenant_id: o.rows_read for o in report.outcomes}
    assert rows == mail.messages["tenant_id"].value_counts().to_dict()


def test_same_as_of_and_input_publishes_nothing_new_unless_forced(tmp_path, mail):
    first = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    again = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    assert [o.status for o in again.outcomes] == ["unchanged"] * 3
    assert [o.version for o in again.outcomes] == [o.version for o in first.outcomes]
    forced = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, force=True)
    assert [o.status for o in forced.outcomes] == ["published"] * 3 and {o.version for o in forced.outcomes} == {2}
    # New mail changes the content: published without --force.
    later = run_refresh(mail.messages, store=tmp_path, as_of="2025-01-15T00:00Z", tenant_configs=mail.tenants)
    assert {o.status for o in later.outcomes} == {"published"}


def test_a_change_of_configuration_or_of_any_counted_column_is_published(tmp_path, mail):
    # "unchanged" means: this input, this instant and this configuration. A new configuration, or new
    # recipients, display names or authentication results, publish (and an incremental job under a new
    # configuration builds in full: a refresh keeps its snapshot's configuration).
    from commgraph.baselines import BaselineConfig

    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    store = SnapshotStore(tmp_path)
    messages = validate(mail.messages, tenants=mail.tenants)
    for incremental in (False, True):
        config = BaselineConfig(half_life="3d" if incremental else "5d", windows=["7d", "30d"],
                                global_prior=(9.0, 1.0))  # given, so one tenant alone equals the all-tenant build
        report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=config,
                             incremental=incremental)
        assert [(o.status, o.mode) for o in report.outcomes] == [("published", "full")] * 3
        expected = build_baselines(messages, as_of=AS_OF, config=config)
        assert all(not table_differences(store.load(t), expected[t]) for t in expected)
    config = BaselineConfig(half_life="3d", windows=["7d", "30d"], global_prior=(9.0, 1.0))
    frame = mail.messages
    rows = frame.index[(frame["tenant_id"] == "tenant-01").to_numpy()][:5]
    for column, value in (("to", "someone.new@elsewhere.example"), ("sender_display_name", "New Name"),
                          ("spf", "fail")):
        frame = frame.copy()
        frame.loc[rows, column] = value
        report = run_refresh(frame, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, config=config)
        assert {o.tenant_id: o.status for o in report.outcomes} == {
            "tenant-01": "published", "tenant-02": "unchanged", "tenant-03": "unchanged"}, column
        expected = build_baselines(validate(frame, tenants=mail.tenants), as_of=AS_OF, config=config)["tenant-01"]
        assert not table_differences(store.load("tenant-01"), expected), column


def test_a_privacy_snapshot_is_never_replaced_by_raw_strings(tmp_path, mail):
    from commgraph.baselines import BaselineConfig

    messages = validate(mail.messages, tenants=mail.tenants)
    private = build_baselines(messages, as_of=AS_OF, config=BaselineConfig(privacy=True),
                              secrets={t: b"s" * 16 for t in messages.tenants})["tenant-02"]
    SnapshotStore(tmp_path).publish(private)
    for force in (False, True):
        report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, force=force)
        assert report.failed == ["tenant-02"] and report.exit_code == 3
        failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
        assert "privacy mode" in failed.error and "raw strings" in failed.error
    assert SnapshotStore(tmp_path).versions("tenant-02") == [1]
    assert "sender" not in SnapshotStore(tmp_path).load("tenant-02").table("sender")


def test_a_tenant_id_the_store_cannot_hold_fails_alone_in_an_incremental_run(tmp_path, mail):
    frame = mail.messages.copy()
    odd = frame.index[(frame["tenant_id"] == "tenant-03").to_numpy()][:4]
    frame["tenant_id"] = frame["tenant_id"].astype(object)
    frame.loc[odd, "tenant_id"] = "a/b"
    run_refresh(frame, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants)
    report = run_refresh(frame, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True)
    assert report.failed == ["a/b"] and report.exit_code == 3
    assert "cannot name a store directory" in next(o.error for o in report.outcomes if o.tenant_id == "a/b")
    assert {o.tenant_id: o.mode for o in report.outcomes if o.status == "published"} == {
        "tenant-01": "incremental", "tenant-02": "incremental", "tenant-03": "incremental"}


def test_incremental_refresh_equals_a_full_rebuild(tmp_path, mail):
    run_refresh(mail.messages, store=tmp_path / "inc", as_of="2025-01-10T00:00Z", tenant_configs=mail.tenants)
    inc = run_refresh(mail.messages, store=tmp_path / "inc", as_of=AS_OF, tenant_configs=mail.tenants,
                      incremental=True)
    full = run_refresh(mail.messages, store=tmp_path / "full", as_of=AS_OF, tenant_configs=mail.tenants)
    assert {o.mode for o in inc.outcomes} == {"incremental"} and {o.mode for o in full.outcomes} == {"full"}
    a, b = SnapshotStore(tmp_path / "inc"), SnapshotStore(tmp_path / "full")
    for tenant in a.tenants():
        assert a.load(tenant).equals(b.load(tenant)), tenant


@pytest.mark.parametrize("tenants", [["tenant-02"], None])  # alone, and refreshed in a batch with the others
def test_an_incremental_run_whose_new_mail_is_all_refused_publishes_nothing(tmp_path, mail, tenants):
    # Every new row of a tenant refused (naive times, say): the run published a snapshot with the day's mail
    # missing and its as_of moved past it, exit 0, so no later incremental run read that mail again.
    first = "2025-01-12T00:00Z"
    run_refresh(mail.messages, store=tmp_path, as_of=first, tenant_configs=mail.tenants)
    bad = mail.messages.copy()
    late = (bad["tenant_id"] == "tenant-02") & (pd.to_datetime(bad["timestamp"], utc=True) >= first)
    bad["timestamp"] = bad["timestamp"].astype(str)
    bad.loc[late, "timestamp"] = pd.to_datetime(bad.loc[late, "timestamp"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    report = run_refresh(bad, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True,
                         tenants=tenants)
    failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
    assert report.exit_code == 3 and failed.status == "failed" and failed.rows_rejected == int(late.sum())
    assert "no usable mail" in failed.error and "naive_timestamp: pass timezone=" in failed.error
    assert SnapshotStore(tmp_path).versions("tenant-02") == [1]  # the previous snapshot stays current
    assert all(o.status == "published" for o in report.outcomes if o.tenant_id != "tenant-02")
    # The corrected mail, the next night: counted, as a full build counts it.
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True,
                tenants=["tenant-02"])
    full = run_refresh(mail.messages, store=tmp_path / "full", as_of=AS_OF, tenant_configs=mail.tenants,
                       tenants=["tenant-02"])
    assert full.exit_code == 0
    assert SnapshotStore(tmp_path).load("tenant-02").equals(SnapshotStore(tmp_path / "full").load("tenant-02"))


def test_a_rerun_at_the_same_as_of_replaces_a_snapshot_of_an_earlier_display_name_form(tmp_path, mail):
    # An upgraded job retrying the day's run found the same input, as_of and configuration, and left the
    # earlier form's snapshot current as 'unchanged' (its keys for some names another form's).
    snapshot = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF)["tenant-01"]
    snapshot.display_name_form = 3  # as the previous release built it
    SnapshotStore(tmp_path).publish(snapshot)
    for incremental in (False, True):
        report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                             tenants=["tenant-01"], incremental=incremental)
        assert SnapshotStore(tmp_path).load("tenant-01").display_name_form == DISPLAY_NAME_FORM
    assert [o.status for o in report.outcomes] == ["unchanged"]  # (the second run: now the same in every way)


def test_an_incremental_run_replaces_an_unreadable_snapshot_only_with_force(tmp_path, mail):
    # A current snapshot whose data fails its checksum failed the tenant every night with --incremental, --force
    # or not, its fix naming no option.
    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants)
    damaged = next(f for f in sorted((tmp_path / "tenant-01").glob("v*/*.arrow")))
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)
    kept = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True,
                       tenants=["tenant-01"])
    assert kept.failed == ["tenant-01"] and "give --force to build it again in full" in kept.outcomes[0].error
    forced = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True,
                         tenants=["tenant-01"], force=True)
    assert [(o.status, o.mode) for o in forced.outcomes] == [("published", "full")]
    full = run_refresh(mail.messages, store=tmp_path / "full", as_of=AS_OF, tenant_configs=mail.tenants,
                       tenants=["tenant-01"])
    assert full.exit_code == 0
    assert SnapshotStore(tmp_path).load("tenant-01").equals(SnapshotStore(tmp_path / "full").load("tenant-01"))


def test_a_failing_tenant_does_not_stop_the_others(tmp_path, mail):
    raw = mail.messages.copy()
    broken = raw["tenant_id"] == "tenant-02"
    raw.loc[broken, "sender"] = "not an address"  # every row of tenant-02 is rejected
    report = run_refresh(raw, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, jobs=2)
    assert report.exit_code == 3 and report.failed == ["tenant-02"]
    failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
    assert "no usable mail" in failed.error  # the failure names the cause, and the report counts what was read
    assert failed.rows_read == failed.rows_rejected == int(broken.sum()) > 0
    assert sum(failed.rejects_by_reason.values()) == int(broken.sum())
    assert sorted(SnapshotStore(tmp_path).tenants()) == ["tenant-01", "tenant-03"]


def test_command_line_exit_codes_and_report(tmp_path, mail, archive, capsys):
    toml = tenants_toml(mail, tmp_path / "tenants.toml")
    store, report_path = tmp_path / "store", tmp_path / "report.json"
    code = main(["refresh", "--input", str(archive), "--store", str(store), "--as-of", AS_OF, "--jobs", "2",
                 "--tenant-config", str(toml), "--report", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 0 and [t["status"] for t in report["tenants"]] == ["published"] * 3
    assert all(t["rows_read"] > 0 and t["seconds"] > 0 for t in report["tenants"])
    out = capsys.readouterr().out
    assert "tenant-01" in out and "published" in out
    assert main(["refresh", "--input", str(archive), "--store", str(store), "--as-of", AS_OF,
                 "--tenants", "nobody"]) == 2
    assert "not in the input" in capsys.readouterr().err
    assert main(["inspect", "--store", str(store)]) == 0
    assert capsys.readouterr().out.count(" ok") == 3


def test_command_line_reads_naive_times_in_the_zone_given(tmp_path, mail, capsys):
    # An archive of local wall-clock times: `commgraph refresh --timezone` reads it as `commgraph validate` does.
    frame = mail.messages[mail.messages["tenant_id"] == "tenant-01"].copy()
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None).astype(str)
    frame.to_csv(tmp_path / "mail.csv", index=False)
    base = ["refresh", "--input", str(tmp_path / "mail.csv"), "--as-of", AS_OF, "--tenant-config",
            str(tenants_toml(mail, tmp_path / "tenants.toml"))]
    assert main(base + ["--store", str(tmp_path / "naive")]) == 3  # naive times refused without a zone
    assert main(base + ["--store", str(tmp_path / "zoned"), "--timezone", "America/New_York"]) == 0
    capsys.readouterr()
    expected = build_baselines(validate(frame, tenants=mail.tenants, timezone="America/New_York"), as_of=AS_OF)
    assert not table_differences(SnapshotStore(tmp_path / "zoned").load("tenant-01"), expected["tenant-01"])


@pytest.mark.parametrize("kind", ["frame", "hive"])
def test_rows_without_a_tenant_id_are_counted_in_the_report(tmp_path, mail, kind, capsys):
    frame = mail.messages.copy()
    frame["tenant_id"] = frame["tenant_id"].astype(object)
    frame.loc[frame.index[:3], "tenant_id"] = None
    if kind == "frame":
        frame.loc[frame.index[3:5], "tenant_id"] = "  "
        source = frame
    else:  # missing values land in hive's folder for them, which names no tenant
        source = tmp_path / "archive"
        frame.to_parquet(source, partition_cols=["tenant_id"])
        assert (source / "tenant_id=__HIVE_DEFAULT_PARTITION__").is_dir()
    expected = 5 if kind == "frame" else 3
    report = run_refresh(source, store=tmp_path / "store", as_of=AS_OF, tenant_configs=mail.tenants)
    assert report.rows_without_tenant == expected and report.to_dict()["rows_without_tenant"] == expected
    assert [o.tenant_id for o in report.outcomes] == ["tenant-01", "tenant-02", "tenant-03"]
    assert report.exit_code == 0 and f"{expected:,} rows without a tenant id" in repr(report)
    assert sum(o.rows_read for o in report.outcomes) + expected == len(frame)


def test_stored_tenants_without_mail_in_the_input_are_named_in_the_report(tmp_path, mail, capsys):
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    later = mail.messages[mail.messages["tenant_id"] != "tenant-02"]
    report = run_refresh(later, store=tmp_path, as_of="2025-01-15T00:00Z", tenant_configs=mail.tenants)
    assert report.not_in_input == ("tenant-02",) and report.to_dict()["not_in_input"] == ["tenant-02"]
    assert "; 1 stored tenant not in the input" in repr(report) and report.exit_code == 0
    assert SnapshotStore(tmp_path).load("tenant-02").as_of == pd.Timestamp(AS_OF)  # left as it was
    chosen = run_refresh(later, store=tmp_path, as_of="2025-01-15T00:00Z", tenant_configs=mail.tenants,
                         tenants=["tenant-01"])
    assert chosen.not_in_input == ()  # a job over named tenants says nothing of the others


def test_the_report_s_summary_says_one_of_a_kind_in_the_singular():
    # It said "1 tenants" (and "1 rows without a tenant id", "1 stored tenants").
    one = RefreshReport(as_of=AS_OF, seconds=0.5, outcomes=(TenantOutcome("acme", "published", version=1),),
                        rows_without_tenant=1, not_in_input=("globex",))
    assert repr(one) == (f"RefreshReport(as_of {AS_OF}: 1 tenant, 1 published; 1 row without a tenant id; "
                         "1 stored tenant not in the input; 0.5 s)")
    two = RefreshReport(as_of=AS_OF, seconds=0.5, outcomes=(TenantOutcome("acme", "published", version=1),
                                                            TenantOutcome("initech", "failed", error="boom")),
                        rows_without_tenant=2, not_in_input=("globex", "umbrella"))
    assert repr(two) == (f"RefreshReport(as_of {AS_OF}: 2 tenants, 1 failed, 1 published; 2 rows without a tenant "
                         "id; 2 stored tenants not in the input; 0.5 s)")


def test_killed_refresh_leaves_the_store_serving_and_the_next_run_completes(tmp_path, archive):
    store = tmp_path / "store"
    base = [sys.executable, "-m", "commgraph.signals._cli", "refresh", "--input", str(archive), "--store", str(store)]
    subprocess.run(base + ["--as-of", "2025-01-12T00:00Z"], check=True, capture_output=True)
    before = {t: SnapshotStore(store).current(t) for t in SnapshotStore(store).tenants()}
    for delay in (0.3, 0.8, 1.5, 2.5):
        proc = subprocess.Popen(base + ["--as-of", AS_OF, "--force"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the job and any worker it started
        proc.wait()
        s = SnapshotStore(store)
        for tenant in before:
            version = s.current(tenant)
            assert version is not None and version >= before[tenant]
            s.load(tenant, verify=True)  # the current version is whole: every checksum holds
    done = subprocess.run(base + ["--as-of", AS_OF], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert main(["inspect", "--store", str(store)]) == 0


def _unit_result(name: str) -> str:
    return name


def _kill_own_worker(name: str) -> str:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does
    return name


def test_a_unit_that_kills_its_worker_fails_alone_and_every_other_unit_completes():
    from commgraph.baselines._workers import Unit, run_units

    units = [Unit(_unit_result, (f"t{i}",), tenants=(f"t{i}",)) for i in range(5)]
    # A batch of two tenants whose worker dies: each runs again alone, and only the one at fault fails.
    units.insert(2, Unit(_kill_own_worker, ("batch",), tenants=("d1", "d2"),
                         alone=(Unit(_kill_own_worker, ("d1",), tenants=("d1",)), Unit(_unit_result, ("d2",)))))
    died = []
    results = list(run_units(units, 2, lambda unit, cause: died.append((unit.tenants, cause)) or "died"))
    assert sorted(results) == ["d2", "died", "t0", "t1", "t2", "t3", "t4"]
    assert died == [(("d1",), "SIGKILL(-9)")]


def test_a_worker_killed_mid_job_leaves_no_tenant_behind(tmp_path, archive):
    # Before, the broken pool ended the job: no report, the queued tenants never ran, exit 1.
    store, report = tmp_path / "store", tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "commgraph.signals._cli", "refresh", "--input", str(archive),
                             "--store", str(store), "--as-of", AS_OF, "--jobs", "2", "--report", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: list[str] = []
    while not killed and proc.poll() is None:
        # Once the first tenant publishes, the workers are mid-unit: kill them all (a worker idle between
        # units is replaced unseen; one killed on a unit broke the pool).
        if store.exists() and any(store.iterdir()):
            for child in Path(f"/proc/{proc.pid}/task").glob("*/children"):
                for pid in child.read_text().split():
                    try:
                        if b"popen_loky" in Path(f"/proc/{pid}/cmdline").read_bytes():  # a worker
                            os.kill(int(pid), signal.SIGKILL)
                            killed.append(pid)
                    except OSError:  # it ended meanwhile
                        pass
        time.sleep(0.01)
    out, err = proc.communicate(timeout=600)
    assert killed, "the job ended before it could be killed"
    assert proc.returncode == 0, err  # the units the dead worker held ran again, alone
    outcomes = json.loads(report.read_text())["tenants"]
    assert sorted(o["tenant_id"] for o in outcomes) == list(GENERATED_TENANTS)
    # A tenant published just before the kill, its outcome not yet collected, runs again: 'unchanged'.
    assert {o["status"] for o in outcomes} <= {"published", "unchanged"}
    assert all(SnapshotStore(store).load(t).as_of == pd.Timestamp(AS_OF) for t in GENERATED_TENANTS)


def test_score_and_explain_commands(tmp_path, mail, archive, capsys):
    store = tmp_path / "store"
    assert main(["refresh", "--input", str(archive), "--store", str(store), "--as-of", AS_OF]) == 0
    out = tmp_path / "signals.parquet"
    assert main(["score", "--input", str(archive), "--store", str(store), "--output", str(out)]) == 0
    scored = pd.read_parquet(out)
    assert len(scored) == len(mail.messages) and "sender_is_new" in scored.columns
    edges = tmp_path / "edges.parquet"
    assert main(["score", "--input", str(archive), "--store", str(store), "--output", str(edges),
                 "--level", "edge"]) == 0
    assert len(pd.read_parquet(edges)) > len(scored)
    # A write that fails half-way (a full disk) keeps the previous output whole: it truncated it in place.
    import pandas
    from unittest import mock

    def half_written(frame, path, **kwargs):
        Path(path).write_bytes(b"PAR1 cut short")
        raise OSError(28, "No space left on device")

    before = out.read_bytes()
    with mock.patch.object(pandas.DataFrame, "to_parquet", half_written):
        assert main(["score", "--input", str(archive), "--store", str(store), "--output", str(out)]) == 1
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()
    row = mail.messages.iloc[-1]
    assert main(["explain", "--store", str(store), "--tenant", row["tenant_id"], "--message-id", row["message_id"],
                 "--input", str(archive)]) == 0
    text = capsys.readouterr().out
    assert "sender_is_new" in text and row["message_id"] in text
    assert main(["explain", "--store", str(store), "--tenant", row["tenant_id"], "--message-id", "nope",
                 "--input", str(archive)]) == 1
    assert "not in the input" in capsys.readouterr().err


def test_numeric_looking_tenant_partitions_stay_the_tenants_written(tmp_path, mail):
    # pyarrow infers `tenant_id=007` as the integer 7: the job must still refresh tenant "007" (not "7"),
    # whole or in chunks, with the rows a DataFrame of the same mail gives, and count rows from the footers.
    import pyarrow as pa
    import pyarrow.dataset as ds

    from commgraph.baselines._job import list_input_tenants
    from commgraph.graph import TenantConfig

    names = {"tenant-01": "007", "tenant-02": "010", "tenant-03": "200"}
    raw = mail.messages.assign(tenant_id=mail.messages["tenant_id"].map(names))
    configs = [TenantConfig(names[c.tenant_id], own_domains=c.own_domains) for c in mail.tenants]
    write_hive(pa.Table.from_pandas(raw, preserve_index=False), tmp_path / "mail", ["tenant_id"])
    assert ds.dataset(tmp_path / "mail", partitioning="hive").schema.field("tenant_id").type == pa.int32()
    assert list_input_tenants(tmp_path / "mail") == ["007", "010", "200"]
    expected = raw["tenant_id"].value_counts().to_dict()
    frame = run_refresh(raw, store=tmp_path / "frame", as_of=AS_OF, tenant_configs=configs)
    for chunk_rows in (None, 500):
        report = run_refresh(tmp_path / "mail", store=tmp_path / f"hive-{chunk_rows}", as_of=AS_OF,
                             tenant_configs=configs, chunk_rows=chunk_rows, jobs=2)
        assert report.exit_code == 0 and {o.tenant_id: o.rows_read for o in report.outcomes} == expected
        store = SnapshotStore(tmp_path / f"hive-{chunk_rows}")
        assert store.tenants() == ["007", "010", "200"]
        for tenant in store.tenants():
            assert store.load(tenant).tenant_id == tenant
            assert table_differences(store.load(tenant), SnapshotStore(tmp_path / "frame").load(tenant)) == []
    assert [o.status for o in frame.outcomes] == ["published"] * 3


def _stored_bytes(store: SnapshotStore, tenant: str) -> dict[str, bytes]:
    from conftest import ipc_bytes

    snapshot = store.load(tenant)
    return {**{f"table:{k}": ipc_bytes(v) for k, v in snapshot.tables.items()},
            **{f"state:{k}": ipc_bytes(v) for k, v in snapshot.state_tables().items()}}


def test_incremental_batches_equal_one_tenant_at_a_time(tmp_path, mail, monkeypatch):
    from commgraph.baselines import _job

    raw = mail.messages.copy()
    # Rejects in the refreshed period, counted per tenant (the incremental read validates only that period).
    period = (raw["tenant_id"] == "tenant-01") & (raw["timestamp"] >= pd.Timestamp("2025-01-10T00:00Z"))
    raw.loc[raw.index[period.to_numpy()][:3], "sender"] = "not an address"
    calls = []
    batched = _job.refresh_many
    monkeypatch.setattr(_job, "refresh_many", lambda snaps, *a, **kw: calls.append(sorted(snaps)) or batched(
        snaps, *a, **kw))
    outcomes = {}
    for size in (1, 3):
        monkeypatch.setattr(_job, "REFRESH_BATCH", size)
        store = tmp_path / f"batch{size}"
        run_refresh(raw, store=store, as_of="2025-01-10T00:00Z", tenant_configs=mail.tenants)
        report = run_refresh(raw, store=store, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True)
        assert report.exit_code == 0 and {o.mode for o in report.outcomes} == {"incremental"}
        outcomes[size] = [(o.tenant_id, o.status, o.version, o.rows_read, o.rows_rejected, o.rejects_by_reason)
                          for o in report.outcomes]
    assert calls == [["tenant-01"], ["tenant-02"], ["tenant-03"], ["tenant-01", "tenant-02", "tenant-03"]]
    assert outcomes[3] == outcomes[1] and outcomes[3][0][4] == 3
    one, three = SnapshotStore(tmp_path / "batch1"), SnapshotStore(tmp_path / "batch3")
    for tenant in one.tenants():
        assert _stored_bytes(three, tenant) == _stored_bytes(one, tenant), tenant


def test_a_failing_tenant_in_a_batch_fails_alone_with_its_own_error(tmp_path, mail, monkeypatch):
    from commgraph.baselines import _job

    monkeypatch.setattr(_job, "REFRESH_BATCH", 3)
    errors = {}
    for name in ("batch", "alone"):
        store = tmp_path / name
        run_refresh(mail.messages, store=store, as_of="2025-01-10T00:00Z", tenant_configs=mail.tenants)
        # A byte of tenant-02's stored refresh state is damaged: its snapshot fails its checksum.
        damaged = store / "tenant-02" / "v000001" / "state.events.arrow"
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.write_bytes(bytes(data))
        if name == "alone":
            monkeypatch.setattr(_job, "REFRESH_BATCH", 1)
        report = run_refresh(mail.messages, store=store, as_of=AS_OF, tenant_configs=mail.tenants,
                             incremental=True)
        assert report.failed == ["tenant-02"] and report.exit_code == 3
        failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
        assert failed.mode == "incremental"  # the mode it failed in, as the report tells operators
        errors[name] = failed.error.replace(str(store), "<store>")
        store = SnapshotStore(store)
        for tenant in ("tenant-01", "tenant-03"):
            assert store.load(tenant).as_of == pd.Timestamp(AS_OF)
    assert errors["batch"] == errors["alone"] and "fails its SHA-256 checksum" in errors["alone"]
    for tenant in ("tenant-01", "tenant-03"):
        assert _stored_bytes(SnapshotStore(tmp_path / "batch"), tenant) == _stored_bytes(
            SnapshotStore(tmp_path / "alone"), tenant)


def test_batches_hold_at_most_their_tenants_and_rows(monkeypatch):
    from commgraph.baselines import _job

    monkeypatch.setattr(_job, "REFRESH_BATCH", 3)
    monkeypatch.setattr(_job, "REFRESH_BATCH_ROWS", 100)
    tenants = [f"t{i}" for i in range(8)]
    rows = dict(zip(tenants, [10, 10, 10, 10, 90, 500, 5, 5]))
    # Three at most; a tenant that would take its batch past 100 rows starts the next; one above it is alone.
    assert _job._batches(tenants, rows, workers=1) == [["t0", "t1", "t2"], ["t3", "t4"], ["t5"], ["t6", "t7"]]
    # Two workers and four tenants: two batches, one per worker.
    assert _job._batches(tenants[:4], rows, workers=2) == [["t0", "t1"], ["t2", "t3"]]
    assert _job._batches([], rows, workers=2) == []


def test_a_job_never_moves_a_tenant_back_in_time_unless_forced(tmp_path, mail):
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    late = run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants)
    assert late.exit_code == 3 and late.failed == ["tenant-01", "tenant-02", "tenant-03"]
    assert all("later than this job's" in o.error and "--force" in o.error for o in late.outcomes)
    assert SnapshotStore(tmp_path).versions("tenant-01") == [1]
    rolled_back = run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants,
                              force=True)
    assert {o.status for o in rolled_back.outcomes} == {"published"}
    assert SnapshotStore(tmp_path).load("tenant-01").as_of == pd.Timestamp("2025-01-12T00:00Z")


def test_publish_checks_see_what_a_concurrent_publisher_made(tmp_path, mail):
    # Two jobs at once: the check of one runs under the tenant's publish lock, so it sees the newer version
    # the other published while it waited, instead of checking first and then publishing an older snapshot.
    import threading

    from commgraph.baselines._job import publish_snapshot

    messages = validate(mail.messages, tenants=mail.tenants)
    snap = {day: build_baselines(messages, as_of=f"2025-01-{day}T00:00Z")["tenant-01"] for day in (12, 13, 14)}
    SnapshotStore(tmp_path).publish(snap[12])
    inside, release = threading.Event(), threading.Event()

    def hold(step):
        if step == "mkdir":  # the lock is held from here until the new version is current
            inside.set()
            release.wait(30)

    holder = threading.Thread(target=SnapshotStore(tmp_path, _on_step=hold).publish, args=(snap[14],))
    holder.start()
    assert inside.wait(30)
    outcome = {}

    def late_job():
        try:
            outcome["result"] = publish_snapshot(SnapshotStore(tmp_path), snap[13], force=False)
        except ConfigError as exc:
            outcome["error"] = str(exc)

    other = threading.Thread(target=late_job)
    other.start()
    time.sleep(0.3)  # it waits for the lock (and, checking first, would have found version 1 current)
    release.set()
    holder.join(30)
    other.join(30)
    assert "later than this job's" in outcome.get("error", ""), outcome
    store = SnapshotStore(tmp_path)
    assert store.versions("tenant-01") == [1, 2] and store.load("tenant-01").as_of == snap[14].as_of


def test_a_current_snapshot_that_cannot_be_read_is_replaced_only_with_force(tmp_path, mail):
    # A damaged current manifest: the engine refuses the snapshot, and the job must be able to replace it
    # (deliberately, with --force), never with raw strings over a privacy tenant.
    import json

    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    path = tmp_path / "tenant-01" / "v000001" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "as_of": "2025-01-13T00:00:00+00:00"}))
    plain = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, tenants=["tenant-01"])
    assert plain.failed == ["tenant-01"] and "--force" in plain.outcomes[0].error
    forced = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                         tenants=["tenant-01"], force=True)
    assert [(o.status, o.version) for o in forced.outcomes] == [("published", 2)]
    assert SnapshotStore(tmp_path).load("tenant-01").as_of == pd.Timestamp(AS_OF)
    # A privacy tenant whose current manifest is damaged: raw strings are refused even with --force.
    from commgraph.baselines import BaselineConfig

    private = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF,
                              config=BaselineConfig(privacy=True), secrets={t: b"k" * 16 for t in GENERATED_TENANTS})["tenant-02"]
    store = SnapshotStore(tmp_path / "private")
    store.publish(private)
    store.publish(private)
    damaged = tmp_path / "private" / "tenant-02" / "v000002" / "manifest.json"
    damaged.write_text(damaged.read_text().replace('"privacy": true', '"privacy": false'))
    raw = run_refresh(mail.messages, store=tmp_path / "private", as_of=AS_OF, tenant_configs=mail.tenants,
                      tenants=["tenant-02"], force=True)
    assert raw.failed == ["tenant-02"] and "are, or may be, in privacy mode" in raw.outcomes[0].error
    assert SnapshotStore(tmp_path / "private").versions("tenant-02") == [1, 2]


def test_inspect_lists_every_version_and_marks_a_damaged_manifest(tmp_path, mail, capsys):
    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-13T00:00Z", tenant_configs=mail.tenants)
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    path = tmp_path / "tenant-01" / "v000001" / "manifest.json"
    path.write_text(path.read_text().replace("2025-01-13", "2025-01-12", 1))
    capsys.readouterr()
    assert main(["inspect", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("tenant-")]
    assert len(lines) == 6 and sum("FAILED" in line and "manifest.json fails" in line for line in lines) == 1


# ------------------------------------------------------------------ what a job refuses before any tenant runs
@pytest.mark.parametrize("as_of, words", [("", "empty"), ("yesterday", "moment of the clock"), ("today", "clock"),
                                          ("soon-ish", "not a time"), (None, "empty")])
def test_an_as_of_that_is_no_instant_is_refused_up_front(tmp_path, mail, as_of, words):
    with pytest.raises(ConfigError, match=words):
        run_refresh(mail.messages, store=tmp_path, as_of=as_of, tenant_configs=mail.tenants)
    assert not any(tmp_path.iterdir())


def test_an_as_of_in_the_future_is_refused_unless_forced(tmp_path, mail, monkeypatch):
    from commgraph.baselines import _job

    monkeypatch.setattr(_job, "_wall_clock", lambda: pd.Timestamp("2025-01-13T12:00Z"))
    with pytest.raises(ConfigError, match="in the future"):  # a year's typo: every later night refused
        run_refresh(mail.messages, store=tmp_path, as_of="2026-01-14T00:00Z", tenant_configs=mail.tenants)
    assert run_refresh(mail.messages, store=tmp_path, as_of="2025-01-13T12:30Z", tenant_configs=mail.tenants,
                       tenants=["tenant-01"]).exit_code == 0  # within the clocks' leeway
    forced = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, force=True)
    assert forced.exit_code == 0


def test_a_tenant_with_no_mail_before_as_of_fails_alone_unless_forced(tmp_path, mail):
    frame = mail.messages.copy()
    late = (frame["tenant_id"] == "tenant-02").to_numpy()
    frame.loc[late, "timestamp"] = pd.to_datetime(frame.loc[late, "timestamp"], utc=True) + pd.Timedelta(days=30)
    report = run_refresh(frame, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    assert report.failed == ["tenant-02"] and report.exit_code == 3
    failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
    assert "none of its mail is before --as-of" in failed.error and failed.rows_read == late.sum()
    assert SnapshotStore(tmp_path).tenants() == ["tenant-01", "tenant-03"]
    forced = run_refresh(frame, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, tenants=["tenant-02"],
                         force=True)
    assert forced.exit_code == 0 and SnapshotStore(tmp_path).load("tenant-02").table("sender").empty


def test_an_empty_input_or_a_mistyped_store_is_refused(tmp_path, mail):
    with pytest.raises(ConfigError, match="holds no mail"):
        run_refresh(mail.messages.iloc[:0], store=tmp_path / "s", as_of=AS_OF, tenant_configs=mail.tenants)
    blank = mail.messages.assign(tenant_id=None)
    with pytest.raises(ConfigError, match=f"{len(blank):,} rows without one"):
        run_refresh(blank, store=tmp_path / "s", as_of=AS_OF)
    with pytest.raises(ConfigError, match="there is none at"):
        run_refresh(mail.messages, store=tmp_path / "typo", as_of=AS_OF, tenant_configs=mail.tenants,
                    incremental=True)
    assert not (tmp_path / "typo").exists() and not (tmp_path / "s").exists()


def test_incremental_refuses_a_store_holding_no_snapshot_as_a_missing_one(tmp_path, archive, capsys):
    # An existing folder without a snapshot (a mistyped path, a fresh volume) had every tenant built in full in
    # it, silently, where a missing one is refused. The first run builds the store without --incremental.
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    other.mkdir()
    (other / "old backup").mkdir()
    (other / "notes.txt").write_text("")
    for store, words in ((empty, f"{str(empty)!r} holds none: check --store"),
                         (other, f"{str(other)!r} holds none (only 'notes.txt', 'old backup'): check --store")):
        assert main(["refresh", "--input", str(archive), "--store", str(store), "--as-of", AS_OF,
                     "--incremental"]) == 2
        err = capsys.readouterr().err
        assert words in err and "build the store without --incremental" in err, err
        assert SnapshotStore(store).tenants() == []
    assert main(["refresh", "--input", str(archive), "--store", str(empty), "--as-of", "2025-01-13T00:00Z"]) == 0
    assert main(["refresh", "--input", str(archive), "--store", str(empty), "--as-of", AS_OF, "--incremental",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert {t["mode"] for t in json.loads((tmp_path / "r.json").read_text())["tenants"]} == {"incremental"}


def test_configuration_errors_name_the_file_and_exit_2(tmp_path, mail, archive, capsys):
    base = ["refresh", "--input", str(archive), "--store", str(tmp_path / "s"), "--as-of", AS_OF]
    (tmp_path / "bad.toml").write_text("windows = [7d]\n")
    (tmp_path / "prior.toml").write_text("global_prior = 5\n")
    cases = [(["--config", str(tmp_path / "bad.toml")], "is not valid TOML"),
             (["--config", str(tmp_path / "missing.toml")], "does not exist"),
             (["--config", str(tmp_path / "prior.toml")], "'global_prior'"),
             (["--tenant-config", str(tmp_path / "bad.toml")], "tenants' configuration file"),
             (["--timezone", "Mars/Olympus"], "is not a time zone"),
             (["--report", str(tmp_path / "no" / "r.json")], "cannot be written")]
    for extra, words in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "unexpected" not in err, (extra, err)
    assert not (tmp_path / "s").exists()  # nothing was built before the error
    assert main(["inspect", "--store", str(tmp_path / "nostore")]) == 2
    # A date that is not ISO 8601 is refused: '01/02/2025' was read month first and published as of 2 January.
    for not_iso in ("01/02/2025", "Feb 1 2025"):
        assert main(base[:-1] + [not_iso]) == 2
        assert "is not a time in ISO 8601" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_report_is_written_whole_and_after_the_summary(tmp_path, archive, capsys):
    report = tmp_path / "r.json"
    assert main(["refresh", "--input", str(archive), "--store", str(tmp_path / "s"), "--as-of", AS_OF,
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["exit_code"] == 0 and "RefreshReport" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_damaged_manifest_saying_raw_cannot_open_a_privacy_tenant_to_raw_strings(tmp_path, mail):
    from commgraph.baselines import BaselineConfig

    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants,
                config=BaselineConfig(privacy=True), secrets={t: b"k" * 16 for t in GENERATED_TENANTS},
                tenants=["tenant-01"])
    manifest = tmp_path / "tenant-01" / "v000001" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"privacy": true', '"privacy": false'))
    report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                         tenants=["tenant-01"], force=True)
    assert report.failed == ["tenant-01"] and "refused even with --force" in report.outcomes[0].error
    assert SnapshotStore(tmp_path).versions("tenant-01") == [1]


def test_inspect_lists_a_damaged_pointer_as_a_row_and_names_foreign_folders(tmp_path, mail, capsys):
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    (tmp_path / "tenant-01" / "CURRENT").write_text("garbage")
    (tmp_path / "old backup").mkdir()
    assert main(["inspect", "--store", str(tmp_path)]) == 1  # a failure to see, not a crash for every tenant
    out, err = capsys.readouterr()
    assert "FAILED" in out and "tenant-02" in out and "tenant-03" in out
    assert "'old backup'" in err
    # Versions and row counts of the other rows stay whole numbers beside the row without them (1.0 before).
    tenant_02 = next(line.split() for line in out.splitlines() if line.split()[0] == "tenant-02")
    assert tenant_02[1] == "1" and not any(re.fullmatch(r"\d+\.0", token) for token in tenant_02), tenant_02


def test_incremental_after_a_change_of_own_domains_builds_in_full(tmp_path, mail):
    # Mail already counted keeps the directions it was read with: a refresh with other own domains would
    # differ from a rebuild, so the job builds in full (it refreshed incrementally, silently, before).
    frame = mail.messages.drop(columns=["direction"])
    first = [{"tenant_id": t.tenant_id, "own_domains": list(t.own_domains)} for t in mail.tenants]
    run_refresh(frame, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=first)
    same = run_refresh(frame, store=tmp_path, as_of="2025-01-13T00:00Z", tenant_configs=first, incremental=True)
    assert {o.mode for o in same.outcomes} == {"incremental"}
    wider = [{**c, "own_domains": c["own_domains"] + ["partner-new.example"]} if c["tenant_id"] == "tenant-01"
             else c for c in first]
    changed = run_refresh(frame, store=tmp_path, as_of=AS_OF, tenant_configs=wider, incremental=True)
    assert {o.tenant_id: o.mode for o in changed.outcomes} == {
        "tenant-01": "full", "tenant-02": "incremental", "tenant-03": "incremental"}
    rebuilt = build_baselines(validate(frame, tenants=wider), as_of=AS_OF)["tenant-01"]
    assert not table_differences(SnapshotStore(tmp_path).load("tenant-01"), rebuilt)


@pytest.mark.parametrize("form, kept", [(1, "kept their accents"), (2, "kept the invisible characters"),
                                        (3, "kept the invisible characters that are no format characters"),
                                        (4, "kept the letters of other scripts that look like Latin ones"),
                                        (5, "read a zero-width space as a space")])
def test_a_snapshot_whose_display_names_kept_accents_is_built_again_not_refreshed(tmp_path, mail, form, kept):
    # Display names lose the accents of Latin letters ('josé garcía' is 'jose garcia') and invisible characters:
    # a snapshot of an earlier form (display_name_form 1, or none recorded: accents kept; 2: invisible characters
    # kept) holds other keys for such names, so refresh() refuses it, the job builds it in full, and a view
    # serving it warns.
    from commgraph.baselines import refresh
    from commgraph.signals import SignalSet

    messages = validate(mail.messages, tenants=mail.tenants)
    old = build_baselines(messages, as_of="2025-01-12T00:00Z")["tenant-01"]
    old.display_name_form = form  # as an earlier commgraph built it
    with pytest.raises(ConfigError, match=f"display names {kept} .* Build it again in full"):
        refresh(old, messages, as_of=AS_OF)
    with pytest.warns(UserWarning, match=f"display names {kept}"):
        SignalSet().compute(messages, {"tenant-01": old}, cold_start=True)
    # An engine serving it keeps scoring the mail it observes (observe's refresh of it raised, and every batch
    # after it with it), the live view keeping the snapshot's form.
    from commgraph.signals import Scorer

    later = messages.frame["timestamp"] >= pd.Timestamp("2025-01-12T00:00Z")
    mine = (messages.frame["tenant_id"] == "tenant-01") & later
    seen, fresh = mail.messages[mine.to_numpy()].iloc[:40], mail.messages[mine.to_numpy()].iloc[40:60]
    with pytest.warns(UserWarning, match=f"display names {kept}"):
        scorer = Scorer({"tenant-01": old}, tenant_configs=mail.tenants)
        scorer.observe(validate(seen, tenants=mail.tenants), as_of=seen["timestamp"].max() + pd.Timedelta("1s"))
        assert len(scorer.score(validate(fresh, tenants=mail.tenants))) >= len(fresh)
    SnapshotStore(tmp_path).publish(old)
    assert SnapshotStore(tmp_path).load("tenant-01").display_name_form == form
    again = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                        tenants=["tenant-01"], incremental=True)
    assert [(o.mode, o.status) for o in again.outcomes] == [("full", "published")]
    assert SnapshotStore(tmp_path).manifest("tenant-01")["display_name_form"] == DISPLAY_NAME_FORM


def test_a_state_without_the_pairs_first_inbound_times_is_built_again_not_refreshed(tmp_path, mail, monkeypatch):
    # A state stored before pairs kept their first inbound time counts first-time senders as that commgraph did
    # (an internal address spoofed from outside among them): the job builds such a tenant in full once.
    import commgraph.baselines._snapshot as snapshot_module

    real = snapshot_module._state_to_arrow
    monkeypatch.setattr(snapshot_module, "_state_to_arrow",
                        lambda state: {k: v for k, v in real(state).items() if k != snapshot_module.FIRST_INBOUND})
    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants)
    monkeypatch.undo()
    again = run_refresh(mail.messages, store=tmp_path, as_of="2025-01-13T00:00Z", tenant_configs=mail.tenants,
                        incremental=True)
    assert {o.mode for o in again.outcomes} == {"full"}
    later = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True)
    assert {o.mode for o in later.outcomes} == {"incremental"}


def test_force_replaces_a_plain_tenant_whose_current_version_folder_is_gone(tmp_path, mail):
    import shutil

    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants,
                tenants=["tenant-01"])
    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-13T00:00Z", tenant_configs=mail.tenants,
                tenants=["tenant-01"])
    shutil.rmtree(tmp_path / "tenant-01" / "v000002")  # the version left (1) holds raw strings: nothing private
    refused = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                          tenants=["tenant-01"])
    assert refused.failed == ["tenant-01"] and "--force" in refused.outcomes[0].error
    forced = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                         tenants=["tenant-01"], force=True)
    assert forced.exit_code == 0 and SnapshotStore(tmp_path).load("tenant-01").as_of == pd.Timestamp(AS_OF)


def test_every_publishing_path_records_the_own_domains(tmp_path, mail):
    from commgraph.baselines._job import own_domains_digest, ready_to_publish

    snap = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF)["tenant-01"]
    configs = {c.tenant_id: c for c in mail.tenants}
    ready_to_publish(snap, configs, force=False, fields={}, built_in_full=True)  # as the Spark engine calls it
    SnapshotStore(tmp_path).publish(snap)
    assert SnapshotStore(tmp_path).manifest("tenant-01")["own_domains_sha256"] == own_domains_digest(configs,
                                                                                                      "tenant-01")


def test_inspect_current_only_verifies_what_is_served_and_shows_the_label_ledger(tmp_path, mail, capsys):
    run_refresh(mail.messages, store=tmp_path, as_of="2025-01-13T00:00Z", tenant_configs=mail.tenants)
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    old = tmp_path / "tenant-01" / "v000001" / "sender.arrow"
    old.write_bytes(old.read_bytes()[:-8] + b"\0" * 8)  # an old version damaged: not what is served
    capsys.readouterr()
    assert main(["inspect", "--store", str(tmp_path), "--current-only"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("tenant-")]
    assert len(lines) == 3 and all(" * " in line and line.split()[-2:] == ["yes", "ok"] for line in lines), out
    assert "label_ledger" in out
    assert main(["inspect", "--store", str(tmp_path)]) == 1  # every version: the damaged one fails
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tenant-")]
    assert len(lines) == 6 and sum("FAILED" in line for line in lines) == 1


def test_inspect_fails_a_tenant_whose_current_version_folder_is_gone(tmp_path, mail, capsys):
    # The pointer names a version that was removed by hand: the engine cannot load the tenant, and inspect
    # passed (exit 0, the older version "ok"; with --current-only, "no snapshots").
    import shutil

    for as_of in ("2025-01-13T00:00Z", AS_OF):
        run_refresh(mail.messages, store=tmp_path, as_of=as_of, tenant_configs=mail.tenants, tenants=["tenant-01"])
    shutil.rmtree(tmp_path / "tenant-01" / "v000002")
    capsys.readouterr()
    for extra in ([], ["--current-only"]):
        assert main(["inspect", "--store", str(tmp_path), *extra]) == 1
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tenant-01")]
        assert any(" 2 " in line and " * " in line and "FAILED" in line and "gone" in line for line in lines), lines


def test_a_batch_of_tenants_refreshed_from_other_instants_counts_each_tenants_own_period(tmp_path, mail, monkeypatch):
    # Read from the batch's earliest as_of, a tenant refreshed since counted (and rejected again) mail its
    # last run had read: its report depended on which tenants shared its batch.
    from commgraph.baselines import _job

    raw = mail.messages.copy()
    day11 = (raw["tenant_id"] == "tenant-01") & (raw["timestamp"] >= pd.Timestamp("2025-01-11T00:00Z")) & (
        raw["timestamp"] < pd.Timestamp("2025-01-11T12:00Z"))
    raw.loc[raw.index[day11.to_numpy()][0], "sender"] = "not an address"  # reported by the day-12 run
    outcomes = {}
    for size in (1, 3):
        monkeypatch.setattr(_job, "REFRESH_BATCH", size)
        store = tmp_path / f"batch{size}"
        run_refresh(raw, store=store, as_of="2025-01-10T00:00Z", tenant_configs=mail.tenants)
        day12 = run_refresh(raw, store=store, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants,
                            tenants=["tenant-01"], incremental=True)
        assert day12.outcomes[0].rows_rejected == 1
        report = run_refresh(raw, store=store, as_of=AS_OF, tenant_configs=mail.tenants, incremental=True)
        outcomes[size] = {o.tenant_id: (o.rows_read, o.rows_rejected) for o in report.outcomes}
    own = raw[raw["tenant_id"] == "tenant-01"]
    since = pd.Timestamp("2025-01-12T00:00Z")
    sent_or_labelled = int(((pd.to_datetime(own["timestamp"], utc=True) >= since)
                            | (pd.to_datetime(own["labeled_at"], utc=True) >= since)).sum())
    assert outcomes[3] == outcomes[1] and outcomes[3]["tenant-01"] == (sent_or_labelled, 0)


def test_bad_command_line_input_is_a_usage_error_naming_the_fix(tmp_path, mail, capsys):
    # Each was an "unexpected" error (exit 1): an input without the tenant column (KeyError, ArrowInvalid), an
    # unknown --timezone for validate (ZoneInfoNotFoundError), --columns of malformed JSON (JSONDecodeError).
    raw = mail.messages.drop(columns=["scenario"], errors="ignore").rename(columns={"tenant_id": "org"})
    raw.to_csv(tmp_path / "org.csv", index=False)
    raw.to_parquet(tmp_path / "org.parquet")
    for source in ("org.csv", "org.parquet"):
        assert main(["refresh", "--input", str(tmp_path / source), "--store", str(tmp_path / "s"),
                     "--as-of", AS_OF]) == 2
        err = capsys.readouterr().err
        assert "no 'tenant_id' column" in err and "--columns tenant_id=" in err and "unexpected" not in err, err
    assert main(["refresh", "--input", str(tmp_path / "org.csv"), "--store", str(tmp_path / "s"), "--as-of", AS_OF,
                 "--columns", "tenant_id=org"]) == 0
    for extra, words in ((["--timezone", "Mars/Base"], "IANA time zone"),
                         (["--columns", "{bad json"], "not valid JSON")):
        assert main(["validate", str(tmp_path / "org.csv"), *extra]) == 2
        err = capsys.readouterr().err
        assert words in err and "unexpected" not in err, err


def test_score_and_explain_read_what_validate_and_refresh_read(tmp_path, mail, archive, capsys):
    # score had no --timezone, --format or --encoding, explain no --columns, and explain took only the first
    # row of a message given one row per recipient ("score_one needs the recipients").
    store = tmp_path / "store"
    assert main(["refresh", "--input", str(archive), "--store", str(store), "--as-of", AS_OF]) == 0
    day = mail.messages[pd.to_datetime(mail.messages["timestamp"], utc=True) >= pd.Timestamp("2025-01-13T00:00Z")]
    day = day.drop(columns=["scenario"], errors="ignore").head(30)
    paris = day.assign(timestamp=pd.to_datetime(day["timestamp"], utc=True).dt.tz_convert("Europe/Paris")
                       .dt.tz_localize(None).astype(str))
    paris.rename(columns={"tenant_id": "org"}).to_csv(tmp_path / "paris.txt", index=False)
    out, reference = tmp_path / "paris.parquet", tmp_path / "utc.parquet"
    day.to_csv(tmp_path / "utc.csv", index=False)
    assert main(["score", "--input", str(tmp_path / "paris.txt"), "--store", str(store), "--output", str(out),
                 "--format", "csv", "--timezone", "Europe/Paris", "--columns", "tenant_id=org"]) == 0
    assert main(["score", "--input", str(tmp_path / "utc.csv"), "--store", str(store), "--output",
                 str(reference)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))
    # (timestamp and sender are edge columns already: named again, the CSV's header named them twice, refused)
    edges = validate(day, tenants=mail.tenants).edges(message_columns=("message_id",))
    many = edges[edges.groupby("message_id", observed=True)["recipient"].transform("size") > 1]
    row = many.iloc[0]
    per_recipient = edges[["tenant_id", "message_id", "timestamp", "sender", "recipient"]].rename(
        columns={"tenant_id": "org"})
    per_recipient.astype(str).to_csv(tmp_path / "rows.csv", index=False)
    capsys.readouterr()
    assert main(["explain", "--store", str(store), "--tenant", str(row["tenant_id"]), "--message-id",
                 str(row["message_id"]), "--input", str(tmp_path / "rows.csv"), "--columns", "tenant_id=org"]) == 0
    assert str(row["message_id"]) in capsys.readouterr().out
    # explain reads naive times in --timezone as score does; refresh takes every zone validate takes.
    first = paris.iloc[0]
    assert main(["explain", "--store", str(store), "--tenant", str(first["tenant_id"]), "--message-id",
                 str(first["message_id"]), "--input", str(tmp_path / "paris.txt"), "--format", "csv",
                 "--columns", "tenant_id=org", "--timezone", "Europe/Paris"]) == 0
    assert main(["refresh", "--input", str(tmp_path / "paris.txt"), "--format", "csv", "--columns", "tenant_id=org",
                 "--store", str(tmp_path / "offset"), "--as-of", AS_OF, "--timezone", "+01:00"]) == 0
    # An unlabelled message read from Parquet (labeled_at NaT) is explained with --timezone too.
    paris.assign(labeled_at=pd.NaT).iloc[:1].to_parquet(tmp_path / "one.parquet")
    assert main(["explain", "--store", str(store), "--tenant", str(first["tenant_id"]), "--message-id",
                 str(first["message_id"]), "--input", str(tmp_path / "one.parquet"), "--timezone",
                 "Europe/Paris"]) == 0
    # A local time that daylight saving skips is refused for what it is (not as "naive: pass timezone=").
    skipped = paris.iloc[:1].assign(timestamp="2024-03-31T02:30:00")
    skipped.rename(columns={"tenant_id": "org"}).to_csv(tmp_path / "skipped.csv", index=False)
    capsys.readouterr()
    assert main(["explain", "--store", str(store), "--tenant", str(first["tenant_id"]), "--message-id",
                 str(first["message_id"]), "--input", str(tmp_path / "skipped.csv"), "--columns", "tenant_id=org",
                 "--timezone", "Europe/Paris"]) == 1
    assert "daylight saving" in capsys.readouterr().err


def test_score_and_explain_take_the_tenants_own_domains_and_refuse_a_store_that_is_not_there(tmp_path, capsys):
    # A domain that only receives mail (acme-group.com) is no own domain to a snapshot's mail: with no
    # --tenant-config option, score and explain refused the whole batch (direction_undecidable) that validate
    # and refresh took. Mail from outside to it is inbound either way now (own domains read off the snapshot are
    # known ones: a message to none of them was received all the same). A mistyped --store was served as an empty
    # store (--cold-start: every sender new, exit 0).
    history = [dict(tenant_id="acme", message_id=f"h{i}", timestamp=f"2025-01-{i % 9 + 1:02d}T1{i % 10}:00Z",
                    sender=["bob@vendor.com", "ann@acme.com", "sue@partner.com"][i % 3],
                    recipients=["ann@acme.com", "bob@vendor.com", "info@acme-group.com"][i % 3]) for i in range(20)]
    pd.DataFrame(history).to_csv(tmp_path / "history.csv", index=False)
    pd.DataFrame([dict(tenant_id="acme", message_id="n1", timestamp="2025-01-12T10:00Z", sender="sue@partner.com",
                       recipients="info@acme-group.com")]).to_csv(tmp_path / "today.csv", index=False)
    (tmp_path / "tenants.toml").write_text('[[tenant]]\ntenant_id = "acme"\nown_domains = ["acme.com", '
                                           '"acme-group.com"]\n')
    store, out, config = str(tmp_path / "store"), str(tmp_path / "out.parquet"), str(tmp_path / "tenants.toml")
    assert main(["refresh", "--input", str(tmp_path / "history.csv"), "--store", store, "--as-of",
                 "2025-01-12T00:00Z", "--tenant-config", config]) == 0
    today = str(tmp_path / "today.csv")
    assert main(["score", "--input", today, "--store", store, "--output", out]) == 0  # (as the snapshot saw it)
    assert pd.read_parquet(out)["sender_messages_30d"].tolist() == [6]
    assert main(["score", "--input", today, "--store", store, "--output", out, "--tenant-config", config]) == 0
    assert pd.read_parquet(out)["sender_messages_30d"].tolist() == [6]
    capsys.readouterr()
    assert main(["explain", "--store", store, "--tenant", "acme", "--message-id", "n1", "--input", today,
                 "--tenant-config", config]) == 0
    assert "info@acme-group.com" in capsys.readouterr().out
    for command in (["score", "--output", out, "--cold-start"], ["explain", "--tenant", "acme", "--message-id", "n1"]):
        assert main([*command, "--input", today, "--store", str(tmp_path / "stroe")]) == 2
        assert "no snapshot store at" in capsys.readouterr().err


def test_the_command_line_refuses_what_would_fail_every_tenant_before_reading(tmp_path, mail, archive, capsys):
    # Each of these started the work and ended in an internal error (exit 1), a failure of every tenant (exit 3),
    # or a silent ignore: now a usage error (exit 2) naming the option.
    csv = tmp_path / "mail.csv"
    mail.messages.head(50).to_csv(csv, index=False)
    store = tmp_path / "store"
    assert main(["refresh", "--input", str(csv), "--store", str(store), "--as-of", AS_OF]) in (0, 3)
    cases = [
        (["refresh", "--input", str(csv), "--store", str(tmp_path / "s2"), "--as-of", AS_OF, "--columns",
          "sender=nosuch"], "names 'nosuch' for 'sender', but the input has no such column"),
        (["score", "--input", str(csv), "--store", str(store), "--output", str(tmp_path / "o.parquet"),
          "--columns", "sender=nosuch"], "the input has no such column"),
        (["score", "--input", str(csv), "--store", str(store), "--output", str(tmp_path / "o.parquet"),
          "--columns", "sender=reply_to"], "already has a 'sender' column"),
        (["validate", str(csv), "--encoding", "nosuch"], "--encoding 'nosuch' names no text encoding"),
        (["explain", "--store", str(store), "--tenant", "tenant-01", "--message-id", "x", "--input", str(csv),
          "--timezone", "Mars/Base"], "--timezone 'Mars/Base' is not a time zone"),
        (["refresh", "--input", str(archive), "--store", str(archive / "snapshots"), "--as-of", AS_OF],
         "lies inside --input"),
        # An archive partitioned by tenant: it failed every tenant (exit 3) for a column none of its files has.
        (["refresh", "--input", str(archive), "--store", str(tmp_path / "s3"), "--as-of", AS_OF, "--columns",
          "sender=nosuch"], "names 'nosuch' for 'sender', but the input has no such column"),
        (["refresh", "--input", str(archive), "--store", str(tmp_path / "s3"), "--as-of", AS_OF, "--columns",
          "sendr=sender"], "column mapping key 'sendr' is not a contract column"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    assert not (archive / "snapshots").exists()


def test_a_partitioned_archive_s_mapping_is_checked_against_every_file(tmp_path, capsys):
    # The first file's schema is the archive's: a column only later files have is no usage error (the tenants
    # whose files lack it fail alone), one that no file has is.
    first, later = frame(tenant_id="a"), frame(tenant_id="b").rename(columns={"sender": "from_addr"})
    for tenant, rows in (("a", first), ("b", later)):
        (tmp_path / "mail" / f"tenant_id={tenant}").mkdir(parents=True)
        rows.drop(columns="tenant_id").to_parquet(tmp_path / "mail" / f"tenant_id={tenant}" / "part-0.parquet")
    base = ["refresh", "--input", str(tmp_path / "mail"), "--store", str(tmp_path / "store"), "--as-of", AS_OF]
    assert main([*base, "--columns", "sender=from_addr"]) == 3
    assert "failed: a" in capsys.readouterr().err
    assert SnapshotStore(tmp_path / "store").tenants() == ["b"]
    assert main([*base, "--columns", "sender=from_adr"]) == 2
    err = capsys.readouterr().err
    assert "names 'from_adr' for 'sender', but the input has no such column" in err
    assert "columns present: ['from_addr', 'message_id', 'recipients', 'sender', 'tenant_id', 'timestamp']" in err


def test_a_json_log_holds_json_lines_only(tmp_path, mail, capsys):
    # A failed tenant's line and the summary's notes were plain text among the JSON lines.
    frame = mail.messages.copy()
    frame.loc[frame["tenant_id"] == "tenant-02", "sender"] = "not an address"
    frame.to_parquet(tmp_path / "mail.parquet")
    capsys.readouterr()
    code = main(["refresh", "--input", str(tmp_path / "mail.parquet"), "--store", str(tmp_path / "s"), "--as-of",
                 AS_OF, "--log-format", "json"])
    err = capsys.readouterr().err
    assert code == 3 and err.strip()
    events = [json.loads(line) for line in err.strip().splitlines()]
    assert {"event": "tenant_failed", "tenant_id": "tenant-02"}.items() <= next(
        e for e in events if e.get("event") == "tenant_failed").items()


def _unreadable_entry(fault: str, store: Path, tenant: str, monkeypatch) -> str:
    """Make ``tenant``'s entry in ``store`` unreadable by the operating system; returns the path its error names."""
    entry = store / tenant
    if fault == "file":  # a stray file, a bad restore, in place of the tenant's folder
        shutil.rmtree(entry)
        entry.write_text("not a folder\n")
        return str(entry / "CURRENT")
    if fault == "loop":
        shutil.rmtree(entry)
        os.symlink(tenant, entry)  # (a link to itself)
        return str(entry / "CURRENT")
    # Running as root, chmod denies nothing: the OS's refusal of the manifest (EACCES) is injected instead; it
    # reaches the job as the OSError itself, no store method turning it into a CommGraphError.
    manifest = entry / "v000001" / "manifest.json"
    original = Path.read_text

    def read_text(path, *args, **kwargs):
        if path == manifest:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    return str(manifest)


@pytest.mark.parametrize("fault", ["file", "loop", "permission"])
def test_an_incremental_job_fails_alone_a_tenant_whose_store_entry_the_os_cannot_read(tmp_path, mail, fault,
                                                                                       monkeypatch, capsys):
    # An OSError deciding one tenant's mode (a file in place of its folder: NotADirectoryError) escaped
    # run_refresh before any tenant ran: exit 1, no healthy tenant refreshed, no report. A full run failed that
    # tenant alone; --incremental now does too, naming the path.
    store = tmp_path / "store"
    assert run_refresh(mail.messages, store=store, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants,
                       tenants=["tenant-01", "tenant-02", "tenant-03"]).exit_code == 0
    named = _unreadable_entry(fault, store, "tenant-02", monkeypatch)
    report = run_refresh(mail.messages, store=store, as_of="2025-01-13T00:00Z", tenant_configs=mail.tenants,
                         incremental=True)
    assert report.exit_code == 3 and report.failed == ["tenant-02"], report.table()
    failed = next(o for o in report.outcomes if o.tenant_id == "tenant-02")
    assert named in failed.error and failed.mode == "full", failed.error
    refreshed = {o.tenant_id: (o.status, o.mode) for o in report.outcomes if o.tenant_id != "tenant-02"}
    assert refreshed == {t: ("published", "incremental") for t in ("tenant-01", "tenant-03")}
    assert all(SnapshotStore(store).load(t).as_of == pd.Timestamp("2025-01-13T00:00Z") for t in refreshed)
    if fault == "file":  # the command line: exit 3 (some tenants failed), the tenant named with its reason
        source = tmp_path / "mail.parquet"
        mail.messages.to_parquet(source)
        capsys.readouterr()
        assert main(["refresh", "--input", str(source), "--store", str(store), "--as-of", AS_OF, "--incremental",
                     "--tenant-config", str(tenants_toml(mail, tmp_path / "tenants.toml"))]) == 3
        assert "tenant-02" in capsys.readouterr().err


@pytest.mark.parametrize("incremental", [True, False])
def test_a_tenant_that_read_its_mail_and_failed_to_publish_reports_the_rows_it_read(tmp_path, mail, incremental):
    # A publish failure (here: the tenant's lock path is a directory) reported rows_read 0 for a tenant that read
    # its mail, both refreshed in a batch and built alone; only a tenant without usable mail kept its counts.
    store = tmp_path / "store"
    assert run_refresh(mail.messages, store=store, as_of="2025-01-12T00:00Z", tenant_configs=mail.tenants
                       ).exit_code == 0
    shutil.copytree(store, tmp_path / "good")
    good = run_refresh(mail.messages, store=tmp_path / "good", as_of=AS_OF, tenant_configs=mail.tenants,
                       incremental=incremental)
    expected = {o.tenant_id: (o.rows_read, o.rows_rejected, o.rejects_by_reason) for o in good.outcomes}
    (store / "tenant-02" / ".lock").unlink()
    (store / "tenant-02" / ".lock").mkdir()
    report = run_refresh(mail.messages, store=store, as_of=AS_OF, tenant_configs=mail.tenants,
                         incremental=incremental)
    assert report.failed == ["tenant-02"] and "IsADirectoryError" in report.outcomes[1].error
    assert {o.tenant_id: (o.rows_read, o.rows_rejected, o.rejects_by_reason) for o in report.outcomes} == expected
    assert expected["tenant-02"][0] > 0


def test_inspect_names_a_file_in_place_of_a_tenant_and_fails_on_a_folder_it_cannot_read(tmp_path, mail, capsys,
                                                                                          monkeypatch):
    # A file under a tenant's name was skipped in silence (exit 0); a folder the OS refused crashed inspect.
    run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants)
    shutil.rmtree(tmp_path / "tenant-01")
    (tmp_path / "tenant-01").write_text("not a folder\n")
    (tmp_path / "old backup").mkdir()
    capsys.readouterr()
    assert main(["inspect", "--store", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "'old backup', 'tenant-01' (not a folder)" in err and "tenant-01" not in out and "tenant-02" in out
    folder, original = tmp_path / "tenant-03", Path.read_text

    def read_text(path, *args, **kwargs):  # (as root, chmod denies nothing: the OS's refusal is injected)
        if folder in path.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert main(["inspect", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split() and line.split()[0] == "tenant-03")
    assert "FAILED" in row and "PermissionError" in row and "tenant-02" in out


def test_a_full_job_lists_the_archive_s_tenants_once_not_once_per_tenant(tmp_path, archive, monkeypatch):
    # Each tenant's worker counts its own rows (to choose chunked reading) from its own folders: listing every
    # tenant's folder for each of thousands of tenants cost in proportion to their number squared.
    from commgraph.baselines import _job
    from commgraph.graph import _readers

    listings, sizes = [], []
    listed, sized = _readers.partition_values, _readers.partition_size

    def listing(*args, **kwargs):
        listings.append(args)
        return listed(*args, **kwargs)

    def size(*args, **kwargs):
        sizes.append(args[2])
        return sized(*args, **kwargs)

    for module in (_readers, _job):
        monkeypatch.setattr(module, "partition_values", listing)
    monkeypatch.setattr(_job, "partition_size", size)
    report = run_refresh(archive, store=tmp_path / "store", as_of=AS_OF, jobs=1)
    assert [o.status for o in report.outcomes] == ["published"] * 3
    assert sorted(sizes) == list(GENERATED_TENANTS) and len(listings) == 1
    counted = {t: sized(archive, "tenant_id", t) for t in GENERATED_TENANTS}
    assert counted == _readers.partition_rows(archive, "tenant_id") and min(counted.values()) > 0


def _groups_built_together(monkeypatch) -> tuple[list[list[str]], list[str]]:
    """The groups of tenants a job reads and builds together, and the tenants it runs alone, recorded as it runs
    (in this process)."""
    from commgraph.baselines import _job

    groups: list[list[str]] = []
    alone: list[str] = []
    together, isolated = _job._publish_together, _job._isolated

    def recording(tenant_ids, *args, **kwargs):
        groups.append(list(tenant_ids))
        return together(tenant_ids, *args, **kwargs)

    def one(tenant_id, *args):
        alone.append(tenant_id)
        return isolated(tenant_id, *args)

    monkeypatch.setattr(_job, "_publish_together", recording)
    monkeypatch.setattr(_job, "_isolated", one)
    return groups, alone


def _alone(messages, tenant: str, **kwargs):
    """A tenant's snapshot built from its own mail alone."""
    return build_baselines(messages.subset((messages.frame["tenant_id"] == tenant).to_numpy()), **kwargs)[tenant]


def test_tenants_built_together_publish_what_each_built_alone_would(tmp_path, mail, archive, monkeypatch):
    # A full job reads and builds small tenants together. Built in one build_baselines, tenants with too little
    # labelled mail would borrow a prior pooled over all of them (so this input's tenants differ from their
    # builds alone); the job publishes each as built alone, from a DataFrame and from a partitioned archive.
    batches, alone_ran = _groups_built_together(monkeypatch)
    messages = validate(mail.messages, tenants=mail.tenants)
    pooled = build_baselines(messages, as_of=AS_OF)
    alone = {t: _alone(messages, t, as_of=AS_OF) for t in GENERATED_TENANTS}
    assert any(not pooled[t].equals(alone[t]) for t in GENERATED_TENANTS)
    for source, configs in ((mail.messages, mail.tenants), (archive, None)):
        batches.clear()
        alone_ran.clear()
        store = tmp_path / ("frame" if configs else "archive")
        report = run_refresh(source, store=store, as_of=AS_OF, tenant_configs=configs)
        assert [o.status for o in report.outcomes] == ["published"] * 3
        assert batches == [list(GENERATED_TENANTS)] and not alone_ran
        built = {t: SnapshotStore(store).load(t) for t in GENERATED_TENANTS}
        expected = alone if configs else {t: _alone(validate(mail.messages), t, as_of=AS_OF) for t in alone}
        assert all(built[t].equals(expected[t]) for t in GENERATED_TENANTS)


def test_a_full_job_groups_tenants_by_their_rows_and_reads_a_large_one_alone(tmp_path, mail, monkeypatch):
    # Groups hold no more rows than one tenant read whole (chunk_rows); a tenant above it is built in chunks alone.
    from commgraph.baselines import _job

    batches, alone = _groups_built_together(monkeypatch)
    chunked, in_chunks = [], _job._build_chunked

    def chunks(tenant_id, *args, **kwargs):
        chunked.append(tenant_id)
        return in_chunks(tenant_id, *args, **kwargs)

    monkeypatch.setattr(_job, "_build_chunked", chunks)
    rows = mail.messages["tenant_id"].value_counts().to_dict()
    largest = max(rows, key=rows.get)
    others = sorted(t for t in rows if t != largest)
    chunk_rows = max(rows[t] for t in others)  # each of the two others fits, they do not together, the largest not
    assert sum(rows[t] for t in others) > chunk_rows < rows[largest]
    report = run_refresh(mail.messages, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants,
                         chunk_rows=chunk_rows, config={"global_prior": (9.0, 1.0)})
    assert [o.status for o in report.outcomes] == ["published"] * 3
    assert batches == [[t] for t in others] and alone == chunked == [largest]
    direct = build_baselines(validate(mail.messages, tenants=mail.tenants), as_of=AS_OF,
                             config={"global_prior": (9.0, 1.0)})
    assert all(SnapshotStore(tmp_path).load(t).equals(direct[t]) for t in rows)


def test_a_tenant_that_fails_in_a_group_fails_alone_and_the_group_publishes(tmp_path, mail, monkeypatch):
    batches, alone = _groups_built_together(monkeypatch)
    raw = mail.messages.copy()
    broken = raw["tenant_id"] == "tenant-02"
    raw.loc[broken, "sender"] = "not an address"  # every row of tenant-02 is rejected
    report = run_refresh(raw, store=tmp_path, as_of=AS_OF, tenant_configs=mail.tenants, jobs=1)
    assert report.failed == ["tenant-02"] and "no usable mail" in report.outcomes[1].error
    assert batches == [list(GENERATED_TENANTS)] and alone == ["tenant-02"]  # (the others published from the group)
    assert report.outcomes[1].rows_read == report.outcomes[1].rows_rejected == int(broken.sum())
    messages = validate(mail.messages, tenants=mail.tenants)
    for t in ("tenant-01", "tenant-03"):
        assert SnapshotStore(tmp_path).load(t).equals(_alone(messages, t, as_of=AS_OF))
