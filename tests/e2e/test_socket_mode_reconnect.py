"""`python -m bot serve` in Socket Mode when the WebSocket does not hold: a dropped connection
and Slack's `disconnect` envelope are followed by a new connection (apps.connections.open
again) that serves on, and an event left unacknowledged is sent again and makes one job.

Each test has its own stand-ins and serve process: apps.connections.open is a Tier 1 method
(about one call a minute), which the stand-in enforces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn
from testbed.socket_mode_standin import SocketModeStandIn
from testbed.waiting import wait_until
from tests.e2e.people import SOMA, Answer, Person

pytestmark = pytest.mark.slow  # each test waits out a reconnection (seconds)


@pytest.fixture
def sockets() -> Iterator[SocketModeStandIn]:
    with SocketModeStandIn(ack_timeout_s=3.0) as standin:
        yield standin


@pytest.fixture
def standin(sockets: SocketModeStandIn) -> Iterator[SlackStandIn]:
    with SlackStandIn() as fake:
        fake.socket_url = sockets.url
        yield fake


@pytest.fixture
def server(
    standin: SlackStandIn,
    sockets: SocketModeStandIn,
    store: SqlStore,
    _mariadb_schema: str,
    tmp_path: Path,
) -> Iterator[ServeProcess]:
    process = ServeProcess(
        standin,
        _mariadb_schema,
        tmp_path,
        SLACK_APP_TOKEN=standin.app_token,
        SLACK_SIGNING_SECRET="",
        JOBBOT_JOB_TIMEOUT="5",
        # a dropped connection is noticed after 4 unanswered pings: 2 s here instead of 12 s
        JOBBOT_SOCKET_PING_S="0.5",
    ).start()
    sockets.wait_connected()
    yield process
    code = process.stop()
    assert code == 0, process.log()[-3000:]


@pytest.fixture
def member(
    server: ServeProcess, sockets: SocketModeStandIn, standin: SlackStandIn, store: SqlStore
) -> Person:
    def send(request: sr.SlackRequest) -> Answer:
        ack = sockets.ack(sockets.deliver(request), timeout=30)
        return Answer(200, json.dumps(ack.payload) if ack.payload else "")

    return Person(send, standin, store, "U0REC")


def connections_opened(standin: SlackStandIn) -> int:
    return len([c for c in standin.calls("apps.connections.open") if c.body.get("_ok")])


def test_a_dropped_connection_is_opened_again_and_serves_on(
    member: Person, sockets: SocketModeStandIn, standin: SlackStandIn
) -> None:
    before = sockets.opened
    sockets.drop()
    sockets.wait_connected(after=before, timeout=30)
    assert connections_opened(standin) == 2, "a new WebSocket URL was asked for"
    assert "There is no job #999999" in member.ask("status 999999")


def test_a_disconnect_envelope_makes_the_app_connect_anew(
    member: Person, sockets: SocketModeStandIn, standin: SlackStandIn
) -> None:
    before = sockets.opened
    sockets.disconnect("refresh_requested")
    number = sockets.wait_connected(after=before, timeout=30)
    assert connections_opened(standin) == 2
    wait_until(
        lambda: sockets.opened == number and sockets.live_count() == 1,
        timeout=30,
        message="the app to leave the old connection",
    )
    assert "There is no job #999998" in member.ask("status 999998")


def test_an_event_left_unacknowledged_is_sent_again_and_makes_one_job(
    member: Person, sockets: SocketModeStandIn, standin: SlackStandIn
) -> None:
    file = standin.add_file("soma.py", SOMA)
    message = sr.file_message(
        'run {"a": 4, "b": 4}', [file], user=member.user, channel="D0" + member.user[1:]
    )
    message["channel_type"] = "im"
    before = sockets.opened
    envelope = sockets.deliver(sr.event(message, event_id=sr.unique("Ev")), cut_before_ack=True)
    sockets.wait_connected(after=before, timeout=30)
    ack = sockets.ack(envelope, timeout=60)
    deliveries = sockets.deliveries_of(envelope)
    assert [d.retry_attempt for d in deliveries][:2] == [0, 1]
    assert deliveries[1].connection > deliveries[0].connection, "sent again on the new one"
    assert ack.at > deliveries[1].at
    job = member.settled(member.new_job().id)
    assert (job.status, job.result) == (JobStatus.DONE, 8)
    member.will_have_jobs(1)
