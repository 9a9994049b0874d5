"""Code from a message, through the real Bolt app: a DM, group DM or mention holding `run
{json}` and a code block runs that code; a Python text snippet runs like a .py upload; what
Slack does to text (entities, link markup, smart quotes) is undone; every mistake is told to
the sender alone, and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.core.models import FileRole, JobStatus
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from bot.store import SqlStore
from testbed import jobenv
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn, message_text
from tests.integration.slack.conftest import Stack, running_stack

GROUP = "G0GROUPDM"


def refusal(stack: Stack) -> str:
    """The one private answer the sender got."""
    call = stack.standin.wait_for("chat.postEphemeral")[0]
    assert call.body["user"] == sr.ALICE
    return message_text(call.body)


def test_a_dm_with_run_and_a_code_block_runs_that_code(stack: Stack) -> None:
    inner = sr.dm_text('run {"a": 2, "b": 5}\n```python\nprint(a + b)\n```')
    stack.dispatch(sr.event(inner))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.status is JobStatus.DONE
    assert (job.file_name, job.code, job.input_json) == (
        "message.py",
        "print(a + b)\n",
        '{"a":2,"b":5}',
    )
    assert job.idempotency_key == f"msg:D0ALICE:{inner['ts']}"
    posts = stack.standin.posts(channel="D0ALICE")
    assert posts and all(p["thread_ts"] == inner["ts"] for p in posts)


def test_a_mention_with_a_bare_block_and_slack_s_encoding_runs_the_code_as_typed(
    stack: Stack,
) -> None:
    # as Slack sends what was typed: entities, a link turned into markup, smart quotes
    text = (
        "<@U0BOT> run ```if 1 &lt; 2 and 3 &gt; 2:\n"
        "    print(“see <https://example.com|example.com>”)```"
    )
    stack.dispatch(sr.event(sr.mention(text)))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.code == 'if 1 < 2 and 3 > 2:\n    print("see example.com")\n'
    assert job.input_json == "{}"


def test_a_group_dm_code_block_runs_and_code_shared_in_passing_is_left_alone(
    stack: Stack,
) -> None:
    stack.standin.add_channel(GROUP, private=True, members=(sr.ALICE, sr.BOB))
    chatter = {**sr.dm_text("look at this ```print(1)```", channel=GROUP), "channel_type": "mpim"}
    stack.dispatch(sr.event(chatter))
    request = {**sr.dm_text("run ```print(2)```", channel=GROUP), "channel_type": "mpim"}
    stack.dispatch(sr.event(request))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    stack.finish_intake()
    assert job.code == "print(2)\n"
    assert len(stack.jobs()) == 1
    assert stack.standin.calls("chat.postEphemeral") == []


def test_a_python_snippet_runs_like_a_py_upload(stack: Stack) -> None:
    snippet = stack.standin.add_file("Untitled", "print(6 * 7)\n", snippet="python")
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", [snippet])))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert (job.file_name, job.code) == ("Untitled.py", "print(6 * 7)\n")


def test_a_text_snippet_that_is_not_python_is_refused(stack: Stack) -> None:
    text = stack.standin.add_file("notes", "hello\n", snippet="text")
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run", [text])))
    assert "not a Python file" in refusal(stack)
    assert stack.jobs() == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('run {"a": 1}', "put the code in a code block"),
        ("run ```print(1)``` and ```print(2)```", "2 code blocks"),
        ("run ```print(1)", "not closed"),
        ("run ```python\n \n```", "code block is empty"),
        ("run {'a': 1} ```print(a)```", "not valid JSON"),
        ("```print(1)```", "start the message with `run`"),
    ],
    ids=["no-block", "two-blocks", "unclosed", "empty", "bad-json", "no-run"],
)
def test_a_bad_code_message_is_told_privately_and_stores_nothing(
    stack: Stack, text: str, words: str
) -> None:
    stack.dispatch(sr.event(sr.mention("<@U0BOT> " + text)))
    assert words in refusal(stack)
    stack.finish_intake()
    assert stack.jobs() == []
    assert stack.standin.posts() == []


def test_a_code_block_beside_a_py_file_is_refused(stack: Stack) -> None:
    file = stack.standin.add_file("soma.py", "print(1)\n")
    stack.dispatch(sr.event(sr.file_message("<@U0BOT> run ```print(2)```", [file])))
    assert "both a code block and a .py file" in refusal(stack)
    stack.finish_intake()
    assert stack.jobs() == []


@pytest.fixture
def sandboxed(standin: SlackStandIn, mariadb_store: SqlStore) -> Iterator[Stack]:
    """The Slack stack with the real local sandbox, for code that must really run."""
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=1,
        uid_base=61800,
        max_procs=32,
        tmp_bytes=16 * MIB,
    )
    with running_stack(standin, mariadb_store, executor) as stack:  # type: ignore[arg-type]
        yield stack


def test_code_from_a_message_really_runs_in_the_sandbox(sandboxed: Stack) -> None:
    text = 'run {"n": 4}\n```python\nimport numpy as np\nprint(int(np.arange(n).sum()))\n```'
    sandboxed.dispatch(sr.event(sr.dm_text(text)))
    job = sandboxed.wait_final(sandboxed.wait_jobs(1)[0].id)
    assert job.status is JobStatus.DONE, job.error_message
    assert job.stdout == "6\n"
    final = sandboxed.standin.posts(channel="D0ALICE")[-1]
    assert "6" in message_text(final)


def test_data_files_shared_beside_a_code_block_reach_its_job(stack: Stack) -> None:
    data = stack.standin.add_file("data.csv", "a,b\n1,2\n")
    inner = sr.file_message(
        "run\n```python\nprint(open('data.csv').read())\n```",
        [data],
        channel="D0ALICE",
        channel_type="im",
    )
    stack.dispatch(sr.event(inner))
    job = stack.wait_final(stack.wait_jobs(1)[0].id)
    assert job.file_name == "message.py"
    stored = stack.runtime.store.read_files(job.id, FileRole.IN)
    assert [(f.name, f.data) for f in stored] == [("data.csv", b"a,b\n1,2\n")]
