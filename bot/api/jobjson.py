"""A job as the API's JSON shows it: what anyone may see always, and its input and outcome
only to those who may see them (owners and admins); a field the caller may not see is
absent, never null."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.core.models import FileRole, StoredFile
from bot.core.service import JobView


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_json(view: JobView, files: Sequence[StoredFile] = ()) -> dict[str, Any]:
    """The JSON object of one job as its viewer may see it, with its `files` (listed by the
    store) where the viewer may see them."""
    job = view.job
    data: dict[str, Any] = {
        "id": job.id,
        "user_id": job.owner_id,
        "status": job.status.value,
        "name": job.file_name,
        "duration_ms": job.duration_ms,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "rerun_of": job.rerun_of,
    }
    if not view.full or job.is_summary:
        return data
    error = None
    if job.error_type or job.error_message:
        error = {
            "type": job.error_type or "Error",
            "message": job.error_message or "",
            "traceback": job.traceback,
        }
    data.update(
        input=job.input,
        result=job.result,
        stdout=job.stdout,
        stderr=job.stderr,
        stdout_truncated=job.stdout_truncated,
        stderr_truncated=job.stderr_truncated,
        error=error,
        files=[
            {
                "name": f.name,
                "size": f.size,
                "media_type": f.media_type,
                "url": f"/api/jobs/{job.id}/files/{quote(f.name, safe='')}",
            }
            for f in files
            if f.role is FileRole.OUT
        ],
        data_files=[{"name": f.name, "size": f.size} for f in files if f.role is FileRole.IN],
        files_note=job.files_note,
    )
    return data
