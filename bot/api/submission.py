"""What a POST of a job carries, read from JSON or a multipart form: the file's name and
bytes and the input's text, for the core's own checks. Only the HTTP envelope is judged
here; the code and the input are the core's to judge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Request

DEFAULT_NAME = "job.py"
JSON_FIELDS = ("code", "input", "name")


class BadSubmission(Exception):
    """The request's envelope is wrong: status, problem type and a message for the asker."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Submission:
    """A job as posted, unchecked."""

    name: str
    code: bytes
    input_text: str
    files: tuple[tuple[str, bytes], ...] = ()  # data files (a form's `files` fields)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_submission(request: Request) -> Submission:
    """The submission in `request` (JSON or multipart); BadSubmission says what is wrong."""
    mimetype = request.mimetype
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _from_json(request.get_data(cache=False))
    if mimetype == "multipart/form-data":
        return _from_form(request)
    raise BadSubmission(
        415,
        "unsupported-media-type",
        'Send the job as application/json ({"code": "...", "input": {...}, '
        '"name": "job.py"}) or as multipart/form-data (a file field with the .py file '
        "and an input field).",
    )


def _from_json(raw: bytes) -> Submission:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSubmission(
            400, "bad-json", f"The request body is not UTF-8 (bad byte at position {exc.start})."
        ) from exc
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadSubmission(
            400,
            "bad-json",
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        raise BadSubmission(400, "bad-json", f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise BadSubmission(
            400,
            "bad-json",
            'The request body must be a JSON object like {"code": "print(a + b)", '
            '"input": {"a": 5, "b": 3}, "name": "soma.py"}.',
        )
    unknown = sorted(k for k in body if k not in JSON_FIELDS)
    if unknown:
        raise BadSubmission(
            400,
            "bad-json",
            f"Unknown field {unknown[0]!r}: a job has the fields code, input and name.",
        )
    code, name = body.get("code"), body.get("name", DEFAULT_NAME)
    if not isinstance(code, str):
        raise BadSubmission(
            400, "bad-json", "The field code must be a string holding the Python source."
        )
    if not isinstance(name, str):
        raise BadSubmission(400, "bad-json", "The field name must be a string like soma.py.")
    # The core judges the input (a JSON object, within its size limit) as it judges typed
    # input, so a list or a number gets the words every surface gives it.
    raw_input = body.get("input", {})
    input_text = json.dumps(raw_input, ensure_ascii=False)
    try:
        input_text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's \ud800 escapes decode to lone surrogates
        raise BadSubmission(
            400, "bad-json", "The field input holds a lone surrogate (\\ud800-\\udfff): not text."
        ) from exc
    # A lone surrogate in the code stays in its bytes, for the core to call it not UTF-8.
    return Submission(name=name, code=code.encode("utf-8", "surrogatepass"), input_text=input_text)


def _from_form(request: Request) -> Submission:
    files = request.files
    # a part without a name comes as the key None: sort by text
    extra = sorted((k for k in files if k not in {"file", "input", "files"}), key=str)
    if extra:
        raise BadSubmission(
            400,
            "bad-form",
            f"Unexpected file field {extra[0]!r}: send the .py file as the field file and "
            "data files as fields named files.",
        )
    picked = files.getlist("file")
    if len(picked) != 1:
        raise BadSubmission(
            400,
            "bad-form",
            "The form needs exactly one file field named file, holding the .py file.",
        )
    upload = picked[0]
    if "input" in files:
        input_text = _text(files["input"].read(), "input")
    else:
        input_text = request.form.get("input", "")
    unknown = sorted((k for k in request.form if k != "input"), key=str)
    if unknown:
        raise BadSubmission(
            400,
            "bad-form",
            f"Unknown form field {unknown[0]!r}: the fields are file, input and files.",
        )
    data = tuple((part.filename or "data", part.read()) for part in files.getlist("files"))
    return Submission(
        name=upload.filename or "", code=upload.read(), input_text=input_text, files=data
    )


def _text(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSubmission(400, "bad-form", f"The field {field} is not UTF-8 text.") from exc
