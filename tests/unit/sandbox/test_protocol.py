"""Protocol v1: request validation gives clear messages, responses have the exact shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.sandbox import protocol
from bot.sandbox.protocol import ProtocolError, parse_request

RESPONSE_KEYS = {
    "v", "outcome", "result_json", "result_kind", "stdout", "stderr", "stdout_truncated",
    "stderr_truncated", "error_type", "error_message", "traceback", "duration_ms",
    "exit_code", "signal", "files", "files_note",
}  # fmt: skip


def request(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "job_id": 12,
        "file_name": "soma.py",
        "code": "print(a + b)",
        "input_json": json.dumps({"a": 5, "b": 3}),
        "timeout_s": 10.0,
        "memory_mb": 256,
        "max_output_bytes": 1048576,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_valid_request_parses_with_its_input_decoded() -> None:
    parsed = parse_request(request())
    assert parsed.job_id == 12
    assert parsed.input == {"a": 5, "b": 3}
    assert parsed.timeout_s == 10.0
    assert parse_request(parsed.to_dict()) == parsed


def test_an_integer_timeout_is_accepted_as_seconds() -> None:
    assert parse_request(request(timeout_s=3)).timeout_s == 3.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "unsupported harness protocol version 2 (this harness speaks 1)"),
        ({"v": ...}, "unsupported harness protocol version None"),
        ({"v": True}, "unsupported harness protocol version True"),
        ({"job_id": "12"}, "job_id must be an integer, not str"),
        ({"file_name": "../x.py"}, "file_name must be a plain file name"),
        ({"file_name": ""}, "file_name must be a plain file name"),
        ({"file_name": 3}, "file_name must be a string, not int"),
        ({"code": None}, "code must be a string, not NoneType"),
        ({"code": "x = '\ud800'"}, "code is not valid Unicode text (at position 5)"),
        ({"input_json": "[1, 2]"}, "input_json must encode a JSON object, not list"),
        ({"input_json": "{"}, "input_json is not valid JSON"),
        ({"timeout_s": 0}, "timeout_s must be above 0"),
        ({"timeout_s": float("nan")}, "timeout_s must be above 0"),
        ({"timeout_s": True}, "timeout_s must be a number, not bool"),
        ({"memory_mb": 1}, "memory_mb must be between 32 and 65536, not 1"),
        ({"max_output_bytes": 0}, "max_output_bytes must be between 1 and"),
        ({"max_output_bytes": ...}, "max_output_bytes must be an integer, not NoneType"),
    ],
)
def test_a_malformed_request_is_rejected_with_a_clear_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(request(**changes))
    assert str(info.value).startswith(message)


def test_a_request_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="must be a JSON object, not list"):
        parse_request([1])


def test_error_response_is_a_complete_v1_response() -> None:
    response = protocol.error_response("bad request")
    assert set(response) == RESPONSE_KEYS
    assert response["outcome"] == "error"
    assert response["error_type"] == "InvalidRequest"
    assert response["error_message"] == "bad request"
    assert protocol.check_response(response) is response
    json.dumps(response)


def test_response_text_with_lone_surrogates_becomes_encodable() -> None:
    response = protocol.response("error", error_message="bad \ud800 text", stdout="\udcff")
    json.dumps(response, ensure_ascii=False).encode("utf-8")
    assert response["error_message"] == "bad \ufffd text"


@pytest.mark.parametrize(
    "broken",
    [
        {"outcome": "maybe"},
        {"result_kind": "file"},
        {"stdout": None},
        {"duration_ms": 1.5},
        {"stdout_truncated": 1},
        {"exit_code": "0"},
        {"v": 2},
    ],
)
def test_check_response_rejects_malformed_responses(broken: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        protocol.check_response({**protocol.response("ok"), **broken})
