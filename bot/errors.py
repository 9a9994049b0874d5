"""The one error tree of jobbot; each class's docstring is its default message.

    BotError
    ├── UserError               the asker's own mistake; its message is safe to show them
    │   ├── UsageError          a command that does not parse
    │   ├── InvalidInput        a JSON input that is not a JSON object, or too large
    │   │   └── InputTooLarge   ... over the size limit
    │   ├── InvalidFile         a file that is missing, not .py, too big, not UTF-8, ...
    │   │   └── FileTooLarge    ... over the size limit
    │   ├── JobNotFound         no job with that id
    │   ├── UserNotFound        no user with that id
    │   ├── FileNotFound        no file of that name with the job
    │   ├── Forbidden           the job belongs to someone else
    │   └── NotCancellable      the job already started or finished
    ├── ConfigError             invalid settings (lists every problem at once)
    └── InfraError              our own infrastructure failed; never the user's fault
        ├── StoreError          the database failed: nothing was saved
        │   └── StoreUnavailable    ... and looks transient (connection lost, deadlock)
        │       └── StoreOutcomeUnknown ... after a write was sent: it may have been saved
        ├── ExecutorError       the executor failed before or while running a job
        │   └── ExecutorUnavailable the run never started: safe to try again
        │       ├── CalledOff   ... because the job is no longer ours (its start gate said no)
        │       └── Throttled   ... because the backend refused to start it for now
        ├── NotifyError         a notification could not be delivered
        │   └── NotifyRetryable ... but may be delivered later
        └── UpstreamUnavailable a service a request needs (Slack's file host) did not answer

Adapters translate third-party exceptions at their edge (``raise StoreError(...) from exc``),
so sqlalchemy, botocore and slack_sdk exceptions never reach ``bot.core``. An InfraError's
message is for operators (logs, the CLI, doctor): the surfaces a person uses (Slack, the
console) answer a StoreError with ``bot.core.replies.UNAVAILABLE`` instead, and catch it by
its own class, never as a UserError. An UpstreamUnavailable also carries `advice`, what to
tell the person (it is not their fault; try again later).
"""

from __future__ import annotations


class BotError(Exception):
    """Something went wrong in jobbot."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""


class UserError(BotError):
    """That request could not be done."""


class UsageError(UserError):
    """That command was not understood."""

    def __init__(self, message: str | None = None, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class InvalidInput(UserError):
    """The input must be a JSON object, like {"a": 5, "b": 3}."""


class InvalidFile(UserError):
    """That file cannot be run: send a UTF-8 text .py file."""


class InputTooLarge(InvalidInput):
    """The JSON input is over the size limit."""


class FileTooLarge(InvalidFile):
    """The file is over the size limit."""


class JobNotFound(UserError):
    """There is no job with that id."""


class UserNotFound(UserError):
    """There is no user with that id."""


class FileNotFound(UserError):
    """The job has no file of that name."""


class Forbidden(UserError):
    """Only the job's owner or an admin can do that."""


class NotCancellable(UserError):
    """That job can no longer be cancelled: it has already finished."""


class ConfigError(BotError):
    """The configuration is invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class InfraError(BotError):
    """jobbot's infrastructure failed."""


class StoreError(InfraError):
    """The database failed."""


class StoreUnavailable(StoreError):
    """The database is unreachable or busy; the operation may succeed if retried."""


class StoreOutcomeUnknown(StoreUnavailable):
    """The database stopped answering after a write was sent (its answer was lost, and every
    retry failed): the write may have been saved. Never tell the person "nothing was saved"."""


class ExecutorError(InfraError):
    """The executor failed."""


class ExecutorUnavailable(ExecutorError):
    """The executor could not start the run; nothing ran, so it is safe to try again."""


class CalledOff(ExecutorUnavailable):
    """The run was called off at its start gate (the job is no longer ours); nothing ran."""


class Throttled(ExecutorUnavailable):
    """The executor is throttling; nothing ran, try again after a pause."""

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotifyError(InfraError):
    """A notification could not be delivered and will not be retried."""


class NotifyRetryable(NotifyError):
    """A notification could not be delivered now; it will be retried.

    `progress` holds origin fields to persist before the retry (the steps that did go out),
    so a multi-step delivery resumes where it stopped instead of repeating messages.
    `held`: nothing failed; the delivery waits its turn for a rate limit, due again exactly
    `retry_after` seconds from now.
    """

    def __init__(
        self,
        message: str | None = None,
        retry_after: float | None = None,
        progress: dict[str, object] | None = None,
        *,
        held: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.progress = progress or {}
        self.held = held


class UpstreamUnavailable(InfraError):
    """A service a request needs did not answer (Slack's file host or Web API); nothing is
    wrong with the request itself."""

    DEFAULT_ADVICE = (
        "Slack did not answer jobbot just now: a problem on Slack's side, not yours. "
        "Nothing was saved; try again in a minute."
    )

    def __init__(self, message: str | None = None, advice: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice or self.DEFAULT_ADVICE
