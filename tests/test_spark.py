"""The Spark engine of the refresh job equals the local engine: same snapshots, outcomes, store semantics.

One local Spark session (``local[2]``, no UI) serves the module; the Spark runs
are few and small so that the module stays well under a minute on 2 cores.
The reference is the local job reading each tenant whole (``build_baselines``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from commgraph.baselines import SnapshotStore, run_refresh
from commgraph.baselines._snapshot import table_differences
from commgraph.graph import ConfigError, TenantConfig, generate, write_generated
from commgraph.signals._cli import main
from conftest import state_differences, write_hive

AS_OF = "2025-01-14T00:00Z"
GOOD = ["tenant-01", "tenant-02", "tenant-03"]


@pytest.fixture(scope="module")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("commgraph-tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2").config("spark.default.parallelism", "1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _write_extra(path: Path, tenant: str, date: str, name: str, rows: pd.DataFrame, schema: pa.Schema) -> None:
    folder = path / f"tenant_id={tenant}" / f"date={date}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(rows.drop(columns=["tenant_id", "date"]), schema=schema,
                                        preserve_index=False), folder / name)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, list[TenantConfig]]:
    """A generated hive archive (nanosecond timestamps), plus: exact copies of 40 tenant-01 messages in a
    later file (repeated ids: the first copy counts), 30 tenant-02 rows without a sender (rejected), and a
    tenant none of whose rows passes the contract."""
    path = tmp_path_factory.mktemp("spark") / "mail"
    write_generated(path, tenants=3, days=10, scale=0.1, random_state=5, progress=False)
    schema = pq.read_schema(next(path.glob("tenant_id=tenant-01/*/*.parquet")))
    frame = ds.dataset(path, partitioning="hive").to_table().to_pandas()
    by = {t: frame[frame["tenant_id"] == t] for t in GOOD}
    _write_extra(path, "tenant-01", "2025-01-08", "zz-copies.parquet", by["tenant-01"].iloc[100:140], schema)
    broken = by["tenant-02"].iloc[:30].assign(sender=None, message_id=lambda f: f["message_id"] + "-x")
    _write_extra(path, "tenant-02", "2025-01-09", "zz-broken.parquet", broken, schema)
    _write_extra(path, "tenant-bad", "2025-01-07", "part-0.parquet", by["tenant-03"].iloc[:25].assign(sender=None),
                 schema)
    configs = list(generate(tenants=3, days=1, scale=0.1, random_state=5).tenants)  # same tenants, one day
    return path, configs + [TenantConfig("tenant-bad", own_domains=configs[2].own_domains)]


def _toml(configs: list[TenantConfig], path: Path) -> Path:
    lines = []
    for c in configs:
        lines += ["[[tenant]]", f'tenant_id = "{c.tenant_id}"', f"own_domains = {json.dumps(list(c.own_domains))}",
                  ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="module")
def runs(spark, archive, tmp_path_factory):
    """The local job (each tenant read whole) and the Spark job (command line, small chunks) on the archive."""
    path, configs = archive
    work = tmp_path_factory.mktemp("stores")
    local = run_refresh(path, store=work / "local", as_of=AS_OF, tenant_configs=configs, chunk_rows=None)
    report = work / "spark.json"
    code = main(["refresh", "--input", str(path), "--store", str(work / "spark"), "--as-of", AS_OF, "--engine",
                 "spark", "--chunk-rows", "2000", "--tenant-config", str(_toml(configs, work / "tenants.toml")),
                 "--report", str(report)])
    return {"local": local, "spark": json.loads(report.read_text()), "code": code, "work": work, "configs": configs}


def test_spark_build_equals_the_local_build_on_every_table(runs):
    local, spark = SnapshotStore(runs["work"] / "local"), SnapshotStore(runs["work"] / "spark")
    assert local.tenants() == spark.tenants() == GOOD
    for tenant in GOOD:
        a, b = local.load(tenant), spark.load(tenant)
        assert a.as_of == b.as_of and a.fingerprint == b.fingerprint
        assert table_differences(a, b, rtol=1e-9) == [], tenant
        for name in ("sender", "pair", "recipient", "tenant"):  # counts exactly, not within a tolerance
            ta, tb = a.arrow(name), b.arrow(name)
            for column in ta.column_names:
                if not pa.types.is_floating(ta.schema.field(column).type):
                    assert ta.column(column).equals(tb.column(column)), (tenant, name, column)
        assert state_differences(a, b) == [], tenant
        assert a.priors == b.priors and a.meta()["row_counts"] == b.meta()["row_counts"]


def test_outcomes_match_the_local_engine_including_rejects_and_the_failing_tenant(runs):
    local = {o.tenant_id: o for o in runs["local"].outcomes}
    spark = {t["tenant_id"]: t for t in runs["spark"]["tenants"]}
    assert runs["code"] == runs["local"].exit_code == 3 and runs["spark"]["exit_code"] == 3
    assert sorted(spark) == sorted(local) == [*GOOD, "tenant-bad"]
    for tenant, outcome in local.items():
        got = spark[tenant]
        for field in ("status", "mode", "version", "rows_read", "rows_rejected", "rejects_by_reason", "error"):
            assert got[field] == getattr(outcome, field), (tenant, field)
    assert local["tenant-01"].rejects_by_reason == {"duplicate_message_id": 40}
    assert local["tenant-02"].rejects_by_reason == {"missing_value": 30}
    assert local["tenant-bad"].status == "failed" and "no usable mail" in local["tenant-bad"].error
    assert "the first row of each problem: " in local["tenant-bad"].error  # (what was wrong, and the fix)
    assert all(t["peak_mib"] > 0 and t["seconds"] > 0 for t in runs["spark"]["tenants"])


def test_spark_rerun_over_the_local_store_publishes_nothing_new(runs, archive):
    # The same fingerprint and as_of as the local build: the Spark job finds nothing new to publish.
    store = runs["work"] / "local"
    before = {t: SnapshotStore(store).current(t) for t in GOOD}
    seen = []
    report = run_refresh(archive[0], store=store, as_of=AS_OF, tenant_configs=runs["configs"], engine="spark",
                         tenants=["tenant-02", "tenant-03", "tenant-bad"], on_outcome=seen.append)
    assert [(o.tenant_id, o.status) for o in report.outcomes] == [
        ("tenant-02", "unchanged"), ("tenant-03", "unchanged"), ("tenant-bad", "failed")]
    assert {o.tenant_id: o.version for o in report.outcomes if o.status == "unchanged"} == \
        {t: before[t] for t in ("tenant-02", "tenant-03")}
    assert sorted(o.tenant_id for o in seen) == ["tenant-02", "tenant-03", "tenant-bad"]


def test_spark_engine_refuses_what_it_does_not_do(tmp_path, archive):
    with pytest.raises(ConfigError, match="incremental refreshes run on the local engine"):
        run_refresh(archive[0], store=tmp_path, as_of=AS_OF, engine="spark", incremental=True)
    with pytest.raises(ConfigError, match="must be one of"):
        run_refresh(archive[0], store=tmp_path, as_of=AS_OF, engine="dask")
    csv = tmp_path / "mail.csv"
    csv.write_text("tenant_id,message_id\n")
    with pytest.raises(ConfigError, match="reads Parquet"):
        run_refresh(csv, store=tmp_path, as_of=AS_OF, engine="spark")


def test_spark_refusals_say_what_to_do_on_the_command_line(spark, tmp_path, capsys):
    # They told a command-line user to call run_refresh(frame, engine='spark', ...) and to map columns with
    # columns={'tenant_id': ...}, listing the job's own column among the input's.
    csv = tmp_path / "mail.csv"
    csv.write_text("tenant_id,message_id\n")
    pd.DataFrame({"org": ["a"], "message_id": ["m1"]}).to_parquet(tmp_path / "org.parquet")
    for source, words in ((csv, "Write it as Parquet, or run the local engine (leave out --engine spark)"),
                          (tmp_path / "org.parquet", "Name yours with --columns tenant_id=<your column>")):
        assert main(["refresh", "--input", str(source), "--store", str(tmp_path / "s"), "--as-of", AS_OF,
                     "--engine", "spark"]) == 2
        err = capsys.readouterr().err
        assert words in err and "__commgraph" not in err, err


def test_a_mapping_to_a_column_no_file_has_is_a_usage_error_on_both_engines(spark, archive, tmp_path, capsys):
    # On an archive partitioned by tenant it failed every tenant (exit 3), each for the same missing column.
    for engine in ("local", "spark"):
        assert main(["refresh", "--input", str(archive[0]), "--store", str(tmp_path / engine), "--as-of", AS_OF,
                     "--engine", engine, "--columns", "sender=nosuch"]) == 2
        assert "names 'nosuch' for 'sender', but the input has no such column" in capsys.readouterr().err
        assert not (tmp_path / engine).exists()


def test_chunk_rows_0_reads_each_tenant_whole_on_spark_as_on_the_local_engine(spark, runs, archive, tmp_path,
                                                                               monkeypatch):
    # --chunk-rows 0 reads each tenant whole on the local engine (chunk_rows=None); on Spark it silently meant
    # the default 500,000 rows. Now each tenant is one task, read whole, and its snapshot the local one.
    from commgraph.baselines import _spark
    from commgraph.graph._readers import parquet_dataset

    path, configs = archive
    asked = []

    def tasks(sizes, chosen, chunk_rows):
        asked.append(chunk_rows)
        return spied(sizes, chosen, chunk_rows)

    spied = _spark._tenant_tasks
    monkeypatch.setattr(_spark, "_tenant_tasks", tasks)
    assert main(["refresh", "--input", str(path), "--store", str(tmp_path / "whole"), "--as-of", AS_OF, "--engine",
                 "spark", "--chunk-rows", "0", "--tenant-config", str(_toml(configs, tmp_path / "t.toml")),
                 "--tenants", ",".join(GOOD)]) == 0
    assert asked == [None] and spied({"a": 10**9}, ["a"], None) == [("a", 0, 1)]
    # Not partitioned by tenant: shuffled, each tenant's rows gathered whole in its partition.
    by_day = tmp_path / "by-day"
    write_hive(parquet_dataset(path).to_table(), by_day, ["date", "tenant_id"])
    run_refresh(by_day, store=tmp_path / "shuffled", as_of=AS_OF, tenant_configs=configs, engine="spark",
                chunk_rows=None, tenants=GOOD)
    local = SnapshotStore(runs["work"] / "local")
    for store in ("whole", "shuffled"):
        for tenant in GOOD:
            a, b = local.load(tenant), SnapshotStore(tmp_path / store).load(tenant)
            assert a.fingerprint == b.fingerprint and table_differences(a, b, rtol=1e-9) == [], (store, tenant)
            assert state_differences(a, b) == [], (store, tenant)


def test_a_partition_s_tenants_are_gathered_whole_or_in_chunks():
    from commgraph.baselines._spark import _TENANT, _tenant_pieces

    def batch(tenants: str) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict({_TENANT: list(tenants), "n": list(range(len(tenants)))},
                                          schema=pa.schema([(_TENANT, pa.string()), ("n", pa.int64())]))

    batches = [batch("aab"), batch(""), batch("bbb"), batch("bc")]
    whole = [(t, piece.num_rows) for t, piece in _tenant_pieces(iter(batches), None)]
    assert whole == [("a", 2), ("b", 5), ("c", 1)]
    assert [(t, piece.num_rows) for t, piece in _tenant_pieces(iter(batches), 3)] == [
        ("a", 2), ("b", 1), ("b", 3), ("b", 1), ("c", 1)]


def test_missing_pyspark_names_the_extra_to_install(monkeypatch):
    from commgraph.baselines import _spark

    monkeypatch.setitem(sys.modules, "pyspark", None)  # what an environment without pyspark sees
    with pytest.raises(ConfigError, match=r"pip install 'commgraph\[spark\]'"):
        _spark.spark_session()


def test_importing_the_baselines_does_not_import_spark():
    code = ("import sys, commgraph.baselines, commgraph.signals; "
            "print(sorted(m for m in sys.modules if m == 'pyspark' or m.endswith('_spark')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_archive_not_partitioned_by_tenant_is_shuffled_and_still_equals_the_local_build(spark, archive, tmp_path):
    # Partitioned by day first: tasks cannot read a tenant's folder, so Spark reads the archive and shuffles
    # the rows by tenant (the path a Spark DataFrame input takes); the result is the local build's all the same.
    from commgraph.baselines._spark import _tenant_partitioned
    from commgraph.graph._readers import parquet_dataset

    path, configs = archive
    by_day = tmp_path / "by-day"
    write_hive(parquet_dataset(path).to_table(), by_day, ["date", "tenant_id"])
    assert _tenant_partitioned(by_day, "tenant_id") is None and _tenant_partitioned(path, "tenant_id") is not None
    local = run_refresh(by_day, store=tmp_path / "local", as_of=AS_OF, tenant_configs=configs, chunk_rows=None)
    shuffled = run_refresh(by_day, store=tmp_path / "spark", as_of=AS_OF, tenant_configs=configs, engine="spark",
                           chunk_rows=2000)
    columns = ["tenant_id", "status", "version", "rows_read", "rows_rejected", "error"]
    assert shuffled.table()[columns].equals(local.table()[columns])
    assert [o.rejects_by_reason for o in shuffled.outcomes] == [o.rejects_by_reason for o in local.outcomes]
    a, b = SnapshotStore(tmp_path / "local"), SnapshotStore(tmp_path / "spark")
    for tenant in GOOD:
        assert table_differences(a.load(tenant), b.load(tenant), rtol=1e-9) == [], tenant
        assert state_differences(a.load(tenant), b.load(tenant)) == [], tenant


def test_privacy_mode_on_spark_equals_the_local_engine_and_a_tenant_without_its_secret_fails_alone(
        spark, archive, tmp_path):
    path, configs = archive
    config = {"privacy": True, "global_prior": (9.0, 1.0)}
    secrets = {"tenant-01": b"\x01" * 32, "tenant-03": b"\x03" * 16}  # none for tenant-02
    reports = {engine: run_refresh(path, store=tmp_path / engine, as_of=AS_OF, tenant_configs=configs,
                                   tenants=GOOD, config=config, secrets=secrets, engine=engine, chunk_rows=2000)
               for engine in ("local", "spark")}
    columns = ["tenant_id", "status", "version", "rows_read", "rows_rejected", "error"]
    assert reports["spark"].table()[columns].equals(reports["local"].table()[columns])
    assert reports["spark"].failed == ["tenant-02"]
    assert "secrets hold none for this tenant" in reports["spark"].outcomes[1].error
    a, b = SnapshotStore(tmp_path / "local"), SnapshotStore(tmp_path / "spark")
    for tenant in secrets:
        assert table_differences(a.load(tenant), b.load(tenant), rtol=1e-9) == [], tenant
        assert a.manifest(tenant)["secret_check"] == b.manifest(tenant)["secret_check"] is not None
        assert "sender" not in b.load(tenant).table("sender")  # keys only


@pytest.mark.parametrize("kind", ["hive", "frame"])
def test_rows_without_a_tenant_and_stored_tenants_missing_from_the_input_are_reported_as_locally(
        spark, tmp_path, kind):
    # As the local engine: rows whose tenant id is missing or blank (hive's folder for missing values names no
    # tenant) are counted, not built as a tenant; stored tenants absent from the input are named.
    mail = generate(tenants=3, days=4, scale=0.05, random_state=7)
    frame = mail.messages.copy()
    frame["tenant_id"] = frame["tenant_id"].astype(object)
    frame.loc[frame.index[:3], "tenant_id"] = None
    if kind == "frame":
        frame.loc[frame.index[3:5], "tenant_id"] = "  "
        frame.loc[frame.index[5:6], "tenant_id"] = "\u00a0"  # Unicode white space is blank on both engines
    later = frame[frame["tenant_id"] != "tenant-02"]
    if kind == "hive":
        source = tmp_path / "archive"
        later.to_parquet(source, partition_cols=["tenant_id"])
        assert (source / "tenant_id=__HIVE_DEFAULT_PARTITION__").is_dir()
        inputs = {"local": source, "spark": source}
    else:
        inputs = {"local": later, "spark": spark.createDataFrame(later.astype({"timestamp": str, "labeled_at": str}))}
    reports = {}
    for engine in ("local", "spark"):
        store = tmp_path / engine
        run_refresh(mail.messages, store=store, as_of="2025-01-09", tenant_configs=mail.tenants, tenants=["tenant-02"])
        reports[engine] = run_refresh(inputs[engine], store=store, as_of="2025-01-10", tenant_configs=mail.tenants,
                                      engine=engine)
    local, remote = reports["local"], reports["spark"]
    assert local.rows_without_tenant == (3 if kind == "hive" else 6) and local.not_in_input == ("tenant-02",)
    assert (remote.rows_without_tenant, remote.not_in_input) == (local.rows_without_tenant, local.not_in_input)
    columns = ["tenant_id", "status", "version", "rows_read", "rows_rejected", "error"]
    assert remote.table()[columns].equals(local.table()[columns])


def _both_engines(inputs, tmp_path: Path, configs, **options) -> dict[str, list[tuple]]:
    """Each engine's outcomes (tenant, status, error's first words) and its store, on the same input."""
    found = {}
    for engine in ("local", "spark"):
        report = run_refresh(inputs, store=tmp_path / engine, as_of=AS_OF, tenant_configs=configs, engine=engine,
                             **options)
        found[engine] = [(o.tenant_id, o.status, (o.error or "").split(":")[0]) for o in report.outcomes]
    return found


@pytest.mark.parametrize("copies, whole, listed", [
    ("b.parquet", "a.parquet", True),  # the list [b, a]: its order, not the names'
    ("a b.parquet", "a!b.parquet", False),  # a directory: path order (" " < "!"; a URI's "%20" > "!")
    ("a!b.parquet", "a+b.parquet", False),  # ("+" is a path's "+", not a space)
])
def test_spark_takes_copies_of_a_message_in_the_order_of_the_local_read(spark, archive, tmp_path, copies, whole,
                                                                       listed):
    # Spark ordered rows by file name, the local read by the list's order: given [b, a] with b holding copies
    # labelled attack, the engines kept different copies and published different snapshots. Then a directory's
    # files by their URI, where a local read takes them by path: names with spaces took another order.
    from commgraph.graph._readers import parquet_dataset

    path, configs = archive
    folder = tmp_path / "in"
    folder.mkdir()
    rows = parquet_dataset(path / "tenant_id=tenant-03").to_table().to_pandas().assign(tenant_id="tenant-03")
    rows.to_parquet(folder / whole, index=False)
    rows.iloc[:20].assign(label="attack", labeled_at=rows["timestamp"].iloc[:20]).to_parquet(
        folder / copies, index=False)
    found = _both_engines([folder / copies, folder / whole] if listed else folder, tmp_path, configs)
    assert found["spark"] == found["local"] == [("tenant-03", "published", "")]
    local, shuffled = SnapshotStore(tmp_path / "local").load("tenant-03"), SnapshotStore(tmp_path / "spark").load(
        "tenant-03")
    assert local.table("tenant")["n_attack"].sum() >= 20  # the labelled copies came first
    assert table_differences(local, shuffled, rtol=1e-9) == [] and local.fingerprint == shuffled.fingerprint


def test_one_tenant_s_partition_folder_reads_its_tenant_from_its_path_on_both_engines(spark, archive, tmp_path):
    # A folder that is itself a partition (archive/tenant_id=t) lost the tenant its path names: every row
    # rejected locally for a missing tenant_id. Both engines read it as the whole archive's read does.
    path, configs = archive
    found = _both_engines(path / "tenant_id=tenant-03", tmp_path, configs)
    assert found["spark"] == found["local"] == [("tenant-03", "published", "")]
    local, shuffled = SnapshotStore(tmp_path / "local").load("tenant-03"), SnapshotStore(tmp_path / "spark").load(
        "tenant-03")
    assert table_differences(local, shuffled, rtol=1e-9) == [] and local.fingerprint == shuffled.fingerprint


def _copy_with_tenant_02_day(path, tmp_path):
    """A copy of the archive to spoil, and the first day folder of tenant-02 in it."""
    import shutil

    hive = tmp_path / "hive"
    shutil.copytree(path, hive)
    return hive, next((hive / "tenant_id=tenant-02").iterdir())


def test_spark_fails_a_tenant_alone_for_an_unreadable_file_and_reads_float_tenant_ids_as_locally(
        spark, archive, tmp_path):
    # A corrupt file in one tenant's folder stopped the whole Spark job from the driver (the local engine fails
    # that tenant alone); tenant ids in a float column (1.0 beside a missing value) were tenant '1.0' to both
    # engines' listing and '1' to validation, so every tenant failed.
    path, configs = archive
    hive, day = _copy_with_tenant_02_day(path, tmp_path)
    (day / "zz.parquet").write_bytes(b"PAR1 not parquet PAR1")
    found = _both_engines(hive, tmp_path / "corrupt", configs)
    assert found["spark"] == found["local"]
    assert ("tenant-02", "failed", "commgraph.graph._errors.CommGraphError") in found["spark"]
    assert ("tenant-01", "published", "") in found["spark"]
    from commgraph.graph._readers import parquet_dataset

    rows = parquet_dataset(path).to_table().to_pandas()
    rows = rows[rows["tenant_id"].isin(["tenant-01", "tenant-03"])]
    rows["tenant_id"] = rows["tenant_id"].str[-1].astype(float)
    rows.loc[rows.index[:1], "tenant_id"] = float("nan")
    rows.to_parquet(tmp_path / "floats.parquet", index=False)
    numbered = [TenantConfig(c.tenant_id[-1], own_domains=c.own_domains) for c in configs
                if c.tenant_id in ("tenant-01", "tenant-03")]
    found = _both_engines(tmp_path / "floats.parquet", tmp_path / "floats", numbered)
    assert found["spark"] == found["local"] == [("1", "published", ""), ("3", "published", "")]


def test_a_file_whose_tenant_column_disagrees_with_its_partition_folder_is_refused_by_both_engines(
        spark, archive, tmp_path):
    # Both engines read the rows of tenant_id=tenant-02/ as tenant-02's mail whatever their own tenant_id column
    # said: tenant-01's messages were counted as tenant-02's. Both now fail that folder's tenant alone, naming why.
    path, configs = archive
    hive, day = _copy_with_tenant_02_day(path, tmp_path)
    rows = pq.read_table(next(day.glob("*.parquet"))).slice(0, 3).to_pandas()
    pq.write_table(pa.Table.from_pandas(rows.assign(tenant_id="tenant-01"), preserve_index=False), day / "zz.parquet")
    found = {}
    for engine in ("local", "spark"):
        report = run_refresh(hive, store=tmp_path / engine, as_of=AS_OF, tenant_configs=configs, engine=engine)
        found[engine] = {o.tenant_id: (o.status, o.error or "") for o in report.outcomes}
    assert found["spark"] == found["local"]
    status, error = found["spark"]["tenant-02"]
    assert status == "failed" and "zz.parquet lies in the partition folder tenant_id=tenant-02" in error
    assert "file row 0 'tenant-01'" in error and found["spark"]["tenant-01"][0] == "published"


def _in_unit(rows: pd.DataFrame, unit: str) -> pa.Table:
    table = pa.Table.from_pandas(rows, preserve_index=False)
    for name in ("timestamp", "labeled_at"):
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, table.column(name).cast(pa.timestamp(unit, tz="UTC"), safe=False))
    return table


@pytest.mark.parametrize("layout", ["files", "by-day"])
def test_spark_reads_times_stored_in_several_units_as_the_local_engine_does(spark, archive, tmp_path, layout):
    # An archive whose files hold timestamp and labeled_at in milliseconds, microseconds and nanoseconds (exports
    # of several tools): the local engine reads them, Spark failed the whole job reading a file in nanoseconds
    # as the timestamps of the first ("Expected Spark type timestamp, actual Parquet type INT64").
    from commgraph.graph._readers import parquet_dataset

    path, configs = archive
    rows = parquet_dataset(path).to_table().to_pandas()
    rows = rows[rows["tenant_id"].isin(GOOD)].reset_index(drop=True)
    mixed = tmp_path / "mixed"
    thirds = [rows.iloc[i::3] for i in range(3)]
    if layout == "files":
        mixed.mkdir()
        for name, unit, part in zip(("a", "b", "c"), ("ms", "ns", "us"), thirds):
            pq.write_table(_in_unit(part, unit), mixed / f"{name}.parquet")
    else:  # by day then tenant: not partitioned by tenant, so shuffled; the days' files in several units
        for unit, part in zip(("ms", "ns", "us"), thirds):
            write_hive(_in_unit(part, unit), mixed, ["date", "tenant_id"], basename=f"{unit}-0.parquet")
    found = _both_engines(mixed, tmp_path, configs, chunk_rows=2000)
    assert found["spark"] == found["local"] == [(t, "published", "") for t in GOOD]
    for tenant in GOOD:
        a, b = SnapshotStore(tmp_path / "local").load(tenant), SnapshotStore(tmp_path / "spark").load(tenant)
        assert a.fingerprint == b.fingerprint and table_differences(a, b, rtol=1e-9) == [], tenant
        assert state_differences(a, b) == [], tenant


def test_spark_reads_a_placeholder_date_beside_nanoseconds_as_the_local_engine_does(spark, archive, tmp_path):
    # A millisecond file holding 9999-12-31 (a time nanoseconds cannot hold) beside nanosecond files: both
    # engines read the column in microseconds and refuse the placeholder row alone; when the nanosecond times
    # are not whole microseconds, both refuse the files up front, naming them.
    from commgraph.graph._readers import parquet_dataset

    path, configs = archive
    rows = parquet_dataset(path / "tenant_id=tenant-03").to_table().to_pandas().assign(tenant_id="tenant-03")
    rows["timestamp"] = rows["timestamp"].dt.floor("us")
    rows["labeled_at"] = rows["labeled_at"].dt.floor("us")
    folder = tmp_path / "far"
    folder.mkdir()
    pq.write_table(_in_unit(rows.iloc[1:], "ns"), folder / "a.parquet")
    far = pa.Table.from_pandas(rows.iloc[:1], preserve_index=False)
    at = far.schema.get_field_index("timestamp")
    far = far.set_column(at, "timestamp", pa.array([253402214400000], pa.timestamp("ms", tz="UTC")))  # 9999-12-31
    at = far.schema.get_field_index("labeled_at")
    pq.write_table(far.set_column(at, "labeled_at", far.column(at).cast(pa.timestamp("ms", tz="UTC"))),
                   folder / "b.parquet")
    reports = {engine: run_refresh(folder, store=tmp_path / engine, as_of=AS_OF, tenant_configs=configs,
                                   engine=engine) for engine in ("local", "spark")}
    columns = ["tenant_id", "status", "version", "rows_read", "rows_rejected", "error"]
    assert reports["spark"].table()[columns].equals(reports["local"].table()[columns])
    assert reports["local"].outcomes[0].rejects_by_reason == reports["spark"].outcomes[0].rejects_by_reason == {
        "timestamp_out_of_range": 1}
    a, b = SnapshotStore(tmp_path / "local").load("tenant-03"), SnapshotStore(tmp_path / "spark").load("tenant-03")
    assert a.fingerprint == b.fingerprint and table_differences(a, b, rtol=1e-9) == []
    pq.write_table(_in_unit(rows.iloc[1:].assign(timestamp=rows["timestamp"] + pd.Timedelta("1ns")), "ns"),
                   folder / "a.parquet")
    for engine in ("local", "spark"):
        with pytest.raises(ConfigError, match=r"disagree on the unit of column 'timestamp': .*b.parquet .*a.parquet"):
            run_refresh(folder, store=tmp_path / f"{engine}-2", as_of=AS_OF, tenant_configs=configs, engine=engine)


def test_spark_refuses_int96_times_beside_nanoseconds_naming_the_files(spark, archive, tmp_path):
    from commgraph.graph._readers import parquet_dataset

    rows = parquet_dataset(archive[0] / "tenant_id=tenant-03").to_table().to_pandas().assign(tenant_id="tenant-03")
    rows["timestamp"] = rows["timestamp"].dt.tz_localize(None)
    rows["labeled_at"] = rows["labeled_at"].dt.tz_localize(None)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pandas(rows.iloc[:5], preserve_index=False), tmp_path / "in" / "a.parquet",
                   use_deprecated_int96_timestamps=True)
    pq.write_table(pa.Table.from_pandas(rows.iloc[5:], preserve_index=False), tmp_path / "in" / "b.parquet")
    # (Spark reads INT96 as times only, and nanoseconds as integers only: it failed the scan)
    with pytest.raises(ConfigError, match=r"as INT96 \(.*a.parquet\) and in nanoseconds \(.*b.parquet"):
        run_refresh(tmp_path / "in", store=tmp_path / "s", as_of=AS_OF, engine="spark")


def test_spark_refuses_one_row_per_recipient_up_front(spark, tmp_path):
    # Rows of a message are gathered only by a whole read: every tenant failed, told to read "without chunksize".
    pd.DataFrame({"tenant_id": "t", "message_id": ["m1", "m1"], "timestamp": pd.Timestamp("2025-01-10", tz="UTC"),
                  "sender": "a@x.com", "recipient": ["b@t.com", "c@t.com"]}).to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(ConfigError, match=r"one row per message .* one row per recipient \('recipient'\)"):
        run_refresh(tmp_path / "rows.parquet", store=tmp_path / "store", as_of=AS_OF, engine="spark")
