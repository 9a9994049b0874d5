"""The Lambda handler's own logic: the job budget, fitting Lambda's response limit, emptying
/tmp, and (in a child process, so its prctl calls stay out of pytest) whole invocations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import protocol
from bot.sandbox.fresh import lambda_handler

REPO = Path(__file__).resolve().parents[3]


class Context:
    """The part of Lambda's context the handler reads."""

    def __init__(self, remaining_ms: float) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> float:
        return self.remaining_ms


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (Context(12_000), 10.5),
        (Context(3_070), 1.5),  # rounded down to 0.1 s
        (Context(200), 0.05),  # never below the harness's minimum
        (None, None),  # outside Lambda: no deadline of the caller's
        (object(), None),
    ],
)
def test_the_budget_is_the_remaining_time_minus_the_margin(context: Any, expected: Any) -> None:
    assert lambda_handler.budget(context) == expected


def test_only_a_lambda_runtime_counts_as_lambda() -> None:
    assert not lambda_handler.in_lambda({})
    assert not lambda_handler.in_lambda({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})
    assert lambda_handler.in_lambda(
        {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "LAMBDA_TASK_ROOT": "/var/task"}
    )


def ok_response(stdout: str = "", **fields: Any) -> dict[str, Any]:
    result = json.dumps(stdout.rstrip(), ensure_ascii=False)
    return protocol.response(
        "ok", result_json=result, result_kind="stdout", stdout=stdout, **fields
    )


def size(response: dict[str, Any]) -> int:
    return len(json.dumps(response, ensure_ascii=False).encode())


def test_a_response_within_the_limit_is_left_alone() -> None:
    response = ok_response("hello\n")

    assert lambda_handler.fit_response(response) is response


def test_output_that_escapes_past_the_limit_is_cut_with_its_stdout_result() -> None:
    response = ok_response("\0" * 100_000, stderr="warn\n")

    fitted = lambda_handler.fit_response(response, limit=200_000)

    assert size(fitted) <= 200_000
    assert fitted["stdout_truncated"] and not fitted["stderr_truncated"]
    assert fitted["stdout"] and response["stdout"].startswith(fitted["stdout"])
    assert fitted["result_json"] == json.dumps(fitted["stdout"].rstrip(), ensure_ascii=False)
    assert fitted["stderr"] == "warn\n"
    protocol.check_response(fitted)


def test_the_largest_stream_is_cut_first() -> None:
    response = ok_response("out\n", stderr="e" * 300_000)

    fitted = lambda_handler.fit_response(response, limit=100_000)

    assert fitted["stdout"] == "out\n" and not fitted["stdout_truncated"]
    assert fitted["stderr_truncated"] and size(fitted) <= 100_000


def test_a_returned_result_too_large_to_send_becomes_an_error_saying_so() -> None:
    response = protocol.response("ok", result_json=json.dumps("x" * 300_000), result_kind="return")

    fitted = lambda_handler.fit_response(response, limit=100_000)

    assert (fitted["outcome"], fitted["error_type"]) == ("error", "ResultTooLarge")
    assert "JOBBOT_MAX_OUTPUT_BYTES" in fitted["error_message"]
    protocol.check_response(fitted)


def test_emptying_a_directory_removes_locked_trees_but_never_follows_links(
    tmp_path: Path,
) -> None:
    scratch, outside = tmp_path / "scratch", tmp_path / "outside"
    scratch.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("not the job's")
    locked = scratch / "a" / "b"
    locked.mkdir(parents=True)
    (locked / "file").write_text("x")
    locked.chmod(0)
    (scratch / "a").chmod(0o500)
    (scratch / "link").symlink_to(outside)
    (scratch / "plain").write_text("y")

    assert lambda_handler.empty_dir(str(scratch)) == []
    assert (outside / "keep").read_text() == "not the job's"


def invoke(event: Any, remaining_ms: float) -> Any:
    """handler(event, context) in a fresh interpreter (outside a Lambda environment)."""
    script = (
        "import json, sys\n"
        "from bot.sandbox.fresh.lambda_handler import handler\n"
        "class Context:\n"
        f"    def get_remaining_time_in_millis(self): return {remaining_ms}\n"
        "print(json.dumps(handler(json.loads(sys.stdin.read()), Context())))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDA_"))}
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def request(code: str, **changes: Any) -> dict[str, Any]:
    event = {
        "v": 1,
        "job_id": 1,
        "file_name": "job.py",
        "code": code,
        "input_json": "{}",
        "timeout_s": 30.0,
        "memory_mb": 256,
        "max_output_bytes": 65536,
    }
    event.update(changes)
    return event


def test_the_job_is_stopped_in_time_for_the_handler_to_answer() -> None:
    response = invoke(request("import time\nprint('a')\ntime.sleep(30)\n"), remaining_ms=2_600)

    assert response["outcome"] == "timeout"
    assert response["error_message"] == "the job ran longer than 1.1 s and was stopped"
    assert response["stdout"] == "a\n"
    # at least the budget, and stopped before the invocation's 2.6 s ran out (in Lambda the
    # runtime would be killed unanswered after that)
    assert 1_100 <= response["duration_ms"] < 2_600


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "a request must be a JSON object, not list"),
        ("text", "a request must be a JSON object, not str"),
        ({"v": 2}, "unsupported harness protocol version 2 (this harness speaks 1)"),
        (request("print(1)", timeout_s=-1), "timeout_s must be above 0 and at most 3600, not -1"),
    ],
)
def test_a_malformed_event_gets_a_well_formed_error_response(event: Any, message: str) -> None:
    response = invoke(event, remaining_ms=10_000)

    assert protocol.check_response(response)["outcome"] == "error"
    assert (response["error_type"], response["error_message"]) == ("InvalidRequest", message)


def test_a_probe_runs_a_trivial_job_through_the_real_sandbox_path() -> None:
    response = invoke({"v": 1, "probe": True}, remaining_ms=10_000)

    facts = response["probe"]
    assert facts["python"] == sys.version.split()[0]
    assert facts["in_lambda"] is False and facts["scratch_left"] is None
    assert facts["job"] == {  # what the fixed probe job could do, confined as a user's job
        "seccomp": "2",
        "no_new_privs": "1",
        "signal_runtime": "PermissionError",
        # root (these tests) may read any environ: why the runner never runs as root
        "read_runtime_environ": "allowed" if os.geteuid() == 0 else "PermissionError",
        "internet_socket": "PermissionError",
        "uid": os.getuid(),
        "layer_on_path": False,  # this machine has no /opt/python
    }
    assert facts["packages"] == {}  # nor a layer's manifest


def test_a_probe_with_the_network_on_sees_internet_sockets_allowed() -> None:
    response = invoke({"v": 1, "probe": True, "network": True}, remaining_ms=10_000)

    assert response["probe"]["network"] is True
    assert response["probe"]["job"]["internet_socket"] == "allowed"
    assert response["probe"]["job"]["signal_runtime"] == "PermissionError"


def test_files_out_too_large_for_the_response_are_dropped_largest_first_with_a_note() -> None:
    files = [("small.txt", b"s" * 10_000), ("big.bin", b"b" * 60_000), ("mid.csv", b"m" * 30_000)]
    response = protocol.response("ok", stdout="out", files=files, files_note="earlier")

    fitted = lambda_handler.fit_response(response, limit=80_000)

    assert [entry["name"] for entry in fitted["files"]] == ["small.txt", "mid.csv"]
    assert fitted["files_note"] == (
        "earlier; left out: big.bin (with the job's output, over the 6 MB a job's result may hold)"
    )
    assert fitted["stdout"] == "out" and fitted["outcome"] == "ok"
    assert len(json.dumps(fitted).encode()) <= 80_000
