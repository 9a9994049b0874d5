"""Waiting for the operator's stop: SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    """SIGTERM and SIGINT caught from the moment this is made (main thread only): one that
    arrives while the process is still starting is kept for later instead of killing it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self._event.is_set()

    def wait(self) -> None:
        """Block until a stop signal arrives (at once if one already did)."""
        self._event.wait()


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT arrives (installs the handlers; main thread only)."""
    StopRequest().wait()
