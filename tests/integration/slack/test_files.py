"""Files through Slack: data files attached beside the .py (or picked in the form) reach the
job; its files out are shared in its thread with files_upload_v2 at the stand-in, which
implements files.getUploadURLExternal, the upload and files.completeUploadExternal strictly."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.models import FileRole, JobFile, JobStatus, RunRequest, RunResult
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack, running_stack
from tests.support.fake_jobs import HOSTILE, scripted
from tests.support.fakes import FakeExecutor

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
CODE = "print('chart')\n"


SEEN: list[RunRequest] = []


def chart(request: RunRequest) -> RunResult:
    """A job that reads its data files and leaves a figure and a copy of each behind."""
    SEEN.append(request)
    result = scripted(request)
    copies = tuple(JobFile(f"copy-{f.name}", f.data) for f in request.files)
    note = HOSTILE if "# note" in request.code else None
    files = () if "# none" in request.code else (JobFile("figure-1.png", PNG), *copies)
    return dataclasses.replace(result, files=files, files_note=note)


@pytest.fixture
def files_stack(standin: SlackStandIn, mariadb_store: SqlStore) -> Iterator[Stack]:
    SEEN.clear()
    with running_stack(
        standin, mariadb_store, FakeExecutor(chart), JOBBOT_MAX_FILES_IN_BYTES="1000"
    ) as stack:
        yield stack


def attach_and_run(stack: Stack, code: str, *data: tuple[str, bytes]) -> int:
    files = [stack.standin.add_file("job.py", code)]
    files += [stack.standin.add_file(name, content) for name, content in data]
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", files)))
    return stack.wait_final(stack.wait_jobs(1)[0].id).id


def shared(stack: Stack, count: int) -> list[dict[str, Any]]:
    return wait_until(lambda: len(u := stack.standin.uploaded()) >= count and u)


def test_data_files_attached_beside_the_py_reach_the_job(files_stack: Stack) -> None:
    job_id = attach_and_run(files_stack, CODE, ("data.csv", b"a,b\n1,2\n"), ("../x.txt", b"x"))

    assert [(f.name, f.data) for f in SEEN[-1].files] == [
        ("data.csv", b"a,b\n1,2\n"),
        ("x.txt", b"x"),
    ]
    stored = files_stack.runtime.store.read_files(job_id, FileRole.IN)
    assert [f.name for f in stored] == ["data.csv", "x.txt"]


def test_files_out_are_shared_in_the_jobs_thread_with_one_completion(files_stack: Stack) -> None:
    job_id = attach_and_run(files_stack, CODE, ("data.csv", b"1,2\n"))
    job = files_stack.job(job_id)

    uploads = shared(files_stack, 2)

    assert sorted((u["title"], u["content"]) for u in uploads) == [
        ("copy-data.csv", b"1,2\n"),
        ("figure-1.png", PNG),
    ]
    thread = job.origin.get("slack_thread_ts")
    assert {u["channel"] for u in uploads} == {sr.CHANNEL}
    assert len({u["thread_ts"] for u in uploads}) == 1 and None not in {
        u["thread_ts"] for u in uploads
    }
    # The job came from a message: its thread is that message.
    assert thread and uploads[0]["thread_ts"] == thread
    (complete,) = files_stack.standin.calls("files.completeUploadExternal")
    assert "Files from job #" in complete.body["initial_comment"]
    asked = files_stack.standin.calls("files.getUploadURLExternal")
    assert sorted(c.body["filename"] for c in asked) == ["copy-data.csv", "figure-1.png"]
    png = next(c for c in asked if c.body["filename"] == "figure-1.png")
    assert png.body["alt_txt"] == f"figure-1.png from job #{job_id}"  # an image: inline
    # the progress kept in the job's origin: a later delivery of the event shares nothing again
    wait_until(lambda: files_stack.job(job_id).origin.get("slack_files") == "done")


def test_a_note_on_files_left_out_is_posted_inert(files_stack: Stack) -> None:
    job_id = attach_and_run(files_stack, CODE + "# none\n# note\n")

    note = wait_until(
        lambda: next(
            (p for p in files_stack.standin.posts() if f"Job #{job_id} left no file" in p["text"]),
            None,
        )
    )

    assert "<!channel>" not in note["text"] and "&lt;!channel&gt;" in note["text"]
    assert files_stack.standin.uploaded() == []


def test_job_status_names_its_files_with_sizes_and_the_note_to_its_owner_only(
    files_stack: Stack,
) -> None:
    job_id = attach_and_run(files_stack, CODE + "# note\n", ("data.csv", b"1,2\n"))

    def status(user: str) -> str:
        reply = files_stack.dispatch(sr.slash(f"status {job_id}", user=user))
        return message_text(json.loads(reply.body))

    owner = status(sr.ALICE)
    assert "Data files: `data.csv` (4 bytes)" in owner
    assert f"Files out: `figure-1.png` ({len(PNG)} bytes), `copy-data.csv` (4 bytes)" in owner
    assert "Files left out: " in owner
    assert "<!channel>" not in owner and "&lt;!channel&gt;" in owner, "the note made inert"
    other = status(sr.BOB)
    assert "data.csv" not in other and "figure-1.png" not in other and "left out" not in other


def test_data_files_over_the_limit_are_refused_to_the_user_before_anything_is_stored(
    files_stack: Stack,
) -> None:
    files = [files_stack.standin.add_file("job.py", CODE)]
    files.append(files_stack.standin.add_file("big.csv", b"x" * 1001))

    files_stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", files)))

    refusal = files_stack.standin.wait_for("chat.postEphemeral")[0]
    assert refusal.body["user"] == sr.ALICE
    assert "The data files (big.csv) are 1001 bytes together; the limit is 1000 bytes." in (
        message_text(refusal.body)
    )
    assert files_stack.jobs() == []
    assert len(files_stack.standin.calls("file")) == 1, "the big file was never downloaded"


def test_data_files_picked_in_the_form_reach_the_job(files_stack: Stack) -> None:
    code = files_stack.standin.add_file("job.py", CODE)
    data = files_stack.standin.add_file("data.csv", b"1\n")
    payload = sr.view_submission(code, "")
    payload["view"]["state"]["values"]["data_block"] = {
        "data_files": {"type": "file_input", "files": [data]}
    }

    assert files_stack.dispatch(sr.interactive(payload)).body == ""

    job = files_stack.wait_final(files_stack.wait_jobs(1)[0].id)
    assert job.status is JobStatus.DONE
    assert files_stack.runtime.store.read_files(job.id, FileRole.IN) == [
        JobFile("data.csv", b"1\n")
    ]


def test_the_form_refuses_picked_files_over_the_limit_in_its_ack(files_stack: Stack) -> None:
    code = files_stack.standin.add_file("job.py", CODE)
    data = files_stack.standin.add_file("data.csv", b"x" * 2000)
    payload = sr.view_submission(code, "")
    payload["view"]["state"]["values"]["data_block"] = {
        "data_files": {"type": "file_input", "files": [data]}
    }

    response = files_stack.dispatch(sr.interactive(payload))

    assert response.status == 200 and '"data_block"' in str(response.body)
    assert "2 KB together; the limit is 1000 bytes" in str(response.body)
    assert files_stack.jobs() == []


# --- the stand-in's upload methods, through the real WebClient ------------------------------


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=standin.token, base_url=standin.url("api/"))


def test_get_upload_url_needs_a_name_and_a_positive_length(client: WebClient) -> None:
    for args, error in (
        ({"filename": "a.txt", "length": 0}, "missing_argument"),
        ({"filename": "", "length": 3}, "invalid_arguments"),
        ({"filename": "a.png", "length": 3, "alt_txt": "x" * 1001}, "alt_txt_too_large"),
    ):
        with pytest.raises(SlackApiError) as info:
            client.files_getUploadURLExternal(**args)
        assert info.value.response["error"] == error


def test_an_upload_of_another_length_than_announced_is_refused(client: WebClient) -> None:
    answer = client.files_getUploadURLExternal(filename="a.txt", length=5)

    with pytest.raises(urllib.error.HTTPError) as info:
        client._upload_file(  # the step files_upload_v2 takes, as it takes it
            url=answer["upload_url"], data=b"abc", logger=client._logger, timeout=5,
            proxy=None, ssl=None,
        )  # fmt: skip

    info.value.close()  # the error holds the answer's connection
    assert info.value.code == 400
    with pytest.raises(SlackApiError, match="file_not_found"):  # nothing was uploaded
        client.files_completeUploadExternal(files=[{"id": answer["file_id"]}])


def test_completing_an_unknown_unuploaded_or_completed_file_is_file_not_found(
    client: WebClient,
) -> None:
    answer = client.files_getUploadURLExternal(filename="a.txt", length=3)
    for files in ([{"id": "F9999999"}], [{"id": answer["file_id"]}]):
        with pytest.raises(SlackApiError, match="file_not_found"):
            client.files_completeUploadExternal(files=files, channel_id=sr.CHANNEL)
    done = client.files_upload_v2(content=b"abc", filename="a.txt", channel=sr.CHANNEL)
    with pytest.raises(SlackApiError, match="file_not_found"):
        client.files_completeUploadExternal(files=[{"id": done["file"]["id"]}])


def test_upload_methods_are_tier_4_rate_limited(standin: SlackStandIn, client: WebClient) -> None:
    limited = None
    for _ in range(200):
        try:
            client.files_getUploadURLExternal(filename="a.txt", length=1)
        except SlackApiError as exc:
            limited = exc.response
            break
    assert limited is not None and limited.status_code == 429
    assert limited.headers.get("Retry-After")


def test_a_share_that_failed_is_retried_and_completes_once(files_stack: Stack) -> None:
    files_stack.standin.inject("files.completeUploadExternal", status=500)

    job_id = attach_and_run(files_stack, CODE)

    uploads = shared(files_stack, 1)
    assert [u["title"] for u in uploads] == ["figure-1.png"]
    completes = files_stack.standin.calls("files.completeUploadExternal")
    assert [c.status for c in completes] == [500, 200]
    wait_until(lambda: files_stack.job(job_id).origin.get("slack_files") == "done")
    assert len(files_stack.standin.uploaded()) == 1  # shared once
