"""Where files and requests can come from: group DMs, handled like DMs; and files jobbot
cannot see, because they were shared before it was in the conversation."""

from __future__ import annotations

import pytest

from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from tests.integration.slack.conftest import Stack

CODE = "def main(a, b):\n    return a + b\n"
GROUP = "G0GROUPDM"


@pytest.fixture(autouse=True)
def group_dm(stack: Stack) -> None:
    """A group DM of two people and the bot."""
    stack.standin.add_channel(GROUP, private=True, members=(sr.ALICE, sr.BOB))


def group_text(text: str) -> dict[str, object]:
    """A plain message in a group DM (the bot and two people)."""
    return {**sr.dm_text(text, channel=GROUP), "channel_type": "mpim"}


def test_a_group_dm_with_a_file_and_run_is_a_job_threaded_on_that_message(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    inner = sr.file_message('run {"a": 2, "b": 5}', [file], channel=GROUP, channel_type="mpim")
    stack.dispatch(sr.event(inner))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result == 7
    posts = stack.standin.posts(channel=GROUP)
    assert posts and all(p["thread_ts"] == inner["ts"] for p in posts)


def test_a_file_shared_in_a_group_dm_is_run_by_the_next_request_there(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    stack.dispatch(
        sr.event(sr.file_message("for later", [file], channel=GROUP, channel_type="mpim"))
    )
    stack.wait_upload(channel=GROUP)
    request = sr.file_message('run {"a": 1, "b": 1}', [], channel=GROUP, channel_type="mpim")
    del request["subtype"], request["files"]
    stack.dispatch(sr.event(request))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result == 2


def test_chatter_in_a_group_dm_gets_no_answer(stack: Stack) -> None:
    stack.dispatch(sr.event(group_text("see you at lunch")))
    stack.dispatch(sr.event(group_text("mine")))
    stack.finish_intake()
    answers = stack.standin.calls("chat.postEphemeral") + stack.standin.calls("chat.postMessage")
    assert len(answers) == 1, "the command is answered, the chatter is not"
    assert "see you" not in message_text(answers[0].body)


def test_a_run_with_no_file_it_can_see_says_why_and_how_to_fix_it(stack: Stack) -> None:
    stack.dispatch(sr.event(sr.mention('<@U0BOT> run {"a": 1, "b": 2}')))
    call = stack.standin.wait_for("chat.postEphemeral")[0]
    text = message_text(call.body)
    assert "before jobbot was in this conversation" in text
    assert "/invite @jobbot" in text and "share the file again" in text
    assert stack.jobs() == []
