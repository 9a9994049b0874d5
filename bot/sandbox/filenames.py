"""The one rule for a job's file names, data files in and files out alike: one plain,
printable path component, and a number added where names clash. Standard library only and
importing nothing of ours, so both the sandbox and bot.core (its data-file checks) use it."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection

MAX_NAME = 100  # characters of a job's file name
_MAX_EXTENSION = 10  # characters of an extension kept when a long name is cut


def clean_name(raw: str) -> str:
    """`raw` as one plain, printable path component: control and format characters, slashes
    and backslashes become "_", leading dots go, at most MAX_NAME characters (the extension
    kept); "file" if nothing is left."""
    text = unicodedata.normalize("NFC", raw).replace("/", "_").replace("\\", "_")
    kept = "".join("_" if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in text)
    kept = kept.strip().lstrip(".").strip() or "file"
    if len(kept) > MAX_NAME:
        _, dot, ext = kept.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= _MAX_EXTENSION else ""
        kept = kept[: MAX_NAME - len(ext) - 1].rstrip() + "." + ext if ext else kept[:MAX_NAME]
    return kept


def unique_name(name: str, taken: Collection[str], reserved: Collection[str] = ()) -> str:
    """`name`, or `stem-2.ext`, `stem-3.ext` ... the first not in `taken` and whose lower
    case is not in `reserved`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    number = 2
    candidate = name
    while candidate in taken or candidate.lower() in reserved:
        candidate = f"{stem}-{number}{'.' + ext if ext else ''}"
        number += 1
    return candidate
