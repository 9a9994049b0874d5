"""Fixtures for the sandbox tests: one shared LocalExecutor, planted secrets, job helpers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv

REPO = Path(__file__).resolve().parents[3]
IS_ROOT = os.geteuid() == 0
# where the shared executor's uids start (another executor on the host, say a concurrent
# test run, may push it to the next free block: tests use `executor.uids`)
UID_BASE = 61100
SLOTS = 4
MAX_PROCS = 32
TMP_BYTES = 64 * MIB
MAX_FILE_BYTES = 16 * MIB
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-planted-secret-1",
    "SLACK_SIGNING_SECRET": "planted-secret-2",
    "DATABASE_URL": "mysql+pymysql://root:planted-secret-3@127.0.0.1/jobbot",
    "AWS_SECRET_ACCESS_KEY": "planted-secret-4",
    "JOBBOT_ADMIN_TOKEN": "planted-secret-5",
}


PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # each job has its own tmpfs there


def under_private_tmp(path: Path) -> bool:
    """Whether a job sees its own empty tmpfs instead of this host path (a checkout in /tmp)."""
    real = os.path.realpath(path)
    return any(real == top or real.startswith(top + "/") for top in PRIVATE_TMP)


def tmp_entries_of_a_checkout() -> set[str]:
    """What a job sees in its private /tmp besides its own files: with the checkout (and so
    the job environment) under /tmp, the directory down to that environment, bound back."""
    real = os.path.realpath(REPO)
    if not real.startswith("/tmp/"):
        return set()
    return {real.split("/")[2]}


def harness_request(
    code: str, input_: dict[str, Any] | None = None, **changes: Any
) -> dict[str, Any]:
    """A v1 request with small defaults (1 MiB output, 256 MB, 10 s)."""
    request = {
        "v": 1,
        "job_id": 7,
        "file_name": "job.py",
        "code": code,
        "input_json": json.dumps(input_ or {}),
        "timeout_s": 10.0,
        "memory_mb": 256,
        "max_output_bytes": MIB,
    }
    request.update(changes)
    return request


def owned_by(directory: str, uids: Iterable[int]) -> list[str]:
    """Entries of `directory` that belong to one of `uids` (a job's, had it escaped there)."""
    uids = set(uids)
    found = []
    for entry in os.scandir(directory):
        try:
            if entry.stat(follow_symlinks=False).st_uid in uids:
                found.append(entry.name)
        except FileNotFoundError:  # someone else's, removed meanwhile
            continue
    return found


def processes_of(uids: Iterable[int]) -> list[int]:
    """Pids of every process running as one of `uids`."""
    uids = set(uids)
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as fh:
                    for line in fh:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) in uids:
                                found.append(int(name))
                            break
            except OSError:
                continue
    return found


def memory_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(f"{field}:"))


def reset_peak_memory() -> int:
    """Reset this process's peak RSS to its current RSS; that RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return memory_kb("VmRSS")


@pytest.fixture(scope="package")
def secret_env() -> Iterator[dict[str, str]]:
    """The bot's secrets, in this process's environment before any executor starts.

    Package-scoped: other test packages never see them.
    """
    saved = {key: os.environ.get(key) for key in SECRETS}
    os.environ.update(SECRETS)
    yield SECRETS
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="package")
def bot_dir() -> Iterator[Path]:
    """A stand-in for the bot's directory: a readable `.env` and `jobbot.db`, outside /tmp.

    Only the executor's masking protects them: the files are world-readable on purpose.
    (Inside the repository, whose .gitignore already ignores both names.)
    """
    path = Path(tempfile.mkdtemp(prefix=".botdir-", dir=Path(__file__).parent))
    path.chmod(0o755)
    (path / ".env").write_text(f"SLACK_BOT_TOKEN={SECRETS['SLACK_BOT_TOKEN']}\n")
    (path / "jobbot.db").write_bytes(b"SQLite format 3\0" + SECRETS["DATABASE_URL"].encode())
    for child in path.iterdir():
        child.chmod(0o644)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="package")
def executor(secret_env: dict[str, str], bot_dir: Path) -> Iterator[LocalExecutor]:
    """The shared executor, configured like the bot's (bot dir, repository and HOME hidden)."""
    hide = [str(bot_dir), str(REPO), str(Path.home())]
    ex = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=SLOTS,
        uid_base=UID_BASE,
        max_procs=MAX_PROCS,
        max_file_bytes=MAX_FILE_BYTES,
        tmp_bytes=TMP_BYTES,
        hide_paths=hide,
    )
    yield ex
    ex.close()
