"""Terminal rendering: results, limited views, control characters made inert."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.core.models import Actor, Identity, Job, JobStatus, ResultKind, User
from bot.core.replies import Cancelled, Listing
from bot.terminal.textview import job_detail, one_line, render, safe

ALICE = Identity("local", "h", "alice")


def job(**changes: object) -> Job:
    base = {
        "id": 3,
        "owner_id": 1,
        "owner": ALICE,
        "status": JobStatus.DONE,
        "file_name": "soma.py",
        "code": "print(8)",
        "code_sha256": "0" * 64,
        "input_json": '{"a":5}',
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "result_json": '"8"',
        "result_kind": ResultKind.STDOUT,
        "stdout": "8\n",
        "duration_ms": 31,
    }
    base.update(changes)
    return Job(**base)  # type: ignore[arg-type]


def test_owner_view_shows_input_and_result() -> None:
    text = job_detail(job(), full=True)
    assert "Job #3" in text and "done in 31 ms" in text
    assert 'Input: {"a":5}' in text
    assert "Result: 8" in text


def test_limited_view_hides_input_and_output() -> None:
    text = job_detail(job(), full=False)
    assert "Result" not in text and "Input" not in text
    assert "Only its owner or an admin" in text
    assert "alice" in text


def test_error_view_shows_type_message_and_traceback() -> None:
    text = job_detail(
        job(
            status=JobStatus.ERROR,
            result_json=None,
            result_kind=None,
            error_type="ZeroDivisionError",
            error_message="division by zero",
            traceback='File "soma.py", line 1',
        ),
        full=True,
    )
    assert "Error: ZeroDivisionError: division by zero" in text
    assert 'File "soma.py", line 1' in text


def test_escape_sequences_cannot_drive_the_terminal() -> None:
    assert safe("\x1b[2J\x07ok") == "\\x1b[2J\\x07ok"
    assert "\x1b" not in job_detail(
        job(stdout="\x1b[31mred\n", result_json='"\\u001b[31mred"'), full=True
    )


def test_returned_values_render_as_json() -> None:
    assert one_line(job(result_json='{"sum": 8}', result_kind=ResultKind.RETURN), True).endswith(
        '→ {"sum": 8}'
    )


def test_listing_shows_results_only_to_those_allowed() -> None:
    viewer = Actor(User(2, Identity("local", "h", "bob")))
    text = render(Listing("Latest jobs", (job(),), viewer))
    assert "→" not in text
    assert "(alice)" in text


def test_listing_rows_show_printed_text_unquoted_even_when_cut_short() -> None:
    """Listing rows carry the result cut short: printed text still reads as text, not JSON."""
    assert one_line(job(is_summary=True), with_result=True).endswith("→ 8")
    cut = job(is_summary=True, result_json='"line one\\nline two and so o')
    assert one_line(cut, with_result=True).endswith("→ line one")
    in_escape = job(is_summary=True, result_json='"caf\\u00')
    assert in_escape.result_text == "caf…"
    returned = job(is_summary=True, result_json='"8"', result_kind=ResultKind.RETURN)
    assert returned.result_text == '"8"', "a returned string stays JSON, as in the full view"
    returned_cut = job(is_summary=True, result_json='{"a": [1, 2', result_kind=ResultKind.RETURN)
    assert returned_cut.result_text == '{"a": [1, 2'


def test_a_printed_result_is_bounded_like_printed_output_and_says_it_was_cut() -> None:
    """A result that is the job's printed output obeys the rule printed output obeys: at most
    200 lines, then how many more, and whether the job printed past the output limit."""
    printed = "\n".join(f"row {i}" for i in range(200_000)) + "\nhalf a li"
    cut = job(
        result_json=json.dumps(printed),
        stdout=printed,
        stdout_truncated=True,
    )
    text = job_detail(cut, full=True)
    assert "row 199" in text and "row 200\n" not in text
    assert "199801 more lines" in text
    assert "cut at the size limit" in text
    assert len(text.splitlines()) < 220
    assert text == job_detail(cut, full=True)
    short = job_detail(job(), full=True)
    assert "Result: 8" in short and "cut" not in short


def test_a_name_error_with_no_input_hints_at_the_input() -> None:
    failed = job(
        status=JobStatus.ERROR,
        result_json=None,
        result_kind=None,
        code="print(a + b)\n",
        input_json="{}",
        error_type="NameError",
        error_message="name 'a' is not defined",
    )
    assert 'no input was given; pass one like {"a": 1}' in job_detail(failed, full=True)
    with_input = job_detail(replace(failed, input_json='{"b": 1}'), full=True)
    assert "no input was given" not in with_input
    typo = replace(failed, code="a = 1\npirnt(a)\n", error_message="name 'a' is not defined")
    assert "no input was given" not in job_detail(typo, full=True), "a is bound in the file"


def test_a_cancel_answers_cancelled_or_stopping_and_a_stopped_job_shows_its_output() -> None:
    waiting = render(Cancelled(job(status=JobStatus.CANCELLED)))
    assert waiting == "Job #3 cancelled."
    stopping = render(Cancelled(job(status=JobStatus.RUNNING, stop_requested_at=datetime.now(UTC))))
    assert stopping.startswith("Stopping job #3: it ends cancelled, with what it printed so far")
    stopped = job(
        status=JobStatus.CANCELLED,
        result_json=None,
        result_kind=None,
        stdout="so far\n",
        error_type="Cancelled",
        error_message="the job was stopped while it ran (what it printed until then is kept)",
    )
    text = job_detail(stopped, full=True)
    assert "so far" in text and "stopped while it ran" in text
    assert not stopped.never_ran
    assert job(status=JobStatus.CANCELLED, result_json=None).never_ran
