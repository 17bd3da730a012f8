"""Shared by the detector examples: 90 days of generated mail, backfilled, and what a message says about itself.

Not an example itself (``tests/test_examples.py`` skips names starting with ``_``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from commgraph.graph import GeneratedMail, generate, validate
from commgraph.signals import backfill

#: Days of history before the evaluation month.
TRAIN_DAYS = 60


@dataclass
class History:
    """Backfilled signal rows, the mail row of each (same order), and the train/test split."""

    mail: GeneratedMail
    rows: pd.DataFrame  # backfill: tenant_id, message_id, one column per signal
    mail_of_row: pd.DataFrame  # the generated frame's row for each signal row (scenario, label, auth results...)
    cutoff: pd.Timestamp  # the first instant of the evaluation month

    @property
    def in_train(self) -> np.ndarray:
        return (self.mail_of_row["timestamp"] < self.cutoff).to_numpy()

    @property
    def scenario(self) -> np.ndarray:
        """Ground truth: the attack scenario of each row, missing for safe mail (scoring only, never a feature)."""
        return self.mail_of_row["scenario"].to_numpy()


def ninety_days(*, scale: float = 0.25, random_state: int = 0) -> History:
    """Three tenants, 90 days of mail; every message's signals from the mail strictly before it (``fresh``).

    The first :data:`TRAIN_DAYS` days are history and training data, the last 30 the evaluation month.
    """
    mail = generate(tenants=3, days=TRAIN_DAYS + 30, scale=scale, random_state=random_state)
    raw = mail.messages
    rows = backfill(validate(raw, tenants=mail.tenants), level="message", prior_every="1D")
    mail_of_row = raw.set_index(["tenant_id", "message_id"]).reindex(
        pd.MultiIndex.from_frame(rows[["tenant_id", "message_id"]])).reset_index()
    cutoff = raw["timestamp"].min().floor("D") + pd.Timedelta(days=TRAIN_DAYS)
    return History(mail, rows, mail_of_row, cutoff)


def message_features(frame: pd.DataFrame) -> pd.DataFrame:
    """What a message says about itself, with no history, one float column per fact.

    Its own SPF/DKIM/DMARC results (failing or missing, whoever the sender),
    its recipient count, a reply-to address in another domain than the
    sender's, and internal mail that arrived from outside the tenant's network
    (here: a sender IP outside 10.0.0.0/8). A plain function of the mail frame,
    so the same step serves training rows and live mail.
    """
    out = {}
    for check in ("spf", "dkim", "dmarc"):
        result = frame[check].astype("string")
        out[f"{check}_fails"] = result.isin(["fail", "softfail"]).to_numpy()
        out[f"{check}_missing"] = (result.isna() | (result == "none").fillna(False)).to_numpy()
    listed = [frame[field].astype("string").str.count(";").add(1).fillna(0) for field in ("to", "cc")]
    out["recipients"] = (listed[0] + listed[1]).to_numpy()
    domain = {field: frame[field].astype("string").str.extract(r"@([^@]+)$", expand=False)
              for field in ("reply_to", "sender")}
    out["reply_to_elsewhere"] = (domain["reply_to"] != domain["sender"]).fillna(False).to_numpy()
    outside = ~frame["sender_ip"].astype("string").str.startswith("10.").fillna(False)
    out["internal_from_outside"] = ((frame["direction"] == "internal") & outside).to_numpy()
    return pd.DataFrame(out, index=frame.index).astype("float32")
