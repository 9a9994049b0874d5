"""SlackNotifier: turns a job's outbox events into Slack messages, step by step, recording
each step in the job's origin so a retried delivery never repeats a message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from slack_sdk import WebClient

from bot.app.config import Settings
from bot.core.metrics import Metrics
from bot.core.models import Job, JobStatus, NotificationEvent
from bot.core.service import JobService
from bot.errors import NotifyError, NotifyRetryable
from bot.slack.clients import web_client
from bot.slack.delivery import Progress, Via
from bot.slack.formatting import Message, context, section
from bot.slack.home import HomePublisher
from bot.slack.jobviews import (
    final_message,
    needs_upload,
    output_document,
    output_file_name,
    running_message,
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
    ) -> None:
        self.client = client
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
            if event is NotificationEvent.QUEUED:
                self._with_fallback(origin, progress, lambda: self._status(job, origin, progress))
            elif event is NotificationEvent.STARTED:
                self._with_fallback(origin, progress, lambda: self._started(job, origin, progress))
            else:
                self._with_fallback(origin, progress, lambda: self._finished(job, origin, progress))
                self._extras(job, origin, progress)
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
            if progress.shown is None:
                respond_url(self.metrics, str(origin.response_url), status_message(job))
                progress.set(shown=job.status.value)
            return
        if not progress.status_ts:
            thread = (
                origin.thread_ts
                if origin.kind is Kind.MESSAGE and progress.via is Via.CHANNEL
                else None
            )
            ts = self._post_to(progress, status_message(job), thread)
            progress.set(status_ts=ts, shown=job.status.value)
        elif progress.shown != job.status.value:
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
                if exc.failure.is_outage:
                    raise
                # A deleted or foreign status message is not worth failing the delivery for.
                log.info(
                    "status message not updated: %s", exc.failure.kind, extra={"job_id": job.id}
                )
            progress.set(shown=job.status.value)

    def _thread(self, origin: Origin, progress: Progress) -> str | None:
        if progress.via is Via.CHANNEL and origin.kind is Kind.MESSAGE and origin.thread_ts:
            return origin.thread_ts
        return progress.status_ts

    def _started(self, job: Job, origin: Origin, progress: Progress) -> None:
        self._status(job, origin, progress)
        if (
            job.status is JobStatus.RUNNING
            and progress.via is not Via.RESPONSE_URL
            and not progress.get("started_ts")
        ):
            ts = self._post_to(progress, running_message(job), self._thread(origin, progress))
            progress.set(started_ts=ts)

    def _finished(self, job: Job, origin: Origin, progress: Progress) -> None:
        if progress.get("final") is None:
            if progress.via is Via.RESPONSE_URL:
                note = "in your DM with jobbot"
                respond_url(self.metrics, str(origin.response_url), final_message(job, note))
                progress.set(final="response_url")
            else:
                message = final_message(job, "attached below")
                ts = self._post_to(
                    progress, message, self._thread(origin, progress), self.broadcast
                )
                progress.set(final=ts)
        self._status(job, origin, progress)

    def _extras(self, job: Job, origin: Origin, progress: Progress) -> None:
        """The output file, the notify-channel summary and the Home tab; each optional."""
        if needs_upload(job) and progress.get("upload") is None:
            self._upload(job, origin, progress)
        if self.notify_channel and progress.get("summary") is None:
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
        tries = int(progress.get("upload_tries") or 0) + 1
        progress.set(upload_tries=tries)
        channel = str(progress.target)
        thread = self._thread(origin, progress)
        if progress.via is Via.RESPONSE_URL:
            note = Message(
                f"Full output of job #{job.id}", [context(f"Full output of job #{job.id}:")]
            )
            thread, channel = self._post_raw(origin.user, note, None)
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
            retryable = exc.failure.is_outage or exc.failure.kind == "client_error"
            if retryable and tries < UPLOAD_TRIES:
                raise
            log.warning("output not uploaded: %s", exc.failure.kind, extra={"job_id": job.id})
            progress.set(upload="failed")
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

    def _post_to(
        self, progress: Progress, message: Message, thread: str | None, broadcast: bool = False
    ) -> str:
        """Post to the current target; a DM target learns its D… id from the first post."""
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


def build_slack_notifier(
    settings: Settings, service: JobService, metrics: Metrics | None = None
) -> SlackNotifier:
    """The notifier for the "slack" route, from settings."""
    client = web_client(settings)
    return SlackNotifier(
        client,
        broadcast=settings.reply_broadcast,
        notify_channel=settings.notify_channel,
        metrics=metrics,
        home=HomePublisher(client, service, metrics),
    )
