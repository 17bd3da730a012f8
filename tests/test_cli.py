"""The command line's own words: usage errors name the option typed, its value and the fix, never a Python
parameter; the Python API keeps naming its parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from commgraph.baselines import run_refresh
from commgraph.graph import ConfigError, SchemaError, generate, validate, write_generated
from commgraph.signals._cli import main
from conftest import ACME, frame

AS_OF = "2025-01-14T00:00Z"


@pytest.fixture
def mail_csv(tmp_path) -> Path:
    path = tmp_path / "mail.csv"
    frame().to_csv(path, index=False)
    return path


def _refresh(mail_csv: Path, *extra: str) -> list[str]:
    return ["refresh", "--input", str(mail_csv), "--store", str(mail_csv.parent / "store"), "--as-of", AS_OF,
            *extra]


@pytest.mark.parametrize("extra, words", [
    (["--jobs", "0"], "--jobs 0: must be a positive integer or -1"),
    (["--jobs", "-3"], "--jobs -3: must be a positive integer or -1"),
    (["--chunk-rows", "-5"], "--chunk-rows -5: must be a positive integer, or 0 (each tenant read whole)"),
    (["--engine", "spark", "--jobs", "2"], "--jobs 2: must be 1 with --engine spark"),
    (["--engine", "spark", "--incremental"], "--incremental cannot be given with --engine spark"),
])
def test_refresh_usage_errors_name_the_option_typed(mail_csv, capsys, extra, words):
    # They named run_refresh's parameters ("The 'jobs' parameter of run_refresh", "leave 'jobs' at 1").
    assert main(_refresh(mail_csv, *extra)) == 2
    err = capsys.readouterr().err
    assert words in err and "parameter of" not in err and "engine='spark'" not in err, err


@pytest.mark.parametrize("extra, words", [
    (["--days", "0"], "--days 0: must be an int in [1, 100000]"),
    (["--tenants", "0"], "--tenants 0: must be an int in [1, 100000]."),
    (["--seed", "-1"], "--seed -1: must be an int >= 0."),
    (["--scale", "0"], "--scale 0.0: must be a number in (0, 10000]"),
    (["--attack-rate", "2"], "--attack-rate 2.0: must be a number in [0, 1]"),
    (["--scenarios", "nope"], "--scenarios nope: must be a list of names from ['exec_impersonation'"),
    (["--chunk-messages", "10"], "--chunk-messages 10: must be an int >= 1000"),
    (["--start", "not a date"], "--start 'not a date': must be a date such as '2025-01-06'"),
])
def test_generate_usage_errors_name_the_option_typed(tmp_path, capsys, extra, words):
    # They named write_generated's parameters ('random_state' for --seed, "a numpy SeedSequence or None").
    assert main(["generate", "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and "parameter of" not in err and "SeedSequence" not in err and "TenantSpec" not in err, err
    assert not (tmp_path / "out").exists()


def test_generate_says_that_chunk_messages_changes_the_mail(capsys):
    # Its help read as a memory setting only: another value generates other mail from the same --seed.
    from commgraph.graph import generate_chunks

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default 500000); changing it changes the mail generated" in help_text, help_text
    for function in (generate, generate_chunks):
        assert "changing it changes the mail generated" in " ".join(function.__doc__.split()), function


def test_generate_names_out_and_says_what_is_in_the_way(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    (tmp_path / "file").write_text("")
    for name, why in (("full", "It is not empty"), ("file", "It is a file")):
        assert main(["generate", "--out", str(tmp_path / name), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"--out {tmp_path / name}: must be an empty or absent directory. {why}" in err, err


def test_fixes_read_from_the_library_are_given_as_options(tmp_path, capsys):
    # validate listed "pass timezone='<IANA zone>'", "pass timestamp_unit='s' or 'ms'" (no such option), a missing
    # column's "columns={'sender': '<your column>'}", "pass format='parquet', ..." and warned through Python's
    # machinery ("commgraph:6: InferredOwnDomainsWarning: ... Pass tenants=[TenantConfig(...)]").
    cases = {
        "naive.csv": (frame(timestamp=["2024-05-02 09:00"] * 3), "give --timezone <IANA zone>"),
        "epoch.csv": (frame(timestamp=[1714640400, 1714640400000, 1714644000]), "give --timestamp-unit s or ms"),
        "nosender.csv": (frame().drop(columns=["sender"]), "--columns sender=<your column>"),
        "mail.txt": (frame(), "give --format parquet, csv or jsonl"),
        # (said "read again with encoding='<the file's encoding>' ..., or strict=False to set these rows aside")
        "latin.csv": (frame(sender_display_name=["José García"] * 3), "give --encoding <the file's encoding>"),
        # (many tenants: one warning for all, its fix worded for the command line too)
        "manytenants.csv": (pd.concat([frame(tenant_id=f"t{i}", recipients=f"cy@t{i}.com") for i in range(12)]),
                            "Give them with --tenant-config (a TOML file: a [[tenant]] table per tenant"),
        "nodirection.csv": (frame(), "Give them with --tenant-config"),
    }
    for name, (rows, words) in cases.items():
        rows.to_csv(tmp_path / name, index=False, encoding="latin-1" if name == "latin.csv" else "utf-8")
        main(["validate", str(tmp_path / name)])
        captured = capsys.readouterr()
        said = captured.out + captured.err
        assert words in said, (name, said)
        assert not any(python in said for python in ("timezone=", "timestamp_unit=", "columns={", "format=", "strict=",
                                                      "encoding=",
                                                      "TenantConfig(", "Warning:")), (name, said)
    assert "commgraph validate: warning: tenant 'acme': no own domains configured" in said


def test_every_command_reads_epoch_numbers_in_the_timestamp_unit_given(tmp_path, capsys):
    # The command line had no option for the unit: microsecond epochs (as many logs write them) could not be
    # read at all, and were refused as "numbers mix epoch-second and epoch-millisecond magnitudes".
    from commgraph.baselines import SnapshotStore

    iso = frame()
    micro = iso.assign(timestamp=pd.to_datetime(iso["timestamp"], utc=True).dt.as_unit("us").astype("int64"))
    iso.to_csv(tmp_path / "iso.csv", index=False)
    micro.to_csv(tmp_path / "micro.csv", index=False)
    assert main(["validate", str(tmp_path / "micro.csv")]) == 1
    said = capsys.readouterr().out
    assert "numbers are beyond epoch milliseconds" in said and "give --timestamp-unit us or ns" in said, said
    assert "timestamp_unit=" not in said and "mix" not in said, said
    assert main(["validate", str(tmp_path / "micro.csv"), "--timestamp-unit", "us"]) == 0
    assert main(["refresh", "--input", str(tmp_path / "micro.csv"), "--store", str(tmp_path / "refused"),
                 "--as-of", AS_OF]) == 3
    assert "give --timestamp-unit us or ns" in capsys.readouterr().err
    for name, extra in (("iso", []), ("micro", ["--timestamp-unit", "us"])):
        assert main(["refresh", "--input", str(tmp_path / f"{name}.csv"), "--store", str(tmp_path / f"{name}-store"),
                     "--as-of", AS_OF, *extra]) == 0
        assert main(["score", "--input", str(tmp_path / f"{name}.csv"), "--store", str(tmp_path / "iso-store"),
                     "--output", str(tmp_path / f"{name}.parquet"), *extra]) == 0
    tables = [SnapshotStore(tmp_path / f"{name}-store").load("acme").table("sender") for name in ("iso", "micro")]
    pd.testing.assert_frame_equal(*tables)
    assert tables[0]["n_messages"].sum() == 3
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "iso.parquet"),
                                  pd.read_parquet(tmp_path / "micro.parquet"))
    capsys.readouterr()
    explained = []
    for name, extra in (("iso", []), ("micro", ["--timestamp-unit", "us"])):
        assert main(["explain", "--store", str(tmp_path / "iso-store"), "--tenant", "acme", "--message-id", "m3",
                     "--input", str(tmp_path / f"{name}.csv"), *extra]) == 0
        explained.append(capsys.readouterr().out)
    assert explained[0] == explained[1] and "m3" in explained[0]


def test_score_keeps_the_first_copy_of_a_message_as_refresh_does(tmp_path, capsys):
    # Copies of a message filed in several folders refused the whole batch (exit 1, no output), with a fix
    # saying "nothing to do if these are copies": real archives could not be scored at all.
    mail, store = tmp_path / "mail.csv", str(tmp_path / "store")
    frame().to_csv(mail, index=False)
    assert main(["refresh", "--input", str(mail), "--store", store, "--as-of", AS_OF]) == 0
    pd.concat([frame(), frame().iloc[[1, 2]]]).to_csv(tmp_path / "copies.csv", index=False)
    for name in ("mail", "copies"):
        assert main(["score", "--input", str(tmp_path / f"{name}.csv"), "--store", store, "--output",
                     str(tmp_path / f"{name}.parquet")]) == 0
    assert "2 rows set aside as copies" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "copies.parquet"),
                                  pd.read_parquet(tmp_path / "mail.parquet"))
    # Any other problem still refuses the batch, naming every one.
    frame(sender=["ann@acme.com", "not an address", "ann@acme.com"]).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["score", "--input", str(tmp_path / "bad.csv"), "--store", store, "--output",
                 str(tmp_path / "bad.parquet")]) == 1
    assert "invalid_address" in capsys.readouterr().err and not (tmp_path / "bad.parquet").exists()


def test_refresh_prints_a_failed_tenant_s_fix_as_options(tmp_path, capsys):
    frame().drop(columns=["sender"]).to_csv(tmp_path / "mail.csv", index=False)
    assert main(_refresh(tmp_path / "mail.csv", "--report", str(tmp_path / "report.json"))) == 3
    err = capsys.readouterr().err
    assert "failed: acme:" in err and "--columns sender=<your column>" in err and "columns={" not in err, err
    # The --report file says it in the same words (it named the Python parameter).
    error = json.loads((tmp_path / "report.json").read_text())["tenants"][0]["error"]
    assert "--columns sender=<your column>" in error and "columns={" not in error, error


def test_the_python_api_keeps_naming_its_parameters(tmp_path):
    with pytest.raises(ConfigError, match=r"The 'jobs' parameter of run_refresh must be a positive integer or -1"):
        run_refresh(frame(), store=tmp_path, as_of=AS_OF, jobs=0)
    with pytest.raises(ConfigError, match=r"The 'chunk_rows' parameter of run_refresh .*, or None"):
        run_refresh(frame(), store=tmp_path, as_of=AS_OF, chunk_rows=0)
    with pytest.raises(ConfigError, match=r"The 'jobs' parameter of run_refresh must be 1 with engine='spark'"):
        run_refresh(frame(), store=tmp_path, as_of=AS_OF, engine="spark", jobs=2)
    with pytest.raises(ConfigError, match=r"The 'random_state' parameter of generate .*, or a numpy SeedSequence"):
        generate(tenants=1, days=1, random_state=-1)
    (tmp_path / "x").write_text("")
    with pytest.raises(ConfigError, match=r"The 'out' parameter of write_generated .* It is not empty"):
        write_generated(tmp_path, tenants=1, days=1, progress=False)
    with pytest.raises(SchemaError, match="pass timezone='<IANA zone>'"):
        validate(frame(timestamp=["2024-05-02 09:00"] * 3))


def test_explain_names_the_timezone_option_for_naive_datetimes_as_score_does(tmp_path, capsys):
    # A Parquet input of naive datetime64 timestamps: score said "give --timezone <IANA zone>", while explain said
    # only "give an aware datetime, an ISO 8601 string with an offset, or epoch seconds", never the option.
    run_refresh(frame(), store=tmp_path / "store", as_of="2024-05-04", tenant_configs=ACME)
    naive = frame(timestamp=pd.to_datetime(frame()["timestamp"], utc=True).dt.tz_localize(None))
    naive.to_parquet(tmp_path / "naive.parquet")
    read = ["--store", str(tmp_path / "store"), "--input", str(tmp_path / "naive.parquet")]
    explain = ["explain", *read, "--tenant", "acme", "--message-id", "m3"]
    for command in (explain, ["score", *read, "--output", str(tmp_path / "signals.parquet")]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "give --timezone <IANA zone>" in err and "timezone=" not in err, err
    assert main([*explain, "--timezone", "UTC"]) == 0
    assert "Explanation of 'm3'" in capsys.readouterr().out


def test_validate_show_takes_0_or_more_rows(tmp_path, capsys):
    # --show -1 was taken: head(-1) listed every row of each problem but its last, under the same heading.
    frame(sender=["not an address"] * 3).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["validate", str(tmp_path / "bad.csv"), "--show", "-1"]) == 2
    captured = capsys.readouterr()
    assert "--show -1: give how many rows to list per problem, 0 or more" in captured.err and not captured.out
    assert main(["validate", str(tmp_path / "bad.csv"), "--show", "0"]) == 1
    out = capsys.readouterr().out
    assert "invalid_address" in out and "problems" not in out and "row 0" not in out, out
    assert main(["validate", str(tmp_path / "bad.csv"), "--show", "2"]) == 1
    out = capsys.readouterr().out
    assert "row 0:" in out and "row 1:" in out and "row 2:" not in out, out


def test_score_writes_parquet_or_csv_as_the_output_s_extension_says(tmp_path, capsys):
    # --output signals.csv got Parquet bytes under a .csv name.
    run_refresh(frame(), store=tmp_path / "store", as_of="2024-05-04", tenant_configs=ACME)
    frame().to_csv(tmp_path / "mail.csv", index=False)
    score = ["score", "--input", str(tmp_path / "mail.csv"), "--store", str(tmp_path / "store"), "--output"]
    for name in ("signals.parquet", "signals.PQ", "signals.csv"):
        assert main([*score, str(tmp_path / name)]) == 0, capsys.readouterr().err
    parquet = pd.read_parquet(tmp_path / "signals.parquet")
    assert (tmp_path / "signals.csv").read_bytes()[:4] != b"PAR1"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "signals.csv"), parquet, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "signals.PQ"), parquet)
    for name in ("signals.json", "signals"):
        assert main([*score, str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"--output {str(tmp_path / name)!r}: score writes Parquet (.parquet, .pq) or CSV (.csv)" in err, err
        assert not (tmp_path / name).exists()


def test_score_refuses_an_output_it_could_not_write_before_scoring(tmp_path, capsys, monkeypatch):
    # An --output in a folder that does not exist scored everything, then failed (exit 1) with pandas' "Cannot save
    # file into a non-existent directory", naming no option: refused up front, as refresh refuses its --report.
    run_refresh(frame(), store=tmp_path / "store", as_of="2024-05-04", tenant_configs=ACME)
    frame().to_csv(tmp_path / "mail.csv", index=False)
    from commgraph.signals import _scorer

    def never(*args, **kwargs):
        raise AssertionError("scored before the output was checked")

    monkeypatch.setattr(_scorer.Scorer, "score", never)
    (tmp_path / "taken.parquet").mkdir()
    score = ["score", "--input", str(tmp_path / "mail.csv"), "--store", str(tmp_path / "store"), "--output"]
    for output, words in ((tmp_path / "no" / "such" / "o.parquet", "does not exist or cannot be written; create it"),
                          (tmp_path / "taken.parquet", "is a directory; give a file path")):
        assert main([*score, str(output)]) == 2
        err = capsys.readouterr().err
        assert f"--output {str(output)!r}" in err and words in err, err


def test_inspect_refuses_a_tenant_the_store_does_not_hold_as_a_usage_error(tmp_path, capsys):
    # It exited 1, the code of a failed checksum, where refresh refuses a tenant it does not know with 2.
    run_refresh(frame(), store=tmp_path / "store", as_of="2024-05-04", tenant_configs=ACME)
    (tmp_path / "empty").mkdir()
    for store, words in (("store", "give one of the tenants it holds: acme"), ("empty", "it holds no snapshot yet")):
        assert main(["inspect", "--store", str(tmp_path / store), "--tenant", "nobody"]) == 2
        err = capsys.readouterr().err
        assert f"--tenant 'nobody' has no snapshot in {tmp_path / store}; {words}" in err, err
    assert main(["inspect", "--store", str(tmp_path / "store"), "--tenant", "acme"]) == 0


def test_a_configuration_file_s_errors_name_the_file_and_its_field(mail_csv, capsys):
    # --config with half_life = "-1d" said "The 'half_life' parameter of BaselineConfig", a call the user never made.
    config = mail_csv.parent / "baselines.toml"
    for text, words in (('half_life = "-1d"\n', "its 'half_life' must be a timedelta > 0; it holds '-1d'"),
                        ("global_prior = 5\n", "its 'global_prior' must be a pair of finite numbers"),
                        ("halflife = 3\n", "unknown field 'halflife'")):
        config.write_text(text)
        assert main(_refresh(mail_csv, "--config", str(config))) == 2
        err = capsys.readouterr().err
        assert f"the baseline configuration file {str(config)!r}: {words}" in err and "parameter of" not in err, err


def test_validate_names_each_problem_s_row_with_its_file(tmp_path, capsys):
    # Over several files every problem was "row 0:", whichever file held it: the row could not be found.
    for name, recipient in (("a.csv", "bad"), ("b.csv", "bad2")):
        frame(recipients=[recipient] + ["bob@vendor.com"] * 2).to_csv(tmp_path / name, index=False)
    assert main(["validate", str(tmp_path / "*.csv")]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "invalid_recipient:" in line]
    assert [line.split(": ")[0].strip() for line in lines] == [f"{tmp_path / 'a.csv'} row 0",
                                                               f"{tmp_path / 'b.csv'} row 0"], lines


def test_explain_of_a_tenant_without_a_snapshot_with_cold_start(tmp_path, capsys):
    # commgraph explain had no --cold-start: a tenant without baselines could not be explained as score scores it.
    run_refresh(frame(), store=tmp_path / "store", as_of="2024-05-04", tenant_configs=ACME)
    other = frame(tenant_id="initech", recipients="cy@initech.com")
    other.to_csv(tmp_path / "other.csv", index=False)
    explain = ["explain", "--store", str(tmp_path / "store"), "--input", str(tmp_path / "other.csv"),
               "--tenant", "initech", "--message-id", "m3"]
    assert main(explain) != 0
    capsys.readouterr()
    assert main([*explain, "--cold-start"]) == 0
    out = capsys.readouterr().out
    assert "against no snapshot: cold start" in out and "sender_is_new = 1" in out, out
    # A privacy-mode tenant in the store, its secret not given: left out of the global prior, not refusing all.
    from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines
    from commgraph.graph import validate

    private = build_baselines(validate(frame(tenant_id="priv", recipients="cy@priv.com", direction="inbound")),
                              as_of="2024-05-04",
                              config=BaselineConfig(privacy=True), secrets={"priv": b"k" * 32})
    SnapshotStore(tmp_path / "store").publish(private["priv"])
    assert main([*explain, "--cold-start"]) == 0
    assert "against no snapshot: cold start" in capsys.readouterr().out
    # ... nor a damaged tenant (its manifest gone): left out, named in a warning.
    next((tmp_path / "store" / "acme").glob("v*/manifest.json")).unlink()
    assert main([*explain, "--cold-start"]) == 0
    said = capsys.readouterr()
    assert "against no snapshot: cold start" in said.out and "'acme' is left out of the global prior" in said.err
