"""`python -m bot <command>`: argument parsing and the commands behind it."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from bot.app import logs
from bot.app.config import Settings, load_settings
from bot.app.wiring.parts import local_identity, local_route
from bot.app.wiring.process import Process
from bot.app.wiring.runtime import Runtime
from bot.app.wiring.tools import lambda_command
from bot.core.models import Actor, Job, JobStatus
from bot.core.replies import Cancelled, Detail, Listing, Problem
from bot.core.upkeep import PRESENCE_WINDOW_S
from bot.errors import ConfigError, InfraError, UsageError, UserError
from bot.terminal.console import Console, PrintNotifier, read_source
from bot.terminal.outfiles import OUT_ROOT, read_data_file, save_files, saved_lines
from bot.terminal.screen import Screen
from bot.terminal.textview import job_data, job_detail, job_json, render

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_TIMEOUT, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
# commands a person types and waits for: quiet logs
INTERACTIVE = frozenset(
    {"console", "run", "status", "mine", "list", "cancel", "rerun", "token", "files"}
)
QUIT_GRACE_S = 5.0  # after a second Ctrl-C: time for the stopped runs to be recorded, no more
STATUS_EXIT = {
    JobStatus.DONE: EXIT_OK,
    JobStatus.ERROR: EXIT_ERROR,
    JobStatus.CANCELLED: EXIT_ERROR,
    JobStatus.TIMEOUT: EXIT_TIMEOUT,
}


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
    p = add("token", "mint or revoke a user's token for the HTTP API")
    p.add_argument(
        "action",
        choices=["create", "revoke"],
        help="create prints a new token once (the old one stops working); revoke removes it",
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


def _actor(runtime: Runtime, args: argparse.Namespace) -> Actor:
    return runtime.service.actor(local_identity(getattr(args, "user", None)))


def _runtime(settings: Settings, migrate: bool = True) -> Runtime:
    runtime = Runtime(settings)
    if migrate:
        runtime.migrate()
    return runtime


def _wait_for(
    settings: Settings,
    submit: Callable[[Runtime, Actor, str], tuple[Job, bool]],
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """Submit through `submit`, run workers here (unless --no-worker) and print the outcome."""
    done = threading.Event()
    finished: list[Job] = []
    route = local_route()

    def on_finished(job: Job) -> None:
        finished.append(job)
        done.set()

    process = Process(
        settings,
        workers=not args.no_worker,
        routes={route: PrintNotifier(lambda line: None, on_finished)},
    )
    process.start()
    runtime = process.runtime
    try:
        job, _ = submit(runtime, _actor(runtime, args), route)
        if not args.json:
            print(f"Job #{job.id} queued: {job.file_name}", file=sys.stderr, flush=True)
        if args.no_worker and not runtime.store.workers_alive(PRESENCE_WINDOW_S):
            print(
                f"No worker is running: job #{job.id} stays queued until one starts "
                "(python -m bot worker). Waiting for it; Ctrl-C stops waiting and leaves "
                "the job queued.",
                file=sys.stderr,
                flush=True,
            )
        done.wait()
    except KeyboardInterrupt:
        print("interrupted; the job stays queued", file=sys.stderr)
        return 130
    finally:
        process.stop()
    final = runtime.service.get(finished[0].id) or finished[0]
    print(job_json(final) if args.json else job_detail(final, full=True), file=out)
    # the text detail says which files were left out; with --json the note goes to stderr
    _save(runtime, _actor(runtime, args), final, sys.stderr if args.json else out, note=args.json)
    return STATUS_EXIT.get(final.status, EXIT_ERROR)


def _save(runtime: Runtime, actor: Actor, job: Job, out: TextIO, *, note: bool = True) -> int:
    """Save a job's files out under jobbot-out/<id>/ and print where; how many."""
    files = runtime.service.files(actor, job.id)
    for line in saved_lines(job, save_files(job.id, files), files, note=note):
        print(line, file=out)
    return len(files)


def cmd_files(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Fetch a job's files out again."""
    from bot.core.commands import parse_job_id

    job_id = parse_job_id(args.job_id, "files")
    runtime = _runtime(settings)
    actor = _actor(runtime, args)
    job = runtime.service.view(actor, job_id).job
    if not _save(runtime, actor, job, out):
        print(f"Job #{job_id} has no files out{'' if job.status.is_final else ' yet'}.", file=out)
    return EXIT_OK


def cmd_run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Submit a file and wait."""
    name, data = read_source(args.file)
    files = [read_data_file(path) for path in getattr(args, "data", [])]
    args.no_worker = getattr(args, "no_worker", False)
    return _wait_for(
        settings,
        lambda runtime, actor, route: runtime.service.submit(
            actor, name, data, args.input, origin={"kind": "cli"}, route=route, files=files
        ),
        args,
        out,
    )


def cmd_rerun(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Re-run a job and wait."""
    from bot.core.commands import parse_job_id

    job_id = parse_job_id(args.job_id, "rerun")
    args.no_worker = False
    return _wait_for(
        settings,
        lambda runtime, actor, route: runtime.service.rerun(
            actor, job_id, origin={"kind": "cli"}, route=route
        ),
        args,
        out,
    )


def cmd_status(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Show one job."""
    from bot.core.commands import parse_job_id

    job_id = parse_job_id(args.job_id, "status")
    runtime = _runtime(settings)
    view = runtime.service.view(_actor(runtime, args), job_id)
    if args.json:
        print(job_json(view.job, view.full), file=out)
    else:
        files = tuple(runtime.service.listed_files(view))
        print(render(Detail(view.job, view.full, files)), file=out)
    return EXIT_OK


def _listing(runtime: Runtime, listing: Listing, as_json: bool, out: TextIO) -> int:
    """A listing as text, or as JSON by the same visibility rule: the rows whose output the
    viewer may see are loaded in full (listing rows are summaries)."""
    if not as_json:
        print(render(listing), file=out)
        return EXIT_OK
    rows = []
    for job in listing.jobs:
        full = listing.shows_output(job)
        rows.append(job_data((runtime.service.get(job.id) or job) if full else job, full))
    print(json.dumps(rows, ensure_ascii=False, indent=2), file=out)
    return EXIT_OK


def cmd_mine(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """List your jobs."""
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be from 1 to 1000")
    runtime = _runtime(settings)
    actor = _actor(runtime, args)
    jobs = runtime.service.mine(actor, args.limit)
    listing = Listing("Your jobs", tuple(jobs), actor, "You have no jobs yet.")
    return _listing(runtime, listing, args.json, out)


def cmd_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """List everyone's jobs."""
    if args.page < 1:
        raise UsageError("--page must be 1 or more")
    runtime = _runtime(settings)
    actor = _actor(runtime, args)
    jobs = runtime.service.list_page(args.page)
    more = f"Older jobs: python -m bot list --page {args.page + 1}" if len(jobs) == 20 else ""
    listing = Listing(f"All jobs, page {args.page}", tuple(jobs), actor, "No jobs.", more)
    return _listing(runtime, listing, args.json, out)


def cmd_cancel(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Cancel a waiting job, or stop a running one and wait (a while) for how it ended."""
    from bot.core.commands import parse_job_id

    job_id = parse_job_id(args.job_id, "cancel")
    runtime = _runtime(settings)
    job = runtime.service.cancel(_actor(runtime, args), job_id)
    if job.status is not JobStatus.RUNNING:
        print(f"Job #{job.id} cancelled.", file=out)
        return EXIT_OK
    print(render(Cancelled(job)), file=sys.stderr, flush=True)
    # The worker running it (perhaps in another process) polls for the request; a Lambda
    # run is recorded at once, a local one once its processes are down.
    deadline = time.monotonic() + settings.lease_s
    pause = threading.Event()
    while (current := runtime.service.get(job_id)) is not None and not current.status.is_final:
        if time.monotonic() > deadline:
            print(
                f"Job #{job_id} is still running; `python -m bot status {job_id}` shows how "
                "it ends.",
                file=out,
            )
            return EXIT_OK
        pause.wait(0.2)
    if current is not None:
        print(render(Detail(current, full=True)), file=out)
    return EXIT_OK


def cmd_token(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Mint (and print, once) or revoke a user's API token."""
    runtime = _runtime(settings)
    actor = _actor(runtime, args)
    name = f"{actor.user.identity.external_id} (user #{actor.user.id})"
    if args.action == "create":
        token = runtime.service.mint_token(actor)
        print(token, file=out)
        print(
            f"API token of {name}. It is shown only this once: keep it secret; "
            "any earlier token of this user no longer works.",
            file=sys.stderr,
        )
    elif runtime.service.revoke_token(actor):
        print(f"The API token of {name} is revoked.", file=out)
    else:
        print(f"{name} had no API token.", file=out)
    return EXIT_OK


def cmd_migrate(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Apply the schema."""
    runtime = _runtime(settings)
    print(
        f"schema version {runtime.store.schema_version()} at {settings.redacted_database_url()}",
        file=out,
    )
    return EXIT_OK


def cmd_worker(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Run workers (and the Slack intake journal and notifier, when configured) until SIGTERM."""
    return EXIT_OK if Process(settings, slack=True).run_until_signal() else EXIT_ERROR


def cmd_serve(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Run the Slack app (Socket Mode or HTTP), the HTTP endpoints and the workers until
    SIGTERM; then stop accepting, let running jobs finish, deliver what is left and exit."""
    drained = Process(settings, slack=True, http=True).run_until_signal()
    return EXIT_OK if drained else EXIT_ERROR


def cmd_console(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """The interactive console. Ctrl-C at the prompt leaves it once this session's jobs have
    finished; a second Ctrl-C leaves at once, waiting for nothing."""
    route = local_route()
    screen = Screen(out)
    write = screen.write
    notifier = PrintNotifier(write)
    process = Process(settings, routes={route: notifier})
    process.start()
    runtime = process.runtime
    actor = _actor(runtime, args)
    notifier.files = lambda job_id: runtime.service.files(actor, job_id)
    console = Console(runtime.console_handler(), actor, route, runtime.store)
    write(
        f"jobbot console: {settings.redacted_database_url()}, executor {settings.executor}, "
        f"you are {actor.user.identity.external_id} (user #{actor.user.id})."
    )
    write("Type /job help for commands, exit to quit.")
    grace: float | None = None  # the job timeout: running jobs may finish
    try:
        console.loop(screen.read, write)
        console.settle(write, settings.job_timeout + 5)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a third one must not interrupt the stop
        write("\nQuitting at once: waiting jobs stay queued; jobs running here are stopped.")
        runtime.stop_runs()
        grace = QUIT_GRACE_S
    finally:
        process.stop(grace)
    return EXIT_OK


def cmd_doctor(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Check everything an operator must know, as a table."""
    from bot.app.doctor import run_checks

    rows = run_checks(settings)
    width = max(len(r[0]) for r in rows)
    for name, detail, ok in rows:
        print(f"{'ok  ' if ok else 'FAIL'}  {name.ljust(width)}  {detail}", file=out)
    return EXIT_OK if all(ok for _, _, ok in rows) else EXIT_ERROR


def cmd_lambda(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Deploy the runner function or print its policies."""
    return lambda_command(settings, args.action, out, replace=args.replace)


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
