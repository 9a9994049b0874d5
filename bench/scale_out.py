"""Scale-out: 4 `worker` and 2 `serve` processes share one MariaDB and run N jobs, each exactly
once (counted by executions, not rows), beside a baseline measured in the same run: one worker
process alone. Real processes, the real local sandbox, the loopback Slack stand-in.

    .venv/bin/python -m bench.scale_out     # JOBBOT_BENCH_MYSQL_URL; JOBBOT_BENCH_SCALE_JOBS=2000

Rows: the baseline (1 worker, jobs inserted directly); 4 workers + 2 serves with jobs inserted
directly; 4 workers + 2 serves with every job a signed `/job run` to one of the two serves and
its owner told in Slack (status message, running and result replies). tests/resilience/
test_scale_out.py runs the Slack row with 60 jobs of 0.3 s and checks it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text

from bench.databases import fresh_database
from bench.stats import table
from bot.core.models import Identity, JobStatus, NewJob
from bot.slack.intake.context import WORKING
from bot.store import SqlStore, make_engine
from bot.store.tables import NotificationState, notifications
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submitter, slack_env
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

CODE = "def main(n):\n    return n * n\n"
USERS = 50  # the per-user limit (3 running) never binds: 50 x 3 > 24 slots
SENDERS = 16  # concurrent Slack requests, as Slack sends them (it does not wait for one answer)
FLEET = {"JOBBOT_WORKERS": "4", "JOBBOT_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Run:
    """One measured run."""

    label: str
    jobs: int
    seconds: float  # first submission -> every job done
    notified_seconds: float | None  # first submission -> every notification sent (Slack)
    runs: Counter[int]  # executions per job id
    ids: list[int]
    exit_codes: list[int]

    @property
    def jobs_per_s(self) -> float:
        """Jobs done per second."""
        return self.jobs / self.seconds


def count(store: SqlStore, status: JobStatus) -> int:
    """Jobs in one status."""
    return store.count_by_status()[status]


def pending_notifications(store: SqlStore) -> int:
    """Outbox entries not yet delivered."""
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(notifications)
                .where(notifications.c.state == NotificationState.PENDING)
            ).scalar_one()
        )


def wait_done(store: SqlStore, jobs: int, timeout: float) -> None:
    """Until `jobs` are done; fails at once if any ended otherwise."""

    def done() -> bool:
        counts = store.count_by_status()
        bad = {
            s.value: n for s, n in counts.items() if s.is_final and s is not JobStatus.DONE and n
        }
        assert not bad, f"jobs ended badly: {bad}"
        return counts[JobStatus.DONE] >= jobs

    wait_until(done, timeout=timeout, interval=0.2, message=f"{jobs} jobs done")


def run(
    store: SqlStore,
    url: str,
    standin: SlackStandIn,
    workdir: Path,
    *,
    label: str,
    jobs: int,
    workers: int,
    serves: int,
    via_slack: bool,
    timeout: float = 600.0,
    code: str = CODE,
) -> Run:
    """Start the processes, submit `jobs` of `code` (through Slack or straight into the
    database), wait until all are done (and, through Slack, delivered), stop everything; the
    figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "executions.log"
    servers = [
        ServeProcess(standin, url, workdir, entry=[str(log)], **FLEET).start()
        for _ in range(serves)
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = start_workers(workers, url, log, env={**FLEET, **slack_env(standin)})
        submit = (
            _slack_submitter(store, standin, servers, code)
            if via_slack
            else _direct_submitter(store, code)
        )
        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS if via_slack else 1) as pool:
            for outcome in pool.map(submit, range(jobs)):
                assert outcome is not None
        wait_done(store, jobs, timeout)
        seconds = time.monotonic() - started
        notified = None
        if via_slack:
            wait_until(
                lambda: pending_notifications(store) == 0,
                timeout=timeout,
                interval=0.2,
                message="every notification delivered",
            )
            notified = time.monotonic() - started
    finally:
        codes = stop_workers(procs)
        codes += [server.stop(timeout=60) for server in servers]
    with store.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM jobs ORDER BY id"))]
    return Run(label, jobs, seconds, notified, executions(log), ids, codes)


def _slack_submitter(
    store: SqlStore, standin: SlackStandIn, servers: list[ServeProcess], code: str
) -> Callable[[int], bool]:
    """Job i: a signed `/job run {"n": i}` from one of USERS people to one of the serves."""
    people = [Submitter(standin, store, prefix="U0S") for _ in range(USERS)]
    for person in people:
        person.share(servers[0], code)

    def submit(i: int) -> bool:
        sent = people[i % USERS].run(servers[i % len(servers)], f'{{"n": {i}}}')
        # An empty ack: recorded at once. "Working on it…": the journal record took longer
        # than the ack's budget (a loaded machine); the job still follows, and is counted.
        assert sent.status == 200, sent
        assert sent.body in ("", WORKING), sent
        return True

    return submit


def _direct_submitter(store: SqlStore, code: str) -> Callable[[int], bool]:
    """Job i inserted straight into the database (no Slack, no notifications)."""
    owners = [store.ensure_user(Identity("local", "bench", f"u{i}")) for i in range(USERS)]
    sha = hashlib.sha256(code.encode()).hexdigest()

    def submit(i: int) -> bool:
        store.submit(NewJob(owners[i % USERS].id, "sq.py", code, sha, f'{{"n": {i}}}'))
        return True

    return submit


def clean(url: str) -> None:
    """Empty every table (child tables first)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for table_name in ("notifications", "uploads", "dedupe_keys", "jobs", "users"):
            conn.execute(text(f"DELETE FROM {table_name}"))
    engine.dispose()


def check(result: Run) -> None:
    """Each job ran exactly once and every process exited cleanly."""
    assert len(result.ids) == result.jobs, f"{len(result.ids)} jobs stored"
    assert sorted(result.runs) == result.ids, "every job ran"
    assert max(result.runs.values()) == 1, "no job ran twice"
    assert all(code == 0 for code in result.exit_codes), result.exit_codes


def main() -> None:
    jobs = int(os.environ.get("JOBBOT_BENCH_SCALE_JOBS", "2000"))
    url = fresh_database("jobbot_bench_scale")
    SqlStore(make_engine(url)).migrate()
    work = Path(tempfile.mkdtemp(prefix="jobbot-scale-"))
    plans = [
        ("1 worker, direct (baseline)", 1, 0, False),
        ("4 workers + 2 serves, direct", 4, 2, False),
        ("4 workers + 2 serves, via Slack", 4, 2, True),
    ]
    results: list[Run] = []
    for n, (label, workers, serves, via_slack) in enumerate(plans):
        clean(url)
        store = SqlStore(make_engine(url))
        with SlackStandIn() as standin:
            result = run(
                store,
                url,
                standin,
                work / str(n),
                label=label,
                jobs=jobs,
                workers=workers,
                serves=serves,
                via_slack=via_slack,
            )
        store.close()
        check(result)
        results.append(result)
        print(f"{label}: {result.jobs_per_s:.1f} jobs/s", flush=True)
    base = results[0].jobs_per_s
    rows = [["run", "jobs", "done in", "jobs/s", "vs baseline", "all notified in", "ran twice"]]
    for r in results:
        rows.append(
            [
                r.label,
                str(r.jobs),
                f"{r.seconds:.1f} s",
                f"{r.jobs_per_s:.1f}",
                f"{r.jobs_per_s / base:.2f}x",
                f"{r.notified_seconds:.1f} s" if r.notified_seconds else "-",
                str(sum(1 for v in r.runs.values() if v > 1)),
            ]
        )
    print(f"\nScale-out on {os.cpu_count()} cores, local sandbox, MariaDB\n")
    print(table(rows))


if __name__ == "__main__":
    main()
