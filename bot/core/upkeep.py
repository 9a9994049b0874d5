"""A worker pool's upkeep in the background: saying it is alive, extending the leases of its
runs, recovering the jobs of vanished pools, and deleting files past their retention."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.core.ports import WorkerStore
from bot.core.stops import Flight
from bot.errors import StoreError

if TYPE_CHECKING:  # the pool's module imports this one
    from bot.core.worker import WorkerConfig

log = logging.getLogger(__name__)
PRESENCE_EVERY_S = 5.0  # how often a running pool tells the store it is alive
PRESENCE_WINDOW_S = 3 * PRESENCE_EVERY_S  # a pool not heard of for this long is gone
FORGET_EVERY_S = 60.0  # how often a pool deletes the files past their retention


class Upkeep:
    """The presence and sweep loops of one pool; both end once `stopping` is set.

    It reads the pool's `flights` under the pool's condition, sets `wake` when jobs were
    requeued, and calls `on_settled` when jobs reached a final state.
    """

    def __init__(
        self,
        store: WorkerStore,
        config: WorkerConfig,
        *,
        cond: threading.Condition,
        flights: dict[int, Flight],
        stopping: threading.Event,
        wake: threading.Event,
        on_settled: Callable[[], None],
    ) -> None:
        self.store = store
        self.config = config
        self._cond = cond
        self._flights = flights
        self._stopping = stopping
        self._wake = wake
        self._on_settled = on_settled

    def presence_loop(self) -> None:
        """Tell the store this pool is alive until it stops claiming."""
        while True:
            try:
                self.store.worker_seen(self.config.worker_id)
            except StoreError as exc:
                log.warning("worker presence not recorded: %s", exc)
            if self._stopping.wait(PRESENCE_EVERY_S):
                return

    def sweep_loop(self) -> None:
        """Every sweep interval: extend leases, delete old files, recover expired leases."""
        forgotten_at = 0.0
        while not self._stopping.wait(self.config.sweep_interval):
            self._heartbeat()
            if self.config.files_retention_s and time.monotonic() - forgotten_at > FORGET_EVERY_S:
                forgotten_at = time.monotonic()
                self._forget_old_files()
            try:
                recovery = self.store.recover_expired()
            except StoreError as exc:
                log.warning("lease sweep failed: %s", exc)
                continue
            if recovery.requeued:
                log.warning(
                    "requeued jobs whose worker vanished before running them",
                    extra={"job_ids": list(recovery.requeued)},
                )
                self._wake.set()
            if recovery.interrupted:
                log.warning(
                    "jobs interrupted by a vanished worker",
                    extra={"job_ids": list(recovery.interrupted)},
                )
                self._on_settled()

    def _forget_old_files(self) -> None:
        """The retention sweep: delete the files of jobs older than the retention."""
        before = datetime.now(UTC) - timedelta(seconds=self.config.files_retention_s)
        try:
            gone = self.store.forget_files(before)
        except StoreError as exc:
            log.warning("file retention sweep failed: %s", exc)
            return
        if gone:
            log.info("deleted files past their retention", extra={"files": gone})

    def _heartbeat(self) -> None:
        """Extend the leases of runs still in progress here (bounded by the job timeout)."""
        limit = self.config.job_timeout + self.config.lease_s
        now = time.monotonic()
        with self._cond:
            flights = list(self._flights.items())
        for job_id, flight in flights:
            if now - flight.since < limit and not flight.settled:
                try:
                    self.store.extend_lease(job_id, flight.claim.token, self.config.lease_s)
                except StoreError:
                    return
