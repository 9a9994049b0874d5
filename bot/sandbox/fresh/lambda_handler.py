"""The Lambda entry point: one fresh child per job, nothing of it left behind afterwards.

Deployed as `sandbox.fresh.lambda_handler.handler`. Every invocation runs one protocol-v1 request
through `spawn.run_fresh` (allow-list environment, new session, rlimits, this process made
non-dumpable and a child subreaper, and the job's seccomp filter, which keeps it from
signalling this process and, unless the bot turned the network on, from reaching the
Runtime API) and returns the v1 response. Inside Lambda it also
kills every remaining descendant and empties `/tmp` before it returns, because the
execution environment (its processes and `/tmp`) is frozen and reused for the next job,
which may be another user's.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import sys
from typing import Any

from .. import files, protocol, reaper
from ..inside.seccomp import Confinement
from ..protocol import SandboxUnavailable
from . import layer, spawn
from . import probe as probe_job

# time the handler keeps for itself after the job's deadline: kill and reap the job,
# drain its pipes, empty /tmp and send the reply before Lambda's own timeout strikes
MARGIN_S = 1.5
# Lambda refuses synchronous responses above 6 MB (a function error, the output lost);
# keep clear of it, since the runtime may escape characters when it encodes the reply
RESPONSE_BUDGET = files.RESPONSE_BUDGET
SCRATCH = "/tmp"  # noqa: S108 - Lambda's only writable directory, ours alone
# emptied between jobs too: Lambda has no /dev/shm, but a runtime that has one keeps it warm
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - emptied, never used
_KILL_DEADLINE_S = 5.0


def in_lambda(environ: dict[str, str] | None = None) -> bool:
    """True inside a Lambda execution environment (the runtime sets both variables).

    Only there is the process alone with its `/tmp` and its children, so only there
    does the handler empty `/tmp` and kill every child it has.
    """
    env = os.environ if environ is None else environ
    return bool(env.get("AWS_LAMBDA_RUNTIME_API")) and bool(env.get("LAMBDA_TASK_ROOT"))


def budget(context: object) -> float | None:
    """Seconds the job may take at most: the invocation's remaining time minus the margin.

    None when the context cannot say (called outside Lambda). Rounded down to 0.1 s so a
    message that quotes the limit stays readable.
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        left = float(remaining()) / 1000 - MARGIN_S
    except (TypeError, ValueError):
        return None
    if not math.isfinite(left):
        return None
    return max(spawn.MIN_TIMEOUT_S, math.floor(left * 10) / 10)


def _make_writable(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode) | stat.S_IRWXU)
    except OSError:
        pass


def _on_rm_error(_func: object, path: str, _exc: object) -> None:
    # a job may leave read-only or unlistable directories: open them up and retry
    _make_writable(os.path.dirname(path))
    _make_writable(path)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def empty_dir(root: str) -> list[str]:
    """Remove everything inside `root` (not `root` itself); returns the names that remain."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                _make_writable(path)
                if sys.version_info >= (3, 12):
                    shutil.rmtree(path, onexc=_on_rm_error)
                else:  # pragma: no cover - the 3.11 spelling of the same hook
                    shutil.rmtree(path, onerror=_on_rm_error)
            else:
                os.unlink(path)
        except OSError:
            _on_rm_error(None, path, None)
    try:
        return os.listdir(root)
    except OSError:
        return []


def _cut(response: dict[str, Any], field: str, keep: int) -> None:
    text = response[field]
    response[field] = text[:keep]
    response[f"{field}_truncated"] = True
    if field == "stdout" and response.get("result_kind") == "stdout":
        # a stdout result is the captured stdout: it is cut with it, as at the output cap
        response["result_json"] = json.dumps(text[:keep].rstrip(), ensure_ascii=False)


def fit_response(response: dict[str, Any], limit: int = RESPONSE_BUDGET) -> dict[str, Any]:
    """The response cut to fit Lambda's response limit: files out first (the largest first,
    each named in a note, as every executor does: files.fit_files), then output, then the
    traceback.

    Only output that escapes badly (control characters: 6 bytes each) or a raised
    JOBBOT_MAX_OUTPUT_BYTES can get past the files. Should a returned result itself be too
    large, the job becomes an error that says so instead of a lost response.
    """
    if files.encoded_size(response) <= limit:
        return response
    fitted = dict(response)
    size = files.fit_files(fitted, limit)
    if size <= limit:
        return fitted
    for field in sorted(("stdout", "stderr"), key=lambda name: -len(fitted[name])):
        keep = len(fitted[field])
        while keep and size > limit:
            # shrink in proportion to the excess (a little more, to converge in a step or two)
            keep = min(keep - 1, int(keep * limit / size * 0.98))
            _cut(fitted, field, keep)
            size = files.encoded_size(fitted)
        if size <= limit:
            return fitted
    if fitted.get("traceback"):
        fitted["traceback"] = "... (traceback dropped: the response was too large)"
        size = files.encoded_size(fitted)
        if size <= limit:
            return fitted
    message = (
        f"the job's result is too large to return from Lambda ({size} bytes of JSON, "
        f"limit {limit}); lower JOBBOT_MAX_OUTPUT_BYTES"
    )
    return protocol.response(
        "error",
        duration_ms=response.get("duration_ms", 0),
        error_type="ResultTooLarge",
        error_message=message,
        exit_code=response.get("exit_code"),
        signal=response.get("signal"),
    )


def probe(context: object, confinement: Confinement) -> dict[str, Any]:
    """Facts about this execution environment for `doctor`, and what the probe job (no user
    code: probe.JOB) found when it ran through the real path, confined as a user's job."""
    scratch_left = len(os.listdir(SCRATCH)) if in_lambda() else None  # before the job's own
    try:
        job = probe_job.findings(
            spawn.run_fresh(
                probe_job.request(), deadline_s=budget(context), confinement=confinement
            )
        )
    except SandboxUnavailable as exc:
        job = {"error": f"the sandbox could not start it: {exc}"}
    return {
        "v": protocol.VERSION,
        "probe": {
            "python": sys.version.split()[0],
            "machine": os.uname().machine,
            "uid": os.getuid(),
            "in_lambda": in_lambda(),
            "scratch": SCRATCH,
            "scratch_left": scratch_left,
            "network": confinement.network,
            "packages": {k: v for k, v in layer.manifest().items() if k != "packages"},
            "job": job,
        },
    }


def _clean_environment() -> None:
    # what cannot be removed is reported to the function's log (CloudWatch), for operators
    if not reaper.sweep_own(deadline_s=_KILL_DEADLINE_S):
        print("jobbot: processes of a job survived SIGKILL for 5 s", file=sys.stderr)
    for directory in (SCRATCH, SHARED_MEMORY):
        left = empty_dir(directory)
        if left:
            print(f"jobbot: could not empty {directory}: {len(left)} entries left", file=sys.stderr)


def handler(event: object, context: object) -> dict[str, Any]:
    """Run one job: `event` is a protocol-v1 request, the result a v1 response.

    The job confines itself with the seccomp filter (inside/seccomp.py); it may open
    Internet sockets only when the event says `"network": true`, which the bot adds for
    JOBBOT_LAMBDA_NETWORK=on (only the bot can invoke the function).
    """
    return handle(event, context)


def handle(event: object, context: object, *, syscall_filter: bool = True) -> dict[str, Any]:
    """handler() itself; `syscall_filter=False` is for a test's deliberately weakened handler.

    User code failing, a timeout and a malformed event all give a well-formed response.
    Only SandboxUnavailable (the interpreter could not start: nothing ran, safe to retry)
    escapes, as a function error the executor recognises by its type.
    """
    lambda_env = in_lambda()
    network = isinstance(event, dict) and event.get("network") is True
    confinement = Confinement(network=network, syscall_filter=syscall_filter)
    if isinstance(event, dict) and event.get("probe") is True:
        return probe(context, confinement)
    if lambda_env:
        # a previous invocation may have been cut off before it could clean up
        _clean_environment()
    try:
        if isinstance(event, dict):
            response = spawn.run_fresh(event, deadline_s=budget(context), confinement=confinement)
        else:
            kind = type(event).__name__
            response = protocol.error_response(f"a request must be a JSON object, not {kind}")
    except SandboxUnavailable:
        raise
    except Exception as exc:  # a harness bug: still a readable answer, never a lost job
        response = protocol.response(
            "crashed",
            error_type="HarnessError",
            error_message=f"the runner failed: {type(exc).__name__}: {exc}",
        )
    finally:
        if lambda_env:
            _clean_environment()
    return fit_response(response)
