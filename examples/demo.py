"""The commgraph demo: generate mail, ingest it, build a tenant's graph, show what was found.

Run with ``make demo``. It grows with the library: each layer adds its step.
Everything it writes goes to ``demo-output/`` (ignored by git); a second run
starts over.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from commgraph.baselines import SnapshotStore, run_refresh
from commgraph.graph import (
    build_graph, load_tenant_configs, pagerank, read_frame, read_messages, reciprocity, write_generated,
)
from commgraph.signals import Scorer
from commgraph.signals._cli import print_summary

HERE = Path(__file__).parent
OUT = HERE.parent / "demo-output"


def step(title: str) -> None:
    print(f"\n== {title}")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()

    step("1. generate: 30 days of synthetic enterprise mail for 3 tenants, with labelled attacks")
    archive = OUT / "archive"
    start = time.perf_counter()
    stats = write_generated(archive, tenants=3, days=30, random_state=7, progress=sys.stderr.isatty())
    print(f"wrote {stats['messages']:,} messages ({stats['edges']:,} edges, {stats['attacks']:,} attacks) "
          f"to {archive.relative_to(HERE.parent)}/ in {time.perf_counter() - start:.1f} s")

    step("2. ingest: read the Parquet archive back through the message contract")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generated tenants' own domains are inferred, and named, here
        messages = read_messages(archive, strict=False)
    print(f"{messages}  [{time.perf_counter() - start:.1f} s]")
    print_summary(messages, sys.stdout)
    attacks = messages.frame[messages.frame["scenario"].notna()]
    print("\nattacks by scenario (ground truth):")
    print(attacks.groupby(["tenant_id", "scenario"], observed=True).size().unstack(fill_value=0).to_string())

    step("3. the contract on messy input: a bundled sample with the problems real archives have")
    sample = read_messages(HERE / "data" / "sample_mail.csv", strict=False,
                           tenants=load_tenant_configs(HERE / "data" / "tenants.toml"))
    print(sample)
    for label, row in sample.rejects.iterrows():
        print(f"  row {label} ({row['reject_action']}): {row['reject_message']}")

    step("4. graph: the largest tenant's communication graph")
    tenant = messages.frame["tenant_id"].value_counts().index[0]
    start = time.perf_counter()
    graph = build_graph(messages, tenant_id=tenant)
    print(f"{graph}  [{time.perf_counter() - start:.2f} s]")
    print(f"reciprocity (share of edges answered): {reciprocity(graph):.3f}")
    top = graph.nodes.assign(pagerank=pagerank(graph)).nlargest(5, "pagerank")
    print("highest PageRank:")
    print(top[["address", "internal", "sent", "received", "pagerank"]].to_string(index=False))

    step("5. refresh: build every tenant's baselines as of three days before the end, publish them to a store")
    store = OUT / "snapshots"
    # Baselines as of three days before the end; those last days' mail is the "fresh" mail scored below.
    as_of = (messages.frame["timestamp"].max() - pd.Timedelta(days=3)).floor("D")
    report = run_refresh(archive, store=store, as_of=as_of, jobs=2)
    print(report.table()[["tenant_id", "status", "version", "rows_read", "seconds"]].to_string(index=False))
    if report.exit_code:  # as the scheduled job's exit code would say
        raise SystemExit(f"the refresh failed for {report.failed}: " + "; ".join(
            f"{o.tenant_id}: {o.error}" for o in report.outcomes if o.error))
    snapshot = SnapshotStore(store).load(tenant)
    print(f"{snapshot!r}")
    senders = snapshot.table("sender")
    print("the sender table (first rows of the busiest senders):")
    print(senders.nlargest(3, "n_messages")[["sender", "n_messages", "n_messages_30d", "active_days",
                                              "likelihood_safe"]].to_string(index=False))

    step("6. score: the engine loads the snapshots and scores the last three days' mail, one row per message")
    scorer = Scorer.from_store(SnapshotStore(store))
    raw = read_frame(archive)
    fresh = raw[raw["timestamp"] >= as_of]  # the raw mail as the engine receives it
    start = time.perf_counter()
    scored = scorer.score(fresh, level="message")
    seconds = time.perf_counter() - start
    scenario = fresh.set_index(["tenant_id", "message_id"])["scenario"]
    truth = pd.Series(scenario.reindex(pd.MultiIndex.from_frame(scored[["tenant_id", "message_id"]])).to_numpy(),
                      index=scored.index)
    print(f"{len(scored):,} messages, {scored.shape[1] - 2} signals each, in {seconds:.2f} s; "
          f"{truth.notna().sum()} of them are attacks (ground truth)")
    rules = {
        # (an internal name alone also meets partners who share an employee's name: new for the address, it does not)
        "internal name, new for the outside address": (scored["display_name_matches_internal"] == 1)
        & (scored["display_name_is_new_for_address"] == 1),
        "look-alike of a known domain": scored["lookalike_domain_is_close"] == 1,
        "first contact from a brand-new sender": (scored["sender_is_new"] == 1) & (scored["pair_is_first_contact"] == 1),
        "fails authentication it normally passes": scored["auth_deviation"] == 1,
    }
    print(f"{'what the signals found':<45}{'messages':>9}{'attacks':>9}")
    for name, hit in rules.items():
        print(f"{name:<45}{int(hit.sum()):>9}{int(truth[hit].notna().sum()):>9}")
    first = int(np.flatnonzero(truth.notna().to_numpy())[0])
    row = scored.iloc[first]
    print(f"\none attack ({truth.iloc[first]}), message {row['message_id']}; its non-zero signals:")
    print(row.drop(["tenant_id", "message_id"]).loc[lambda r: r.notna() & (r != 0)].to_string())

    step("7. one attack through the graph's eyes")
    attack = attacks[attacks["tenant_id"] == tenant].iloc[0]
    recipient = messages.edges().query("message_id == @attack.message_id")["recipient"].iloc[0]
    earlier = build_graph(messages, tenant_id=tenant, as_of=attack["timestamp"])
    known = earlier.node_ids(pd.Series([attack["sender"]]))[0] >= 0
    pair = earlier.edge_ids([attack["sender"]], [recipient])[0] >= 0
    print(f"{attack['scenario']}: {attack['sender']} -> {recipient} at {attack['timestamp']:%Y-%m-%d %H:%M}")
    print(f"  sender seen before: {bool(known)}; this pair wrote before: {bool(pair)}")


if __name__ == "__main__":
    main()
