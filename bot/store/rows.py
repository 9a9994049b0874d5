"""Conversions between database rows and the core's value objects."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping

from bot.core.models import Identity, Job, Upload, User
from bot.store.tables import jobs, users

# Columns a listing shows; the heavy ones are cut so a page of jobs stays small.
SUMMARY_CHARS = 300


# What a worker needs to run a claimed job; the rest of the row stays in the database.
CLAIM_COLUMNS = frozenset(
    {
        "id",
        "owner_id",
        "status",
        "file_name",
        "code",
        "code_sha256",
        "input_json",
        "created_at",
        "attempts",
        "notify_route",
        "origin",
        "rerun_of",
    }
)


@functools.cache
def job_select(summary: bool = False, only: frozenset[str] | None = None) -> Select[Any]:
    """SELECT jobs joined with their owner's identity; `summary` trims the heavy columns and
    `only` keeps just those job columns (fewer columns: less to decode per statement).
    Built once per variant: constructing a 36-column SELECT costs more than running it."""
    heavy = {"code", "stdout", "stderr", "traceback", "input_json", "result_json", "error_message"}
    cols: list[Any] = []
    for col in jobs.c:
        if only is not None and col.name not in only:
            continue
        if summary and col.name in heavy:
            if col.name in {"result_json", "error_message", "input_json"}:
                cols.append(func.substr(col, 1, SUMMARY_CHARS).label(col.name))
            continue
        cols.append(col)
    cols += [
        users.c.provider.label("owner_provider"),
        users.c.team.label("owner_team"),
        users.c.external_id.label("owner_external_id"),
    ]
    return select(*cols).select_from(jobs.join(users, jobs.c.owner_id == users.c.id))


def to_job(row: RowMapping, summary: bool = False) -> Job:
    """A Job from a `job_select` row; columns left out of the SELECT get their defaults."""
    get = dict(row).get  # a plain dict: RowMapping.get raises and catches on absent keys
    origin_text = get("origin")
    return Job(
        id=row["id"],
        owner_id=row["owner_id"],
        owner=Identity(row["owner_provider"], row["owner_team"], row["owner_external_id"]),
        status=row["status"],
        file_name=row["file_name"],
        code="" if summary else get("code", ""),
        code_sha256=row["code_sha256"],
        input_json=row["input_json"],
        created_at=row["created_at"],
        attempts=row["attempts"],
        result_json=get("result_json"),
        result_kind=get("result_kind"),
        stdout=None if summary else get("stdout"),
        stderr=None if summary else get("stderr"),
        stdout_truncated=bool(get("stdout_truncated", False)),
        stderr_truncated=bool(get("stderr_truncated", False)),
        error_type=get("error_type"),
        error_message=get("error_message"),
        traceback=None if summary else get("traceback"),
        duration_ms=get("duration_ms"),
        executor=get("executor"),
        claim_token=get("claim_token"),
        lease_expires_at=get("lease_expires_at"),
        invoked_at=get("invoked_at"),
        started_at=get("started_at"),
        finished_at=get("finished_at"),
        origin=json.loads(origin_text) if origin_text else {},
        notify_route=get("notify_route"),
        idempotency_key=get("idempotency_key"),
        rerun_of=get("rerun_of"),
        stop_requested_at=get("stop_requested_at"),
        files_note=get("files_note"),
        is_summary=summary,
    )


def to_user(row: RowMapping) -> User:
    """A User from a users row."""
    return User(
        id=row["id"],
        identity=Identity(row["provider"], row["team"], row["external_id"]),
        display_name=row["display_name"],
    )


def to_upload(row: RowMapping) -> Upload:
    """An Upload from an uploads row."""
    return Upload(
        user_id=row["user_id"],
        channel=row["channel"],
        file_id=row["file_id"],
        file_name=row["file_name"],
        size=row["size"],
        meta=json.loads(row["meta"]),
        created_at=row["created_at"],
    )


def dump_json(value: Mapping[str, Any]) -> str:
    """Compact JSON for opaque columns."""
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
