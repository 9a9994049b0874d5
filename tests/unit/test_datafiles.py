"""Data files a user gives a job: safe names the sandbox accepts, the size limit checked
before anything is stored, and a re-run that brings them along."""

from __future__ import annotations

import pytest

from bot.core.datafiles import check_data_files, data_file_name
from bot.core.models import FileRole, Identity, JobFile
from bot.core.service import JobService, Limits
from bot.errors import Forbidden, InvalidFile
from bot.sandbox.files import check_input_name
from tests.support.fakes import FakeClock, InMemoryStore

ALICE = Identity("slack", "T1", "UALICE")
BOB = Identity("slack", "T1", "UBOB")
NASTY = [
    "../../x",
    "..\\..\\evil.csv",
    "/etc/passwd",
    "a\nb.csv",
    "\x1b[31mred.txt",
    "\u202etxt.exe",
    ".hidden",
    "..",
    ".",
    "",
    "out",
    "spaced name.csv",
    "données.csv",
    "a" * 300 + ".csv",
    "x\udcff.csv",
    "zero\u200bwidth.csv",
]


@pytest.mark.parametrize("raw", NASTY)
def test_every_cleaned_name_is_one_the_sandbox_accepts(raw: str) -> None:
    (checked,) = check_data_files([(raw, b"1")], "job.py", 100)

    assert check_input_name(checked.name) is None, checked.name
    assert "/" not in checked.name and "\\" not in checked.name
    assert all(ch.isprintable() for ch in checked.name)
    assert len(checked.name) <= 100
    assert checked.name not in ("out", "job.py")


def test_a_name_given_with_a_path_keeps_its_last_component() -> None:
    assert data_file_name("..\\..\\evil.csv") == "evil.csv"
    assert data_file_name("dir/sub/d.csv") == "d.csv"
    assert data_file_name("/etc/") == "file"


def test_names_that_clash_with_the_code_out_or_each_other_get_a_number() -> None:
    files = [("job.py", b"1"), ("out", b"2"), ("d.csv", b"3"), ("dir/d.csv", b"4")]

    checked = check_data_files(files, "job.py", 100)

    assert [f.name for f in checked] == ["job-2.py", "out-2", "d.csv", "d-2.csv"]


def test_files_over_the_limit_together_are_refused_with_both_sizes() -> None:
    with pytest.raises(InvalidFile) as info:
        check_data_files([("a.csv", b"x" * 600), ("b.csv", b"x" * 600)], "job.py", 1000)

    assert str(info.value) == (
        "The data files (a.csv, b.csv) are 1.2 KB together; the limit is 1000 bytes. "
        "Send smaller files, or fewer of them."
    )


@pytest.fixture
def service(memory_store: InMemoryStore, fake_clock: FakeClock) -> JobService:
    return JobService(memory_store, fake_clock, Limits(1000, 100, max_files_in_bytes=1000))


def test_a_submit_over_the_file_limit_stores_nothing(
    service: JobService, memory_store: InMemoryStore
) -> None:
    with pytest.raises(InvalidFile):
        service.submit(
            service.actor(ALICE), "a.py", b"print(1)", None, files=[("big", b"x" * 1001)]
        )

    assert memory_store.list_all(10) == []


def test_data_files_are_stored_with_the_job_and_follow_a_rerun(
    service: JobService, memory_store: InMemoryStore
) -> None:
    alice = service.actor(ALICE)
    job, _ = service.submit(alice, "a.py", b"print(1)", None, files=[("../d.csv", b"1,2\n")])

    again, _ = service.rerun(alice, job.id)

    for job_id in (job.id, again.id):
        assert memory_store.read_files(job_id, FileRole.IN) == [JobFile("d.csv", b"1,2\n")]


def test_only_the_owner_or_an_admin_fetches_a_jobs_files(service: JobService) -> None:
    job, _ = service.submit(service.actor(ALICE), "a.py", b"print(1)", None)

    assert service.files(service.actor(ALICE), job.id) == []
    with pytest.raises(Forbidden):
        service.files(service.actor(BOB), job.id)
