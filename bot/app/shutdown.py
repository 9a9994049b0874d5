"""Waiting for the operator's stop: SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT arrives (installs the handlers; main thread only)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    stop.wait()
