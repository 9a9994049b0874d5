"""`/job ...` text -> Command objects, shared by the Slack app and the console."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.core.tokens import parse_lifetime
from bot.errors import UsageError

MAX_LISTED = 50
DEFAULT_LISTED = 10

USAGE = """\
/job run [JSON]        run your latest .py upload here (or pick a file) with a JSON input
/job status ID         show one job
/job mine [N]          your last N jobs (default 10)
/job list [PAGE]       everyone's latest jobs, 20 per page
/job cancel ID         cancel a waiting job, or stop a running one
/job rerun ID          run a job's code and input again as a new job
/job token [revoke]    a token for the HTTP API (shown once), or revoke yours;
                       `/job token --expires 30d` for one that expires (90m, 12h, 30d)
/job help              this help
Example: /job run {"a": 5, "b": 3}"""

CONSOLE_USAGE = USAGE.replace(
    "/job run [JSON]        run your latest .py upload here (or pick a file) with a JSON input",
    "/job run FILE [DATA...] [JSON]   run a .py file with data files and a JSON input",
).replace(
    'Example: /job run {"a": 5, "b": 3}', 'Example: /job run examples/soma.py {"a": 5, "b": 3}'
)


@dataclass(frozen=True)
class RunCommand:
    """Run a file; `path` is set when the text names one (console), `input_text` is raw JSON,
    `data_paths` the data files named after the path (console)."""

    path: str | None
    input_text: str
    data_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusCommand:
    """Show one job."""

    job_id: int


@dataclass(frozen=True)
class MineCommand:
    """List the caller's latest jobs."""

    limit: int = DEFAULT_LISTED


@dataclass(frozen=True)
class ListCommand:
    """List everyone's latest jobs, one page at a time."""

    page: int = 1


@dataclass(frozen=True)
class CancelCommand:
    """Cancel a waiting job, or stop a running one."""

    job_id: int


@dataclass(frozen=True)
class RerunCommand:
    """Run a job's code and input again as a new job."""

    job_id: int


@dataclass(frozen=True)
class TokenCommand:
    """Mint the asker's API token (shown once), or revoke it."""

    revoke: bool = False
    lifetime: timedelta | None = None  # --expires 30d: it stops working that long from now


@dataclass(frozen=True)
class HelpCommand:
    """Show usage; `unknown` is the subcommand that was not understood, if any."""

    unknown: str | None = None


Command = (
    RunCommand
    | StatusCommand
    | MineCommand
    | ListCommand
    | CancelCommand
    | RerunCommand
    | TokenCommand
    | HelpCommand
)

_ID = re.compile(r"^#?([0-9]{1,18})$")


def parse_job_id(text: str, verb: str) -> int:
    """'12' or '#12' -> 12; anything else is a UsageError that shows the right form."""
    token = text.strip()
    match = _ID.match(token)
    if not token:
        raise UsageError(f"Which job? Give its number, like `/job {verb} 12`.")
    if not match or int(match.group(1)) == 0 or len(token.split()) != 1:
        raise UsageError(
            f"`{token[:40]}` is not a job id. Job ids are positive whole numbers, "
            f"like `/job {verb} 12`."
        )
    return int(match.group(1))


def _count(text: str, verb: str, default: int, high: int) -> int:
    token = text.strip()
    if not token:
        return default
    # ASCII digits only: "²".isdigit() is True but int("²") fails; and few of them, since
    # int() refuses more than 4300 digits
    number = token.isascii() and token.isdigit() and len(token) <= 18
    if not number or not 1 <= int(token) <= high:
        raise UsageError(f"`{token[:40]}` is not a number from 1 to {high}, like `/job {verb} 5`.")
    return int(token)


def _split_run(rest: str) -> RunCommand:
    rest = rest.strip()
    if not rest or rest[0] in "{[`\"'“":
        return RunCommand(path=None, input_text=rest)
    head, _, tail = rest.partition(" ")
    if head.lower().endswith(".py") or "/" in head or "\\" in head:
        data: list[str] = []
        tail = tail.strip()
        while tail and tail[0] not in "{[`\"'“":  # data files until the JSON starts
            name, _, tail = tail.partition(" ")
            data.append(name)
            tail = tail.strip()
        return RunCommand(path=head, input_text=tail, data_paths=tuple(data))
    return RunCommand(path=None, input_text=rest)


def parse_command(text: str) -> Command:
    """Parse the text after `/job` (a leading `/job` is accepted too)."""
    body = text.strip()
    if body.lower().startswith("/job"):
        body = body[4:].strip()
    if not body:
        return HelpCommand()
    verb, _, rest = body.partition(" ")
    if "\n" in verb:
        verb, _, more = verb.partition("\n")
        rest = more + " " + rest
    verb = verb.lower()
    if verb == "run":
        return _split_run(rest)
    if verb == "status":
        return StatusCommand(parse_job_id(rest, "status"))
    if verb == "mine":
        return MineCommand(_count(rest, "mine", DEFAULT_LISTED, MAX_LISTED))
    if verb == "list":
        return ListCommand(_count(rest, "list", 1, 100000))
    if verb == "cancel":
        return CancelCommand(parse_job_id(rest, "cancel"))
    if verb == "rerun":
        return RerunCommand(parse_job_id(rest, "rerun"))
    if verb == "token":
        return _token_command(rest)
    if verb in {"help", "-h", "--help", "?"}:
        return HelpCommand()
    return HelpCommand(unknown=verb[:40])


def _token_command(rest: str) -> TokenCommand:
    """`/job token`, `/job token --expires 30d` or `/job token revoke`."""
    words = rest.strip().lower().split()
    if words == ["revoke"]:
        return TokenCommand(revoke=True)
    if not words:
        return TokenCommand()
    if len(words) == 2 and words[0] in {"--expires", "expires"}:
        return TokenCommand(lifetime=parse_lifetime(words[1]))
    raise UsageError(
        f"`{rest.strip()[:40]}` is not something `/job token` does: use `/job token` for a new "
        "token (`/job token --expires 30d` for one that expires), or `/job token revoke`."
    )
