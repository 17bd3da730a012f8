"""
An unsupervised detector: directed anomaly scoring under an alert budget
========================================================================

No labels and no training: each signal has a suspicious direction (a new
sender is more suspicious than a known one, few active days more than many),
and a message's directed anomaly score is how many of the tenant's past
messages are at least as suspicious on *every* signal. The lowest scores are
the alerts, and an analyst sees a fixed number of them per tenant and day.
Measured on the last 30 of 90 generated days, per attack scenario.
"""

# %%
# Ninety days of mail for three organisations (``_detector_data.py`` beside
# this file: ``generate``, ``validate``, then ``backfill``, every message
# valued against the mail strictly before it). The first 60 days are each
# tenant's reference population; the last 30 are scored.
import numpy as np
import pandas as pd
from _detector_data import message_features, ninety_days

from commgraph.signals import alerts_within_budget, directed_anomaly_score

history = ninety_days()
frame = pd.concat([history.rows, message_features(history.mail_of_row)], axis=1)
frame["auth_failures"] = frame[["spf_fails", "dkim_fails", "dmarc_fails"]].sum(axis=1)
frame["day"] = history.mail_of_row["timestamp"].dt.floor("D").to_numpy()
frame["sender"] = history.mail_of_row["sender"].to_numpy()
frame["scenario"] = history.scenario
in_train = history.in_train

# %%
# A few signals, each reading a different trait: how well the sender knows the
# recipients, how long the sender and its domain have been around, a borrowed
# internal name, a look-alike domain, and what the message says about itself
# (its own authentication failures, a reply-to elsewhere, internal mail from
# outside the network). Every signal added makes more messages extreme on
# something, so more of them tie at 0 (the 34 built-in signals together leave
# almost every message undominated). Counts of days and messages are read on a
# log2 scale: 200 and 260 active days are equally unremarkable, and the
# coarser values keep the tenant's distinct reference rows, and the work, small.
COUNTS = ["pair_messages", "sender_active_days", "domain_days_known"]
FLAGS = ["display_name_matches_internal", "lookalike_domain_is_close", "auth_failures", "reply_to_elsewhere",
         "internal_from_outside"]
used = frame[COUNTS + FLAGS].copy()
used[COUNTS] = np.floor(np.log2(1.0 + used[COUNTS].clip(lower=0)))
directions = {name: "high" for name in ("auth_failures", "reply_to_elsewhere", "internal_from_outside")}

score = pd.Series(np.nan, index=frame.index)
for tenant, positions in frame.groupby("tenant_id").indices.items():
    past, month = positions[in_train[positions]], positions[~in_train[positions]]
    score.iloc[month] = directed_anomaly_score(used.iloc[month], reference=used.iloc[past],
                                               directions=directions).to_numpy()
month = frame[~in_train].assign(score=score[~in_train])
attack = month["scenario"].notna()

# %%
# Ten alerts per tenant per day: the ten lowest scores (ties to the earlier
# message). The share of each scenario's attack messages among them:
BUDGET = 10
month["alerted"] = alerts_within_budget(-month["score"], BUDGET, groups=month[["tenant_id", "day"]])
caught = month[attack].groupby("scenario")["alerted"].agg(["size", "mean"])
print(f"{attack.sum()} attacks in {len(month):,} messages; {month['alerted'].sum()} alerts "
      f"({BUDGET} per tenant per day)")
print(f"attacks within the budget: {month.loc[attack, 'alerted'].mean():.0%}")
print(caught.rename(columns={"size": "attacks", "mean": "within budget"}).round(2).to_string())

# %%
# Campaigns: one sender's messages to a tenant on one day are one incident for
# an analyst. Counting an alert per (tenant, day, sender), scored by its most
# anomalous message, a burst no longer spends the whole budget on itself.
incident = month.groupby(["tenant_id", "day", "sender"], observed=True)["score"].min().reset_index()
incident["alerted"] = alerts_within_budget(-incident["score"], BUDGET, groups=incident[["tenant_id", "day"]])
month["incident_alerted"] = month.merge(incident, on=["tenant_id", "day", "sender"], how="left",
                                        suffixes=("", "_incident"))["alerted_incident"].to_numpy()
print(f"attacks within {BUDGET} incidents per tenant per day: {month.loc[attack, 'incident_alerted'].mean():.0%}")
print(month[attack].groupby("scenario")["incident_alerted"].mean().round(2).to_string())

# %%
# The hardest scenario under the message budget, and why: how many of its
# messages reach one tenant on one day against the budget, where they rank
# against safe mail, and how many of them carry a trait no safe mail shares.
hardest = caught["mean"].idxmin()
its = month[month["scenario"] == hardest]
per_day = its.groupby(["tenant_id", "day"]).size()
print(f"hardest: {hardest} ({caught.loc[hardest, 'mean']:.0%} within budget); its messages per tenant-day: "
      f"median {per_day.median():.0f}, max {per_day.max()} (budget {BUDGET}); median score "
      f"{its['score'].median():.0f} against {month.loc[~attack, 'score'].median():.0f} for safe mail")
failing = its["auth_failures"] > 0
print(f"  failing authentication: {failing.mean():.0%} of its messages, {its.loc[failing, 'alerted'].mean():.0%} "
      f"of those within budget; passing: {its.loc[~failing, 'alerted'].mean():.0%} within budget")
print(f"  a passing one looks like any first message from a new domain: "
      f"{(month.loc[~attack, 'score'] <= its.loc[~failing, 'score'].median()).sum()} safe messages of the month "
      f"score as low or lower than its median")
