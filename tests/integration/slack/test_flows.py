"""Bolt-level flows: uploads, forms, messages, buttons and the Home tab, from the signed
request to the messages at the stand-in."""

from __future__ import annotations

import json
import threading

import pytest

from bot.core.models import Job, JobStatus, RunRequest, RunResult
from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack
from tests.support.fake_jobs import scripted

CODE = "def main(a, b):\n    return a + b\n"


def outcome(stack: Stack, job_id: int) -> dict[str, object]:
    """The one message with a job's outcome (not its status message)."""
    status = (f"Job #{job_id} queued", f"Job #{job_id} running")
    [post] = [
        p
        for p in stack.standin.posts()
        if str(p.get("text")).startswith(f"Job #{job_id} ")
        and not str(p["text"]).startswith(status)
    ]
    return post


def share(
    stack: Stack, name: str = "soma.py", code: str = CODE, **event: object
) -> dict[str, object]:
    """Share a file in the channel (no mention): remembered only."""
    file = stack.standin.add_file(name, code)
    stack.dispatch(sr.event(sr.file_message("here it is", [file], **event)))  # type: ignore[arg-type]
    stack.wait_upload(str(event.get("user", sr.ALICE)))
    return file


def test_a_shared_file_is_remembered_and_run_by_the_next_command(stack: Stack) -> None:
    share(stack)
    response = stack.dispatch(sr.slash('run {"a": 5, "b": 3}'))
    assert response.status == 200 and response.body == ""
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.status is JobStatus.DONE and job.result == 8
    assert job.origin["slack_channel"] == sr.CHANNEL
    # A job that ends within the quiet period is one channel message: its result.
    [result] = stack.standin.posts(channel=sr.CHANNEL)
    assert f"Job #{job.id} done" in result["text"] and "soma.py" in result["text"]
    assert "thread_ts" not in result and "8" in message_text(result)
    assert stack.standin.calls("chat.update") == []
    downloads = stack.standin.calls("file")
    assert len(downloads) == 1 and downloads[0].auth == f"Bearer {stack.standin.token}"


def test_a_form_submitted_again_while_the_first_is_handled_is_not_handled_twice(
    stack: Stack,
) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    payload = sr.view_submission(file, '{"a": 1, "b": 2}', view_id="V0TWICE")
    download = stack.standin.hold("file")
    first = stack.dispatch(sr.interactive(payload))
    stack.standin.wait_for("file")  # the first is being handled (held in the intake journal)
    second = stack.dispatch(sr.interactive(payload))
    download.set()
    assert first.status == second.status == 200 and first.body == second.body == ""
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    stack.finish_intake()
    assert job.result == 3 and job.idempotency_key == "view:V0TWICE"
    assert len(stack.jobs()) == 1
    assert len(stack.standin.calls("file")) == 1, "the second was not even downloaded"


def test_a_form_submitted_again_after_the_first_became_a_job_is_that_job(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    payload = sr.view_submission(file, '{"a": 1, "b": 2}', view_id="V0TWICE")
    assert stack.dispatch(sr.interactive(payload)).body == ""
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert stack.dispatch(sr.interactive(payload)).body == ""
    stack.finish_intake()
    assert len(stack.standin.calls("file")) == 2, "handled again: downloaded again"
    assert [j.id for j in stack.jobs()] == [job.id], "and merged by the idempotency key"


def test_form_mistakes_come_back_as_field_errors(stack: Stack) -> None:
    bad_json = stack.dispatch(
        sr.interactive(sr.view_submission(stack.standin.add_file("a.py", CODE), "[1, 2]"))
    )
    assert bad_json.status == 200
    errors = json.loads(bad_json.body)
    assert (
        errors["response_action"] == "errors" and "JSON object" in errors["errors"]["input_block"]
    )
    text_file = stack.standin.add_file("notes.txt", "hello")
    wrong = json.loads(stack.dispatch(sr.interactive(sr.view_submission(text_file, "{}"))).body)
    assert "not a Python file" in wrong["errors"]["script_block"]
    big = stack.standin.add_file("big.py", "x = 1\n", size=10_000_000)
    too_big = json.loads(stack.dispatch(sr.interactive(sr.view_submission(big, "{}"))).body)
    assert "the limit is 4 KB" in too_big["errors"]["script_block"]
    assert stack.jobs() == []
    assert stack.standin.calls("file") == []


def test_a_dm_with_a_file_and_run_is_a_job_threaded_on_that_message(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    inner = sr.file_message('run {"a": 2, "b": 2}', [file], channel="D0ALICE", channel_type="im")
    stack.dispatch(sr.event(inner))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result == 4
    # One call: a thread reply on the user's own message.
    [post] = stack.standin.posts(channel="D0ALICE")
    assert post["thread_ts"] == inner["ts"] and "4" in message_text(post)


def test_a_mention_arriving_as_app_mention_and_message_makes_one_job(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    as_message = sr.file_message('<@U0BOT> run {"a": 1, "b": 1}', [file])
    as_mention = sr.mention(as_message["text"], files=[file], ts=as_message["ts"])
    stack.dispatch(sr.event(as_mention))
    stack.dispatch(sr.event(as_message))
    stack.dispatch(sr.event(as_message, retry=1))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    stack.finish_intake()
    assert job.idempotency_key == f"msg:{sr.CHANNEL}:{as_message['ts']}"
    assert len(stack.jobs()) == 1


def test_a_downloaded_sign_in_page_is_refused_with_a_clear_message(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE, html=True)
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", [file])))
    call = stack.standin.wait_for("chat.postEphemeral")[0]
    assert "sign-in page" in message_text(call.body) and call.body["user"] == sr.ALICE
    assert stack.jobs() == []


def test_the_token_never_goes_to_a_host_other_than_slack(stack: Stack) -> None:
    with __import__("testbed.slack_standin", fromlist=["SlackStandIn"]).SlackStandIn() as evil:
        hosted = evil.add_file("soma.py", CODE)
        file = stack.standin.add_file("soma.py", CODE)
        file["url_private_download"] = hosted["url_private_download"]
        file["url_private"] = hosted["url_private"]
        stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", [file])))
        call = stack.standin.wait_for("chat.postEphemeral")[0]
        assert "not stored on Slack's file host" in message_text(call.body)
        assert evil.calls() == []


def test_a_slack_connect_stub_is_resolved_with_files_info(stack: Stack) -> None:
    stub = stack.standin.add_file("soma.py", CODE, stub=True)
    stack.dispatch(sr.event(sr.file_message('<@U0BOT> run {"a": 3, "b": 4}', [stub])))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.result == 7
    assert stack.standin.calls("files.info", file=stub["id"])


def test_non_owners_see_existence_and_status_but_never_output(stack: Stack) -> None:
    share(stack, code=CODE + "# fake: hostile\n")
    stack.dispatch(sr.slash("run"))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    bob = message_text(json.loads(stack.dispatch(sr.slash(f"status {job.id}", user=sr.BOB)).body))
    assert f"Job #{job.id}" in bob and "done" in bob and "only its owner or an admin" in bob
    assert "channel" not in bob and "gnp" not in bob
    listing = message_text(json.loads(stack.dispatch(sr.slash("list", user=sr.BOB)).body))
    assert f"#{job.id}" in listing and "gnp" not in listing
    admin = message_text(
        json.loads(stack.dispatch(sr.slash(f"status {job.id}", user=sr.ADMIN)).body)
    )
    assert "&lt;!channel&gt;" in admin and "<!channel>" not in admin
    mine = message_text(json.loads(stack.dispatch(sr.slash("mine")).body))
    assert f"#{job.id}" in mine and "&lt;!channel&gt;" in mine


def test_rerun_buttons_check_the_owner_and_make_one_new_job(stack: Stack) -> None:
    share(stack)
    stack.dispatch(sr.slash('run {"a": 1, "b": 1}'))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    hook = stack.standin.response_url("action")
    stack.dispatch(sr.interactive(sr.rerun_click(str(job.id), user=sr.BOB, response_url=hook)))
    refusal = stack.standin.wait_for("response_url")[0]
    assert "not yours" in message_text(refusal.body)
    stack.dispatch(sr.interactive(sr.rerun_click("12abc", response_url=hook)))
    assert "not a job id" in message_text(stack.standin.wait_for("response_url", 2)[1].body)
    stack.dispatch(sr.interactive(sr.rerun_click(str(job.id))))
    jobs = stack.wait_jobs(2)
    assert jobs[0].rerun_of == job.id and jobs[0].owner_id == job.owner_id
    assert stack.wait_final(jobs[0].id).result == 2


def test_the_home_tab_lists_only_your_jobs_with_rerun_buttons(stack: Stack) -> None:
    share(stack)
    stack.dispatch(sr.slash('run {"a": 1, "b": 1}'))
    mine = stack.wait_final(stack.wait_jobs(1)[0].id)
    share(stack, user=sr.BOB)
    stack.dispatch(sr.slash('run {"a": 2, "b": 2}', user=sr.BOB))
    bobs = stack.wait_final(stack.wait_jobs(2)[0].id)
    stack.standin.reset()
    stack.dispatch(sr.event(sr.home_opened(sr.ALICE)))
    call = stack.standin.wait_for("views.publish", user_id=sr.ALICE)[0]
    view = call.body["view"]
    text = message_text({"blocks": view["blocks"]})
    assert f"#{mine.id}" in text and f"#{bobs.id}" not in text
    buttons = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert [b["value"] for b in buttons] == [str(mine.id)]
    stack.dispatch(sr.interactive(sr.rerun_click(str(bobs.id), home=True)))
    notice = stack.standin.wait_for("views.publish", 2, user_id=sr.ALICE)[1]
    assert "not yours" in message_text({"blocks": notice.body["view"]["blocks"]})


@pytest.mark.parametrize("stack_options", [{"JOBBOT_MAX_JOBS_PER_USER": "1"}])
def test_cancel_a_waiting_job_or_stop_a_running_one_of_your_own(stack: Stack) -> None:
    release = threading.Event()

    def held(request: RunRequest) -> RunResult:
        """Run until the test is done cancelling (a run the fake executor cannot stop)."""
        release.wait(15)
        return scripted(request)

    stack.executor.behaviour = held
    share(stack)
    stack.dispatch(sr.slash("run"))
    stack.dispatch(sr.slash("run"))  # a second trigger id: a second job

    # One runs, the other waits its turn (one job per user). Which one runs depends on which
    # submission committed first: both are handled at once.
    def split() -> tuple[Job, Job] | None:
        jobs = stack.jobs()
        running = [j for j in jobs if j.status is JobStatus.RUNNING]
        waiting = [j for j in jobs if j.status is JobStatus.WAITING]
        return (waiting[0], running[0]) if len(jobs) == 2 and waiting and running else None

    try:
        waiting, running = wait_until(split, message="one job running, one waiting")
        bob = message_text(
            json.loads(stack.dispatch(sr.slash(f"cancel {waiting.id}", user=sr.BOB)).body)
        )
        assert "not yours" in bob
        mine = message_text(json.loads(stack.dispatch(sr.slash(f"cancel {waiting.id}")).body))
        assert f"Job #{waiting.id} cancelled" in mine
        bob = message_text(
            json.loads(stack.dispatch(sr.slash(f"cancel {running.id}", user=sr.BOB)).body)
        )
        assert "not yours" in bob
        stopping = message_text(json.loads(stack.dispatch(sr.slash(f"cancel {running.id}")).body))
        assert f"Stopping job #{running.id}" in stopping
        stopped = stack.wait_final(running.id)  # at once: this executor cannot stop a run
    finally:
        release.set()
    cancelled = stack.wait_final(waiting.id)
    assert cancelled.status is JobStatus.CANCELLED
    # Each is told in one message, its outcome (a status message only if it took longer
    # than the quiet period).
    assert "nothing ran" in message_text(outcome(stack, cancelled.id))
    assert stopped.status is JobStatus.CANCELLED and not stopped.never_ran
    told = message_text(outcome(stack, stopped.id))
    assert "cancelled" in told and "stopped on request while it ran" in told
    again = message_text(json.loads(stack.dispatch(sr.slash(f"cancel {running.id}")).body))
    assert "already finished (cancelled)" in again


def test_a_file_attached_to_a_run_is_remembered_for_the_next_command(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    stack.dispatch(sr.event(sr.file_message('<@U0BOT> run {"a": 1, "b": 2}', [file])))
    first = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert first.result == 3
    assert stack.wait_upload().file_id == file["id"]
    assert stack.dispatch(sr.slash('run {"a": 2, "b": 2}')).status == 200
    second = stack.wait_final(max(j.id for j in stack.wait_jobs(2)))
    assert second.result == 4 and second.file_name == "soma.py"
