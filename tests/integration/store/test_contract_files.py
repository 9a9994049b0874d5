"""The store contract of core's JobFiles port: a job's data files stored with it, its files
out with its result (same transaction), read back by role and name, forgotten by age."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from bot.core.models import FileRole, JobFile, NewJob
from bot.core.ports import JobStore
from tests.integration.store.conftest import ALICE, done, new_job

BINARY = bytes(range(256)) * 64  # every byte value, 16 KiB


def submit_with_files(store: JobStore, *files: JobFile, key: str | None = None) -> int:
    owner = store.ensure_user(ALICE)
    job, _ = store.submit(
        NewJob(owner.id, "a.py", "x", "0" * 64, "{}", idempotency_key=key, files=files)
    )
    return job.id


def test_data_files_are_stored_with_the_job_in_order(store: JobStore) -> None:
    job_id = submit_with_files(
        store, JobFile("données.csv", b"a,b\n1,2\n"), JobFile("raw.bin", BINARY)
    )

    assert store.read_files(job_id, FileRole.IN) == [
        JobFile("données.csv", b"a,b\n1,2\n"),
        JobFile("raw.bin", BINARY),
    ]
    listed = store.list_files(job_id)
    assert [(f.role, f.position, f.name, f.size) for f in listed] == [
        (FileRole.IN, 0, "données.csv", 8),
        (FileRole.IN, 1, "raw.bin", len(BINARY)),
    ]
    assert [f.media_type for f in listed] == ["text/csv", "application/octet-stream"]
    assert store.read_files(job_id, FileRole.OUT) == []


def test_a_repeated_submit_stores_the_files_once(store: JobStore) -> None:
    first = submit_with_files(store, JobFile("d.csv", b"1"), key="k1")
    again = submit_with_files(store, JobFile("d.csv", b"1"), key="k1")

    assert again == first
    assert store.read_files(first, FileRole.IN) == [JobFile("d.csv", b"1")]


def test_files_out_and_their_note_are_stored_with_the_result(store: JobStore) -> None:
    job_id = new_job(store)
    (claim,) = store.claim("w", 1, 30, 3)
    result = dataclasses.replace(
        done(),
        files=(JobFile("figure-1.png", b"\x89PNG..."), JobFile("out.csv", b"x\n")),
        files_note="left out: pw (a symbolic link)",
    )

    assert store.finish(job_id, claim.token, result)
    assert store.finish(job_id, claim.token, result)  # a retried commit adds nothing

    job = store.get(job_id)
    assert job is not None and job.files_note == "left out: pw (a symbolic link)"
    assert store.read_files(job_id, FileRole.OUT) == list(result.files)
    assert [f.media_type for f in store.list_files(job_id, FileRole.OUT)] == [
        "image/png",
        "text/csv",
    ]
    assert store.read_file(job_id, FileRole.OUT, "out.csv") == JobFile("out.csv", b"x\n")
    assert store.read_file(job_id, FileRole.IN, "out.csv") is None
    assert store.read_file(job_id, FileRole.OUT, "nope") is None


def test_a_fenced_out_finish_stores_no_files(store: JobStore) -> None:
    job_id = new_job(store)
    store.claim("w", 1, 30, 3)
    result = dataclasses.replace(done(), files=(JobFile("x.txt", b"x"),))

    assert not store.finish(job_id, "not-the-token", result)
    assert store.list_files(job_id) == []


def test_forget_files_deletes_only_files_stored_before_the_cut(store: JobStore) -> None:
    old = submit_with_files(store, JobFile("old.csv", b"1"))
    (stored,) = store.list_files(old)

    assert store.forget_files(stored.created_at - timedelta(seconds=1)) == 0
    assert store.forget_files(stored.created_at + timedelta(seconds=1)) == 1
    assert store.list_files(old) == []
    assert store.get(old) is not None  # the job itself stays
