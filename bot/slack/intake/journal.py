"""The intake journal's Slack side: a request is recorded before its work starts (within the
ack's budget), dropped once handled, and taken up again by the sweeper when the process that
acknowledged it died before finishing it."""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from bot.core.models import HeldRequest
from bot.core.replies import unavailable
from bot.errors import StoreError, StoreOutcomeUnknown
from bot.slack.answers import Where
from bot.slack.intake.context import OOPS, IntakeContext, journaled, maybe_journaled
from bot.slack.uploads import SlackFile

log = logging.getLogger(__name__)

# How long an unacknowledged request waits for its journal record: with the replay check's
# own budget it keeps the ack well inside Slack's 3 s even when the database hangs.
HOLD_BUDGET_S = 0.8
SWEEP_INTERVAL_S = 10.0


class HeldKind:
    """The kinds of held request."""

    COMMAND = "command"  # /job run: find the latest upload (or open the form), submit
    FORM = "form"  # the Run job form was submitted: download and submit
    MESSAGE = "message"  # a message to the bot (DM or mention), possibly with a file
    RERUN = "rerun"  # a Re-run button


class Held(enum.Enum):
    """What became of a request's journal record by the time the ack must leave."""

    HELD = "held"  # recorded: the work is under way
    DOWN = "down"  # the database refused: nothing was saved
    UNKNOWN = "unknown"  # it stopped answering once the record was sent: it may be held
    PENDING = "pending"  # not known yet: the work (or a private answer) follows


def file_to_dict(file: SlackFile) -> dict[str, Any]:
    """A Slack file reference as JSON."""
    return dataclasses.asdict(file)


def file_from_dict(data: Mapping[str, Any]) -> SlackFile:
    """The Slack file reference a held request recorded."""
    fields = {f.name for f in dataclasses.fields(SlackFile)}
    return SlackFile(**{k: v for k, v in data.items() if k in fields})


# Does a held request's work again from what it recorded; False if the record is unusable.
Redo = Callable[[HeldRequest], bool]


class Journal:
    """Holds requests before their work starts, and takes up those a dead process left."""

    def __init__(self, context: IntakeContext, lease_s: float) -> None:
        # A request not finished after `lease_s` (JOBBOT_INTAKE_LEASE) is taken up by another
        # (or a restarted) process: far longer than any download and submission, which take
        # well under a second.
        self.context = context
        self.lease_s = lease_s
        self._redo: dict[str, Redo] = {}

    def register(self, kind: str, redo: Redo) -> None:
        """How to finish a held request of `kind` (each entry point registers its own)."""
        self._redo[kind] = redo

    def hold(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        work: Callable[[], None],
        *,
        where: Where,
        budget: float | None = None,
    ) -> Held:
        """Record the request in the database (journal), then do `work` on the intake pool: if
        this process dies before finishing it, another takes it up (Sweeper). A request
        already held is left to its handler.

        With a `budget` (the request is not acknowledged yet) the hold is waited for that
        long: HELD, or DOWN (the database refused: nothing was saved, say so in the ack), or
        UNKNOWN (it stopped answering once the record was sent: the request may be held, and
        if so the sweeper takes it up when the database is back; say it may have been saved),
        or PENDING (no answer in time: ack "working on it"; the work follows the hold, or the
        person is told privately what became of it). Without one (already acknowledged) it is
        PENDING, and if the hold fails the work runs unjournaled and says what it can.
        """
        context = self.context
        if budget is None:
            # One task holds and then works: a stop that lets the pool's tasks finish finishes
            # this request too (a second task scheduled by the first would be refused).
            context.later(lambda: self._hold_then_work(key, kind, payload, work, where))
            return Held.PENDING
        hold = context.ack_pool.submit(
            context.memory.hold_request, key, kind, payload, self.lease_s
        )

        def settle(done: Future[bool]) -> None:
            try:
                fresh = done.result()
            except StoreError as exc:
                log.warning("request not journaled: %s", exc)
                context.tell(where, unavailable(exc).message)
                return
            except Exception:
                log.exception("journal hold failed")
                context.tell(where, OOPS)
                return
            if fresh:
                context.later(lambda: self._finish(key, work))

        try:
            hold.result(timeout=budget)
        except StoreError as exc:
            log.warning("request not journaled: %s", exc)
            return Held.UNKNOWN if isinstance(exc, StoreOutcomeUnknown) else Held.DOWN
        except TimeoutError:
            hold.add_done_callback(settle)
            return Held.PENDING
        except Exception:
            log.exception("journal hold failed")
            return Held.DOWN
        settle(hold)
        return Held.HELD

    def _hold_then_work(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        work: Callable[[], None],
        where: Where,
    ) -> None:
        """On the intake pool: journal an acknowledged request, then handle it (unjournaled,
        saying what it can, when the database refused the hold). When the hold may have been
        saved, the work is done all the same: if it gets through, the record (if any) is
        dropped, else the person hears it may have been saved (the sweeper takes it up if so;
        the job's idempotency key makes a second go harmless)."""
        try:
            fresh = self.context.memory.hold_request(key, kind, payload, self.lease_s)
        except StoreOutcomeUnknown as exc:
            log.warning("request perhaps journaled: %s", exc)
            with maybe_journaled() as failed:
                work()
            if not failed:
                self._drop(key)
            return
        except StoreError as exc:
            log.warning("request not journaled: %s", exc)
            work()
            return
        except Exception:
            log.exception("journal hold failed")
            self.context.tell(where, OOPS)
            return
        if fresh:
            self._finish(key, work)

    def take_up(self, request: HeldRequest) -> None:
        """Finish a request another process acknowledged but did not finish."""
        redo = self._redo.get(request.kind)

        def work() -> None:
            if redo is None or not redo(request):
                log.error("held request of an unknown kind dropped", extra={"kind": request.kind})

        self.context.later(lambda: self._finish(request.key, work))

    def _finish(self, key: str, work: Callable[[], None]) -> None:
        """Do a journaled request's work, then drop it from the journal; unless the database
        failed under it: then it stays, and the sweeper takes it up when the database is back
        (the person was told it is kept, never "nothing was saved")."""
        with journaled() as kept:
            try:
                work()
            except StoreError as exc:
                kept.append(exc)
            finally:
                if not kept:
                    self._drop(key)
        if kept:
            log.warning("database failed under a journaled request: kept for the sweeper")

    def _drop(self, key: str) -> None:
        try:
            self.context.memory.drop_held_request(key)
        except StoreError:
            # Still held: it is taken up again later, and handled idempotently.
            log.warning("could not drop a handled request from the journal")


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
