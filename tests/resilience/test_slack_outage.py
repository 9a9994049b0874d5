"""Slack's Web API fails for 15 s while jobs finish: 5 s of 429 with Retry-After, 5 s of 500s,
5 s of refused connections, then it recovers. Every completion is delivered after the
recovery, and each job's owner is told exactly once (a real serve process on MariaDB with the
local executor; the loopback stand-in plays Slack)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submitter, assert_told_once, settled
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until
from testbed.workers import executions

PHASE_S = 5.0
SLEEPY = "import time\n\n\ndef main(n, s):\n    time.sleep(s)\n    return n + 1\n"
# (seconds into the outage when submitted, how long each job sleeps): completions fall in
# every phase of the outage.
BATCHES = [(0.0, [0.5, 1, 2, 3, 4]), (5.0, [0.5, 1.5, 2.5, 3.5, 4.5]), (8.5, [1, 1.5, 2, 2.5, 3])]


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A fresh Slack stand-in per test."""
    fake = SlackStandIn().start()
    yield fake
    fake.stop()


def submit(people: list[Submitter], server: ServeProcess, sleeps: list[float]) -> None:
    """Each person runs a job; back once every one is stored (its file downloaded from the
    stand-in, which a later phase of the outage takes down)."""
    for person, seconds in zip(people, sleeps, strict=True):
        sent = person.run(server, json.dumps({"n": len(person.jobs()), "s": seconds}))
        assert sent.status == 200
    wait_until(lambda: all(person.jobs() for person in people), message="the batch stored")


@pytest.mark.mariadb
@pytest.mark.slow
def test_completions_during_a_15_second_slack_outage_are_delivered_after_it_exactly_once(
    mariadb_store: SqlStore, mariadb_url: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    server = ServeProcess(standin, mariadb_url, tmp_path, entry=[str(log)]).start()
    try:
        people = [Submitter(standin, mariadb_store) for _ in range(sum(len(b) for _, b in BATCHES))]
        for person in people:
            person.share(server, SLEEPY)
        batches = iter(BATCHES)
        queues = iter(people)

        def next_batch() -> None:
            sleeps = next(batches)[1]
            submit([next(queues) for _ in sleeps], server, sleeps)

        def fail(**fault: object) -> None:
            standin.inject_only("*", times=None, **fault)

        schedule = [
            (0.0, lambda: fail(status=429, retry_after=3)),
            (BATCHES[0][0], next_batch),
            (PHASE_S, lambda: fail(status=500)),
            (BATCHES[1][0], next_batch),
            (BATCHES[2][0], next_batch),
            # Down with its 500s kept: a request it took as it stopped still gets a 500.
            (2 * PHASE_S, standin.down),
            (3 * PHASE_S, lambda: None),
        ]
        began, began_wall = time.monotonic(), time.time()
        for offset, step in schedule:
            # The fault's schedule, not synchronisation.
            threading.Event().wait(max(0.0, began + offset - time.monotonic()))
            step()
        ids = [job.id for person in people for job in person.jobs()]
        assert len(ids) == len(people)
        finished_by = datetime.now(UTC)
        recovered = time.time()
        standin.clear_faults()
        standin.up()
        jobs = settled(mariadb_store, ids, timeout=90)
        delivered_in = max(c.at for c in standin.calls() if c.body.get("_ok")) - recovered
        metrics = server.get("/metrics")[1]
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]
    assert all(job.status is JobStatus.DONE for job in jobs)
    assert all(job.finished_at is not None and job.finished_at < finished_by for job in jobs)
    for job in jobs:
        assert job.result == json.loads(job.input_json)["n"] + 1
        assert_told_once(standin, job)
    assert not [
        c for c in standin.calls() if c.body.get("_ok") and began_wall < c.at < recovered
    ], "nothing got through during the outage"
    counts = executions(log)
    assert sorted(counts) == sorted(ids) and max(counts.values()) == 1
    failed = [c for c in standin.calls() if c.http_method == "POST" and "_ok" not in c.body]
    refused = {
        "429": len([c for c in failed if c.at - began_wall < PHASE_S]),
        "500": len([c for c in failed if c.at - began_wall >= PHASE_S]),
    }
    errors = {
        kind: line.rsplit(" ", 1)[1]
        for line in metrics.splitlines()
        if line.startswith("jobbot_slack_errors_total{")
        for kind in [line.split('"')[1]]
    }
    assert {"rate_limited", "server_error", "connection"} <= set(errors), errors
    print(
        f"\n{len(jobs)} jobs finished during a {3 * PHASE_S:g} s Slack outage; all delivered "
        f"{delivered_in:.1f} s after it, each once; Slack errors seen: {errors}; "
        f"failed calls at the stand-in: {refused}"
    )
