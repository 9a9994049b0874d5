"""The reply model: what a command answers, before any adapter renders it as text or blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.core.models import Actor, Job, JobStatus, StoredFile
from bot.errors import StoreError, StoreOutcomeUnknown


@dataclass(frozen=True)
class Accepted:
    """A job was queued (or an identical earlier submission was found)."""

    job: Job
    created: bool = True


@dataclass(frozen=True)
class Detail:
    """One job; `full` means the viewer may see its output and errors, and its files
    (`files`: data files first, then the files it wrote, without their content)."""

    job: Job
    full: bool
    files: tuple[StoredFile, ...] = ()


@dataclass(frozen=True)
class Listing:
    """Several jobs; results are shown only where `viewer` may see them."""

    title: str
    jobs: tuple[Job, ...]
    viewer: Actor
    empty_hint: str = ""
    more_hint: str = ""

    def shows_output(self, job: Job) -> bool:
        """Whether this listing may show the job's result."""
        return self.viewer.is_admin or job.owner_id == self.viewer.user.id


@dataclass(frozen=True)
class Cancelled:
    """A waiting job was cancelled, or a running one is being stopped (`stopping`)."""

    job: Job

    @property
    def stopping(self) -> bool:
        """True when the job was running: its stop is asked for, and it has not ended yet."""
        return self.job.status is JobStatus.RUNNING


@dataclass(frozen=True)
class TokenIssued:
    """A new API token, to be shown to its user once and never again (only its hash is kept);
    `repr` leaves the token out, so a log line of the reply cannot carry it."""

    token: str = field(repr=False)
    user_id: int = 0
    expires_at: datetime | None = None  # None: until replaced or revoked

    @property
    def lifetime_note(self) -> str:
        """When it stops working on its own, as a sentence (empty: it does not)."""
        if self.expires_at is None:
            return ""
        return f"It expires at {self.expires_at.strftime('%Y-%m-%d %H:%M')} UTC."


@dataclass(frozen=True)
class TokenRevoked:
    """The asker's API token was revoked (`had_one` False: there was none)."""

    had_one: bool


@dataclass(frozen=True)
class Help:
    """Usage text; `unknown` names a subcommand that was not understood."""

    usage: str
    unknown: str | None = None


@dataclass(frozen=True)
class Problem:
    """A request that could not be done, with what to do about it."""

    message: str
    usage: str | None = None
    details: tuple[str, ...] = field(default_factory=tuple)


Reply = Accepted | Detail | Listing | Cancelled | TokenIssued | TokenRevoked | Help | Problem

# What a person hears when the database failed under their request (a StoreError): the
# surfaces they use (Slack, the console) answer this, and say nothing about the cause.
UNAVAILABLE = Problem(
    "jobbot is temporarily unavailable (database unreachable). Nothing was saved; try again."
)

# ... and when the database stopped answering after the request was sent to it
# (StoreOutcomeUnknown): it may have been saved, and a second try could make a second job.
MAYBE_SAVED = Problem(
    "jobbot's database stopped answering while your request was being saved, so it may have "
    "been saved: if it was, it runs once the database is back, and you hear about it as usual "
    "(`/job mine` lists it then). Check that before sending it again."
)


def unavailable(exc: StoreError) -> Problem:
    """What to tell a person whose request the database failed under."""
    return MAYBE_SAVED if isinstance(exc, StoreOutcomeUnknown) else UNAVAILABLE
