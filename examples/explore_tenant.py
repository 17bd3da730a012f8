"""
Exploring one tenant while chasing a false positive
===================================================

An analyst's tour of one organisation: its communication graph, who it talks to
most, how connections are distributed, the neighbourhood of one mailbox, and
finally ``explain`` on a safe message that a first-contact rule flagged. Plots
are written as PNG files to ``explore-output/`` in the current folder (ignored by
git), kept for you to open; a second run replaces them.
"""

# %%
# One tenant, six weeks of mail.
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, not windows
import matplotlib.pyplot as plt
import pandas as pd

from commgraph.baselines import build_baselines
from commgraph.graph import (build_graph, communities, generate, pagerank, plot_degree_distribution, plot_ego,
                             reciprocity, validate)
from commgraph.signals import Scorer, explain

# The plots stay for you to open, in the folder the example runs in: one folder that each run replaces (a new
# temporary folder each run piled up in /tmp).
out = Path("explore-output")
out.mkdir(exist_ok=True)
mail = generate(tenants=1, days=42, scale=0.4, random_state=5)
messages = validate(mail.messages, tenants=mail.tenants)
tenant = messages.tenants[0]

# %%
# The graph as of the last week's start: nodes are addresses, edges sender -> recipient
# with message counts, first and last seen, and label counts.
as_of = mail.messages["timestamp"].max().floor("D") - pd.Timedelta(days=6)
graph = build_graph(messages, tenant_id=tenant, as_of=as_of)
print(graph)
print(f"reciprocity: {reciprocity(graph):.3f}; communities: {communities(graph).max() + 1}")

# %%
# Who the tenant talks to most, and which addresses sit at the centre (PageRank).
print(graph.top_correspondents(8)[["address", "internal", "sent", "received", "messages"]].to_string(index=False))
central = graph.nodes.assign(pagerank=pagerank(graph)).nlargest(5, "pagerank")
print(central[["address", "internal", "pagerank"]].to_string(index=False))

# %%
# A heavy tail: most addresses write to a handful of others, a few to hundreds.
ax = plot_degree_distribution(graph)
ax.figure.savefig(out / "degree_distribution.png", dpi=90)
plt.close(ax.figure)

# %%
# The neighbourhood of the busiest internal mailbox.
mailbox = graph.top_correspondents(50).query("internal")["address"].iloc[0]
ego = graph.ego(mailbox)
print(f"{mailbox} and its neighbours: {ego.n_nodes} nodes, {ego.n_edges} edges")
ax = plot_ego(graph, mailbox, max_nodes=40)
ax.figure.savefig(out / "ego.png", dpi=90)
plt.close(ax.figure)

# %%
# A false positive: safe mail from a sender writing to this recipient for the
# first time, which a first-contact rule would block. ``explain`` shows what the
# baselines know, signal by signal.
scorer = Scorer(build_baselines(messages, as_of=as_of))
week = mail.messages[mail.messages["timestamp"] >= as_of]
scored = scorer.score(week, level="message")
safe = week.set_index("message_id")["scenario"].isna()
flagged = scored[(scored["pair_is_first_contact"] == 1) & scored["message_id"].map(safe).to_numpy()]
print(f"{len(flagged)} safe messages of {len(scored)} would be flagged by 'first contact'")
message = week.set_index("message_id").loc[flagged.sort_values("sender_active_days").iloc[-1]["message_id"]]
explanation = explain({**message.to_dict(), "message_id": message.name}, scorer)
print(explanation)
print(f"\nplots in {out.resolve()}: {sorted(p.name for p in out.glob('*.png'))}")
