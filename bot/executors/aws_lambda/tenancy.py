"""Tenancy: which jobs may share a Lambda execution environment, and each owner's tenant id.

With JOBBOT_LAMBDA_TENANCY=per-user (the default) the function is created with
TenantIsolationMode PER_TENANT and every invoke carries the job owner's tenant id: Lambda then
never gives two owners one execution environment, whatever a job does inside its own.

The tenant id is an HMAC-SHA256 of the owner's identity, not the identity itself: Lambda
shows tenant ids in its logs and metrics, which should hold no Slack user ids or user names,
and Slack user ids are no secret, so a plain hash could be matched back to a person by
hashing every id. Keyed with JOBBOT_LAMBDA_TENANT_KEY, only the bot can tell whose it is; the
same key always gives the same id, so a user's warm environments stay theirs. 128 bits of it
are plenty to keep owners apart, and the id fits Lambda's rules (1-256 of [a-zA-Z0-9._:/=+-@ ]).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from bot.core.models import Identity

if TYPE_CHECKING:
    from bot.app.config import Settings

PER_USER, SHARED = "per-user", "shared"
PER_TENANT = "PER_TENANT"  # Lambda's TenantIsolationMode
DOCTOR_TENANT = "jobbot-doctor"  # doctor's probe, apart from every user ("u-" + hex)
UNKEYED = b"jobbot tenant id v1"  # the key when JOBBOT_LAMBDA_TENANT_KEY is unset


def tenant_key(settings: Settings) -> bytes:
    """The HMAC key of tenant ids: JOBBOT_LAMBDA_TENANT_KEY, else a fixed one (unkeyed)."""
    return settings.lambda_tenant_key.encode() or UNKEYED


def tenant_id(owner: Identity | None, key: bytes) -> str:
    """The tenant id of a job's owner ("u-" and 32 hex digits)."""
    parts = [owner.provider, owner.team, owner.external_id] if owner is not None else []
    digest = hmac.new(key, json.dumps(parts).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"u-{digest[:32]}"


def function_tenancy(configuration: Any) -> str:
    """PER_USER when a function's configuration says PER_TENANT, else SHARED."""
    mode = (configuration.get("TenancyConfig") or {}).get("TenantIsolationMode")
    return PER_USER if mode == PER_TENANT else SHARED
