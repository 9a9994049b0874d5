"""Where a Slack job came from and how far its notifications got; kept in the job's opaque
origin JSON so any process can carry a delivery on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How the job was submitted."""

    COMMAND = "command"  # /job run or /job rerun
    MODAL = "modal"  # the Run job form
    MESSAGE = "message"  # a message with a .py file (the thread is on that message)
    BUTTON = "button"  # a Re-run button in a thread
    HOME = "home"  # a Re-run button on the App Home tab (replies go to the DM)


@dataclass(frozen=True)
class Origin:
    """The request behind a job: who, in which conversation, and how to reach them."""

    kind: Kind
    team: str
    user: str
    channel: str | None = None  # None: reply in the user's DM
    response_url: str | None = None  # slash commands: works where the bot cannot post
    thread_ts: str | None = None  # message submissions: the user's message

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able origin stored with the job."""
        return {f"slack_{k}": v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Origin:
        """The origin of a stored job (unknown keys ignored)."""
        return cls(
            kind=Kind(data.get("slack_kind", Kind.COMMAND.value)),
            team=str(data.get("slack_team", "")),
            user=str(data.get("slack_user", "")),
            channel=data.get("slack_channel"),
            response_url=data.get("slack_response_url"),
            thread_ts=data.get("slack_thread_ts"),
        )
