"""The store contract's fixtures: every contract test runs against MariaDB, SQLite and the
in-memory fake alike, and helpers shared by the contract suites (one per port)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.app.wiring.parts import Store
from bot.core.models import Identity, NewJob, Outcome, ResultKind, RunResult
from bot.core.ports import JobStore
from tests.support.fakes import FakeClock, InMemoryStore

ALICE = Identity("slack", "T1", "UALICE")
BOB = Identity("slack", "T1", "UBOB")


@pytest.fixture(params=["mariadb", "sqlite", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which store the contract runs against."""
    return str(request.param)


@pytest.fixture
def store(kind: str, request: pytest.FixtureRequest) -> Store:
    """A migrated, empty store of that kind: core's ports and the Slack adapter's alike."""
    fixture = {"mariadb": "mariadb_store", "sqlite": "sqlite_store", "memory": "memory_store"}
    return request.getfixturevalue(fixture[kind])  # type: ignore[no-any-return]


def expire(store: object) -> Callable[[], None]:
    """A way to let leases of `lease_s=0.05` run out: real time for SQL, the fake clock else."""
    if isinstance(store, InMemoryStore):
        clock = store.clock
        assert isinstance(clock, FakeClock)
        return lambda: clock.advance(1)
    return lambda: None


def new_job(
    store: JobStore,
    who: Identity = ALICE,
    key: str | None = None,
    route: str | None = "r",
    code: str = "print(1)",
) -> int:
    owner = store.ensure_user(who)
    job, _ = store.submit(
        NewJob(
            owner.id,
            "a.py",
            code,
            "0" * 64,
            '{"a":1}',
            notify_route=route,
            idempotency_key=key,
            origin={"channel": "C1"},
        )
    )
    return job.id


def done(text: str = "1") -> RunResult:
    return RunResult(
        outcome=Outcome.OK,
        duration_ms=5,
        result_json=f'"{text}"',
        result_kind=ResultKind.STDOUT,
        stdout=text + "\n",
        executor="local",
    )
