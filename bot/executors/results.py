"""Protocol-v1 sandbox responses as RunResults: the one mapping every executor shares."""

from __future__ import annotations

from typing import Any

from bot.core.models import JobFile, Outcome, ResultKind, RunResult
from bot.sandbox.protocol import response_files


def result_from_response(response: dict[str, Any], executor: str) -> RunResult:
    """A checked protocol-v1 response as a RunResult."""
    kind = response["result_kind"]
    return RunResult(
        outcome=Outcome(response["outcome"]),
        duration_ms=response["duration_ms"],
        result_json=response["result_json"],
        result_kind=ResultKind(kind) if kind is not None else None,
        stdout=response["stdout"],
        stderr=response["stderr"],
        stdout_truncated=response["stdout_truncated"],
        stderr_truncated=response["stderr_truncated"],
        error_type=response["error_type"],
        error_message=response["error_message"],
        traceback=response["traceback"],
        executor=executor,
        files=tuple(JobFile(name, data) for name, data in response_files(response)),
        files_note=response["files_note"],
    )
