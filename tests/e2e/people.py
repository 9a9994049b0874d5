"""Slack users of a running serve process, as the end-to-end suites drive it: over HTTP or as
Socket Mode envelopes, watched through the Slack stand-in and the database."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.core.models import Identity, Job
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.slack_ledger import settled, wait_remembered
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until

SOMA = "def main(a, b):\n    return a + b\n"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    """serve's acknowledgement of one request: the HTTP status and body (over Socket Mode,
    status 200 and the envelope's payload as JSON)."""

    status: int
    body: str

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The text of a reply in the ack ("" for an empty ack)."""
        return message_text(self.json()) if self.body else ""


Send = Callable[[sr.SlackRequest], Answer]


class Person:
    """One Slack user of the server, in a channel of their own; `send` carries their signed
    requests to serve and returns its acknowledgement."""

    def __init__(
        self,
        send: Send,
        standin: SlackStandIn,
        store: SqlStore,
        prefix: str,
        user: str | None = None,
    ) -> None:
        n = next(_numbers)
        self.send, self.standin, self.store = send, standin, store
        self.user = user or f"{prefix}{n:03d}"
        self.channel = f"C{prefix[1:]}{n:03d}"
        self.user_id = store.ensure_user(Identity("slack", sr.TEAM, self.user)).id
        self.promised: int | None = None

    def command(
        self, text: str, *, channel: str | None = None, response_url: str | None = None
    ) -> Answer:
        hook = response_url or self.standin.response_url(self.user)
        return self.send(
            sr.slash(text, user=self.user, channel=channel or self.channel, response_url=hook)
        )

    def ask(self, text: str) -> str:
        """A command whose answer comes in the ack: its text."""
        answer = self.command(text)
        assert answer.status == 200
        return answer.text

    def event(self, inner: dict[str, Any], **options: Any) -> None:
        assert self.send(sr.event(inner, **options)).status == 200

    def share(self, name: str = "soma.py", code: str | bytes = SOMA, **kw: Any) -> dict[str, Any]:
        """Share a file in the channel and wait until the server remembered it."""
        file = self.standin.add_file(name, code, **kw)
        self.event(sr.file_message("", [file], user=self.user, channel=self.channel))
        wait_remembered(self.store, self.user_id, self.channel, file["id"])
        return file

    def jobs(self) -> list[Job]:
        """This user's jobs, newest first."""
        return self.store.list_by_owner(self.user_id, 50)

    def new_job(self, known: int = 0) -> Job:
        """The newest job, once there are more than `known`."""
        return wait_until(
            lambda: len(self.jobs()) > known and self.jobs()[0], message=f"a job of {self.user}"
        )

    def settled(self, job_id: int, timeout: float = 15.0) -> Job:
        return settled(self.store, [job_id], timeout)[0]

    def final(self, job: Job) -> dict[str, Any]:
        """The outcome message of a job (result, error or timeout): a job's one message when
        it ended within the quiet period, else the reply under its status message."""
        status = (f"Job #{job.id} queued", f"Job #{job.id} running")
        found = [
            p
            for p in self.standin.posts()
            if str(p.get("text")).startswith(f"Job #{job.id} ")
            and not str(p["text"]).startswith(status)
        ]
        assert len(found) == 1, f"exactly one final message, got {len(found)}"
        return found[0]

    def ephemerals(self) -> list[str]:
        """Texts shown to this user alone (response_url posts and ephemeral messages)."""
        hooks = [c for c in self.standin.calls("response_url") if f"/{self.user}/" in c.path]
        eph = self.standin.calls("chat.postEphemeral", user=self.user)
        return [message_text(c.body) for c in [*hooks, *eph]]

    def will_have_jobs(self, count: int) -> None:
        """Promise how many jobs this user has once serve stopped: checked by
        `assert_promises_kept`, when no request is left in flight to add one."""
        self.promised = count


def assert_promises_kept(people: Iterable[Person]) -> None:
    """Call after serve stopped: it finished the work of every request it acknowledged, so a
    duplicate job would exist by now."""
    counts = {p.user: (p.promised, len(p.jobs())) for p in people if p.promised is not None}
    assert all(promised == found for promised, found in counts.values()), (
        f"user: (promised, found) jobs {counts}"
    )
