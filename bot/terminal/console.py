"""The console: the Slack app's `/job` commands in a terminal, a file path standing in for an
upload, replies printed as text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.core.commands import RunCommand, parse_command
from bot.core.handler import CommandHandler
from bot.core.models import Actor, Job, JobFile, NotificationEvent
from bot.core.ports import OutboxStore
from bot.core.replies import Accepted, Problem, Reply, unavailable
from bot.errors import InvalidFile, StoreError, UsageError, UserError
from bot.terminal.outfiles import read_data_file, save_files, saved_lines
from bot.terminal.textview import finished_line, render


def read_source(path_text: str) -> tuple[str, bytes]:
    """(file name, bytes) of a local file, with a clear message for each way it can fail."""
    path = Path(path_text).expanduser()
    if not path.exists():
        raise InvalidFile(f"{path_text} does not exist. Give the path of a .py file.")
    if path.is_dir():
        raise InvalidFile(f"{path_text} is a directory. Give the path of a .py file.")
    try:
        with path.open("rb") as handle:
            # Read one byte past any sane limit; the service reports the exact size problem.
            data = handle.read(64 * 1024 * 1024 + 1)
    except OSError as exc:
        raise InvalidFile(f"{path_text} cannot be read: {exc.strerror}.") from exc
    return path.name, data


class PrintNotifier:
    """Prints a line when a job of this terminal finishes; the console's Notifier. With
    `files` (a job's files out, by id), it saves them under jobbot-out/<id>/ and prints
    where."""

    def __init__(
        self,
        write: Callable[[str], None],
        on_finished: Callable[[Job], None] | None = None,
        files: Callable[[int], list[JobFile]] | None = None,
    ) -> None:
        self.write = write
        self.on_finished = on_finished
        self.files = files

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        """Print finished jobs (queued and started are already visible in the reply)."""
        if event is NotificationEvent.FINISHED:
            self.write(finished_line(job))
            if self.files is not None:
                files = self.files(job.id)
                for line in saved_lines(job, save_files(job.id, files), files):
                    self.write(line)
            if self.on_finished is not None:
                self.on_finished(job)
        return None


class Console:
    """Reads `/job ...` lines and answers them, as the Slack app would."""

    def __init__(
        self, handler: CommandHandler, actor: Actor, route: str, notices: OutboxStore
    ) -> None:
        self.handler = handler
        self.notices = notices  # where to see that this session's jobs were told
        self.actor = actor
        self.route = route
        self.lock = threading.Lock()
        self.submitted: list[int] = []  # this session's jobs: only this console hears of them

    def _run(self, command: RunCommand) -> Reply:
        if command.path is None:
            raise UsageError(
                "Give the file to run: /job run FILE [DATA...] [JSON], "
                'e.g. /job run examples/soma.py {"a": 5, "b": 3}'
            )
        name, data = read_source(command.path)
        files = [read_data_file(path) for path in command.data_paths]
        job, created = self.handler.service.submit(
            self.actor,
            name,
            data,
            command.input_text,
            origin={"kind": "console"},
            route=self.route,
            files=files,
        )
        return Accepted(job, created)

    def reply(self, line: str) -> Reply:
        """The reply to one line of input."""
        try:
            command = parse_command(line)
        except UsageError as exc:
            return Problem(exc.message)
        try:
            reply = self.handler.handle(
                self.actor, command, self._run, route=self.route, origin={"kind": "console"}
            )
        except UserError as exc:
            return Problem(exc.message)
        except StoreError as exc:
            return unavailable(exc)
        if isinstance(reply, Accepted):
            self.submitted.append(reply.job.id)
        return reply

    def settle(self, write: Callable[[str], None], timeout_s: float) -> bool:
        """Before exiting, wait (up to `timeout_s`) until this session's jobs finished and
        their notices were printed: they go to this console's route alone, so a job left
        behind would finish unheard. False if some are still going."""
        store = self.notices
        deadline = time.monotonic() + timeout_s
        told = False
        while True:
            try:
                pending = [
                    job_id
                    for job_id in self.submitted
                    if not ((job := store.get(job_id)) and job.status.is_final)
                    or any(state != "sent" for _, state in store.notification_events(job_id))
                ]
            except StoreError:
                return False
            if not pending:
                return True
            if time.monotonic() > deadline:
                return False
            if not told:
                write(f"Waiting for {len(pending)} job(s) to finish (Ctrl-C leaves them queued)…")
                told = True
            time.sleep(0.1)

    def execute(self, line: str) -> str:
        """The reply to one line, as text."""
        return render(self.reply(line))

    def loop(self, read: Callable[[str], str], write: Callable[[str], None]) -> None:
        """Answer lines until end of input or `exit`."""
        while True:
            try:
                line = read("jobbot> ")
            except (EOFError, KeyboardInterrupt):
                write("")
                return
            if line.strip().lower() in {"exit", "quit", "/exit", "/quit"}:
                return
            if not line.strip():
                continue
            with self.lock:
                write(self.execute(line))
