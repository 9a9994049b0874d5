"""The keys Slack requests are remembered by, each spelled once: a dedupe key, a job's
idempotency key or an intake-journal key that differed by a letter would let a re-delivered
request make a second job, or answer twice."""

from __future__ import annotations

SIGNATURE_PREFIX = "sig:"  # a request signature seen (the replay guard); pruned by this prefix


def signature(value: str) -> str:
    """A request's signature, remembered until it is too old to be replayed."""
    return SIGNATURE_PREFIX + value


def command(team: str, trigger_id: str) -> str:
    """A `/job` command: its job, its journal record and its answer."""
    return f"cmd:{team}:{trigger_id}"


def form(view_id: object) -> str:
    """A submitted Run job form: its job and its journal record."""
    return f"view:{view_id}"


def message(channel: object, ts: object) -> str:
    """A message to the bot (Slack may deliver it as app_mention and as message, and again)."""
    return f"msg:{channel}:{ts}"


def button(click_id: object) -> str:
    """A Re-run click (its action_ts, else its trigger_id): its job and its journal record."""
    return f"btn:{click_id}"


def refused(key: str) -> str:
    """A refusal of the request `key` was told: it is told once, however often that arrives."""
    return f"{key}:refused"
