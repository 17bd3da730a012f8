"""Shared fixtures: the real corpora and small contract frames."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def data_dir() -> Path:
    """Where the real corpora live: $COMMGRAPH_DATA, else ../shared/data from the project root."""
    return Path(os.environ.get("COMMGRAPH_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real corpora not found at {path}; set COMMGRAPH_DATA to the shared/data folder")
    return path


def frame(**overrides) -> pd.DataFrame:
    """A valid one-tenant frame of three messages; keyword arguments replace columns."""
    base = {
        "tenant_id": ["acme", "acme", "acme"],
        "message_id": ["m1", "m2", "m3"],
        "timestamp": ["2024-05-02T09:00:00Z", "2024-05-02T10:00:00+02:00", "2024-05-03T11:30:00Z"],
        "sender": ["ann@acme.com", "bob@vendor.com", "ann@acme.com"],
        "recipients": ["bob@vendor.com", "ann@acme.com; cy@acme.com", "cy@acme.com"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


ACME = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]


@pytest.fixture(scope="session")
def enron(real_data: Path):
    """The Enron JHU messages as one tenant, validated leniently (the 1980 placeholders are set aside)."""
    from commgraph.graph import validate

    raw = pd.read_csv(real_data / "enron_jhu" / "messages.csv.gz")
    raw["tenant_id"] = "enron"
    return validate(raw, strict=False, tenants=[{"tenant_id": "enron", "own_domains": ["enron.com"]}])


def enron_sample(real_data: Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` Enron JHU messages with real timestamps, as one tenant, in the contract's columns."""
    raw = pd.read_csv(real_data / "enron_jhu" / "messages.csv.gz")
    raw = raw[~raw["timestamp_suspect"]].head(rows)
    return raw.assign(tenant_id="enron")[["tenant_id", "message_id", "timestamp", "sender", "to", "cc"]]
