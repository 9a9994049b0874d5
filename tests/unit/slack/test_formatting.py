"""Escaping, code blocks, clipping and Slack's message limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.core.models import Identity, Job, JobStatus, ResultKind
from bot.slack.formatting import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    Message,
    clip,
    code_block,
    escape,
    fit,
    section,
    unescape,
    user_tag,
)
from bot.slack.jobviews import (
    final_message,
    needs_upload,
    output_document,
    status_message,
    summary_text,
)
from testbed.slack_standin import iter_blocks_text

ALICE = Identity("slack", "T0TEAM", "U0ALICE")


def job(**changes: object) -> Job:
    base: dict[str, object] = {
        "id": 12,
        "owner_id": 1,
        "owner": ALICE,
        "status": JobStatus.DONE,
        "file_name": "soma.py",
        "code": "",
        "code_sha256": "",
        "input_json": '{"a":5}',
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "result_json": "8",
        "result_kind": ResultKind.RETURN,
        "duration_ms": 31,
    }
    base.update(changes)
    return Job(**base)  # type: ignore[arg-type]


def all_text(message: Message) -> str:
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


def test_escape_makes_mentions_and_broadcasts_inert() -> None:
    assert escape("<!channel> & <@U123>") == "&lt;!channel&gt; &amp; &lt;@U123&gt;"
    assert escape("<!here|here> <!subteam^S1>") == "&lt;!here|here&gt; &lt;!subteam^S1&gt;"


def test_escape_shows_control_and_bidi_characters() -> None:
    assert escape("a\x1b[31mb\u202ec\u2066d\x00") == "a\\x1b[31mb\\u202ec\\u2066d\\x00"
    assert escape("tab\tand\nnewline") == "tab\tand\nnewline"


def test_unescape_decodes_slacks_three_entities_once() -> None:
    assert unescape("{&quot;a&quot;: &lt;1&gt; &amp;amp;}") == "{&quot;a&quot;: <1> &amp;}"


def test_code_blocks_cannot_be_closed_by_the_text_inside() -> None:
    block = code_block(escape("a ``` b ```` c `"))
    inner = block[3:-3]
    assert "```" not in inner and "``" not in inner
    assert block.startswith("```") and block.endswith("```")
    assert code_block("") == "``` ```"


def test_clip_keeps_ten_lines_or_a_thousand_characters() -> None:
    lines = "\n".join(f"line {i}" for i in range(30))
    part = clip(lines)
    assert part.shown.splitlines()[-1] == "line 9" and part.hidden_lines == 20 and part.clipped
    tail = clip(lines, tail=True)
    assert tail.shown.splitlines()[0] == "line 20"
    wide = clip("x" * 5000)
    assert len(wide.shown) == 1000 and wide.clipped and wide.hidden_lines == 0
    assert not clip("short").clipped


def test_sections_never_exceed_three_thousand_characters_or_split_an_entity() -> None:
    text = section(escape("<" * 5000))["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    assert text.endswith("&lt;…")  # cut between two entities, never inside one


def test_fit_caps_blocks_and_text() -> None:
    blocks = [section("x" * 100) for _ in range(80)]
    fitted = fit(Message("y" * 50000, blocks))
    assert len(fitted.blocks) <= MAX_BLOCKS and len(fitted.text) <= 40000
    assert "size limit" in json.dumps(fitted.blocks[-1])
    huge = fit(Message("t", [section("z" * 2900) for _ in range(10)]))
    assert sum(len(str(b)) for b in huge.blocks) < 13000


def test_user_tags_mention_slack_users_and_escape_anyone_else() -> None:
    assert user_tag(ALICE) == "<@U0ALICE>"
    assert user_tag(Identity("slack", "T", "<!channel>")) == "&lt;!channel&gt;"
    assert user_tag(Identity("local", "host", "bob<x>")) == "bob&lt;x&gt;"


def test_the_final_message_of_hostile_output_stays_inert() -> None:
    hostile = "<!channel> <@U0BOB> ``` \u202e"
    text = all_text(
        final_message(job(result_json=json.dumps(hostile), result_kind=ResultKind.STDOUT))
    )
    assert "<!channel>" not in text and "<@U0BOB>" not in text and "\u202e" not in text
    assert "&lt;!channel&gt;" in text


def test_file_names_cannot_break_out_of_inline_code() -> None:
    text = all_text(status_message(job(file_name="a`<!here>`.py")))
    assert "<!here>" not in text and "`a'&lt;!here&gt;'.py`" in text


def test_long_output_is_summarised_and_flagged_for_upload() -> None:
    out = "\n".join(f"row {i}" for i in range(500))
    long_job = job(result_json=json.dumps(out), result_kind=ResultKind.STDOUT, stdout=out)
    assert needs_upload(long_job)
    text = all_text(final_message(long_job))
    assert "row 9" in text and "row 10" not in text and "490 more lines" in text
    assert "job-12-output.txt" in text
    assert "row 499" in output_document(long_job)
    assert not needs_upload(job())


def test_errors_show_type_message_traceback_tail_and_a_rerun_button() -> None:
    tb = "\n".join(
        ["Traceback (most recent call last):"]
        + [f"  frame {i}" for i in range(40)]
        + ["KeyError: 'x'"]
    )
    failed = job(
        status=JobStatus.ERROR,
        result_json=None,
        error_type="KeyError",
        error_message="'x'",
        traceback=tb,
    )
    message = final_message(failed)
    text = all_text(message)
    assert "KeyError: 'x'" in text and "frame 39" in text and "frame 0\\n" not in text
    assert message.blocks[-1]["elements"][0]["value"] == "12"


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (JobStatus.WAITING, "queued"),
        (JobStatus.RUNNING, "running"),
        (JobStatus.TIMEOUT, "timed out"),
        (JobStatus.CANCELLED, "cancelled"),
    ],
)
def test_status_lines_name_the_state(status: JobStatus, word: str) -> None:
    assert word in status_message(job(status=status)).text
    assert word in summary_text(job(status=status))


def test_the_summary_line_never_carries_output() -> None:
    assert "8" not in summary_text(job(result_json='"secret 8"')).replace("#12", "")


def test_a_printed_result_cut_at_the_output_limit_says_so() -> None:
    printed = "\n".join(f"row {i}" for i in range(50_000))
    cut = job(
        result_json=json.dumps(printed),
        result_kind=ResultKind.STDOUT,
        stdout=printed,
        stdout_truncated=True,
    )
    assert "printed more than the output limit" in all_text(final_message(cut))
    assert "(cut at the output size limit)" in output_document(cut)
    assert "output limit" not in all_text(final_message(replace(cut, stdout_truncated=False)))


def test_a_name_error_with_no_input_hints_at_the_input_in_slack() -> None:
    failed = job(
        status=JobStatus.ERROR,
        result_json=None,
        result_kind=None,
        code="def main():\n    return n * 2\n",
        input_json="{}",
        error_type="NameError",
        error_message="name 'n' is not defined",
    )
    shown = "\n".join(iter_blocks_text(final_message(failed).blocks))
    assert 'no input was given; pass one like {"n": 1}' in shown
    with_input = final_message(replace(failed, input_json='{"m": 1}'))
    assert "no input was given" not in "\n".join(iter_blocks_text(with_input.blocks))


def test_a_job_stopped_while_it_ran_shows_what_it_printed_and_says_it_was_stopped() -> None:
    stopped = job(
        status=JobStatus.CANCELLED,
        result_json=None,
        result_kind=None,
        stdout="step 1\nstep 2\n",
        error_type="Cancelled",
        error_message="the job was stopped while it ran (what it printed until then is kept)",
    )
    text = all_text(final_message(stopped))
    assert "cancelled" in text and "stopped on request while it ran" in text
    assert "step 2" in text and "nothing ran" not in text
    unrun = all_text(final_message(job(status=JobStatus.CANCELLED, result_json=None)))
    assert "nothing ran" in unrun and "stopped on request" not in unrun
