"""Slack's published rate limits, and the Pacer that gives each outbox call its turn in them.

Sources: Slack's "Rate limits" guide (https://docs.slack.dev/apis/web-api/rate-limits), each
method's reference page for its tier, and chat.postMessage's page for posting ("generally
allows posting one message per second per channel, while also maintaining a workspace-wide
limit"; "short bursts >1 allowed"). Limits are per method per app per workspace, except
posting, which is per channel. The rates below are Slack's; the bursts are smaller than
Slack tolerates (it does not size them), so that a little jitter never meets a 429.

The buckets live in the database (bot/store/pace.py), so every `serve` and `worker` process
shares them. A result takes the next turn even if it lies in the future (a reservation kept
in the job's delivery progress, so a retry uses it); progress (a status message or its edit)
goes only while its buckets are full, so it never spends a token a result will need: results
go first. A 429 empties that one bucket until its Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.core.metrics import Metrics
from bot.core.pacing import Rate, backlog
from bot.errors import StoreError
from bot.slack.delivery import Progress

log = logging.getLogger(__name__)

POST = "chat.postMessage"
PREFIX = "slack:"
# chat.postMessage: 1 a second per channel, short bursts (a public report measured ~25). Turns
# are never early, so a burst of 3 still leaves 2 s of margin against a bucket of 5 (the
# stand-in's) for calls that reach Slack bunched (a loaded host, a network).
POST_PER_CHANNEL = Rate(1.0, 3)
# The workspace-wide posting limit is not published: assumed 8 a second, small bursts.
POST_PER_WORKSPACE = Rate(8.0, 10)
TIER_3 = Rate(50 / 60, 5)  # "50+ per minute"
TIER_4 = Rate(100 / 60, 10)  # "100+ per minute"
METHODS: dict[str, Rate] = {
    "chat.update": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.publish": TIER_4,
    "views.open": TIER_4,
    "files.info": TIER_4,
    # files_upload_v2 calls both, plus the upload itself (not a Web API method).
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
}
UPLOAD = "files_upload_v2"  # one turn in each method it calls
UPLOAD_METHODS = ("files.getUploadURLExternal", "files.completeUploadExternal")
HOME_PREFIX = PREFIX + "home:"
# A bucket full again for this long is forgotten (its row deleted; a missing row is a full
# bucket). For an App Home, that forgets that its user opened it: they get no refresh until
# they open it again (which publishes it anyway).
STALE_S = 24 * 3600.0
PRUNE_EVERY_S = 600.0
# A status message promises a chat.update later (its final edit, which a result waits for), so
# new status messages go at Tier 3's rate too: the edits they promise never pile up in
# chat.update's bucket. Without this, a burst of jobs that each waited over the quiet period
# in the queue posted a status message apiece and then told their owners at 50 a minute. No
# burst: each one goes only while its channel's bucket is full, and in a burst that is at its
# start, just before the results come and need every turn.
STATUS = PREFIX + "status"
STATUS_RATE = Rate(TIER_3.per_s, 1)


class Held(Exception):
    """A call must wait `wait_s` for its turn; nothing was sent."""

    def __init__(self, method: str, wait_s: float) -> None:
        super().__init__(f"{method}: waiting {wait_s:.2f} s for Slack's rate limit")
        self.method = method
        self.wait_s = wait_s


class PaceMemory(Protocol):
    """The shared buckets (the SQL store satisfies it)."""

    def take_turn(self, buckets: Sequence[tuple[str, Rate]], now: float, *, wait: bool) -> float:
        """When a call through these buckets may go (reserved with `wait`)."""

    def refused_turn(self, bucket: str, rate: Rate, now: float, retry_after: float) -> None:
        """The service refused a call through `bucket` for `retry_after` seconds."""

    def turns_ahead(self, prefix: str, since: float) -> list[tuple[str, float]]:
        """(bucket, arrival time) of the buckets under `prefix` with turns after `since`."""

    def forget_turns(self, prefix: str, before: float) -> int:
        """Delete the buckets under `prefix` whose arrival time is before `before`."""


def buckets(method: str, channel: str | None = None) -> list[tuple[str, Rate]]:
    """The buckets a call goes through: its channel's and the workspace's for a post, its
    method's tier otherwise (the first is the one a 429 empties)."""
    if method == POST:
        return [
            (f"{PREFIX}post:{channel or '?'}", POST_PER_CHANNEL),
            (f"{PREFIX}post:*", POST_PER_WORKSPACE),
        ]
    if method == UPLOAD:
        return [(PREFIX + m, METHODS[m]) for m in UPLOAD_METHODS]
    return [(PREFIX + method, METHODS.get(method, TIER_3))]


def bucket_class(key: str) -> str:
    """A metric label for a bucket: its method, without the channel."""
    name = key.removeprefix(PREFIX)
    if name.startswith("post:"):
        return "post:workspace" if name == "post:*" else "post:channel"
    return name.split(":", 1)[0]


class Pacer:
    """Gives each Slack call of the outbox its turn in the shared buckets."""

    def __init__(
        self,
        memory: PaceMemory,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.memory = memory
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def turn(
        self,
        progress: Progress,
        method: str,
        channel: str | None,
        *,
        result: bool,
        status: bool = False,
    ) -> None:
        """Return when the call may go now; raise Held otherwise. A result's future turn is
        reserved and kept in `progress`; progress (`result=False`) goes only while the
        buckets are full, and reserves nothing. A new status message (`status`) also takes
        a turn in the STATUS bucket."""
        self._prune_later()
        through = buckets(method, channel)
        if status:
            through.append((STATUS, STATUS_RATE))
        key = through[0][0]
        now = self.clock()
        kept = progress.get("turn")
        if isinstance(kept, str) and "@" in kept:
            kept_key, _, at_text = kept.rpartition("@")
            at = float(at_text)
            if kept_key == key:
                if at > now:
                    raise Held(method, at - now)
                progress.set(turn=None)
                return
            progress.set(turn=None)  # a turn for another call: that call is no longer next
        at = self.memory.take_turn(through, now, wait=result)
        if at <= now:
            return
        if result:
            progress.set(turn=f"{key}@{at!r}")
        raise Held(method, at - now)

    def _prune_later(self) -> None:
        """Every PRUNE_EVERY_S, forget the buckets full again for STALE_S (a thread of its own:
        never in a delivery's way)."""
        now = self.clock()
        with self._lock:
            if now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY_S
        threading.Thread(target=self.prune, args=(now,), name="pace-prune", daemon=True).start()

    def prune(self, now: float) -> int:
        """Forget the buckets that have been full again for STALE_S; how many."""
        try:
            return self.memory.forget_turns(PREFIX, now - STALE_S)
        except StoreError as exc:
            log.info("stale rate buckets not pruned: %s", exc)
            return 0

    def spend(self, method: str, channel: str | None) -> None:
        """Count a call that went without waiting for its turn (an answer to the asker): one
        token of each of its buckets, so later turns fall after it. Never raises."""
        try:
            self.memory.take_turn(buckets(method, channel), self.clock(), wait=True)
        except StoreError as exc:
            log.info("an answer was not counted in the rate buckets: %s", exc)

    def refused(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429: that bucket alone is empty until Retry-After."""
        key, rate = buckets(method, channel)[0]
        if self.metrics is not None:
            self.metrics.inc(
                "jobbot_slack_rate_limited_total",
                "429s received from Slack, by bucket.",
                bucket=bucket_class(key),
            )
        self.memory.refused_turn(key, rate, self.clock(), retry_after)

    def backlog(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        """Turns already given out ahead of now, per bucket (a gauge's series)."""
        now = self.clock()
        rates = {PREFIX + m: r for m, r in METHODS.items()}
        rates[f"{PREFIX}post:*"] = POST_PER_WORKSPACE
        rates[STATUS] = STATUS_RATE
        out: list[tuple[tuple[tuple[str, str], ...], float]] = []
        for key, tat in self.memory.turns_ahead(PREFIX, now):
            if key.startswith(HOME_PREFIX):
                continue
            rate = rates.get(key, POST_PER_CHANNEL)
            ahead = backlog(tat, now, rate)
            if ahead > 0:
                out.append(((("bucket", key.removeprefix(PREFIX)),), round(ahead, 1)))
        return out
