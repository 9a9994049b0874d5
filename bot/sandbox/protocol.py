"""Sandbox protocol v1: validates requests and shapes responses (the same for every executor)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, NamedTuple

from .files import check_input_name

VERSION = 1
OUTCOMES = ("ok", "error", "timeout", "memory", "crashed", "cancelled")
RESULT_KINDS = ("return", "stdout")
MAX_TIMEOUT_S = 3600.0
MIN_MEMORY_MB = 32  # below this the interpreter itself cannot start under RLIMIT_AS
MAX_MEMORY_MB = 65536
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_FILES_BYTES = 64 * 1024 * 1024  # data files in, or files out, of one job at most
MAX_FILES = 1000
DEFAULT_MAX_FILES_OUT = 10  # the bot's defaults, for a request that names no limits
DEFAULT_MAX_FILES_OUT_BYTES = 4 * 1024 * 1024


# a request's fields, in order: bot's RunRequest carries the same names ("files" holds
# objects with a `name` and `data`, sent as base64)
REQUEST_FIELDS = (
    "job_id", "file_name", "code", "input_json", "timeout_s", "memory_mb", "max_output_bytes",
    "files", "max_files_out", "max_files_out_bytes",
)  # fmt: skip


class ProtocolError(ValueError):
    """A harness request or response that does not follow protocol v1."""


class SandboxUnavailable(RuntimeError):
    """The sandbox could not start the run; nothing ran, so it is safe to try again."""


class SandboxCalledOff(SandboxUnavailable):
    """The run's start gate said no: the prepared job process was killed; nothing ran."""


class SandboxFailed(RuntimeError):
    """The sandbox failed while running a job; the job may have run."""


class Request(NamedTuple):
    """A validated v1 request; `input` is the decoded JSON object (a NamedTuple, see Limits)."""

    job_id: int
    file_name: str
    code: str
    input_json: str
    timeout_s: float
    memory_mb: int
    max_output_bytes: int
    files: tuple[tuple[str, bytes], ...]  # data files: (name, content)
    max_files_out: int
    max_files_out_bytes: int
    input: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The request as protocol JSON."""
        return request_body(self)


def request_body(request: object) -> dict[str, Any]:
    """The v1 request JSON of anything that has the REQUEST_FIELDS as attributes (a Request,
    or the bot's RunRequest): the one place a request becomes protocol."""
    body = {"v": VERSION, **{name: getattr(request, name) for name in REQUEST_FIELDS}}
    body["files"] = [_file_entry(*_name_data(item)) for item in body["files"]]
    return body


def _name_data(item: Any) -> tuple[str, bytes]:
    return (item[0], item[1]) if isinstance(item, tuple) else (item.name, item.data)


def _file_entry(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "data": base64.b64encode(data).decode("ascii")}


def _decode_files(raw: object, what: str) -> list[tuple[str, bytes]]:
    """[(name, content)] of a protocol file list (entries {"name", "data": base64})."""
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise ProtocolError(f"{what} must be a list of at most {MAX_FILES} files")
    files, total = [], 0
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"each of {what} must be an object with a name")
        try:
            data = base64.b64decode(entry["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ProtocolError(f"{what}: {entry['name']!r} has no base64 data") from None
        total += len(data)
        files.append((entry["name"], data))
    if total > MAX_FILES_BYTES:
        raise ProtocolError(f"{what} hold more than {MAX_FILES_BYTES} bytes")
    return files


def _input_files(raw: dict[str, Any], code_name: str) -> tuple[tuple[str, bytes], ...]:
    files = _decode_files(raw.get("files", []), "files")
    seen = {code_name}
    for name, _ in files:
        why = check_input_name(name) or ("named twice" if name in seen else None)
        if why is not None:
            raise ProtocolError(f"data file {name!r}: {why}")
        seen.add(name)
    return tuple(files)


def _optional_int(raw: dict[str, Any], key: str, default: int, high: int) -> int:
    return default if key not in raw else _int(raw, key, 0, high)


def _int(raw: dict[str, Any], key: str, low: int, high: int) -> int:
    value = raw.get(key)
    # bool is an int subclass; `true` is never a meaningful size
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{key} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ProtocolError(f"{key} must be between {low} and {high}, not {value}")
    return value


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")  # it becomes a file, stdin or a path
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"{key} is not valid Unicode text (at position {exc.start})") from None
    return value


def _file_name(raw: dict[str, Any]) -> str:
    name = _str(raw, "file_name")
    # the name becomes a file in the job directory, so it must be one plain path component
    if name in ("", ".", "..") or "/" in name or "\0" in name or len(name.encode()) > 255:
        raise ProtocolError(f"file_name must be a plain file name, not {name!r}")
    return name


def _timeout(raw: dict[str, Any]) -> float:
    value = raw.get("timeout_s")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolError(f"timeout_s must be a number, not {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise ProtocolError(f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g}, not {value}")
    return float(value)


def parse_request(raw: object) -> Request:
    """Validate a decoded request; raise ProtocolError with a clear message when it is not v1."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"a request must be a JSON object, not {type(raw).__name__}")
    version = raw.get("v")
    if version != VERSION or isinstance(version, bool):
        raise ProtocolError(
            f"unsupported harness protocol version {version!r} (this harness speaks {VERSION})"
        )
    input_json = _str(raw, "input_json")
    try:
        value = json.loads(input_json)
    except ValueError as exc:
        raise ProtocolError(f"input_json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"input_json must encode a JSON object, not {type(value).__name__}")
    file_name = _file_name(raw)
    return Request(
        job_id=_int(raw, "job_id", -(2**63), 2**63 - 1),
        file_name=file_name,
        code=_str(raw, "code"),
        input_json=input_json,
        timeout_s=_timeout(raw),
        memory_mb=_int(raw, "memory_mb", MIN_MEMORY_MB, MAX_MEMORY_MB),
        max_output_bytes=_int(raw, "max_output_bytes", 1, MAX_OUTPUT_BYTES),
        files=_input_files(raw, file_name),
        max_files_out=_optional_int(raw, "max_files_out", DEFAULT_MAX_FILES_OUT, MAX_FILES),
        max_files_out_bytes=_optional_int(
            raw, "max_files_out_bytes", DEFAULT_MAX_FILES_OUT_BYTES, MAX_FILES_BYTES
        ),
        input=value,
    )


def response(
    outcome: str,
    *,
    duration_ms: int = 0,
    result_json: str | None = None,
    result_kind: str | None = None,
    stdout: str = "",
    stderr: str = "",
    stdout_truncated: bool = False,
    stderr_truncated: bool = False,
    error_type: str | None = None,
    error_message: str | None = None,
    traceback: str | None = None,
    exit_code: int | None = None,
    signal: int | None = None,
    files: list[tuple[str, bytes]] | None = None,
    files_note: str | None = None,
) -> dict[str, Any]:
    """A complete v1 response; text fields are made safe to encode as UTF-8."""
    return {
        "v": VERSION,
        "outcome": outcome,
        "result_json": None if result_json is None else clean_text(result_json),
        "result_kind": result_kind,
        "stdout": clean_text(stdout),
        "stderr": clean_text(stderr),
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
        "error_type": None if error_type is None else clean_text(error_type),
        "error_message": None if error_message is None else clean_text(error_message),
        "traceback": None if traceback is None else clean_text(traceback),
        "duration_ms": duration_ms,
        "exit_code": exit_code,
        "signal": signal,
        "files": [_file_entry(name, data) for name, data in files or ()],
        "files_note": None if files_note is None else clean_text(files_note),
    }


def error_response(message: str, error_type: str = "InvalidRequest") -> dict[str, Any]:
    """The response to a request that could not be run at all."""
    return response("error", error_type=error_type, error_message=message)


def clean_text(text: str) -> str:
    """Replace lone surrogates (from user strings) so the text encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


_TYPES: dict[str, tuple[type, ...]] = {
    "result_json": (str, type(None)),
    "result_kind": (str, type(None)),
    "stdout": (str,),
    "stderr": (str,),
    "stdout_truncated": (bool,),
    "stderr_truncated": (bool,),
    "error_type": (str, type(None)),
    "error_message": (str, type(None)),
    "traceback": (str, type(None)),
    "duration_ms": (int,),
    "exit_code": (int, type(None)),
    "signal": (int, type(None)),
    "files_note": (str, type(None)),
}


def check_response(raw: object) -> dict[str, Any]:
    """Validate a decoded response (the caller's side); raise ProtocolError if malformed."""
    if not isinstance(raw, dict) or raw.get("v") != VERSION:
        raise ProtocolError("the harness response is not a v1 object")
    raw.setdefault("files", [])  # a harness from before files out
    raw.setdefault("files_note", None)
    if raw.get("outcome") not in OUTCOMES:
        raise ProtocolError(f"unknown outcome {raw.get('outcome')!r}")
    if raw.get("result_kind") not in (*RESULT_KINDS, None):
        raise ProtocolError(f"unknown result_kind {raw.get('result_kind')!r}")
    for key, types in _TYPES.items():
        if not isinstance(raw.get(key), types) or (
            isinstance(raw.get(key), bool) and bool not in types
        ):
            raise ProtocolError(f"response field {key} has the wrong type")
    _decode_files(raw["files"], "files out")
    return raw


def response_files(response: dict[str, Any]) -> list[tuple[str, bytes]]:
    """[(name, content)] of a checked response's files."""
    return _decode_files(response["files"], "files out")
