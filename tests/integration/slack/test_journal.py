"""The intake journal: a request acknowledged to Slack is recorded before its work starts, so a
process that dies before finishing it does not lose it — another process's sweeper takes it up
(here: the same app's sweeper, as a restarted or sibling serve would)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt.response import BoltResponse

from bot.core.models import Job, JobStatus
from bot.slack.intake.journal import HeldKind
from bot.slack.intake.request import Asker
from bot.store import SqlStore, make_engine
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack, running_stack
from tests.integration.slack.test_flows import CODE, share
from tests.support.fake_jobs import scripted
from tests.support.fakes import FakeExecutor
from tests.support.lossy_mysql import LossyMySQLProxy


@pytest.fixture
def stack_options() -> dict[str, str]:
    return {"JOBBOT_INTAKE_LEASE": "1"}


def asker(stack: Stack, **changes: Any) -> dict[str, Any]:
    """The person behind a held request; their answers go to a response_url the stand-in keeps."""
    url = stack.standin.response_url()
    base = Asker(team=sr.TEAM, user=sr.ALICE, channel=sr.CHANNEL, response_url=url)
    return dataclasses.asdict(dataclasses.replace(base, **changes))


def orphan(stack: Stack, key: str, kind: str, payload: dict[str, Any]) -> None:
    """A request a process acknowledged and then died on: held, its lease about to run out."""
    assert stack.runtime.store.hold_request(key, kind, payload, 0.01)


def one_job(stack: Stack) -> Job:
    """The one job the taken-up request made, finished and told; failing, what the person was
    told instead (a refusal goes to their response_url)."""
    try:
        return stack.wait_final(stack.wait_jobs(1)[0].id)
    except AssertionError as exc:
        told = [c.body for c in stack.standin.calls("response_url")]
        raise AssertionError(f"{exc}; the person was told {told}") from exc


def swept(stack: Stack) -> int:
    """Run the sweeper until it has taken something up."""
    return wait_until(stack.slack.sweeper.sweep, timeout=10, message="an orphan taken up")


def test_an_orphaned_job_run_command_is_finished_by_the_sweeper(stack: Stack) -> None:
    share(stack)
    payload = {
        "asker": asker(stack),
        "path": None,
        "input_text": '{"a": 2, "b": 3}',
        "trigger_id": "trig.dead",
    }
    orphan(stack, f"cmd:{sr.TEAM}:trig.dead", HeldKind.COMMAND, payload)
    assert swept(stack) == 1
    job = one_job(stack)
    assert job.status is JobStatus.DONE and job.result == 5
    assert job.idempotency_key == f"cmd:{sr.TEAM}:trig.dead"
    assert any(f"Job #{job.id}" in post["text"] for post in stack.standin.posts())


def test_an_orphaned_form_submission_is_finished_once(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    payload = {
        "asker": asker(stack),
        "file": {
            "id": file["id"],
            "name": file["name"],
            "size": file["size"],
            "url": file["url_private_download"],
            "stub": False,
        },
        "text": '{"a": 4, "b": 4}',
    }
    orphan(stack, "view:V0DEAD", HeldKind.FORM, payload)
    swept(stack)
    job = one_job(stack)
    assert job.result == 8 and job.idempotency_key == "view:V0DEAD"
    # Handled, the request leaves the journal: later sweeps find nothing, no second job.
    assert stack.slack.sweeper.sweep() == 0
    assert len(stack.jobs()) == 1


def test_an_orphaned_message_with_a_file_runs_threaded_on_that_message(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", CODE)
    event = sr.file_message('run {"a": 1, "b": 6}', [file], channel="D0ALICE", channel_type="im")
    orphan(
        stack,
        f"msg:D0ALICE:{event['ts']}",
        HeldKind.MESSAGE,
        {"team": sr.TEAM, "event": event, "is_request": True},
    )
    swept(stack)
    job = one_job(stack)
    assert job.result == 7
    assert job.origin["slack_thread_ts"] == event["ts"]


def test_an_orphaned_rerun_click_makes_one_new_job(stack: Stack) -> None:
    share(stack)
    stack.dispatch(sr.slash('run {"a": 1, "b": 1}'))
    first = one_job(stack)
    orphan(
        stack,
        "btn:1700000450.000200",
        HeldKind.RERUN,
        {"asker": asker(stack), "value": str(first.id), "from_home": False},
    )
    swept(stack)
    again = stack.wait_final(stack.wait_jobs(2)[0].id)
    assert again.rerun_of == first.id and again.result == 2


def test_a_handled_command_leaves_nothing_in_the_journal(stack: Stack) -> None:
    share(stack)
    assert stack.dispatch(sr.slash('run {"a": 5, "b": 3}')).status == 200
    one_job(stack)
    # The lease (1 s) has long run out if anything were still held; nothing is.
    wait_until(lambda: stack.runtime.store.claim_held_requests(10, 60) == [], timeout=5)
    assert stack.slack.sweeper.sweep() == 0
    assert len(stack.jobs()) == 1


@pytest.fixture
def proxy(_mariadb_schema: str) -> Iterator[LossyMySQLProxy]:
    with LossyMySQLProxy(_mariadb_schema) as lossy:
        yield lossy


def told_privately(standin: SlackStandIn, ack: BoltResponse) -> list[str]:
    """What the person was told: the ack (a message, or a form's field errors), and what went
    to them alone later (their response_url, an ephemeral message); "Working on it…" aside."""
    said = []
    if ack.body.startswith("{"):
        body = json.loads(ack.body)
        said += list(body.get("errors", {}).values()) if "errors" in body else [message_text(body)]
    else:  # an ack of text alone is that text
        said.append(ack.body)
    said += [message_text(c.body) for c in standin.calls("response_url")]
    said += [message_text(c.body) for c in standin.calls("chat.postEphemeral")]
    said += [  # a message's answer is a reply in its thread
        message_text(c.body) for c in standin.calls("chat.postMessage") if "database" in str(c.body)
    ]
    return [t for t in said if t and "Working on it" not in t]


@pytest.mark.mariadb
@pytest.mark.parametrize("entry", ["command", "form", "message"])
def test_a_request_held_as_the_database_went_away_is_never_told_nothing_was_saved(
    standin: SlackStandIn, mariadb_store: SqlStore, proxy: LossyMySQLProxy, entry: str
) -> None:
    """The journal's insert committed, its answer was lost and the database was gone for
    every retry: the person is told it may have been saved (in the ack, or privately if the
    hold outlasted the ack's budget), and once the database is back it runs, once."""
    store = SqlStore(make_engine(proxy.url))
    executor = FakeExecutor(scripted)
    with running_stack(standin, store, executor, JOBBOT_INTAKE_LEASE="1") as stack:
        if entry == "command":
            share(stack)
            request = sr.slash('run {"a": 2, "b": 5}', response_url=standin.response_url())
        elif entry == "form":
            file = standin.add_file("soma.py", CODE)
            request = sr.interactive(sr.view_submission(file, '{"a": 2, "b": 5}'))
            store.ping()
        else:  # acknowledged at once: held, then worked on, after the ack
            file = standin.add_file("soma.py", CODE)
            im = {"channel": "D0ALICE", "channel_type": "im"}
            request = sr.event(sr.file_message('run {"a": 2, "b": 5}', [file], **im))
            store.ping()
        proxy.lose_next_write_answer(matching=b"held_requests", then_down=True)
        ack = stack.dispatch(request)
        assert ack.status == 200
        answers = wait_until(
            lambda: told_privately(standin, ack), timeout=10, message="the person told"
        )
        assert proxy.lost == 1
        assert len(answers) == 1 and "may have been saved" in answers[0], answers
        proxy.come_back()
        assert swept(stack) == 1
        job = one_job(stack)
        assert job.status is JobStatus.DONE and job.result == 7
        assert not any("Nothing was saved" in t for t in told_privately(standin, ack))
    assert len(store.list_all(10)) == 1
    store.close()
