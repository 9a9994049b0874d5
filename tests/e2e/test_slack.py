"""`python -m bot serve` in HTTP mode as a real process on MariaDB with the local executor,
driven by signed Slack requests over HTTP and watched through the Slack stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from tests.e2e.people import SOMA, Answer, Person, assert_promises_kept

NOTIFY = "C0NOTIFY"


@pytest.fixture(scope="module")
def standin() -> Iterator[SlackStandIn]:
    """One stand-in for the module's server."""
    with SlackStandIn() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    standin: SlackStandIn,
    store: SqlStore,
    people: list[Person],
    _mariadb_schema: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeProcess]:
    """serve on the session's MariaDB database; stopped with SIGTERM at the end."""
    process = ServeProcess(
        standin,
        _mariadb_schema,
        tmp_path_factory.mktemp("serve"),
        JOBBOT_NOTIFY_CHANNEL=NOTIFY,
        # Every job here ends within the quiet period, however loaded the machine: each is
        # told in one message (what the assertions check), never with a status message first.
        JOBBOT_QUIET_MS="20000",
        JOBBOT_JOB_TIMEOUT="2",
        JOBBOT_MAX_CODE_BYTES="4096",
        JOBBOT_MAX_JOBS_PER_USER="1",
    ).start()
    yield process
    code = process.stop()
    log = process.log()
    assert code == 0, log[-3000:]
    assert standin.token not in log and sr.SECRET not in log
    assert '"msg": "stopped"' in log
    assert_promises_kept(people)


def person(
    server: ServeProcess, standin: SlackStandIn, store: SqlStore, people: list[Person]
) -> Person:
    """A new user whose requests go to serve over HTTP."""

    def send(request: sr.SlackRequest) -> Answer:
        answer = sr.post(server.url, request)
        return Answer(answer.status, answer.body)

    made = Person(send, standin, store, "U0E2E")
    people.append(made)
    return made


@pytest.fixture
def alice(
    server: ServeProcess, standin: SlackStandIn, store: SqlStore, people: list[Person]
) -> Person:
    return person(server, standin, store, people)


@pytest.fixture
def bob(
    server: ServeProcess, standin: SlackStandIn, store: SqlStore, people: list[Person]
) -> Person:
    return person(server, standin, store, people)


def test_health_and_metrics_endpoints_answer(server: ServeProcess) -> None:
    assert server.get("/healthz") == (200, "ok\n")
    status, text = server.get("/metrics")
    assert status == 200 and "jobbot_jobs" in text and "jobbot_queue_depth" in text
    assert server.get("/nope")[0] == 404


def test_forged_and_stale_signatures_get_401(alice: Person) -> None:
    assert alice.send(sr.slash("help", secret="wrong", user=alice.user)).status == 401
    assert (
        alice.send(sr.slash("help", timestamp=int(time.time()) - 900, user=alice.user)).status
        == 401
    )


def test_run_with_a_recent_upload_posts_one_result_message_and_the_summary(
    alice: Person, server: ServeProcess
) -> None:
    alice.share()
    download = alice.standin.hold("file")
    try:
        answer = alice.command('run {"a": 5, "b": 3}')
        # acknowledged while the file could not even be fetched: the ack waits for no work
        assert answer.status == 200 and answer.body == ""
        assert alice.jobs() == []
    finally:
        download.set()
    job = alice.settled(alice.new_job().id)
    assert job.status is JobStatus.DONE and job.result == 8 and job.executor
    # A trivial job ends within the quiet period: one channel message, its result.
    [final] = alice.standin.posts(channel=alice.channel)
    assert final == alice.final(job) and "thread_ts" not in final
    assert f"Job #{job.id} done" in final["text"] and "soma.py" in final["text"]
    assert "```8```" in message_text(final)
    assert alice.standin.calls("chat.update") == []
    summary = [p for p in alice.standin.posts(channel=NOTIFY) if f"Job #{job.id} " in p["text"]]
    assert len(summary) == 1
    assert 'jobbot_ack_seconds_count{kind="command"}' in server.get("/metrics")[1]


def test_without_an_upload_the_form_opens_and_a_double_submit_makes_one_job(alice: Person) -> None:
    assert alice.ask('run {"a": 1, "b": 2}') == ""
    [view] = wait_until(
        lambda: [
            c.body["view"]
            for c in alice.standin.calls("views.open")
            if alice.channel in c.body["view"]["private_metadata"]
        ],
        message="the form opened",
    )
    assert view["blocks"][1]["element"]["initial_value"] == '{"a": 1, "b": 2}'
    file = alice.standin.add_file("soma.py", SOMA)
    bad = alice.send(
        sr.interactive(
            sr.view_submission(file, "{oops", metadata={"c": alice.channel}, user=alice.user)
        )
    )
    assert bad.json()["response_action"] == "errors" and "input_block" in bad.json()["errors"]
    payload = sr.view_submission(
        file, '{"a": 1, "b": 2}', metadata={"c": alice.channel}, user=alice.user
    )
    assert alice.send(sr.interactive(payload)).body == ""
    # Slack sends a double click as a second request (its own trigger id, the same view)
    again = {**payload, "trigger_id": sr.new_trigger_id()}
    assert alice.send(sr.interactive(again)).body == ""
    job = alice.settled(alice.new_job().id)
    assert job.result == 3
    assert [j.id for j in alice.jobs()] == [job.id]
    alice.will_have_jobs(1)  # and still, once serve finished every request it acknowledged


def test_a_dm_with_a_file_and_run_threads_on_that_message(alice: Person) -> None:
    file = alice.standin.add_file("soma.py", SOMA)
    dm = "D" + alice.user
    inner = sr.file_message(
        'run ```{"a": 2, "b": 40}```', [file], user=alice.user, channel=dm, channel_type="im"
    )
    alice.event(inner)
    job = alice.settled(alice.new_job().id)
    assert job.result == 42
    [post] = alice.standin.posts(channel=dm)  # one call: a reply on the user's message
    assert post["thread_ts"] == inner["ts"] and "```42```" in message_text(post)


def test_duplicates_make_one_job_mention_plus_message_and_retries(alice: Person) -> None:
    file = alice.standin.add_file("soma.py", SOMA)
    message = sr.file_message(
        '<@U0BOT> run {"a": 1, "b": 1}', [file], user=alice.user, channel=alice.channel
    )
    alice.event(
        sr.mention(
            message["text"], files=[file], user=alice.user, channel=alice.channel, ts=message["ts"]
        )
    )
    alice.event(message)
    alice.event(message, retry=1)
    alice.event(message, retry=2)
    job = alice.settled(alice.new_job().id)
    assert job.idempotency_key == f"msg:{alice.channel}:{message['ts']}"
    assert [j.id for j in alice.jobs()] == [job.id]
    alice.will_have_jobs(1)  # and still, once serve finished every request it acknowledged


def test_bad_input_gets_a_clear_private_answer_and_stores_nothing(alice: Person) -> None:
    assert "not valid JSON" in alice.ask("run {'a': 1}")
    assert "JSON object" in alice.ask("run [1, 2]")
    alice.share("big.py", SOMA, size=50_000)
    alice.command("run")
    wait_until(lambda: any("the limit is 4 KB" in t for t in alice.ephemerals()), message="too big")
    alice.share("page.py", SOMA, html=True)
    alice.command("run")
    wait_until(lambda: any("sign-in page" in t for t in alice.ephemerals()), message="html refused")
    alice.share("latin.py", b"print('\xe9t\xe9')\n")
    alice.command("run")
    wait_until(lambda: any("not UTF-8" in t for t in alice.ephemerals()), message="not utf-8")
    notes = alice.standin.add_file("notes.txt", "hello")
    alice.event(sr.file_message("<@U0BOT> run", [notes], user=alice.user, channel=alice.channel))
    wait_until(lambda: any("not a Python file" in t for t in alice.ephemerals()), message="not .py")
    assert "There is no job #987654" in alice.ask("status 987654")
    assert "is not a job id" in alice.ask("cancel abc")
    assert alice.jobs() == []


def test_others_see_a_job_exists_but_never_its_output(alice: Person, bob: Person) -> None:
    alice.share(code="def main():\n    print('<!channel> secret')\n")
    alice.command("run")
    job = alice.settled(alice.new_job().id)
    seen = bob.ask(f"status {job.id}")
    assert "done" in seen and f"<@{alice.user}>" in seen and "secret" not in seen
    assert "secret" not in bob.ask("list") and f"#{job.id}" in bob.ask("list")
    assert "not yours" in bob.ask(f"rerun {job.id}") and "not yours" in bob.ask(f"cancel {job.id}")
    mine = alice.ask(f"status {job.id}")
    assert "&lt;!channel&gt; secret" in mine and "<!channel>" not in mine
    admin = Person(alice.send, alice.standin, alice.store, "U0ADM", user=sr.ADMIN)
    assert "secret" in admin.ask(f"status {job.id}")


def test_rerun_button_and_home_tab(alice: Person, bob: Person) -> None:
    alice.share()
    alice.command('run {"a": 2, "b": 2}')
    first = alice.settled(alice.new_job().id)
    button = alice.final(first)["blocks"][-1]["elements"][0]
    assert button["action_id"] == "job_rerun" and button["value"] == str(first.id)
    hook = bob.standin.response_url(bob.user)
    bob.send(
        sr.interactive(
            sr.rerun_click(str(first.id), user=bob.user, channel=alice.channel, response_url=hook)
        )
    )
    wait_until(lambda: any("not yours" in t for t in bob.ephemerals()), message="refusal")
    alice.send(
        sr.interactive(sr.rerun_click(str(first.id), user=alice.user, channel=alice.channel))
    )
    second = alice.settled(alice.new_job(1).id)
    assert second.rerun_of == first.id and second.result == 4
    alice.event(sr.home_opened(alice.user))
    home = wait_until(
        lambda: [
            c
            for c in alice.standin.calls("views.publish", user_id=alice.user)
            if f"#{second.id}" in message_text({"blocks": c.body["view"]["blocks"]})
        ]
    )
    values = [b["accessory"]["value"] for b in home[-1].body["view"]["blocks"] if "accessory" in b]
    assert values == [str(second.id), str(first.id)]


def test_cancel_a_waiting_job(alice: Person) -> None:
    alice.share("slow.py", "import time\n\ndef main():\n    time.sleep(1.5)\n    return 'slept'\n")
    alice.command("run")
    running = alice.new_job()
    alice.command("run")
    waiting = alice.new_job(1)
    assert waiting.status is JobStatus.WAITING
    assert f"Job #{waiting.id} cancelled" in alice.ask(f"cancel {waiting.id}")
    assert alice.settled(waiting.id).status is JobStatus.CANCELLED
    assert "cancelled" in alice.final(waiting)["text"]
    assert alice.settled(running.id).result == "slept"


def test_errors_timeouts_and_long_output(alice: Person) -> None:
    alice.share("boom.py", "def main():\n    return 1 / 0\n")
    alice.command("run")
    boom = alice.settled(alice.new_job().id)
    text = message_text(alice.final(boom))
    assert "failed" in text and "ZeroDivisionError" in text
    alice.share("forever.py", "import time\n\ndef main():\n    time.sleep(30)\n")
    alice.command("run")
    stuck = alice.settled(alice.new_job(1).id)
    assert stuck.status is JobStatus.TIMEOUT and "timed out" in alice.final(stuck)["text"]
    alice.share("long.py", "def main():\n    for i in range(300):\n        print('row', i)\n")
    alice.command("run")
    long = alice.settled(alice.new_job(2).id)
    assert "more lines" in message_text(alice.final(long))
    upload = wait_until(
        lambda: [
            u for u in alice.standin.uploaded() if u["thread_ts"] in job_thread(alice, long.id)
        ]
    )
    content = alice.standin.state.uploads[upload[0]["id"]]["content"].decode()
    assert "row 0" in content and "row 299" in content


def test_slack_failures_are_retried_and_delivered_once(alice: Person) -> None:
    jobs = lambda body: body.get("channel") == alice.channel and "Job #" in str(body)  # noqa: E731
    alice.standin.inject("chat.postMessage", status=429, retry_after=1, when=jobs)
    alice.standin.inject("chat.postMessage", status=500, times=2, when=jobs)
    alice.share()
    alice.command('run {"a": 20, "b": 1}')
    job = alice.settled(alice.new_job().id, timeout=20)
    assert "```21```" in message_text(alice.final(job))
    assert len([p for p in alice.standin.posts(channel=alice.channel) if "thread_ts" not in p]) == 1


def test_not_in_channel_uses_the_response_url_and_channel_not_found_a_dm(
    alice: Person, bob: Person
) -> None:
    alice.standin.inject(
        "chat.postMessage",
        error="not_in_channel",
        times=None,
        when=lambda b: b.get("channel") == alice.channel,
    )
    alice.share()
    hook = alice.standin.response_url(alice.user)
    alice.command('run {"a": 3, "b": 3}', response_url=hook)
    job = alice.settled(alice.new_job().id)
    answers = [c for c in alice.standin.calls("response_url") if c.path in hook]
    assert len(answers) == 1 and "```6```" in message_text(answers[-1].body)
    bob.standin.inject(
        "chat.postMessage",
        error="channel_not_found",
        times=None,
        when=lambda b: b.get("channel") == bob.channel,
    )
    file = bob.standin.add_file("soma.py", SOMA)
    bob.event(
        sr.file_message('<@U0BOT> run {"a": 4, "b": 4}', [file], user=bob.user, channel=bob.channel)
    )
    job = bob.settled(bob.new_job().id)
    dm = bob.standin.posts(channel="D" + bob.user)
    assert job.origin["slack_via"] == "dm" and any("```8```" in message_text(p) for p in dm)


def job_thread(person: Person, job_id: int) -> set[str]:
    """The thread a job's extras go into, read afresh (the notifier records it after the job
    settles): its one result message, or its status message when it ran past the quiet period."""
    job = person.store.get(job_id)
    assert job is not None
    origin = job.origin
    return {str(origin[k]) for k in ("slack_result_ts", "slack_status_ts") if origin.get(k)}
