"""The main thread's wait for SIGTERM or SIGINT ends once the signal's handler has run, even
when the signal's arrival does not wake the waiting thread."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from bot.app.shutdown import StopRequest, wait_in_main


class Entered(threading.Event):
    """An event that says when the main thread has started waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


@pytest.fixture
def handlers_restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.usefixtures("handlers_restored")
def test_a_sigterm_that_does_not_wake_the_main_thread_still_ends_its_wait() -> None:
    """CPython runs a signal handler in the main thread when that thread next runs bytecode. A
    SIGTERM that arrived while the main thread waited for the GIL just before blocking (its last
    check for signals behind it) left a plain Event.wait() blocked for good: `worker` ignored
    it. Here the main thread blocks SIGTERM, so the kernel hands it to another thread: its
    handler is due while the main thread's wait is not interrupted, as in that race."""
    stop = Entered()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rescued = threading.Event()

    def send() -> None:
        stop.waiting.wait()  # the main thread is in the wait (it holds no GIL there)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send)  # made before the mask: SIGTERM reaches it
    sender.start()
    rescue = threading.Timer(30, lambda: (rescued.set(), stop.set()))
    rescue.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        wait_in_main(stop)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        rescue.cancel()
        sender.join()
    assert not rescued.is_set(), "the wait ended only when something else set the event"


@pytest.mark.usefixtures("handlers_restored")
def test_a_stop_request_made_before_a_signal_keeps_it_for_its_wait() -> None:
    """A SIGTERM while the process is still starting is kept: the later wait returns at once."""
    stop = StopRequest()
    assert not stop.requested
    signal.raise_signal(signal.SIGTERM)
    assert stop.requested
    stop.wait()
