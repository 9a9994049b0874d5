"""The job store: SQLAlchemy Core on MySQL/MariaDB or SQLite; the only package that speaks SQL."""

from bot.store.db import make_engine
from bot.store.sql_store import SqlStore

__all__ = ["SqlStore", "make_engine"]
