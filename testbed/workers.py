"""Start, stop and count real worker processes (`python -m testbed.worker_process`) that share
one queue; executions are counted from the file each process appends a job id to. And the
product's own `python -m bot worker`, as a tracked process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.processes import track

ROOT = Path(__file__).resolve().parents[1]


def start_bot_worker(
    env: dict[str, str], cwd: Path, *, stdout: int | None, stderr: int | None
) -> subprocess.Popen[str]:
    """`python -m bot worker` in `cwd` with exactly `env`, tracked (text streams)."""
    return track(
        subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    )


@contextmanager
def bot_worker(
    env: dict[str, str], cwd: Path, *, stdout: int | None, stderr: int | None
) -> Iterator[subprocess.Popen[str]]:
    """`python -m bot worker` for the block; killed at its end if it still runs, and reaped."""
    process = start_bot_worker(env, cwd, stdout=stdout, stderr=stderr)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def start_workers(
    count: int,
    url: str,
    executions: Path,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> list[subprocess.Popen[str]]:
    """`count` worker processes on the queue at `url`, each ready (its first line read)."""
    environ = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBBOT_WORKERS": "4",
        "JOBBOT_MAX_JOBS_PER_USER": "4",
        "JOBBOT_LOG_LEVEL": "WARNING",
        "JOBBOT_POLL_INTERVAL": "0.1",
        **(env or {}),
    }
    procs = [
        track(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "testbed.worker_process",
                    str(executions),
                    *(extra or []),
                ],
                cwd=ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return procs


def stop_workers(procs: list[subprocess.Popen[str]]) -> list[int]:
    """SIGTERM each process still running, wait for all; their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)  # also closes the pipes
        if proc.returncode not in (0, -9):
            print(f"worker {proc.pid} exited {proc.returncode}:\n{err}")
    return [proc.returncode for proc in procs]


def executions(path: Path) -> Counter[int]:
    """How many times each job id ran, from the executions file."""
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)
