"""consistency_report: an engine's log against the signals recomputed from the history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from commgraph.baselines import build_baselines
from commgraph.graph import ConfigError, generate, validate
from commgraph.signals import Scorer, backfill, consistency_report


@pytest.fixture(scope="module")
def history():
    g = generate(tenants=2, days=12, scale=0.01, random_state=4)
    return g.messages, g.tenants, validate(g.messages, tenants=g.tenants)


@pytest.fixture(scope="module")
def engine_log(history):
    """What an engine refreshed at midnight logged: each day's mail scored against that midnight's snapshots."""
    raw, tenants, messages = history
    ts = messages.frame["timestamp"]
    days = ts.dt.floor("D")
    logged = []
    for day in sorted(days.unique())[-4:]:  # the engine went live four days before the end
        snapshots = build_baselines(messages, as_of=day)
        scorer = Scorer(snapshots, tenant_configs=tenants)
        batch = validate(raw.loc[messages.frame.index[(days == day).to_numpy()]], tenants=tenants)
        logged.append(scorer.score(batch))
    return pd.concat(logged, ignore_index=True)


def test_an_engine_refreshed_daily_is_consistent_with_the_backfill(history, engine_log) -> None:
    _, _, messages = history
    report = consistency_report(engine_log, messages)
    assert report.consistent, str(report)
    assert (report.frame["mismatches"] == 0).all() and len(report.frame) == 35
    assert report.frame["rows"].iloc[0] == len(engine_log)
    # The history goes back further than the log: earlier mail is not "missing".
    assert report.missing.empty and report.extra.empty
    # Recomputed as if baselines were current to the second, the same log does not match.
    fresh = consistency_report(engine_log, messages, mode="fresh")
    assert not fresh.consistent and fresh.frame.set_index("signal").loc["sender_messages_7d", "mismatches"] > 0


def test_planted_mismatches_missing_and_extra_rows_are_found(history, engine_log) -> None:
    _, _, messages = history
    log = engine_log.copy()
    rng = np.random.default_rng(0)
    changed = rng.choice(len(log), 7, replace=False)
    log.loc[changed, "pair_messages"] += 3
    log.loc[changed[:2], "sender_safe_likelihood"] = np.float32(0.123)
    dropped = log.index[[10, 20, 30]]
    gone = log.loc[dropped, ["tenant_id", "message_id", "recipient"]].astype(str)
    log = log.drop(index=dropped)
    ghost = log.iloc[[0]].assign(message_id="never-sent")
    log = pd.concat([log, ghost, log.iloc[[5]]], ignore_index=True)  # an unknown message and a repeat
    log["engine_version"] = "1.2"
    report = consistency_report(log, messages)
    by_signal = report.frame.set_index("signal")
    assert by_signal.loc["pair_messages", "mismatches"] == 7
    assert by_signal.loc["pair_messages", "max_abs_diff"] == 3.0
    assert by_signal.loc["sender_safe_likelihood", "mismatches"] == 2
    assert by_signal["mismatches"].sum() == 9
    assert by_signal.loc["pair_messages", "mismatch_rate"] == pytest.approx(7 / (len(engine_log) - 3))
    assert sorted(map(tuple, report.missing.astype(str).to_numpy())) == sorted(map(tuple, gone.to_numpy()))
    assert len(report.extra) == 2 and "never-sent" in set(report.extra["message_id"])
    assert report.unknown_columns == ["engine_version"]
    assert set(report.largest["signal"]) == {"pair_messages", "sender_safe_likelihood"}
    text = str(report)
    assert "INCONSISTENT" in text and "pair_messages" in text and "missing rows" in text and "3" in text


def test_message_level_logs(history) -> None:
    _, _, messages = history
    log = backfill(messages, mode="as_deployed", level="message").tail(50)
    assert consistency_report(log, messages).consistent


def test_bad_logs_are_refused(history) -> None:
    _, _, messages = history
    with pytest.raises(ConfigError, match="needs tenant_id and message_id"):
        consistency_report(pd.DataFrame({"message_id": ["1"], "pair_messages": [1]}), messages)
    with pytest.raises(ConfigError, match="none of the signals"):
        consistency_report(pd.DataFrame({"tenant_id": ["a"], "message_id": ["1"], "score": [0.5]}), messages)
    with pytest.raises(ConfigError, match="must be a DataFrame"):
        consistency_report([{"tenant_id": "a"}], messages)


def test_counts_are_compared_exactly_in_the_logged_dtype(history, engine_log, monkeypatch) -> None:
    # A relative tolerance would let an off-by-one pass on a large count; a count logged as float32 is compared
    # with the recomputed count as float32 holds it, so the engine's own rounding is not a mismatch.
    from commgraph.signals import _consistency

    _, _, messages = history
    offline = backfill(messages, mode="as_deployed")
    big = (offline["sender_messages_90d"].astype(np.int64) + 16_777_217).astype(np.int32)
    offline["sender_messages_90d"] = big
    monkeypatch.setattr(_consistency, "backfill", lambda *a, **kw: offline.copy())
    log = engine_log.merge(offline[["tenant_id", "message_id", "recipient", "sender_messages_90d"]],
                           on=["tenant_id", "message_id", "recipient"], suffixes=("_old", ""))
    log = log.drop(columns=["sender_messages_90d_old"])
    assert consistency_report(log, messages).consistent
    as_float32 = log.assign(sender_messages_90d=log["sender_messages_90d"].astype(np.float32))
    assert (as_float32["sender_messages_90d"].astype(np.int64) != log["sender_messages_90d"]).any()  # rounded
    assert consistency_report(as_float32, messages).consistent
    # The same log read back with pandas' nullable or Arrow dtypes (Parquet with dtype_backend=) holds float32 too.
    for dtype in ("Float32", "float32[pyarrow]"):
        assert consistency_report(as_float32.astype({"sender_messages_90d": dtype}), messages).consistent, dtype
    # A float64 log holds the counts exactly: compared as they are, not rounded to float32.
    assert consistency_report(log.astype({"sender_messages_90d": "Float64"}), messages).consistent
    off_by_one = log.copy()
    off_by_one.loc[3, "sender_messages_90d"] += 1
    by_signal = consistency_report(off_by_one, messages).frame.set_index("signal")
    assert by_signal.loc["sender_messages_90d", "mismatches"] == 1
    assert by_signal.loc["sender_messages_90d", "max_abs_diff"] == 1.0


def test_a_tenant_the_engine_stopped_logging_shows_its_mail_as_missing(history, engine_log) -> None:
    _, _, messages = history
    keys = ["tenant_id", "message_id"]
    times = messages.frame[keys + ["timestamp"]].astype({k: str for k in keys})
    logged_at = engine_log[keys].astype(str).merge(times, on=keys, how="left")["timestamp"]
    stop = logged_at.sort_values().iloc[len(logged_at) // 2]
    quiet = ((engine_log["tenant_id"] == "tenant-02") & (logged_at > stop)).to_numpy()
    report = consistency_report(engine_log[~quiet], messages)
    assert not report.consistent and len(report.missing) == int(quiet.sum()) > 0
    assert set(report.missing["tenant_id"]) == {"tenant-02"} and report.unlogged_tenants == []
    # A log of one tenant: the other is named, and its mail is not counted as missing.
    alone = consistency_report(engine_log[(engine_log["tenant_id"] == "tenant-01").to_numpy()], messages)
    assert alone.consistent and alone.unlogged_tenants == ["tenant-02"]
    assert "nothing logged: 1 (tenant-02)" in str(alone)


def test_an_engine_refreshed_at_six_and_live_half_an_hour_later_is_consistent_on_its_schedule(history) -> None:
    # The refresh job runs daily at 06:00 UTC and its snapshots serve from 06:30: mail in between was scored
    # with the day before's. Described as such, the log is consistent; as a midnight schedule, it is not.
    raw, tenants, messages = history
    ts = messages.frame["timestamp"]
    runs = sorted((ts - pd.Timedelta("6h")).dt.floor("D").unique())[-4:]
    logged = []
    for run in runs:
        instant = run + pd.Timedelta("6h")
        live = (ts >= instant + pd.Timedelta("30min")) & (ts < instant + pd.Timedelta("1D30min"))
        if not live.any():
            continue
        scorer = Scorer(build_baselines(messages, as_of=instant), tenant_configs=tenants)
        logged.append(scorer.score(validate(raw.loc[messages.frame.index[live.to_numpy()]], tenants=tenants)))
    log = pd.concat(logged, ignore_index=True)
    report = consistency_report(log, messages, refresh_offset="6h", publish_delay="30min")
    assert report.consistent, str(report)
    assert not consistency_report(log, messages).consistent
    assert not consistency_report(log, messages, refresh_offset="6h").consistent


def test_a_logged_value_that_is_no_number_is_a_mismatch(history, engine_log) -> None:
    # Read as NaN, junk the engine wrote passed as equal wherever the offline value is missing too (the days
    # since the last message of a first contact), and the report said consistent.
    _, _, messages = history
    log = engine_log.copy()
    first_contact = np.flatnonzero(log["pair_days_since_last"].isna().to_numpy())[:2]
    counted = np.flatnonzero(log["pair_messages"].to_numpy() > 0)[:1]
    log["pair_days_since_last"] = log["pair_days_since_last"].astype(object)
    log.loc[first_contact, "pair_days_since_last"] = "ERR: lookup timeout"
    blank = np.flatnonzero(log["pair_days_since_last"].isna().to_numpy())[:2]
    log.loc[blank, "pair_days_since_last"] = ["", " "]  # a blank logged value is a missing one: no mismatch
    log["pair_messages"] = log["pair_messages"].astype(object)
    log.loc[counted, "pair_messages"] = "n/a"
    report = consistency_report(log, messages)
    assert not report.consistent and len(first_contact) == 2
    by_signal = report.frame.set_index("signal")
    assert by_signal.loc["pair_days_since_last", "mismatches"] == 2
    assert by_signal.loc["pair_messages", "mismatches"] == 1
    assert by_signal["mismatches"].sum() == 3


def test_the_report_s_repr_is_a_short_summary() -> None:
    # The dataclass's repr printed every frame whole (the table of signals, the largest differences, the rows
    # missing and extra): one line now, with the counts and the largest differences.
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    m = validate(pd.DataFrame({"tenant_id": "acme", "message_id": [str(i) for i in range(6)],
                               "timestamp": [f"2024-05-0{i + 1}T09:00Z" for i in range(6)], "sender": "ann@vendor.com",
                               "recipients": "cy@acme.com"}), tenants=tenants)
    log = backfill(m, mode="as_deployed", signals=["pair"])
    assert repr(consistency_report(log, m, signals=["pair"])) == (
        "ConsistencyReport(consistent (as_deployed): 4 signals over 6 logged rows, 0 differ; 0 missing, 0 extra)")
    log["pair_messages"] = log["pair_messages"] + np.arange(1, 7)  # the row of message 5 differs most
    text = repr(consistency_report(log.drop(index=2), m, signals=["pair"]))  # (message 2 not logged: missing)
    assert "\n" not in text and len(text) < 400, text
    assert text.startswith("ConsistencyReport(INCONSISTENT (as_deployed): 4 signals over 5 logged rows, 1 differs; "
                           "1 missing, 0 extra; largest differences: pair_messages of acme '5': logged 11, offline "
                           "5; pair_messages of acme '4': logged 9, offline 4; "), text
    assert text.endswith(" (and 2 more))"), text
