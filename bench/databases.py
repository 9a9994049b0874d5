"""The benchmarks' databases on the bench MariaDB server (JOBBOT_BENCH_MYSQL_URL): each made
fresh for a run and dropped after it, so none is left behind."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BASE = os.environ.get("JOBBOT_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def fresh_database(name: str) -> str:
    """Drop and create the database `name` on the bench server; its URL."""
    server = create_engine(BASE)
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    server.dispose()
    return make_url(BASE).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    """Drop the database `name` if it is there."""
    server = create_engine(BASE)
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    server.dispose()
