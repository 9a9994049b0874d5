"""Rate buckets in SQL, shared by every process: take a call's turn in one or more buckets,
or mark a bucket empty after a refusal. The arithmetic is bot/core/pacing.py."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, TextClause, case, delete, select, text, update

from bot.core import pacing
from bot.core.pacing import Rate
from bot.store.queue import insert_ignore
from bot.store.tables import pace
from bot.store.types import utcnow

NOW_SLACK_S = 0.002  # a turn this close to now is now


def _locked(conn: Connection, keys: Sequence[str]) -> dict[str, float]:
    """The buckets' arrival times, their rows locked (created first where missing), in key
    order so that two callers never wait on each other in a circle."""
    ordered = sorted(set(keys))

    def read() -> dict[str, float]:
        q = select(pace.c.bucket, pace.c.tat).where(pace.c.bucket.in_(ordered))
        if conn.dialect.name != "sqlite":
            q = q.with_for_update()
        return {row[0]: float(row[1]) for row in conn.execute(q)}

    found = read()
    missing = [k for k in ordered if k not in found]
    if not missing:
        return found
    for key in missing:
        insert_ignore(conn, pace, {"bucket": key, "tat": 0.0, "updated_at": utcnow()})
    return read()


def _store(conn: Connection, key: str, tat: float) -> None:
    conn.execute(update(pace).where(pace.c.bucket == key).values(tat=tat, updated_at=utcnow()))


def take(conn: Connection, buckets: Sequence[tuple[str, Rate]], now: float, *, wait: bool) -> float:
    """The time a call through all of `buckets` may go. With `wait`, that turn is taken
    (it may lie in the future: a reservation); without, a turn is taken only if it is now and
    the first bucket (the call's own: its channel's, its method's) is full, so the call takes
    nothing another needs; a later time is only reported."""
    tats = _locked(conn, [key for key, _ in buckets])
    at = max(
        pacing.send_at(tats.get(key), now, rate, full=not wait and i == 0)
        for i, (key, rate) in enumerate(buckets)
    )
    if at - now <= NOW_SLACK_S:
        at = now
    elif not wait:
        return at
    for i, (key, rate) in enumerate(buckets):
        _store(conn, key, pacing.after_send(tats.get(key), at if i == 0 else now, rate))
    return at


def take_now(
    conn: Connection, buckets: Sequence[tuple[str, Rate]], now: float, *, wait: bool
) -> bool:
    """The common case of `take`, on MySQL/MariaDB, in one statement (autocommit: no lock
    read, no COMMIT of its own): the call's turn in every bucket at once, only if it is now
    in each (with `wait` False, only if the first bucket is full), so it never takes a turn
    `take` would not give now; True if taken. False leaves everything to `take` (a turn not
    now, a bucket not yet written, SQLite)."""
    keys = [key for key, _ in buckets]
    if conn.dialect.name == "sqlite" or not keys or len(set(keys)) != len(keys):
        return False
    params: dict[str, Any] = {"now": now, "limit": now + NOW_SLACK_S}
    for i, (key, rate) in enumerate(buckets):
        full = not wait and i == 0
        params[f"k{i}"] = key
        params[f"i{i}"] = rate.interval
        params[f"t{i}"] = 0.0 if full else rate.tolerance
    return conn.execute(_take_now(len(keys)), params).rowcount == len(keys)


@functools.cache
def _take_now(count: int) -> TextClause:
    """UPDATE pace t0 JOIN pace t1 ...: each bucket's row moved on by one turn, all or none."""
    tables = " JOIN ".join(f"pace AS t{i}" for i in range(count))
    sets = ", ".join(
        f"t{i}.tat = GREATEST(t{i}.tat, :now) + :i{i}, t{i}.updated_at = UTC_TIMESTAMP(6)"
        for i in range(count)
    )
    where = " AND ".join(
        f"t{i}.bucket = :k{i} AND t{i}.tat - :t{i} <= :limit" for i in range(count)
    )
    return text(f"UPDATE {tables} SET {sets} WHERE {where}")  # noqa: S608 - no values inlined


def spend_now(
    conn: Connection,
    key: str,
    rate: Rate,
    now: float,
    *,
    only_if: ColumnElement[bool] | None = None,
    turns: int = 1,
) -> bool:
    """Spend `turns` turns of an existing bucket that has them all now, in one statement (no
    lock read first): True if they were spent. With `only_if`, only while that condition
    holds. The common case of `spend`; False leaves everything to it."""
    base = case((pace.c.tat > now, pace.c.tat), else_=now)
    where = [pace.c.bucket == key, base + (turns - 1) * rate.interval <= now + rate.tolerance]
    if only_if is not None:
        where.append(only_if)
    after = base + turns * rate.interval
    stmt = update(pace).where(*where).values(tat=after, updated_at=utcnow())
    return conn.execute(stmt).rowcount == 1


def spend(
    conn: Connection,
    key: str,
    rate: Rate,
    now: float,
    *,
    only_if: ColumnElement[bool] | None = None,
    turns: int = 1,
) -> tuple[int, float] | None:
    """Spend up to `turns` turns of `key` that it has now (its burst not used up): (how many,
    0.0); (0, the seconds until it has one) when it has none, nothing spent. With `only_if`,
    only while that condition holds: None when it does not."""
    if only_if is not None and not conn.execute(select(only_if)).scalar():
        return None
    tat = _locked(conn, [key]).get(key)
    base = now if tat is None else max(tat, now)
    room = now + rate.tolerance - base
    if room < -NOW_SLACK_S:
        return 0, -room
    granted = min(turns, int(max(room, 0.0) / rate.interval + 1e-9) + 1)
    _store(conn, key, base + granted * rate.interval)
    return granted, 0.0


def refused(conn: Connection, key: str, rate: Rate, now: float, retry_after: float) -> None:
    """The service refused a call through this bucket until `now + retry_after`."""
    tats = _locked(conn, [key])
    _store(conn, key, pacing.after_refusal(tats.get(key), now, retry_after, rate))


def arrival_times(conn: Connection, prefix: str, since: float) -> list[tuple[str, float]]:
    """(bucket, tat) of the buckets under `prefix` whose arrival time is after `since`."""
    rows = conn.execute(
        select(pace.c.bucket, pace.c.tat).where(
            pace.c.bucket.startswith(prefix, autoescape=True), pace.c.tat > since
        )
    )
    return [(str(row[0]), float(row[1])) for row in rows]


def forget(conn: Connection, prefix: str, before: float) -> int:
    """Delete the buckets under `prefix` whose arrival time is before `before` (long full
    again: a missing row is a full bucket); how many."""
    result = conn.execute(
        delete(pace).where(pace.c.bucket.startswith(prefix, autoescape=True), pace.c.tat < before)
    )
    return int(result.rowcount or 0)
