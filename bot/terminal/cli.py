"""`python -m bot <command>`: argument parsing, the wording of errors, and which function
runs each command (bot/terminal/job_commands.py, bot/terminal/process_commands.py)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from bot.app import logs
from bot.app.config import Settings
from bot.app.environment import load_settings
from bot.core.replies import MAYBE_SAVED, Problem
from bot.errors import ConfigError, InfraError, StoreOutcomeUnknown, UserError
from bot.terminal.exits import EXIT_BAD_INPUT, EXIT_UNAVAILABLE
from bot.terminal.job_commands import (
    cmd_cancel,
    cmd_files,
    cmd_list,
    cmd_mine,
    cmd_rerun,
    cmd_run,
    cmd_status,
    cmd_token,
)
from bot.terminal.outfiles import OUT_ROOT
from bot.terminal.process_commands import (
    cmd_console,
    cmd_doctor,
    cmd_lambda,
    cmd_migrate,
    cmd_serve,
    cmd_worker,
)
from bot.terminal.textview import render

# commands a person types and waits for: quiet logs
INTERACTIVE = frozenset(
    {"console", "run", "status", "mine", "list", "cancel", "rerun", "token", "files"}
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="jobbot: run Python files with a JSON input as jobs.",
        epilog="With no command: the Slack app when Slack is configured, else the console.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--user", help="act as this local user (default: your OS user)")
        return p

    p = add("run", "submit a .py file, wait for it and print the outcome")
    p.add_argument("file", help="the .py file to run")
    p.add_argument("--input", default="{}", help="JSON object input, e.g. '{\"a\": 5}'")
    p.add_argument(
        "--file",
        action="append",
        default=[],
        dest="data",
        metavar="DATA",
        help="a data file placed beside the code (repeat for more)",
    )
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run jobs in this process; wait for a separate worker",
    )
    p = add("status", "show one job")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p = add("mine", "your latest jobs")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p = add("list", "everyone's jobs, newest first, 20 per page")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p = add("files", f"save a job's files out under {OUT_ROOT}/ID/ and print their paths")
    p.add_argument("job_id")
    p = add("cancel", "cancel a waiting job, or stop a running one")
    p.add_argument("job_id")
    p = add("rerun", "run a job's code and input again as a new job, and wait for it")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    p = add("token", "mint, revoke or list tokens for the HTTP API")
    p.add_argument(
        "action",
        choices=["create", "revoke", "list"],
        help="create prints a new token once (the old one stops working); revoke removes it; "
        "list shows every user's token: created, expires, last used (never the tokens)",
    )
    p.add_argument(
        "--expires",
        metavar="LIFETIME",
        help="with create: the token stops working after this long (90m, 12h, 30d)",
    )
    add("console", "interactive shell speaking the Slack app's /job commands")
    add("migrate", "create or update the database schema (idempotent)")
    add("worker", "run jobs (and deliver notifications) until SIGTERM")
    add("serve", "run the Slack app and the workers until SIGTERM")
    add("doctor", "check the database, the executor, the isolation and Slack")
    p = sub.add_parser("lambda", help="AWS Lambda runner: deploy [--replace] | policy")
    p.add_argument("action", choices=["deploy", "policy"])
    p.add_argument(
        "--replace",
        action="store_true",
        help="deploy: delete and re-create a function whose tenancy differs from "
        "JOBBOT_LAMBDA_TENANCY (it says first what that does)",
    )
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run one command; returns the process exit code."""
    out = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"jobbot: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = args.command or ("serve" if settings.slack_enabled else "console")
    interactive = command in INTERACTIVE
    logs.configure(
        "WARNING" if interactive else settings.log_level,
        "text" if interactive else settings.log_format,
        settings.secrets(),
    )
    try:
        return COMMANDS[command](settings, args, out)
    except UserError as exc:
        print(render(Problem(cli_wording(exc.message))), file=sys.stderr)
        return EXIT_BAD_INPUT
    except InfraError as exc:  # the database (or the executor) failed: "database unavailable: …"
        print(f"jobbot: {exc.message}", file=sys.stderr)
        if isinstance(exc, StoreOutcomeUnknown):
            print(render(Problem(cli_wording(MAYBE_SAVED.message))), file=sys.stderr)
        return EXIT_UNAVAILABLE


_SLASH_COMMAND = re.compile(r"`/job ([a-z]+)((?: [^`]*)?)`")
_CLI_OPTION = {"list": " --page", "mine": " --limit"}  # their one argument is an option here


def cli_wording(message: str) -> str:
    """A message of the shared core, which names commands as the console and Slack spell
    them (`/job status 12`), with those commands spelled as this CLI takes them."""

    def spell(match: re.Match[str]) -> str:
        verb, rest = match.group(1), match.group(2)
        if rest and verb in _CLI_OPTION:
            rest = _CLI_OPTION[verb] + rest
        return f"`python -m bot {verb}{rest}`"

    return _SLASH_COMMAND.sub(spell, message)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace, TextIO], int]] = {
    "run": cmd_run,
    "rerun": cmd_rerun,
    "status": cmd_status,
    "mine": cmd_mine,
    "list": cmd_list,
    "cancel": cmd_cancel,
    "token": cmd_token,
    "files": cmd_files,
    "migrate": cmd_migrate,
    "worker": cmd_worker,
    "serve": cmd_serve,
    "console": cmd_console,
    "doctor": cmd_doctor,
    "lambda": cmd_lambda,
}
