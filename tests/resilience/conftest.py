"""Fixtures of the resilience suite: a private MariaDB server the tests may stop and crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.private_mariadb import PrivateMariaDB


@pytest.fixture
def private_db() -> Iterator[PrivateMariaDB]:
    """A running private MariaDB with an empty `jobbot` database."""
    server = PrivateMariaDB()
    try:
        server.start()
    except Exception as exc:
        server.destroy()
        pytest.fail(f"could not start a private MariaDB server: {exc}", pytrace=False)
    yield server
    server.destroy()
