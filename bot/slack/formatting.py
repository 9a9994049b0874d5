"""Slack text primitives, all pure: escaping, code blocks, clipping and the message limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.core.models import Identity, JobStatus

Block = dict[str, Any]

SECTION_LIMIT = 3000  # characters of one section's text
MAX_BLOCKS = 50  # blocks in one message
TEXT_LIMIT = 40000  # characters of a message's top-level text
BLOCKS_BUDGET = 11000  # Slack answers msg_blocks_too_long near 13k characters of blocks
INLINE_LINES = 10
INLINE_CHARS = 1000

# C0/C1 controls (newline and tab kept), bidi overrides and isolates, and line separators:
# shown as visible escapes so output cannot reorder or hide the text around it.
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_ZWSP = "\u200b"

ICONS = {
    JobStatus.WAITING: ":hourglass_flowing_sand:",
    JobStatus.RUNNING: ":arrow_forward:",
    JobStatus.DONE: ":white_check_mark:",
    JobStatus.ERROR: ":x:",
    JobStatus.TIMEOUT: ":stopwatch:",
    JobStatus.CANCELLED: ":no_entry_sign:",
}
VERBS = {
    JobStatus.WAITING: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.DONE: "done",
    JobStatus.ERROR: "failed",
    JobStatus.TIMEOUT: "timed out",
    JobStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class Message:
    """A Slack message: notification/fallback `text` and Block Kit `blocks`."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for chat.postMessage, chat.update, respond() or ack()."""
        return {"text": self.text, "blocks": self.blocks}


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """User or job text made inert: `&`, `<`, `>` encoded (so no mention or broadcast can
    fire) and control or bidi characters shown as escapes."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _INVISIBLE.sub(_visible, text)


_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>\s]*)(?:\|([^>]*))?>")


def unlink(text: str) -> str:
    """Slack's link markup in incoming text as the person typed it: `<url|label>` is the
    label (what they wrote, `example.com`), `<url>` the URL. Entities stay encoded."""
    return _LINK.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(1), text)


def unescape(text: str) -> str:
    """Slack's entities in incoming text decoded (`&amp;` last, so `&amp;lt;` stays `&lt;`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def cut(text: str, limit: int, marker: str = "…") -> str:
    """At most `limit` characters, never ending inside an `&...;` entity."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(marker))]
    amp = head.rfind("&", max(0, len(head) - 5))
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + marker


def code_block(escaped: str, limit: int = SECTION_LIMIT - 100) -> str:
    """An already-escaped text in a code block that no backtick run inside can close."""
    body = re.sub("`(?=`)", "`" + _ZWSP, escaped)
    if body.startswith("`"):
        body = _ZWSP + body
    if body.endswith("`"):
        body += _ZWSP
    body = cut(body, limit - 6, "\n…")
    return f"```{body or ' '}```"


@dataclass(frozen=True)
class Clipped:
    """A text cut to the inline limits: what to show and how much was left out."""

    shown: str
    hidden_lines: int
    clipped: bool


def clip(
    text: str, lines: int = INLINE_LINES, chars: int = INLINE_CHARS, tail: bool = False
) -> Clipped:
    """The first (or last, for tracebacks) `lines` lines and `chars` characters of a text."""
    all_lines = text.rstrip("\n").split("\n")
    picked = all_lines[-lines:] if tail else all_lines[:lines]
    shown = "\n".join(picked)
    if len(shown) > chars:
        shown = shown[-chars:] if tail else shown[:chars]
    clipped = len(picked) < len(all_lines) or len(shown) < len("\n".join(picked))
    return Clipped(shown, len(all_lines) - len(picked), clipped)


def user_tag(identity: Identity) -> str:
    """A Slack mention for Slack users, the escaped name for anyone else."""
    if identity.provider == "slack" and _USER_ID.match(identity.external_id):
        return f"<@{identity.external_id}>"
    return escape(identity.external_id)


def file_label(name: str) -> str:
    """A file name as inline code (backticks in the name would end it early)."""
    return "`" + escape(name.replace("`", "'")) + "`"


def mrkdwn(text: str) -> Block:
    """A mrkdwn text object; verbatim so Slack adds no links of its own."""
    return {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT), "verbatim": True}


def section(text: str) -> Block:
    """A section block, cut to the section limit."""
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> Block:
    """A context block: small grey text."""
    return {"type": "context", "elements": [mrkdwn(text)]}


def fit(message: Message, max_blocks: int = MAX_BLOCKS) -> Message:
    """The message within Slack's limits: blocks, characters per block and in all."""
    blocks: list[Block] = []
    used = 0
    for block in message.blocks:
        size = len(str(block))
        if len(blocks) >= max_blocks - 1 or used + size > BLOCKS_BUDGET:
            blocks.append(context("… (more not shown: the message reached Slack's size limit)"))
            break
        blocks.append(block)
        used += size
    return Message(cut(message.text, TEXT_LIMIT // 10), blocks)
