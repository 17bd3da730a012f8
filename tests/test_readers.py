"""Readers: every source form gives the same messages; chunks equal the whole."""

from __future__ import annotations

import gc
import gzip
import json
import warnings
import weakref

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, strategies as st

from commgraph.graph import (ConfigError, InferredOwnDomainsWarning, Messages, SchemaError, read_frame, read_messages,
                             validate)
from commgraph.graph import _readers as readers, _validate as validation
from commgraph.graph._messages import REJECT_COLUMNS


def mail(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "tenant_id": ["acme" if i % 3 else "beta" for i in range(n)],
        "message_id": [f"m{i}" for i in range(n)],
        "timestamp": [f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:00:00Z" for i in range(n)],
        "sender": [f"user{i % 7}@acme.com" if i % 2 else f"ext{i % 5}@vendor.com" for i in range(n)],
        "recipients": [f"user{(i + 1) % 7}@acme.com;ext{i % 3}@vendor.com" for i in range(n)],
        "direction": ["outbound" if i % 2 else "inbound" for i in range(n)],
    })


def same(a: Messages, b: Messages) -> None:
    cols = [c for c in a.frame.columns if c != "source_file"]
    pd.testing.assert_frame_equal(a.frame[cols].reset_index(drop=True), b.frame[cols].reset_index(drop=True))
    # Categories follow first appearance, which differs between chunks and the whole.
    pd.testing.assert_frame_equal(a.edges(), b.edges(), check_categorical=False)


def test_parquet_csv_jsonl_records_and_frame_agree(tmp_path):
    raw = mail()
    raw.to_parquet(tmp_path / "m.parquet")
    raw.to_csv(tmp_path / "m.csv.gz", index=False)
    raw.to_json(tmp_path / "m.jsonl", orient="records", lines=True)
    whole = read_messages(raw)
    for source in (tmp_path / "m.parquet", tmp_path / "m.csv.gz", tmp_path / "m.jsonl", raw.to_dict("records")):
        same(whole, read_messages(source))
    assert read_messages(tmp_path / "m.csv.gz").frame["source_file"].iloc[0].endswith("m.csv.gz")


def test_hive_partitioned_directory_and_globs(tmp_path):
    raw = mail()
    raw.assign(day=raw["timestamp"].str[:10]).to_parquet(tmp_path / "archive", partition_cols=["tenant_id", "day"])
    m = read_messages(tmp_path / "archive")
    assert len(m) == len(raw) and set(m.tenants) == {"acme", "beta"}
    assert sorted(m.frame["message_id"]) == sorted(raw["message_id"])
    globbed = read_messages(str(tmp_path / "archive" / "tenant_id=beta" / "*" / "*.parquet"))
    assert set(globbed.tenants) == {"beta"} and len(globbed) == (raw["tenant_id"] == "beta").sum()
    # One partition's folder keeps the values its own path names (tenant_id was missing: every row rejected),
    # given relative or absolute.
    import os

    whole = read_messages(tmp_path / "archive" / "tenant_id=beta")
    assert set(whole.tenants) == {"beta"} and len(whole) == len(globbed) and not len(whole.rejects)
    day = sorted(raw.loc[raw["tenant_id"] == "beta", "timestamp"].str[:10])[0]
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "archive")
        one_day = read_messages(f"tenant_id=beta/day={day}")
    finally:
        os.chdir(cwd)
    assert set(one_day.tenants) == {"beta"} and len(one_day) == ((raw["tenant_id"] == "beta")
                                                                 & raw["timestamp"].str.startswith(day)).sum()
    # Only the partition folders the directory is count: a folder named like one further up names nothing (an
    # archive under /exports/run=3/ gained a 'run' column; one under tenant_id=x/ overrode its files' tenants).
    outer = tmp_path / "run=3" / "tenant_id=zeta" / "mail"
    outer.mkdir(parents=True)
    raw.to_parquet(outer / "part.parquet")
    whole = read_messages(outer)
    assert "run" not in whole.frame.columns and set(whole.tenants) == {"acme", "beta"}


def test_file_whose_tenant_column_disagrees_with_its_partition_folder_is_refused(tmp_path):
    # A scan gave every row of tenant_id=acme/ the folder's tenant, whatever the file's own column said: globex's
    # mail was read as acme's (whole, chunked, one file, strict or not), no reject; globex's read never saw it.
    (tmp_path / "tenant_id=acme").mkdir()
    times = pa.array(pd.to_datetime(["2024-05-02T09:00Z"] * 3), pa.timestamp("ns", tz="UTC"))
    pq.write_table(pa.table({"tenant_id": ["acme", "globex", None], "message_id": ["m1", "m2", "m3"],
                             "timestamp": times, "sender": ["a@acme.com"] * 3, "recipients": ["c@x.com"] * 3,
                             "direction": ["outbound"] * 3}), tmp_path / "tenant_id=acme" / "part-0.parquet")
    reads = [lambda: read_messages(tmp_path), lambda: read_messages(tmp_path, strict=False),
             lambda: list(read_messages(tmp_path, chunksize=1)), lambda: read_messages(tmp_path / "tenant_id=acme"),
             lambda: read_messages(tmp_path / "tenant_id=acme" / "part-0.parquet"),
             lambda: read_messages(tmp_path, only_tenants=["acme"])]
    for read in reads:
        with pytest.raises(ConfigError, match=r"part-0.parquet lies in the partition folder tenant_id=acme .*"
                                              r"1 row \(file row 1 'globex'\).* folder of their own tenant_id=globex"):
            read()
    # A file whose column agrees (or leaves the value to the folder: None) is read as before.
    pq.write_table(pa.table({"tenant_id": [" acme", None], "message_id": ["m1", "m3"], "timestamp": times[:2],
                             "sender": ["a@acme.com"] * 2, "recipients": ["c@x.com"] * 2,
                             "direction": ["outbound"] * 2}), tmp_path / "tenant_id=acme" / "part-0.parquet")
    assert read_messages(tmp_path).frame["tenant_id"].tolist() == ["acme", "acme"]


@pytest.mark.parametrize("first, second", [("ms", "ns"), ("ns", "ms"), ("s", "us")])
def test_files_with_times_in_other_units_read_as_one_archive(tmp_path, first, second):
    # pyarrow cast every file to the first one's unit: a file in milliseconds before one in nanoseconds failed
    # the whole read with "Casting ... would lose data".
    instant = pd.Timestamp("2024-03-01T09:30:00.123456789Z")
    times = {}
    for name, message_id, unit in (("part-0.parquet", "m1", first), ("part-1.parquet", "m2", second)):
        column = pa.array([instant.value], pa.timestamp("ns", tz="UTC")).cast(pa.timestamp(unit, tz="UTC"),
                                                                             safe=False)
        times[message_id] = pd.Timestamp(column.to_pylist()[0])
        pq.write_table(pa.table({"tenant_id": ["t"], "message_id": [message_id], "timestamp": column,
                                 "sender": ["a@ext.com"], "recipients": ["b@acme.com"]}), tmp_path / name)
    m = read_messages(tmp_path, tenants=[{"tenant_id": "t", "own_domains": ["acme.com"]}])
    assert dict(zip(m.frame["message_id"], m.frame["timestamp"])) == times
    # A placeholder nanoseconds cannot hold (9999-12-31, in microseconds) beside a file in nanoseconds: read in
    # microseconds, validation refusing the placeholder alone (the cast failed the read); unless the nanosecond
    # file holds times microseconds cannot either, which is refused naming both files.
    placeholder = pa.array([pd.Timestamp("9999-12-31T00:00Z").to_pydatetime()], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"tenant_id": ["t"], "message_id": ["m0"], "timestamp": placeholder,
                             "sender": ["a@ext.com"], "recipients": ["b@acme.com"]}), tmp_path / "part-00.parquet")
    if "ns" in (first, second):
        with pytest.raises(ConfigError, match="disagree on the unit of column 'timestamp'.*write the files in one"):
            read_messages(tmp_path, tenants=[{"tenant_id": "t", "own_domains": ["acme.com"]}], strict=False)
        return
    m = read_messages(tmp_path, tenants=[{"tenant_id": "t", "own_domains": ["acme.com"]}], strict=False)
    assert sorted(m.frame["message_id"]) == ["m1", "m2"] and m.rejects["reject_reason"].tolist() == [
        "timestamp_out_of_range"]


def test_a_placeholder_beside_nanosecond_times_is_refused_alone(tmp_path):
    whole = pa.array([pd.Timestamp("2024-03-01T09:30:00.123456Z").value], pa.timestamp("ns", tz="UTC"))
    placeholder = pa.array([pd.Timestamp("9999-12-31T00:00Z").to_pydatetime()], pa.timestamp("us", tz="UTC"))
    for name, message_id, column in (("a.parquet", "m0", placeholder), ("b.parquet", "m1", whole)):
        pq.write_table(pa.table({"tenant_id": ["t"], "message_id": [message_id], "timestamp": column,
                                 "sender": ["a@ext.com"], "recipients": ["b@acme.com"]}), tmp_path / name)
    m = read_messages(tmp_path, tenants=[{"tenant_id": "t", "own_domains": ["acme.com"]}], strict=False)
    assert m.frame["message_id"].tolist() == ["m1"] and m.rejects["reject_reason"].tolist() == [
        "timestamp_out_of_range"]
    assert m.frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-01T09:30:00.123456Z")


@pytest.mark.parametrize("since", [None, "2024-05-10T00:00Z"])
def test_a_directory_reads_the_columns_of_every_file_not_only_the_first(tmp_path, since):
    # Labels began later: the first files have no label columns, later ones do (and one adds display names).
    # pyarrow takes a directory's columns from its first file; every file's must be read, or labels vanish.
    raw = mail().assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))
    early, late = raw.iloc[:20], raw.iloc[20:].assign(label="attack", labeled_at=pd.Timestamp("2024-06-01", tz="UTC"))
    folder = tmp_path / "archive"
    folder.mkdir()
    early.to_parquet(folder / "part-0.parquet")
    late.iloc[:10].to_parquet(folder / "part-1.parquet")
    late.iloc[10:].assign(sender_display_name="Vendor Billing").to_parquet(folder / "part-2.parquet")
    got = read_messages(folder, since=since).frame.set_index("message_id")
    expected = validate(pd.concat([early, late.iloc[:10], late.iloc[10:].assign(sender_display_name="Vendor Billing")]),
                        ).frame.set_index("message_id")
    if since is not None:  # sent or labelled since: all of the late files, the early mail sent since
        expected = expected[(expected["timestamp"] >= since) | expected["labeled_at"].notna()]
    assert sorted(got.index) == sorted(expected.index)
    assert got["label"].astype(str).to_dict() == expected.loc[got.index, "label"].astype(str).to_dict()
    assert (got["labeled_at"].notna() == got.index.isin(late["message_id"])).all()
    assert got["sender_display_name"].notna().sum() == expected["sender_display_name"].notna().sum() > 0


def test_a_directory_whose_files_disagree_on_a_time_zone_is_refused(tmp_path):
    # One column cannot hold naive and zoned times: read together, the naive ones would silently be UTC.
    raw = mail().assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))
    folder = tmp_path / "archive"
    folder.mkdir()
    raw.iloc[:20].to_parquet(folder / "part-0.parquet")
    raw.iloc[20:].assign(timestamp=lambda f: f["timestamp"].dt.tz_convert("Europe/Paris").dt.tz_localize(None)) \
        .to_parquet(folder / "part-1.parquet")
    for since in (None, "2024-05-10"):
        with pytest.raises(ConfigError, match=r"disagree on the time zone of column 'timestamp'.*part-0.parquet.*"
                                              r"part-1.parquet"):
            read_messages(folder, since=since, timezone="Europe/Paris")
    # Each kind read apart is read right.
    apart = read_messages(folder / "part-1.parquet", timezone="Europe/Paris")
    assert apart.frame["timestamp"].tolist() == raw["timestamp"].iloc[20:].tolist()


@given(st.integers(min_value=1, max_value=45))
def test_chunks_equal_the_whole(chunksize):
    raw = pd.concat([mail(), mail().iloc[[3, 8]]], ignore_index=True)  # two ids filed twice
    whole = validate(raw, strict=False)
    parts = list(read_messages(raw, chunksize=chunksize, strict=False))
    joined = Messages.concat(parts)
    same(whole, joined)
    assert sorted(joined.rejects["reject_reason"]) == ["duplicate_message_id"] * 2
    assert sorted(joined.rejects.index) == [40, 41]


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=80),
       st.integers(min_value=1, max_value=20))
def test_chunked_reading_rejects_exactly_the_repeats_pandas_finds(ids, chunksize):
    raw = mail(len(ids)).assign(message_id=[f"m{i}" for i in ids])
    repeats = raw.duplicated(["tenant_id", "message_id"])
    parts = list(read_messages(raw, chunksize=chunksize, strict=False))
    rejected = sorted(i for p in parts if p.rejects is not None for i in p.rejects.index)
    assert rejected == sorted(raw.index[repeats])


def test_chunks_of_a_many_file_archive_join_small_files_up_to_the_chunk_size(tmp_path):
    raw = mail(200)
    raw.assign(day=raw["timestamp"].str[:10]).to_parquet(tmp_path / "archive", partition_cols=["tenant_id", "day"])
    files = len(list((tmp_path / "archive").rglob("*.parquet")))
    parts = list(read_messages(tmp_path / "archive", chunksize=50, strict=False))
    sizes = [len(p) for p in parts]
    assert files == 56 and all(40 <= n <= 50 for n in sizes[:-1]) and sum(sizes) == len(raw)
    same(read_messages(tmp_path / "archive"), Messages.concat(parts))


def test_chunked_strict_reading_names_a_duplicate_from_an_earlier_chunk():
    raw = pd.concat([mail(4), mail(4).iloc[[0]]], ignore_index=True)
    with pytest.raises(Exception, match="earlier chunk"):
        list(read_messages(raw, chunksize=4))


@pytest.mark.parametrize("first, later", [("s", "ms"), ("ms", "s")])
def test_a_chunked_read_reads_epoch_numbers_in_the_unit_its_first_chunk_decided(tmp_path, first, later):
    # Before: each chunk judged seconds or milliseconds on its own numbers, so one file was read half in one
    # unit, half in the other (with time_range=None nothing caught it), where a whole read refuses the column.
    # Now the first chunk with numbers decides, and a later number of the other magnitude is refused as the
    # whole read refuses it, naming the column, the row, the value and timestamp_unit=.
    scale = {"s": 1, "ms": 1000}
    base = [1714640400 + 60 * i for i in range(6)]
    times = [t * scale[first] for t in base[:3]] + [base[3] * scale[later]] + [t * scale[first] for t in base[4:]]
    raw = mail(6).assign(timestamp=times, labeled_at=times, label="safe")
    raw.to_csv(tmp_path / "mail.csv", index=False)
    for source in (tmp_path / "mail.csv", raw):
        with pytest.raises(SchemaError) as raised:
            list(read_messages(source, chunksize=2, time_range=None))
        assert [(p.column, p.reason.value, list(p.rows)[-1:], list(p.values)) for p in raised.value.problems] == [
            (column, "ambiguous_timestamp_unit", [3], [times[3]]) for column in ("timestamp", "labeled_at")]
        assert "pass timestamp_unit='s' or 'ms'" in str(raised.value)
        parts = list(read_messages(source, chunksize=2, strict=False, time_range=None))
        joined = Messages.concat(parts)
        assert joined.frame["message_id"].tolist() == ["m0", "m1", "m2", "m4", "m5"]
        assert joined.frame["timestamp"].tolist() == pd.to_datetime([base[i] for i in (0, 1, 2, 4, 5)], unit="s",
                                                                     utc=True).tolist()
        assert joined.frame["labeled_at"].tolist() == joined.frame["timestamp"].tolist()
        assert joined.rejects["reject_reason"].tolist() == ["ambiguous_timestamp_unit"] * 2
        assert joined.rejects.index.tolist() == [3, 3]
        # A unit given reads every chunk in it, as a whole read does (the odd number is then its own problem).
        given = Messages.concat(read_messages(source, chunksize=2, strict=False, time_range=None,
                                              timestamp_unit=first))
        assert "ambiguous_timestamp_unit" not in given.rejects["reject_reason"].tolist()
        assert given.frame["timestamp"].iloc[:3].tolist() == joined.frame["timestamp"].iloc[:3].tolist()


def test_a_chunked_read_decides_the_epoch_unit_on_the_first_chunk_with_numbers():
    # A chunk of text times (or of numbers on both sides of the line, refused there) decides nothing.
    raw = mail(6).assign(timestamp=["2024-05-02T09:00:00Z", "2024-05-02T09:01:00Z", 1714640520000, 1714640580000,
                                    1714640640000, 1714640700])
    parts = list(read_messages(raw, chunksize=2, strict=False))
    assert [len(p) for p in parts] == [2, 2, 1]
    assert parts[2].rejects["reject_reason"].tolist() == ["ambiguous_timestamp_unit"]
    assert parts[2].rejects.index.tolist() == [5]
    assert parts[1].frame["timestamp"].iloc[0] == pd.Timestamp("2024-05-02T09:02:00Z")


def test_reader_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_messages(tmp_path / "missing.parquet")
    with pytest.raises(ConfigError, match="matches no file"):
        read_messages(str(tmp_path / "*.parquet"))
    (tmp_path / "mail.txt").write_text("x")
    with pytest.raises(ConfigError, match="format='parquet'"):
        read_messages(tmp_path / "mail.txt")
    with pytest.raises(ConfigError, match="iterable of records"):
        read_messages({"tenant_id": "t"})
    with pytest.raises(ConfigError, match="chunksize"):
        read_messages(mail(), chunksize=0)


def test_read_frame_leaves_values_as_given(tmp_path):
    mail(3).to_csv(tmp_path / "m.csv", index=False)
    raw = read_frame(tmp_path / "m.csv")
    assert raw["timestamp"].tolist() == mail(3)["timestamp"].tolist()
    assert str(raw["sender"].dtype) == "str"  # Arrow-backed strings


def test_only_tenants_reads_just_those_tenants(tmp_path):
    raw = mail()
    raw.to_parquet(tmp_path / "archive", partition_cols=["tenant_id"])
    raw.rename(columns={"tenant_id": "org"}).to_csv(tmp_path / "m.csv", index=False)
    hive = read_messages(tmp_path / "archive", only_tenants=["beta"])
    assert hive.tenants == ["beta"] and len(hive) == (raw["tenant_id"] == "beta").sum()
    assert {"tenant_id=beta"} == {p.split("/")[-2] for p in hive.frame["source_file"].astype(str)}
    csv = read_messages(tmp_path / "m.csv", only_tenants=["beta"], columns={"tenant_id": "org"})
    assert sorted(csv.frame["message_id"]) == sorted(raw.loc[raw["tenant_id"] == "beta", "message_id"])
    # Row labels still point at the file's rows.
    assert (raw.loc[csv.frame.index, "message_id"].to_numpy() == csv.frame["message_id"].to_numpy()).all()
    assert len(read_messages(tmp_path / "archive", only_tenants=["nobody"])) == 0
    with pytest.raises(ConfigError, match="list of tenant ids"):
        read_messages(raw, only_tenants="beta")


def _watch_recipient_lists(monkeypatch) -> list:
    """Weak references to the recipient lists each read frame holds, and whether each
    was still alive when validation began to build its output."""
    watched, alive_at_assembly = [], []
    whole, assemble = readers._whole, validation._assemble

    def read(parts):
        frame = whole(parts)
        watched.append(weakref.ref(frame["recipients"].array.__arrow_array__()))
        return frame

    def build(*args, **kwargs):
        gc.collect()
        alive_at_assembly.append([ref() is not None for ref in watched])
        return assemble(*args, **kwargs)

    monkeypatch.setattr(readers, "_whole", read)
    monkeypatch.setattr(validation, "_assemble", build)
    return alive_at_assembly


def test_read_messages_frees_the_input_it_consumed_before_building_the_output(tmp_path, monkeypatch):
    # The input and the output are never both whole in memory: once every finding is
    # known, nothing holds the recipient lists read (the edges are built from the parsed ones).
    raw = mail()
    raw.iloc[:30].to_parquet(tmp_path / "a.parquet")
    raw.iloc[30:].assign(sender="not an address").to_parquet(tmp_path / "b.parquet")
    alive = _watch_recipient_lists(monkeypatch)
    m = read_messages(tmp_path / "*.parquet", strict=False)
    assert alive == [[False]]
    assert len(m) == 30 and m.summary()["rejects_by_reason"] == {"invalid_address": 10}
    # The rejects keep the original rows, recipient lists included.
    assert m.rejects["recipients"].tolist() == raw["recipients"].iloc[30:].tolist()


def test_validate_leaves_a_frame_the_caller_holds_as_it_was():
    raw = mail()
    before = raw.copy(deep=True)
    m = validate(raw)
    pd.testing.assert_frame_equal(raw, before)
    assert len(m) == len(raw)


def test_empty_rejects_share_no_memory_with_the_input():
    # A slice of the input would keep its buffers alive for as long as the messages live.
    raw = mail().astype({"recipients": "str", "sender": "str"})
    m = validate(raw)
    assert len(m.rejects) == 0 and list(m.rejects.columns[len(REJECT_COLUMNS):]) == list(raw.columns)

    def addresses(frame: pd.DataFrame, column: str) -> set[int]:
        chunks = frame[column].array.__arrow_array__().chunks
        return {b.address for chunk in chunks for b in chunk.buffers() if b is not None}

    for column in ("recipients", "sender"):
        assert not addresses(raw, column) & addresses(m.rejects, column)


def test_summary_counts_rejected_rows_of_every_file_read_whole(tmp_path):
    # Each file's row labels start at 0: the same label in three files is three rows.
    for k in range(3):
        bad = mail(2).assign(message_id=[f"{k}a", f"{k}b"], timestamp=["2024-05-01T00:00:00Z", "not a time"])
        bad.to_csv(tmp_path / f"part{k}.csv", index=False)
    summary = read_messages(str(tmp_path / "*.csv"), strict=False).summary()
    assert summary["rejected_rows"] == 3 and summary["rejects_by_reason"] == {"unparseable_timestamp": 3}


def test_summary_counts_rejected_rows_by_position_where_labels_repeat():
    # Before: rejected rows were told apart by their labels, so in two frames joined without ignore_index
    # (labels 0, 1, 0, 1) the bad first row of each counted as one rejected row, not two.
    first = mail(2).assign(timestamp=["not a time", "2024-05-01T00:00:00Z"])
    second = mail(2).assign(message_id=["x0", "x1"], timestamp=["soon", "2024-05-01T00:00:00Z"],
                            sender=["a@", "user1@acme.com"])  # (its first row has two problems)
    raw = pd.concat([first, second])
    m = validate(raw, strict=False)
    assert m.summary()["rejected_rows"] == 2 == len(raw) - len(m)
    assert m.rejects.index.tolist() == [0, 0, 0] and m.rejects["reject_row"].tolist() == [0, 2, 2]
    assert raw.iloc[m.rejects["reject_row"]]["message_id"].tolist() == m.rejects["message_id"].tolist()
    assert read_messages(raw, strict=False).summary()["rejected_rows"] == 2
    for chunksize in (1, 2, 3):
        joined = Messages.concat(read_messages(raw, chunksize=chunksize, strict=False))
        assert joined.summary()["rejected_rows"] == 2 and joined.rejects["reject_row"].tolist() == [0, 2, 2]
    # Messages validated apart: each numbers its own rows from 0, and the rows of the second come after.
    apart = Messages.concat([validate(first, strict=False), validate(second, strict=False)])
    assert apart.summary()["rejected_rows"] == 2 and apart.rejects["reject_row"].tolist() == [0, 1, 1]


# --- identifiers as written, odd files, duplicates across chunks ----------------------------------

_HEADER = "tenant_id,message_id,timestamp,sender,recipients,direction\n"
_ROW = ",2024-05-02T09:00:00Z,a@x.com,b@y.com,inbound\n"


def _ids(messages: Messages) -> list[list[str]]:
    return messages.frame[["tenant_id", "message_id"]].values.tolist()


@pytest.mark.parametrize("chunksize", [None, 1, 2, 3])
def test_csv_ids_that_look_like_numbers_are_read_as_written(tmp_path, chunksize):
    # '007' is not tenant '7' and '1e3' is not message '1000': pandas' type inference would retype them
    # (per chunk, so chunks would differ from the whole), merge two messages and split one tenant.
    path = tmp_path / "mail.csv"
    path.write_text(_HEADER + "007,1e3" + _ROW + "007,1000" + _ROW + ",m3" + _ROW + "007,00123" + _ROW
                    + "7,1e3" + _ROW)
    read = read_messages(path, strict=False, chunksize=chunksize)
    messages = read if chunksize is None else Messages.concat(list(read))
    assert _ids(messages) == [["007", "1e3"], ["007", "1000"], ["007", "00123"], ["7", "1e3"]]
    assert messages.rejects["reject_reason"].tolist() == ["missing_value"]
    assert messages.tenants == ["007", "7"]
    assert _ids(read_messages(path, strict=False, only_tenants=["007"])) == [
        ["007", "1e3"], ["007", "1000"], ["007", "00123"]]
    assert read_frame(path)["message_id"].tolist()[:2] == ["1e3", "1000"]


def test_csv_column_mapping_names_the_text_columns(tmp_path):
    path = tmp_path / "mail.csv"
    path.write_text(_HEADER.replace("tenant_id", "org").replace("message_id", "id") + "007,00123" + _ROW)
    assert _ids(read_messages(path, columns={"tenant_id": "org", "message_id": "id"})) == [["007", "00123"]]


def test_jsonl_ids_are_read_as_written(tmp_path):
    # JSON says what is text: "007" stays text, and a number 7 is the id '7' (never '7.0', also when another
    # row has no tenant and pandas makes the column float).
    lines = [{"tenant_id": 7, "message_id": "007"}, {"tenant_id": None, "message_id": 8},
             {"tenant_id": 7, "message_id": 12345678901234567}, {"tenant_id": 12, "message_id": 7}]
    path = tmp_path / "mail.jsonl"
    path.write_text("".join(json.dumps({**line, "timestamp": "2024-05-02T09:00:00Z", "sender": "a@x.com",
                                        "recipients": ["b@y.com"], "direction": "inbound"}) + "\n"
                            for line in lines))
    for chunksize in (None, 1, 3):
        read = read_messages(path, strict=False, chunksize=chunksize)
        messages = read if chunksize is None else Messages.concat(list(read))
        assert _ids(messages) == [["7", "007"], ["7", "12345678901234567"], ["12", "7"]]
        assert messages.rejects["reject_reason"].tolist() == ["missing_value"]


def test_parquet_integer_ids_are_read_as_their_digits(tmp_path):
    # An integer column holding a null becomes float in pandas (7.0): it is read as text in Arrow first.
    table = pa.table({"tenant_id": pa.array([7, None, 12], pa.int64()),
                      "message_id": pa.array([1, 2, 2**62], pa.int64()),
                      "timestamp": pa.array([1714640400] * 3).cast(pa.timestamp("s", tz="UTC")),
                      "sender": ["a@x.com"] * 3, "recipients": ["b@y.com"] * 3, "direction": ["inbound"] * 3})
    pq.write_table(table, tmp_path / "mail.parquet")
    whole = read_messages(tmp_path / "mail.parquet", strict=False)
    assert _ids(whole) == [["7", "1"], ["12", str(2**62)]] and whole.rejects["reject_reason"].tolist() == [
        "missing_value"]
    for chunksize in (1, 2):
        assert _ids(Messages.concat(list(read_messages(tmp_path / "mail.parquet", strict=False,
                                                       chunksize=chunksize)))) == _ids(whole)


@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")  # no tenant configuration here
@pytest.mark.parametrize("chunksize", [None, 2])
def test_parquet_files_holding_an_id_as_numbers_and_as_text_are_refused_naming_both(tmp_path, chunksize):
    # Read as numbers, tenant '007' would become 7 (another tenant); read as text, a number 7 that lost its
    # zeros upstream would pass as a tenant of its own. Only the writer knows: refused, naming both files.
    def write(tenant: pa.Array, name: str) -> None:
        n = len(tenant)
        pq.write_table(pa.table({"tenant_id": tenant, "message_id": [f"{name}{i}" for i in range(n)],
                                 "timestamp": pa.array([1714640400] * n).cast(pa.timestamp("s", tz="UTC")),
                                 "sender": ["a@x.com"] * n, "recipients": ["b@y.com"] * n}),
                       tmp_path / "archive" / f"{name}.parquet")

    (tmp_path / "archive").mkdir()
    write(pa.array([7, None], pa.int64()), "part-0")
    write(pa.array(["007"]), "part-1")
    with pytest.raises(ConfigError, match=r"disagree on the type of column 'tenant_id'.*part-0.parquet holds "
                                          r"int64.*part-1.parquet holds string"):
        result = read_messages(tmp_path / "archive", strict=False, chunksize=chunksize)
        list(result) if chunksize else None
    # Each file read apart keeps its ids.
    assert read_messages(tmp_path / "archive" / "part-1.parquet").tenants == ["007"]


@pytest.mark.parametrize("chunksize", [None, 1, 2])
def test_an_empty_file_is_zero_rows(tmp_path, chunksize):
    # A 0-byte file (an export of a quiet day) holds no row: it neither aborts the read nor adds a reject.
    (tmp_path / "day1.csv").write_text(_HEADER + "t,m1" + _ROW + "t,m2" + _ROW)
    (tmp_path / "day2.csv").write_text("")
    (tmp_path / "empty.jsonl").write_text("")

    def read(source, **kwargs):
        result = read_messages(source, chunksize=chunksize, **kwargs)
        return result if chunksize is None else list(result)

    for strict in (True, False):
        got = read(str(tmp_path / "*.csv"), strict=strict)
        got = got if chunksize is None else Messages.concat(got)
        same(got, read_messages(tmp_path / "day1.csv"))
        assert len(got.rejects) == 0
    for empty in (tmp_path / "day2.csv", tmp_path / "empty.jsonl", [tmp_path / "day2.csv", tmp_path / "empty.jsonl"]):
        got = read(empty)
        # Whole: no message; in chunks: no chunk (an empty whole read is not an error either).
        assert (len(got) == 0 and len(got.rejects) == 0) if chunksize is None else got == []
    assert len(read_frame(tmp_path / "day2.csv")) == 0


def _record(message_id: str) -> dict:
    return {"tenant_id": "t", "message_id": message_id, "timestamp": "2024-05-02T09:00:00Z",
            "sender": "a@x.com", "recipients": ["b@y.com"], "direction": "inbound"}


def test_jsonl_with_a_byte_order_mark_reads_as_without(tmp_path):
    body = "".join(json.dumps(_record(f"j{i}")) + "\n" for i in range(3))
    (tmp_path / "bom.jsonl").write_text(body, encoding="utf-8-sig")
    (tmp_path / "plain.jsonl").write_text(body, encoding="utf-8")
    assert (tmp_path / "bom.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")
    same(read_messages(tmp_path / "bom.jsonl"), read_messages(tmp_path / "plain.jsonl"))
    same(Messages.concat(list(read_messages(tmp_path / "bom.jsonl", chunksize=2))),
         read_messages(tmp_path / "plain.jsonl"))


@pytest.mark.parametrize("chunksize", [None, 1, 2, 3, 10])
def test_jsonl_lines_that_are_not_json_objects_are_rejected_with_file_and_line(tmp_path, chunksize):
    # An interrupted export ends mid-line; a stray line may hold a list. Those lines are rejected, naming
    # the file and the line; the other lines are read as they would be alone.
    good = [json.dumps(_record(f"j{i}")) for i in range(4)]
    lines = [good[0], "", good[1], "[1, 2]", good[2], good[3], '{"tenant_id": "t", "mess']
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines))
    (tmp_path / "good.jsonl").write_text("\n".join(good) + "\n")
    read = read_messages(path, strict=False, chunksize=chunksize)
    messages = read if chunksize is None else Messages.concat(list(read))
    same(messages, read_messages(tmp_path / "good.jsonl"))
    # Rows are numbered by record, as pandas numbers a JSON Lines file (the blank line is no record).
    assert messages.frame.index.tolist() == [0, 1, 3, 4]
    rejects = messages.rejects
    assert rejects["reject_reason"].tolist() == ["invalid_json"] * 2 and rejects.index.tolist() == [2, 5]
    assert rejects["source_file"].astype(str).tolist() == [str(path)] * 2
    assert rejects["reject_value"].tolist() == ["[1, 2]", '{"tenant_id": "t", "mess']
    assert [m.split(":")[0] for m in rejects["reject_message"]] == [f"line 4 of {path}", f"line 7 of {path}"]
    # Strict: a whole read names every such line; a chunked one stops at the first chunk holding one.
    named = rf"{path} row 2, {path} row 5" if chunksize is None or chunksize >= len(lines) else rf"{path} row 2"
    with pytest.raises(SchemaError, match=rf"invalid_json \(rows {named};"):
        list(read_messages(path, chunksize=chunksize)) if chunksize else read_messages(path)


@pytest.mark.parametrize("chunksize", [None, 1, 3])
def test_jsonl_lines_with_half_a_surrogate_pair_are_rejected_not_read_as_another_address(tmp_path, chunksize):
    # pandas' JSON parser drops a \ud800 escape without its pair: 'a\ud800@x.com' was read as 'a@x.com',
    # another sender; a lone low half reached Arrow and failed the whole read. A whole pair is an emoji.
    lines = [json.dumps(dict(_record("j0"), sender="ann\ud800@vendor.com")), json.dumps(_record("j1")),
             json.dumps(dict(_record("j2"), recipients=["cy\udcff@t.com"])),
             json.dumps(dict(_record("j3"), sender_display_name="Ann \U0001F600")),
             json.dumps(dict(_record("j4"), sender_display_name="CORP" + chr(92) + "udcadmin")),  # a backslash
             json.dumps(dict(_record("j5"), headers={"x-tag": "cut \ud83d"})),  # nested: failed at to_parquet
             json.dumps({**_record("j6"), "x\udc00": 1})]  # a key: crashed the read
    assert "\\ud83d\\ude00" in lines[3] and "\\ud800" in lines[0]  # (json.dumps writes them as escapes)
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines))
    read = read_messages(path, strict=False, chunksize=chunksize)
    messages = read if chunksize is None else Messages.concat(list(read))
    assert messages.frame["message_id"].tolist() == ["j1", "j3", "j4"]  # (j4: an escaped backslash, then 'udca')
    assert messages.frame["sender_display_name"].tolist()[1:] == ["ann \U0001F600", "corp" + chr(92) + "udcadmin"]
    rejects = messages.rejects
    assert rejects["reject_reason"].tolist() == ["invalid_json"] * 4 and rejects.index.tolist() == [0, 2, 5, 6]
    assert ["\\ud800" in m and "\\udcff" not in m for m in rejects["reject_message"]] == [True, False, False, False]
    with pytest.raises(SchemaError, match=r"invalid_json .*half of a UTF-16 surrogate pair"):
        read_messages(path)


def test_strict_errors_over_several_files_name_the_file_of_each_row(tmp_path):
    (tmp_path / "day1.csv").write_text(_HEADER + "t,m1" + _ROW + "t,m2,2024-05-02T09:00:00Z,a@,b@y.com,inbound\n")
    (tmp_path / "day2.csv").write_text(_HEADER + "t,m3,2024-05-02T09:00:00Z,@b.com,b@y.com,inbound\n")
    with pytest.raises(SchemaError) as info:
        read_messages([tmp_path / "day1.csv", tmp_path / "day2.csv"])
    day1, day2 = tmp_path / "day1.csv", tmp_path / "day2.csv"
    assert f"rows {day1} row 1, {day2} row 0;" in str(info.value)
    assert info.value.failure_cases[["row", "file"]].values.tolist() == [[1, str(day1)], [0, str(day2)]]


def test_a_copy_whose_first_copy_was_rejected_in_an_earlier_chunk_is_kept():
    raw = pd.concat([mail(3), mail(3).iloc[[0, 1]]], ignore_index=True)
    raw.loc[0, "timestamp"] = "1980-01-01T00:00:00Z"  # a placeholder date: the first copy of m0 is refused
    for chunksize in (1, 2, 3, 5):
        joined = Messages.concat(list(read_messages(raw, chunksize=chunksize, strict=False)))
        same(joined, validate(raw, strict=False))
        assert joined.frame.index.tolist() == [1, 2, 3]
        assert sorted(joined.rejects["reject_reason"]) == ["duplicate_message_id", "timestamp_out_of_range"]


@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40),
       st.integers(min_value=1, max_value=12))
def test_chunked_reading_keeps_the_first_usable_copy_as_plain_pandas_finds_it(rows, chunksize):
    # Reference: among the rows with a usable timestamp, pandas' duplicated() on the id.
    ids, usable = [f"m{i}" for i, _ in rows], [u for _, u in rows]
    raw = mail(len(rows)).assign(tenant_id="acme", message_id=ids, timestamp=[
        "2024-05-02T09:00:00Z" if u else "1980-01-01T00:00:00Z" for u in usable])
    good = raw[usable]
    expected = good.index[~good.duplicated("message_id")].tolist()
    assert validate(raw, strict=False).frame.index.tolist() == expected
    parts = list(read_messages(raw, chunksize=chunksize, strict=False))
    assert [i for p in parts for i in p.frame.index] == expected
    rejected = Messages.concat(parts).rejects
    assert set(rejected.index) == set(raw.index) - set(expected)
    # Every usable later copy is rejected as a duplicate; a refused copy of a message kept from an earlier
    # chunk may be too (it is set aside before its chunk is validated), a whole read names its own reason.
    duplicates = set(rejected.index[rejected["reject_reason"] == "duplicate_message_id"])
    assert set(good.index[good.duplicated("message_id")]) <= duplicates
    assert duplicates <= set(raw.index[raw.duplicated("message_id")])


def test_rows_set_aside_while_reading_one_file_of_several_are_rejected(tmp_path):
    # pandas keeps a frame's attrs through concat only when every part has the same: the undecodable bytes
    # of one CSV, or the broken lines of one JSON Lines file, must still reach validation in a whole read.
    (tmp_path / "a.csv").write_text(_HEADER + "t,m1" + _ROW)
    (tmp_path / "b.csv").write_bytes((_HEADER + "007,m2,2024-05-02T09:00:00Z,a@x.com,b@y.com,inbound\n"
                                      "t,m3,2024-05-02T09:00:00Z,caf\xe9@x.com,b@y.com,inbound\n").encode("latin-1"))
    (tmp_path / "c.jsonl").write_text(json.dumps(_record("j1")) + '\n{"tenant_id": "t"\n')
    m = read_messages([tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.jsonl"], strict=False)
    assert _ids(m) == [["t", "m1"], ["007", "m2"], ["t", "j1"]]  # read again as text, the ids stay as written
    assert sorted(m.rejects["reject_reason"]) == ["invalid_encoding", "invalid_json"]
    assert sorted(m.rejects["source_file"].astype(str).map(lambda p: p.rsplit("/", 1)[-1])) == ["b.csv", "c.jsonl"]


def test_csv_text_that_spells_missing_is_text(tmp_path):
    # pandas reads "NA", "null", "None", "N/A", "NULL" as missing by default: tenant "NA" lost all its mail
    # (tenant_id missing), a message id "null" was rejected, a display name and subjects silently changed.
    (tmp_path / "m.csv").write_text(
        "tenant_id,message_id,timestamp,sender,sender_display_name,recipients,subject\n"
        "NA,m1,2024-05-02T09:00:00Z,ann@na-corp.com,Ann,bob@vendor.com,hello\n"
        "NA,null,2024-05-02T09:01:00Z,ann@na-corp.com,None,bob@vendor.com,NULL\n"
        "EU,m3,2024-05-02T09:02:00Z,eve@eu-corp.com,N/A,bob@vendor.com,n/a\n"
        "EU,m4,2024-05-02T09:03:00Z,eve@eu-corp.com,,bob@vendor.com,\n")
    tenants = [{"tenant_id": "NA", "own_domains": ["na-corp.com"]}, {"tenant_id": "EU", "own_domains": ["eu-corp.com"]}]
    m = read_messages(tmp_path / "m.csv", strict=False, tenants=tenants)
    assert len(m.rejects) == 0
    got = m.frame[["tenant_id", "message_id", "sender_display_name", "subject"]].astype(object)
    # Other columns keep pandas' usual spellings of missing: an export writing NULL or NA for "no label".
    (tmp_path / "n.csv").write_text(
        "tenant_id,message_id,timestamp,sender,recipients,label,labeled_at,spf\n"
        "NA,m1,2024-05-02T09:00:00Z,ann@na-corp.com,bob@vendor.com,attack,2024-05-03T00:00:00Z,pass\n"
        "NA,m2,2024-05-02T09:01:00Z,ann@na-corp.com,bob@vendor.com,NULL,NULL,NA\n"
        "NA,m3,2024-05-02T09:02:00Z,ann@na-corp.com,bob@vendor.com,NA,n/a,NULL\n")
    n = read_messages(tmp_path / "n.csv", strict=False, tenants=tenants)
    assert len(n.rejects) == 0 and n.frame["message_id"].tolist() == ["m1", "m2", "m3"]
    assert n.frame["label"].isna().tolist() == [False, True, True] and n.frame["spf"].isna().tolist()[1:] == [True] * 2
    assert got.where(got.notna(), None).values.tolist() == [
        ["NA", "m1", "ann", "hello"], ["NA", "null", "none", "NULL"], ["EU", "m3", "n/a", "n/a"],
        ["EU", "m4", None, None]]  # (display names are compared lower-cased); an empty field is still missing


def test_a_csv_line_with_more_fields_than_the_header_names_the_file_and_line(tmp_path):
    # It raised pandas' ParserError as an "unexpected" error, without the file.
    (tmp_path / "m.csv").write_text(
        "tenant_id,message_id,timestamp,sender,recipients\n"
        "acme,m1,2024-05-02T09:00:00Z,ann@acme.com,bob@vendor.com\n"
        "acme,m2,2024-05-02T09:01:00Z,Lee, Ann <ann@acme.com>,bob@vendor.com\n")
    for strict in (True, False):
        with pytest.raises(ConfigError, match=r"m\.csv is not well-formed CSV: .*line 3.*Quote the values"):
            read_messages(tmp_path / "m.csv", strict=strict,
                          tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    # On the first data line, pandas took the extra field as the row's index and shifted every value left.
    lines = (tmp_path / "m.csv").read_text().splitlines()
    (tmp_path / "first.csv").write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")
    with pytest.raises(ConfigError, match=r"first\.csv is not well-formed CSV: .*line 2"):
        read_messages(tmp_path / "first.csv", strict=False)
    # In chunks, after a chunk with a byte that is not UTF-8 (the whole file is read again to salvage it).
    body = [f"acme,m{i},2024-05-02T09:00:00Z,ann@acme.com,bob@vendor.com" for i in range(3000)]
    body[10] = body[10].replace("ann@", "\udcffann@")
    body[2500] = "acme,bad,2024-05-02T09:00:00Z,Lee, Ann <ann@acme.com>,bob@vendor.com"
    (tmp_path / "late.csv").write_bytes(("\n".join([lines[0]] + body) + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError, match=r"late\.csv is not well-formed CSV"):
        list(read_messages(tmp_path / "late.csv", strict=False, chunksize=1000))


def test_rows_set_aside_before_validation_are_named_as_validations_rejects(tmp_path):
    # Rows set aside for bytes that are not UTF-8 kept the input's column names ('org'), while validation's
    # rejects take the contract's: with columns={'tenant_id': 'org'}, tenant a's reject belonged to no tenant.
    from commgraph.baselines._job import _tenant_counts

    (tmp_path / "m.csv").write_bytes(b"org,message_id,timestamp,sender,recipients\n"
                                     b"a,m1,2024-05-02T09:00Z,ann@a.com,bob@a.com\n"
                                     b"b,m2,2024-05-02T09:00Z,cat@b.com,dan@b.com\n"
                                     b"a,m3,2024-05-02T09:00Z,ann@a.com,x\xffy@a.com\n")
    m = read_messages(tmp_path / "m.csv", columns={"tenant_id": "org"}, strict=False,
                      tenants=[{"tenant_id": "a", "own_domains": ["a.com"]},
                               {"tenant_id": "b", "own_domains": ["b.com"]}])
    assert "tenant_id" in m.rejects and "org" not in m.rejects
    assert m.for_tenant("a").rejects["message_id"].tolist() == ["m3"] and len(m.for_tenant("b").rejects) == 0
    assert _tenant_counts(m, ["a", "b"])["a"]["rows_rejected"] == 1


def test_csv_reads_keep_mapped_text_columns_auth_results_and_chunks_as_a_whole_read_does(tmp_path):
    from commgraph.baselines._job import _tenant_rows

    tenants = [{"tenant_id": "NA", "own_domains": ["na-corp.com"]}, {"tenant_id": "EU", "own_domains": ["eu-corp.com"]}]
    rows = "".join(f"{t},m{t}{i},2024-05-02T09:00:00Z,ann@{d},bob@vendor.com,None,pass,none\n"
                   for i in range(3) for t, d in (("NA", "na-corp.com"), ("EU", "eu-corp.com")))
    (tmp_path / "m.csv").write_text("org,message_id,timestamp,sender,recipients,spf,dkim,dmarc\n" + rows)
    (tmp_path / "r.csv").write_text("org,message_id,timestamp,sender,recipients,spf_result,dkim,dmarc\n" + rows)
    renamed = read_messages(tmp_path / "r.csv", columns={"tenant_id": "org", "spf": "spf_result"}, tenants=tenants)
    assert renamed.frame["spf"].astype(str).unique().tolist() == ["none"]  # under the input's own name too
    # A renamed tenant column is read as text by the job's tenant listing too (tenant "NA" was dropped).
    assert _tenant_rows(tmp_path / "m.csv", columns={"tenant_id": "org"}) == ({"NA": 3, "EU": 3}, 0)
    assert read_frame(tmp_path / "m.csv", columns={"tenant_id": "org"})["org"].tolist()[:2] == ["NA", "EU"]
    # 'None' is an authentication result of its own, not a missing one.
    m = read_messages(tmp_path / "m.csv", columns={"tenant_id": "org"}, tenants=tenants)
    assert m.frame["spf"].astype(str).unique().tolist() == ["none"] and m.frame["dmarc"].notna().all()
    # In chunks, a byte that is not UTF-8 in a later chunk: the earlier chunks' rows are not handed out again
    # (each was rejected as a repeat of itself) and the rest still comes in chunks.
    body = [f"acme,m{i},2024-05-02T09:00:00Z,ann@acme.com,bob@vendor.com" for i in range(5000)]
    body[3500] = body[3500].replace("ann@", "\udcffann@")
    body[500] = '""'  # a line one parser reads as a row and another skipped: the salvage must count as the first
    (tmp_path / "big.csv").write_bytes(("tenant_id,message_id,timestamp,sender,recipients\n" + "\n".join(body)
                                        + "\n").encode("utf-8", "surrogateescape"))
    acme = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    whole = read_messages(tmp_path / "big.csv", strict=False, tenants=acme)
    chunks = list(read_messages(tmp_path / "big.csv", strict=False, tenants=acme, chunksize=1000))
    assert whole.summary()["rejects_by_reason"] == {"invalid_encoding": 1, "missing_value": 5}
    assert sum(len(c) for c in chunks) == len(whole) == 4998
    assert sorted(i for c in chunks for i in c.frame["message_id"]) == sorted(whole.frame["message_id"])
    assert sorted(r for c in chunks for r in c.rejects["reject_reason"]) == sorted(whole.rejects["reject_reason"])


def test_read_messages_refuses_a_since_that_is_not_iso_and_a_zone_that_is_none_before_reading(tmp_path):
    frame = mail(4)
    for since in ("01/02/2025", "now", "today"):  # ('now' and 'today': the clock, which a rerun does not repeat)
        with pytest.raises(ConfigError, match="ISO 8601"):
            read_messages(frame, since=since)
    with pytest.raises(ConfigError, match="time_range start '1990-13-01' is not an instant"):  # (was "end")
        read_messages(frame, since="2024-05-02", time_range=("1990-13-01", "2100-01-01"))
    for since in (None, "2024-05-02T00:00Z"):
        with pytest.raises(ConfigError, match="IANA time zone"):
            read_messages(frame, since=since, timezone="Mars/Base")
    # The time range is read as since is, in ISO 8601 only ('01/01/1990' was read month first), its start before
    # its end (a reversed range refused every row, silently), a pair.
    for bad, words in ((("01/03/1990", "2100-01-01"), "time_range start '01/03/1990' is not an instant"),
                       (("2100-01-01", "1990-01-01"), "the start before the end"),
                       (("1990-01-01",), "must be a pair"), (("1990", "2000", "2100"), "must be a pair"),
                       (("2300-01-01", "2500-01-01"), "holds no time nanoseconds hold")):
        for call in (lambda: read_messages(frame, since="2024-05-02", time_range=bad),
                     lambda: validate(frame, strict=False, time_range=bad)):
            with pytest.raises(ConfigError, match=words):
                call()
    # Zones given otherwise than by IANA name are taken, as the parser takes them.
    import datetime

    naive = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True).dt.tz_localize(None).astype(str))
    for zone in ("utc", "+02:00", datetime.timezone(datetime.timedelta(hours=2))):
        assert len(read_messages(naive, timezone=zone)) == len(frame)


@pytest.mark.parametrize("encoding, bad", [("utf-8", b"caf\xe9"), ("ascii", b"caf\xc3\xa9"),
                                           ("iso-8859-3", b"\xc3\xa5ngstrom"), ("cp1253", b"x\xd2\x81y")])
def test_bytes_that_are_not_the_encoding_are_rejected_whole_and_in_chunks(tmp_path, encoding, bad):
    # Salvaged with pandas' C parser, bad bytes of an encoding other than UTF-8 came back as UTF-8, where some
    # spell valid text: 'café' read from an ASCII file passed unseen.
    # (A line of only a quoted empty field is a row to one parser and none to another: the rows a chunked
    # read salvages after its first chunks must be counted by the parser that counted those.)
    lines = [b"tenant_id,message_id,timestamp,sender,recipients,subject",
             b"acme,m0,2024-05-02T09:00:00Z,ann@acme.com,bob@v.com,hello",
             b'""',
             b"acme,m1,2024-05-02T09:00:00Z,ann@acme.com,bob@v.com," + bad,
             b"acme,m2,2024-05-02T09:00:00Z,ann@acme.com,bob@v.com,bye"]
    (tmp_path / "m.csv").write_bytes(b"\n".join(lines) + b"\n")
    acme = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    for chunks in (None, 2):
        read = read_messages(tmp_path / "m.csv", strict=False, tenants=acme, encoding=encoding, chunksize=chunks)
        parts = list(read) if chunks else [read]
        got = sorted((i, r) for p in parts for i, r in zip(p.rejects.index, p.rejects["reject_reason"]))
        assert (1, "missing_value") in got and (2, "invalid_encoding") in got and {i for i, _ in got} == {1, 2}
        assert [m for p in parts for m in p.frame["message_id"]] == ["m0", "m2"]
    # A bad byte in the header: no row can be read under a garbled name; refused, naming the column.
    (tmp_path / "h.csv").write_bytes(b"\n".join([lines[0].replace(b"subject", b"subj" + bad)] + lines[1:]) + b"\n")
    with pytest.raises(ConfigError, match=r"header of .*h\.csv holds bytes that are not .* column name"):
        read_messages(tmp_path / "h.csv", strict=False, tenants=acme, encoding=encoding)


def test_since_of_a_type_that_is_no_instant_is_refused(tmp_path):
    for since in (object(), ["2024-05-02"], {"day": 2}):
        with pytest.raises(ConfigError, match="is not an instant"):
            read_messages(mail(4), since=since)


def test_bytes_no_decoder_keeps_are_rejected_and_shown_as_bytes(tmp_path):
    # A UTF-16 file with an unpaired surrogate crashed the read (surrogateescape keeps bytes from 0x80 only),
    # a bad byte in a UTF-16 header crashed the message naming it, and the reject of UTF-8 bytes in an ASCII
    # file showed them decoded ('café') where the bytes are the point.
    acme = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    head = "tenant_id,message_id,timestamp,sender,recipients,subject\n"
    rows = [f"acme,m{i},2024-05-02T09:00:00Z,ann@acme.com,bob@v.com,s{i}\n" for i in range(3)]
    data = (head + "".join(rows)).encode("utf-16-le")
    at = data.index("s1".encode("utf-16-le"))
    (tmp_path / "u16.csv").write_bytes(data[:at] + b"\x3d\xd8" + data[at:])  # an unpaired high surrogate
    m = read_messages(tmp_path / "u16.csv", strict=False, tenants=acme, encoding="utf-16-le")
    assert m.frame["message_id"].tolist() == ["m0", "m2"]
    assert m.rejects["reject_reason"].tolist() == ["invalid_encoding"]
    (tmp_path / "u16h.csv").write_bytes(head.replace("subject\n", "subj").encode("utf-16-le") + b"\x3d\xd8"
                                        + ("\n" + "".join(rows)).encode("utf-16-le"))
    with pytest.raises(ConfigError, match=r"header of .*u16h\.csv holds bytes"):
        read_messages(tmp_path / "u16h.csv", strict=False, tenants=acme, encoding="utf-16-le")
    (tmp_path / "a.csv").write_bytes((head + rows[0]).encode() + rows[1].replace("s1", "caf\u00e9").encode())
    m = read_messages(tmp_path / "a.csv", strict=False, tenants=acme, encoding="ascii")
    assert m.rejects["reject_value"].tolist() == ["caf\\xc3\\xa9"]
    for since in ("", "NaT", pd.NaT):
        with pytest.raises(ConfigError, match="since=.* is not an instant"):
            read_messages(tmp_path / "a.csv", strict=False, tenants=acme, encoding="ascii", since=since)


def test_json_lines_with_bytes_the_encoding_cannot_decode_are_rejected_as_csv_ones_are(tmp_path):
    # The read failed for the whole file (UnicodeDecodeError); the docstring promises invalid_encoding rejects.
    acme = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    rows = [b'{"tenant_id":"acme","message_id":"m%d","timestamp":"2024-05-02T09:00:00Z","sender":"ann@acme.com",'
            b'"recipients":"bob@v.com","subject":"%s"}' % (i, s) for i, s in enumerate([b"x", b"caf\xe9", b"y"])]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    for chunks in (None, 1, 2):
        read = read_messages(tmp_path / "a.jsonl", strict=False, tenants=acme, chunksize=chunks)
        parts = list(read) if chunks else [read]
        assert [m for p in parts for m in p.frame["message_id"]] == ["m0", "m2"]
        assert [(r, v) for p in parts for r, v in zip(p.rejects["reject_reason"], p.rejects["reject_value"])] == [
            ("invalid_encoding", "caf\\xe9")]


def test_since_with_an_open_ended_time_range(tmp_path):
    # validate reads an open end (None) as no bound; read_messages(since=) refused it ("None is not an
    # instant"), and on Parquet crashed.
    frame = mail(6)
    frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True)).to_parquet(tmp_path / "m.parquet")
    since = pd.to_datetime(frame["timestamp"], utc=True).sort_values().iloc[3]
    for source in (frame, tmp_path / "m.parquet"):
        got = read_messages(source, since=since, time_range=("1990-01-01", None))
        assert sorted(got.frame["message_id"]) == sorted(read_messages(source, since=since).frame["message_id"])


@pytest.mark.parametrize("format", [None, "csv", "parquet"])
def test_a_directory_of_csv_files_is_refused_naming_the_glob_that_reads_it(tmp_path, format):
    # Directories are Parquet datasets: a folder of CSV files failed with pyarrow's "Is this a 'parquet'
    # file?" about its first file (or, with format='csv', "[Errno 21] Is a directory").
    folder = tmp_path / "day"
    (folder / "tenant_id=t").mkdir(parents=True)
    (folder / "tenant_id=t" / "mail.csv").write_text(_HEADER + "t,m1" + _ROW)
    with pytest.raises(ConfigError, match=r"is a directory, read as a Parquet dataset .*'\S+/day/\*\*/\*\.csv'"):
        read_messages(folder, format=format)
    assert len(read_messages(str(folder / "**" / "*.csv"))) == 1
    (folder / "tenant_id=t" / "mail.csv").unlink()
    (folder / "tenant_id=t" / "mail.csv.gz").write_bytes(gzip.compress((_HEADER + "t,m1" + _ROW).encode()))
    with pytest.raises(ConfigError, match=r"a glob such as '\S+/day/\*\*/\*\.csv\.gz'"):  # (its '.csv' matched nothing)
        read_messages(folder)
    assert len(read_messages(str(folder / "**" / "*.csv.gz"))) == 1
    # The refresh job reads directories too: the whole input, or a tenant's folder (that tenant fails alone).
    from commgraph.baselines import run_refresh

    with pytest.raises(ConfigError, match="is a directory, read as a Parquet dataset"):
        run_refresh(folder / "tenant_id=t", store=tmp_path / "store", as_of="2024-06-01T00:00Z")
    report = run_refresh(folder, store=tmp_path / "store", as_of="2024-06-01T00:00Z")
    assert [(o.tenant_id, o.status) for o in report.outcomes] == [("t", "failed")]
    assert "is a directory, read as a Parquet dataset" in report.outcomes[0].error


def test_the_inferred_own_domains_warning_points_at_the_callers_line(tmp_path):
    # From read_messages and Scorer.score it named a line inside commgraph (each reached it at another depth).
    from commgraph.baselines._snapshot import _example
    from commgraph.signals import BaselineSignals, Scorer

    frame = pd.DataFrame([_record("w1")]).drop(columns="direction")  # (told from the own domains)
    frame.to_json(tmp_path / "w.jsonl", orient="records", lines=True)
    for call in (lambda: validate(frame), lambda: read_messages(frame), lambda: read_messages(tmp_path / "w.jsonl"),
                 lambda: list(read_messages(tmp_path / "w.jsonl", chunksize=1)),
                 lambda: Scorer({"acme": _example()}, cold_start=True).score(frame),
                 lambda: BaselineSignals().fit(frame)):
        with pytest.warns(InferredOwnDomainsWarning) as caught:
            call()
        assert [w.filename for w in caught if w.category is InferredOwnDomainsWarning][0] == __file__


def test_jsonl_floats_are_read_to_the_bit_whether_a_part_is_read_whole_or_line_by_line(tmp_path):
    # pandas' JSON parser rounded floats (precise_float=False) where a part holding a surrogate escape, read line
    # by line with json.loads, kept them exact: a value depended on the other lines of its part.
    scores = [0.1 + i / 7 for i in range(50)]
    lines = [json.dumps(dict(_record(f"f{i}"), spam_score=v)) for i, v in enumerate(scores)]
    (tmp_path / "plain.jsonl").write_text("\n".join(lines))
    (tmp_path / "emoji.jsonl").write_text("\n".join(lines + [json.dumps(dict(_record("e"), subject="\U0001F600"))]))
    for name in ("plain.jsonl", "emoji.jsonl"):
        read = read_messages(tmp_path / name).frame
        assert read["spam_score"].iloc[:50].tolist() == scores, name


def test_a_column_without_values_in_the_first_file_takes_the_type_of_the_files_with_values(tmp_path):
    # pandas writes an all-None column as Arrow type null (a day without labels): as the first file of a
    # directory it failed every read ('Unsupported cast from large_string to null'), naming no column or file.
    first = pd.DataFrame([_record("n1")]).assign(label=None, labeled_at=None)
    later = pd.DataFrame([_record("n2")]).assign(label="attack", labeled_at="2024-05-02T10:00:00Z")
    assert pa.Table.from_pandas(first).schema.field("label").type == pa.null()
    first.to_parquet(tmp_path / "a.parquet")
    later.to_parquet(tmp_path / "b.parquet")
    read = read_messages(tmp_path)
    assert read.frame["label"].tolist()[1] == "attack" and pd.isna(read.frame["label"].tolist()[0])
    assert len(read_messages(tmp_path, since="2024-05-02T00:00Z")) == 2


def test_files_that_disagree_are_named_past_a_file_without_values(tmp_path):
    # The file named as holding the first type could be one whose column had no value (type null).
    rows = pd.DataFrame([_record("z1")])
    for name, labeled_at in (("a", None), ("b", pd.Timestamp("2024-05-03", tz="UTC")),
                             ("c", pd.Timestamp("2024-05-03"))):
        rows.assign(label="safe" if labeled_at is not None else None, labeled_at=labeled_at).to_parquet(
            tmp_path / f"{name}.parquet")
    with pytest.raises(ConfigError, match=r"b\.parquet holds timestamp\[\w+, tz=UTC\], \S*c\.parquet holds"):
        read_messages(tmp_path)


def test_a_damaged_or_foreign_parquet_file_is_named_with_the_fix(tmp_path):
    # pyarrow's ArrowInvalid reached the user as an unexpected error (the command line's exit 1, 'unexpected').
    from commgraph.graph import CommGraphError

    mail().to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes((tmp_path / "a.parquet").read_bytes()[:200])  # a copy cut off
    with pytest.raises(CommGraphError, match=r"b\.parquet.*Fix: replace a file cut off or damaged"):
        read_messages(tmp_path)
    mail().to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(CommGraphError, match=r"c\.csv.*for another format, pass format="):
        read_messages(tmp_path / "c.csv", format="parquet")


def test_a_float_id_among_text_ids_is_one_id_whatever_its_neighbours(tmp_path):
    # A float in a column of other values (JSON or records mixing 1000.0 with "abc") was str()-ed to '1000.0',
    # where a column of floats alone reads '1000': the whole read and a chunked one gave the message other ids,
    # and the chunked read kept it twice.
    base = {"tenant_id": "t", "timestamp": "2024-05-02T09:00:00Z", "sender": "ann@acme.com", "recipients": "b@x.com"}
    ids = [1000.0, 1001.0, 1000.0, "abc", 2.5]
    records = [dict(base, message_id=i) for i in ids]
    path = tmp_path / "mail.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
    for source in (path, records):
        whole = read_messages(source, strict=False, tenants=tenants)
        parts = list(read_messages(source, strict=False, tenants=tenants, chunksize=2))
        assert whole.frame["message_id"].tolist() == ["1000", "1001", "abc"]
        assert [i for p in parts for i in p.frame["message_id"]] == ["1000", "1001", "abc"]
        assert [(r, v) for r, v in whole.rejects[["reject_reason", "reject_value"]].values] == [
            ("duplicate_message_id", "1000"), ("invalid_value", "2.5")]
        assert sorted(r for p in parts for r in p.rejects["reject_reason"]) == ["duplicate_message_id",
                                                                               "invalid_value"]
    assert read_messages([dict(base, message_id=1000.0), dict(base, message_id="abc")],
                         tenants=tenants).frame["message_id"].tolist() == ["1000", "abc"]


def test_a_header_naming_a_column_twice_is_refused_naming_the_names_and_the_file(tmp_path):
    # pandas read a second 'recipients' as 'recipients.1' (a column the contract does not know): its recipients
    # were neither used nor rejected, strict validation passed. A Parquet file with a column twice failed with
    # pyarrow's "Can't unify schema with duplicate field names", naming no file.
    path = tmp_path / "mail.csv"
    path.write_text("tenant_id,message_id,timestamp,sender,recipients,recipients,sender\n"
                    "t,m1,2024-05-02T09:00:00Z,ann@acme.com,bob@x.com,cy@x.com,evil@x.com\n")
    latin = tmp_path / "latin.csv"  # (read again keeping bytes UTF-8 cannot decode)
    latin.write_bytes(path.read_bytes().replace(b"cy@x.com", b"c\xe9@x.com"))
    for source, options in ((path, {}), (path, {"chunksize": 1}), (latin, {}), (latin, {"chunksize": 1})):
        with pytest.raises(ConfigError, match=rf"the header of .*{source.name} names the columns 'sender', "
                                              r"'recipients' twice or more.* Fix: give each column"):
            read = read_messages(source, strict=False, **options)
            list(read) if options else read
    table = pa.Table.from_arrays([pa.array(["t"]), pa.array(["m1"]), pa.array(["b@x.com"]), pa.array(["c@x.com"])],
                                 names=["tenant_id", "message_id", "recipients", "recipients"])
    (tmp_path / "archive").mkdir()
    pq.write_table(table, tmp_path / "archive" / "part-0.parquet")
    pq.write_table(table.select([0, 1, 2]), tmp_path / "archive" / "part-1.parquet")
    for source in (tmp_path / "archive", tmp_path / "archive" / "part-0.parquet"):
        with pytest.raises(ConfigError, match=r"part-0.parquet names the column 'recipients' twice or more"):
            read_messages(source)


def test_parquet_binary_column_with_bytes_utf8_cannot_decode_rejects_those_rows_as_csv_does(tmp_path):
    # pandas decoded a binary column while validating: a bare UnicodeDecodeError failed the whole read, where CSV
    # and JSON Lines set the rows holding such bytes aside as invalid_encoding.
    times = pa.array(pd.to_datetime(["2024-05-02T09:00Z"] * 3), pa.timestamp("ns", tz="UTC"))
    senders = pa.array([b"ann@acme.com", b"a\xe9nn@acme.com", b"bob@acme.com"], pa.binary())
    path = tmp_path / "mail.parquet"
    pq.write_table(pa.table({"tenant_id": ["t"] * 3, "message_id": ["m0", "m1", "m2"], "timestamp": times,
                             "sender": senders, "recipients": ["c@x.com"] * 3}), path)
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
    whole = read_messages(path, strict=False, tenants=tenants)
    parts = list(read_messages(path, strict=False, tenants=tenants, chunksize=2))
    for found in ([whole], parts):
        assert [i for m in found for i in m.frame["message_id"]] == ["m0", "m2"]
        assert [i for m in found for i in m.frame["sender"]] == ["ann@acme.com", "bob@acme.com"]
        rejects = pd.concat([m.rejects for m in found])
        assert rejects[["reject_column", "reject_reason", "reject_value", "message_id"]].values.tolist() == [
            ["sender", "invalid_encoding", "a\\xe9nn@acme.com", "m1"]]
    with pytest.raises(SchemaError, match=r"column 'sender': 1 row invalid_encoding .*rewrite the column as UTF-8"):
        read_messages(path, tenants=tenants)


def test_a_raw_carriage_return_in_a_jsonl_string_cuts_no_record_in_a_chunked_read(tmp_path):
    # The file's lines were split at a lone \r too (universal newlines): a chunked read cut the record in two,
    # rejected its halves as invalid_json and numbered every later record one higher than the whole read did.
    def record(i: int, **values) -> str:
        return json.dumps({"tenant_id": "t", "message_id": f"m{i}", "timestamp": "2024-05-02T09:00:00Z",
                           "sender": "ann@acme.com", "recipients": "bob@x.com", "direction": "outbound", **values})

    path = tmp_path / "mail.jsonl"
    path.write_bytes((record(0, subject="a\rb").replace("\\r", "\r") + "\n" + record(1) + "\n"
                      + record(2, sender="bad") + "\n").encode())
    old_mac = tmp_path / "old_mac.jsonl"  # lines ended by \r alone: still one record a line
    old_mac.write_bytes("".join(record(i) + "\r" for i in range(3)).encode())
    for source, kept, rejected in ((path, {"m0": 0, "m1": 1}, [(2, "invalid_address")]), (old_mac, {
            "m0": 0, "m1": 1, "m2": 2}, [])):
        whole = read_messages(source, strict=False)
        parts = list(read_messages(source, strict=False, chunksize=1))
        for found in ([whole], parts):
            assert {i: n for m in found for i, n in zip(m.frame["message_id"], m.frame.index)} == kept
            assert [(n, r) for m in found for n, r in zip(m.rejects.index, m.rejects["reject_reason"])] == rejected


def test_a_chunked_read_tells_apart_messages_whose_tenant_and_id_join_alike():
    # Earlier chunks' messages were remembered as tenant + '\x1f' + id: tenant 'a\x1fb' with id 'c' and tenant 'a'
    # with id 'b\x1fc' were one key, the second message rejected as a duplicate where the whole read kept both.
    frame = pd.DataFrame({"tenant_id": ["a\x1fb", "a", "a"], "message_id": ["c", "b\x1fc", "b\x1fc"],
                          "timestamp": "2024-05-02T09:00:00Z", "sender": "ann@acme.com", "recipients": "bob@x.com",
                          "direction": "outbound"})
    whole = read_messages(frame, strict=False)
    parts = list(read_messages(frame, strict=False, chunksize=1))
    for found in ([whole], parts):
        assert [(t, i) for m in found for t, i in zip(m.frame["tenant_id"], m.frame["message_id"])] == [
            ("a\x1fb", "c"), ("a", "b\x1fc")]
        assert [(n, r) for m in found for n, r in zip(m.rejects.index, m.rejects["reject_reason"])] == [
            (2, "duplicate_message_id")]


def test_a_later_copy_is_rejected_for_its_own_problems_in_a_chunked_read_as_in_a_whole_one(tmp_path):
    # A chunked read took out the repeats of an earlier chunk's messages before validating: a later copy with
    # problems of its own was only a duplicate_message_id, where the whole read (which calls only usable copies
    # copies) rejected it for its time, label and recipient.
    path = tmp_path / "mail.csv"
    path.write_text("tenant_id,message_id,timestamp,sender,recipients,label,direction\n"
                    "t,m1,2024-05-02T09:00:00Z,ann@acme.com,bob@x.com,,outbound\n"
                    "t,m1,not a time,ann@acme.com,bad,phish,outbound\n"
                    "t,m1,2024-05-02T09:00:00Z,ann@acme.com,bad;cy@x.com,,outbound\n"
                    "t,m2,2024-05-02T09:00:00Z,ann@acme.com,bob@x.com,,outbound\n")
    columns = ["reject_row", "reject_column", "reject_reason", "reject_value", "reject_action"]
    whole = read_messages(path, strict=False)
    for size in (1, 2):
        parts = list(read_messages(path, strict=False, chunksize=size))
        rejects = pd.concat([m.rejects for m in parts]).sort_values("reject_row", kind="stable")
        assert rejects[columns].values.tolist() == whole.rejects[columns].values.tolist()
        assert [i for m in parts for i in m.frame["message_id"]] == whole.frame["message_id"].tolist() == ["m1", "m2"]
    assert "duplicate_message_id" in whole.rejects["reject_reason"].tolist()
    with pytest.raises(SchemaError, match="unparseable_timestamp"):
        list(read_messages(path, chunksize=1))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], lines[1], lines[4]]) + "\n")  # an exact copy
    with pytest.raises(SchemaError, match="duplicate_message_id .*first seen in an earlier chunk"):
        list(read_messages(path, chunksize=1))


@pytest.mark.parametrize("folder, column", [("acme", pa.large_string()), ("1001", pa.string()), ("7", pa.int64()),
                                            ("acme", pa.dictionary(pa.int32(), pa.string()))])
def test_partition_folders_beside_a_files_own_column_of_any_type_are_read(tmp_path, folder, column):
    # pyarrow typed the folder's value by itself (int32 for '7') and failed to merge it with the file's own
    # column ('large_string vs string': pandas writes text so), failing every tenant of the archive.
    values = [int(folder)] if pa.types.is_integer(column) else [folder]
    (tmp_path / f"tenant_id={folder}").mkdir()
    pq.write_table(pa.table({"tenant_id": pa.array(values).cast(column), "message_id": ["m1"],
                             "timestamp": ["2024-05-01T10:00Z"], "sender": ["a@acme.com"], "recipients": ["b@x.com"]}),
                   tmp_path / f"tenant_id={folder}" / "p.parquet")
    m = read_messages(tmp_path, tenants=[{"tenant_id": folder, "own_domains": ["acme.com"]}])
    assert m.frame["tenant_id"].tolist() == [folder] and len(m.edges()) == 1
    other = [8] if pa.types.is_integer(column) else ["globex"]  # (a file naming another tenant is still refused)
    pq.write_table(pa.table({"tenant_id": pa.array(other).cast(column), "message_id": ["m2"],
                             "timestamp": ["2024-05-01T10:00Z"], "sender": ["a@acme.com"], "recipients": ["b@x.com"]}),
                   tmp_path / f"tenant_id={folder}" / "q.parquet")
    with pytest.raises(ConfigError, match=f"lies in the partition folder tenant_id={folder}"):
        read_messages(tmp_path, tenants=[{"tenant_id": folder, "own_domains": ["acme.com"]}])


def test_a_chunked_read_refuses_mail_to_no_own_address_as_a_whole_read_does_when_own_domains_are_inferred():
    # Own domains inferred from the first chunk were carried to the others as a configuration, and mail from outside
    # to no own address, refused in the first chunk and by a whole read, was read as inbound in the later ones.
    rows = [dict(tenant_id="acme", message_id=f"m{i}", timestamp="2024-05-04T10:00Z", sender="bob@partner.com",
                 recipients="ann@acme.com") for i in range(6)]
    twin = dict(tenant_id="acme", timestamp="2024-05-04T10:00Z", sender="eve@evil.com", recipients="eve2@evil.com")
    frame = pd.DataFrame([rows[0], dict(twin, message_id="x1"), *rows[1:], dict(twin, message_id="x2")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferredOwnDomainsWarning)
        whole = read_messages(frame, strict=False)
        chunks = list(read_messages(frame, strict=False, chunksize=4))
    kept = sorted(m for c in chunks for m in c.frame["message_id"].astype(str))
    assert kept == sorted(whole.frame["message_id"].astype(str)) == [f"m{i}" for i in range(6)]
    refused = sorted(m for c in chunks for m in c.rejects["message_id"].astype(str))
    assert refused == sorted(whole.rejects["message_id"].astype(str)) == ["x1", "x2"]


def test_the_files_of_a_tenant_folder_are_those_pathlib_glob_finds(tmp_path):
    # The listing of a tenant's folder walks it with os.scandir: it finds what folder.glob("**/*") filtered to
    # files not named hidden found, links and hidden folders included.
    import os

    folder = tmp_path / "tenant_id=acme"
    for name in ("date=1/a.parquet", "date=1/.a.parquet.crc", "date=1/_SUCCESS", "date=2/deep/b.parquet",
                 ".staging/c.parquet", "_temporary/d.parquet", "top.parquet"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    outside = tmp_path / "elsewhere"
    (outside / "date=9").mkdir(parents=True)
    (outside / "date=9" / "e.parquet").write_bytes(b"x")
    os.symlink(outside / "date=9", folder / "date=9")  # a linked folder: glob does not enter it
    os.symlink(outside / "date=9" / "e.parquet", folder / "date=1" / "linked.parquet")  # a linked file: found
    os.symlink(tmp_path / "gone.parquet", folder / "date=1" / "broken.parquet")  # a broken link: no file
    expected = sorted(str(f) for f in folder.glob("**/*") if f.is_file() and not f.name.startswith((".", "_")))
    assert sorted(readers._files_below(folder)) == expected
    assert len(expected) == 6
    assert readers._files_below(tmp_path / "tenant_id=nobody") == []


def test_of_several_damaged_parquet_files_the_first_is_named(tmp_path):
    # Footers are read by several threads, each given every eighth file: a damaged file is still named as the
    # read of the files in order names it, the first one, whichever thread met which first.
    from commgraph.graph import CommGraphError

    names = [f"part-{i:02d}.parquet" for i in range(20)]
    for name in names:
        mail(5).to_parquet(tmp_path / name)
    for damaged in (names[10], names[3]):  # (threads 2 and 3 of 8)
        (tmp_path / damaged).write_bytes((tmp_path / damaged).read_bytes()[:200])
    with pytest.raises(CommGraphError, match=r"part-03\.parquet"):
        read_messages(tmp_path)


@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")
def test_enum_columns_read_as_categories_validate_as_their_text_does():
    # Parquet written from pandas reads enum columns back as categories, whose codes validation takes as the
    # factorisation: the result, rejects and their values included, is the text's.
    frame = mail(12).assign(
        direction=[" Inbound", "OUTBOUND", "", None, "sideways", "internal", "inbound", "Outbound ", "x", "",
                   "inbound", None],
        spf=["pass", "PASS", " fail", None, "nope", "", "softfail", "neutral", "none", "temperror", "permerror",
             "pass"],
        label=[None, "spam", "Attack", "safe", "", "phish", None, "spam", "safe", "attack", " ", "spam"])
    text = frame.astype({c: object for c in ("direction", "spf", "label")})
    categories = frame.astype({c: pd.CategoricalDtype([*pd.unique(frame[c].dropna()), "never used"])
                               for c in ("direction", "spf", "label")})
    assert isinstance(categories["spf"].dtype, pd.CategoricalDtype)
    expected = validate(text, strict=False)
    got = validate(categories, strict=False)
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    # (the rejected rows keep the input's columns, categories or text)
    as_text = {c: object for c in ("direction", "spf", "label")}
    pd.testing.assert_frame_equal(got.rejects.astype(as_text), expected.rejects)
    assert set(expected.rejects["reject_column"]) >= {"direction", "spf", "label"}
    # Categories that are not all text (a number among them) are read as their text, as before.
    mixed = text.assign(spf=pd.Categorical(["pass", 7, "fail"] * 4))
    pd.testing.assert_frame_equal(validate(mixed, strict=False).rejects.astype(as_text),
                                  validate(mixed.astype({"spf": object}), strict=False).rejects)


def test_untidy_text_is_what_a_regular_expression_of_unicode_white_space_finds():
    # Which values validation tidies (white space at either end, or empty) is told by Arrow's trim: the same as
    # the regular expression of Unicode white space it replaced, for every code point at either end.
    import pyarrow.compute as pc

    from commgraph.graph._timestamps import _UNICODE_SPACE

    every = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    values = pa.array([v for ch in every for v in (ch, "a" + ch, ch + "a", "a" + ch + "a", ch + ch)] + ["", None],
                      pa.large_string())
    expected = pc.match_substring_regex(values, f"^{_UNICODE_SPACE}|{_UNICODE_SPACE}$|^$")
    assert validation._untidy(values).equals(expected)
    assert 0 < pc.sum(expected).as_py() < len(values) // 2
