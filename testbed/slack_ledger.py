"""Fault tests' view of Slack: people submitting jobs through a real serve process, and an
account of what each job's owner was told, read from the stand-in's records."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.models import Identity, Job, JobStatus, NotificationEvent
from bot.slack.formatting import VERBS
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until

CODE = "def main(n):\n    return n + 1\n"
_FINAL_VERBS = tuple(VERBS[status] for status in JobStatus if status.is_final)
_JOB = re.compile(r"Job #(\d+) ")
_people = itertools.count(1)


def slack_env(standin: SlackStandIn) -> dict[str, str]:
    """The Slack settings of a worker process that delivers Slack notifications."""
    return {
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": sr.SECRET,
        "SLACK_API_URL": standin.base_url,
    }


def wait_remembered(store: SqlStore, user_id: int, channel: str, file_id: str) -> None:
    """Wait until the bot remembered `file_id` as the user's latest upload in `channel`."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    wait_until(
        lambda: (
            (u := store.latest_upload(user_id, channel, since)) is not None and u.file_id == file_id
        ),
        message="the upload to be remembered",
    )


class Submitter:
    """One Slack user in a channel of their own, sending `/job run` to a serve process."""

    def __init__(self, standin: SlackStandIn, store: SqlStore, prefix: str = "U0R") -> None:
        n = next(_people)
        self.standin, self.store = standin, store
        self.user = f"{prefix}{n:04d}"
        self.channel = f"C{self.user[1:]}"
        self.user_id = store.ensure_user(Identity("slack", sr.TEAM, self.user)).id

    def share(self, server: ServeProcess, code: str = CODE) -> None:
        """Share `job.py` in the channel and wait until serve remembered it."""
        file = self.standin.add_file("job.py", code)
        answer = sr.post(
            server.url, sr.event(sr.file_message("", [file], user=self.user, channel=self.channel))
        )
        assert answer.status == 200, answer
        wait_remembered(self.store, self.user_id, self.channel, file["id"])

    def run(self, server: ServeProcess, input_text: str, timeout: float = 10.0) -> Submission:
        """`/job run INPUT` with a trigger id and a response_url of its own."""
        trigger = sr.new_trigger_id()
        hook = self.standin.response_url(f"{self.user}-{trigger}")
        sent_at = time.monotonic()
        answer = sr.post(
            server.url,
            sr.slash(
                f"run {input_text}",
                user=self.user,
                channel=self.channel,
                response_url=hook,
                trigger_id=trigger,
            ),
            timeout=timeout,
        )
        return Submission(self, trigger, hook, answer.status, answer.body, answer.elapsed, sent_at)

    def jobs(self) -> list[Job]:
        """This user's jobs, oldest first."""
        return list(reversed(self.store.list_by_owner(self.user_id, 1000)))


@dataclass
class Submission:
    """One `/job run` request and what became of it."""

    by: Submitter
    trigger: str
    response_url: str
    status: int
    body: str
    elapsed: float
    sent_at: float  # time.monotonic() as it was sent

    @property
    def answered_at(self) -> float:
        """time.monotonic() when its answer came back."""
        return self.sent_at + self.elapsed

    @property
    def key(self) -> str:
        """The idempotency key the job is stored under."""
        return f"cmd:{sr.TEAM}:{self.trigger}"

    @property
    def hook_path(self) -> str:
        """The path of this request's response_url on the stand-in."""
        return "/" + self.response_url.split("://", 1)[1].split("/", 1)[1]

    def private_replies(self) -> list[str]:
        """What was posted to this request's response_url."""
        return [
            message_text(c.body)
            for c in self.by.standin.calls("response_url")
            if c.path == self.hook_path
        ]


@dataclass(frozen=True)
class Told:
    """The Slack messages about one job."""

    parents: list[dict[str, Any]]  # the status message in the channel
    running: list[dict[str, Any]]  # "is running" thread replies
    finals: list[dict[str, Any]]  # outcomes: a thread reply, or a fast job's one message
    updates: list[dict[str, Any]]  # chat.update of the status message


def told(standin: SlackStandIn, job_id: int) -> Told:
    """Every successful post and update that names job `job_id`."""
    return told_all(standin).get(job_id, Told([], [], [], []))


def told_all(standin: SlackStandIn) -> dict[int, Told]:
    """Told of every job named in a successful post or update, in one pass over the records."""
    found: dict[int, Told] = {}
    for call in standin.calls():
        if call.api not in {"chat.postMessage", "chat.update"} or not call.body.get("_ok"):
            continue
        named = _JOB.match(str(call.body.get("text") or ""))
        if named is None:
            continue
        job_id = int(named[1])
        seen = found.setdefault(job_id, Told([], [], [], []))
        body = call.body
        if call.api == "chat.update":
            seen.updates.append(body)
        elif body["text"] == f"Job #{job_id} is running":
            seen.running.append(body)
        elif body.get("thread_ts") or str(body["text"]).startswith(
            tuple(f"Job #{job_id} {verb}" for verb in _FINAL_VERBS)
        ):
            # A status message is never first posted final: a channel message that starts
            # with an outcome is a fast job's one message (result and all).
            seen.finals.append(body)
        else:
            seen.parents.append(body)
    return found


def assert_told_once(standin: SlackStandIn, job: Job, seen: Told | None = None) -> Told:
    """The owner was told exactly once: a job that ended within the quiet period by one
    channel message; a slower one by one status message, kept in step, and one outcome reply
    in its thread."""
    seen = seen if seen is not None else told(standin, job.id)
    assert len(seen.finals) == 1, f"job {job.id}: {len(seen.finals)} outcome replies"
    assert seen.running == [], f"job {job.id}: {len(seen.running)} running replies"
    final = seen.finals[0]
    assert final["text"].startswith(f"Job #{job.id} {VERBS[job.status]}"), final["text"]
    if final.get("thread_ts"):
        assert len(seen.parents) == 1, f"job {job.id}: {len(seen.parents)} status messages"
        shown = [u["text"] for u in seen.updates]
        assert len(shown) == len(set(shown)), f"job {job.id}: a status shown twice: {shown}"
        assert final["thread_ts"] == job.origin.get("slack_status_ts"), "in the thread"
    else:
        assert seen.parents == [] and seen.updates == [], f"job {job.id}: more than one message"
    return seen


def settled(store: SqlStore, ids: Iterable[int], timeout: float) -> list[Job]:
    """Wait until every job is final and each of its notifications was delivered."""
    wanted = list(ids)

    def check() -> list[Job] | None:
        jobs = []
        for job_id in wanted:
            # Events first: a delivery settled after them has its progress in the job read next.
            # A final job's `finished` notification is committed with its final status, so
            # waiting for it here keeps a status committed between the two reads from passing.
            events = store.notification_events(job_id)
            if all(event != NotificationEvent.FINISHED for event, _ in events):
                return None
            if any(state != "sent" for _, state in events):
                return None
            job = store.get(job_id)
            if job is None or not job.status.is_final:
                return None
            jobs.append(job)
        return jobs

    return wait_until(check, timeout=timeout, interval=0.1, message=f"{len(wanted)} jobs settled")
