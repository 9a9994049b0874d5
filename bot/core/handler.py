"""Turns a parsed command into a Reply through the JobService; shared by Slack and the console."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.core.commands import (
    CancelCommand,
    Command,
    HelpCommand,
    ListCommand,
    MineCommand,
    RerunCommand,
    RunCommand,
    StatusCommand,
    TokenCommand,
)
from bot.core.models import Actor
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
from bot.core.service import PAGE_SIZE, JobService
from bot.errors import UsageError, UserError

RunHandler = Callable[[RunCommand], Reply]


class CommandHandler:
    """Answers `/job` commands; how a file is obtained for `run` is the adapter's business."""

    def __init__(self, service: JobService, usage: str, *, about: str = "") -> None:
        self.service = service
        self.usage = usage
        self.about = about  # more for `help` alone: what jobs can import

    def handle(
        self,
        actor: Actor,
        command: Command,
        run: RunHandler,
        *,
        origin: Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
    ) -> Reply:
        """The reply to one command; user mistakes become a Problem, never an exception."""
        try:
            return self._handle(
                actor, command, run, origin=origin, route=route, idempotency_key=idempotency_key
            )
        except UsageError as exc:
            return Problem(exc.message, usage=exc.usage or self.usage)
        except UserError as exc:
            return Problem(exc.message)

    def _handle(
        self,
        actor: Actor,
        command: Command,
        run: RunHandler,
        *,
        origin: Mapping[str, Any] | None,
        route: str | None,
        idempotency_key: str | None,
    ) -> Reply:
        if isinstance(command, RunCommand):
            return run(command)
        if isinstance(command, StatusCommand):
            view, files = self.service.view_with_files(actor, command.job_id)
            return Detail(view.job, view.full, tuple(files))
        if isinstance(command, MineCommand):
            jobs = self.service.mine(actor, command.limit)
            return Listing(
                title=("Your last job" if len(jobs) == 1 else f"Your last {len(jobs)} jobs")
                if jobs
                else "Your jobs",
                jobs=tuple(jobs),
                viewer=actor,
                empty_hint="You have no jobs yet. Try `/job run` with a .py file.",
            )
        if isinstance(command, ListCommand):
            jobs = self.service.list_page(command.page)
            more = f"Older jobs: `/job list {command.page + 1}`" if len(jobs) == PAGE_SIZE else ""
            return Listing(
                title=f"Latest jobs (page {command.page})",
                jobs=tuple(jobs),
                viewer=actor,
                empty_hint="No jobs on this page." if command.page > 1 else "No jobs yet.",
                more_hint=more,
            )
        if isinstance(command, CancelCommand):
            return Cancelled(self.service.cancel(actor, command.job_id))
        if isinstance(command, RerunCommand):
            job, created = self.service.rerun(
                actor, command.job_id, origin=origin, route=route, idempotency_key=idempotency_key
            )
            return Accepted(job, created)
        if isinstance(command, TokenCommand):
            if command.revoke:
                return TokenRevoked(self.service.tokens.revoke(actor))
            token = self.service.tokens.mint(actor, command.lifetime)
            stored = self.service.tokens.of(actor) if command.lifetime else None
            expires = stored.expires_at if stored is not None else None
            return TokenIssued(token, actor.user.id, expires)
        if isinstance(command, HelpCommand):
            usage = f"{self.usage}\n{self.about}" if self.about else self.usage
            return Help(usage, command.unknown)
        raise UsageError("That command was not understood.")  # pragma: no cover
