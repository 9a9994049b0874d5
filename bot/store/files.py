"""A job's files in SQL: written in the transaction that stores the job (data files) or its
result (files out), read by name or role, deleted by the retention sweep."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, insert, select

from bot.core.datafiles import media_type
from bot.core.models import FileRole, Job, JobFile, StoredFile
from bot.store.rows import job_select, to_job
from bot.store.tables import job_files, jobs


def add_files(conn: Connection, job_id: int, role: FileRole, files: Sequence[JobFile]) -> None:
    """Store a job's files of one role, in the caller's transaction."""
    if not files:
        return
    now = datetime.now(UTC)
    conn.execute(
        insert(job_files),
        [
            {
                "job_id": job_id,
                "role": role,
                "position": position,
                "name": f.name,
                "media_type": media_type(f.name),
                "size": len(f.data),
                "data": f.data,
                "created_at": now,
            }
            for position, f in enumerate(files)
        ],
    )


_LISTED = (
    job_files.c.job_id,
    job_files.c.role,
    job_files.c.position,
    job_files.c.name,
    job_files.c.size,
    job_files.c.media_type,
    job_files.c.created_at,
)


def list_files(conn: Connection, job_id: int, role: FileRole | None) -> list[StoredFile]:
    """A job's files without their content, data files first, each role in order."""
    query = select(*_LISTED).where(job_files.c.job_id == job_id)
    if role is not None:
        query = query.where(job_files.c.role == role)
    rows = conn.execute(query.order_by(job_files.c.role, job_files.c.position)).all()
    return [StoredFile(*row) for row in rows]


@functools.cache
def _job_and_file_count() -> Select[Any]:
    """A job's row with how many files it has (an index range of the files' primary key), the
    job's id as `b_id`: built once (every `/job status` and API read of a job runs it)."""
    count = select(func.count()).where(job_files.c.job_id == jobs.c.id).scalar_subquery()
    return job_select().add_columns(count.label("file_count")).where(jobs.c.id == bindparam("b_id"))


def job_with_files(conn: Connection, job_id: int) -> tuple[Job, list[StoredFile]] | None:
    """A full job row and its files without their content: one statement for a job that has
    none (most), a second only for one that has some."""
    row = conn.execute(_job_and_file_count(), {"b_id": job_id}).mappings().first()
    if row is None:
        return None
    return to_job(row), list_files(conn, job_id, None) if row["file_count"] else []


def read_files(conn: Connection, job_id: int, role: FileRole) -> list[JobFile]:
    """A job's files of one role with their content, in order."""
    rows = conn.execute(
        select(job_files.c.name, job_files.c.data)
        .where(job_files.c.job_id == job_id, job_files.c.role == role)
        .order_by(job_files.c.position)
    ).all()
    return [JobFile(name, bytes(data)) for name, data in rows]


def read_file(conn: Connection, job_id: int, role: FileRole, name: str) -> JobFile | None:
    """One file of a job by name."""
    row = conn.execute(
        select(job_files.c.name, job_files.c.data).where(
            job_files.c.job_id == job_id, job_files.c.role == role, job_files.c.name == name
        )
    ).first()
    return None if row is None else JobFile(row[0], bytes(row[1]))


def forget_files(conn: Connection, before: datetime, limit: int) -> int:
    """Delete the files stored before `before`, the jobs of at most `limit` files at a time."""
    ids = conn.execute(
        select(job_files.c.job_id).where(job_files.c.created_at < before).limit(limit)
    ).scalars()
    chosen = sorted(set(ids))
    if not chosen:
        return 0
    result = conn.execute(
        delete(job_files).where(job_files.c.job_id.in_(chosen), job_files.c.created_at < before)
    )
    return int(result.rowcount)
