"""A job's files: its data files placed read-only beside its code, and what it leaves in
`out/` collected once every process of the job is gone (the same on every executor).

Collection trusts nothing in `out/`: only regular files with one link are read (never a
symbolic link, a hard link, a FIFO or a device), each opened without following links and
checked again once open; names are cleaned (filenames.py); the count, the total size and an image's
claimed pixels are capped; every file left out is named in a note. The files kept must fit, with
the job's output, in one result of the size Lambda can return, on every executor.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import struct
from typing import Any, NamedTuple

from .filenames import clean_name, unique_name

OUT_DIR = "out"
# an image may claim at most this many pixels: a viewer (Slack's thumbnailer) decodes it whole
MAX_PIXELS = 50_000_000
_SCAN_LIMIT = 100_000  # entries of out/ looked at; beyond, only "more" is said
_NOTE_NAMES = 5  # files named in a note before "and N more"
_PNG = b"\x89PNG\r\n\x1a\n"
# Lambda refuses synchronous responses above 6 MB (a function error, the result lost); a job's
# result fits that on every executor, so the same files are kept everywhere. The margin is for
# what the runtime may escape when it encodes the reply.
RESPONSE_LIMIT = 6 * 1024 * 1024
RESPONSE_BUDGET = RESPONSE_LIMIT - 256 * 1024


class OutFile(NamedTuple):
    """A file collected from `out/` (a NamedTuple, like the other value objects a fresh
    child imports)."""

    name: str
    data: bytes


def check_input_name(name: str) -> str | None:
    """Why `name` cannot be a data file's name in the job directory, or None if it can."""
    if name != clean_name(name) or name in (OUT_DIR, "..", "."):
        return f"{name!r} is not a plain file name"
    return None


def place(workdir: str, inputs: list[tuple[str, bytes]], uid: int | None) -> None:
    """Write the data files read-only into the job directory and make `out/` for the job
    (owned by `uid` when the job runs as one). Raises OSError."""
    for name, data in inputs:
        fd = os.open(
            os.path.join(workdir, name),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o444,
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    out = os.path.join(workdir, OUT_DIR)
    os.mkdir(out, 0o755)
    if uid is not None:
        os.chown(out, uid, uid)


def image_pixels(data: bytes) -> int | None:
    """The pixels an image claims in its header, read from its bytes whatever its name
    (PNG, GIF, JPEG, WebP: the images a chat or a browser decodes), never decoded; None for
    anything else."""
    if data.startswith(_PNG) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width) * int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width) * int(height)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_pixels(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_pixels(data)
    return None


# JPEG markers whose segment is a frame header (SOF0-15 but DHT, JPG and DAC; and DHP, the
# hierarchical image's size): precision, height, width.
_JPEG_FRAMES = frozenset({*range(0xC0, 0xD0), 0xDE}) - {0xC4, 0xC8, 0xCC}


def _jpeg_pixels(data: bytes) -> int | None:
    """The pixels of a JPEG's first frame header, found by walking its segments (those
    before it, EXIF and other APPn, may be long); None without one before the scan."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # the end, or the scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_FRAMES and length >= 7 and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width) * int(height)
        i += 2 + length
    return None


def _webp_pixels(data: bytes) -> int | None:
    """The pixels a WebP claims: its canvas (VP8X), or its one frame (VP8L, VP8)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width * height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ((bits & 0x3FFF) + 1) * (((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF) * int(height & 0x3FFF)
    return None


def _read_regular(out_fd: int, name: str, limit: int) -> tuple[bytes | None, str | None]:
    """(the bytes, None) of a regular, singly linked file of at most `limit` bytes in the
    directory `out_fd`, or (None, why it is left out)."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=out_fd
        )
    except OSError as exc:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=out_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        return None, "a symbolic link" if is_link else f"unreadable ({exc.strerror})"
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None, "a directory: only files directly in out/ are kept"
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_nlink != 1:
            return None, "a hard link"
        if info.st_size > limit:
            return None, f"{info.st_size:,} bytes: over the limit"
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        return None, "it grew while it was read: over the limit"
    pixels = image_pixels(data)
    if pixels is not None and pixels > MAX_PIXELS:
        return None, f"an image of {pixels:,} pixels (limit {MAX_PIXELS:,})"
    return data, None


def _scan(out_fd: int) -> tuple[list[str], bool]:
    """Up to _SCAN_LIMIT entry names of the directory `out_fd`, sorted, and whether there
    were more."""
    names: list[str] = []
    with os.scandir(out_fd) as entries:
        for entry in entries:
            if len(names) >= _SCAN_LIMIT:
                return sorted(names), True
            names.append(entry.name)
    return sorted(names), False


def _open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def collect(workdir: str, max_files: int, max_bytes: int) -> tuple[list[OutFile], list[str]]:
    """The files the job left in `out/` (sorted by name) within the limits, and a note for
    each kind of file left out. Call it only once every process of the job is gone; no
    link is followed, not even one put in place of the job directory or of out/."""
    try:
        work_fd = _open_dir(workdir)
    except OSError:
        return [], []
    try:
        try:
            out_fd = _open_dir(OUT_DIR, work_fd)
        except FileNotFoundError:
            return [], []
        except OSError:
            return [], [f"{OUT_DIR} is not a directory, so no file was kept"]
        try:
            return _collect(out_fd, max_files, max_bytes)
        finally:
            os.close(out_fd)
    finally:
        os.close(work_fd)


def _collect(out_fd: int, max_files: int, max_bytes: int) -> tuple[list[OutFile], list[str]]:
    names, more = _scan(out_fd)
    files: list[OutFile] = []
    taken: set[str] = set()
    skipped: list[str] = []
    over_count = 0
    total = 0
    for raw in names:
        name = unique_name(clean_name(raw), taken)
        if len(files) >= max_files:
            over_count += 1
            continue
        data, why = _read_regular(out_fd, raw, max_bytes - total)
        if data is None:
            if why and why.endswith("over the limit"):
                why = f"{why} of {max_bytes:,} bytes for all files together"
            skipped.append(f"{name} ({why})")
            continue
        taken.add(name)
        total += len(data)
        files.append(OutFile(name, data))
    notes = [f"left out: {item}" for item in skipped[:_NOTE_NAMES]]
    if len(skipped) > _NOTE_NAMES:
        notes.append(f"and {len(skipped) - _NOTE_NAMES} more files left out")
    if over_count or more:
        extra = f"{over_count}{'+' if more else ''}"
        notes.append(f"{extra} more files left out: at most {max_files} files are kept")
    return files, notes


def attach(response: dict[str, Any], workdir: str, max_files: int, max_bytes: int) -> None:
    """Add the files collected from `workdir`'s out/ to a v1 response, with every note (the
    job's own, about figures, first), as many as fit in one result (fit_files)."""
    found, notes = collect(workdir, max_files, max_bytes)
    response["files"] = [
        {"name": name, "data": base64.b64encode(data).decode("ascii")} for name, data in found
    ]
    earlier = response.get("files_note")
    joined = "; ".join([earlier, *notes] if earlier else notes)
    response["files_note"] = joined or None
    if found:  # without files nothing can be left out
        fit_files(response)


def encoded_size(response: dict[str, Any]) -> int:
    """Bytes of a v1 response as JSON."""
    return len(json.dumps(response, ensure_ascii=False).encode("utf-8", "replace"))


def fit_files(response: dict[str, Any], limit: int = RESPONSE_BUDGET) -> int:
    """Leave out files of a v1 response, the largest first, until it fits in `limit` bytes of
    JSON (base64 makes 4 MB of files 5.3 MB, and the output counts too), each named in a
    note; the response's size after."""
    size = encoded_size(response)
    kept = sorted(response.get("files") or [], key=lambda entry: len(entry["data"]))
    dropped = []
    while kept and size > limit:
        dropped.append(kept.pop()["name"])  # the largest first
        response["files"] = [entry for entry in response["files"] if entry in kept]
        size = encoded_size(response)
    if dropped:
        names = ", ".join(dropped)
        note = f"left out: {names} (with the job's output, over the 6 MB a job's result may hold)"
        earlier = response.get("files_note")
        response["files_note"] = f"{earlier}; {note}" if earlier else note
        size = encoded_size(response)
    return size
