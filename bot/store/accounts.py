"""Users and their API tokens in SQL: find or create the user of an identity, and keep one
token hash a user."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, delete, insert, select, update

from bot.core.models import Identity, User
from bot.store.queue import insert_ignore
from bot.store.rows import to_user
from bot.store.tables import api_tokens, users
from bot.store.types import utcnow


def _identity_is(identity: Identity) -> ColumnElement[bool]:
    return (
        (users.c.provider == identity.provider)
        & (users.c.team == identity.team)
        & (users.c.external_id == identity.external_id)
    )


def find_user(conn: Connection, identity: Identity) -> User | None:
    """The user of an identity, or None."""
    row = conn.execute(select(users).where(_identity_is(identity))).mappings().first()
    return None if row is None else to_user(row)


def upsert_user(conn: Connection, identity: Identity, display_name: str | None) -> User:
    """Create the user of an identity unless it exists (concurrent first contacts get one
    id), and record its display name when given."""
    insert_ignore(
        conn,
        users,
        {
            "provider": identity.provider,
            "team": identity.team,
            "external_id": identity.external_id,
            "display_name": display_name,
            "created_at": utcnow(),
            "last_seen_at": utcnow(),
        },
    )
    if display_name is not None:
        conn.execute(
            update(users)
            .where(_identity_is(identity))
            .values(display_name=display_name, last_seen_at=utcnow())
        )
    user = find_user(conn, identity)
    if user is None:  # pragma: no cover - the unique key guarantees a row
        raise LookupError(f"user {identity} missing after insert")
    return user


def get_user(conn: Connection, user_id: int) -> User | None:
    """A user by id."""
    row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    return None if row is None else to_user(row)


def set_token(conn: Connection, user_id: int, token_sha256: str) -> None:
    """Store the user's token hash in place of any earlier one."""
    conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
    conn.execute(
        insert(api_tokens).values(user_id=user_id, token_sha256=token_sha256, created_at=utcnow())
    )


def drop_token(conn: Connection, user_id: int) -> bool:
    """Forget the user's token; False if there was none."""
    return conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id)).rowcount > 0


def token_user(conn: Connection, token_sha256: str) -> User | None:
    """The user whose token has this hash."""
    stmt = select(users).select_from(api_tokens.join(users, api_tokens.c.user_id == users.c.id))
    row = conn.execute(stmt.where(api_tokens.c.token_sha256 == token_sha256)).mappings().first()
    return None if row is None else to_user(row)
