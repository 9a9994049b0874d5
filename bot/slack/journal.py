"""The intake journal's Slack side: what a held request records, and the sweeper that finishes
requests whose process died after acknowledging them to Slack."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bot.core.models import HeldRequest
from bot.errors import StoreError
from bot.slack.uploads import SlackFile

log = logging.getLogger(__name__)

# A request not finished after this long is taken up by another (or a restarted) process. It
# is far longer than any download and submission, which take well under a second
# (JOBBOT_INTAKE_LEASE).
HOLD_LEASE_S = 60.0
SWEEP_INTERVAL_S = 10.0


class HeldKind:
    """The kinds of held request."""

    COMMAND = "command"  # /job run: find the latest upload (or open the form), submit
    FORM = "form"  # the Run job form was submitted: download and submit
    MESSAGE = "message"  # a message to the bot (DM or mention), possibly with a file
    RERUN = "rerun"  # a Re-run button


def file_to_dict(file: SlackFile) -> dict[str, Any]:
    """A Slack file reference as JSON."""
    return dataclasses.asdict(file)


def file_from_dict(data: Mapping[str, Any]) -> SlackFile:
    """The Slack file reference a held request recorded."""
    fields = {f.name for f in dataclasses.fields(SlackFile)}
    return SlackFile(**{k: v for k, v in data.items() if k in fields})


class Sweeper:
    """Every SWEEP_INTERVAL_S, hands orphaned requests to `take_up` (and once at start)."""

    def __init__(
        self,
        orphans: Callable[[], list[HeldRequest]],
        take_up: Callable[[HeldRequest], None],
        interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.orphans = orphans
        self.take_up = take_up
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="intake-sweeper", daemon=True)

    def start(self) -> None:
        """Start sweeping."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sweep(self) -> int:
        """Take up what is orphaned now; returns how many."""
        try:
            found = self.orphans()
        except StoreError as exc:  # the database is down: the requests stay held
            log.warning("intake sweep failed: %s", exc.message)
            return 0
        for request in found:
            log.warning(
                "taking up a request its process did not finish",
                extra={"kind": request.kind, "attempt": request.attempts},
            )
            self.take_up(request)
        return len(found)

    def _loop(self) -> None:
        while True:
            self.sweep()
            if self._stop.wait(self.interval_s):
                return
