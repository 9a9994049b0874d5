"""RequestGuard: what an HTTP request must pass before Bolt parses it (a valid, fresh signature
seen for the first time), and the fields every Slack payload jobbot handles must carry."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.core.metrics import Metrics
from bot.errors import StoreError, StoreUnavailable
from bot.slack import keys

log = logging.getLogger(__name__)
WINDOW_S = 300  # Slack's own rule: a request signed more than 5 minutes ago is refused
PRUNE_EVERY_S = 60.0
_LOCAL_MAX = 50_000  # signatures kept in memory while the database cannot remember them
DOWN_PAUSE_S = 5.0  # after the database failed to remember, ask it again only this much later
REMEMBER_BUDGET_S = 0.6  # the longest a request waits for the database to remember it


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: the HTTP status and a short reason (also the metric label)."""

    status: int
    reason: str

    @property
    def text(self) -> str:
        """The plain-text body sent back."""
        return f"{self.reason.replace('_', ' ')}\n"


class RequestGuard:
    """Checks Slack's signature, its age and that the request was not seen before.

    A captured request could otherwise be sent again within Slack's 5-minute window, and
    its answer (a `/job status` of the victim, say) would go to whoever replays it. Each
    signature is remembered through `remember` (a dedupe key in the database, shared by
    every `serve` process) until it is too old to pass the age check anyway. Slack's own
    retries are signed anew, so they pass. `remember` is idempotent for one call: when the
    answer to its commit is lost and the database layer runs it again, it is still the
    first. While the database cannot remember, this process remembers alone: the request
    itself would fail on the database anyway.

    Args:
        signing_secret: SLACK_SIGNING_SECRET.
        remember: records a key; True only the first time (SlackMemory.first_time).
        forget: deletes keys with a prefix older than some seconds (run once a minute).
        metrics: counts rejections as jobbot_slack_requests_rejected_total{reason}.
    """

    def __init__(
        self,
        signing_secret: str,
        remember: Callable[[str], bool],
        forget: Callable[[str, float], int],
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        remember_budget_s: float = REMEMBER_BUDGET_S,
        threads: int = 8,
    ) -> None:
        self._budget = remember_budget_s
        # The database is asked on these threads, so that a request waits for it no longer
        # than the budget (a thread started per request costs more than the insert itself).
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="replay-memory")
        self._secret = signing_secret.encode()
        self._remember = remember
        self._forget = forget
        self._metrics = metrics
        self._clock = clock
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0
        self._db_retry_at = 0.0  # while in the future, the database is not asked (it was down)

    def check(self, headers: Mapping[str, str], body: bytes) -> Rejection | None:
        """None when the request may go on; else why not."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        now = self._clock()
        if not timestamp or not signature:
            return self._reject(401, "unsigned")
        if not timestamp.isdigit() or abs(now - int(timestamp)) > WINDOW_S:
            return self._reject(401, "stale_signature")
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self._reject(401, "bad_signature")
        if not self._first_time(signature, now):
            return self._reject(401, "replayed")
        self._prune_later(now)
        return None

    def _reject(self, status: int, reason: str) -> Rejection:
        if self._metrics is not None:
            self._metrics.inc(
                "jobbot_slack_requests_rejected_total",
                "Slack HTTP requests refused before processing, by reason.",
                reason=reason,
            )
        log.info("slack request refused", extra={"reason": reason})
        return Rejection(status, reason)

    def _first_time(self, signature: str, now: float) -> bool:
        with self._lock:
            if signature in self._local:
                return False
            ask_database = now >= self._db_retry_at
            if ask_database and self._db_retry_at:
                # It was down: this request tries it again, the others meanwhile do not wait.
                self._db_retry_at = now + DOWN_PAUSE_S
        if ask_database:
            try:
                first = self._ask(keys.signature(signature))
            except StoreError as exc:
                # A try waits out the store's retries (a second or more; a silent database, its
                # timeouts): every request paying that would push acks past Slack's 3 s.
                with self._lock:
                    self._db_retry_at = now + DOWN_PAUSE_S
                log.warning("replay memory unavailable, remembering in this process: %s", exc)
            else:
                with self._lock:
                    self._db_retry_at = 0.0
                return first
        with self._lock:
            if len(self._local) > _LOCAL_MAX:
                self._local = {s: t for s, t in self._local.items() if now - t <= WINDOW_S}
            if signature in self._local:
                return False
            self._local[signature] = now
            return True

    def _ask(self, key: str) -> bool:
        """`remember(key)`, waited for at most the budget (it goes on in the background)."""
        answer = self._pool.submit(self._remember, key)
        try:
            return answer.result(timeout=self._budget)
        except TimeoutError:
            raise StoreUnavailable(
                f"the database did not answer within {self._budget:g} s"
            ) from None

    def close(self) -> None:
        """Stop the threads that ask the database (a call under way finishes by itself)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _prune_later(self, now: float) -> None:
        """Once a minute, forget signatures too old to be replayed (off the request path)."""
        with self._lock:
            if now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY_S
            self._local = {s: t for s, t in self._local.items() if now - t <= WINDOW_S}
        threading.Thread(target=self._prune, name="replay-prune", daemon=True).start()

    def _prune(self) -> None:
        try:
            self._forget(keys.SIGNATURE_PREFIX, WINDOW_S + PRUNE_EVERY_S)
        except StoreError as exc:
            log.info("old request signatures not pruned: %s", exc)


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def malformed(body: Mapping[str, Any]) -> str | None:
    """What a signed payload lacks that jobbot needs (who asked, what was clicked), or None.

    Slack always sends these fields; a payload without them is refused with 400 before any
    listener sees it, so no half-known user or job is ever stored.
    """
    kind = body.get("type")
    user, team = _dict(body.get("user")), _dict(body.get("team"))
    needed: dict[str, object]
    if "command" in body:
        needed = {"team_id": body.get("team_id"), "user_id": body.get("user_id")}
    elif kind == "event_callback":
        event = _dict(body.get("event"))
        needed = {"team_id": body.get("team_id"), "event.type": event.get("type")}
    elif kind in {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}:
        needed = {"user.id": user.get("id"), "team.id": team.get("id") or user.get("team_id")}
        if kind == "block_actions":
            actions = body.get("actions")
            listed = actions if isinstance(actions, list) else []
            ok = bool(listed) and all(_text(_dict(a).get("action_id")) for a in listed)
            needed["actions"] = "ok" if ok else None
        elif kind in {"view_submission", "view_closed"}:
            view = _dict(body.get("view"))
            needed["view.type"] = view.get("type")
            needed["view.callback_id"] = view.get("callback_id")
    else:
        return None
    missing = [name for name, value in needed.items() if not _text(value)]
    return ", ".join(missing) if missing else None
