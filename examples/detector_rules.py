"""
A detector made of readable rules
=================================

A handful of rules over baseline signals, each one sentence an analyst can
read and argue with, measured on a month of generated mail: how many messages
each rule alerts on, its precision and recall, and which attack scenarios it
catches. No training: the signals come from ``backfill``, so every message is
judged only by the mail before it.
"""

# %%
# Ninety days of mail for three organisations (``_detector_data.py`` beside
# this file: ``generate``, ``validate``, then ``backfill``, which values every
# message against the mail strictly before it, as if the baselines were
# current to the instant). The rules are judged on the last 30 days, after two
# months of history. ``scenario`` is the generator's ground truth, kept beside
# the signals for scoring only.
import pandas as pd
from _detector_data import ninety_days
from sklearn.metrics import precision_score, recall_score

history = ninety_days()
month = history.rows[~history.in_train].assign(scenario=history.scenario[~history.in_train])
attack = month["scenario"].notna()
print(f"last 30 days: {len(month):,} messages, {attack.sum()} attacks")

# %%
# The rules. Each is a boolean column over the message-level signals (a
# recipient-level signal is aggregated over the message's recipients: "any
# first contact", "the least-known recipient").
s = month
rules = pd.DataFrame({
    # A stranger using the name of someone inside the company, from a consumer mailbox.
    "impersonation: new sender + internal display name + freemail":
        (s["sender_is_new"] == 1) & (s["display_name_matches_internal"] == 1) & (s["domain_is_freemail"] == 1),
    # A domain one or two edits from a known one, that the company never wrote to.
    "look-alike: close domain + never solicited":
        (s["lookalike_domain_is_close"] == 1) & (s["domain_solicited_messages"] == 0),
    # A sender that always passes SPF/DKIM/DMARC suddenly fails one.
    "auth deviation: known sender fails a check it always passes": s["auth_deviation"] == 1,
    # A domain first seen today writing to people it never wrote to, at an unusual hour for the tenant.
    "new domain: first contact at an unusual hour":
        (s["domain_is_new"] == 1) & (s["pair_is_first_contact"] == 1) & (s["sender_hour_surprise"] >= 5),
    # A sender whose past mail was mostly labelled malicious.
    "bad history: sender likely unsafe": s["sender_safe_likelihood"] < 0.5,
}, index=s.index)
rules["any rule"] = rules.any(axis=1)

# %%
# Precision and recall of each rule (scikit-learn's metrics), and the share of
# each scenario it catches.
by_scenario = pd.DataFrame({name: fired[attack].groupby(s.loc[attack, "scenario"]).mean()
                            for name, fired in rules.items()}).T
table = pd.DataFrame({"alerts": rules.sum(),
                      "precision": [precision_score(attack, fired, zero_division=0) for _, fired in rules.items()],
                      "recall": [recall_score(attack, fired) for _, fired in rules.items()]}, index=rules.columns)
with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 62):
    print(table.join(by_scenario.round(2)).round(3).to_string())

# %%
# The hardest scenario for rules is the one the best rule catches least: its
# messages look like ordinary mail on every signal a rule reads.
caught = by_scenario.loc["any rule"]
hardest = caught.idxmin()
print(f"hardest scenario for these rules: {hardest} ({caught[hardest]:.0%} caught by any rule, "
      f"against {caught.drop(hardest).min():.0%} or more for the others)")
print(month.loc[attack & (s["scenario"] == hardest),
                ["sender_is_new", "pair_is_first_contact", "sender_active_days", "auth_deviation",
                 "domain_is_new"]].describe().loc[["mean", "50%"]].round(2).to_string())
