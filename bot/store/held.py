"""The intake journal in SQL: hold a request, take up the ones whose handler died, drop."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, select, update

from bot.core.models import HeldRequest
from bot.store import statements
from bot.store.tables import held_requests
from bot.store.types import utcnow

# A mark, unique to one hold_request call, kept in the payload: an insert whose answer was lost
# and that is run again finds its own row, and that call's request is still its to handle.
MARK = "_hold"


def mark(payload: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The payload with one hold's mark."""
    return {**payload, MARK: token}


def hold(conn: Connection, key: str, kind: str, payload: Mapping[str, Any], lease_s: float) -> bool:
    """Insert unless the key is held already; True also when it is held by this very hold (its
    mark: the first insert went through and its answer was lost)."""
    values = {
        "request_key": key[:191],
        "kind": kind,
        "payload": json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":")),
        "b_lease_s": float(lease_s),
    }
    hold_it = statements.hold_request(conn.dialect.name == "sqlite")
    if conn.execute(hold_it, values).rowcount == 1:
        return True
    if MARK not in payload:
        return False
    held = conn.execute(
        select(held_requests.c.payload).where(held_requests.c.request_key == values["request_key"])
    ).scalar()
    return held is not None and json.loads(held).get(MARK) == payload[MARK]


def claim(conn: Connection, limit: int, lease_s: float) -> list[HeldRequest]:
    """Lease the oldest held requests whose lease ran out."""
    q = (
        select(held_requests)
        .where(held_requests.c.lease_expires_at < utcnow())
        .order_by(held_requests.c.lease_expires_at, held_requests.c.id)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        q = q.with_for_update(skip_locked=True)
    rows = list(conn.execute(q).mappings())
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    conn.execute(
        update(held_requests)
        .where(held_requests.c.id.in_(ids))
        .values(lease_expires_at=utcnow(lease_s), attempts=held_requests.c.attempts + 1)
    )
    return [
        HeldRequest(
            key=row["request_key"],
            kind=row["kind"],
            payload=_unmarked(json.loads(row["payload"])),
            attempts=row["attempts"] + 1,
            created_at=row["created_at"],
        )
        for row in rows
    ]


def _unmarked(payload: dict[str, Any]) -> dict[str, Any]:
    payload.pop(MARK, None)
    return payload


def drop(conn: Connection, key: str) -> None:
    """Delete a handled request."""
    conn.execute(delete(held_requests).where(held_requests.c.request_key == key[:191]))
