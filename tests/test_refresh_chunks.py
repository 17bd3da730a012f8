"""Bounded memory: a tenant built from chunks of its mail (partial states, merged) equals the one-shot build."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines, run_refresh
from commgraph.baselines._build import _windows
from commgraph.baselines._config import duration_ns
from commgraph.baselines._events import EventExtractor
from commgraph.baselines._job import _build_chunked, peak_mib, reset_peak
from commgraph.baselines._partial import finish_snapshot, merge_states
from commgraph.baselines._snapshot import table_differences
from commgraph.baselines._state import TenantState
from commgraph.graph import CommGraphError, generate, validate
from conftest import state_differences

AS_OF = pd.Timestamp("2025-01-11T00:00Z")
# Short windows and settle delay, so that mail falls in and out of every window within the six days.
CONFIG = BaselineConfig(windows=("1d", "3d"), half_life="2d", settle_delay="1d")


@pytest.fixture(scope="module")
def mail():
    g = generate(tenants=2, days=6, scale=0.02, random_state=1)
    raw = g.messages.copy()
    raw.loc[raw.index[5:9], "sender"] = None  # rejected: missing sender
    copies = raw[raw["tenant_id"] == "tenant-02"].iloc[:12]  # repeated ids, far from their first copies
    return pd.concat([raw, copies], ignore_index=True), list(g.tenants)


@pytest.fixture(scope="module")
def one_shot(mail):
    """Each tenant validated and built whole and on its own, as the job reads it without chunks."""
    raw, tenants = mail
    out = {}
    for tenant in ("tenant-01", "tenant-02"):
        messages = validate(raw[raw["tenant_id"] == tenant], tenants=tenants, strict=False)
        out[tenant] = messages, build_baselines(messages, as_of=AS_OF, config=CONFIG)[tenant]
    return out


@settings(max_examples=6, deadline=None)
@given(chunk_rows=st.integers(150, 3000))
def test_chunked_build_equals_the_one_shot_build_for_any_chunk_size(mail, one_shot, chunk_rows):
    raw, tenants = mail
    for tenant, (whole, expected) in one_shot.items():
        snapshot, counts = _build_chunked(tenant, raw, AS_OF, CONFIG, chunk_rows, {"tenants": tenants})
        assert table_differences(snapshot, expected, rtol=1e-9) == [], (tenant, chunk_rows)
        assert state_differences(snapshot, expected) == [], (tenant, chunk_rows)
        assert snapshot.fingerprint == expected.fingerprint and snapshot.priors == expected.priors
        summary = whole.summary()
        assert (counts.messages, counts.rejected) == (summary["messages"], summary["rejected_rows"])
        assert dict(counts.by_reason) == summary["rejects_by_reason"]


def _event_rows(messages, tenant):
    return EventExtractor(messages, as_of=AS_OF).extract(tenant)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), parts=st.integers(1, 6))
def test_merged_partial_states_equal_the_state_over_all_rows_in_any_order(mail, seed, parts):
    raw, tenants = mail
    ev = _event_rows(validate(raw, tenants=tenants, strict=False), "tenant-02")
    rng = np.random.default_rng(seed)
    message = np.cumsum(ev.rows["head"]) - 1  # the rows of one message stay together, as in any chunk
    part = rng.integers(0, parts, message.max() + 1)[message]
    common = dict(as_of=AS_OF.value, windows=_windows(CONFIG), settle_delay=duration_ns(CONFIG.settle_delay),
                  half_life=duration_ns(CONFIG.half_life), names=ev.names)
    whole = TenantState.build("tenant-02", ev.rows, fingerprint=ev.fingerprint, **common)
    pieces = [TenantState.build("tenant-02", {c: v[part == p] for c, v in ev.rows.items()}, fingerprint=0, **common)
              for p in rng.permutation(parts)]
    merged = merge_states(pieces)
    merged.fingerprint = whole.fingerprint  # fingerprints are checked through the chunked reads above
    a, b = finish_snapshot(merged, CONFIG), finish_snapshot(whole, CONFIG)
    assert table_differences(a, b, rtol=1e-9) == []
    assert state_differences(a, b) == []


def test_merge_refuses_states_of_other_tenants_or_instants(mail):
    raw, tenants = mail
    messages = validate(raw, tenants=tenants, strict=False)
    common = dict(windows=_windows(CONFIG), settle_delay=duration_ns(CONFIG.settle_delay),
                  half_life=duration_ns(CONFIG.half_life))
    states = {}
    for tenant in ("tenant-01", "tenant-02"):
        ev = _event_rows(messages, tenant)
        states[tenant] = TenantState.build(tenant, ev.rows, as_of=AS_OF.value, names=ev.names,
                                           fingerprint=ev.fingerprint, **common)
    with pytest.raises(CommGraphError, match="'tenant-01'.*'tenant-02'.*only within one tenant"):
        states["tenant-01"].merge(states["tenant-02"])
    ev = _event_rows(messages, "tenant-01")
    later = TenantState.build("tenant-01", ev.rows, as_of=AS_OF.value + 1, names=ev.names, fingerprint=0, **common)
    with pytest.raises(CommGraphError, match="instant"):
        states["tenant-01"].merge(later)
    assert merge_states([]) is None


def test_chunked_job_equals_the_whole_read_job_outcomes_included(tmp_path, mail):
    raw, tenants = mail
    whole = run_refresh(raw, store=tmp_path / "whole", as_of=AS_OF, config=CONFIG, tenant_configs=tenants,
                        chunk_rows=None)
    chunked = run_refresh(raw, store=tmp_path / "chunked", as_of=AS_OF, config=CONFIG, tenant_configs=tenants,
                          chunk_rows=150, jobs=2)  # both tenants are larger: both read in chunks
    columns = ["tenant_id", "status", "mode", "version", "rows_read", "rows_rejected"]
    assert chunked.table()[columns].equals(whole.table()[columns])
    assert [o.rejects_by_reason for o in chunked.outcomes] == [o.rejects_by_reason for o in whole.outcomes]
    assert whole.outcomes[1].rejects_by_reason.get("duplicate_message_id") == 12  # copies in later chunks
    assert sum(o.rejects_by_reason.get("missing_value", 0) for o in whole.outcomes) == 4
    a, b = SnapshotStore(tmp_path / "whole"), SnapshotStore(tmp_path / "chunked")
    for tenant in a.tenants():
        assert table_differences(a.load(tenant), b.load(tenant)) == [], tenant
    # Same content fingerprint: the chunked job finds nothing new in the whole-read job's store.
    again = run_refresh(raw, store=tmp_path / "whole", as_of=AS_OF, config=CONFIG, tenant_configs=tenants,
                        chunk_rows=300)
    assert {o.status for o in again.outcomes} == {"unchanged"}


def test_a_tenant_given_one_row_per_recipient_is_read_whole_however_large(tmp_path, mail):
    # A message's recipient rows may straddle chunks, so such input is not read in chunks: the tenant is
    # read whole (as below chunk_rows), not failed.
    raw, tenants = mail
    messages = validate(raw, tenants=tenants, strict=False)
    edges = messages.edges()
    rows = pd.DataFrame({"tenant_id": edges["tenant_id"].astype(str).to_numpy(),
                         "message_id": messages.frame["message_id"].astype(str).to_numpy()[
                             edges["message_index"].to_numpy()],
                         "timestamp": messages.frame["timestamp"].to_numpy()[edges["message_index"].to_numpy()],
                         "sender": messages.frame["sender"].astype(str).to_numpy()[edges["message_index"].to_numpy()],
                         "recipient": edges["recipient"].astype(str).to_numpy()})
    whole = run_refresh(rows, store=tmp_path / "whole", as_of=AS_OF, config=CONFIG, tenant_configs=tenants,
                        chunk_rows=None)
    chunked = run_refresh(rows, store=tmp_path / "chunked", as_of=AS_OF, config=CONFIG, tenant_configs=tenants,
                          chunk_rows=150)
    assert chunked.exit_code == whole.exit_code == 0
    a, b = SnapshotStore(tmp_path / "whole"), SnapshotStore(tmp_path / "chunked")
    assert a.tenants() == b.tenants() and a.tenants()
    for tenant in a.tenants():
        assert table_differences(a.load(tenant), b.load(tenant)) == [], tenant


def test_own_domains_inferred_from_all_the_mail_even_when_chunked(tmp_path):
    # Without tenant configurations or a direction column, own domains are inferred from all of a tenant's
    # mail: acme.com receives most of it. The first chunk alone would take vendor.com for acme's own domain
    # (it only holds acme's outbound mail), so a tenant inferred over several chunks is read again whole.
    n_out, n_in = 150, 300
    raw = pd.DataFrame({
        "tenant_id": "acme", "message_id": [f"m{i}" for i in range(n_out + n_in)],
        "timestamp": pd.date_range("2025-01-05", periods=n_out + n_in, freq="15min", tz="UTC"),
        "sender": ["boss@acme.com"] * n_out + [f"v{i % 7}@vendor.com" for i in range(n_in)],
        "recipients": [f"x{i % 9}@vendor.com" for i in range(n_out)] + [f"u{i % 5}@acme.com" for i in range(n_in)]})
    whole = run_refresh(raw, store=tmp_path / "whole", as_of=AS_OF, config=CONFIG, chunk_rows=None)
    chunked = run_refresh(raw, store=tmp_path / "chunked", as_of=AS_OF, config=CONFIG, chunk_rows=100)
    assert whole.exit_code == chunked.exit_code == 0
    a, b = SnapshotStore(tmp_path / "whole").load("acme"), SnapshotStore(tmp_path / "chunked").load("acme")
    assert a.table("tenant")[["n_outbound", "n_inbound"]].values.tolist() == [[n_out, n_in]]
    assert table_differences(a, b) == []


def test_peak_memory_is_reported_per_tenant():
    before = peak_mib()
    block = np.ones(40 * 2**20)  # 320 MiB touched
    assert peak_mib() > before + 300
    del block
    reset_peak()
    assert peak_mib() < before + 100  # the next tenant's figure does not carry the earlier peak
