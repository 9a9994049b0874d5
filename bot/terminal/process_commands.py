"""The CLI's process commands: serve and worker (until SIGTERM), the interactive console,
and the operator's migrate, doctor and lambda."""

from __future__ import annotations

import argparse
import signal
from typing import TextIO

from bot.app.config import Settings
from bot.app.wiring.parts import local_route
from bot.app.wiring.process import Process
from bot.app.wiring.tools import lambda_command
from bot.terminal.console import Console, PrintNotifier
from bot.terminal.exits import EXIT_ERROR, EXIT_OK
from bot.terminal.job_commands import actor_of, runtime_for
from bot.terminal.screen import Screen

QUIT_GRACE_S = 5.0  # after a second Ctrl-C: time for the stopped runs to be recorded, no more


def cmd_migrate(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Apply the schema."""
    runtime = runtime_for(settings)
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
    # Ctrl-C is how a person leaves the console (below). A process started in the background
    # of a non-interactive shell (`nohup`, `cmd &` in a script) inherits SIGINT ignored, and
    # Python then leaves it ignored: the console at a terminal would not answer Ctrl-C at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    route = local_route()
    screen = Screen(out)
    write = screen.write
    notifier = PrintNotifier(write)
    process = Process(settings, routes={route: notifier})
    process.start()
    runtime = process.runtime
    actor = actor_of(runtime, args)
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
