"""The user-code contract on real processes, identical through the zygote and fresh mode."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.core.models import Outcome, ResultKind, RunRequest
from bot.executors.local import LocalExecutor
from bot.sandbox.fresh.spawn import run_fresh
from bot.sandbox.limits import MIB

from .conftest import harness_request
from .file_cases import FILE_CASES


@dataclass(frozen=True)
class Case:
    code: str
    expect: dict[str, Any]
    input: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


CASES = {
    "print": Case(
        "print('hello')",
        {"outcome": "ok", "result_json": '"hello"', "result_kind": "stdout", "stdout": "hello\n"},
    ),
    "return_from_main": Case(
        "def main(a, b):\n    return {'sum': a + b, 'word': 'olá'}\n",
        {"outcome": "ok", "result_json": '{"sum": 8, "word": "olá"}', "result_kind": "return"},
        {"a": 5, "b": 3},
    ),
    "classic_globals_style": Case(
        "def soma(a, b):\n    return a + b\n\nprint(soma(a, b))\n",
        {"outcome": "ok", "result_json": '"8"', "result_kind": "stdout", "exit_code": 0},
        {"a": 5, "b": 3},
    ),
    "main_returning_none_uses_stdout": Case(
        "def main(n):\n    print('n is', n)\n",
        {"outcome": "ok", "result_json": '"n is 2"', "result_kind": "stdout"},
        {"n": 2},
    ),
    "stdin_is_the_json_input": Case(
        "import json, sys\ndata = json.load(sys.stdin)\nprint(data['a'] * 2)\n",
        {"outcome": "ok", "result_json": '"10"'},
        {"a": 5},
    ),
    "input_reads_the_first_line_of_stdin": Case(
        "print(input())\n",
        {"outcome": "ok", "result_json": json.dumps('{"a": 5}')},
        {"a": 5},
    ),
    "runs_as_main_script": Case(
        "import sys\nprint(__name__, __file__, sys.argv)\n",
        {"stdout": "__main__ job.py ['job.py']\n"},
    ),
    "only_stdio_and_the_record_pipe_are_open": Case(
        "import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))\n",
        {"stdout": "[0, 1, 2, 3, 4]\n"},  # 4 is the listing's own directory fd
    ),
    "stderr_is_captured_separately": Case(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\n",
        {"outcome": "ok", "stdout": "out\n", "stderr": "err\n", "result_json": '"out"'},
    ),
    "threads_and_atexit_finish_before_the_result": Case(
        "import atexit, threading, time\n"
        "atexit.register(print, 'atexit')\n"
        "threading.Thread(target=lambda: (time.sleep(0.1), print('thread'))).start()\n",
        {"outcome": "ok", "stdout": "thread\natexit\n"},
    ),
    "a_forked_copy_does_not_call_main_again": Case(
        "import os\ndef main():\n    return 'main ran'\n"
        "pid = os.fork()\nif pid == 0:\n    print('child')\nelse:\n    os.waitpid(pid, 0)\n",
        {"outcome": "ok", "result_json": '"main ran"', "stdout": "child\n"},
    ),
    "exception": Case(
        "def f(x):\n    return 1 / x\n\nf(0)\n",
        {
            "outcome": "error",
            "error_type": "ZeroDivisionError",
            "error_message": "division by zero",
            "traceback": "Traceback (most recent call last):\n"
            '  File "job.py", line 4, in <module>\n'
            "    f(0)\n"
            '  File "job.py", line 2, in f\n'
            "    return 1 / x\n"
            "           ~~^~~\n"
            "ZeroDivisionError: division by zero\n",
            "exit_code": 1,
            "result_json": None,
        },
    ),
    "syntax_error": Case(
        "x = 1\nif x\n    print(x)\n",
        {
            "outcome": "error",
            "error_type": "SyntaxError",
            "error_message": "expected ':' (line 2)",
            "traceback": '  File "job.py", line 2\n    if x\n        ^\n'
            "SyntaxError: expected ':'\n",
        },
    ),
    "system_exit_zero_is_a_normal_finish": Case(
        "import sys\nprint('bye')\nsys.exit(0)\n",
        {"outcome": "ok", "result_json": '"bye"', "exit_code": 0},
    ),
    "system_exit_code": Case(
        "import sys\nsys.exit(3)\n",
        {
            "outcome": "error",
            "error_type": "SystemExit",
            "error_message": "exit code 3",
            "exit_code": 3,
        },
    ),
    "infinite_loop_times_out_keeping_earlier_output": Case(
        "print('started')\nwhile True:\n    pass\n",
        {
            "outcome": "timeout",
            "error_message": "the job ran longer than 1 s and was stopped",
            "stdout": "started\n",
            "signal": 9,
            "result_json": None,
        },
        changes={"timeout_s": 1.0},
    ),
    "sleep_past_the_timeout": Case(
        "import time\nprint('a')\ntime.sleep(30)\n",
        {"outcome": "timeout", "stdout": "a\n"},
        # 2 s: on Lambda the clock includes a fresh interpreter's start, which a loaded 2-core
        # machine stretched past 1 s before the job printed its line
        changes={"timeout_s": 2.0},
    ),
    "two_gib_allocation_is_a_memory_outcome": Case(
        "x = bytearray(2 * 1024 ** 3)\n",
        {
            "outcome": "memory",
            "error_type": "MemoryError",
            "error_message": "the job ran out of memory (limit 256 MB)",
        },
    ),
    "set_result_is_unserializable": Case(
        "def main():\n    return {1, 2}\n",
        {"outcome": "error", "error_type": "UnserializableResult"},
    ),
    "nan_result_is_unserializable": Case(
        "def main():\n    return float('nan')\n",
        {"outcome": "error", "error_type": "UnserializableResult"},
    ),
    "huge_result_is_too_large": Case(
        "def main():\n    return 'x' * 3_000_000\n",
        {
            "outcome": "error",
            "error_type": "ResultTooLarge",
            "error_message": "the result is 3000002 bytes of JSON, more than the limit of"
            " 1048576 bytes",
        },
    ),
    "recursion_past_the_limit": Case(
        "def f(n):\n    return f(n + 1)\n\nf(0)\n",
        {"outcome": "error", "error_type": "RecursionError"},
    ),
    "reading_a_closed_stdin": Case(
        "import sys\nsys.stdin.close()\nsys.stdin.read()\n",
        {"outcome": "error", "error_type": "ValueError"},
    ),
    "exit_without_a_result_is_a_crash": Case(
        "import os\nprint('going')\nos._exit(3)\n",
        {
            "outcome": "crashed",
            "error_message": "the job exited with code 3 without reporting a result",
            "stdout": "going\n",
            "exit_code": 3,
        },
    ),
    "death_by_signal_is_a_crash": Case(
        "import os\nos.kill(os.getpid(), 9)\n",
        {"outcome": "crashed", "error_message": "the job was killed by SIGKILL (signal 9)"},
    ),
    "output_is_cut_at_the_cap_between_characters": Case(
        "print('é' * 1000)\n",
        {
            "stdout": "é" * 50,
            "stdout_truncated": True,
            "result_json": json.dumps("é" * 50, ensure_ascii=False),
        },
        changes={"max_output_bytes": 101},
    ),
    "unknown_protocol_version": Case(
        "print(1)",
        {"outcome": "error", "error_type": "InvalidRequest", "duration_ms": 0},
        changes={"v": 2},
    ),
    "malformed_field": Case(
        "print(1)",
        {"outcome": "error", "error_message": "memory_mb must be an integer, not str"},
        changes={"memory_mb": "lots"},
    ),
}
CASES.update(
    {
        name: Case(code, expect, changes=changes)
        for name, (code, expect, changes) in FILE_CASES.items()
    }
)


# A job failing inside the standard library: its traceback must name no host path.
LIBRARY_ERROR = Case(
    "import json\n\ndef parse(text):\n    return json.loads(text)\n\nparse('not json')\n", {}
)


def both(executor: LocalExecutor, case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    request = harness_request(case.code, case.input, **case.changes)
    return executor.run_harness(request), run_fresh(request)


@pytest.mark.parametrize("name", CASES)
def test_contract_case_gives_identical_responses_in_zygote_and_fresh_mode(
    executor: LocalExecutor, name: str
) -> None:
    case = CASES[name]
    zygote, fresh = both(executor, case)
    for response in (zygote, fresh):
        assert {key: response[key] for key in case.expect} == case.expect
    del zygote["duration_ms"], fresh["duration_ms"]
    assert zygote == fresh


def test_recursion_error_shows_the_same_depth_as_a_plain_script(executor: LocalExecutor) -> None:
    zygote, _ = both(executor, CASES["recursion_past_the_limit"])
    assert "[Previous line repeated 996 more times]" in zygote["traceback"]


def test_a_timed_out_job_reports_the_limit_not_its_own_length(executor: LocalExecutor) -> None:
    # stopped at its 2 s limit, the job that would sleep 30 s reports at least the limit and
    # far less than 30 s (a loaded machine may add seconds to the stop, not 20)
    zygote, fresh = both(executor, CASES["sleep_past_the_timeout"])
    for response in (zygote, fresh):
        assert 2000 <= response["duration_ms"] < 12_000


def test_run_translates_the_response_into_a_run_result(executor: LocalExecutor) -> None:
    request = RunRequest(7, "soma.py", "def main(a):\n    return [a]\n", '{"a": 1}', 5.0, 256, MIB)
    result = executor.run(request)
    assert (result.outcome, result.result_json, result.result_kind) == (
        Outcome.OK,
        "[1]",
        ResultKind.RETURN,
    )
    assert result.executor == "local"
    assert result.duration_ms >= 0
    failed = executor.run(RunRequest(7, "a.py", "raise KeyError('k')", "{}", 5.0, 256, MIB))
    assert (failed.outcome, failed.error_type, failed.error_message) == (
        Outcome.ERROR,
        "KeyError",
        "'k'",
    )
    assert failed.traceback is not None
    assert 'File "a.py", line 1' in failed.traceback


def test_a_library_error_shows_the_users_frames_and_the_last_library_frame_without_paths(
    executor: LocalExecutor,
) -> None:
    for response in both(executor, LIBRARY_ERROR):
        trace = response["traceback"]
        files = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
        assert files[:2] == [
            'File "job.py", line 6, in <module>',
            'File "job.py", line 4, in parse',
        ]
        assert len(files) == 3 and files[2].startswith('File "json/decoder.py", line ')
        assert "library frames" in trace and "json/__init__.py" not in trace
        assert "/" + "json/" not in trace and sys.base_prefix not in trace
        assert trace.endswith(
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
        )
