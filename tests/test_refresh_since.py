"""Incremental refreshes read only the mail since the current snapshot (plus late labels): the reader's
``since`` against a full read filtered with pandas, and the job against a full rebuild."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_hive
from hypothesis import given, settings, strategies as st

from commgraph.baselines import SnapshotStore, build_baselines, refresh, run_refresh
from commgraph.graph import generate, read_messages, validate

PREVIOUS = pd.Timestamp("2025-01-12T00:00Z")
AS_OF = pd.Timestamp("2025-01-14T00:00Z")
INFERRED = "tenant-03"  # no configured own domains and no direction: validation infers them


@pytest.fixture(scope="module")
def mail():
    return generate(tenants=3, days=10, scale=0.1, random_state=3)


@pytest.fixture(scope="module")
def frame(mail):
    """The mail with late labels: old messages (before PREVIOUS) labelled between PREVIOUS and AS_OF, one
    labelled after AS_OF, and the direction of one unconfigured tenant left to inference."""
    frame = mail.messages.copy()
    old = np.flatnonzero((frame["timestamp"] < PREVIOUS - pd.Timedelta(days=2)).to_numpy()
                         & frame["label"].isna().to_numpy())
    late = old[::97]
    assert len(late) >= 10
    frame.loc[frame.index[late], "label"] = "attack"
    frame.loc[frame.index[late], "labeled_at"] = PREVIOUS + pd.Timedelta(hours=5)
    frame.loc[frame.index[old[1]], "label"] = "attack"
    frame.loc[frame.index[old[1]], "labeled_at"] = AS_OF + pd.Timedelta(hours=1)
    frame["direction"] = frame["direction"].astype(object).where(frame["tenant_id"] != INFERRED, None)
    frame["date"] = frame["timestamp"].dt.strftime("%Y-%m-%d")
    return frame


@pytest.fixture(scope="module")
def archive(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("since") / "mail"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_hive(table, path, ["tenant_id", "date"], row_group_size=64)
    return path


@pytest.fixture(scope="module")
def configs(mail):
    return [c for c in mail.tenants if c.tenant_id != INFERRED]


def _since(frame: pd.DataFrame, since: pd.Timestamp, timestamp="timestamp", labeled_at="labeled_at") -> np.ndarray:
    return ((frame[timestamp] >= since) | (frame[labeled_at] >= since) | frame[timestamp].isna()).to_numpy(dtype=bool)


def _read(source, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_messages(source, strict=False, **kwargs)


def _same_rows(filtered, whole, keep: np.ndarray) -> None:
    """``filtered``'s messages are ``whole``'s kept ones, with the same row numbers in the same files."""
    expected = whole.frame[keep]
    got = filtered.frame
    assert got["message_id"].astype(str).tolist() == expected["message_id"].astype(str).tolist()
    assert got.index.tolist() == expected.index.tolist()
    assert got["source_file"].astype(str).tolist() == expected["source_file"].astype(str).tolist()
    pd.testing.assert_series_equal(got["timestamp"], expected["timestamp"])


@settings(max_examples=8, deadline=None)
@given(hours=st.integers(min_value=-24, max_value=24 * 12))
def test_since_reads_exactly_the_rows_a_pandas_filter_keeps(archive, configs, hours):
    since = PREVIOUS + pd.Timedelta(hours=hours)
    whole = _read(archive, tenants=configs, only_tenants=["tenant-01", "tenant-02"])
    filtered = _read(archive, tenants=configs, only_tenants=["tenant-01", "tenant-02"], since=since)
    _same_rows(filtered, whole, _since(whole.frame, since))


def test_since_keeps_row_numbers_of_rejects_and_honours_the_column_mapping(tmp_path, frame, configs):
    raw = frame[frame["tenant_id"] == "tenant-01"].drop(columns="date").reset_index(drop=True)
    late_bad = raw.index[(raw["timestamp"] >= PREVIOUS).to_numpy()][3]
    old_bad = raw.index[(raw["timestamp"] < PREVIOUS).to_numpy()][3]
    raw.loc[[late_bad, old_bad], "sender"] = "not an address"
    renamed = raw.rename(columns={"timestamp": "sent_at", "labeled_at": "label_time"})
    path = tmp_path / "mail.parquet"
    pq.write_table(pa.Table.from_pandas(renamed, preserve_index=False), path, row_group_size=50)
    mapping = {"timestamp": "sent_at", "labeled_at": "label_time"}
    whole = _read(path, columns=mapping, tenants=configs)
    filtered = _read(path, columns=mapping, tenants=configs, since=PREVIOUS)
    _same_rows(filtered, whole, _since(whole.frame, PREVIOUS))
    # The reject among the rows read is named by its row in the file; the older one is not read.
    assert filtered.rejects.index.tolist() == [late_bad]
    assert sorted(whole.rejects.index.tolist()) == sorted([late_bad, old_bad])
    # Exactly the row groups holding a row sent or labelled since are read (statistics hold exact maxima).
    from commgraph.graph._readers import _pruned, _SinceFilter, parquet_dataset

    pruned, first_rows = _pruned(parquet_dataset(path), _SinceFilter(PREVIOUS, mapping))
    needed = sorted(set(np.flatnonzero(_since(renamed, PREVIOUS, "sent_at", "label_time")) // 50))
    assert sorted(group for _, group in first_rows) == needed
    assert {group: row for (_, group), row in first_rows.items()} == {g: 50 * g for g in needed}
    assert 0 < len(needed) < pq.ParquetFile(path).num_row_groups
    # A row without a timestamp is read wherever it is (validation rejects it, naming why), never dropped unseen.
    missing = raw.index[(raw["timestamp"] < PREVIOUS).to_numpy()][7]
    holed = pa.Table.from_pandas(renamed.assign(sent_at=renamed["sent_at"].mask(renamed.index == missing)),
                                 preserve_index=False)
    pq.write_table(holed, tmp_path / "holed.parquet", row_group_size=50)
    rejects = _read(tmp_path / "holed.parquet", columns=mapping, tenants=configs, since=PREVIOUS).rejects
    assert sorted(rejects.index.tolist()) == sorted([late_bad, missing])
    # Nothing since: no row group is read, and the result is empty with its columns.
    assert len(_read(path, columns=mapping, tenants=configs, since="2030-01-01")) == 0


def test_since_reads_row_groups_whose_labeled_at_has_no_statistics(tmp_path, frame, configs):
    # Writers may skip statistics per column: a row group of old mail whose labeled_at has none may hold a
    # label given since, so it is read (only a file without the column holds no label).
    raw = frame[frame["tenant_id"] == "tenant-01"].drop(columns="date").reset_index(drop=True)
    labelled_since = (raw["labeled_at"] >= PREVIOUS) & (raw["timestamp"] < PREVIOUS)
    assert labelled_since.any()
    table = pa.Table.from_pandas(raw, preserve_index=False)
    path = tmp_path / "mail.parquet"
    pq.write_table(table, path, row_group_size=50,
                   write_statistics=[c for c in table.column_names if c != "labeled_at"])
    assert pq.ParquetFile(path).metadata.row_group(0).column(table.column_names.index("labeled_at")).statistics \
        is None
    whole = _read(path, tenants=configs)
    filtered = _read(path, tenants=configs, since=PREVIOUS)
    _same_rows(filtered, whole, _since(whole.frame, PREVIOUS))
    assert set(raw.loc[labelled_since, "message_id"]) <= set(filtered.frame["message_id"].astype(str))


@pytest.mark.parametrize("column", ["timestamp", "labeled_at"])
def test_since_keeps_far_future_placeholders_for_validation_to_reject(tmp_path, frame, configs, column):
    # Microsecond columns (as pandas 3 and Spark write them) may hold a 9999-12-31 "never": out of the
    # nanosecond range, so a comparison in nanoseconds would fail; validation rejects it, naming why.
    raw = frame[frame["tenant_id"] == "tenant-01"].drop(columns="date").reset_index(drop=True)
    table = pa.Table.from_pandas(raw, preserve_index=False)
    micro = pa.timestamp("us", tz="UTC")
    for name in ("timestamp", "labeled_at"):
        table = table.set_column(table.column_names.index(name), name, table.column(name).cast(micro, safe=False))
    values = table.column(column).to_pylist()
    old = int(np.flatnonzero((raw["timestamp"] < PREVIOUS).to_numpy())[5])
    values[old] = pd.Timestamp("9999-12-31").to_pydatetime()
    table = table.set_column(table.column_names.index(column), column, pa.array(values, micro))
    path = tmp_path / "mail.parquet"
    pq.write_table(table, path, row_group_size=50)
    whole = _read(path, tenants=configs)
    filtered = _read(path, tenants=configs, since=PREVIOUS)
    assert old in whole.rejects.index and old in filtered.rejects.index
    assert (whole.rejects.loc[old, "reject_reason"] == filtered.rejects.loc[old, "reject_reason"]
            == "timestamp_out_of_range")
    _same_rows(filtered, whole, _since(whole.frame, PREVIOUS))


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("time_range", ["default", None, ("1900-01-01", "2500-01-01")])
def test_since_reads_old_rows_whose_times_validation_refuses(tmp_path, kind, time_range):
    # A 1980 placeholder (timestamp or labeled_at) is refused by validation's time range: every input
    # reads it, so the since read rejects it as the whole read does (a range that admits it reads neither).
    raw = pd.DataFrame({"tenant_id": "t", "message_id": ["ph", "lab", "old", "new"],
                        "timestamp": ["1980-01-01T00:00Z", "2024-05-01T10:00Z", "2024-05-01T11:00Z",
                                      "2024-05-03T10:00Z"],
                        "sender": "x@out.com", "recipients": "u@a.com", "label": [None, "attack", None, None],
                        "labeled_at": [None, "1980-01-01T00:00Z", None, None]})
    path = tmp_path / f"mail.{kind}"
    if kind == "csv":
        raw.to_csv(path, index=False)
    else:
        raw.assign(timestamp=pd.to_datetime(raw["timestamp"], utc=True),
                   labeled_at=pd.to_datetime(raw["labeled_at"], utc=True)).to_parquet(path)
    options = {} if time_range == "default" else {"time_range": time_range}
    tenants = [{"tenant_id": "t", "own_domains": ["a.com"]}]
    whole = _read(path, tenants=tenants, **options)
    filtered = _read(path, tenants=tenants, since="2024-05-02T00:00Z", **options)
    def out_of_range(m):
        return sorted(m.rejects["message_id"][m.rejects["reject_reason"] == "timestamp_out_of_range"].astype(str))

    assert out_of_range(whole) == out_of_range(filtered) == (["lab", "ph"] if time_range == "default" else [])
    assert filtered.frame["message_id"].astype(str).tolist() == ["new"]


def _edge(message_id: str, sent: str, recipient: str, **more) -> dict:
    return {"tenant_id": "t", "message_id": message_id, "timestamp": sent, "sender": "x@out.com",
            "recipient": recipient, "label": more.get("label"), "labeled_at": more.get("labeled_at")}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_rows_of_a_message_on_both_sides_of_since_are_judged_together(tmp_path, kind):
    # Validation judges a message's rows together: a row that disagrees with its message's first row (m1 labelled
    # on one row only, m2 sent on both sides of since) is another copy of the id, and so is a later copy of a
    # message (m4, here the other tenant's m4 is not). Filtered row by row, a since read would accept
    # the kept halves; it keeps every row of a message with a row kept, so it rejects what a whole read does.
    rows = pd.DataFrame([
        _edge("m1", "2024-05-01T10:00Z", "u@a.com", label="attack", labeled_at="2024-05-03T09:00Z"),
        _edge("m1", "2024-05-01T10:00Z", "v@a.com", label="attack"),
        _edge("m2", "2024-05-01T23:59Z", "u@a.com"), _edge("m2", "2024-05-02T00:01Z", "v@a.com"),
        _edge("m3", "2024-05-03T10:00Z", "u@a.com")])
    copies = pd.DataFrame({"tenant_id": ["t", "t", "t", "s"], "message_id": [" m4", "m5", "m4", "m4"],
                           "timestamp": ["2024-05-01T08:00Z", "2024-05-01T09:00Z", "2024-05-03T08:00Z",
                                         "2024-05-03T09:00Z"],
                           "sender": "x@out.com", "recipients": "u@a.com"})
    tenants = [{"tenant_id": "t", "own_domains": ["a.com"]}, {"tenant_id": "s", "own_domains": ["a.com"]}]
    since = pd.Timestamp("2024-05-02T00:00Z")
    for name, frame in (("edges", rows), ("copies", copies)):
        path = tmp_path / f"{name}.{kind}"
        if kind == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.assign(**{c: pd.to_datetime(frame[c], utc=True) for c in ("timestamp", "labeled_at")
                            if c in frame}).to_parquet(path)
        whole, filtered = _read(path, tenants=tenants), _read(path, tenants=tenants, since=since)
        # Every reject of a message with a row sent or labelled since is the whole read's, for the same reason.
        expected = whole.rejects[whole.rejects["message_id"].astype(str).str.strip().isin(
            filtered.rejects["message_id"].astype(str).str.strip())]
        assert sorted(filtered.rejects.index) == sorted(expected.index)
        assert filtered.rejects["reject_reason"].astype(str).tolist() == \
            expected.loc[filtered.rejects.index, "reject_reason"].astype(str).tolist()
        reasons = dict(zip(filtered.rejects["message_id"].astype(str).str.strip() + "@"
                           + filtered.rejects["tenant_id"].astype(str), filtered.rejects["reject_reason"].astype(str)))
        assert reasons == ({"m1@t": "duplicate_message_id", "m2@t": "duplicate_message_id"} if name == "edges"
                           else {"m4@t": "duplicate_message_id"})
        assert sorted(filtered.frame["message_id"].astype(str).str.strip()) == (
            # m1 and m2 as their first rows say (m2 older, not counted again); t's first m4 (so) and s's
            ["m1", "m2", "m3"] if name == "edges" else ["m4", "m4"])


def test_since_filters_every_other_input_as_validation_reads_its_times(tmp_path, frame, configs):
    raw = frame[frame["tenant_id"] == "tenant-01"].drop(columns="date").reset_index(drop=True)
    whole = _read(raw, tenants=configs)
    keep = _since(whole.frame, PREVIOUS)
    assert 0 < keep.sum() < len(keep)
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    text = raw.assign(timestamp=raw["timestamp"].dt.strftime(iso),
                      labeled_at=raw["labeled_at"].dt.strftime(iso).astype(object).where(raw["labeled_at"].notna()))
    paris = raw.assign(timestamp=raw["timestamp"].dt.tz_convert("Europe/Paris").dt.tz_localize(None),
                       labeled_at=raw["labeled_at"].dt.tz_convert("Europe/Paris").dt.tz_localize(None))
    epoch = raw.assign(timestamp=raw["timestamp"].astype("int64") // 10**9)
    raw.to_parquet(tmp_path / "zoned.parquet")
    paris.to_parquet(tmp_path / "naive.parquet")
    text.to_csv(tmp_path / "mail.csv", index=False)
    text.to_json(tmp_path / "mail.jsonl", orient="records", lines=True)
    sources = {"dataframe": (raw, {}), "text dataframe": (text, {}), "epoch seconds": (epoch, {}),
               "naive in a zone": (paris, {"timezone": "Europe/Paris"}),
               "naive parquet": (tmp_path / "naive.parquet", {"timezone": "Europe/Paris"}),
               "csv": (tmp_path / "mail.csv", {}), "json lines": (tmp_path / "mail.jsonl", {})}
    for name, (source, options) in sources.items():
        got = _read(source, tenants=configs, since=PREVIOUS, **options)
        assert got.frame["message_id"].astype(str).tolist() == \
            whole.frame["message_id"][keep].astype(str).tolist(), name
        assert got.frame.index.tolist() == whole.frame.index[keep].tolist(), name
    chunks = _read(tmp_path / "zoned.parquet", tenants=configs, since=PREVIOUS, chunksize=40)
    assert [i for m in chunks for i in m.frame["message_id"].astype(str)] == \
        whole.frame["message_id"][keep].astype(str).tolist()
    # Times validation refuses stay, so that it rejects them with their reason; an old, unlabelled row goes.
    old = np.flatnonzero(~keep & whole.frame["labeled_at"].isna().to_numpy())
    broken = text.copy()
    broken.loc[old[0], "timestamp"] = "soon"
    broken.loc[old[1], "labeled_at"] = "not a time"
    broken.loc[old[2], "timestamp"] = "1980-01-01T00:00:00Z"
    broken.loc[old[3], "labeled_at"] = " "  # blank: no label time (it kept the old row, read as refused)
    got = _read(broken, tenants=configs, since=PREVIOUS)
    assert sorted(got.rejects.index.tolist()) == sorted(old[:3].tolist())
    assert dict(zip(got.rejects.index, got.rejects["reject_reason"])) == {
        old[0]: "unparseable_timestamp", old[1]: "unparseable_timestamp", old[2]: "timestamp_out_of_range"}
    assert len(got.frame) == int(keep.sum())


def _tables(store: SnapshotStore, tenant: str) -> dict[str, pd.DataFrame]:
    snapshot = store.load(tenant)
    return {name: snapshot.table(name) for name in snapshot.tables}


def test_incremental_job_reading_since_equals_a_full_job_and_the_whole_read(tmp_path, archive, frame, configs):
    tenants = sorted(frame["tenant_id"].unique())
    stores = {name: tmp_path / name for name in ("since", "whole", "full")}
    for name in ("since", "whole"):
        assert run_refresh(archive, store=stores[name], as_of=PREVIOUS, tenant_configs=configs).exit_code == 0
    # The whole-read incremental path: the same mail handed over as a DataFrame, read whole.
    whole_input = frame.drop(columns="date")
    since_report = run_refresh(archive, store=stores["since"], as_of=AS_OF, tenant_configs=configs, incremental=True)
    whole_report = run_refresh(whole_input, store=stores["whole"], as_of=AS_OF, tenant_configs=configs,
                               incremental=True)
    full_report = run_refresh(archive, store=stores["full"], as_of=AS_OF, tenant_configs=configs)
    assert {o.mode for o in since_report.outcomes} == {"incremental"}
    assert {o.mode for o in full_report.outcomes} == {"full"}
    for tenant in tenants:
        expected = _tables(SnapshotStore(stores["full"]), tenant)
        for name in ("since", "whole"):
            got = _tables(SnapshotStore(stores[name]), tenant)
            assert got.keys() == expected.keys()
            for table in expected:
                pd.testing.assert_frame_equal(got[table], expected[table], obj=f"{name} {tenant} {table}")
    # Rows read: the period's mail and the late labels; the tenant whose own domains are inferred, all its mail.
    read = {o.tenant_id: o.rows_read for o in since_report.outcomes}
    for tenant in tenants:
        own = frame[frame["tenant_id"] == tenant]
        expected_rows = len(own) if tenant == INFERRED else int(_since(own, PREVIOUS).sum())
        assert read[tenant] == expected_rows, tenant
    assert read["tenant-01"] < len(frame[frame["tenant_id"] == "tenant-01"])


def test_late_labels_on_old_mail_change_the_refresh(archive, frame, configs):
    # Without the late-label rows (only the mail sent since), the refresh would differ from the rebuild:
    # a reader that left them out would fail the test above. Each tenant alone, as the job builds it.
    for config in configs:
        tenant = config.tenant_id
        own = frame[frame["tenant_id"] == tenant].drop(columns="date")
        messages = validate(own, tenants=[config])
        previous = build_baselines(messages, as_of=PREVIOUS)[tenant]
        rebuilt = build_baselines(messages, as_of=AS_OF)[tenant]
        with_labels = _read(archive, tenants=[config], only_tenants=[tenant], since=PREVIOUS)
        without_labels = validate(own[own["timestamp"] >= PREVIOUS], tenants=[config])
        assert len(with_labels) > len(without_labels)
        assert refresh(previous, with_labels, as_of=AS_OF).equals(rebuilt)
        assert not refresh(previous, without_labels, as_of=AS_OF).equals(rebuilt)
