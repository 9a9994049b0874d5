"""`python -m bot serve` in Socket Mode (SLACK_APP_TOKEN set, no signing secret, no public URL)
as a real process on MariaDB with the local executor. The real slack_sdk Socket Mode client
inside it opens `apps.connections.open` at the Slack stand-in and connects to the loopback
WebSocket stand-in, which delivers Slack's envelopes and records the app's acks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn, message_text
from testbed.socket_mode_standin import SocketModeStandIn
from tests.e2e.people import SOMA, Answer, Person, assert_promises_kept


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
    people: list[Person],
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
        # Every job here ends within the quiet period, however loaded the machine: each is
        # told in one message (what the assertions check), never with a status message first.
        JOBBOT_QUIET_MS="20000",
        JOBBOT_JOB_TIMEOUT="2",
    ).start()
    sockets.wait_connected()
    yield process
    code = process.stop()
    log = process.log()
    assert code == 0, log[-3000:]
    assert standin.token not in log and standin.app_token not in log
    assert '"mode": "socket"' in log
    assert_promises_kept(people)


@pytest.fixture
def member(
    server: ServeProcess,
    sockets: SocketModeStandIn,
    standin: SlackStandIn,
    store: SqlStore,
    people: list[Person],
) -> Person:
    """A new user whose requests reach serve as Socket Mode envelopes."""

    def send(request: sr.SlackRequest) -> Answer:
        ack = sockets.ack(sockets.deliver(request))
        return Answer(200, json.dumps(ack.payload) if ack.payload else "")

    made = Person(send, standin, store, "U0SOC")
    people.append(made)
    return made


def test_a_run_over_socket_mode_is_acked_run_and_reported_in_one_message(
    member: Person, standin: SlackStandIn
) -> None:
    member.share()
    ack = member.command('run {"a": 5, "b": 3}')

    assert ack.body == ""  # the job is on its way; nothing to say in the ack
    job = member.settled(member.new_job().id)
    assert (job.status, job.result) == (JobStatus.DONE, 8)
    # A trivial job ends within the quiet period: one channel message, its result.
    [result] = standin.posts(channel=member.channel)
    assert "thread_ts" not in result and f"Job #{job.id} done" in message_text(result)
    assert "```8```" in message_text(result)


def test_answers_and_mistakes_come_back_in_the_ack(member: Person) -> None:
    member.share()
    member.command('run {"a": 2, "b": 2}')
    job = member.settled(member.new_job().id)

    status = member.ask(f"status {job.id}")
    assert f"#{job.id}" in status and "done" in status.lower() and "4" in status

    mistake = member.ask('run {"a": 5,')
    assert "not valid JSON" in mistake
    assert len(member.jobs()) == 1, "a rejected request stores nothing"
    member.will_have_jobs(1)  # and still, once serve finished every request it acknowledged

    assert "There is no job #999999" in member.ask("status 999999")


def test_a_redelivered_envelope_makes_one_job(member: Person, sockets: SocketModeStandIn) -> None:
    file = member.standin.add_file("soma.py", SOMA)
    message = sr.file_message(
        'run {"a": 1, "b": 1}', [file], user=member.user, channel="D0" + member.user[1:]
    )
    message["channel_type"] = "im"
    request = sr.event(message, event_id=sr.unique("Ev"))
    sockets.ack(sockets.deliver(request))
    sockets.ack(sockets.deliver(request, retry_attempt=1))

    job = member.settled(member.new_job().id)
    assert (job.status, job.result) == (JobStatus.DONE, 2)
    assert [j.id for j in member.jobs()] == [job.id]
    member.will_have_jobs(1)  # and still, once serve finished every request it acknowledged


def test_a_rerun_click_over_socket_mode_makes_a_new_job(
    member: Person, sockets: SocketModeStandIn
) -> None:
    member.share()
    member.command('run {"a": 3, "b": 4}')
    first = member.settled(member.new_job().id)

    click = sr.rerun_click(str(first.id), user=member.user, channel=member.channel)
    sockets.ack(sockets.deliver(sr.interactive(click)))

    again = member.settled(member.new_job(1).id)
    assert (again.status, again.result, again.rerun_of) == (JobStatus.DONE, 7, first.id)
