"""The README's Python examples run, in order, as a reader pastes them into one session.

A snippet may name things the reader has and the README does not make (an
archive, a batch of today's mail, an engine's log): the test gives each a
small stand-in, and puts an address or tenant of the generated mail where the
README writes an illustrative one ('ann@acme.com'). Everything else runs as
written: a renamed function, a changed signature or an example that no longer
works fails here.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from conftest import frame

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_shows_python_examples() -> None:
    assert len(_blocks()) >= 6  # (a change of fence would turn the test below into one that checks nothing)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_python_example_of_the_readme_runs(tmp_path, monkeypatch) -> None:
    from commgraph.graph import generate, validate
    from commgraph.signals import backfill

    monkeypatch.chdir(tmp_path)  # (the examples write snapshots/ and read archive/ where they run)
    Path("archive").mkdir()
    frame().rename(columns={"sender": "from_address"}).to_parquet("archive/part-0.parquet")
    small = generate(tenants=1, days=7, scale=0.05, random_state=1)
    history = validate(small.messages, tenants=small.tenants)
    session: dict = {}
    ran = []
    for number, block in enumerate(_blocks(), 1):
        if "spark." in block:  # (the Spark engine has tests of its own: tests/test_spark.py)
            continue
        if "build_graph(" in block:
            # The README's illustrative addresses: an internal mailbox of tenant-01 and its top correspondent.
            edges = session["messages"].edges()
            inbound = edges[(edges["tenant_id"] == "tenant-01") & (edges["direction"] == "inbound")]
            pair = inbound.groupby(["recipient", "sender"], observed=True).size().idxmax()
            block = block.replace("ann@acme.com", str(pair[0])).replace("bob@vendor.com", str(pair[1]))
        if "refresh(snap, new_messages" in block:
            messages = session["messages"]  # the mail since the snapshot's as_of
            session["new_messages"] = messages.subset((messages.frame["timestamp"] >= "2025-02-01T00:00Z").to_numpy())
        if "Scorer.from_store" in block:
            mail = session["mail"].messages
            session["batch"] = mail[pd.to_datetime(mail["timestamp"], utc=True) >= "2025-02-01T00:00Z"].head(300)
            session["message"] = session["batch"].iloc[0].to_dict()
            session["end"] = "2025-02-03T00:00Z"
            domain = session["mail"].tenants[0].own_domains[0]
            block = block.replace('"tenant_id": "acme"', '"tenant_id": "tenant-01"').replace("acme.com", domain)
        if "consistency_report(" in block:
            session["history"] = history
            session["engine_log"] = backfill(history, mode="as_deployed").head(100)  # what an engine logged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(block, f"README.md python example {number}", "exec"), session)
        ran.append(number)
    assert len(ran) >= 5, ran
    assert len(session["report"].frame) and session["later"].as_of == pd.Timestamp("2025-02-02T00:00Z")
