"""The CLI's exit codes, and the one a finished job's status maps to."""

from __future__ import annotations

from bot.core.models import JobStatus

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_TIMEOUT, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
STATUS_EXIT = {
    JobStatus.DONE: EXIT_OK,
    JobStatus.ERROR: EXIT_ERROR,
    JobStatus.CANCELLED: EXIT_ERROR,
    JobStatus.TIMEOUT: EXIT_TIMEOUT,
}
