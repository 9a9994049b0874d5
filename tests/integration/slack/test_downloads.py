"""Downloading a shared file from Slack's file host as it behaves: url_private redirects to
the file edge, another host, which must not receive the bot token; redirects are followed a
few hops; HTTP errors become an answer to the person (a retry, or what to fix)."""

from __future__ import annotations

from typing import Any

from bot.core.models import JobStatus
from testbed import slack_requests as sr
from testbed.slack_files import Answer
from testbed.slack_standin import message_text
from tests.integration.slack.conftest import Stack

CODE = "def main(a, b):\n    return a + b\n"


def run_file(stack: Stack, file: dict[str, Any]) -> None:
    stack.dispatch(sr.event(sr.file_message('<@U0BOT> run {"a": 2, "b": 3}', [file])))


def refusal(stack: Stack) -> str:
    call = stack.standin.wait_for("chat.postEphemeral")[0]
    assert call.body["user"] == sr.ALICE
    return message_text(call.body)


def test_url_private_is_followed_to_the_file_edge_without_the_token(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    del file["url_private_download"]  # left with url_private, which Slack redirects
    run_file(stack, file)
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert (job.status, job.result) == (JobStatus.DONE, 5)
    (asked,) = stack.standin.calls("file")
    assert asked.auth == f"Bearer {stack.standin.token}"
    (fetched,) = stack.standin.edge.calls
    assert fetched.auth is None, "the token stays with Slack's file host"


def test_a_redirect_within_the_file_host_keeps_the_token(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    stack.standin.script_file(
        file["id"], Answer(301, file["url_private_download"] + "?origin_team=T0TEAM")
    )
    run_file(stack, file)
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result == 5
    first, second = stack.standin.calls("file")
    assert first.auth == second.auth == f"Bearer {stack.standin.token}"


def test_a_redirect_to_another_host_never_carries_the_token(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    elsewhere = stack.standin.edge.link(file["id"], "soma.py", CODE.encode(), "text/x-python")
    stack.standin.script_file(file["id"], Answer(307, elsewhere))
    run_file(stack, file)
    assert stack.wait_final(stack.wait_jobs(1)[0].id).result == 5
    assert [c.auth for c in stack.standin.edge.calls] == [None]


def test_endless_redirects_are_given_up_with_a_message(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    loop = Answer(302, file["url_private_download"])
    stack.standin.script_file(file["id"], *[loop] * 10)
    run_file(stack, file)
    assert "kept redirecting the download of soma.py" in refusal(stack)
    assert len(stack.standin.calls("file")) == 4, "the first request and three redirects"
    assert stack.jobs() == []


def test_a_file_slack_will_not_hand_over_says_how_to_fix_it(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    stack.standin.script_file(file["id"], Answer(403))
    run_file(stack, file)
    text = refusal(stack)
    assert "soma.py could not be downloaded from Slack (HTTP 403)" in text
    assert "/invite @jobbot" in text and "share the file again" in text
    assert stack.jobs() == []


def test_a_file_host_error_is_slacks_and_asks_to_try_again_later(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    stack.standin.script_file(file["id"], Answer(503))
    run_file(stack, file)
    text = refusal(stack)
    assert "Slack did not hand over soma.py (HTTP 503)" in text
    assert "Slack's side, not yours" in text and "try again in a minute" in text
    assert stack.jobs() == []


def test_an_unreachable_file_host_is_slacks_failure_and_the_bot_keeps_serving(
    stack: Stack,
) -> None:
    """The file edge that url_private redirects to refuses connections (it is down): an
    infrastructure failure of Slack's, not a mistake of the person's. They are told, alone,
    to try again later; nothing is stored; the next request is served as usual."""
    file = stack.standin.add_file("soma.py", CODE)
    del file["url_private_download"]  # url_private: redirected to the edge
    stack.standin.edge.close()
    run_file(stack, file)
    text = refusal(stack)
    assert "Slack did not hand over soma.py" in text
    assert "Slack's side, not yours" in text and "try again in a minute" in text
    assert stack.jobs() == []
    assert stack.runtime.metrics.value("jobbot_slack_errors_total", kind="connection") == 1
    good = stack.standin.add_file("again.py", CODE)  # its url_private_download: no edge
    run_file(stack, good)
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert (job.status, job.result) == (JobStatus.DONE, 5)
