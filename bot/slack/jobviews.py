"""Jobs as Slack messages: the status line, the thread replies, the channel summary and the
full output document; pure functions."""

from __future__ import annotations

from bot.core.models import Job, JobStatus
from bot.core.outputs import Part, input_hint, pieces
from bot.core.units import human_duration
from bot.slack.formatting import (
    ICONS,
    VERBS,
    Block,
    Message,
    clip,
    code_block,
    context,
    escape,
    file_label,
    fit,
    section,
    user_tag,
)

RERUN_ACTION = "job_rerun"


# How each part of a job's outcome is titled in Slack.
TITLES = {
    Part.RESULT: "Result",
    Part.ERROR: "Error",
    Part.TRACEBACK: "Traceback",
    Part.STDOUT: "Output (stdout)",
    Part.STDERR: "Errors (stderr)",
}


def needs_upload(job: Job) -> bool:
    """True when some output is too long to show inline."""
    return any(clip(p.text, tail=p.tail).clipped for p in pieces(job))


def output_file_name(job: Job) -> str:
    """The name of the uploaded full output."""
    return f"job-{job.id}-output.txt"


def output_document(job: Job) -> str:
    """Every output piece in full, as one plain-text file."""
    head = f"Job #{job.id} {job.file_name}: {VERBS[job.status]}"
    if job.duration_ms is not None:
        head += f" in {human_duration(job.duration_ms)}"
    parts = [head, f"Input: {job.input_json}", ""]
    for piece in pieces(job):
        parts += [f"----- {TITLES[piece.part]} -----", piece.text.rstrip("\n")]
        if piece.engine_truncated:
            parts.append("(cut at the output size limit)")
        if piece.part is Part.ERROR and (hint := input_hint(job)):
            parts.append(f"Hint: {hint}")
        parts.append("")
    return "\n".join(parts)


def headline(job: Job) -> str:
    """`:white_check_mark: Job #12 done: `soma.py` by <@U…> in 31 ms`."""
    text = f"{ICONS[job.status]} *Job #{job.id} {VERBS[job.status]}*: {file_label(job.file_name)}"
    text += f" by {user_tag(job.owner)}"
    if job.duration_ms is not None and job.status.is_final:
        text += f" in {human_duration(job.duration_ms)}"
    if job.rerun_of:
        text += f" (re-run of #{job.rerun_of})"
    return text


def _plain(text: str) -> str:
    """User text for a notification text, which is mrkdwn too: escaped, and no backtick run of
    the job's can open a code block there."""
    return escape(text.replace("`", "'"))


def plain_headline(job: Job) -> str:
    """The headline without markup, for notification text."""
    text = f"Job #{job.id} {VERBS[job.status]}: {_plain(job.file_name)}"
    if job.duration_ms is not None and job.status.is_final:
        text += f" in {human_duration(job.duration_ms)}"
    return text


def status_message(job: Job) -> Message:
    """The message that follows a job's status, updated in place."""
    return fit(Message(plain_headline(job), [section(headline(job))]))


def running_message(job: Job) -> Message:
    """The thread reply when the job starts."""
    return Message(
        f"Job #{job.id} is running",
        [context(f"{ICONS[JobStatus.RUNNING]} Job #{job.id} is running…")],
    )


def output_blocks(job: Job, file_note: str) -> list[Block]:
    """Each output piece in a code block, clipped to the inline limits; `file_note` says
    where the full output is ("attached below")."""
    blocks: list[Block] = []
    clipped_any = False
    for piece in pieces(job):
        part = clip(piece.text, tail=piece.tail)
        clipped_any = clipped_any or part.clipped
        note = ""
        if part.hidden_lines:
            where = "earlier" if piece.tail else "more"
            note = f" ({part.hidden_lines} {where} lines not shown)"
        elif part.clipped:
            note = " (cut short)"
        title = TITLES[piece.part]
        blocks.append(section(f"*{title}*{note}\n{code_block(escape(part.shown))}"))
        if piece.part is Part.ERROR and (hint := input_hint(job)):
            blocks.append(context(f"Hint: {escape(hint)}"))
        if piece.engine_truncated:
            blocks.append(
                context("The job printed more than the output limit; the rest was dropped.")
            )
    if clipped_any:
        blocks.append(context(f"The full output is in `{output_file_name(job)}`, {file_note}."))
    return blocks


def rerun_button(job: Job) -> Block:
    """An actions block with the Re-run button (its value is checked again on click)."""
    return {
        "type": "actions",
        "block_id": f"job_{job.id}_actions",
        "elements": [
            {
                "type": "button",
                "action_id": RERUN_ACTION,
                "text": {"type": "plain_text", "text": "Re-run"},
                "value": str(job.id),
            }
        ],
    }


def final_message(job: Job, file_note: str = "attached below") -> Message:
    """The thread reply with the outcome: result, error or timeout, and the duration."""
    blocks: list[Block] = [section(headline(job))]
    if job.status is JobStatus.TIMEOUT:
        blocks.append(context("It was stopped at the time limit."))
    if job.never_ran:
        blocks.append(context("It was cancelled before it started; nothing ran."))
    else:
        if job.status is JobStatus.CANCELLED:
            blocks.append(context("It was stopped on request while it ran."))
        blocks += output_blocks(job, file_note)
        blocks.append(rerun_button(job))
    text = plain_headline(job)
    first = pieces(job)[:1]
    if first and not job.never_ran:
        line = clip(first[0].text, lines=1, chars=150).shown
        text += f": {_plain(line)}"
    return fit(Message(text, blocks))


def summary_text(job: Job) -> str:
    """The one-line completion notice for the notify channel (no output: anyone may read it)."""
    return f"{ICONS[job.status]} {headline(job).split(' ', 1)[1]}"


def one_line(job: Job, with_result: bool) -> str:
    """`:white_check_mark: *#12* `soma.py` done 31 ms → 8` for listings and the Home tab."""
    text = f"{ICONS[job.status]} *#{job.id}* {file_label(job.file_name)} {VERBS[job.status]}"
    if job.duration_ms is not None and job.status.is_final:
        text += f" {human_duration(job.duration_ms)}"
    if with_result:
        raw = job.result_text if job.status is JobStatus.DONE else (job.error_message or "")
        first = clip(raw.strip(), lines=1, chars=80)
        if first.shown:
            text += (
                " → `" + escape(first.shown.replace("`", "'")) + ("…`" if first.clipped else "`")
            )
    return text
