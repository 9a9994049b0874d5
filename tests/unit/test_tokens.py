"""API tokens in the job service: shown once and stored only as a hash, one per user, the
token's user acting with their own rights; and waiting for a job to become final."""

from __future__ import annotations

import threading

import pytest

from bot.core.models import Identity, JobStatus, Outcome, RunResult
from bot.core.service import JobService, Limits
from bot.core.tokens import token_hash, well_formed
from bot.errors import UserNotFound
from tests.support.fakes import FakeClock, InMemoryStore

ALICE = Identity("slack", "T1", "UALICE")
ADMIN = Identity("local", "h", "root")


@pytest.fixture
def service(memory_store: InMemoryStore, fake_clock: FakeClock) -> JobService:
    return JobService(memory_store, fake_clock, Limits(1000, 100), admins=frozenset({"root"}))


def test_a_minted_token_is_kept_only_as_its_hash(
    service: JobService, memory_store: InMemoryStore
) -> None:
    alice = service.actor(ALICE)
    token = service.tokens.mint(alice)
    assert well_formed(token) and token.startswith("jobbot_")
    assert memory_store._tokens == {alice.user.id: token_hash(token)}
    assert token not in repr(memory_store.__dict__)


def test_a_token_acts_as_its_user_with_their_rights(service: JobService) -> None:
    alice, admin = service.actor(ALICE), service.actor(ADMIN)
    assert service.tokens.authenticate(service.tokens.mint(alice)) == alice
    as_admin = service.tokens.authenticate(service.tokens.mint(admin))
    assert as_admin is not None and as_admin.is_admin


def test_a_new_token_ends_the_old_one_and_revoking_ends_both(service: JobService) -> None:
    alice = service.actor(ALICE)
    first = service.tokens.mint(alice)
    second = service.tokens.mint(alice)
    assert first != second
    assert service.tokens.authenticate(first) is None
    assert service.tokens.authenticate(second) == alice
    assert service.tokens.revoke(alice) is True
    assert service.tokens.authenticate(second) is None
    assert service.tokens.revoke(alice) is False


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "jobbot_",
        "Bearer x",
        "jobbot_" + "a" * 42,
        "jobbot_" + "a" * 44,
        "x" * 50,
        "jobbot_" + "é" * 43,
    ],
)
def test_anything_but_a_minted_token_is_nobody(service: JobService, presented: str) -> None:
    service.tokens.mint(service.actor(ALICE))
    assert service.tokens.authenticate(presented) is None


def test_a_user_looked_up_by_an_unknown_id_is_a_clear_error(service: JobService) -> None:
    with pytest.raises(UserNotFound, match="There is no user #999"):
        service.jobs_of(999, 10)


def test_a_wait_ends_when_the_job_settles_here(
    service: JobService, memory_store: InMemoryStore
) -> None:
    alice = service.actor(ALICE)
    job, _ = service.submit(alice, "a.py", b"print(1)", "{}")
    [claim] = memory_store.claim("w", 1, 60, 3)
    memory_store.mark_invoked(job.id, claim.token, 60)
    waiting = threading.Event()

    def finish() -> None:
        waiting.wait()
        memory_store.finish(job.id, claim.token, RunResult(Outcome.OK, 3, '"1"'))
        service.settled()

    finisher = threading.Thread(target=finish)
    finisher.start()
    seen: list[JobStatus] = []
    # wait and poll far longer than the join below: only the wake-up ends the wait in time
    waiter = threading.Thread(
        target=lambda: seen.append(service.wait(alice, job.id, 600, poll_s=600)[0].job.status),
        daemon=True,
    )
    waiter.start()
    waiting.set()
    finisher.join()
    waiter.join(timeout=30)
    assert seen == [JobStatus.DONE]


def test_a_wait_gives_the_job_as_it_is_when_time_runs_out(service: JobService) -> None:
    alice = service.actor(ALICE)
    job, _ = service.submit(alice, "a.py", b"print(1)", "{}")
    view, files = service.wait(alice, job.id, timeout_s=0.05, poll_s=0.01)
    assert view.job.status is JobStatus.WAITING and files == []


def test_a_token_s_user_is_remembered_so_a_request_costs_no_lookup(
    service: JobService, memory_store: InMemoryStore
) -> None:
    alice = service.actor(ALICE)
    token = service.tokens.mint(alice)
    assert service.tokens.authenticate(token) == alice
    memory_store.down = True  # any lookup now fails: the second request needs none
    assert service.tokens.authenticate(token) == alice


def test_a_token_replaced_or_revoked_here_is_forgotten_at_once(service: JobService) -> None:
    alice = service.actor(ALICE)
    first = service.tokens.mint(alice)
    assert service.tokens.authenticate(first) == alice  # remembered
    second = service.tokens.mint(alice)
    assert service.tokens.authenticate(first) is None
    assert service.tokens.authenticate(second) == alice  # remembered too
    service.tokens.revoke(alice)
    assert service.tokens.authenticate(second) is None


def test_a_job_and_its_files_are_read_together_for_its_owner_only(
    service: JobService, memory_store: InMemoryStore
) -> None:
    alice, bob = service.actor(ALICE), service.actor(Identity("slack", "T1", "UBOB"))
    job, _ = service.submit(alice, "a.py", b"print(1)", "{}", files=[("d.csv", b"x,y\n")])
    view, files = service.view_with_files(alice, job.id)
    assert view.full and [f.name for f in files] == ["d.csv"]
    view, files = service.view_with_files(bob, job.id)
    assert not view.full and files == []
