"""The App Home tab: publishes a user's recent jobs (their own only) with Re-run buttons."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient

from bot.core.metrics import Metrics
from bot.core.models import Actor, Identity, User
from bot.core.service import JobService
from bot.errors import StoreError
from bot.slack.posting import CallFailed, call
from bot.slack.views import HOME_JOBS, home_view

log = logging.getLogger(__name__)
REFRESH_GAP_S = 2.0


class HomePublisher:
    """Renders and publishes App Home tabs."""

    def __init__(
        self, client: WebClient, service: JobService, metrics: Metrics | None = None
    ) -> None:
        self.client = client
        self.service = service
        self.metrics = metrics
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

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
        """Republish the Home tab of a job's owner after the job changed, at most every few
        seconds per owner (views.publish is rate limited; opening the tab always republishes)."""
        if owner.provider != "slack":
            return False
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(owner_id, -REFRESH_GAP_S) < REFRESH_GAP_S:
                return False
            self._last[owner_id] = now
            if len(self._last) > 10000:
                self._last.clear()
        return self.publish(Actor(User(owner_id, owner)), owner.external_id)
