"""The runner function's code: the sandbox's Lambda half alone, zipped reproducibly.

Entries are stored, not compressed: a deflated stream's bytes depend on the zlib that made
it, so doctor's "code differs" row would flip between machines. CRC-32 is the same
everywhere (and zipfile computes it without zlib too). The sources are small: stored, the
zip stays far under Lambda's 50 MB for a direct upload.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import bot.sandbox

PACKAGE = "sandbox"  # the sandbox's top-level name inside the function
HANDLER = f"{PACKAGE}.fresh.lambda_handler.handler"
# the shared top level always; of the subpackages only these (zygote/ is the local mode's)
SUBPACKAGES = ("inside", "fresh")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_FILE_MODE = 0o100644  # regular file, rw-r--r--


def sandbox_dir() -> Path:
    """Where the sandbox sources live."""
    return Path(bot.sandbox.__file__).resolve().parent


def package_files() -> list[tuple[str, bytes]]:
    """(name in the zip, content) of every file of the function, sorted by name."""
    root = sandbox_dir()
    files = [p for d in ("", *SUBPACKAGES) for p in (root / d).glob("*.py") if p.is_file()]
    named = [(f"{PACKAGE}/{p.relative_to(root).as_posix()}", p) for p in files]
    return [(name, p.read_bytes()) for name, p in sorted(named)]


def build_zip() -> bytes:
    """The deployment package; the same sources always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in package_files():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = _FILE_MODE << 16
            info.create_system = 3  # Unix, so the mode above is honoured
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


def unzipped_size(zip_bytes: bytes) -> int:
    """Bytes of the files in a zip once unpacked (what Lambda counts against 250 MB)."""
    return sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(zip_bytes)).infolist())


def code_sha256(zip_bytes: bytes) -> str:
    """The package's hash as Lambda reports it (CodeSha256: base64 of the SHA-256)."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode("ascii")
