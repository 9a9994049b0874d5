"""Users and their API tokens in SQL: find or create the user of an identity, and keep one
token hash a user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, delete, exists, insert, select, update
from sqlalchemy.engine import RowMapping

from bot.core.models import ApiToken, Identity, User
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


def set_token(
    conn: Connection, user_id: int, token_sha256: str, expires_at: datetime | None
) -> None:
    """Store the user's token hash in place of any earlier one."""
    conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
    conn.execute(
        insert(api_tokens).values(
            user_id=user_id, token_sha256=token_sha256, created_at=utcnow(), expires_at=expires_at
        )
    )


def drop_token(conn: Connection, user_id: int) -> bool:
    """Forget the user's token; False if there was none."""
    return conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id)).rowcount > 0


_TOKENS = select(
    users,
    api_tokens.c.created_at.label("token_created_at"),
    api_tokens.c.expires_at,
    api_tokens.c.last_used_at,
).select_from(api_tokens.join(users, api_tokens.c.user_id == users.c.id))


def _to_token(row: RowMapping) -> ApiToken:
    return ApiToken(
        user=to_user(row),
        created_at=row["token_created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
    )


def token(conn: Connection, token_sha256: str) -> ApiToken | None:
    """The token with this hash, with its user, in one read."""
    row = conn.execute(_TOKENS.where(api_tokens.c.token_sha256 == token_sha256)).mappings().first()
    return None if row is None else _to_token(row)


def tokens(conn: Connection) -> list[ApiToken]:
    """Every user's token, by user id."""
    return [_to_token(row) for row in conn.execute(_TOKENS.order_by(users.c.id)).mappings()]


def touch_token(conn: Connection, token_sha256: str, at: datetime) -> None:
    """Record that the token was used at `at`."""
    conn.execute(
        update(api_tokens).where(api_tokens.c.token_sha256 == token_sha256).values(last_used_at=at)
    )


def token_stands(token_sha256: str) -> ColumnElement[bool]:
    """A condition: the token with this hash exists and has not expired (by the database's
    clock, which every process shares)."""
    return exists().where(
        api_tokens.c.token_sha256 == token_sha256,
        (api_tokens.c.expires_at.is_(None)) | (api_tokens.c.expires_at > utcnow()),
    )
