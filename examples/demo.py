"""The commgraph demo: ingest a mail-metadata sample and show what the contract found.

Run with ``make demo``. It grows with the library: each layer adds its step.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from commgraph.graph import load_tenant_configs, read_messages
from commgraph.signals._cli import _print_summary

HERE = Path(__file__).parent


def main() -> None:
    sample = HERE / "data" / "sample_mail.csv"
    tenants = load_tenant_configs(HERE / "data" / "tenants.toml")
    print(f"== ingest: {sample.name} ({', '.join(sorted(tenants))})")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sample configures every tenant: no guessing
        messages = read_messages(sample, strict=False, tenants=tenants)
    print(messages)
    import sys
    _print_summary(messages, sys.stdout)
    print("\n== rows set aside, with the reason and the fix")
    for label, row in messages.rejects.iterrows():
        print(f"  row {label} ({row['reject_action']}): {row['reject_message']}")
    edges = messages.edges()
    print("\n== edges by direction")
    print(edges.groupby(["tenant_id", "direction"], observed=True).size().unstack(fill_value=0).to_string())


if __name__ == "__main__":
    main()
