"""The runner in-process: binding, main(), result encoding, errors and trimmed tracebacks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bot.sandbox.inside.runner import Record, run_code, type_name
from bot.sandbox.protocol import parse_request


@pytest.fixture(autouse=True)
def _restore_interpreter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # run_code installs the job as __main__, sets sys.argv and the recursion limit, as it
    # must in the child; put all three back after each test
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


def run(code: str, input_: dict[str, Any] | None = None, **changes: Any) -> Record:
    raw = {
        "v": 1,
        "job_id": 1,
        "file_name": "soma.py",
        "code": code,
        "input_json": json.dumps(input_ or {}),
        "timeout_s": 5,
        "memory_mb": 256,
        "max_output_bytes": 1 << 20,
    }
    raw.update(changes)
    return run_code(parse_request(raw))


def test_input_keys_are_globals_before_the_file_runs(capsys: pytest.CaptureFixture[str]) -> None:
    record = run("def soma(a, b):\n    return a + b\nprint(soma(a, b))\n", {"a": 5, "b": 3})
    assert record == Record("ok")  # no result of its own: the supervisor uses stdout
    assert capsys.readouterr().out == "8\n"


def test_the_file_runs_as_main_with_its_name_and_argv(capsys: pytest.CaptureFixture[str]) -> None:
    run("import sys\nprint(__name__, __file__, sys.argv)\n")
    assert capsys.readouterr().out == "__main__ soma.py ['soma.py']\n"


def test_dunder_input_keys_cannot_replace_module_attributes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run("print(__name__, __file__, x)", {"__name__": "evil", "__file__": "e.py", "x": 1})
    assert capsys.readouterr().out == "__main__ soma.py 1\n"


def test_dataclasses_and_pickle_of_user_classes_work_in_main() -> None:
    code = (
        "import dataclasses, pickle\n"
        "@dataclasses.dataclass\nclass P:\n    x: int\n"
        "def main():\n    return pickle.loads(pickle.dumps(P(3))).x\n"
    )
    assert run(code) == Record("ok", "3")


def test_main_is_called_with_the_input_and_its_value_is_the_json_result() -> None:
    record = run("def main(a, b):\n    return {'sum': a + b, 'text': 'é'}\n", {"a": 5, "b": 3})
    assert record == Record("ok", '{"sum": 8, "text": "é"}')


def test_main_returning_none_falls_back_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("def main():\n    print('hi')\n") == Record("ok")
    assert capsys.readouterr().out == "hi\n"


def test_an_exception_reports_its_type_message_and_only_user_frames() -> None:
    record = run("def f():\n    raise ValueError('bad')\n\nf()\n")
    assert (record.status, record.error_type, record.error_message) == (
        "error",
        "ValueError",
        "bad",
    )
    assert record.exit_code == 1
    assert record.traceback == (
        "Traceback (most recent call last):\n"
        '  File "soma.py", line 4, in <module>\n'
        "    f()\n"
        '  File "soma.py", line 2, in f\n'
        "    raise ValueError('bad')\n"
        "ValueError: bad\n"
    )


def test_a_non_builtin_exception_type_is_qualified_but_the_users_own_is_not() -> None:
    record = run("import json\njson.loads('{')\n")
    assert record.error_type == "json.decoder.JSONDecodeError"
    assert record.traceback is not None
    assert record.traceback.startswith(
        'Traceback (most recent call last):\n  File "soma.py", line 2'
    )
    assert "harness" not in record.traceback
    assert run("class Oops(Exception):\n    pass\nraise Oops('x')\n").error_type == "Oops"
    assert type_name(KeyError) == "KeyError"


def test_a_syntax_error_names_its_line_and_shows_the_caret() -> None:
    record = run("x = 1\n\ndef f(:\n    pass\n")
    assert (record.error_type, record.error_message) == ("SyntaxError", "invalid syntax (line 3)")
    assert (
        record.traceback
        == '  File "soma.py", line 3\n    def f(:\n          ^\nSyntaxError: invalid syntax\n'
    )


def test_null_bytes_are_a_syntax_error_on_every_python_version() -> None:
    record = run("x = 1\0")
    assert record.error_type == "SyntaxError"
    assert record.error_message == "source code cannot contain null bytes (line 1)"


def test_main_called_with_unexpected_input_reports_a_type_error_without_harness_frames() -> None:
    record = run("def main(a):\n    return a\n", {"a": 1, "b": 2})
    assert record.error_type == "TypeError"
    assert "unexpected keyword argument 'b'" in (record.error_message or "")
    assert record.traceback == f"TypeError: {record.error_message}\n"


@pytest.mark.parametrize(
    ("code", "status", "message", "exit_code"),
    [
        ("import sys\nsys.exit(0)\n", "ok", None, 0),
        ("import sys\nsys.exit()\n", "ok", None, 0),
        ("import sys\nsys.exit(3)\n", "error", "exit code 3", 3),
        ("import sys\nsys.exit(True)\n", "error", "exit code 1", 1),
        ("import sys\nsys.exit('bye')\n", "error", "exit code 1 (bye)", 1),
        ("def main():\n    raise SystemExit(7)\n", "error", "exit code 7", 7),
    ],
)
def test_system_exit_zero_is_a_normal_finish_and_other_codes_are_errors(
    code: str, status: str, message: str | None, exit_code: int
) -> None:
    record = run(code)
    assert (record.status, record.error_message, record.exit_code) == (status, message, exit_code)
    if status == "error":
        assert (record.error_type, record.traceback) == ("SystemExit", None)


def test_system_exit_zero_in_the_file_skips_main() -> None:
    assert run("import sys\ndef main():\n    return 1\nsys.exit(0)\n") == Record("ok")


def test_memory_error_is_the_memory_status_with_the_limit() -> None:
    record = run("raise MemoryError()\n", memory_mb=300)
    assert record.status == "memory"
    assert record.error_message == "the job ran out of memory (limit 300 MB)"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{1, 2}", "set"),
        ("float('nan')", "float"),
        ("object()", "object"),
        ("{'a': {1}}", "dict"),
        ("'\\ud800'", "str"),
    ],
)
def test_a_result_json_cannot_encode_is_an_unserializable_result(body: str, named: str) -> None:
    record = run(f"def main():\n    return {body}\n")
    assert (record.status, record.error_type) == ("error", "UnserializableResult")
    assert record.error_message is not None
    assert record.error_message.startswith(f"main() returned a {named} value")


def test_a_result_over_the_output_limit_is_result_too_large_with_sizes() -> None:
    record = run("def main():\n    return 'x' * 2000\n", max_output_bytes=1000)
    assert record.error_type == "ResultTooLarge"
    assert (
        record.error_message
        == "the result is 2002 bytes of JSON, more than the limit of 1000 bytes"
    )


def test_recursion_past_the_limit_is_an_ordinary_recursion_error() -> None:
    record = run("def f(n):\n    return f(n + 1)\nf(0)\n")
    assert (record.status, record.error_type) == ("error", "RecursionError")
    assert record.traceback is not None
    assert "Previous line repeated" in record.traceback


def test_a_long_traceback_is_cut_to_the_output_limit_keeping_the_end() -> None:
    record = run("raise ValueError('x' * 5000)\n", max_output_bytes=1000)
    assert record.traceback is not None
    assert record.traceback.startswith("... (traceback truncated)\n")
    assert record.traceback.endswith("x\n")


def test_a_record_survives_its_encoding_and_garbage_is_not_a_record() -> None:
    record = Record("error", None, "ValueError", "bad \ud800", "tb", 1)
    assert Record.decode(record.encode()) == record
    assert Record.decode(b'{"status": "ok"') is None
    assert Record.decode(b'{"status": "fine"}') is None
    assert Record.decode(b'{"unknown": 1}') is None


def test_library_frames_are_summarised_by_the_last_one_without_host_paths() -> None:
    record = run(
        "import json\n"
        "def hook(pairs):\n"
        "    return json.loads('[' + pairs[0][1])\n"
        'json.loads(\'{"a": "1"}\', object_pairs_hook=hook)\n'
    )
    trace = record.traceback or ""
    files = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
    assert files[0] == 'File "soma.py", line 4, in <module>'
    assert files[1].startswith('File "json/decoder.py"'), "the library run, by its last frame"
    assert files[2] == 'File "soma.py", line 3, in hook', "called back from the library"
    assert files[3].startswith('File "json/decoder.py"')
    assert len(files) == 4 and trace.count("library frames") == 2
    assert sys.base_prefix not in trace and sys.prefix not in trace
    assert "site-packages" not in trace and "/json/" not in trace
