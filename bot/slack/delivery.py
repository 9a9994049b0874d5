"""Delivery progress of one job's Slack notifications, kept in its origin between attempts."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

PREFIX = "slack_"


class Via(StrEnum):
    """How the job's messages reach its owner."""

    CHANNEL = "channel"  # the conversation it was requested in
    RESPONSE_URL = "response_url"  # the slash command's response_url (bot not in the channel)
    DM = "dm"  # the owner's DM with the bot


class Progress:
    """The stored delivery state of a job, plus what this attempt changed."""

    def __init__(self, origin: Mapping[str, Any]) -> None:
        self._state = dict(origin)
        self.changes: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        """A progress field (without its prefix)."""
        return self._state.get(PREFIX + key)

    def set(self, **fields: Any) -> None:
        """Record fields now, to be stored with the delivery (or with its retry)."""
        for key, value in fields.items():
            self._state[PREFIX + key] = value
            self.changes[PREFIX + key] = value

    @property
    def via(self) -> Via | None:
        """How messages go out, once chosen."""
        value = self.get("via")
        return Via(value) if value else None

    @property
    def target(self) -> str | None:
        """The conversation messages are posted to."""
        value = self.get("target")
        return str(value) if value else None

    @property
    def status_ts(self) -> str | None:
        """The ts of the status message, once posted."""
        value = self.get("status_ts")
        return str(value) if value else None

    @property
    def shown(self) -> str | None:
        """The job status the status message shows."""
        value = self.get("shown")
        return str(value) if value else None

    def move(self, via: Via, target: str | None) -> None:
        """Post from now on through `via`; messages posted elsewhere are left behind."""
        self.set(via=via.value, target=target, status_ts=None, shown=None, started_ts=None)
