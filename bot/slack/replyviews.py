"""Command replies (Accepted, Detail, Listing, ...) as ephemeral Slack messages; pure."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.models import Job, JobStatus, StoredFile
from bot.core.outputs import files_by_role
from bot.core.replies import (
    Accepted,
    Cancelled,
    Detail,
    Help,
    Listing,
    Problem,
    Reply,
    TokenIssued,
    TokenRevoked,
)
from bot.slack.formatting import (
    ICONS,
    SECTION_LIMIT,
    VERBS,
    Block,
    Message,
    code_block,
    context,
    cut,
    escape,
    file_label,
    fit,
    section,
    user_tag,
)
from bot.slack.jobviews import headline, one_line, output_blocks

WARNING = ":warning:"


def problem(message: str, usage: str | None = None) -> Message:
    """A request that could not be done: the first line as text, the rest (a JSON snippet and
    its caret, an example) in a code block so it keeps its alignment."""
    first, _, rest = escape(message).partition("\n")
    blocks: list[Block] = [section(f"{WARNING} {first}")]
    if rest.strip():
        blocks.append(section(code_block(rest)))
    if usage:
        blocks.append(section(code_block(escape(usage))))
    return fit(Message(cut(first, 300), blocks))


def detail(reply: Detail) -> Message:
    """One job: everything for its owner and admins, existence and status for anyone else."""
    job = reply.job
    blocks: list[Block] = [section(headline(job))]
    if not reply.full:
        blocks.append(
            context(
                f"{user_tag(job.owner)} owns this job: only its owner or an admin "
                "can see its input and output."
            )
        )
        return fit(Message(f"Job #{job.id} is {VERBS[job.status]}", blocks))
    blocks.append(section("*Input*\n" + code_block(escape(job.input_json), 1000)))
    blocks += output_blocks(job, "in the job's thread")
    blocks += files_blocks(job, reply.files)
    return fit(Message(f"Job #{job.id} is {VERBS[job.status]}", blocks))


def files_blocks(job: Job, files: Sequence[StoredFile]) -> list[Block]:
    """A job's files by role with their sizes (names made inert), and the note on files left
    out; nothing for a job without either."""
    lines = files_by_role(files, file_label)
    blocks: list[Block] = []
    if lines:
        blocks.append(section("*Files*\n" + cut("\n".join(lines), SECTION_LIMIT - 20)))
    if job.files_note:
        blocks.append(context(f"{WARNING} Files left out: {escape(job.files_note)}"))
    return blocks


def listing(reply: Listing) -> Message:
    """Several jobs, one line each; results only where the viewer may see them."""
    if not reply.jobs:
        return Message(
            escape(reply.empty_hint or "No jobs."),
            [section(escape(reply.empty_hint or "No jobs."))],
        )
    lines: list[str] = []
    for job in reply.jobs:
        line = one_line(job, reply.shows_output(job))
        if job.owner_id != reply.viewer.user.id:
            line += f" · {user_tag(job.owner)}"
        lines.append(line)
    blocks: list[Block] = [section(f"*{escape(reply.title)}*")]
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > SECTION_LIMIT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    if reply.more_hint:
        blocks.append(context(escape(reply.more_hint)))
    return fit(Message(escape(reply.title), blocks))


def render(reply: Reply) -> Message:
    """Any command reply as a Slack message."""
    if isinstance(reply, Accepted):
        job = reply.job
        verb = "queued" if reply.created else "was already submitted"
        text = f"{ICONS[job.status]} Job #{job.id} {verb}"
        if job.rerun_of:
            text += f" (re-run of #{job.rerun_of})"
        return Message(text, [section(text + ". Its progress is posted in this conversation.")])
    if isinstance(reply, Detail):
        return detail(reply)
    if isinstance(reply, Listing):
        return listing(reply)
    if isinstance(reply, Cancelled):
        if reply.stopping:
            text = f"{ICONS[JobStatus.CANCELLED]} Stopping job #{reply.job.id}."
            more = (
                " It ends cancelled, with what it printed so far (unless it finishes first); "
                "its message in the conversation says how it ended."
            )
            return Message(text, [section(text + more)])
        text = f"{ICONS[reply.job.status]} Job #{reply.job.id} cancelled."
        return Message(text, [section(text)])
    if isinstance(reply, TokenIssued):
        text = "Your jobbot API token. It is shown only this once: keep it secret."
        return Message(
            text,
            [
                section(f"*{text}*\n{code_block(reply.token)}"),
                context(
                    f"Send it as `Authorization: Bearer TOKEN`; you are user {reply.user_id}. "
                    "Any token you had before no longer works; `/job token revoke` ends this one."
                    + (f" {reply.lifetime_note}" if reply.expires_at else "")
                ),
            ],
        )
    if isinstance(reply, TokenRevoked):
        text = "Your API token is revoked." if reply.had_one else "You had no API token."
        return Message(text, [section(text)])
    if isinstance(reply, Help):
        intro = f"I don't know `{escape(reply.unknown)}`. " if reply.unknown else ""
        text = intro + "Here is what `/job` does:"
        return fit(Message(text, [section(text), section(code_block(escape(reply.usage)))]))
    if isinstance(reply, Problem):
        return problem(reply.message, reply.usage)
    raise TypeError(f"cannot render {type(reply).__name__}")  # pragma: no cover
