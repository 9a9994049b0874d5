"""SlackMemory: the port the Slack adapter owns (dedupe keys, the intake journal, uploads,
the shared rate buckets)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from bot.core.models import HeldRequest, Upload
from bot.slack.budget import PaceMemory


class SlackMemory(PaceMemory, Protocol):
    """What the Slack adapter keeps in the database besides jobs; the SQL store satisfies it.

    Every method is one short transaction; a database failure raises StoreError (transient:
    StoreUnavailable), as the core's store does.
    """

    def first_time(self, key: str) -> bool:
        """Record a dedupe key; True only for the first caller ever, also when the answer to
        this call's commit was lost and its transaction ran again."""

    def forget_keys(self, prefix: str, before: datetime) -> int:
        """Delete the dedupe keys starting with `prefix` recorded before `before`; how many."""

    def hold_request(self, key: str, kind: str, payload: Mapping[str, Any], lease_s: float) -> bool:
        """Journal a request before it is handled; False if one with this key is held already.
        Nobody else takes it up before `lease_s` has passed."""

    def claim_held_requests(self, limit: int, lease_s: float) -> list[HeldRequest]:
        """Take up to `limit` held requests whose lease ran out (their handler died), oldest
        first, leasing each again for `lease_s`."""

    def drop_held_request(self, key: str) -> None:
        """Forget a request once it has been handled (whatever the outcome)."""

    def remember_upload(self, upload: Upload) -> None:
        """Remember a file a user shared in a conversation."""

    def latest_upload(self, user_id: int, channel: str, since: datetime) -> Upload | None:
        """The user's newest upload in that conversation at or after `since`."""
