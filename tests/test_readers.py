"""Readers: every source form gives the same messages; chunks equal the whole."""

from __future__ import annotations

import gc
import weakref

import pandas as pd
import pytest
from hypothesis import given, strategies as st

from commgraph.graph import ConfigError, Messages, read_frame, read_messages, validate
from commgraph.graph import _readers as readers, _validate as validation


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
    assert len(m.rejects) == 0 and list(m.rejects.columns[5:]) == list(raw.columns)

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
