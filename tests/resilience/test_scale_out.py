"""Scale-out: 4 `worker` and 2 `serve` processes share one MariaDB and run 60 jobs, every one
submitted as a signed `/job run` to one of the two serves and run in the real local sandbox.
Each job runs exactly once (counted by executions), every process takes part, and each owner
is told once. The runner is bench/scale_out.py, which also measures a one-worker baseline and
runs 2,000 jobs per row (60 prove the same here; the owners are told at Slack's paced rate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.scale_out import check, run
from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed.slack_ledger import Told, assert_told_once, told_all
from testbed.slack_standin import SlackStandIn

JOBS = 60  # six processes contend for them; told at Slack's paced rate (8 posts/s at most)
# Jobs of a few milliseconds left the two serves' own slots (a serve runs a job it receives
# when a slot is free) free often enough that a worker could find none waiting: 0.3 s each
# keeps jobs waiting for every process.
CODE = "import time\n\n\ndef main(n):\n    time.sleep(0.3)\n    return n * n\n"


@pytest.mark.mariadb
@pytest.mark.slow
def test_four_workers_and_two_serves_run_60_slack_jobs_each_exactly_once(
    mariadb_store: SqlStore, mariadb_url: str, tmp_path: Path
) -> None:
    with SlackStandIn() as standin:
        result = run(
            mariadb_store,
            mariadb_url,
            standin,
            tmp_path,
            label="4 workers + 2 serves, via Slack",
            jobs=JOBS,
            workers=4,
            serves=2,
            via_slack=True,
            timeout=300,
            code=CODE,
        )
        check(result)
        pids = {line.split()[1] for line in (tmp_path / "executions.log").read_text().splitlines()}
        assert len(pids) == 6, "every process ran jobs"
        seen = told_all(standin)
    for job_id in result.ids:
        job = mariadb_store.get(job_id)
        assert job is not None and job.status is JobStatus.DONE
        assert job.result == json.loads(job.input_json)["n"] ** 2
        assert_told_once(standin, job, seen.get(job_id, Told([], [], [], [])))
    print(
        f"\n{JOBS} Slack jobs on 4 workers + 2 serves: done in {result.seconds:.1f} s "
        f"({result.jobs_per_s:.1f} jobs/s), all notified in {result.notified_seconds:.1f} s; "
        f"each ran once"
    )
