"""Bad input from the network: malformed, partial, forged, stale and replayed Slack requests
through the real web app (Flask) served by waitress (as `serve` runs it), Bolt and MariaDB.

Each gets a proper HTTP status, a person gets a clear message where one is involved, the
server never crashes (no 500, no error logged) and nothing half-made is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from sqlalchemy import text

from bot.app.server import HttpServer, Mount, build_web_app
from bot.core.models import Identity
from bot.slack.app import SlackApp, build_app
from bot.slack.clients import web_client
from bot.slack.http import MAX_BODY, SlackEvents
from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack, stack, stack_options, standin

__all__ = ["stack", "stack_options", "standin"]  # fixtures shared with the Bolt-level suite
SOMA = "def main(a, b):\n    return a + b\n"


@dataclass(frozen=True)
class Answer:
    """What the server answered."""

    status: int
    body: str


class Server:
    """The web app of `serve` on a real waitress server, in this process."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = HttpServer(app, 0, 4, host="127.0.0.1")
        self.port = self._server.port

    def post(self, body: bytes, headers: dict[str, str], path: str = "/slack/events") -> Answer:
        """POST raw bytes with exactly these headers."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return Answer(response.status, response.read().decode(errors="replace"))
        finally:
            conn.close()

    def send(self, request: sr.SlackRequest) -> Answer:
        """POST a request built by testbed.slack_requests."""
        return self.post(request.body.encode(), request.headers)

    def close(self) -> None:
        """Stop serving, the way `serve` does on SIGTERM."""
        self._server.close()


def signed_bytes(body: bytes, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    """Signature headers over raw bytes (for bodies that are not text)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(sr.SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": "v0=" + digest.hexdigest(),
    }


def web_app(stack: Stack, slack: SlackApp) -> Flask:
    """`serve`'s web app (guard included) for a Bolt app on the stack's runtime."""
    events = SlackEvents(slack.app, stack.runtime.metrics, slack.guard)
    return build_web_app(stack.runtime.store.ping, stack.runtime.metrics, [Mount(events.blueprint)])


@pytest.fixture
def server(stack: Stack) -> Iterator[Server]:
    """`serve`'s web app for the Bolt app of the stack."""
    served = Server(web_app(stack, stack.slack))
    yield served
    served.close()


@pytest.fixture(autouse=True)
def _no_crash_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test sends, nothing is logged as an error (a crash would be)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def nothing_stored(stack: Stack) -> None:
    """Once every request sent has been handled to the end: no job, no notification and no
    user without a Slack id. Call it last."""
    stack.finish_intake()
    assert stack.jobs() == []
    with stack.runtime.store.engine.connect() as conn:  # type: ignore[attr-defined]
        blank = conn.execute(text("SELECT COUNT(*) FROM users WHERE external_id = ''")).scalar()
    assert blank == 0


def rejected(stack: Stack, reason: str) -> float:
    return stack.runtime.metrics.value("jobbot_slack_requests_rejected_total", reason=reason)


# --- signatures ----------------------------------------------------------------------------


def test_forged_unsigned_and_stale_requests_get_401_before_anything_is_read(
    stack: Stack, server: Server
) -> None:
    forged = server.send(sr.slash("status 1", secret="not-the-secret"))
    stale = server.send(sr.slash("status 1", timestamp=int(time.time()) - 301))
    future = server.send(sr.slash("status 1", timestamp=int(time.time()) + 301))
    unsigned = server.post(b"token=x&command=%2Fjob&text=help", {"content-type": sr.FORM})
    garbage = server.post(b"payload=%7Bnot json", {"content-type": sr.FORM})

    assert [a.status for a in (forged, stale, future, unsigned, garbage)] == [401] * 5
    assert (forged.body, stale.body, unsigned.body) == (
        "bad signature\n",
        "stale signature\n",
        "unsigned\n",
    )
    assert rejected(stack, "bad_signature") == 1
    assert rejected(stack, "stale_signature") == 2
    assert rejected(stack, "unsigned") == 2
    nothing_stored(stack)


def test_a_replayed_request_is_refused_and_its_answer_not_given_again(
    stack: Stack, server: Server
) -> None:
    owner = stack.runtime.service.actor(Identity("slack", sr.TEAM, sr.ALICE))
    job, _ = stack.runtime.service.submit(owner, "soma.py", SOMA.encode(), '{"a": 40, "b": 2}')
    wait_until(lambda: stack.job(job.id).status.is_final, message="the job to finish")
    captured = sr.slash(f"status {job.id}")  # say, read off a proxy's log

    first = server.send(captured)
    again = server.send(captured)

    assert first.status == 200 and "42" in message_text(json.loads(first.body))
    assert (again.status, again.body) == (401, "replayed\n")  # not the owner's output
    assert rejected(stack, "replayed") == 1


def test_a_replay_to_another_serve_process_is_refused_too(stack: Stack, server: Server) -> None:
    # a second `serve` on the same database: its own Bolt app, guard and HTTP server
    client = web_client(stack.settings)
    other_slack = build_app(stack.runtime.service, stack.runtime.store, stack.settings, client)
    other = Server(web_app(stack, other_slack))
    try:
        request = sr.slash("help")
        assert server.send(request).status == 200
        assert other.send(request) == Answer(401, "replayed\n")
    finally:
        other.close()
        other_slack.close()


def test_slacks_own_retries_are_signed_anew_and_pass(stack: Stack, server: Server) -> None:
    file = stack.standin.add_file("soma.py", SOMA)
    message = sr.file_message('<@U0BOT> run {"a": 1, "b": 2}', [file])
    envelope_id = sr.unique("Ev")

    answers = [
        server.send(sr.event(message, event_id=envelope_id, retry=retry, timestamp=ts))
        for retry, ts in ((None, int(time.time()) - 2), (1, int(time.time()) - 1), (2, None))
    ]

    assert [a.status for a in answers] == [200, 200, 200]
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    stack.finish_intake()  # the retries have been handled too
    assert job.result == 3 and len(stack.jobs()) == 1


def test_old_signatures_are_forgotten_after_the_replay_window(stack: Stack, server: Server) -> None:
    server.send(sr.slash("help"))
    store = stack.runtime.store
    keys = "SELECT COUNT(*) FROM dedupe_keys WHERE dedupe_key LIKE 'sig:%'"
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text(keys)).scalar() >= 1
    assert store.forget_keys("sig:", datetime.now(UTC)) >= 1
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text(keys)).scalar() == 0


# --- bodies --------------------------------------------------------------------------------


def test_a_body_over_1_mb_gets_413_unread(stack: Stack, server: Server) -> None:
    body = urlencode({"command": "/job", "text": "run " + "x" * MAX_BODY}).encode()

    answer = server.post(body, signed_bytes(body, sr.FORM))

    assert (answer.status, answer.body) == (413, "request body too large\n")
    assert rejected(stack, "too_large") == 1
    nothing_stored(stack)


def test_huge_command_text_under_the_body_limit_gets_a_clear_answer(
    stack: Stack, server: Server
) -> None:
    run = server.send(sr.slash("run " + json.dumps({"data": "x" * 900_000})))
    mine = server.send(sr.slash("mine " + "9" * 5000))
    status = server.send(sr.slash("status " + "7" * 100_000))

    assert [a.status for a in (run, mine, status)] == [200, 200, 200]
    assert "the limit is 64 KB" in message_text(json.loads(run.body))
    assert "is not a number from 1 to 50" in message_text(json.loads(mine.body))
    assert "is not a job id" in message_text(json.loads(status.body))
    assert stack.standin.calls("views.open") == []
    nothing_stored(stack)


def test_invalid_utf8_gets_400_when_signed_and_401_when_not(stack: Stack, server: Server) -> None:
    body = b"token=x&command=%2Fjob&text=\xff\xfe\xfa&team_id=T0TEAM&user_id=U0ALICE"

    signed = server.post(body, signed_bytes(body, sr.FORM))
    unsigned = server.post(body, {"content-type": sr.FORM})

    assert (signed.status, signed.body) == (400, "request body is not UTF-8\n")
    assert unsigned.status == 401
    nothing_stored(stack)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload=%7Bnot json", sr.FORM),
        (b"{not json", sr.JSON),
        (b"[1, 2]", sr.JSON),
        (b'"just a string"', sr.JSON),
        (b"payload=" + quote("[1]").encode(), sr.FORM),
        (b"command=%2Fjob&text=help", sr.JSON),  # a form sent as JSON
    ],
    ids=[
        "payload-not-json",
        "json-garbage",
        "json-list",
        "json-string",
        "payload-list",
        "form-as-json",
    ],
)
def test_signed_bodies_that_are_not_slack_payloads_get_400(
    stack: Stack, server: Server, body: bytes, content_type: str
) -> None:
    answer = server.post(body, signed_bytes(body, content_type))

    assert (answer.status, answer.body) == (400, "not a Slack request\n")
    nothing_stored(stack)


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        ({"command": "/job", "text": "run", "team_id": "T0TEAM"}, "user_id"),
        ({"command": "/job", "text": "status 1", "user_id": "U0ALICE"}, "team_id"),
        ({"type": "event_callback", "team_id": "T0TEAM"}, "event.type"),
        ({"type": "event_callback", "team_id": "T0TEAM", "event": {"text": "run"}}, "event.type"),
        ({"type": "block_actions", "user": {"id": "U0ALICE"}, "team": {"id": "T0TEAM"}}, "actions"),
        (
            {"type": "block_actions", "user": {"id": "U0ALICE"}, "team": {"id": "T0TEAM"},
             "actions": [{"value": "1"}]},
            "actions",
        ),
        ({"type": "block_actions", "user": "U0ALICE", "actions": [{"action_id": "job_rerun"}]},
         "user.id, team.id"),
        ({"type": "view_submission", "user": {"id": "U0ALICE", "team_id": "T0TEAM"}},
         "view.type, view.callback_id"),
    ],
    ids=["slash-no-user", "slash-no-team", "event-none", "event-untyped", "actions-none",
         "action-unnamed", "user-not-object", "view-none"],
)  # fmt: skip
def test_signed_payloads_missing_who_or_what_get_400(
    stack: Stack, server: Server, payload: dict[str, Any], missing: str
) -> None:
    if "command" in payload:
        request = sr.signed(urlencode(payload), sr.FORM)
    elif payload["type"] == "event_callback":
        request = sr.signed(json.dumps(payload), sr.JSON)
    else:
        request = sr.interactive(payload)

    answer = server.send(request)

    assert (answer.status, answer.body) == (400, f"malformed Slack payload: no {missing}\n")
    nothing_stored(stack)


def test_partial_events_inside_a_good_envelope_are_acknowledged_and_ignored(
    stack: Stack, server: Server
) -> None:
    partial = [
        {"type": "app_mention", "text": "<@U0BOT> run", "channel": sr.CHANNEL, "ts": sr.new_ts()},
        {"type": "message", "text": "run", "user": sr.ALICE, "channel_type": "im"},
        {"type": "message", "subtype": "file_share", "user": sr.ALICE, "files": "nope",
         "channel": sr.CHANNEL, "ts": sr.new_ts()},
        {"type": "app_home_opened", "tab": "home"},
    ]  # fmt: skip
    answers = [server.send(sr.event(inner)) for inner in partial]

    assert [a.status for a in answers] == [200] * len(partial)
    nothing_stored(stack)


def test_unknown_event_types_are_acknowledged_and_unknown_request_types_unhandled(
    stack: Stack, server: Server
) -> None:
    event = server.send(sr.event({"type": "emoji_changed", "subtype": "add", "name": "x"}))
    weird = server.send(sr.signed(json.dumps({"type": "something_new", "team_id": "T"}), sr.JSON))
    empty = server.send(sr.signed("", sr.FORM))
    plain = server.send(sr.signed("hello", "text/plain"))

    assert event.status == 200  # an event: Slack would retry anything else
    assert [a.status for a in (weird, empty, plain)] == [404] * 3  # Bolt: "unhandled request"
    nothing_stored(stack)


def test_an_unknown_button_is_acknowledged_and_the_person_told(
    stack: Stack, server: Server
) -> None:
    hook = stack.standin.response_url(sr.ALICE)
    payload = sr.rerun_click("1", response_url=hook)
    payload["actions"][0]["action_id"] = "job_delete_v2"

    answer = server.send(sr.interactive(payload))

    assert (answer.status, answer.body) == (200, "")
    told = stack.standin.wait_for("response_url")[0]
    assert "does not know that button" in message_text(told.body)
    nothing_stored(stack)


def test_a_forged_rerun_value_is_refused_without_a_crash(stack: Stack, server: Server) -> None:
    hook = stack.standin.response_url(sr.ALICE)
    values = ["", "-1", "1; DROP TABLE jobs", "9" * 3000, "#0", "\u0661\u0662"]
    answers = [
        server.send(sr.interactive(sr.rerun_click(value, response_url=hook))) for value in values
    ]

    assert [a.status for a in answers] == [200] * len(values)
    told = stack.standin.wait_for("response_url", count=len(values))
    texts = [message_text(call.body) for call in told]
    assert all("not a job id" in t or "Which job?" in t for t in texts), texts
    nothing_stored(stack)


def test_wrong_methods_and_paths(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/slack/events")
        assert conn.getresponse().status == 405
    finally:
        conn.close()
    assert server.post(b"{}", {"content-type": sr.JSON}, path="/slack/other").status == 404


def test_chunked_bodies_are_read_and_checked_like_any_other(stack: Stack, server: Server) -> None:
    request = sr.slash("help")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest("POST", "/slack/events")
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        data = request.body.encode()
        for part in (data[:10], data[10:]):
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        assert response.status == 200
        assert "/job run" in message_text(json.loads(response.read()))
    finally:
        conn.close()
