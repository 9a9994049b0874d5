"""Reading the settings: the environment over `.env`, each value parsed by its declaration in
bot/app/config.py, then the rules that tie settings together; every problem reported at once.
The only module that reads os.environ or `.env`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.app.config import Settings, declared
from bot.app.settings_kit import parse_value, redact_url
from bot.app.slack_setup import half_configured
from bot.errors import ConfigError


def _check(values: dict[str, Any], problems: list[str]) -> None:
    """The rules that tie settings together or look inside a value (URLs, token prefixes)."""
    url = values["database_url"]
    if "://" not in url or not (url.startswith("sqlite") or url.startswith("mysql")):
        problems.append(
            "DATABASE_URL must be sqlite:///path.db or mysql+pymysql://user:pass@host:3306/db, "
            f"got {redact_url(url)!r}"
        )
    bot_token, app_token = values["slack_bot_token"], values["slack_app_token"]
    if bot_token and not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    half = half_configured(bot_token, app_token, values["slack_signing_secret"])
    if half:
        problems.append(half)
    api_url = values["slack_api_url"]
    if urlsplit(api_url).scheme not in {"http", "https"}:
        problems.append(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
    elif not api_url.endswith("/"):
        values["slack_api_url"] = api_url + "/"


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
    given: dict[str, str] = read_env_file(env_file) if env_file is not None else {}
    given.update(os.environ if environ is None else environ)
    problems: list[str] = []
    values = {
        name: parse_value(spec, annotation, given.get(spec.name), problems)
        for name, spec, annotation in declared()
    }
    _check(values, problems)
    if problems:
        raise ConfigError(problems)
    return Settings(**values)
