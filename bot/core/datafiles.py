"""Checks on the data files a user gives a job (beside its .py): safe names, the total size.
Each failure is a clear, actionable UserError raised before anything is stored."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence

from bot.core.models import JobFile
from bot.core.units import human_bytes
from bot.errors import InvalidFile
from bot.sandbox.filenames import clean_name, unique_name

RESERVED = ("out",)  # the job's directory for files out


def data_file_name(raw: str) -> str:
    """A user's file name as one plain, printable path component, by the sandbox's own rule
    (bot/sandbox/filenames.py) applied to its last path component."""
    return clean_name(raw.replace("\\", "/").rsplit("/", 1)[-1])


def too_large(names: Sequence[str], total: int, max_bytes: int) -> InvalidFile:
    """The refusal of data files that are `total` bytes together, over `max_bytes`."""
    listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return InvalidFile(
        f"The data files ({listed}) are {human_bytes(total)} together; the limit is "
        f"{human_bytes(max_bytes)}. Send smaller files, or fewer of them."
    )


def check_data_files(
    files: Sequence[tuple[str, bytes]], code_name: str, max_bytes: int
) -> tuple[JobFile, ...]:
    """The data files under safe, distinct names (never the code's own, never out/), or
    InvalidFile when together they are over `max_bytes`."""
    total = sum(len(data) for _, data in files)
    if total > max_bytes:
        raise too_large([name for name, _ in files], total, max_bytes)
    taken = {code_name}
    checked = []
    for raw, data in files:
        name = unique_name(data_file_name(raw), taken, RESERVED)
        taken.add(name)
        checked.append(JobFile(name, bytes(data)))
    return tuple(checked)


def media_type(name: str) -> str:
    """The media type a file's name suggests (application/octet-stream when unknown)."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def is_image(name: str) -> bool:
    """True for the images a chat shows inline (PNG, JPEG, GIF)."""
    return media_type(name) in ("image/png", "image/jpeg", "image/gif")
