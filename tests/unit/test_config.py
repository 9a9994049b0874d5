"""Settings: defaults, .env files, every problem reported at once, secrets kept out of repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app.config import SPECS, load_settings, redact_url
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_give_the_embedded_setup() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.database_url == "sqlite:///jobbot.db"
    assert settings.executor == "local"
    assert settings.job_timeout == 10
    assert settings.workers == 4
    assert settings.memory_mb == 256
    assert settings.max_code_bytes == 262144
    assert settings.max_output_bytes == 1048576
    assert settings.max_jobs_per_user == 3
    assert not settings.slack_enabled
    assert settings.database_kind == "sqlite"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "JOBBOT_WORKERS": "many",
                "JOBBOT_JOB_TIMEOUT": "-1",
                "JOBBOT_EXECUTOR": "docker",
                "DATABASE_URL": "postgres://x",
                "SLACK_BOT_TOKEN": "xoxb-1",
            },
            env_file=None,
        )
    problems = info.value.problems
    assert len(problems) == 5
    text = info.value.message
    for name in (
        "JOBBOT_WORKERS",
        "JOBBOT_JOB_TIMEOUT",
        "JOBBOT_EXECUTOR",
        "DATABASE_URL",
        "SLACK_SIGNING_SECRET",
    ):
        assert name in text


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("JOBBOT_WORKERS=7\nJOBBOT_MEMORY_MB=512\n")
    settings = load_settings({"JOBBOT_WORKERS": "2"}, env_file=env)
    assert settings.workers == 2
    assert settings.memory_mb == 512


def test_secrets_stay_out_of_repr() -> None:
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-secret-token",
            "SLACK_SIGNING_SECRET": "shh-signing",
            "DATABASE_URL": "mysql+pymysql://bot:hunter2@db:3306/jobbot",
        },
        env_file=None,
    )
    text = repr(settings)
    for secret in ("xoxb-secret-token", "shh-signing", "hunter2"):
        assert secret not in text
    assert "hunter2" in settings.secrets()
    assert settings.redacted_database_url() == "mysql+pymysql://bot:***@db:3306/jobbot"


def test_redact_url_leaves_passwordless_urls_alone() -> None:
    assert redact_url("sqlite:///jobbot.db") == "sqlite:///jobbot.db"


def test_socket_mode_needs_no_signing_secret() -> None:
    settings = load_settings(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, env_file=None
    )
    assert settings.socket_mode


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = {spec.name for spec in SPECS} - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
