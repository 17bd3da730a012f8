"""
Quickstart
==========

Generate a month of mail for two organisations, build their behavioural
baselines, score the following days' mail and look at what the signals say
about the attacks hidden in it.
"""

# %%
# A month of synthetic mail with labelled attacks (the ``scenario`` column is
# the generator's ground truth; a real archive has only the ``label`` column).
import pandas as pd

from commgraph.baselines import build_baselines
from commgraph.graph import generate, validate
from commgraph.signals import SignalSet, evaluate

mail = generate(tenants=2, days=35, scale=0.3, random_state=3)
raw = mail.messages
print(f"{len(raw):,} messages, {raw['scenario'].notna().sum()} attacks, tenants {sorted(raw['tenant_id'].unique())}")

# %%
# Baselines of each tenant as of the start of the last five days: only mail (and
# labels) known before that instant count.
as_of = raw["timestamp"].max().floor("D") - pd.Timedelta(days=4)
snapshots = build_baselines(validate(raw, tenants=mail.tenants), as_of=as_of)
for tenant, snapshot in snapshots.items():
    print(snapshot)

# %%
# The last five days arrive: one row of signals per message, each tenant scored
# against its own snapshot.
fresh = raw[raw["timestamp"] >= as_of]
signals = SignalSet()
scored = signals.compute(validate(fresh, tenants=mail.tenants), snapshots, level="message")
truth = fresh.set_index(["tenant_id", "message_id"])["scenario"]
scored["scenario"] = truth.reindex(pd.MultiIndex.from_frame(scored[["tenant_id", "message_id"]])).to_numpy()
print(f"{len(scored):,} messages scored, {scored['scenario'].notna().sum()} of them attacks")

# %%
# A few attacks beside the typical safe message: the signals that tell them apart.
shown = ["sender_is_new", "pair_is_first_contact", "sender_active_days", "display_name_matches_internal",
         "lookalike_domain_is_close", "auth_deviation", "sender_safe_likelihood"]
attacks = scored[scored["scenario"].notna()].groupby("scenario").head(1).set_index("scenario")[shown]
typical = scored.loc[scored["scenario"].isna(), shown].median().rename("safe mail (median)")
with pd.option_context("display.width", 160, "display.max_columns", 20):
    print(pd.concat([attacks, typical.to_frame().T]).round(3).to_string())

# %%
# Which single signals separate attacks from safe mail best (ROC AUC, read in
# each signal's suspicious direction).
report = evaluate(scored[signals.names], scored["scenario"].notna(), fpr=(1e-3,))
print(report.nlargest(8, "roc_auc")[["direction", "roc_auc", "recall@fpr=0.001"]].round(3).to_string())
