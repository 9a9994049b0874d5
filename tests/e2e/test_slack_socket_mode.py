"""`python -m bot serve` in Socket Mode (SLACK_APP_TOKEN set, no signing secret, no public URL)
as a real process on MariaDB with the local executor. The real slack_sdk Socket Mode client
inside it opens `apps.connections.open` at the Slack stand-in and connects to the loopback
WebSocket stand-in, which delivers Slack's envelopes and records the app's acks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.models import Identity, Job, JobStatus
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import settled, wait_remembered
from testbed.slack_standin import SlackStandIn, message_text
from testbed.socket_mode_standin import Ack, SocketModeStandIn
from testbed.waiting import wait_until

SOMA = "def main(a, b):\n    return a + b\n"
_numbers = iter(range(1, 1000))


@pytest.fixture(scope="module")
def sockets() -> Iterator[SocketModeStandIn]:
    with SocketModeStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def standin(sockets: SocketModeStandIn) -> Iterator[SlackStandIn]:
    with SlackStandIn() as fake:
        fake.socket_url = sockets.url
        yield fake


@pytest.fixture(scope="module")
def server(
    standin: SlackStandIn,
    sockets: SocketModeStandIn,
    store: SqlStore,
    _mariadb_schema: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeProcess]:
    """serve in Socket Mode; stopped with SIGTERM at the end."""
    process = ServeProcess(
        standin,
        _mariadb_schema,
        tmp_path_factory.mktemp("serve-socket"),
        SLACK_APP_TOKEN=standin.app_token,
        SLACK_SIGNING_SECRET="",
        JOBBOT_JOB_TIMEOUT="2",
    ).start()
    sockets.wait_connected()
    yield process
    code = process.stop()
    log = process.log()
    assert code == 0, log[-3000:]
    assert standin.token not in log and standin.app_token not in log
    assert '"mode": "socket"' in log


class Member:
    """One Slack user talking to the app over Socket Mode, in a channel of their own."""

    def __init__(self, sockets: SocketModeStandIn, standin: SlackStandIn, store: SqlStore) -> None:
        n = next(_numbers)
        self.sockets, self.standin, self.store = sockets, standin, store
        self.user = f"U0SOC{n:03d}"
        self.channel = f"C0SOC{n:03d}"
        self.user_id = store.ensure_user(Identity("slack", sr.TEAM, self.user)).id

    def command(self, text: str) -> Ack:
        hook = self.standin.response_url(self.user)
        request = sr.slash(text, user=self.user, channel=self.channel, response_url=hook)
        return self.sockets.ack(self.sockets.deliver(request))

    def event(self, inner: dict[str, Any], *, event_id: str, retry_attempt: int = 0) -> Ack:
        request = sr.event(inner, event_id=event_id)
        return self.sockets.ack(self.sockets.deliver(request, retry_attempt))

    def share(self) -> dict[str, Any]:
        file = self.standin.add_file("soma.py", SOMA)
        message = sr.file_message("", [file], user=self.user, channel=self.channel)
        self.event(message, event_id=sr.unique("Ev"))
        wait_remembered(self.store, self.user_id, self.channel, file["id"])
        return file

    def jobs(self) -> list[Job]:
        return self.store.list_by_owner(self.user_id, 50)

    def settled(self, job_id: int) -> Job:
        return settled(self.store, [job_id], timeout=15)[0]


def ack_text(ack: Ack) -> str:
    return message_text(ack.payload) if ack.payload else ""


@pytest.fixture
def member(
    server: ServeProcess, sockets: SocketModeStandIn, standin: SlackStandIn, store: SqlStore
) -> Member:
    return Member(sockets, standin, store)


def test_a_run_over_socket_mode_is_acked_run_and_reported_in_its_thread(
    member: Member, standin: SlackStandIn
) -> None:
    member.share()
    ack = member.command('run {"a": 5, "b": 3}')

    assert "error" not in ack_text(ack).lower()
    job = wait_until(lambda: member.jobs() and member.jobs()[0], message="the job")
    job = member.settled(job.id)
    assert (job.status, job.result) == (JobStatus.DONE, 8)
    parents = [p for p in standin.posts(channel=member.channel) if not p.get("thread_ts")]
    assert len(parents) == 1 and f"Job #{job.id}" in message_text(parents[0])
    replies = [
        p
        for p in standin.posts(channel=member.channel, thread_ts=job.origin["slack_status_ts"])
        if "running" not in message_text(p)
    ]
    assert len(replies) == 1 and "8" in message_text(replies[0])


def test_answers_and_mistakes_come_back_in_the_ack(member: Member) -> None:
    member.share()
    member.command('run {"a": 2, "b": 2}')
    job = member.settled(wait_until(lambda: member.jobs() and member.jobs()[0]).id)

    status = ack_text(member.command(f"status {job.id}"))
    assert f"#{job.id}" in status and "done" in status.lower() and "4" in status

    mistake = ack_text(member.command('run {"a": 5,'))
    assert "JSON" in mistake
    assert len(member.jobs()) == 1, "a rejected request stores nothing"

    unknown = ack_text(member.command("status 999999"))
    assert "999999" in unknown or "no job" in unknown.lower()


def test_a_redelivered_envelope_makes_one_job(member: Member) -> None:
    file = member.standin.add_file("soma.py", SOMA)
    message = sr.file_message(
        'run {"a": 1, "b": 1}', [file], user=member.user, channel="D0" + member.user[1:]
    )
    message["channel_type"] = "im"
    event_id = sr.unique("Ev")
    member.event(message, event_id=event_id)
    member.event(message, event_id=event_id, retry_attempt=1)

    job = member.settled(wait_until(lambda: member.jobs() and member.jobs()[0]).id)
    assert (job.status, job.result) == (JobStatus.DONE, 2)
    assert len(member.jobs()) == 1, "Slack's redelivery of the same event made no second job"


def test_a_rerun_click_over_socket_mode_makes_a_new_job(
    member: Member, sockets: SocketModeStandIn
) -> None:
    member.share()
    member.command('run {"a": 3, "b": 4}')
    first = member.settled(wait_until(lambda: member.jobs() and member.jobs()[0]).id)

    click = sr.rerun_click(str(first.id), user=member.user, channel=member.channel)
    sockets.ack(sockets.deliver(sr.interactive(click)))

    again = wait_until(
        lambda: len(member.jobs()) == 2 and member.jobs()[0], message="the re-run job"
    )
    again = member.settled(again.id)
    assert (again.status, again.result, again.rerun_of) == (JobStatus.DONE, 7, first.id)
