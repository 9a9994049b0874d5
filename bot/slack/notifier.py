"""SlackNotifier: turns a job's outbox events into Slack messages, step by step, recording
each step in the job's origin so a retried delivery never repeats a message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from slack_sdk import WebClient

from bot.app.config import Settings
from bot.core.metrics import Metrics
from bot.core.models import FileRole, Job, NotificationEvent
from bot.core.service import JobService
from bot.errors import NotifyError, NotifyRetryable, StoreError
from bot.slack.budget import POST, UPLOAD, Held, PaceMemory, Pacer
from bot.slack.clients import web_client
from bot.slack.delivery import Progress, Via
from bot.slack.fileshare import FileShare
from bot.slack.formatting import Message, context, section
from bot.slack.home import HomePublisher
from bot.slack.jobviews import (
    final_message,
    needs_upload,
    output_document,
    output_file_name,
    status_message,
    summary_text,
)
from bot.slack.origin import Kind, Origin
from bot.slack.posting import CallFailed, call, respond_url

log = logging.getLogger(__name__)
T = TypeVar("T")
BLOCKS_REJECTED = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long"}
)
UPLOAD_TRIES = 5


class SlackNotifier:
    """Posts a job's status message, its thread replies, the output file and the summary."""

    def __init__(
        self,
        client: WebClient,
        *,
        broadcast: bool = True,
        notify_channel: str = "",
        metrics: Metrics | None = None,
        home: HomePublisher | None = None,
        pacer: Pacer | None = None,
        files: FileShare | None = None,
    ) -> None:
        self.client = client
        self.files = files
        self.pacer = pacer  # None: no pacing (a test that drives Slack's limits itself)
        self.broadcast = broadcast
        self.notify_channel = notify_channel
        self.metrics = metrics
        self.home = home

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        """Deliver one event given the job's current state; returns the progress to keep."""
        origin = Origin.from_dict(job.origin)
        progress = Progress(job.origin)
        extra = {"job_id": job.id, "user_id": job.owner_id, "event": event.value}
        try:
            if event is not NotificationEvent.FINISHED:
                if job.status.is_final:
                    # Coalesced: the result, due next, tells the latest state.
                    log.info("obsolete progress dropped", extra=extra)
                    return progress.changes
                self._with_fallback(origin, progress, lambda: self._status(job, origin, progress))
            else:
                self._with_fallback(origin, progress, lambda: self._finished(job, origin, progress))
                self._extras(job, origin, progress)
        except Held as held:
            raise NotifyRetryable(
                str(held), retry_after=held.wait_s, progress=progress.changes, held=True
            ) from held
        except StoreError as exc:
            # The shared rate buckets could not be read: try again, keeping what went out.
            raise NotifyRetryable(
                f"rate buckets: {exc.message}", progress=progress.changes
            ) from exc
        except CallFailed as exc:
            failure = exc.failure
            if failure.transient:
                raise NotifyRetryable(
                    failure.describe(), retry_after=failure.retry_after, progress=progress.changes
                ) from exc
            log.error("slack delivery given up: %s", exc, extra=extra)
            raise NotifyError(f"{exc.method}: {failure.describe()}") from exc
        log.info("slack notification delivered", extra=extra)
        return progress.changes

    # --- where to post -------------------------------------------------------------------

    def _with_fallback(self, origin: Origin, progress: Progress, step: Callable[[], T]) -> T:
        """Run a step; when the conversation is closed to the bot, move to the next way of
        reaching the user (response_url, then DM) and run it again there."""
        while True:
            if progress.via is None:
                self._choose_first(origin, progress)
            try:
                return step()
            except CallFailed as exc:
                if not exc.failure.unreachable:
                    raise
                self._fall_back(origin, progress, exc)

    def _choose_first(self, origin: Origin, progress: Progress) -> None:
        if origin.channel:
            progress.move(Via.CHANNEL, origin.channel)
        else:
            # Posting to a user id opens the bot's DM (no im:write scope needed); the real
            # D… id comes back with the first post.
            progress.move(Via.DM, origin.user)

    def _fall_back(self, origin: Origin, progress: Progress, exc: CallFailed) -> None:
        log.info("falling back from %s: %s", progress.via, exc.failure.kind)
        if progress.via is Via.CHANNEL and origin.response_url:
            progress.move(Via.RESPONSE_URL, None)
            return
        if progress.via is not Via.DM:
            progress.move(Via.DM, origin.user)
            return
        raise exc

    # --- steps -----------------------------------------------------------------------------

    def _status(self, job: Job, origin: Origin, progress: Progress) -> None:
        """Post the status message once, then keep it in step with the job."""
        if progress.via is Via.RESPONSE_URL:
            if progress.shown is None and not job.status.is_final:
                respond_url(self.metrics, str(origin.response_url), status_message(job))
                progress.set(shown=job.status.value)
            return
        result = job.status.is_final
        if not progress.status_ts:
            if result:
                return  # a job that ended within the quiet period has no status message
            thread = (
                origin.thread_ts
                if origin.kind is Kind.MESSAGE and progress.via is Via.CHANNEL
                else None
            )
            ts = self._post_to(progress, status_message(job), thread, status=True)
            progress.set(status_ts=ts, shown=job.status.value)
        elif progress.shown != job.status.value:
            self._turn(progress, "chat.update", progress.target, result=result)
            try:
                call(
                    self.metrics,
                    "chat.update",
                    self.client.chat_update,
                    channel=progress.target,
                    ts=progress.status_ts,
                    **status_message(job).as_kwargs(),
                )
            except CallFailed as exc:
                self._refused(exc, "chat.update", progress.target)
                if exc.failure.is_outage:
                    raise
                # A deleted or foreign status message is not worth failing the delivery for.
                log.info(
                    "status message not updated: %s", exc.failure.kind, extra={"job_id": job.id}
                )
            progress.set(shown=job.status.value)

    def _thread(self, origin: Origin, progress: Progress) -> str | None:
        """The job's thread: the user's own message, else the status message, else the
        result message of a job told in one message."""
        if progress.via is Via.CHANNEL and origin.kind is Kind.MESSAGE and origin.thread_ts:
            return origin.thread_ts
        return progress.status_ts or progress.get("result_ts")

    def _finished(self, job: Job, origin: Origin, progress: Progress) -> None:
        """The result: a thread reply under the status message (or on the user's message),
        or, for a job that ended within the quiet period, one message that is all of it."""
        if progress.get("final") is None:
            if progress.via is Via.RESPONSE_URL:
                note = "in your DM with jobbot"
                respond_url(self.metrics, str(origin.response_url), final_message(job, note))
                progress.set(final="response_url")
            else:
                thread = self._thread(origin, progress)
                message = final_message(job, "attached below" if thread else "in its thread")
                ts = self._post_to(
                    progress, message, thread, self.broadcast and thread is not None, result=True
                )
                progress.set(final=ts)
                if thread is None:
                    progress.set(result_ts=ts)
        self._status(job, origin, progress)

    def _extras(self, job: Job, origin: Origin, progress: Progress) -> None:
        """The output file, the files out, the notify-channel summary and the Home tab; each
        optional."""
        if needs_upload(job) and progress.get("upload") is None:
            self._upload(job, origin, progress)
        if self.files is not None and progress.get("files") is None:
            self._share_files(self.files, job, origin, progress)
        if self.notify_channel and progress.get("summary") is None:
            self._turn(progress, POST, self.notify_channel, result=True)
            try:
                ts, _ = self._post_raw(
                    self.notify_channel,
                    Message(summary_text(job), [section(summary_text(job))]),
                    None,
                )
                progress.set(summary=ts)
            except CallFailed as exc:
                if exc.failure.is_outage:
                    raise
                log.warning(
                    "notify channel summary not posted: %s",
                    exc.failure.kind,
                    extra={"job_id": job.id},
                )
                progress.set(summary="failed")
        if self.home is not None:
            self.home.refresh_owner(job.owner_id, job.owner)

    def _upload(self, job: Job, origin: Origin, progress: Progress) -> None:
        tries, channel, thread = self._upload_try(
            origin, progress, "upload", f"Full output of job #{job.id}"
        )
        # The seam for files into a job's thread: one files_upload_v2 into (channel, thread).
        self._turn(progress, UPLOAD, channel, result=True)
        try:
            call(
                self.metrics,
                "files.upload",
                self.client.files_upload_v2,
                channel=channel,
                thread_ts=thread,
                content=output_document(job),
                filename=output_file_name(job),
                title=f"Job #{job.id} output",
            )
            progress.set(upload="done")
        except CallFailed as exc:
            self._refused(exc, UPLOAD, channel)
            if _retry_upload(exc, tries):
                raise
            log.warning("output not uploaded: %s", exc.failure.kind, extra={"job_id": job.id})
            progress.set(upload="failed")
            self._turn(progress, POST, channel, result=True)
            self._post_raw(
                str(channel),
                Message(
                    "The full output could not be attached.",
                    [
                        context(
                            "The full output could not be attached; `/job status` shows a summary."
                        )
                    ],
                ),
                thread,
            )

    def _upload_try(
        self, origin: Origin, progress: Progress, kind: str, title: str
    ) -> tuple[int, str, str | None]:
        """(which try this is, channel, thread) of an upload of the job, its tries counted in
        the progress under `{kind}_tries`. It goes to the job's thread; or, with no thread to
        share in (an answer by response_url), under a note titled `title` posted once in the
        DM, remembered under `{kind}_note`."""
        tries = int(progress.get(f"{kind}_tries") or 0) + 1
        progress.set(**{f"{kind}_tries": tries})
        if progress.via is not Via.RESPONSE_URL:
            return tries, str(progress.target), self._thread(origin, progress)
        note_key = f"{kind}_note"
        if progress.get(note_key) is None:
            self._turn(progress, POST, origin.user, result=True)
            note = Message(title, [context(f"{title}:")])
            thread, channel = self._post_raw(origin.user, note, None)
            progress.set(**{note_key: f"{channel}/{thread}"})
        channel, _, thread = str(progress.get(note_key)).partition("/")
        return tries, channel, thread

    def _turn(
        self,
        progress: Progress,
        method: str,
        channel: str | None,
        *,
        result: bool,
        status: bool = False,
    ) -> None:
        """Wait for the call's turn in Slack's limits (raises Held if it is not now)."""
        if self.pacer is not None:
            self.pacer.turn(progress, method, channel, result=result, status=status)

    def _share_files(self, files: FileShare, job: Job, origin: Origin, progress: Progress) -> None:
        """The job's files out in its thread (fileshare.py), at most once, in their turn;
        given up after UPLOAD_TRIES, with a line that says so."""
        found = files.to_share(job)
        if found is None:  # most jobs: no turn taken, no note posted
            progress.set(files="none")
            return
        tries, channel, thread = self._upload_try(
            origin, progress, "files", f"Files of job #{job.id}"
        )
        method = files.method(found)
        self._turn(progress, method, channel, result=True)
        try:
            progress.set(files="done" if files.share(job, channel, thread, found) else "none")
        except CallFailed as exc:
            self._refused(exc, method, channel)
            if _retry_upload(exc, tries):
                raise
            log.warning("files not shared: %s", exc.failure.kind, extra={"job_id": job.id})
            progress.set(files="failed")
            failed = f"The files of job #{job.id} could not be shared."
            self._turn(progress, POST, channel, result=True)
            self._post_raw(channel, Message(failed, [context(failed)]), thread)

    def _post_to(
        self,
        progress: Progress,
        message: Message,
        thread: str | None,
        broadcast: bool = False,
        *,
        result: bool = False,
        status: bool = False,
    ) -> str:
        """Post to the current target, in its turn; a DM target learns its D… id from the
        first post."""
        self._turn(progress, POST, progress.target, result=result, status=status)
        ts, channel = self._post_raw(str(progress.target), message, thread, broadcast)
        if channel and channel != progress.target:
            progress.set(target=channel)
        return ts

    def _post_raw(
        self, channel: str, message: Message, thread: str | None, broadcast: bool = False
    ) -> tuple[str, str]:
        """chat.postMessage; (ts, channel id). Plain text if Slack rejects the blocks."""
        kwargs: dict[str, Any] = {"channel": channel, "unfurl_links": False, "unfurl_media": False}
        if thread:
            kwargs["thread_ts"] = thread
            kwargs["reply_broadcast"] = broadcast
        try:
            response = call(
                self.metrics,
                "chat.postMessage",
                self.client.chat_postMessage,
                **kwargs,
                **message.as_kwargs(),
            )
        except CallFailed as exc:
            self._refused(exc, POST, channel)
            if exc.failure.kind not in BLOCKS_REJECTED:
                raise
            # Our blocks should always fit; if Slack disagrees, the plain text still gets there.
            response = call(
                self.metrics,
                "chat.postMessage",
                self.client.chat_postMessage,
                **kwargs,
                text=message.text[:3000],
            )
        return str(response["ts"]), str(response.get("channel") or channel)

    def _refused(self, exc: CallFailed, method: str, channel: str | None) -> None:
        """A 429 empties that call's bucket until its Retry-After, for every process."""
        if self.pacer is not None and exc.failure.kind == "rate_limited":
            self.pacer.refused(method, channel, exc.failure.retry_after or 1.0)


def build_slack_notifier(
    settings: Settings,
    service: JobService,
    memory: PaceMemory,
    metrics: Metrics | None = None,
) -> SlackNotifier:
    """The notifier for the "slack" route, from settings, paced by the shared buckets."""
    client = web_client(settings)
    pacer = Pacer(memory, metrics)
    if metrics is not None:
        metrics.gauge(
            "jobbot_slack_backlog",
            "Slack calls given a turn ahead of now, per rate bucket (the outbox's queue).",
            pacer.backlog,
        )
    store = service.store
    return SlackNotifier(
        client,
        broadcast=settings.reply_broadcast,
        notify_channel=settings.notify_channel,
        metrics=metrics,
        home=HomePublisher(
            client, service, metrics, pacer=pacer, refresh_s=settings.home_refresh_s
        ),
        pacer=pacer,
        files=FileShare(client, lambda job_id: store.read_files(job_id, FileRole.OUT), metrics),
    )


def _retry_upload(exc: CallFailed, tries: int) -> bool:
    """Whether a failed upload is tried again: an outage or a client error, before the
    UPLOAD_TRIES-th try."""
    return (exc.failure.is_outage or exc.failure.kind == "client_error") and tries < UPLOAD_TRIES
