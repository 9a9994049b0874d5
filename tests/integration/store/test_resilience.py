"""The store rides over dropped connections and reports a real outage as StoreUnavailable."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from bot.core.models import Identity
from bot.errors import StoreUnavailable
from bot.store import SqlStore, make_engine


@pytest.mark.mariadb
def test_killed_pooled_connections_are_replaced_transparently(
    mariadb_store: SqlStore, mariadb_url: str
) -> None:
    user = mariadb_store.ensure_user(Identity("local", "h", "alice"))
    with mariadb_store.engine.connect() as conn:
        own_ids = {conn.execute(text("SELECT CONNECTION_ID()")).scalar()}
    admin = create_engine(mariadb_url)
    with admin.connect() as conn:
        database = mariadb_url.rsplit("/", 1)[-1]
        rows = (
            conn.execute(
                text(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> "
                    "CONNECTION_ID()"
                ),
                {"db": database},
            )
            .scalars()
            .all()
        )
        for connection_id in set(rows) | own_ids:
            conn.execute(text(f"KILL {int(connection_id)}"))
    admin.dispose()
    assert mariadb_store.ensure_user(Identity("local", "h", "alice")) == user


def test_an_unreachable_database_is_store_unavailable() -> None:
    store = SqlStore(make_engine("mysql+pymysql://root@127.0.0.1:1/nowhere"))
    with pytest.raises(StoreUnavailable):
        store.ping()
