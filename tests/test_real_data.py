"""The contract on real corpora (../shared/data, see its README)."""

from __future__ import annotations

import pandas as pd
import pytest

from commgraph.graph import read_messages

ENRON = [{"tenant_id": "enron", "own_domains": ["enron.com"]}]
W3C = [{"tenant_id": "w3c", "own_domains": ["w3.org"]}]


def test_enron_messages(real_data):
    raw = pd.read_csv(real_data / "enron_jhu" / "messages.csv.gz").assign(tenant_id="enron")
    m = read_messages(raw, strict=False, tenants=ENRON)
    assert len(raw) == 22_977
    out_of_range = m.rejects[m.rejects["reject_reason"] == "timestamp_out_of_range"]
    # The README: 31 messages carry the placeholder 1980-01-01T00:00Z.
    assert len(out_of_range) == 31 == raw["timestamp_suspect"].sum()
    assert set(out_of_range["reject_value"]) == {"1980-01-01T00:00:00Z"}
    assert m.summary()["rejected_rows"] + len(m) == len(raw)
    assert set(m.frame["direction"]) == {"internal"}
    # "a..martin@enron.com" is a real (if odd) local part and must be kept.
    assert (m.frame["sender"] == "a..martin@enron.com").any() or (m.edges()["recipient"] == "a..martin@enron.com").any()


def test_enron_edge_rows_reject_folder_copies(real_data):
    raw = pd.read_csv(real_data / "enron_jhu" / "edges.csv.gz").assign(tenant_id="enron")
    assert len(raw) == 125_409
    m = read_messages(raw, columns={"recipient_type": "recip_type"}, strict=False, tenants=ENRON,
                      time_range=None)
    dups = m.rejects[m.rejects["reject_reason"] == "duplicate_edge"]
    # The README: 78,886 rows repeat an earlier (message, recipient, type) row.
    assert len(dups) == 78_886 == raw["duplicate_row"].sum()
    assert set(dups.index) == set(raw.index[raw["duplicate_row"]])
    unique_edges = raw.loc[~raw["duplicate_row"]].drop_duplicates(["message_id", "recipient"])
    assert len(m.edges()) == len(unique_edges)
    assert len(m) == raw["message_id"].nunique()


def test_w3c_lists(real_data):
    raw = pd.read_csv(real_data / "w3c_email" / "messages.csv.gz").assign(tenant_id="w3c")
    assert len(raw) == 114_794
    with pytest.warns(UserWarning, match="replaces the input's 'n_recipients'"):  # (the export's own count)
        m = read_messages(raw, strict=False, tenants=W3C, time_range=None)
    rejected = m.summary()["rejected_rows"]
    assert rejected + len(m) == len(raw)
    assert rejected < 0.01 * len(raw)
    reasons = set(m.rejects["reject_reason"])
    assert reasons <= {"invalid_address", "no_valid_recipients", "invalid_recipient", "direction_undecidable"}
    # 90% of edges go to @w3.org lists (README).
    share = (m.edges()["recipient_domain"] == "w3.org").mean()
    assert share > 0.85
    # Senders the README shows as malformed are set aside with a reason, not kept.
    assert not m.frame["sender"].str.contains('"', regex=False).any()


def test_w3c_placeholder_and_outlier_years_are_flagged(real_data):
    raw = pd.read_csv(real_data / "w3c_email" / "messages.csv.gz").drop(columns=["n_recipients"]).assign(
        tenant_id="w3c")
    m = read_messages(raw, strict=False, tenants=W3C)
    early = m.rejects[m.rejects["reject_reason"] == "timestamp_out_of_range"]
    assert len(early) == (pd.to_datetime(raw["timestamp"], utc=True) < "1990-01-01").sum() > 0


def test_eu_core_departments_as_four_tenants(real_data):
    raw = pd.read_csv(real_data / "eu_core_temporal" / "dept_messages.csv.gz")
    assert len(raw) == 102_974 and raw["tenant"].nunique() == 4
    # Node ids are per department: the address carries the tenant so ids never mix.
    address = lambda ids, t: "n" + ids.astype(str) + "@" + t + ".example.org"  # noqa: E731
    recipients = raw["recipients"].astype(str).str.split(";").explode()
    recipients = address(recipients, raw["tenant"].reindex(recipients.index)).groupby(level=0).agg(";".join)
    frame = pd.DataFrame({"tenant_id": raw["tenant"], "message_id": raw["message_id"], "timestamp": raw["timestamp"],
                          "sender": address(raw["sender"], raw["tenant"]), "recipients": recipients,
                          "direction": "internal"})
    m = read_messages(frame, timestamp_origin="2000-01-01", time_range=None)
    assert len(m) == len(raw) and len(m.rejects) == 0
    entries = int(raw["n_recipients"].sum())
    assert entries == 168_175  # the README's edge count
    # Every entry is an edge, or a repeat of a recipient within its message, counted.
    assert len(m.edges()) + m.summary()["repeated_recipients_merged"] == entries
    assert m.frame["timestamp"].min() == pd.Timestamp("2000-01-01", tz="UTC")
    for tenant in m.tenants:
        assert m.for_tenant(tenant).edges()["recipient"].astype(str).str.endswith(f"@{tenant}.example.org").all()
