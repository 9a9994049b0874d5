"""IntakeContext: what every Slack entry point works with (the service, the adapter's memory,
the intake and ack pools, private answers) and the steps they share: who the actor is, a reply
within the ack's budget, and a file's download and submission."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.core.commands import RunCommand
from bot.core.datafiles import too_large
from bot.core.handler import CommandHandler
from bot.core.inputs import check_input
from bot.core.metrics import Metrics
from bot.core.models import Actor, Identity, Upload
from bot.core.replies import MAYBE_SAVED, Reply, unavailable
from bot.core.service import JobService
from bot.errors import StoreError, UpstreamUnavailable, UsageError, UserError
from bot.slack.answers import Answerer, Where
from bot.slack.formatting import Message
from bot.slack.home import HomePublisher
from bot.slack.intake.request import Asker
from bot.slack.memory import SlackMemory
from bot.slack.origin import Kind
from bot.slack.replyviews import problem, render
from bot.slack.uploads import FileFetcher, SlackFile

log = logging.getLogger(__name__)
ROUTE = "slack"
WORKING = "Working on it…"
OOPS = "Something went wrong on jobbot's side; nothing was changed. Please try again."


KEPT = (
    "jobbot's database is unavailable just now. Your request is kept and runs as soon as "
    "the database is back: no need to send it again."
)

# Set while the work of a request that is in the journal, or may be, is done: a database
# failure then leaves the request to the sweeper (it takes it up when the database is back,
# if it is held), so the person must not be told "nothing was saved" but what to say here
# (KEPT, or MAYBE_SAVED when the record's own write may not have been saved); such a refusal
# is recorded in the list.
_journal: ContextVar[tuple[str, list[StoreError]] | None] = ContextVar("journal", default=None)


@contextmanager
def _answering(answer: str) -> Iterator[list[StoreError]]:
    failed: list[StoreError] = []
    token = _journal.set((answer, failed))
    try:
        yield failed
    finally:
        _journal.reset(token)


def journaled() -> contextlib.AbstractContextManager[list[StoreError]]:
    """Mark the work done inside as that of a journaled request; yields the database
    failures refused under it (non-empty: the request must stay in the journal)."""
    return _answering(KEPT)


def maybe_journaled() -> contextlib.AbstractContextManager[list[StoreError]]:
    """Mark the work done inside as that of a request that may be in the journal; yields
    the database failures refused under it."""
    return _answering(MAYBE_SAVED.message)


def refusal(exc: UserError | StoreError | UpstreamUnavailable) -> str:
    """What to tell the person whose request could not be done: their mistake as it is
    worded; Slack not answering as its advice (try again later), and a database failure as
    UNAVAILABLE (MAYBE_SAVED if it, or the request's journal record, may have been saved), or
    as KEPT for a journaled request (the causes go to the log, not to them)."""
    if isinstance(exc, UserError):
        return exc.message
    if isinstance(exc, UpstreamUnavailable):
        log.warning("slack did not answer under a slack request: %s", exc)
        return exc.advice
    log.warning("database failed under a slack request: %s", exc)
    journal = _journal.get()
    if journal is not None:
        answer, failed = journal
        failed.append(exc)
        return answer
    return unavailable(exc).message


def no_run(command: RunCommand) -> Reply:
    """The CommandHandler's `run`, never called: each entry point handles `run` itself."""
    raise UsageError("`run` is handled before this point.")  # pragma: no cover


class IntakeContext:
    """The collaborators of the Slack entry points, and what they do alike."""

    def __init__(
        self,
        service: JobService,
        handler: CommandHandler,
        fetcher: FileFetcher,
        answerer: Answerer,
        client: WebClient,
        *,
        memory: SlackMemory,
        pool: Executor,
        ack_pool: Executor,
        home: HomePublisher,
        upload_window: float,
        reply_budget: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.memory = memory
        self.handler = handler
        self.fetcher = fetcher
        self.answerer = answerer
        self.client = client
        self.pool = pool  # work after the ack (downloads, submissions, answers)
        # Work an ack waits for (a reply, a journal hold) under its budget: never queued
        # behind the intake pool's downloads and submissions.
        self.ack_pool = ack_pool
        self.home = home
        self.upload_window = upload_window
        self.reply_budget = reply_budget
        self.metrics = metrics

    def actor(self, asker: Asker) -> Actor:
        """The jobbot user behind a Slack user (created on first contact)."""
        return self.service.actor(Identity("slack", asker.team, asker.user), asker.display_name)

    def latest_upload(self, actor: Actor, channel: str) -> Upload | None:
        """The actor's latest .py file shared in that conversation within the upload window."""
        since = self.service.clock.now() - timedelta(seconds=self.upload_window)
        return self.memory.latest_upload(actor.user.id, channel, since)

    def check_input(self, text: str) -> None:
        """Raise InvalidInput unless `text` is an acceptable JSON input."""
        check_input(text, self.service.limits.max_input_bytes)

    def tell(self, where: Where, message: str, usage: str | None = None) -> None:
        """Answer the person alone with a problem."""
        self.answerer.tell(where, problem(message, usage))

    def tell_once(self, where: Where, once: str | None, message: str) -> None:
        """Answer with a problem unless one was told under the key `once` already (a refusal
        is told once, however often the request arrives); always when `once` is None."""
        if once is None or self.memory.first_time(once):
            self.tell(where, message)

    def later(self, fn: Callable[[], object]) -> Future[None] | None:
        """Run work after the ack on the intake pool; failures are logged, never raised.

        Work scheduled while the pool is closing (a journal hold that settled late) runs here
        and now: close() is waiting for the pool's threads, and the request must not be lost.
        """

        def guarded() -> None:
            try:
                fn()
            except Exception:
                log.exception("slack intake failed")

        try:
            return self.pool.submit(guarded)
        except RuntimeError:  # "cannot schedule new futures after shutdown"
            guarded()
            return None

    def reply(self, compute: Callable[[], Reply]) -> Message:
        """A command's reply as a message; a refusal or a failure of ours as a problem."""
        try:
            return render(compute())
        except (UserError, StoreError) as exc:
            return problem(refusal(exc))
        except Exception:
            log.exception("command failed")
            return problem(OOPS)

    def within_budget(self, asker: Asker, compute: Callable[[], Reply]) -> dict[str, Any]:
        """The ack body for a reply computed in time; else a holding text, with the real
        reply sent through the response_url when it is ready."""
        future = self.ack_pool.submit(self.reply, compute)
        try:
            return future.result(timeout=self.reply_budget).as_kwargs()
        except TimeoutError:
            future.add_done_callback(
                lambda f: self.later(lambda: self.answerer.tell(asker.where, f.result()))
            )
            return {"text": WORKING}

    def submit(
        self,
        actor: Actor,
        asker: Asker,
        file: SlackFile,
        input_text: str,
        *,
        kind: Kind,
        key: str,
        once: str | None = None,
        data_files: Sequence[SlackFile] = (),
    ) -> None:
        """Download the file (and the data files shared beside it) and store the job; any
        problem goes to the user alone (once per `once` key, when the same request can
        arrive more than once)."""
        try:
            name, data = self.fetcher.fetch(file)
            files = self._data(data_files)
        except (UserError, UpstreamUnavailable) as exc:
            self._refused(actor, asker, kind, once, exc)
            return
        except Exception:
            log.exception("download failed", extra={"user_id": actor.user.id})
            self.tell(asker.where, OOPS)
            return
        self._store(
            actor, asker, name, data, input_text, kind=kind, key=key, once=once, files=files
        )

    def submit_code(
        self,
        actor: Actor,
        asker: Asker,
        name: str,
        code: str,
        input_text: str,
        *,
        key: str,
        once: str | None = None,
        data_files: Sequence[SlackFile] = (),
    ) -> None:
        """Store a job of code sent in a message (a code block), with the data files shared
        beside it, as `submit` does a file's."""
        try:
            files = self._data(data_files)
        except (UserError, UpstreamUnavailable) as exc:
            self._refused(actor, asker, Kind.MESSAGE, once, exc)
            return
        except Exception:
            log.exception("download failed", extra={"user_id": actor.user.id})
            self.tell(asker.where, OOPS)
            return
        data = code.encode("utf-8")
        self._store(
            actor, asker, name, data, input_text, kind=Kind.MESSAGE, key=key, once=once, files=files
        )

    def _data(self, data_files: Sequence[SlackFile]) -> list[tuple[str, bytes]]:
        """The data files downloaded, refused as a whole before any download when their
        declared sizes already pass the limit."""
        limit = self.service.limits.max_files_in_bytes
        declared = sum(f.size or 0 for f in data_files)
        if declared > limit:  # told before anything is downloaded
            raise too_large([f.name for f in data_files], declared, limit)
        return [self.fetcher.fetch_data(extra, limit) for extra in data_files]

    def _refused(
        self,
        actor: Actor,
        asker: Asker,
        kind: Kind,
        once: str | None,
        exc: UserError | UpstreamUnavailable,
    ) -> None:
        log.info("download refused", extra={"user_id": actor.user.id, "kind": kind.value})
        self.tell_once(asker.where, once, refusal(exc))

    def _store(
        self,
        actor: Actor,
        asker: Asker,
        name: str,
        data: bytes,
        input_text: str,
        *,
        kind: Kind,
        key: str,
        once: str | None,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        try:
            job, created = self.service.submit(
                actor,
                name,
                data,
                input_text,
                origin=asker.origin(kind),
                route=ROUTE,
                idempotency_key=key,
                files=files,
            )
        except (UserError, StoreError, UpstreamUnavailable) as exc:
            log.info("submission refused", extra={"user_id": actor.user.id, "kind": kind.value})
            self.tell_once(asker.where, once, refusal(exc))
            return
        except Exception:
            # a bug of ours must not leave the person waiting for a job that never comes
            log.exception("submission failed", extra={"user_id": actor.user.id})
            self.tell(asker.where, OOPS)
            return
        if not created:
            log.info(
                "duplicate submission merged", extra={"job_id": job.id, "user_id": actor.user.id}
            )
