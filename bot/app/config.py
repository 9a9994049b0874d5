"""Settings: read once from the environment and `.env` into a frozen object, every problem
reported at once. The only module that reads os.environ or `.env`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import ConfigError


@dataclass(frozen=True)
class Spec:
    """One setting: its variable name, default and a one-line meaning (for .env.example)."""

    name: str
    default: str
    meaning: str
    secret: bool = False


# Every setting jobbot reads. `.env.example` documents each; a test keeps them in step.
SPECS: tuple[Spec, ...] = (
    Spec("DATABASE_URL", "sqlite:///jobbot.db", "SQLAlchemy URL of the job store", secret=True),
    Spec("JOBBOT_EXECUTOR", "local", "where jobs run: local (subprocess sandbox) or lambda"),
    Spec("JOBBOT_JOB_TIMEOUT", "10", "wall-clock seconds a job may run"),
    Spec("JOBBOT_WORKERS", "4", "jobs run at once by one process"),
    Spec("JOBBOT_MEMORY_MB", "256", "memory limit of a job, in MB"),
    Spec("JOBBOT_MAX_CODE_BYTES", "262144", "largest accepted .py file, in bytes"),
    Spec("JOBBOT_MAX_OUTPUT_BYTES", "1048576", "stdout/stderr kept per stream, in bytes"),
    Spec("JOBBOT_MAX_INPUT_BYTES", "65536", "largest accepted JSON input, in bytes"),
    Spec("JOBBOT_MAX_JOBS_PER_USER", "3", "running jobs per user at once; the rest wait"),
    Spec("JOBBOT_POLL_INTERVAL", "0.25", "seconds between queue polls for other processes' jobs"),
    Spec("JOBBOT_LEASE_MARGIN", "15", "seconds a claim outlives the job timeout before recovery"),
    Spec("JOBBOT_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Spec("JOBBOT_LOG_FORMAT", "json", "json (one object per line) or text"),
    Spec(
        "JOBBOT_SANDBOX_UID_BASE", "61000", "first uid of the local sandbox's job slots (as root)"
    ),
    Spec("JOBBOT_SANDBOX_MAX_PROCS", "64", "processes and threads one local job may have"),
    Spec("JOBBOT_SANDBOX_TMP_MB", "256", "disk (tmpfs) one local job may fill, in MB"),
    Spec("SLACK_BOT_TOKEN", "", "bot token (xoxb-...); unset = console mode", secret=True),
    Spec("SLACK_SIGNING_SECRET", "", "signing secret; required in HTTP mode", secret=True),
    Spec("SLACK_APP_TOKEN", "", "app-level token (xapp-...); set = Socket Mode", secret=True),
    Spec("SLACK_API_URL", "https://slack.com/api/", "Slack Web API base URL"),
    Spec("PORT", "3000", "HTTP port of /slack/events, /healthz and /metrics"),
    Spec("JOBBOT_HTTP_THREADS", "16", "request threads of the HTTP server"),
    Spec("JOBBOT_ADMINS", "", "comma-separated admin ids (Slack user ids or local user names)"),
    Spec("JOBBOT_NOTIFY_CHANNEL", "", "channel id that gets a one-line summary of every job"),
    Spec("JOBBOT_REPLY_BROADCAST", "true", "also show the final thread reply in the channel"),
    Spec("JOBBOT_UPLOAD_WINDOW", "900", "seconds a shared .py counts as the latest upload"),
    Spec(
        "JOBBOT_INTAKE_LEASE",
        "60",
        "seconds before another serve or worker finishes a request its dead process acknowledged",
    ),
    Spec("AWS_REGION", "", "AWS region of the runner function (else AWS_DEFAULT_REGION/profile)"),
    Spec("JOBBOT_LAMBDA_FUNCTION", "jobbot-runner", "name of the runner Lambda function"),
    Spec("JOBBOT_LAMBDA_ROLE_ARN", "", "execution role ARN used by `lambda deploy`"),
    Spec("JOBBOT_LAMBDA_CONCURRENCY", "16", "Lambda invokes in flight from one process"),
    Spec("JOBBOT_LAMBDA_MEMORY_MB", "512", "memory of the runner function, in MB"),
    Spec("JOBBOT_LAMBDA_RESERVED_CONCURRENCY", "", "reserved concurrency applied by deploy"),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """Every setting, validated. Secrets are kept out of repr()."""

    database_url: str = field(repr=False)
    executor: str
    job_timeout: float
    workers: int
    memory_mb: int
    max_code_bytes: int
    max_output_bytes: int
    max_input_bytes: int
    max_jobs_per_user: int
    poll_interval: float
    lease_margin: float
    log_level: str
    log_format: str
    sandbox_uid_base: int
    sandbox_max_procs: int
    sandbox_tmp_mb: int
    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    slack_app_token: str = field(repr=False)
    slack_api_url: str
    port: int
    http_threads: int
    admins: frozenset[str]
    notify_channel: str
    reply_broadcast: bool
    upload_window: float
    intake_lease: float
    aws_region: str
    lambda_function: str
    lambda_role_arn: str
    lambda_concurrency: int
    lambda_memory_mb: int
    lambda_reserved_concurrency: int | None

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
        if parts.password:
            values.append(parts.password)
        return [v for v in values if len(v) >= 4]


def redact_url(url: str) -> str:
    """Replace the password of a URL with ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class _Reader:
    """Collects parse problems instead of stopping at the first."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        value = self.values.get(name)
        if value is None or value.strip() == "":
            return SPEC_BY_NAME[name].default
        return value.strip()

    def _parse(self, name: str, conv: Callable[[str], Any], low: float, high: float) -> Any:
        text = self.raw(name)
        try:
            value = conv(text)
        except ValueError:
            value = None
        if value is None or not (low <= value <= high):
            kind = "an integer" if conv is int else "a number"
            self.problems.append(f"{name} must be {kind} from {low:g} to {high:g}, got {text!r}")
            return conv(SPEC_BY_NAME[name].default)
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value: int = self._parse(name, int, low, high)
        return value

    def number(self, name: str, low: float, high: float) -> float:
        value: float = self._parse(name, float, low, high)
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        text = self.raw(name).lower()
        if text not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)}, got {text!r}")
            return SPEC_BY_NAME[name].default.lower()
        return text

    def flag(self, name: str) -> bool:
        text = self.raw(name).lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        self.problems.append(f"{name} must be true or false, got {text!r}")
        return SPEC_BY_NAME[name].default == "true"


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a .env file (python-dotenv syntax); empty if it does not exist."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Build Settings from `environ` (default os.environ) over `env_file`; ConfigError lists
    every problem."""
    values: dict[str, str] = read_env_file(env_file) if env_file is not None else {}
    values.update(os.environ if environ is None else environ)
    r = _Reader(values)

    database_url = r.raw("DATABASE_URL")
    if "://" not in database_url or not (
        database_url.startswith("sqlite") or database_url.startswith("mysql")
    ):
        r.problems.append(
            "DATABASE_URL must be sqlite:///path.db or mysql+pymysql://user:pass@host:3306/db, "
            f"got {redact_url(database_url)!r}"
        )
    bot_token = r.raw("SLACK_BOT_TOKEN")
    signing_secret = r.raw("SLACK_SIGNING_SECRET")
    app_token = r.raw("SLACK_APP_TOKEN")
    if bot_token and not bot_token.startswith("xoxb-"):
        r.problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if app_token and not app_token.startswith("xapp-"):
        r.problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if (app_token or signing_secret) and not bot_token:
        r.problems.append("SLACK_BOT_TOKEN is required when other Slack settings are set")
    if bot_token and not app_token and not signing_secret:
        r.problems.append(
            "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    api_url = r.raw("SLACK_API_URL")
    if urlsplit(api_url).scheme not in {"http", "https"}:
        r.problems.append(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
    elif not api_url.endswith("/"):
        api_url += "/"
    executor = r.choice("JOBBOT_EXECUTOR", ("local", "lambda"))
    reserved_text = r.raw("JOBBOT_LAMBDA_RESERVED_CONCURRENCY")
    reserved = r.integer("JOBBOT_LAMBDA_RESERVED_CONCURRENCY", 0, 10000) if reserved_text else None
    notify_channel = r.raw("JOBBOT_NOTIFY_CHANNEL")

    settings = Settings(
        database_url=database_url,
        executor=executor,
        job_timeout=r.number("JOBBOT_JOB_TIMEOUT", 1, 900),
        workers=r.integer("JOBBOT_WORKERS", 1, 256),
        memory_mb=r.integer("JOBBOT_MEMORY_MB", 32, 10240),
        max_code_bytes=r.integer("JOBBOT_MAX_CODE_BYTES", 1, 4 * 1024 * 1024),
        max_output_bytes=r.integer("JOBBOT_MAX_OUTPUT_BYTES", 1024, 4 * 1024 * 1024),
        max_input_bytes=r.integer("JOBBOT_MAX_INPUT_BYTES", 2, 1024 * 1024),
        max_jobs_per_user=r.integer("JOBBOT_MAX_JOBS_PER_USER", 1, 1000),
        poll_interval=r.number("JOBBOT_POLL_INTERVAL", 0.01, 10),
        lease_margin=r.number("JOBBOT_LEASE_MARGIN", 1, 600),
        log_level=r.choice("JOBBOT_LOG_LEVEL", ("debug", "info", "warning", "error")).upper(),
        log_format=r.choice("JOBBOT_LOG_FORMAT", ("json", "text")),
        sandbox_uid_base=r.integer("JOBBOT_SANDBOX_UID_BASE", 1000, 2**31 - 1024),
        sandbox_max_procs=r.integer("JOBBOT_SANDBOX_MAX_PROCS", 1, 4096),
        sandbox_tmp_mb=r.integer("JOBBOT_SANDBOX_TMP_MB", 1, 65536),
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=api_url,
        port=r.integer("PORT", 1, 65535),
        http_threads=r.integer("JOBBOT_HTTP_THREADS", 1, 512),
        admins=frozenset(a.strip() for a in r.raw("JOBBOT_ADMINS").split(",") if a.strip()),
        notify_channel=notify_channel,
        reply_broadcast=r.flag("JOBBOT_REPLY_BROADCAST"),
        upload_window=r.number("JOBBOT_UPLOAD_WINDOW", 1, 86400),
        intake_lease=r.number("JOBBOT_INTAKE_LEASE", 1, 3600),
        aws_region=r.raw("AWS_REGION"),
        lambda_function=r.raw("JOBBOT_LAMBDA_FUNCTION"),
        lambda_role_arn=r.raw("JOBBOT_LAMBDA_ROLE_ARN"),
        lambda_concurrency=r.integer("JOBBOT_LAMBDA_CONCURRENCY", 1, 1000),
        lambda_memory_mb=r.integer("JOBBOT_LAMBDA_MEMORY_MB", 128, 10240),
        lambda_reserved_concurrency=reserved,
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings
