-- jobbot schema, version 6, for MySQL 8 / MariaDB 10.6+ (utf8mb4, DATETIME(6) in UTC).
--
-- Run it once as an operator:   mysql jobbot < schema.sql
-- or let jobbot do it:           python -m bot migrate   (also done by serve, worker, console)
-- It is idempotent. bot/store/tables.py defines the same tables (a test on MariaDB proves the
-- two agree), and the embedded SQLite default is created from those definitions.

CREATE TABLE IF NOT EXISTS jobbot_schema (
  id          SMALLINT    NOT NULL,
  version     INTEGER     NOT NULL,
  applied_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per identity: ('slack', team_id, user_id) or ('local', hostname, os user).
-- The integer id is the user id jobs refer to.
CREATE TABLE IF NOT EXISTS users (
  id            INTEGER      NOT NULL AUTO_INCREMENT,
  provider      VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  team          VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  external_id   VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  display_name  VARCHAR(255) NULL,
  created_at    DATETIME(6)  NOT NULL,
  last_seen_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_users_identity UNIQUE (provider, team, external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The jobs, and the queue: waiting -> running -> done | error | timeout | cancelled;
-- waiting -> cancelled.
CREATE TABLE IF NOT EXISTS jobs (
  id                BIGINT       NOT NULL AUTO_INCREMENT,  -- the number people type
  owner_id          INTEGER      NOT NULL,
  status            ENUM('waiting','running','done','error','timeout','cancelled') NOT NULL,
  file_name         VARCHAR(255) NOT NULL,
  code              MEDIUMTEXT   NOT NULL,
  code_sha256       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  input_json        MEDIUMTEXT   NOT NULL,
  result_json       MEDIUMTEXT   NULL,      -- JSON: main()'s return value, or stdout as a string
  result_kind       ENUM('return','stdout') NULL,
  stdout            MEDIUMTEXT   NULL,
  stderr            MEDIUMTEXT   NULL,
  stdout_truncated  BOOL         NOT NULL,
  stderr_truncated  BOOL         NOT NULL,
  error_type        VARCHAR(255) NULL,
  error_message     MEDIUMTEXT   NULL,
  traceback         MEDIUMTEXT   NULL,
  duration_ms       INTEGER      NULL,
  executor          VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  attempts          INTEGER      NOT NULL,  -- claims so far
  claim_token       VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,  -- fencing token
  claimed_by        VARCHAR(255) NULL,      -- host:pid:worker of the current claim
  lease_expires_at  DATETIME(6)  NULL,
  invoked_at        DATETIME(6)  NULL,      -- committed before the code starts
  not_before        DATETIME(6)  NOT NULL,  -- not claimed before this (throttle back-off)
  created_at        DATETIME(6)  NOT NULL,
  started_at        DATETIME(6)  NULL,
  finished_at       DATETIME(6)  NULL,
  origin            TEXT         NULL,      -- opaque JSON for the adapter that notifies
  notify_route      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  idempotency_key   VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NULL,
  rerun_of          BIGINT       NULL,
  stop_requested_at DATETIME(6)  NULL,      -- v4, cancel asked while running (migrate adds it)
  files_note        TEXT         NULL,      -- which files were left out, and why (version 6)
  PRIMARY KEY (id),
  CONSTRAINT uq_jobs_idempotency UNIQUE (idempotency_key),
  CONSTRAINT fk_jobs_owner FOREIGN KEY (owner_id) REFERENCES users (id),
  CONSTRAINT fk_jobs_rerun_of FOREIGN KEY (rerun_of) REFERENCES jobs (id) ON DELETE SET NULL,
  INDEX ix_jobs_claim (status, not_before, id),      -- the claim query
  INDEX ix_jobs_status_owner (status, owner_id),     -- running jobs per owner
  INDEX ix_jobs_lease (status, lease_expires_at),    -- lease recovery
  INDEX ix_jobs_owner (owner_id, id)                 -- a user's jobs, newest first
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The outbox: every notification is written in the same transaction as the state change it
-- reports, then delivered (and marked sent) by a dispatcher, so none is lost.
CREATE TABLE IF NOT EXISTS notifications (
  id                BIGINT       NOT NULL AUTO_INCREMENT,
  job_id            BIGINT       NOT NULL,
  event             ENUM('queued','started','finished') NOT NULL,
  route             VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state             ENUM('pending','sent','failed') NOT NULL,
  attempts          INTEGER      NOT NULL,
  next_attempt_at   DATETIME(6)  NOT NULL,
  claim_token       VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_expires_at  DATETIME(6)  NULL,
  last_error        VARCHAR(500) NULL,
  created_at        DATETIME(6)  NOT NULL,
  sent_at           DATETIME(6)  NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_notifications_job_event UNIQUE (job_id, event),
  CONSTRAINT fk_notifications_job FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
  INDEX ix_notifications_due (state, route, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- .py files users shared in a conversation, for "/job run" with the latest upload.
CREATE TABLE IF NOT EXISTS uploads (
  id          BIGINT       NOT NULL AUTO_INCREMENT,
  user_id     INTEGER      NOT NULL,
  channel     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  file_id     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  file_name   VARCHAR(255) NOT NULL,
  size        INTEGER      NOT NULL,
  meta        TEXT         NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_uploads_user FOREIGN KEY (user_id) REFERENCES users (id),
  INDEX ix_uploads_recent (user_id, channel, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Keys of requests already handled (Slack event re-deliveries). `claim` (version 3) names the
-- call that recorded a key, so that call's transaction, re-run after its commit's answer was
-- lost, knows the row as its own; `python -m bot migrate` adds it to an older database.
CREATE TABLE IF NOT EXISTS dedupe_keys (
  dedupe_key  VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  claim       VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (dedupe_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 2. The intake journal: requests acknowledged to Slack but not yet handled, so that
-- another process finishes them if the one that acknowledged them dies.
CREATE TABLE IF NOT EXISTS held_requests (
  id                BIGINT       NOT NULL AUTO_INCREMENT,
  request_key       VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  kind              VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payload           MEDIUMTEXT   NOT NULL,
  attempts          INTEGER      NOT NULL,
  lease_expires_at  DATETIME(6)  NOT NULL,
  created_at        DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_held_requests_key UNIQUE (request_key),
  INDEX ix_held_requests_due (lease_expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 3. The worker pools alive: each refreshes its row while it runs and deletes it when
-- it stops, so a waiting command can tell that no worker will take its job.
CREATE TABLE IF NOT EXISTS workers (
  worker_id  VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  seen_at    DATETIME(6)  NOT NULL,
  PRIMARY KEY (worker_id),
  INDEX ix_workers_seen (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 4. The HTTP API's bearer tokens, one per user: only a SHA-256 of each is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
  user_id       INTEGER      NOT NULL,
  token_sha256  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at    DATETIME(6)  NOT NULL,
  expires_at    DATETIME(6)  NULL,      -- version 7; NULL: never
  last_used_at  DATETIME(6)  NULL,      -- version 7; to the minute
  PRIMARY KEY (user_id),
  CONSTRAINT uq_api_tokens_hash UNIQUE (token_sha256),
  CONSTRAINT fk_api_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 5. Rate buckets shared by every process: the Slack outbox paces its calls to Slack's
-- published limits with them (the generic cell rate algorithm's arrival time, unix seconds).
CREATE TABLE IF NOT EXISTS pace (
  bucket      VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  tat         DOUBLE       NOT NULL,
  updated_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (bucket)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 6. A job's files, stored with it: its data files ('in', placed beside its code) and
-- what it left in out/ or as open figures ('out'). Deleted after JOBBOT_FILES_RETENTION_DAYS.
-- (`python -m bot migrate` also adds jobs.files_note to an older database.)
CREATE TABLE IF NOT EXISTS job_files (
  job_id      BIGINT       NOT NULL,
  role        ENUM('in','out') NOT NULL,
  position    SMALLINT     NOT NULL,
  name        VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  media_type  VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  size        INTEGER      NOT NULL,
  data        MEDIUMBLOB   NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  CONSTRAINT pk_job_files PRIMARY KEY (job_id, role, position),
  CONSTRAINT uq_job_files_name UNIQUE (job_id, role, name),
  CONSTRAINT fk_job_files_job FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
  INDEX ix_job_files_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Version 7. API tokens may expire (api_tokens.expires_at) and record when they were last used
-- (api_tokens.last_used_at); `python -m bot migrate` adds both columns to an older database.

INSERT INTO jobbot_schema (id, version, applied_at) VALUES (1, 7, UTC_TIMESTAMP(6))
  ON DUPLICATE KEY UPDATE version = GREATEST(version, 7),
                          applied_at = IF(version < 7, UTC_TIMESTAMP(6), applied_at);
