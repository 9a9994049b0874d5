"""Turns what the supervisor observed into a protocol response: outcome, result, messages."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from . import protocol
from .inside.runner import Record
from .protocol import Request
from .supervisor import Observation


def seconds(value: float) -> str:
    """10.0 -> "10", 2.5 -> "2.5"."""
    return f"{value:g}"


def signal_name(signum: int) -> str:
    """SIGKILL for 9; "signal 77" for numbers without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def out_of_memory(request: Request) -> str:
    """The message for a job that hit its memory limit."""
    return f"the job ran out of memory (limit {request.memory_mb} MB)"


def build(
    request: Request, obs: Observation, *, oom: bool = False, timeout_s: float | None = None
) -> dict[str, Any]:
    """The response for one finished run.

    `oom` says the memory cgroup killed something of this job; `timeout_s` is the limit
    actually applied when a caller's deadline cut the request's own limit short.
    """
    status = obs.wait_status
    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    stdout = obs.stdout.text()
    common: dict[str, Any] = {
        "duration_ms": obs.duration_ms,
        "stdout": stdout,
        "stderr": obs.stderr.text(),
        "stdout_truncated": obs.stdout.truncated,
        "stderr_truncated": obs.stderr.truncated,
        "exit_code": exit_code,
        "signal": signum,
    }
    limit = request.timeout_s if timeout_s is None else timeout_s
    if obs.stopped:
        message = "the job was stopped while it ran (what it printed until then is kept)"
        return protocol.response(
            "cancelled", error_type="Cancelled", error_message=message, **common
        )
    if obs.timed_out:
        message = f"the job ran longer than {seconds(limit)} s and was stopped"
        return protocol.response("timeout", error_type="Timeout", error_message=message, **common)
    if signum == signal.SIGXCPU:
        message = f"the job used more than {seconds(limit)} s of CPU time and was stopped"
        return protocol.response("timeout", error_type="Timeout", error_message=message, **common)
    record = None if obs.record.truncated else Record.decode(obs.record.data)
    if record is not None and record.notes:
        common["files_note"] = "; ".join(record.notes)
    if oom and signum == signal.SIGKILL:
        message = out_of_memory(request)
        return protocol.response(
            "memory", error_type="MemoryError", error_message=message, **common
        )
    if record is None:
        if signum is not None:
            message = f"the job was killed by {signal_name(signum)} (signal {signum})"
        else:
            message = f"the job exited with code {exit_code} without reporting a result"
        return protocol.response("crashed", error_type="Crashed", error_message=message, **common)
    if record.status != "ok":
        return protocol.response(
            "memory" if record.status == "memory" else "error",
            error_type=record.error_type,
            error_message=record.error_message,
            traceback=record.traceback,
            **common,
        )
    if record.result_json is not None:
        return protocol.response(
            "ok", result_json=record.result_json, result_kind="return", **common
        )
    result = json.dumps(stdout.rstrip(), ensure_ascii=False)
    return protocol.response("ok", result_json=result, result_kind="stdout", **common)
