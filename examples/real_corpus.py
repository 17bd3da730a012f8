"""
The pipeline on a real corpus: Enron
====================================

The Enron JHU corpus (184 employees' internal mail, 1998-2002, in
``../shared/data/enron_jhu``; set ``COMMGRAPH_DATA`` to read it from elsewhere)
through the message contract, the communication graph and its metrics, and the
baselines as of the autumn of 2001, summarised the way an analyst would first
look at a new organisation.
"""

# %%
# Read the corpus through the contract. Its 31 placeholder dates (1980) are set
# aside with a reason instead of being kept or silently dropped.
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from commgraph.baselines import build_baselines
from commgraph.graph import build_graph, communities, hop_distance, pagerank, read_frame, reciprocity, validate

data = Path(os.environ.get("COMMGRAPH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
if not (data / "enron_jhu" / "messages.csv.gz").exists():
    sys.exit(f"the Enron corpus is not at {data / 'enron_jhu'}; set COMMGRAPH_DATA to the shared/data folder")
raw = read_frame(data / "enron_jhu" / "messages.csv.gz").assign(tenant_id="enron")
messages = validate(raw[["tenant_id", "message_id", "timestamp", "sender", "to", "cc"]], strict=False,
                    tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}])
print(messages)
print(messages.rejects.groupby("reject_reason").size().to_string())

# %%
# The whole graph: who writes to whom, how often answered, who is central.
graph = build_graph(messages, tenant_id="enron")
print(graph)
print(f"reciprocity: {reciprocity(graph):.3f} of sender->recipient edges are answered")
titles = pd.read_csv(data / "enron_jhu" / "employees.csv").set_index("email")["note"]
central = graph.nodes.assign(pagerank=pagerank(graph)).nlargest(6, "pagerank")
central["title"] = central["address"].map(titles)
print(central[["address", "title", "sent", "received", "pagerank"]].round(4).to_string(index=False))
groups = communities(graph, random_state=0)
print(f"{groups.max() + 1} communities; the largest holds {np.bincount(groups).max()} of {graph.n_nodes} people")

# %%
# How far apart people are: hops from the most central person to everyone else.
hops = hop_distance(graph, [central["address"].iloc[0]], max_hops=3)
print(f"from {central['address'].iloc[0]}: " + ", ".join(f"{int((hops == h).sum())} people at {h} hop(s)"
                                                         for h in (1, 2, 3)) + f", {int((hops < 0).sum())} further")

# %%
# Baselines as of 1 October 2001: the busiest senders, the most answered pairs,
# and the mailboxes that receive the most.
snapshot = build_baselines(messages, as_of="2001-10-01T00:00Z")["enron"]
print(snapshot)
senders = snapshot.table("sender")
print(senders.nlargest(5, "n_messages")[["sender", "n_messages", "n_messages_90d", "active_days",
                                         "n_distinct_recipients"]].to_string(index=False))
pairs = snapshot.table("pair")
answered = pairs[(pairs["n_reverse"] > 0) & (pairs["sender"] != pairs["recipient"])]  # self-sends aside
print(f"{len(answered):,} of {len(pairs):,} pairs were answered; the busiest two-way pairs:")
print(answered.nlargest(5, "n_messages")[["sender", "recipient", "n_messages", "n_reverse"]].to_string(index=False))
mailboxes = snapshot.table("recipient")
print("the mailboxes receiving the most mail (all of this corpus is internal mail):")
print(mailboxes.nlargest(5, "n_internal")[["recipient", "n_internal"]].to_string(index=False))
