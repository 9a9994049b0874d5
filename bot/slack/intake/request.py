"""Asker: who asked and where, built here (and only here) from each Slack payload shape."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.slack.answers import Where
from bot.slack.origin import Kind, Origin


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def event_team(body: Mapping[str, Any]) -> str:
    """The workspace an Events API envelope came from."""
    return str(body.get("team_id") or "")


def clicked_on_home(body: Mapping[str, Any]) -> bool:
    """Whether a button was clicked on a view (the App Home tab), not in a conversation."""
    return _dict(body.get("container")).get("type") == "view"


@dataclass(frozen=True)
class Asker:
    """Who asked, and where: the person, their workspace and the conversation, with the ways
    to answer them privately. Its fields are what the intake journal records of a request."""

    team: str
    user: str
    channel: str | None = None  # None: answer in the person's DM
    response_url: str | None = None  # slash commands and clicks: works where the bot cannot post
    thread_ts: str | None = None  # messages: answers go in the thread of the person's message
    display_name: str | None = None

    @property
    def where(self) -> Where:
        """Where private answers go."""
        return Where(self.user, self.channel, self.response_url, self.thread_ts)

    def origin(self, kind: Kind) -> dict[str, Any]:
        """The origin stored with a job this asker submits."""
        origin = Origin(kind, self.team, self.user, self.channel, self.response_url, self.thread_ts)
        return origin.to_dict()

    # --- the intake journal ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """As a journal record holds it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Asker | None:
        """The asker a journal record holds, or None if it holds none."""
        if not isinstance(data, Mapping):
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    # --- the Run job form carries the conversation through its private metadata ----------

    def form_metadata(self) -> dict[str, Any]:
        """What the Run job form keeps of where it was opened."""
        return {"c": self.channel, "r": self.response_url, "t": self.thread_ts}

    # --- one builder per payload shape -------------------------------------------------

    @classmethod
    def from_command(cls, body: Mapping[str, Any]) -> Asker:
        """A slash command."""
        return cls(
            team=str(body.get("team_id") or ""),
            user=str(body.get("user_id") or ""),
            channel=body.get("channel_id"),
            response_url=body.get("response_url"),
            display_name=body.get("user_name"),
        )

    @classmethod
    def from_form(cls, body: Mapping[str, Any]) -> Asker:
        """A view submission of the Run job form (the conversation from its metadata)."""
        try:
            metadata = json.loads(_dict(body.get("view")).get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        metadata = _dict(metadata)
        return cls(
            team=_interactive_team(body),
            user=str(_dict(body.get("user")).get("id") or ""),
            channel=metadata.get("c"),
            response_url=metadata.get("r"),
        )

    @classmethod
    def from_click(cls, body: Mapping[str, Any]) -> Asker:
        """A button click (block_actions); on the Home tab there is no conversation."""
        channel = None
        if not clicked_on_home(body):
            container, conversation = _dict(body.get("container")), _dict(body.get("channel"))
            channel = container.get("channel_id") or conversation.get("id")
        return cls(
            team=_interactive_team(body),
            user=str(_dict(body.get("user")).get("id") or ""),
            channel=channel,
            response_url=body.get("response_url"),
        )

    @classmethod
    def from_message(cls, team: str, event: Mapping[str, Any]) -> Asker:
        """A message or app_mention event (answers go in its thread)."""
        return cls(
            team=str(event.get("team") or team),
            user=str(event.get("user") or ""),
            channel=str(event.get("channel") or ""),
            thread_ts=str(event.get("ts")),
        )

    @classmethod
    def from_home(cls, team: str, event: Mapping[str, Any]) -> Asker:
        """An app_home_opened event."""
        return cls(team, str(event.get("user") or ""))


def _interactive_team(body: Mapping[str, Any]) -> str:
    return str(_dict(body.get("user")).get("team_id") or _dict(body.get("team")).get("id") or "")
