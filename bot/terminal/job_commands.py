"""The CLI's job commands: run, rerun, status, mine, list, cancel, files and token, each on a
Runtime of its own (run and rerun start a Process and wait for the job)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from bot.app.config import Settings
from bot.app.shutdown import wait_in_main
from bot.app.wiring.parts import local_identity, local_route
from bot.app.wiring.process import Process
from bot.app.wiring.runtime import Runtime
from bot.core.models import Actor, Job, JobStatus
from bot.core.replies import Cancelled, Detail, Listing
from bot.core.tokens import parse_lifetime
from bot.core.upkeep import PRESENCE_WINDOW_S
from bot.errors import UsageError
from bot.terminal.console import PrintNotifier, read_source
from bot.terminal.exits import EXIT_ERROR, EXIT_OK, STATUS_EXIT
from bot.terminal.outfiles import read_data_file, save_files, saved_lines
from bot.terminal.textview import job_data, job_detail, job_json, render, token_table


def actor_of(runtime: Runtime, args: argparse.Namespace) -> Actor:
    return runtime.service.actor(local_identity(getattr(args, "user", None)))


def runtime_for(settings: Settings, migrate: bool = True) -> Runtime:
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
        job, _ = submit(runtime, actor_of(runtime, args), route)
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
        wait_in_main(done)  # Ctrl-C is acted on even if its signal is missed
    except KeyboardInterrupt:
        print("interrupted; the job stays queued", file=sys.stderr)
        return 130
    finally:
        process.stop()
    final = runtime.service.get(finished[0].id) or finished[0]
    print(job_json(final) if args.json else job_detail(final, full=True), file=out)
    # the text detail says which files were left out; with --json the note goes to stderr
    _save(runtime, actor_of(runtime, args), final, sys.stderr if args.json else out, note=args.json)
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
    runtime = runtime_for(settings)
    actor = actor_of(runtime, args)
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
    runtime = runtime_for(settings)
    view = runtime.service.view(actor_of(runtime, args), job_id)
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
    runtime = runtime_for(settings)
    actor = actor_of(runtime, args)
    jobs = runtime.service.mine(actor, args.limit)
    listing = Listing("Your jobs", tuple(jobs), actor, "You have no jobs yet.")
    return _listing(runtime, listing, args.json, out)


def cmd_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """List everyone's jobs."""
    if args.page < 1:
        raise UsageError("--page must be 1 or more")
    runtime = runtime_for(settings)
    actor = actor_of(runtime, args)
    jobs = runtime.service.list_page(args.page)
    more = f"Older jobs: python -m bot list --page {args.page + 1}" if len(jobs) == 20 else ""
    listing = Listing(f"All jobs, page {args.page}", tuple(jobs), actor, "No jobs.", more)
    return _listing(runtime, listing, args.json, out)


def cmd_cancel(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Cancel a waiting job, or stop a running one and wait (a while) for how it ended."""
    from bot.core.commands import parse_job_id

    job_id = parse_job_id(args.job_id, "cancel")
    runtime = runtime_for(settings)
    job = runtime.service.cancel(actor_of(runtime, args), job_id)
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
    lifetime = None if args.expires is None else parse_lifetime(args.expires)
    if lifetime is not None and args.action != "create":
        raise UsageError("--expires goes with `token create` only.")
    runtime = runtime_for(settings)
    if args.action == "list":
        print(token_table(runtime.service.tokens.all()), file=out)
        return EXIT_OK
    actor = actor_of(runtime, args)
    name = f"{actor.user.identity.external_id} (user #{actor.user.id})"
    if args.action == "create":
        token = runtime.service.tokens.mint(actor, lifetime)
        stored = runtime.service.tokens.of(actor)
        expiry = (
            f" It expires at {stored.expires_at.isoformat(timespec='seconds')}."
            if stored is not None and stored.expires_at is not None
            else ""
        )
        print(token, file=out)
        print(
            f"API token of {name}. It is shown only this once: keep it secret; "
            f"any earlier token of this user no longer works.{expiry}",
            file=sys.stderr,
        )
    elif runtime.service.tokens.revoke(actor):
        print(f"The API token of {name} is revoked.", file=out)
    else:
        print(f"{name} had no API token.", file=out)
    return EXIT_OK
