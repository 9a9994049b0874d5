"""The App Home tab: publishes a user's recent jobs (their own only) with Re-run buttons."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient

from bot.core.metrics import Metrics
from bot.core.models import Actor, Identity, User
from bot.core.pacing import Rate
from bot.core.service import JobService
from bot.errors import StoreError
from bot.slack.budget import HOME_PREFIX, Pacer, buckets
from bot.slack.posting import CallFailed, call
from bot.slack.views import HOME_JOBS, home_view

log = logging.getLogger(__name__)
DEFAULT_REFRESH_S = 30.0


class HomePublisher:
    """Renders and publishes App Home tabs: when the user opens it, and after that at most once
    per `refresh_s` per user when one of their jobs ends (never once per job). Who opened it,
    and when it was last published, is kept in the shared rate buckets, so every process
    keeps to the same budget."""

    def __init__(
        self,
        client: WebClient,
        service: JobService,
        metrics: Metrics | None = None,
        *,
        pacer: Pacer | None = None,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.client = client
        self.service = service
        self.metrics = metrics
        self.pacer = pacer
        self.refresh = Rate(1.0 / max(refresh_s, 0.001), 1)
        self._lock = threading.Lock()
        self._opened: dict[int, float] = {}  # without a pacer: this process's memory only

    def _bucket(self, slack_user: str) -> str:
        return f"{HOME_PREFIX}{slack_user};"  # ";" ends the id: a prefix of no other key

    def opened(self, actor: Actor, slack_user: str, notice: str | None = None) -> bool:
        """The user opened the tab (or asked for it): publish now, and count it."""
        if self.pacer is not None:
            try:
                now = self.pacer.clock()
                through = [(self._bucket(slack_user), self.refresh), *buckets("views.publish")]
                self.pacer.memory.take_turn(through, now, wait=True)
            except StoreError as exc:
                log.info("home tab publish not counted: %s", exc)
        else:
            with self._lock:
                self._opened[actor.user.id] = time.monotonic()
        return self.publish(actor, slack_user, notice)

    def publish(self, actor: Actor, slack_user: str, notice: str | None = None) -> bool:
        """Publish the actor's Home tab; False (logged) if it could not be done now."""
        try:
            jobs = self.service.mine(actor, HOME_JOBS)
            call(
                self.metrics,
                "views.publish",
                self.client.views_publish,
                user_id=slack_user,
                view=home_view(jobs, notice),
            )
        except (CallFailed, StoreError) as exc:
            log.info("home tab not published: %s", exc, extra={"user_id": actor.user.id})
            return False
        return True

    def refresh_owner(self, owner_id: int, owner: Identity) -> bool:
        """Republish the Home tab of a job's owner after the job ended: only for someone who
        opened it, and only if their refresh turn (one per `refresh_s`) is free now."""
        if owner.provider != "slack":
            return False
        if not self._may_refresh(owner_id, owner.external_id):
            return False
        return self.publish(Actor(User(owner_id, owner)), owner.external_id)

    def _may_refresh(self, owner_id: int, slack_user: str) -> bool:
        if self.pacer is None:
            now = time.monotonic()
            with self._lock:
                last = self._opened.get(owner_id)
                if last is None or now - last < self.refresh.interval:
                    return False
                self._opened[owner_id] = now
            return True
        key = self._bucket(slack_user)
        try:
            if not self.pacer.memory.turns_ahead(key, 0.0):
                return False  # never opened: nothing to keep fresh
            now = self.pacer.clock()
            through = [(key, self.refresh), *buckets("views.publish")]
            return self.pacer.memory.take_turn(through, now, wait=False) <= now
        except StoreError as exc:
            log.info("home tab refresh skipped: %s", exc)
            return False
