"""
The daily refresh as an Airflow DAG
===================================

Needs Apache Airflow, which is not a commgraph dependency: this file is a
template to copy into a DAG folder, not something the test suite runs. The task
shells out to the ``commgraph refresh`` command so that the job runs in its own
process with its own memory, and its exit code tells Airflow what happened:
0 published, 3 some tenants failed (the others were published; the task fails
so someone looks), 2 a configuration error, 1 anything else.

The task refreshes incrementally, which needs a store that holds snapshots:
``--incremental`` refuses a ``--store`` that does not exist or holds no
snapshot yet (exit 2), since a mistyped path would get every tenant built
there. Build the store once before enabling the DAG, with the same command
without ``--incremental`` (and the last midnight as ``--as-of``).
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

ARCHIVE = "/data/mail-metadata"          # hive-partitioned Parquet: tenant_id=.../date=...
STORE = "/data/commgraph/snapshots"       # the snapshot store the engines load from
TENANTS = "/etc/commgraph/tenants.toml"   # each tenant's own domains

with DAG(
    dag_id="commgraph_daily_refresh",
    schedule="15 0 * * *",  # 00:15 UTC, once yesterday's mail has landed
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # refreshes of one store run one after another
    tags=["commgraph"],
) as dag:
    BashOperator(
        task_id="refresh_baselines",
        # as_of is the midnight the run's data interval ends at, not 00:15: mail of the minutes after
        # midnight has not all landed yet, and an incremental refresh never comes back for late mail
        # (only a full build counts it).
        bash_command=(
            "commgraph refresh --input {{ params.archive }} --store {{ params.store }} "
            "--as-of {{ data_interval_end.start_of('day').isoformat() }} --tenant-config {{ params.tenants }} "
            "--incremental --jobs 4 --log-format json --report /tmp/commgraph-refresh-{{ ds }}.json"
        ),
        params={"archive": ARCHIVE, "store": STORE, "tenants": TENANTS},
        retries=2,  # a killed run leaves the previous snapshots current; the next try completes
    )
