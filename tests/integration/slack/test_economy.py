"""The message economy against a stand-in that enforces Slack's limits: one message for a fast
job, traffic paced to Slack's buckets (no 429s), a 429 holding up its own channel only, the
App Home republished at most once per refresh period, and the figures on /metrics."""

from __future__ import annotations

import pytest

from bot.core.models import Job
from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack

CODE = "def main(n=0):\n    return n + 1000\n"
NOT_THE_JOBS = {"auth.test", "files.info"}  # the app's identity and the file's metadata


def run_from_message(stack: Stack, n: int, channel: str = sr.CHANNEL) -> dict[str, object]:
    """A message with the .py attached and `@jobbot run`; the message event sent."""
    file = stack.standin.add_file("job.py", CODE)
    inner = sr.file_message(f'<@U0BOT> run {{"n": {n}}}', [file], channel=channel)
    stack.dispatch(sr.event(inner))
    return inner


def results(stack: Stack, channel: str | None = None) -> list[dict[str, object]]:
    """Result messages posted (in `channel`)."""
    match = {"channel": channel} if channel else {}
    return [p for p in stack.standin.posts(**match) if "done" in str(p.get("text"))]


def job_calls(stack: Stack) -> list[str]:
    """The Web API methods called for jobs."""
    return [str(c.api) for c in stack.standin.web_calls() if c.api not in NOT_THE_JOBS]


def test_a_fast_job_from_a_message_is_one_thread_reply_on_that_message(stack: Stack) -> None:
    inner = run_from_message(stack, 1)
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result is not None
    [reply] = stack.standin.posts()
    assert reply["thread_ts"] == inner["ts"] and reply["channel"] == sr.CHANNEL
    assert reply["reply_broadcast"] in {True, "1", "true"}
    assert f"```{job.result}```" in message_text(reply)
    assert job_calls(stack) == ["chat.postMessage"], "one call, nothing queued or running"


def test_a_job_without_files_takes_no_turn_in_the_upload_buckets(stack: Stack) -> None:
    run_from_message(stack, 1)
    stack.wait_final(stack.wait_jobs(1)[0].id)
    assert stack.runtime.store.turns_ahead("slack:post:", 0.0), "its result took a turn"
    assert stack.runtime.store.turns_ahead("slack:files.", 0.0) == [], "it shared nothing"


def test_a_burst_in_one_channel_is_paced_to_its_limit_without_a_429(stack: Stack) -> None:
    jobs = 9  # the stand-in allows a burst of 5 a channel, then 1 a second
    for n in range(jobs):
        run_from_message(stack, n)
    wait_until(lambda: len(results(stack)) == jobs, timeout=30, message=f"{jobs} results")
    assert stack.standin.rate_limited() == []
    assert job_calls(stack) == ["chat.postMessage"] * jobs


def test_an_answer_to_the_asker_goes_at_once_and_spends_a_turn_the_outbox_sees(
    stack: Stack,
) -> None:
    store = stack.runtime.store
    stack.dispatch(sr.event(sr.mention('<@U0BOT> run {"a": 1}')))  # no file: answered privately
    stack.standin.wait_for("chat.postEphemeral")
    wait_until(
        lambda: store.turns_ahead("slack:chat.postEphemeral", 0.0),
        message="the answer counted in chat.postEphemeral's bucket",
    )
    assert stack.standin.rate_limited() == []


def test_a_429_in_one_channel_does_not_hold_up_another(stack: Stack) -> None:
    stack.standin.inject(
        "chat.postMessage",
        status=429,
        retry_after=5,
        when=lambda body: body.get("channel") == "C0SLOW",
    )
    run_from_message(stack, 1, channel="C0SLOW")
    stack.standin.wait_for("chat.postMessage", channel="C0SLOW")  # refused
    run_from_message(stack, 2, channel="C0FAST")
    wait_until(lambda: results(stack, "C0FAST"), message="the other channel's result")
    assert results(stack, "C0SLOW") == [], "still waiting out its Retry-After"
    wait_until(lambda: results(stack, "C0SLOW"), timeout=20, message="the result after it")
    assert len(stack.standin.rate_limited()) == 1
    metric = "jobbot_slack_rate_limited_total"
    assert stack.runtime.metrics.value(metric, bucket="post:channel") == 1


@pytest.mark.parametrize("stack_options", [{"JOBBOT_HOME_REFRESH_S": "3600"}])
def test_the_home_tab_is_published_on_open_and_never_once_per_job(stack: Stack) -> None:
    run_from_message(stack, 1, channel="C0A")
    stack.wait_final(stack.wait_jobs(1)[0].id)
    assert stack.standin.calls("views.publish") == [], "never opened: nothing to refresh"
    stack.dispatch(sr.event(sr.home_opened(sr.ALICE)))
    stack.standin.wait_for("views.publish", user_id=sr.ALICE)
    for n in range(3):
        run_from_message(stack, n, channel="C0B")
    wait_until(lambda: len(results(stack, "C0B")) == 3, message="three more results")
    jobs: list[Job] = stack.jobs()
    for job in jobs:
        stack.wait_final(job.id)
    assert len(stack.standin.calls("views.publish")) == 1, "within its refresh period"
    stack.dispatch(sr.event(sr.home_opened(sr.ALICE)))
    stack.standin.wait_for("views.publish", 2, user_id=sr.ALICE)  # opening always publishes


def test_metrics_show_delivery_lag_and_the_buckets_queue(stack: Stack) -> None:
    run_from_message(stack, 1)
    stack.wait_final(stack.wait_jobs(1)[0].id)
    # Observed just after the delivery is recorded settled: look until it is there.
    lag = "jobbot_notification_lag_seconds_count 1"
    text = wait_until(lambda: (t := stack.runtime.metrics.render()) and lag in t and t)
    assert "# TYPE jobbot_slack_backlog gauge" in text
