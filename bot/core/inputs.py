"""Checks on what users hand in: the JSON input and the .py file. Each failure is a clear,
actionable UserError; nothing here touches storage."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from bot.core.units import human_bytes
from bot.errors import FileTooLarge, InputTooLarge, InvalidFile, InvalidInput

SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'"})
FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(?P<body>.*?)\n?```$", re.DOTALL)
EXAMPLE = '{"a": 5, "b": 3}'
_NOT_JSON = object()


@dataclass(frozen=True)
class CheckedInput:
    """A JSON object input: the value and its canonical compact text."""

    value: dict[str, Any]
    text: str


@dataclass(frozen=True)
class CheckedFile:
    """A runnable source file."""

    name: str
    code: str
    sha256: str


def strip_decorations(text: str, smart_quotes: bool = True) -> str:
    """Remove what chat clients add around JSON: code fences, backticks, and (unless told
    not to) smart quotes."""
    text = text.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    elif len(text) >= 2 and text.startswith("`") and text.endswith("`"):
        text = text.strip("`").strip()
    return text.translate(SMART_QUOTES) if smart_quotes else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads_or(text: str, default: object) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return default


def check_input(text: str | None, max_bytes: int) -> CheckedInput:
    """Parse a JSON object input; an empty text means {}."""
    as_typed = strip_decorations(text or "", smart_quotes=False)
    cleaned = as_typed.translate(SMART_QUOTES)
    if not cleaned:
        return CheckedInput({}, "{}")
    size = len(cleaned.encode("utf-8"))
    if size > max_bytes:
        raise InputTooLarge(
            f"The JSON input is {human_bytes(size)}; the limit is {human_bytes(max_bytes)}. "
            "Pass large data inside the .py file instead."
        )
    try:
        # JSON that is valid as typed keeps the curly quotes inside its strings; only JSON
        # that needs it has a client's smart quotes turned back into plain ones
        value = _loads_or(as_typed, _NOT_JSON)
        if value is _NOT_JSON:
            value = json.loads(cleaned, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(_decode_error(cleaned, exc)) from exc
    except ValueError as exc:
        raise InvalidInput(f"The input is not valid JSON: {exc}. Example: {EXAMPLE}") from exc
    if not isinstance(value, dict):
        kind = {
            list: "a list",
            str: "a string",
            int: "a number",
            float: "a number",
            bool: "true/false",
            type(None): "null",
        }.get(type(value), type(value).__name__)
        raise InvalidInput(
            f"The input must be a JSON object (keys and values in braces), not {kind}. "
            f"Example: {EXAMPLE}"
        )
    reserved = sorted(k for k in value if k.startswith("__") and k.endswith("__"))
    if reserved:
        raise InvalidInput(f"Input keys like {reserved[0]} are reserved by Python; rename them.")
    canonical = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return CheckedInput(value, canonical)


def _decode_error(text: str, exc: json.JSONDecodeError) -> str:
    line = text.splitlines()[exc.lineno - 1] if text.splitlines() else ""
    snippet = line[max(0, exc.colno - 30) : exc.colno + 30]
    caret = " " * (min(exc.colno, 30) - 1) + "^"
    hint = ""
    if "'" in text and '"' not in text:
        hint = " JSON needs double quotes around keys and strings."
    elif "property name" in exc.msg:
        hint = " Keys must be in double quotes, and there must be no trailing comma."
    return (
        f"The input is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        f"{hint}\n{snippet}\n{caret}\nExample: {EXAMPLE}"
    )


def clean_file_name(name: str) -> str:
    """The last path component, without control characters, at most 100 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[-100:] if len(base) > 100 else base


def check_file(name: str, data: bytes, max_bytes: int) -> CheckedFile:
    """A .py file of UTF-8 text within the size limit."""
    clean = clean_file_name(name)
    if not clean:
        raise InvalidFile("The file has no name; send a .py file such as soma.py.")
    if not clean.lower().endswith(".py"):
        raise InvalidFile(
            f"{clean} is not a Python file: jobbot runs .py files. "
            "Rename it or save your script as a .py file."
        )
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"{clean} is {human_bytes(len(data))}; the limit is {human_bytes(max_bytes)}."
        )
    if not data.strip():
        raise InvalidFile(f"{clean} is empty: there is no code to run.")
    if b"\x00" in data:
        raise InvalidFile(
            f"{clean} contains NUL bytes, so it is not Python source (is it a binary file?)."
        )
    try:
        code = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFile(
            f"{clean} is not UTF-8 text (bad byte at position {exc.start}). "
            "Save it as UTF-8 and send it again."
        ) from exc
    code = code.removeprefix("\ufeff")
    return CheckedFile(clean, code, hashlib.sha256(data).hexdigest())
