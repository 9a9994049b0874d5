"""File descriptors the sandbox prepares for a job's process: copies kept clear of its fixed
slots, and unlinked files for it to read."""

from __future__ import annotations

import fcntl
import os
import tempfile

_ABOVE = 10  # the job's fixed slots (stdin, stdout, stderr, the request and the record) are below


def high(fd: int) -> int:
    """A close-on-exec copy of `fd` above the job's fixed slots; the original is closed."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _ABOVE)
    os.close(fd)
    return copy


def unlinked_file(directory: str, data: bytes) -> int:
    """A high fd of a file in `directory` that holds `data`, read from the start; the file
    has no name left, so the job sees only the open fd."""
    fd, path = tempfile.mkstemp(dir=directory)
    os.unlink(path)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return high(fd)
