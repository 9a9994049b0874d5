"""Arbitrary text from Slack through the real Bolt app (signed slash commands, mentions of the
bot, Run job form submissions), property-based: every request is answered (200, a message
or a field error), and nothing crashes in a listener or in the intake behind it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt.request import BoltRequest

from bot.app.environment import load_settings
from bot.app.wiring.parts import service_limits
from bot.core.clock import SystemClock
from bot.core.service import JobService
from bot.slack.app import SlackApp, build_app
from bot.slack.clients import web_client
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn
from tests.support.fakes import InMemoryStore
from tests.unit.slack.test_fuzz_slack_text import slack_escape


class Errors(logging.Handler):
    """Collects ERROR records (a crash anywhere in a listener or the intake is one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # logging.Handler.handle() already holds the handler's own (reentrant) lock here.
        self.records.append(record)


@pytest.fixture(scope="module")
def bolt() -> Iterator[tuple[SlackApp, Errors]]:
    """The real Bolt app on the in-memory store, answering through a Slack stand-in."""
    errors = Errors()
    logging.getLogger().addHandler(errors)
    with SlackStandIn() as standin:
        config = load_settings(
            {
                "SLACK_BOT_TOKEN": standin.token,
                "SLACK_SIGNING_SECRET": sr.SECRET,
                "SLACK_API_URL": standin.base_url,
            },
            env_file=None,
        )
        store = InMemoryStore(SystemClock())
        store.migrate()
        service = JobService(store, SystemClock(), service_limits(config))
        app = build_app(service, store, config, web_client(config))
        app.identity.resolve()
        yield app, errors
        app.close()  # lets the intake finish what the requests scheduled
    logging.getLogger().removeHandler(errors)
    formatter = logging.Formatter()
    assert [formatter.format(r) for r in errors.records] == []


def dispatch(app: SlackApp, request: sr.SlackRequest) -> tuple[int, Any]:
    response = app.app.dispatch(BoltRequest(body=request.body, headers=request.headers))
    return response.status, json.loads(response.body) if response.body else None


text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)  # Slack sends UTF-8
verbs = st.sampled_from(["run", "status", "mine", "list", "cancel", "rerun", "help", "RUN"])
slack_text = (
    text
    | st.builds(lambda verb, rest: f"{verb} {rest}", verbs, text)
    | st.builds(lambda verb, n: f"{verb} {'9' * n}", verbs, st.integers(0, 6000))
)


@settings(max_examples=150, deadline=None)
@given(slack_text)
def test_any_command_mention_or_form_text_is_answered_without_a_crash(
    bolt: tuple[SlackApp, Errors], typed: str
) -> None:
    app, errors = bolt
    sent = slack_escape(typed)

    status, body = dispatch(app, sr.slash(sent))
    assert status == 200
    assert body is None or (isinstance(body, dict) and body.get("text"))

    status, body = dispatch(app, sr.event(sr.mention(f"<@U0BOT> {sent}")))
    assert status == 200

    file = {"id": "F0NOPE", "name": "job.py", "size": 10, "url_private_download": ""}
    status, body = dispatch(app, sr.interactive(sr.view_submission(file, typed)))
    assert status == 200
    assert body is None or body["response_action"] == "errors"
    formatter = logging.Formatter()
    assert [formatter.format(r) for r in errors.records] == []  # (and again when the pools stop)
