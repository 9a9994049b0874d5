"""Composing the response from an observation: outcomes, messages, the stdout result."""

from __future__ import annotations

import json
import os
import signal

from bot.sandbox import protocol, verdict
from bot.sandbox.capture import Capture
from bot.sandbox.inside.runner import Record
from bot.sandbox.protocol import parse_request
from bot.sandbox.supervisor import Observation

REQUEST = parse_request(
    {
        "v": 1,
        "job_id": 1,
        "file_name": "a.py",
        "code": "",
        "input_json": "{}",
        "timeout_s": 10,
        "memory_mb": 256,
        "max_output_bytes": 100,
    }
)


def exited(code: int) -> int:
    return code << 8


def killed(signum: int) -> int:
    return signum


def observe(
    status: int,
    record: Record | None = None,
    stdout: bytes = b"",
    timed_out: bool = False,
) -> Observation:
    out, err, rec = Capture(100), Capture(100), Capture(1000)
    out.feed(stdout)
    if record is not None:
        rec.feed(record.encode())
    return Observation(out, err, rec, status, timed_out, 12)


def test_the_wait_status_helpers_match_the_os_encoding() -> None:
    assert os.WEXITSTATUS(exited(3)) == 3
    assert os.WTERMSIG(killed(9)) == 9


def test_no_result_of_its_own_makes_stripped_stdout_the_json_string_result() -> None:
    response = verdict.build(REQUEST, observe(exited(0), Record("ok"), b"8\n  \n\t"))
    assert response["outcome"] == "ok"
    assert (response["result_json"], response["result_kind"]) == ('"8"', "stdout")
    assert response["stdout"] == "8\n  \n\t"
    assert (response["exit_code"], response["signal"], response["duration_ms"]) == (0, None, 12)
    protocol.check_response(response)


def test_a_returned_value_is_the_result() -> None:
    response = verdict.build(REQUEST, observe(exited(0), Record("ok", "[1]"), b"noise"))
    assert (response["result_json"], response["result_kind"]) == ("[1]", "return")


def test_truncated_stdout_still_gives_a_result_and_says_so() -> None:
    response = verdict.build(REQUEST, observe(exited(0), Record("ok"), b"x" * 150))
    assert response["stdout_truncated"] is True
    assert json.loads(response["result_json"]) == "x" * 100


def test_a_timeout_keeps_the_output_and_names_the_limit() -> None:
    response = verdict.build(REQUEST, observe(killed(9), None, b"before", timed_out=True))
    assert response["outcome"] == "timeout"
    assert response["error_message"] == "the job ran longer than 10 s and was stopped"
    assert (response["stdout"], response["signal"], response["result_json"]) == ("before", 9, None)


def test_a_shorter_caller_deadline_is_the_limit_named() -> None:
    obs = observe(killed(9), timed_out=True)
    response = verdict.build(REQUEST, obs, timeout_s=2.5)
    assert response["error_message"] == "the job ran longer than 2.5 s and was stopped"


def test_the_cpu_limit_signal_is_a_timeout() -> None:
    response = verdict.build(REQUEST, observe(killed(signal.SIGXCPU)))
    assert response["outcome"] == "timeout"
    assert "CPU time" in response["error_message"]


def test_a_kill_by_the_memory_cgroup_is_the_memory_outcome() -> None:
    response = verdict.build(REQUEST, observe(killed(9)), oom=True)
    assert response["outcome"] == "memory"
    assert response["error_message"] == "the job ran out of memory (limit 256 MB)"


def test_an_oom_kill_of_a_child_does_not_change_a_finished_job() -> None:
    response = verdict.build(REQUEST, observe(exited(0), Record("ok", "1")), oom=True)
    assert response["outcome"] == "ok"


def test_death_by_a_signal_without_a_record_is_a_crash_naming_the_signal() -> None:
    response = verdict.build(REQUEST, observe(killed(signal.SIGSEGV)))
    assert response["outcome"] == "crashed"
    assert response["error_message"] == "the job was killed by SIGSEGV (signal 11)"


def test_an_exit_without_a_record_is_a_crash_naming_the_code() -> None:
    response = verdict.build(REQUEST, observe(exited(3), None, b"partial"))
    assert response["outcome"] == "crashed"
    assert response["error_message"] == "the job exited with code 3 without reporting a result"
    assert response["stdout"] == "partial"


def test_an_error_record_is_passed_through() -> None:
    record = Record("error", None, "ValueError", "bad", "Traceback...", 1)
    response = verdict.build(REQUEST, observe(exited(1), record))
    assert (response["outcome"], response["error_type"]) == ("error", "ValueError")
    assert (response["error_message"], response["traceback"]) == ("bad", "Traceback...")


def test_a_memory_record_is_the_memory_outcome() -> None:
    record = Record("memory", None, "MemoryError", "out", None, 1)
    assert verdict.build(REQUEST, observe(exited(1), record))["outcome"] == "memory"


def test_an_oversized_record_is_not_trusted() -> None:
    obs = observe(exited(0))
    obs.record.feed(b"x" * 2000)
    assert verdict.build(REQUEST, obs)["outcome"] == "crashed"


def test_a_stopped_job_is_cancelled_with_the_output_it_printed() -> None:
    out, err, rec = Capture(100), Capture(100), Capture(1000)
    out.feed(b"so far\n")
    obs = Observation(out, err, rec, killed(signal.SIGKILL), False, 40, stopped=True)
    response = verdict.build(REQUEST, obs)
    assert protocol.check_response(response)["outcome"] == "cancelled"
    assert (response["error_type"], response["stdout"]) == ("Cancelled", "so far\n")
    assert response["result_json"] is None
