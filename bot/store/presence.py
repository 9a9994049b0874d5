"""Worker pools alive, in SQL: each pool's last sign of life, and how many were seen lately."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, update

from bot.store.queue import insert_ignore
from bot.store.tables import workers
from bot.store.types import utcnow

FORGOTTEN_AFTER_S = 86400  # a pool silent this long is deleted when another one is first seen


def seen(conn: Connection, worker_id: str) -> None:
    """Record that a worker pool is alive now (forgetting pools silent for a day)."""
    found = conn.execute(
        update(workers).where(workers.c.worker_id == worker_id).values(seen_at=utcnow())
    ).rowcount
    if not found:
        conn.execute(delete(workers).where(workers.c.seen_at < utcnow(-FORGOTTEN_AFTER_S)))
        insert_ignore(conn, workers, {"worker_id": worker_id, "seen_at": utcnow()})


def gone(conn: Connection, worker_id: str) -> None:
    """Forget a worker pool that stopped."""
    conn.execute(delete(workers).where(workers.c.worker_id == worker_id))


def alive(conn: Connection, within_s: float) -> int:
    """How many worker pools were seen in the last `within_s` seconds."""
    stmt = select(func.count()).select_from(workers).where(workers.c.seen_at >= utcnow(-within_s))
    return int(conn.execute(stmt).scalar() or 0)
