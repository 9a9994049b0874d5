"""JobService: validation before storage, ownership rules, idempotency, outages."""

from __future__ import annotations

import pytest

from bot.core.models import Identity, JobStatus, NotificationEvent, Outcome, RunResult
from bot.core.service import JobService, Limits
from bot.errors import (
    Forbidden,
    InvalidFile,
    InvalidInput,
    JobNotFound,
    NotCancellable,
    StoreUnavailable,
    UserError,
)
from tests.support.fakes import FakeClock, InMemoryStore

ALICE = Identity("slack", "T1", "UALICE")
BOB = Identity("slack", "T1", "UBOB")
ADMIN = Identity("slack", "T1", "UADMIN")
CODE = b"def soma(a, b):\n    return a + b\nprint(soma(a, b))\n"


@pytest.fixture
def submitted() -> list[int]:
    return []


@pytest.fixture
def service(memory_store: InMemoryStore, fake_clock: FakeClock, submitted: list[int]) -> JobService:
    return JobService(
        memory_store,
        fake_clock,
        Limits(max_code_bytes=1000, max_input_bytes=100),
        admins=frozenset({"UADMIN"}),
        on_submit=lambda job: submitted.append(job.id),
    )


def test_first_contact_maps_an_identity_to_one_integer_id(service: JobService) -> None:
    first = service.actor(ALICE)
    again = service.actor(ALICE)
    other = service.actor(BOB)
    assert first.user.id == again.user.id
    assert other.user.id != first.user.id
    assert isinstance(first.user.id, int)


def test_admins_are_recognised_by_external_id(service: JobService) -> None:
    assert service.actor(ADMIN).is_admin
    assert not service.actor(ALICE).is_admin


def test_submit_stores_a_waiting_job_and_wakes_workers(
    service: JobService, memory_store: InMemoryStore, submitted: list[int]
) -> None:
    job, created = service.submit(
        service.actor(ALICE),
        "soma.py",
        CODE,
        '{"a": 5, "b": 3}',
        route="r",
        origin={"channel": "C1"},
    )
    assert created
    assert job.status is JobStatus.WAITING
    assert job.input == {"a": 5, "b": 3}
    assert job.code == CODE.decode()
    assert job.origin == {"channel": "C1"}
    assert submitted == [job.id]
    assert memory_store.notification_events(job.id) == [(NotificationEvent.QUEUED, "pending")]


def test_same_idempotency_key_gives_the_same_job_once(
    service: JobService, submitted: list[int]
) -> None:
    actor = service.actor(ALICE)
    first, created1 = service.submit(actor, "a.py", CODE, "{}", idempotency_key="msg:C1:1.2")
    second, created2 = service.submit(actor, "a.py", CODE, "{}", idempotency_key="msg:C1:1.2")
    assert (created1, created2) == (True, False)
    assert first.id == second.id
    assert submitted == [first.id]


@pytest.mark.parametrize(
    ("name", "data", "text", "error"),
    [
        ("a.py", CODE, "{bad", InvalidInput),
        ("a.py", CODE, "[1]", InvalidInput),
        ("a.py", CODE, '{"k": "' + "x" * 200 + '"}', InvalidInput),
        ("a.txt", CODE, "{}", InvalidFile),
        ("a.py", b"x" * 2000, "{}", InvalidFile),
        ("a.py", b"\xff\xfe", "{}", InvalidFile),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    service: JobService,
    memory_store: InMemoryStore,
    name: str,
    data: bytes,
    text: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        service.submit(service.actor(ALICE), name, data, text)
    assert memory_store.list_all(10) == []


def test_owner_sees_everything_others_only_existence(service: JobService) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, '{"a": 1, "b": 2}')
    assert service.view(service.actor(ALICE), job.id).full
    assert not service.view(service.actor(BOB), job.id).full
    assert service.view(service.actor(ADMIN), job.id).full


def test_unknown_job_is_not_found_with_a_hint(service: JobService) -> None:
    with pytest.raises(JobNotFound) as info:
        service.view(service.actor(ALICE), 999)
    assert "#999" in info.value.message
    assert "/job mine" in info.value.message


def test_only_owner_or_admin_may_cancel(service: JobService) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, "{}")
    with pytest.raises(Forbidden):
        service.cancel(service.actor(BOB), job.id)
    assert service.cancel(service.actor(ADMIN), job.id).status is JobStatus.CANCELLED


def test_cancelling_a_running_job_asks_for_its_stop(
    memory_store: InMemoryStore, fake_clock: FakeClock
) -> None:
    stops: list[int] = []
    service = JobService(
        memory_store,
        fake_clock,
        Limits(max_code_bytes=1000, max_input_bytes=100),
        admins=frozenset({"UADMIN"}),
        on_stop=lambda job: stops.append(job.id),
    )
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, "{}")
    memory_store.claim("w", 1, 30, 3)
    with pytest.raises(Forbidden):
        service.cancel(service.actor(BOB), job.id)
    stopping = service.cancel(service.actor(ADMIN), job.id)
    assert stopping.status is JobStatus.RUNNING and stopping.stop_requested_at is not None
    assert stops == [job.id]
    assert memory_store.stop_requests([job.id]) == {job.id}


def test_cancelling_a_finished_job_is_refused(
    service: JobService, memory_store: InMemoryStore
) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, "{}")
    (claim,) = memory_store.claim("w", 1, 30, 3)
    memory_store.finish(job.id, claim.token, RunResult(Outcome.OK, 1, executor="fake"))
    with pytest.raises(NotCancellable) as info:
        service.cancel(service.actor(ALICE), job.id)
    assert "already finished (done)" in info.value.message


def test_rerun_copies_code_and_input_into_a_new_job(service: JobService) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, '{"a": 1, "b": 2}')
    again, created = service.rerun(service.actor(ALICE), job.id)
    assert created
    assert again.id != job.id
    assert again.rerun_of == job.id
    assert (again.code, again.input_json) == (job.code, job.input_json)


def test_rerun_of_someone_elses_job_is_forbidden_but_admins_may(service: JobService) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", CODE, "{}")
    with pytest.raises(Forbidden):
        service.rerun(service.actor(BOB), job.id)
    again, _ = service.rerun(service.actor(ADMIN), job.id)
    assert again.owner_id == service.actor(ADMIN).user.id


def test_mine_lists_only_mine_newest_first(service: JobService) -> None:
    alice, bob = service.actor(ALICE), service.actor(BOB)
    a1, _ = service.submit(alice, "a.py", CODE, "{}")
    service.submit(bob, "b.py", CODE, "{}")
    a2, _ = service.submit(alice, "c.py", CODE, "{}")
    assert [j.id for j in service.mine(alice, 10)] == [a2.id, a1.id]


def test_list_pages_walk_back_through_history(service: JobService) -> None:
    actor = service.actor(ALICE)
    ids = [service.submit(actor, "a.py", CODE, "{}")[0].id for _ in range(45)]
    page1, page2, page3 = (service.list_page(p) for p in (1, 2, 3))
    assert [j.id for j in page1] == ids[::-1][:20]
    assert [j.id for j in page2] == ids[::-1][20:40]
    assert [j.id for j in page3] == ids[::-1][40:]
    assert service.list_page(4) == []


def test_a_database_outage_reaches_the_caller_as_the_store_raised_it_not_as_a_user_error(
    service: JobService, memory_store: InMemoryStore
) -> None:
    actor = service.actor(ALICE)
    memory_store.down = True
    with pytest.raises(StoreUnavailable) as info:
        service.submit(actor, "a.py", CODE, "{}")
    assert not isinstance(info.value, UserError)
    memory_store.down = False
    assert memory_store.list_all(10) == []
