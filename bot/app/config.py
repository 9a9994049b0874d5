"""Settings: each declared once (variable, type, default, range or choices, one line of help)
on one frozen object, with the sections of `.env.example`. bot/app/environment.py reads them."""

from __future__ import annotations

import typing
from dataclasses import fields
from functools import cache
from urllib.parse import urlsplit

from bot.app.settings_kit import (
    Spec,
    declared_settings,
    kind_of,
    number_text,
    redact_url,
    setting,
)

__all__ = [
    "SECTIONS",
    "Settings",
    "Spec",
    "declared",
    "kind_of",
    "number_text",
    "redact_url",
    "specs",
]

MIB = 1024 * 1024


# The sections of `.env.example`: each starts at its first setting.
SECTIONS = {
    "DATABASE_URL": "Database",
    "JOBBOT_EXECUTOR": "Jobs",
    "JOBBOT_SANDBOX_UID_BASE": "Local sandbox (JOBBOT_EXECUTOR=local)",
    "JOBBOT_LOG_LEVEL": "Logging",
    "SLACK_BOT_TOKEN": "Slack (leave SLACK_BOT_TOKEN empty for the console)",
    "PORT": "HTTP server of serve: Slack's events, the API for programs, health and metrics",
    "AWS_REGION": "AWS Lambda (JOBBOT_EXECUTOR=lambda); credentials and region come from the "
    "standard AWS chain: AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_ENDPOINT_URL_LAMBDA",
}


@declared_settings
class Settings:
    """Every setting jobbot reads, validated. Secrets are kept out of repr()."""

    database_url: str = setting(
        "DATABASE_URL",
        "sqlite:///jobbot.db",
        "SQLAlchemy URL of the job store",
        secret=True,
        example="production: mysql+pymysql://jobbot:PASSWORD@db.example.com:3306/jobbot"
        "?charset=utf8mb4",
    )
    executor: str = setting(
        "JOBBOT_EXECUTOR",
        "local",
        "where jobs run: local is a sandbox on this machine, lambda is AWS Lambda",
        choices=("local", "lambda"),
    )
    job_timeout: float = setting(
        "JOBBOT_JOB_TIMEOUT", "10", "wall-clock seconds a job may run", low=1, high=900
    )
    workers: int = setting(
        "JOBBOT_WORKERS", "4", "jobs run at once by one process", low=1, high=256
    )
    memory_mb: int = setting(
        "JOBBOT_MEMORY_MB", "256", "memory limit of a job, in MB", low=32, high=10240
    )
    max_code_bytes: int = setting(
        "JOBBOT_MAX_CODE_BYTES",
        "262144",
        "largest accepted .py file, in bytes",
        low=1,
        high=4 * MIB,
    )
    max_output_bytes: int = setting(
        "JOBBOT_MAX_OUTPUT_BYTES",
        "1048576",
        "stdout/stderr kept per stream, in bytes",
        low=1024,
        high=4 * MIB,
    )
    max_input_bytes: int = setting(
        "JOBBOT_MAX_INPUT_BYTES", "65536", "largest accepted JSON input, in bytes", low=2, high=MIB
    )
    max_files_in_bytes: int = setting(
        "JOBBOT_MAX_FILES_IN_BYTES",
        "4194304",
        "data files given to one job, in bytes together (4 MB fits a Lambda request)",
        low=0,
        high=16 * MIB,
    )
    max_files_out: int = setting(
        "JOBBOT_MAX_FILES_OUT",
        "10",
        "files kept from one job's out/ directory and open figures",
        low=0,
        high=100,
    )
    max_files_out_bytes: int = setting(
        "JOBBOT_MAX_FILES_OUT_BYTES",
        "4194304",
        "bytes of files kept from one job, together (4 MB fits a Lambda response)",
        low=0,
        high=16 * MIB,
    )
    files_retention_days: float = setting(
        "JOBBOT_FILES_RETENTION_DAYS",
        "30",
        "days a job's data files and files out are kept; 0 keeps them for good",
        low=0,
        high=36500,
    )
    max_jobs_per_user: int = setting(
        "JOBBOT_MAX_JOBS_PER_USER",
        "3",
        "running jobs per user at once; the rest wait",
        low=1,
        high=1000,
    )
    poll_interval: float = setting(
        "JOBBOT_POLL_INTERVAL",
        "0.25",
        "seconds between queue polls for other processes' jobs",
        low=0.01,
        high=10,
    )
    lease_margin: float = setting(
        "JOBBOT_LEASE_MARGIN",
        "15",
        "seconds a claim outlives the job timeout before recovery",
        low=1,
        high=600,
    )
    sandbox_uid_base: int = setting(
        "JOBBOT_SANDBOX_UID_BASE",
        "61000",
        "first uid of the local sandbox's job slots (as root)",
        low=1000,
        high=2**31 - 1024,
    )
    sandbox_max_procs: int = setting(
        "JOBBOT_SANDBOX_MAX_PROCS",
        "64",
        "processes and threads one local job may have",
        low=1,
        high=4096,
    )
    sandbox_tmp_mb: int = setting(
        "JOBBOT_SANDBOX_TMP_MB",
        "256",
        "disk (tmpfs) one local job may fill, in MB",
        low=1,
        high=65536,
    )
    job_python: str = setting(
        "JOBBOT_JOB_PYTHON",
        "",
        "python of the local job environment; unset = .venv-jobs (built by scripts/setup)",
    )
    log_level: str = setting(
        "JOBBOT_LOG_LEVEL",
        "INFO",
        "the least severe level logged",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    log_format: str = setting(
        "JOBBOT_LOG_FORMAT",
        "json",
        "log lines as json (one object per line) or text",
        choices=("json", "text"),
    )
    slack_bot_token: str = setting(
        "SLACK_BOT_TOKEN", "", "bot token (xoxb-...); unset = console mode", secret=True
    )
    slack_signing_secret: str = setting(
        "SLACK_SIGNING_SECRET", "", "signing secret; required in HTTP mode", secret=True
    )
    slack_app_token: str = setting(
        "SLACK_APP_TOKEN", "", "app-level token (xapp-...); set = Socket Mode", secret=True
    )
    slack_api_url: str = setting(
        "SLACK_API_URL", "https://slack.com/api/", "Slack Web API base URL"
    )
    admins: frozenset[str] = setting(
        "JOBBOT_ADMINS", "", "admin ids: Slack user ids or local user names"
    )
    notify_channel: str = setting(
        "JOBBOT_NOTIFY_CHANNEL", "", "channel id that gets a one-line summary of every job"
    )
    reply_broadcast: bool = setting(
        "JOBBOT_REPLY_BROADCAST", "true", "also show the final thread reply in the channel"
    )
    quiet_ms: int = setting(
        "JOBBOT_QUIET_MS",
        "1000",
        "a job that ends this soon after it was accepted is told in one message, its result; "
        "slower ones get a status message first",
        low=0,
        high=600000,
    )
    home_refresh_s: float = setting(
        "JOBBOT_HOME_REFRESH_S",
        "30",
        "after the App Home was opened, republish it when a job ends at most this often per user",
        low=1,
        high=86400,
    )
    socket_ping_s: float = setting(
        "JOBBOT_SOCKET_PING_S",
        "3",
        "Socket Mode: seconds between pings; a connection that died silently is noticed after "
        "4 unanswered pings and opened anew",
        low=0.2,
        high=60,
    )
    upload_window: float = setting(
        "JOBBOT_UPLOAD_WINDOW",
        "900",
        "seconds a shared .py counts as the latest upload",
        low=1,
        high=86400,
    )
    intake_lease: float = setting(
        "JOBBOT_INTAKE_LEASE",
        "60",
        "seconds before another serve or worker finishes a request its dead process acknowledged",
        low=1,
        high=3600,
    )
    port: int = setting(
        "PORT", "3000", "HTTP port of /slack/events, /api, /healthz and /metrics", low=1, high=65535
    )
    http_threads: int = setting(
        "JOBBOT_HTTP_THREADS", "16", "request threads of the HTTP server", low=1, high=512
    )
    api_rate: int = setting(
        "JOBBOT_API_RATE",
        "120",
        "API requests per minute one token may make (all serve processes together); more get a 429",
        low=1,
        high=100000,
    )
    api_burst: int = setting(
        "JOBBOT_API_BURST",
        "20",
        "API requests one token may make at once before JOBBOT_API_RATE paces it",
        low=1,
        high=10000,
    )
    api_unauthorized_rate: int = setting(
        "JOBBOT_API_UNAUTHORIZED_RATE",
        "30",
        "API requests per minute without a valid token one client address may make; more get a 429",
        low=1,
        high=100000,
    )
    api_unauthorized_burst: int = setting(
        "JOBBOT_API_UNAUTHORIZED_BURST",
        "10",
        "API requests without a valid token one address may make at once",
        low=1,
        high=10000,
    )
    trusted_proxies: int = setting(
        "JOBBOT_TRUSTED_PROXIES",
        "0",
        "proxies in front of serve that append to X-Forwarded-For: a request's client address "
        "(which the API paces requests without a valid token by) is the one the outermost of "
        "them saw (0: the connection's own address)",
        low=0,
        high=10,
    )
    aws_region: str = setting(
        "AWS_REGION", "", "AWS region of the runner function (else AWS_DEFAULT_REGION/profile)"
    )
    lambda_function: str = setting(
        "JOBBOT_LAMBDA_FUNCTION", "jobbot-runner", "name of the runner Lambda function"
    )
    lambda_role_arn: str = setting(
        "JOBBOT_LAMBDA_ROLE_ARN", "", "execution role ARN used by `lambda deploy`"
    )
    lambda_concurrency: int = setting(
        "JOBBOT_LAMBDA_CONCURRENCY",
        "16",
        "Lambda invokes in flight from one process",
        low=1,
        high=1000,
    )
    lambda_memory_mb: int = setting(
        "JOBBOT_LAMBDA_MEMORY_MB",
        "512",
        "memory of the runner function, in MB",
        low=128,
        high=10240,
    )
    lambda_reserved_concurrency: int | None = setting(
        "JOBBOT_LAMBDA_RESERVED_CONCURRENCY",
        "",
        "reserved concurrency applied by deploy",
        low=0,
        high=10000,
    )
    lambda_architecture: str = setting(
        "JOBBOT_LAMBDA_ARCHITECTURE",
        "arm64",
        "processor of the runner function, set by `lambda deploy` with a matching packages "
        "layer: arm64 (Graviton, about 20% cheaper per GB-s) or x86_64",
        choices=("arm64", "x86_64"),
    )
    lambda_artifact_bucket: str = setting(
        "JOBBOT_LAMBDA_ARTIFACT_BUCKET",
        "",
        "S3 bucket (in the function's region) `lambda deploy` uploads the packages layer "
        "through when its zip is over Lambda's 50 MB direct-upload limit",
    )
    lambda_network: str = setting(
        "JOBBOT_LAMBDA_NETWORK",
        "off",
        "Internet sockets for Lambda jobs; on also lets a job reach the Runtime API, so only "
        "tenant isolation keeps users apart (docs/security.md)",
        choices=("off", "on"),
    )
    lambda_tenancy: str = setting(
        "JOBBOT_LAMBDA_TENANCY",
        "per-user",
        "who may share a Lambda execution environment: per-user (tenant isolation, each user's "
        "jobs in their own) or shared (any job after any other's; doctor warns)",
        choices=("per-user", "shared"),
    )
    lambda_tenant_key: str = setting(
        "JOBBOT_LAMBDA_TENANT_KEY",
        "",
        "key of the per-user tenant ids (an HMAC of each job's owner); unset: an unkeyed hash, "
        "which anyone who knows a user id can match to that user in AWS's logs",
        secret=True,
    )

    @property
    def slack_enabled(self) -> bool:
        """True when Slack settings are present (serve runs the Slack app)."""
        return bool(self.slack_bot_token)

    @property
    def socket_mode(self) -> bool:
        """True when Slack connects over Socket Mode instead of HTTP."""
        return bool(self.slack_app_token)

    @property
    def lease_s(self) -> float:
        """How long a claim holds before recovery may settle the job."""
        return self.job_timeout + self.lease_margin

    @property
    def database_kind(self) -> str:
        """'mysql' or 'sqlite', from the URL scheme."""
        scheme = urlsplit(self.database_url).scheme
        return "sqlite" if scheme.startswith("sqlite") else "mysql"

    def redacted_database_url(self) -> str:
        """The database URL with any password replaced, safe for logs and doctor."""
        return redact_url(self.database_url)

    def secrets(self) -> list[str]:
        """Every secret value in force, to scrub from logs and messages."""
        parts = urlsplit(self.database_url)
        values = [self.slack_bot_token, self.slack_signing_secret, self.slack_app_token]
        values.append(self.lambda_tenant_key)
        if parts.password:
            values.append(parts.password)
        return [v for v in values if len(v) >= 4]


@cache
def declared() -> tuple[tuple[str, Spec, type], ...]:
    """(field name, spec, type) of every setting, in declaration order."""
    hints = typing.get_type_hints(Settings)
    return tuple((f.name, f.metadata["spec"], hints[f.name]) for f in fields(Settings))


def specs() -> tuple[Spec, ...]:
    """Every setting's Spec, in declaration order."""
    return tuple(spec for _, spec, _ in declared())
