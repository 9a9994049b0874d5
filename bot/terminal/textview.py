"""Replies and jobs rendered as terminal text, for the console and the CLI; pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.models import ApiToken, Identity, Job, JobStatus, StoredFile
from bot.core.outputs import Part, Piece, files_by_role, input_hint, pieces
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
from bot.core.units import human_duration

ICONS = {
    JobStatus.WAITING: "…",
    JobStatus.RUNNING: "▶",
    JobStatus.DONE: "✓",
    JobStatus.ERROR: "✗",
    JobStatus.TIMEOUT: "⏱",
    JobStatus.CANCELLED: "⊘",
}
# Control characters (except newline and tab) could drive the terminal: show them inert.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_OUTPUT_LINES = 200
MAX_LINE_CHARS = 2000  # a line longer than this is cut (one line can be the whole output)


def safe(text: str) -> str:
    """Text with terminal control sequences made visible instead of interpreted."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def owner_name(identity: Identity) -> str:
    """How an owner is shown in a terminal."""
    if identity.provider == "local":
        return identity.external_id
    return f"{identity.provider}:{identity.external_id}"


def result_text(job: Job) -> str:
    """The result as people read it (Job.result_text), made safe for a terminal."""
    return safe(job.result_text)


def one_line(job: Job, with_result: bool) -> str:
    """`✓ #12 soma.py  done 31 ms  8`"""
    parts = [f"{ICONS[job.status]} #{job.id}", job.file_name, job.status.value]
    if job.duration_ms is not None:
        parts.append(human_duration(job.duration_ms))
    if with_result:
        text = result_text(job) if job.status is JobStatus.DONE else safe(job.error_message or "")
        first = text.strip().splitlines()[0] if text.strip() else ""
        if first:
            parts.append("→ " + (first[:80] + "…" if len(first) > 80 else first))
    return "  ".join(p for p in parts if p)


# How each part is titled when it is shown as a block.
TITLES = {
    Part.RESULT: "result",
    Part.TRACEBACK: "traceback",
    Part.STDOUT: "stdout",
    Part.STDERR: "stderr",
}


def _block(title: str, text: str, truncated: bool) -> list[str]:
    """At most MAX_OUTPUT_LINES lines, each at most MAX_LINE_CHARS, then what was left out."""
    lines = safe(text).rstrip("\n").splitlines()
    shown = [
        line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "…"
        for line in lines[:MAX_OUTPUT_LINES]
    ]
    out = [f"--- {title} ---", *shown]
    if len(lines) > MAX_OUTPUT_LINES:
        out.append(f"... ({len(lines) - MAX_OUTPUT_LINES} more lines; use --json for all)")
    if truncated:
        out.append("... (output was cut at the size limit)")
    return out


def _piece(piece: Piece) -> list[str]:
    text = safe(piece.text)
    if piece.part is Part.ERROR:
        return [f"Error: {text}"]
    inline = "\n" not in text.strip() and len(text) <= MAX_LINE_CHARS
    if piece.part is Part.RESULT and inline and not piece.engine_truncated:
        return [f"Result: {text}"]
    return _block(TITLES[piece.part], piece.text, piece.engine_truncated)


def files_lines(files: Sequence[StoredFile], note: str | None) -> list[str]:
    """A job's files by role, each with its size, and the note on files left out."""
    lines = files_by_role(files, safe)
    if note:
        lines.append(f"Files left out: {safe(note)}")
    return lines


def job_detail(job: Job, full: bool, files: Sequence[StoredFile] = ()) -> str:
    """A job in full for its owner, or its existence, status and owner for anyone else.
    Every output piece, a printed result included, is shown by the same bounded rule; then
    its files (data files, files out, with their sizes) and the note on those left out."""
    head = f"{ICONS[job.status]} Job #{job.id}  {job.file_name}  {job.status.value}"
    if job.duration_ms is not None:
        head += f" in {human_duration(job.duration_ms)}"
    head += f"  (owner: {owner_name(job.owner)}, user #{job.owner_id})"
    if not full:
        return head + "\nOnly its owner or an admin can see its input and output."
    lines = [head, f"Input: {safe(job.input_json)}"]
    if job.rerun_of:
        lines.append(f"Re-run of job #{job.rerun_of}")
    hint = input_hint(job)
    for piece in pieces(job):
        lines += _piece(piece)
        if piece.part is Part.ERROR and hint:
            lines.append(f"Hint: {safe(hint)}")
    lines += files_lines(files, job.files_note)
    return "\n".join(lines)


def render(reply: Reply) -> str:
    """Any reply as terminal text."""
    if isinstance(reply, Accepted):
        verb = "queued" if reply.created else "already submitted"
        return f"Job #{reply.job.id} {verb}: {reply.job.file_name}"
    if isinstance(reply, Detail):
        return job_detail(reply.job, reply.full, reply.files)
    if isinstance(reply, Listing):
        if not reply.jobs:
            return reply.empty_hint or "No jobs."
        lines = [reply.title + ":"]
        for job in reply.jobs:
            line = one_line(job, reply.shows_output(job))
            if job.owner_id != reply.viewer.user.id:
                line += f"  ({owner_name(job.owner)})"
            lines.append("  " + line)
        if reply.more_hint:
            lines.append(reply.more_hint.replace("`", ""))
        return "\n".join(lines)
    if isinstance(reply, Cancelled):
        if reply.stopping:
            return (
                f"Stopping job #{reply.job.id}: it ends cancelled, with what it printed so far "
                "(unless it finishes first)."
            )
        return f"Job #{reply.job.id} cancelled."
    if isinstance(reply, TokenIssued):
        expiry = f" {reply.lifetime_note}" if reply.expires_at else ""
        return (
            f"Your API token (user {reply.user_id}), shown only this once; keep it secret. "
            f"Any earlier one no longer works.{expiry}\n{reply.token}"
        )
    if isinstance(reply, TokenRevoked):
        return "Your API token is revoked." if reply.had_one else "You had no API token."
    if isinstance(reply, Help):
        prefix = f"Unknown command `{reply.unknown}`.\n" if reply.unknown else ""
        return prefix + reply.usage
    if isinstance(reply, Problem):
        text = reply.message.replace("`", "")
        if reply.usage:
            text += "\n\n" + reply.usage
        return text
    raise TypeError(f"cannot render {type(reply).__name__}")  # pragma: no cover


def finished_line(job: Job) -> str:
    """The one-line completion notice printed when a job ends."""
    return f"[job #{job.id}] " + one_line(job, with_result=True)


def job_data(job: Job, full: bool = True) -> dict[str, Any]:
    """The job as `--json` shows it: in full (claim internals aside) to those who may see its
    output, else only what the text view shows anyone (no input, result or output)."""
    data: dict[str, Any] = {
        "id": job.id,
        "owner_id": job.owner_id,
        "owner": owner_name(job.owner),
        "status": job.status.value,
        "file_name": job.file_name,
    }
    if not full:
        data.update(duration_ms=job.duration_ms, created_at=job.created_at.isoformat())
        return data
    data.update(
        {
            "code_sha256": job.code_sha256,
            "input": json.loads(job.input_json) if not job.is_summary else None,
            "result": job.result if not job.is_summary else None,
            "result_kind": job.result_kind.value if job.result_kind else None,
            "stdout": job.stdout,
            "stderr": job.stderr,
            "stdout_truncated": job.stdout_truncated,
            "stderr_truncated": job.stderr_truncated,
            "error_type": job.error_type,
            "error_message": job.error_message,
            "traceback": job.traceback,
            "duration_ms": job.duration_ms,
            "executor": job.executor,
            "attempts": job.attempts,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "rerun_of": job.rerun_of,
        }
    )
    return data


def job_json(job: Job, full: bool = True) -> str:
    """job_data as indented JSON."""
    return json.dumps(job_data(job, full), ensure_ascii=False, indent=2)


def _minute(value: datetime | None, empty: str) -> str:
    return empty if value is None else value.strftime("%Y-%m-%d %H:%M")


def token_table(tokens: Sequence[ApiToken]) -> str:
    """Every user's API token as stored (never the token): whose, created, expires, last used."""
    if not tokens:
        return "No user has an API token."
    rows = [("user", "name", "created (UTC)", "expires (UTC)", "last used (UTC)")]
    for t in tokens:
        rows.append(
            (
                f"#{t.user.id}",
                safe(t.user.display_name or t.user.identity.external_id),
                _minute(t.created_at, "-"),
                _minute(t.expires_at, "never"),
                _minute(t.last_used_at, "never"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)
