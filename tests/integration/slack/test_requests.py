"""Bolt-level: signed slash commands, events and interactivity through the real Bolt app."""

from __future__ import annotations

import json
import time

from slack_bolt.request import BoltRequest

from testbed import jobenv
from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack

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


def test_help_names_the_packages_jobs_can_import_with_their_versions(stack: Stack) -> None:
    offered = ", ".join(jobenv.packages().offered)

    text = message_text(json.loads(stack.dispatch(sr.slash("help")).body))

    assert f"Jobs can import the standard library and: {offered}." in text
    assert "numpy " in offered and "pandas " in offered and "matplotlib " in offered


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
    from bot.slack.intake.context import WORKING

    response = stack.dispatch(sr.slash('run {"a": 1, “b”: 2}'))
    # Nothing to show in the ack; on a loaded machine the journal's hold can outlast its budget,
    # and the ack then says it is working on it (the form opens all the same).
    assert response.status == 200 and response.body in ("", WORKING)
    call = stack.standin.wait_for("views.open")[0]
    view = call.body["view"]
    assert view["callback_id"] == "job_run_modal"
    assert json.loads(view["private_metadata"])["c"] == sr.CHANNEL
    element = view["blocks"][1]["element"]
    assert element["initial_value"] == '{"a": 1, “b”: 2}'
    assert view["blocks"][0]["element"]["type"] == "file_input"


def test_doctor_reports_the_slack_mode_and_auth(stack: Stack) -> None:
    from dataclasses import replace

    from bot.slack.health import slack_checks

    rows = {name: (detail, ok) for name, detail, ok in slack_checks(stack.settings)}
    assert rows["slack mode"][0].startswith("HTTP") and rows["slack auth"][1]
    assert "U0BOT" in rows["slack auth"][0]
    revoked = replace(stack.settings, slack_bot_token="xoxb-revoked")
    rows = {name: (detail, ok) for name, detail, ok in slack_checks(revoked)}
    assert rows["slack auth"] == (
        f"auth.test at {stack.settings.slack_api_url} failed: invalid_auth",
        False,
    )
    assert "xoxb-revoked" not in rows["slack auth"][0]


def test_a_dm_command_without_a_file_is_answered_in_the_dm(stack: Stack) -> None:
    stack.dispatch(sr.event(sr.dm_text("status 424242")))
    post = stack.standin.wait_for("chat.postMessage", channel="D0ALICE")[0]
    assert "There is no job #424242" in message_text(post.body)


def test_a_database_outage_is_a_clear_try_again(stack: Stack) -> None:
    from bot.app.wiring.parts import service_limits
    from bot.core.clock import SystemClock
    from bot.core.service import JobService
    from bot.slack.app import build_app
    from bot.slack.clients import web_client
    from bot.slack.intake.context import WORKING
    from bot.store import SqlStore, make_engine

    dead = SqlStore(make_engine("mysql+pymysql://root@127.0.0.1:1/jobbot"))
    service = JobService(dead, SystemClock(), service_limits(stack.settings))
    slack = build_app(service, dead, stack.settings, web_client(stack.settings))
    try:
        hook = stack.standin.response_url("outage")
        request = sr.slash("status 1", response_url=hook)
        response = slack.app.dispatch(BoltRequest(body=request.body, headers=request.headers))
        # The ack is JSON with the answer, or the plain text WORKING when it ran out of time.
        text = (
            response.body if response.body == WORKING else message_text(json.loads(response.body))
        )
        if text == WORKING:
            # The store's failure took longer than the ack's budget (a loaded machine): the
            # answer then follows on the request's response_url.
            path = "/" + hook.split("://", 1)[1].split("/", 1)[1]
            [call] = wait_until(
                lambda: [c for c in stack.standin.calls("response_url") if c.path == path],
                timeout=30,
                message="the answer on the response_url",
            )
            text = message_text(call.body)
        assert "temporarily unavailable" in text and "Nothing was saved" in text
    finally:
        slack.close()
        dead.close()


def test_events_jobbot_has_no_use_for_are_acknowledged(stack: Stack) -> None:
    response = stack.dispatch(
        sr.event({"type": "reaction_added", "user": sr.ALICE, "event_ts": sr.new_ts()})
    )
    assert response.status == 200
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": sr.CHANNEL,
        "ts": sr.new_ts(),
    }
    assert stack.dispatch(sr.event(edited)).status == 200
    stack.finish_intake()  # both events handled to the end
    assert stack.jobs() == []
