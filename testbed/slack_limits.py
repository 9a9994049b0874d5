"""Slack's published Web API rate limits, as the stand-in enforces them: a token bucket per method
tier, one per channel for chat.postMessage and one for all of the workspace's posts. A call that
finds its bucket empty is answered 429 `ratelimited` with a Retry-After, as Slack answers it.

Sources: Slack's "Rate limits" guide (https://docs.slack.dev/apis/web-api/rate-limits) for the
tiers and the posting limit, and each method's reference page for its tier. Slack gives each
tier as "N+ per minute" with bursts it does not size; the burst sizes below are this stand-in's,
chosen on the strict side.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """One bucket's shape: `per_minute` tokens refill, `burst` at most, and where it is from."""

    per_minute: float
    burst: int
    source: str

    @property
    def per_second(self) -> float:
        """Tokens per second."""
        return self.per_minute / 60.0


# The rate-limits guide's tier table ("per API method per app per workspace").
TIER_1 = Rule(1, 2, "Tier 1: 1+ per minute; 'a small amount of burst behavior is tolerated'")
TIER_2 = Rule(20, 4, "Tier 2: 20+ per minute; 'occasional bursts of more requests'")
TIER_3 = Rule(50, 10, "Tier 3: 50+ per minute; 'sporadic bursts are welcome'")
TIER_4 = Rule(100, 20, "Tier 4: 100+ per minute; 'generous burst behavior'")
# The guide's "Posting messages" row and chat.postMessage's page: "generally allows posting one
# message per second per channel, while also maintaining a workspace-wide limit"; "short bursts
# >1 allowed". A public report measured a bucket of about 25; this stand-in allows 5.
POST_PER_CHANNEL = Rule(60, 5, "chat.postMessage: 1 per second per channel, short bursts")
# The workspace-wide number is not published: this stand-in assumes 10 per second.
POST_PER_WORKSPACE = Rule(600, 30, "chat.postMessage: a workspace-wide limit (not published)")

POST = "chat.postMessage"
# Every method the stand-in knows, with its tier (each from the method's reference page; the
# limits guide lists chat.update as Tier 3 and the ephemeral, view and file methods as Tier 4).
# chat.postMessage has the special limits above; anything else is `unknown_method`.
METHODS: dict[str, Rule | None] = {
    POST: None,
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
    "views.publish": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "files.info": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "conversations.open": TIER_3,
    "conversations.join": TIER_3,
    "conversations.info": TIER_3,
    "users.info": TIER_4,
    # auth.test is "special" (its page gives no tier): treated as Tier 4 here.
    "auth.test": TIER_4,
    "apps.connections.open": TIER_1,
}


class Bucket:
    """A token bucket on the monotonic clock."""

    def __init__(self, rule: Rule, clock: Callable[[], float]) -> None:
        self.rule = rule
        self.clock = clock
        self.tokens = float(rule.burst)
        self.updated = clock()

    def take(self) -> float | None:
        """Take a token: None if there was one, else the seconds until there is."""
        now = self.clock()
        self.tokens = min(
            float(self.rule.burst), self.tokens + (now - self.updated) * self.rule.per_second
        )
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rule.per_second


def retry_after_header(wait_s: float) -> str:
    """Slack's Retry-After: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))


def post_channel(body: dict[str, Any]) -> str:
    """The conversation a chat.postMessage goes to (a user id posts to that user's DM)."""
    channel = str(body.get("channel") or "")
    return "D" + channel if channel[:1] in {"U", "W"} else channel


class RateLimits:
    """The buckets of one workspace; `admit` decides each call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: tuple[str, str], rule: Rule) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(rule, self.clock)
        return bucket

    def admit(self, api: str, body: dict[str, Any]) -> float | None:
        """None if `api` may be called now (its tokens are taken), else the seconds to wait."""
        with self._lock:
            if api == POST:
                buckets = [
                    self._bucket((POST, post_channel(body)), POST_PER_CHANNEL),
                    self._bucket((POST, "*"), POST_PER_WORKSPACE),
                ]
            else:
                rule = METHODS.get(api)
                if rule is None:
                    return None
                buckets = [self._bucket((api, "*"), rule)]
            # A refused call takes nothing: look at every bucket before taking from any.
            waits = [b.take() for b in buckets]
            if all(w is None for w in waits):
                return None
            for bucket, wait in zip(buckets, waits, strict=True):
                if wait is None:
                    bucket.tokens += 1.0
            return max(w for w in waits if w is not None)
