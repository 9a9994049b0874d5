"""A job's files out shared in its Slack thread: one files_upload_v2 call (a
files.getUploadURLExternal and an upload per file, then one files.completeUploadExternal that
shares them all at once), images with alt text so they show inline.

The notifier's seam is `FileShare.share(job, channel, thread)`; the notifier keeps the
progress (at most once per job) and chooses where the thread is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slack_sdk import WebClient

from bot.core.datafiles import is_image
from bot.core.metrics import Metrics
from bot.core.models import Job, JobFile
from bot.core.units import human_bytes
from bot.slack.budget import POST, UPLOAD
from bot.slack.formatting import escape, file_label
from bot.slack.posting import call

COMMENT_LIMIT = 3000  # characters of the comment that introduces the files


def files_comment(job: Job, shared: Sequence[JobFile], empty: Sequence[str]) -> str:
    """The text above the files: what they are, and which files were left out and why (job
    text, made inert: no mention can fire)."""
    if shared:
        names = ", ".join(f"{file_label(f.name)} ({human_bytes(f.size)})" for f in shared)
        text = f"Files from job #{job.id}: {names}"
    else:
        text = f"Job #{job.id} left no file to share."
    notes = [job.files_note] if job.files_note else []
    notes += [f"left out: {name} (empty)" for name in empty]
    if notes:
        text += "\n:warning: " + escape("; ".join(notes))
    return text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 1] + "…"


class FileShare:
    """Shares a finished job's files out in a conversation."""

    def __init__(
        self,
        client: WebClient,
        read_files: Callable[[int], list[JobFile]],
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.read_files = read_files
        self.metrics = metrics

    def wanted(self, job: Job, files: Sequence[JobFile]) -> bool:
        """Whether there is anything to share or say about the job's files."""
        return bool(files) or bool(job.files_note)

    def to_share(self, job: Job) -> list[JobFile] | None:
        """The job's files, or None when it has none and nothing to say about them (then
        nothing is shared: no call, no turn in Slack's limits)."""
        files = self.read_files(job.id)
        return files if self.wanted(job, files) else None

    @staticmethod
    def method(files: Sequence[JobFile]) -> str:
        """The call sharing these files makes: an upload, or only a post (for a note)."""
        return UPLOAD if any(f.data for f in files) else POST

    def share(
        self,
        job: Job,
        channel: str,
        thread: str | None,
        files: Sequence[JobFile] | None = None,
    ) -> bool:
        """Share the job's files (`files`, read if not given; and the note on those left out)
        in `channel`, under `thread`; False when it has none and nothing to say. Raises
        CallFailed."""
        files = self.read_files(job.id) if files is None else files
        if not self.wanted(job, files):
            return False
        shared = [f for f in files if f.data]  # Slack refuses a length of 0
        empty = [f.name for f in files if not f.data]
        comment = files_comment(job, shared, empty)
        if not shared:
            kwargs = {"channel": channel, "text": comment, "unfurl_links": False}
            if thread:
                kwargs["thread_ts"] = thread
            call(self.metrics, "chat.postMessage", self.client.chat_postMessage, **kwargs)
            return True
        uploads = [
            {
                "content": f.data,
                "filename": f.name,
                "title": f.name,
                **({"alt_txt": f"{f.name} from job #{job.id}"} if is_image(f.name) else {}),
            }
            for f in shared
        ]
        call(
            self.metrics,
            "files.upload",
            self.client.files_upload_v2,
            file_uploads=uploads,
            channel=channel,
            thread_ts=thread,
            initial_comment=comment,
        )
        return True
