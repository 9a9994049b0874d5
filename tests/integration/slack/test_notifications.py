"""Bolt-level notifications: thread replies, updates, uploads and summaries, delivered once
through 429s, 5xx, dropped connections and channels closed to the bot."""

from __future__ import annotations

import pytest

from bot.core.models import Job, JobStatus, NotificationEvent, RunRequest, RunResult
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack, running_stack
from tests.support.fake_jobs import HOSTILE, scripted
from tests.support.fakes import FakeExecutor

CODE = "def main(a=1, b=2):\n    return a + b\n"


def submit_job(
    stack: Stack, code: str = CODE, *, response_url: str | None = None, text: str = "run"
) -> Job:
    """Share a file and /job run it; the job as stored."""
    file = stack.standin.add_file("soma.py", code)
    stack.dispatch(sr.event(sr.file_message("", [file])))
    stack.wait_upload()
    before = len(stack.jobs())
    stack.dispatch(sr.slash(text, response_url=response_url or stack.standin.response_url()))
    return stack.wait_jobs(before + 1)[0]


def run_job(
    stack: Stack, code: str = CODE, *, response_url: str | None = None, text: str = "run"
) -> Job:
    """Share a file, /job run it and wait until its notifications settled."""
    return stack.wait_final(submit_job(stack, code, response_url=response_url, text=text).id)


def status_posts(stack: Stack, job: Job) -> list[dict[str, object]]:
    """Status messages posted for a job (queued or running when posted)."""
    return [
        p
        for p in stack.standin.posts()
        if str(p.get("text", "")).startswith((f"Job #{job.id} queued", f"Job #{job.id} running"))
    ]


def finals(stack: Stack, job: Job) -> list[dict[str, object]]:
    """The outcome messages of a job (the ones with a Re-run button or a cancel note)."""
    return [
        p
        for p in stack.standin.posts()
        if str(p.get("text", "")).startswith(f"Job #{job.id} ")
        and p not in status_posts(stack, job)
    ]


def test_a_rate_limited_reply_is_retried_after_retry_after_and_posted_once(stack: Stack) -> None:
    stack.standin.inject(
        "chat.postMessage", status=429, retry_after=1, when=lambda b: "Job #" in str(b)
    )
    job = run_job(stack)
    assert len(finals(stack, job)) == 1
    limited = [c for c in stack.standin.calls("chat.postMessage") if not c.body.get("_ok")]
    assert len(limited) == 1
    assert stack.runtime.metrics.value("jobbot_slack_errors_total", kind="rate_limited") == 1
    # The 429 emptied the channel's bucket, for every process, until its Retry-After.
    metric = "jobbot_slack_rate_limited_total"
    assert stack.runtime.metrics.value(metric, bucket="post:channel") == 1


def test_server_errors_and_dropped_connections_are_retried_without_duplicates(stack: Stack) -> None:
    stack.standin.inject("chat.postMessage", status=500, times=2)
    stack.standin.inject("chat.postMessage", drop=True, times=3)
    job = run_job(stack)
    parents = [p for p in stack.standin.posts() if "thread_ts" not in p]
    # A job that ended within the quiet period is one channel message: its result.
    assert len(parents) == 1 and finals(stack, job) == parents
    assert stack.runtime.metrics.value("jobbot_slack_errors_total", kind="server_error") == 2
    assert stack.runtime.metrics.value("jobbot_slack_errors_total", kind="connection") >= 1
    assert all(state == "sent" for _, state in stack.runtime.store.notification_events(job.id))


def test_not_in_channel_falls_back_to_the_commands_response_url(stack: Stack) -> None:
    stack.standin.inject(
        "chat.postMessage",
        error="not_in_channel",
        times=None,
        when=lambda b: b.get("channel") == sr.CHANNEL,
    )
    hook = stack.standin.response_url()
    job = run_job(stack, response_url=hook)
    assert job.status is JobStatus.DONE
    hooks = [c for c in stack.standin.calls("response_url") if c.path in hook]
    assert len(hooks) == 1
    assert f"Job #{job.id}" in message_text(hooks[0].body)
    assert "3" in message_text(hooks[0].body) and hooks[0].body["response_type"] == "ephemeral"
    assert stack.job(job.id).origin["slack_via"] == "response_url"


def test_channel_not_found_without_a_response_url_falls_back_to_a_dm(stack: Stack) -> None:
    stack.standin.inject(
        "chat.postMessage",
        error="channel_not_found",
        times=None,
        when=lambda b: b.get("channel") == "C0GONE",
    )
    file = stack.standin.add_file("soma.py", CODE)
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", [file], channel="C0GONE")))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert stack.job(job.id).origin["slack_via"] == "dm"
    dm = stack.standin.posts(channel="D" + sr.ALICE)
    assert dm and "3" in message_text(dm[-1])
    assert stack.standin.calls("chat.postMessage", channel="D" + sr.ALICE)


def test_long_output_is_summarised_and_uploaded_in_full_in_the_thread(stack: Stack) -> None:
    job = run_job(stack, CODE + "# fake: long\n")
    final = finals(stack, job)[-1]
    text = message_text(final)
    assert "line 9" in text and "line 10\n" not in text and "190 more lines" in text
    assert f"job-{job.id}-output.txt" in text
    upload = wait_until(stack.standin.uploaded)[0]
    # The job's one message is its result; the full output goes into that message's thread.
    assert upload["thread_ts"] == stack.job(job.id).origin["slack_result_ts"]
    assert not stack.job(job.id).origin.get("slack_status_ts")
    assert upload["channel"] == sr.CHANNEL
    content = stack.standin.state.uploads[upload["id"]]["content"].decode()
    assert "line 0" in content and "line 199" in content


def test_hostile_output_cannot_ping_or_break_the_code_block(stack: Stack) -> None:
    job = run_job(stack, CODE + "# fake: hostile\n")
    for post in stack.standin.posts():
        text = message_text(post)
        assert "<!channel>" not in text and "<@U0BOB>" not in text
    final = message_text(finals(stack, job)[-1])
    assert "&lt;!channel&gt; &lt;@U0BOB&gt; &amp;" in final
    # the job's ``` cannot close jobbot's code block: the result is one block, fenced once
    result = final.split("*Result*\n", 1)[1]
    assert result.startswith("```") and result.count("```") == 2, result
    assert "\u202e" not in final and "\\u202e" in final and "\\x1b" in final
    assert HOSTILE not in final


def test_errors_and_timeouts_show_the_error_and_the_duration(stack: Stack) -> None:
    failed = run_job(stack, CODE + "# fake: error\n")
    text = message_text(finals(stack, failed)[-1])
    assert "failed" in text and "ZeroDivisionError: division by zero" in text and "12 ms" in text
    assert "Traceback" in text
    timed_out = run_job(stack, CODE + "# fake: timeout\n")
    text = message_text(finals(stack, timed_out)[-1])
    assert "timed out" in text and "10.0 s" in text and "partial" in text


@pytest.mark.parametrize(
    "stack_options", [{"JOBBOT_NOTIFY_CHANNEL": "C0NOTIFY", "JOBBOT_REPLY_BROADCAST": "false"}]
)
def test_the_notify_channel_gets_one_line_and_broadcast_can_be_off(stack: Stack) -> None:
    job = run_job(stack, CODE + "# fake: hostile\n")
    summary = stack.standin.wait_for("chat.postMessage", channel="C0NOTIFY")
    assert len(summary) == 1
    line = message_text(summary[0].body)
    assert f"Job #{job.id}" in line and "done" in line and "channel" not in line
    assert all(p.get("reply_broadcast") in {None, False, "0", "false"} for p in finals(stack, job))


def test_a_job_that_ended_before_its_progress_was_told_gets_one_message(
    standin: SlackStandIn, mariadb_store: SqlStore
) -> None:
    # Notifications go out only once the job is done (quiet period off): its queued and
    # started states became obsolete while they waited, and are dropped, not sent.
    options = {"JOBBOT_QUIET_MS": "0"}
    with running_stack(
        standin, mariadb_store, FakeExecutor(scripted), dispatch=False, **options
    ) as stack:
        queued = submit_job(stack)
        wait_until(lambda: stack.job(queued.id).status.is_final, message="the job done")
        stack.start_dispatcher()
        job = stack.wait_final(queued.id)
    assert job.status is JobStatus.DONE
    assert status_posts(stack, job) == [] and len(finals(stack, job)) == 1
    assert standin.calls("chat.update") == []
    assert stack.runtime.store.notification_events(job.id) == [(NotificationEvent.FINISHED, "sent")]


def test_a_slow_job_gets_one_status_message_updated_in_place_then_its_result(
    standin: SlackStandIn, mariadb_store: SqlStore
) -> None:
    def behaviour(request: RunRequest) -> RunResult:
        """Keep running until the status message is out (after the quiet period)."""
        wait_until(
            lambda: [p for p in standin.posts() if f"Job #{request.job_id} " in str(p["text"])],
            timeout=30,
        )
        return scripted(request)

    quiet = {"JOBBOT_QUIET_MS": "200"}
    with running_stack(standin, mariadb_store, FakeExecutor(behaviour), **quiet) as stack:
        job = run_job(stack)
    assert job.status is JobStatus.DONE
    [status] = status_posts(stack, job)
    assert "thread_ts" not in status and job.origin["slack_status_ts"]
    [final] = finals(stack, job)
    assert final["thread_ts"] == job.origin["slack_status_ts"]
    # Edited in place: to running if it was posted while the job waited, then to done.
    updates = [c.body for c in standin.calls("chat.update") if c.body.get("_ok")]
    # Only later states, in order; "running" may be coalesced away when "done" overtook it.
    shown = [str(u["text"]).split()[2].rstrip(":…") for u in updates]
    queued = str(status["text"]).startswith(f"Job #{job.id} queued")
    assert shown in ([["running", "done"], ["done"]] if queued else [["done"]]), shown
    assert "done" in message_text(updates[-1])
    assert all(u["ts"] == job.origin["slack_status_ts"] for u in updates)
    calls = [c for c in standin.web_calls() if c.api not in {"files.info", "auth.test"}]
    assert len(calls) == 2 + len(updates)
    assert job.origin["slack_shown"] == "done"
