"""What Slack refuses, as the stand-in checks it: who may post where (membership, archived and
private conversations), message and Block Kit sizes, views, single-use trigger ids that expire
after 3 s, and response_urls good for 5 posts. Each check answers Slack's own error code.

Sources: chat.postMessage's and chat.update's reference pages (their error lists), the Block Kit
reference (https://docs.slack.dev/reference/block-kit/blocks and the text object page),
"Handling user interaction" (trigger_id: "expires after 3 seconds", response_url: "up to 5
times within 30 minutes"), and the 2018 changelog on long messages (text over 40,000
characters).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 40_000  # chat.postMessage: longer text is refused with msg_too_long
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_TEXT = 12_000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_TITLE = 24
MAX_METADATA = 3000
TRIGGER_TTL_S = 3.0
RESPONSE_URL_USES = 5
# The bot's scopes as manifest.yml grants them; chat:write.public lets it post in public
# channels it is not a member of.
SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "files:read",
        "files:write",
        "app_mentions:read",
        "im:history",
        "channels:history",
        "groups:history",
        "mpim:history",
    }
)


@dataclass
class Conversation:
    """A channel, private channel or DM as the bot sees it."""

    id: str
    private: bool = False  # a private channel (or a DM between people)
    bot_member: bool = True
    members: frozenset[str] | None = None  # None: everyone a test names is in it
    archived: bool = False


def implicit(channel: str) -> Conversation | None:
    """A conversation no test declared: public channels and the bot's DMs exist, with the bot
    in them; anything else (a private channel, another DM) is not visible to the bot."""
    if channel[:1] == "C":
        return Conversation(channel)
    if channel[:1] == "D":
        return Conversation(channel, private=True)
    return None


def posting_error(conversation: Conversation | None, scopes: frozenset[str]) -> str | None:
    """Why the bot may not post in a conversation, or None."""
    if conversation is None:
        return "channel_not_found"
    if not conversation.bot_member:
        if conversation.private:
            return "channel_not_found"  # the bot cannot even see it
        if "chat:write.public" not in scopes:
            return "not_in_channel"
    if conversation.archived:
        return "is_archived"
    return None


def _decoded(value: Any) -> Any:
    """A JSON argument as sent: a list or object (JSON bodies) or a string (form bodies)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text_ok(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("type") in kinds
        and isinstance(obj.get("text"), str)
        and 1 <= len(obj["text"]) <= limit
    )


def _element_ok(element: Any) -> bool:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return False
    if len(str(element.get("action_id") or "")) > MAX_ID:
        return False
    if element["type"] == "button":
        return _text_ok(element.get("text"), MAX_BUTTON_TEXT, ("plain_text",)) and (
            len(str(element.get("value") or "")) <= MAX_BUTTON_VALUE
        )
    return True


def _block_ok(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    if len(str(block.get("block_id") or "")) > MAX_ID:
        return False
    if kind == "section":
        fields = block.get("fields")
        if fields is not None and (
            not isinstance(fields, list)
            or len(fields) > 10
            or not all(_text_ok(f, MAX_FIELD_TEXT) for f in fields)
        ):
            return False
        if "text" in block and not _text_ok(block["text"], MAX_SECTION_TEXT):
            return False
        if "accessory" in block and not _element_ok(block["accessory"]):
            return False
        return "text" in block or fields is not None
    if kind == "context":
        elements = block.get("elements")
        return (
            isinstance(elements, list)
            and 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS
            and all(
                _text_ok(e, MAX_SECTION_TEXT) or (isinstance(e, dict) and e.get("type") == "image")
                for e in elements
            )
        )
    if kind == "actions":
        elements = block.get("elements")
        return (
            isinstance(elements, list)
            and 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS
            and all(_element_ok(e) for e in elements)
        )
    if kind == "header":
        return _text_ok(block.get("text"), MAX_HEADER_TEXT, ("plain_text",))
    if kind == "markdown":
        text = block.get("text")
        return isinstance(text, str) and 1 <= len(text) <= MAX_MARKDOWN_TEXT
    if kind == "input":
        return _text_ok(block.get("label"), MAX_FIELD_TEXT, ("plain_text",)) and _element_ok(
            block.get("element")
        )
    return kind in {"divider", "image", "rich_text", "file", "video"}


def blocks_error(raw: Any, limit: int = MAX_MESSAGE_BLOCKS) -> str | None:
    """invalid_blocks_format when blocks are not a JSON array, invalid_blocks when one is
    malformed or there are too many; None when they are fine."""
    blocks = _decoded(raw)
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if len(blocks) > limit or not all(_block_ok(b) for b in blocks):
        return "invalid_blocks"
    ids = [b.get("block_id") for b in blocks if b.get("block_id")]
    return "invalid_blocks" if len(ids) != len(set(ids)) else None


def message_error(body: dict[str, Any]) -> str | None:
    """What chat.postMessage, chat.update and chat.postEphemeral refuse in a message."""
    text = body.get("text")
    has_blocks = body.get("blocks") not in (None, "", [])
    if not text and not has_blocks and not body.get("attachments"):
        return "no_text"
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return "msg_too_long"
    return blocks_error(body["blocks"]) if has_blocks else None


def view_error(raw: Any, kind: str) -> str | None:
    """What views.open (a modal) and views.publish (a home tab) refuse in a view."""
    view = _decoded(raw)
    if not isinstance(view, dict) or view.get("type") != kind:
        return "invalid_arguments"
    if kind == "modal" and not _text_ok(view.get("title"), MAX_TITLE, ("plain_text",)):
        return "invalid_arguments"
    if len(str(view.get("private_metadata") or "")) > MAX_METADATA:
        return "invalid_arguments"
    blocks = view.get("blocks")
    if blocks is None or blocks_error(blocks, MAX_VIEW_BLOCKS) is not None:
        return "invalid_arguments"
    return None


@dataclass
class Triggers:
    """trigger_ids are single-use and expire 3 s after Slack issued them. Requests built by
    testbed.slack_requests carry their issue time as the id's first part (milliseconds)."""

    clock: Callable[[], float] = time.time
    used: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def use(self, trigger_id: str) -> str | None:
        """Spend a trigger id: None, or expired_trigger_id / exchanged_trigger_id /
        invalid_trigger_id."""
        try:
            issued_ms = int(trigger_id.split(".", 1)[0])
        except ValueError:
            return "invalid_trigger_id"
        if issued_ms < 10**12:  # not a time in milliseconds: not one Slack issued
            return "invalid_trigger_id"
        with self.lock:
            if trigger_id in self.used:
                return "exchanged_trigger_id"
            if self.clock() - issued_ms / 1000 > TRIGGER_TTL_S:
                return "expired_trigger_id"
            self.used.add(trigger_id)
        return None


@dataclass
class ResponseUrls:
    """Each response_url takes up to 5 posts; the 6th gets 404 `used_url`."""

    uses: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def use(self, path: str) -> str | None:
        """Spend one post of a response_url: None, or `used_url`."""
        with self.lock:
            count = self.uses.get(path, 0) + 1
            self.uses[path] = count
        return "used_url" if count > RESPONSE_URL_USES else None
