"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store import SqlStore, make_engine
from tests.conftest import clean_mariadb
from tests.e2e.people import Person


@pytest.fixture(scope="module")
def store(_mariadb_schema: str) -> Iterator[SqlStore]:
    """The test module's own view of its server's database, emptied for the module."""
    clean_mariadb(_mariadb_schema)
    view = SqlStore(make_engine(_mariadb_schema))
    yield view
    view.close()


@pytest.fixture(scope="module")
def people() -> list[Person]:
    """Everyone the module's tests made (their promised job counts are checked at its end)."""
    return []
