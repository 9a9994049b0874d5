"""Bolt-level: signed slash commands, events and interactivity through the real Bolt app."""

from __future__ import annotations

import json
import time

from tests.integration.slack.conftest import Stack
from tests.support import slack_requests as sr
from tests.support.slack_standin import message_text

CODE = "def main(a, b):\n    return a + b\n"


def test_a_bad_signature_gets_401_and_does_nothing(stack: Stack) -> None:
    response = stack.dispatch(sr.slash("status 1", secret="not-the-secret"))
    assert response.status == 401
    assert stack.standin.calls() == [c for c in stack.standin.calls() if c.api == "auth.test"]


def test_a_stale_signature_gets_401(stack: Stack) -> None:
    response = stack.dispatch(sr.slash("help", timestamp=int(time.time()) - 600))
    assert response.status == 401


def test_help_and_unknown_subcommands_answer_with_usage(stack: Stack) -> None:
    response = stack.dispatch(sr.slash("frobnicate"))
    assert response.status == 200
    body = json.loads(response.body)
    text = message_text(body)
    assert "frobnicate" in text and "/job run" in text and '{"a": 5, "b": 3}' in text


def test_status_of_an_unknown_job_is_a_clear_problem(stack: Stack) -> None:
    body = json.loads(stack.dispatch(sr.slash("status 999999")).body)
    assert "There is no job #999999" in message_text(body)


def test_run_with_bad_json_answers_at_once_and_opens_no_form(stack: Stack) -> None:
    response = stack.dispatch(sr.slash("run {'a': 1}"))
    assert response.status == 200
    assert "not valid JSON" in message_text(json.loads(response.body))
    assert "double quotes" in message_text(json.loads(response.body))
    assert stack.standin.calls("views.open") == []
    assert stack.jobs() == []


def test_run_without_a_recent_upload_opens_the_form_prefilled(stack: Stack) -> None:
    response = stack.dispatch(sr.slash('run {"a": 1, “b”: 2}'))
    assert response.status == 200 and response.body == ""
    call = stack.standin.wait_for("views.open")[0]
    view = call.body["view"]
    assert view["callback_id"] == "job_run_modal"
    assert json.loads(view["private_metadata"])["c"] == sr.CHANNEL
    element = view["blocks"][1]["element"]
    assert element["initial_value"] == '{"a": 1, “b”: 2}'
    assert view["blocks"][0]["element"]["type"] == "file_input"
