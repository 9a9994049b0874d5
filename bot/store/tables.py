"""The table definitions; `schema.sql` is the same schema written for operators (a test on
MariaDB proves the two agree)."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

from bot.core.models import FileRole, JobStatus, NotificationEvent, ResultKind
from bot.store.types import BigId, MediumText, UTCDateTime, ascii_str, binary_str

SCHEMA_VERSION = 7  # 2: held_requests; 3: workers, dedupe_keys.claim; 4: api_tokens,
# jobs.stop_requested_at; 5: pace; 6: job_files, jobs.files_note; 7: api_tokens.expires_at,
# api_tokens.last_used_at

# A file's content: MEDIUMBLOB (16 MB) on MySQL, where BLOB stops at 64 KiB.
MediumBlob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")

MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


class NotificationState(enum.StrEnum):
    """Delivery state of an outbox entry."""

    PENDING = "pending"  # not yet delivered (possibly leased by a dispatcher right now)
    SENT = "sent"  # delivered
    FAILED = "failed"  # given up for good


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        native_enum=True,
        create_constraint=False,
        validate_strings=True,
    )


metadata = MetaData()

schema_info = Table(
    "jobbot_schema",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    **MYSQL_TABLE_ARGS,
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", ascii_str(16), nullable=False),
    Column("team", binary_str(191), nullable=False),
    Column("external_id", binary_str(191), nullable=False),
    Column("display_name", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "team", "external_id", name="uq_users_identity"),
    **MYSQL_TABLE_ARGS,
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id", name="fk_jobs_owner"), nullable=False),
    Column("status", _enum(JobStatus, "job_status"), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("code", MediumText, nullable=False),
    Column("code_sha256", ascii_str(64), nullable=False),
    Column("input_json", MediumText, nullable=False),
    Column("result_json", MediumText, nullable=True),
    Column("result_kind", _enum(ResultKind, "result_kind"), nullable=True),
    Column("stdout", MediumText, nullable=True),
    Column("stderr", MediumText, nullable=True),
    Column("stdout_truncated", Boolean, nullable=False),
    Column("stderr_truncated", Boolean, nullable=False),
    Column("error_type", String(255), nullable=True),
    Column("error_message", MediumText, nullable=True),
    Column("traceback", MediumText, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("executor", ascii_str(32), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("claim_token", ascii_str(32), nullable=True),
    Column("claimed_by", String(255), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("invoked_at", UTCDateTime, nullable=True),
    Column("not_before", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("origin", Text, nullable=True),
    Column("notify_route", ascii_str(128), nullable=True),
    Column("idempotency_key", ascii_str(191), nullable=True),
    Column(
        "rerun_of",
        BigId,
        ForeignKey("jobs.id", name="fk_jobs_rerun_of", ondelete="SET NULL"),
        nullable=True,
    ),
    # A cancel asked for while the job ran: its worker, in whatever process, stops it (v4).
    Column("stop_requested_at", UTCDateTime, nullable=True),
    # Which of the job's files were left out, and why (version 6).
    Column("files_note", Text, nullable=True),
    UniqueConstraint("idempotency_key", name="uq_jobs_idempotency"),
    # The claim: WHERE status='waiting' AND not_before <= now ORDER BY not_before, id.
    Index("ix_jobs_claim", "status", "not_before", "id"),
    # Running jobs per owner, for the per-user limit.
    Index("ix_jobs_status_owner", "status", "owner_id"),
    # Lease recovery: WHERE status='running' AND lease_expires_at < now.
    Index("ix_jobs_lease", "status", "lease_expires_at"),
    # A user's jobs, newest first.
    Index("ix_jobs_owner", "owner_id", "id"),
    **MYSQL_TABLE_ARGS,
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "job_id",
        BigId,
        ForeignKey("jobs.id", name="fk_notifications_job", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", _enum(NotificationEvent, "notification_event"), nullable=False),
    Column("route", ascii_str(128), nullable=False),
    Column("state", _enum(NotificationState, "notification_state"), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claim_token", ascii_str(32), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    # One notification per job and event: a retried finalisation cannot double it.
    UniqueConstraint("job_id", "event", name="uq_notifications_job_event"),
    Index("ix_notifications_due", "state", "route", "next_attempt_at"),
    **MYSQL_TABLE_ARGS,
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", name="fk_uploads_user"), nullable=False),
    Column("channel", ascii_str(64), nullable=False),
    Column("file_id", ascii_str(64), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_uploads_recent", "user_id", "channel", "created_at"),
    **MYSQL_TABLE_ARGS,
)

dedupe_keys = Table(
    "dedupe_keys",
    metadata,
    Column("dedupe_key", ascii_str(191), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Who recorded the key (a token of one call): that call's transaction, run again after
    # its commit's answer was lost, finds its own row and is still the first (version 3).
    Column("claim", ascii_str(32), nullable=True),
    **MYSQL_TABLE_ARGS,
)

# The intake journal: requests acknowledged to Slack but not yet handled (version 2).
held_requests = Table(
    "held_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_key", ascii_str(191), nullable=False),
    Column("kind", ascii_str(32), nullable=False),
    Column("payload", MediumText, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("request_key", name="uq_held_requests_key"),
    Index("ix_held_requests_due", "lease_expires_at"),
    **MYSQL_TABLE_ARGS,
)

# The worker pools alive: each refreshes its row while it runs and deletes it when it stops,
# so a waiting command can tell that no worker will take its job (version 3).
workers = Table(
    "workers",
    metadata,
    Column("worker_id", binary_str(191), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_workers_seen", "seen_at"),
    **MYSQL_TABLE_ARGS,
)

# The HTTP API's bearer tokens, one per user: only a SHA-256 of each is kept, so the table
# cannot be replayed against the API (version 4).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", name="fk_api_tokens_user", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("token_sha256", ascii_str(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),  # version 7; NULL: never
    Column("last_used_at", UTCDateTime, nullable=True),  # version 7; to the minute
    UniqueConstraint("token_sha256", name="uq_api_tokens_hash"),
    **MYSQL_TABLE_ARGS,
)

# Rate buckets shared by every process (the Slack outbox paces its calls with them): the
# theoretical arrival time of the generic cell rate algorithm, bot/core/pacing.py (version 5).
pace = Table(
    "pace",
    metadata,
    Column("bucket", ascii_str(191), primary_key=True),
    Column("tat", Float(precision=53), nullable=False),  # unix seconds
    Column("updated_at", UTCDateTime, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# A job's files (version 6): its data files ("in") and what it left in out/ ("out").
job_files = Table(
    "job_files",
    metadata,
    Column(
        "job_id",
        BigId,
        ForeignKey("jobs.id", name="fk_job_files_job", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", _enum(FileRole, "file_role"), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("name", binary_str(191), nullable=False),
    Column("media_type", ascii_str(127), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", MediumBlob, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("job_id", "role", "position", name="pk_job_files"),
    UniqueConstraint("job_id", "role", "name", name="uq_job_files_name"),
    # The retention sweep: WHERE created_at < :before.
    Index("ix_job_files_created", "created_at"),
    **MYSQL_TABLE_ARGS,
)
