"""Settings: defaults, .env files, every problem reported at once, secrets kept out of repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import settings_doc
from bot.app.config import declared, kind_of, redact_url, specs
from bot.app.environment import load_settings
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


def test_every_number_setting_declares_its_range_and_every_default_is_valid() -> None:
    for name, spec, annotation in declared():
        if kind_of(annotation)[0] in {int, float}:
            assert spec.low is not None and spec.high is not None, name
    assert len({spec.name for spec in specs()}) == len(specs())
    load_settings({}, env_file=None)  # every declared default passes its own rules


def test_a_value_out_of_its_declared_range_is_refused_with_the_range() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"JOBBOT_SANDBOX_UID_BASE": "12", "JOBBOT_LOG_LEVEL": "loud"}, env_file=None)
    assert info.value.problems == [
        "JOBBOT_SANDBOX_UID_BASE must be an integer from 1000 to 2147482624, got '12'",
        "JOBBOT_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'loud'",
    ]


def test_values_take_their_declared_types() -> None:
    settings = load_settings(
        {
            "JOBBOT_LOG_LEVEL": "debug",
            "JOBBOT_ADMINS": "U1, alice,,",
            "JOBBOT_REPLY_BROADCAST": "off",
            "JOBBOT_LAMBDA_RESERVED_CONCURRENCY": "5",
        },
        env_file=None,
    )
    assert settings.log_level == "DEBUG"
    assert settings.admins == frozenset({"U1", "alice"})
    assert settings.reply_broadcast is False
    assert settings.lambda_reserved_concurrency == 5
    assert load_settings({}, env_file=None).lambda_reserved_concurrency is None


def test_env_example_is_written_from_the_declarations() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert text == settings_doc.env_example(), ".env.example is out of date: run scripts/settings"


def test_the_settings_table_in_the_docs_is_written_from_the_declarations() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert settings_doc.with_table(text) == text, (
        "docs/operations.md's settings table is out of date: run scripts/settings"
    )


def test_the_readme_quotes_the_declared_defaults() -> None:
    by_name = {spec.name: spec for spec in specs()}
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M)
    assert rows, "the README's configuration table"
    for name, default in rows:
        declared_default = f"`{by_name[name].default}`" if by_name[name].default else "–"
        assert default.strip() == declared_default, name


def test_the_settings_script_checks_and_rewrites(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / ".env.example").write_text("old\n")
    doc = tmp_path / "docs" / "operations.md"
    doc.write_text(f"# Ops\n\n{settings_doc.BEGIN}\nold\n{settings_doc.END}\n\nmore\n")
    assert settings_doc.main(["--check", str(tmp_path)]) == 1
    assert (tmp_path / ".env.example").read_text() == "old\n"
    assert settings_doc.main([str(tmp_path)]) == 0
    assert settings_doc.main(["--check", str(tmp_path)]) == 0
    assert doc.read_text().endswith(f"{settings_doc.END}\n\nmore\n")


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")),
        ({"SLACK_APP_TOKEN": "xapp-1"}, ("SLACK_BOT_TOKEN",)),
        ({"SLACK_SIGNING_SECRET": "s"}, ("SLACK_BOT_TOKEN",)),
    ],
)
def test_half_a_slack_configuration_says_what_is_missing_and_where_to_find_it(
    given: dict[str, str], missing: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(given, env_file=None)
    (problem,) = info.value.problems
    assert problem.startswith(f"Slack is half configured: {', '.join(given)} is set")
    after = problem.split(" is set", 1)[1]
    assert all(name in after for name in missing)
    if "SLACK_BOT_TOKEN" in missing:
        assert "Install to Workspace" in problem and "Bot User OAuth Token" in problem
    else:
        assert "App-Level Tokens" in problem and "Signing Secret" in problem
    assert "Socket Mode needs no signing secret" in problem
    assert "leave all three empty for the console" in problem


def test_help_on_lambda_names_the_pinned_versions_of_the_offered_packages() -> None:
    from bot.app.wiring.parts import JOB_REQUIREMENTS, packages_note
    from bot.executors.jobenv import read_pins

    settings = load_settings({"JOBBOT_EXECUTOR": "lambda"}, env_file=None)
    offered = [f"{p.name} {p.version}" for p in read_pins(JOB_REQUIREMENTS) if p.offered]

    assert packages_note(settings) == (
        f"Jobs can import the standard library and: {', '.join(offered)}."
    )
