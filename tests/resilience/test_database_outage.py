"""The engine rides out a database outage: submissions during it are refused (never silently
dropped; Slack's answer is a clear "nothing was saved"), workers recover by themselves without a
restart, and every accepted job runs exactly once."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.app.environment import load_settings
from bot.app.wiring.runtime import Runtime
from bot.core.models import Identity, JobStatus
from bot.core.replies import MAYBE_SAVED, UNAVAILABLE
from bot.errors import StoreError
from bot.slack.intake.context import KEPT as KEPT_MESSAGE
from bot.slack.intake.context import WORKING
from bot.store import SqlStore, make_engine
from bot.store.tables import held_requests, jobs
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submission, Submitter, assert_told_once, settled
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers
from tests.support.private_mariadb import PrivateMariaDB

CODE = b"def main(n):\n    return n + 1\n"


@pytest.mark.slow
def test_jobs_survive_a_10_second_database_outage(
    private_db: PrivateMariaDB, tmp_path: Path
) -> None:
    settings = load_settings({"DATABASE_URL": private_db.url}, env_file=None)
    runtime = Runtime(settings)
    runtime.migrate()
    actors = [runtime.service.actor(Identity("local", "h", f"u{i}")) for i in range(10)]
    log = tmp_path / "executions.log"
    workers = start_workers(2, private_db.url, log)
    accepted: list[int] = []
    refusals: list[StoreError] = []
    try:
        outage_ends = float("inf")
        for i in range(200):
            if i == 60:
                private_db.stop()
                outage_ends = time.monotonic() + 10
            if private_db.proc is None and time.monotonic() >= outage_ends:
                private_db.start()
            try:
                job, _ = runtime.service.submit(actors[i % 10], "inc.py", CODE, f'{{"n": {i}}}')
                accepted.append(job.id)
            except StoreError as exc:  # the service's caller words it (Slack: below)
                refusals.append(exc)
                time.sleep(0.1)  # a person retrying, not synchronisation
        if private_db.proc is None:
            private_db.start()
        wait_until(
            lambda: runtime.store.count_by_status()[JobStatus.DONE] == len(accepted),
            timeout=120,
            interval=0.25,
            message="every accepted job done",
        )
    finally:
        codes = stop_workers(workers)
        runtime.stop()
    counts = executions(log)
    assert refusals, "the outage was noticed"
    assert sorted(counts) == sorted(accepted)
    assert max(counts.values()) == 1
    assert codes == [0, 0]


BURST = 200
PACE_S = 0.1  # one submission every 100 ms: the burst spans the whole outage
OUTAGE_AT = 40  # the database stops after this many submissions ...
OUTAGE_S = 10.0  # ... for this long
# What a person is told, in part (the whole of it may be cut or wrapped as Slack shows it).
NOTHING_SAVED = "temporarily unavailable (database unreachable). Nothing was saved; try again"
MAYBE = "stopped answering while your request was being saved, so it may have been saved"
KEPT = "Your request is kept"
assert NOTHING_SAVED in UNAVAILABLE.message and MAYBE in MAYBE_SAVED.message
assert KEPT in KEPT_MESSAGE


@pytest.mark.slow
def test_slack_burst_through_a_10_second_database_outage_loses_nothing(
    private_db: PrivateMariaDB, tmp_path: Path
) -> None:
    """200 `/job run` requests to a real serve process while its MariaDB stops for 10 s: each
    is acknowledged, then either stored (and run once, its owner told once) or answered
    privately "temporarily unavailable ... Nothing was saved; try again", never both, never
    neither (one journaled before the outage may be told it is kept, and runs after it; one
    whose record reached the database as it stopped, that it may have been saved);
    /healthz goes 503 and back to 200; the same process carries on (no restart)."""
    log = tmp_path / "executions.log"
    with SlackStandIn() as standin:
        # A short intake lease (60 s by default) so what the outage left journaled is taken up
        # soon after it. The delivery lease stays at its 60 s: a result posted while the
        # database was away is recorded once it is back, before another claim could repeat it.
        server = ServeProcess(
            standin, private_db.url, tmp_path, entry=[str(log)], JOBBOT_INTAKE_LEASE="5"
        ).start()
        store = SqlStore(make_engine(private_db.url))
        health = HealthWatch(server)
        try:
            people = [Submitter(standin, store) for _ in range(10)]
            for person in people:
                person.share(server)
            health.start()
            outage = DatabaseOutage(private_db, OUTAGE_S)
            pending: list[Future[Submission]] = []
            started = time.monotonic()
            with ThreadPoolExecutor(32) as senders:  # Slack does not wait for one answer
                for i in range(BURST):
                    if i == OUTAGE_AT:
                        outage.start()
                    # The load generator's pace (people typing), not synchronisation.
                    time.sleep(max(0.0, started + i * PACE_S - time.monotonic()))
                    person = people[i % len(people)]
                    pending.append(senders.submit(person.run, server, f'{{"n": {i}}}'))
                sent = [f.result() for f in pending]
            outage.join()
            burst_s = time.monotonic() - started
            wait_until(
                lambda: account(standin, store, sent), timeout=60, message="all 200 accounted"
            )
            # A request told it may have been saved is stored by the sweeper if it was: once
            # the journal is empty, every request has its final account.
            wait_until(lambda: journal_empty(store), timeout=60, message="the journal emptied")
            stored, replies = wait_until(lambda: account(standin, store, sent), timeout=5)
            accepted = [s for s in sent if s.key in stored]
            refused = [s for s in sent if s.key not in stored]
            jobs = settled(store, [stored[s.key] for s in accepted], timeout=120)
            assert server.process is not None and server.process.poll() is None, "no restart"
        finally:
            health.stop()
            code = server.stop()
            store.close()
        assert code == 0, server.log()[-3000:]
        # Every request acknowledged, outage or not: empty when it was journaled, the
        # try-again answer when not even that could be saved.
        assert all(s.status == 200 for s in sent), sorted({(s.status, s.body[:200]) for s in sent})
        assert all(s.body == "" or working(s) for s in sent if s.key in stored)
        # ... and without waiting for the database: what was sent in the outage's first half
        # was answered before the database came back (an ack that waited would come after).
        assert outage.down_at is not None and outage.up_at is not None
        early = [s for s in sent if outage.down_at <= s.sent_at <= outage.down_at + OUTAGE_S / 2]
        assert early, "requests were sent during the outage"
        assert all(s.answered_at < outage.up_at for s in early), max(s.elapsed for s in early)
        # Accounted for: stored, or refused with the try-again answer, never both.
        assert len(accepted) + len(refused) == BURST
        assert refused, "the outage was noticed"
        # (or, if the database went away just after its record reached it, that it may have
        # been saved: whether it was is not known then)
        for s in refused:
            assert len(replies[s.key]) == 1, replies[s.key]
            assert NOTHING_SAVED in replies[s.key][0] or MAYBE in replies[s.key][0]
        # A request journaled before the outage whose work met it stays in the journal: its
        # person may be told, once, that it is kept or may have been saved (never "nothing was
        # saved"); it runs later.
        for s in accepted:
            told = replies[s.key]
            assert len(told) <= 1 and all(KEPT in t or MAYBE in t for t in told), told
        # Accepted before and after the outage: the same process recovered by itself.
        assert sent[0].key in stored and sent[-1].key in stored
        counts = executions(log)
        assert sorted(counts) == sorted(job.id for job in jobs)
        assert max(counts.values()) == 1
        assert all(job.status is JobStatus.DONE for job in jobs)
        for job in jobs:
            assert job.result == json.loads(job.input_json)["n"] + 1
            assert_told_once(standin, job)
        assert 503 in health.seen and health.seen[-1] == 200
        print(
            f"\n{BURST} submissions in {burst_s:.1f} s, database down {OUTAGE_S:g} s: "
            f"{len(accepted)} stored and run once, {len(refused)} refused with try-again; "
            f"slowest ack {max(s.elapsed for s in sent):.2f} s; "
            f"/healthz {health.summary()}"
        )


class DatabaseOutage(threading.Thread):
    """Stops the database, waits the outage out and starts it again; says when (monotonic)
    the database was down (stopped) and when it began to come back."""

    def __init__(self, server: PrivateMariaDB, seconds: float) -> None:
        super().__init__(name="outage", daemon=True)
        self.server = server
        self.seconds = seconds
        self.down_at: float | None = None
        self.up_at: float | None = None

    def run(self) -> None:
        self.server.stop()
        self.down_at = time.monotonic()
        threading.Event().wait(self.seconds)  # the length of the fault
        self.up_at = time.monotonic()
        self.server.start()


class HealthWatch:
    """Polls /healthz in the background and keeps the answers in order."""

    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.seen.append(self.server.get("/healthz")[0])

    def summary(self) -> str:
        """Runs of equal answers: 200 x12, 503 x40, 200 x30."""
        runs: list[list[int]] = []
        for status in self.seen:
            if runs and runs[-1][0] == status:
                runs[-1][1] += 1
            else:
                runs.append([status, 1])
        return ", ".join(f"{status} x{n}" for status, n in runs)


def working(submission: Submission) -> bool:
    """The ack said "Working on it…": the journal record was not confirmed within the ack's
    budget, so the outcome (a job, or a private try-again) followed later."""
    return WORKING in submission.body


def private(body: str) -> str:
    """The text of an ack body (an ephemeral answer)."""
    try:
        return message_text(json.loads(body))
    except ValueError:
        return body


def journal_empty(store: SqlStore) -> bool:
    """No request is held: each was handled, or taken up by the sweeper and handled."""
    try:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(held_requests)).scalar() == 0
    except OperationalError:
        return False


def account(
    standin: SlackStandIn, store: SqlStore, sent: list[Submission]
) -> tuple[dict[str, int], dict[str, list[str]]] | None:
    """(idempotency key -> job id of the stored submissions, key -> private replies), once
    every submission is stored or answered; None before (or while the database is away)."""
    keys = [s.key for s in sent]
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.idempotency_key, jobs.c.id).where(jobs.c.idempotency_key.in_(keys))
            ).all()
    except OperationalError:
        return None
    stored = {row[0]: row[1] for row in rows}
    hooks: dict[str, list[str]] = {}
    for call in standin.calls("response_url"):
        hooks.setdefault(call.path, []).append(message_text(call.body))
    # A private answer comes in the ack itself (the request could not even be journaled) or,
    # for a request journaled before the database went away, later through its response_url.
    replies = {
        s.key: ([private(s.body)] if s.body and not working(s) else []) + hooks.get(s.hook_path, [])
        for s in sent
    }
    if all(s.key in stored or replies[s.key] for s in sent):
        return stored, replies
    return None
