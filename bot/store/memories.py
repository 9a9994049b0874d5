"""The Slack adapter's memories in SQL (bot.slack.memory.SlackMemory): dedupe keys and the
files users shared. The intake journal is bot/store/held.py."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select

from bot.core.models import Upload
from bot.store import statements
from bot.store.rows import to_upload
from bot.store.tables import dedupe_keys, uploads
from bot.store.types import utcnow

KEY_CHARS = 191  # the indexed length of a dedupe key


def first_time(conn: Connection, key: str, claim: str) -> bool:
    """Record a dedupe key with this call's `claim`; True when the row is this call's (new
    now, or written by this same call in a transaction that was run again)."""
    remember = statements.remember_key(conn.dialect.name == "sqlite")
    if conn.execute(remember, {"dedupe_key": key, "claim": claim}).rowcount == 1:
        return True
    mine = select(dedupe_keys.c.claim).where(dedupe_keys.c.dedupe_key == key)
    return conn.execute(mine).scalar() == claim


def new_claim() -> str:
    """A claim for `first_time`, drawn once per call (outside the transaction)."""
    return uuid.uuid4().hex


def forget_keys(conn: Connection, prefix: str, before: datetime) -> int:
    """Delete old dedupe keys with this prefix (a range of the primary key)."""
    stmt = dedupe_keys.delete().where(
        dedupe_keys.c.dedupe_key.startswith(prefix, autoescape=True),
        dedupe_keys.c.created_at < before,
    )
    return int(conn.execute(stmt).rowcount)


def remember_upload(conn: Connection, upload: Upload) -> None:
    """Remember a shared file."""
    values = {
        "user_id": upload.user_id,
        "channel": upload.channel,
        "file_id": upload.file_id,
        "file_name": upload.file_name,
        "size": upload.size,
        "meta": json.dumps(dict(upload.meta), sort_keys=True),
        "created_at": utcnow(),
    }
    conn.execute(insert(uploads).values(**values))


@functools.cache
def _latest_upload() -> Select[Any]:
    """The newest upload of `b_user` in `b_channel` since `b_since`: built once (every
    `/job run` without a file runs it)."""
    return (
        select(uploads)
        .where(
            uploads.c.user_id == bindparam("b_user"),
            uploads.c.channel == bindparam("b_channel"),
            uploads.c.created_at >= bindparam("b_since"),
        )
        .order_by(uploads.c.created_at.desc(), uploads.c.id.desc())
        .limit(1)
    )


def latest_upload(conn: Connection, user_id: int, channel: str, since: datetime) -> Upload | None:
    """The newest upload of a user in a conversation since a time."""
    found = conn.execute(
        _latest_upload(), {"b_user": user_id, "b_channel": channel, "b_since": since}
    )
    row = found.mappings().first()
    return None if row is None else to_upload(row)
