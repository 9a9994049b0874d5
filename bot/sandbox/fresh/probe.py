"""Doctor's probe of a Lambda runner: a fixed trivial job through the real sandbox path.

The probe event carries no user code. The handler runs this job through run_fresh with the
confinement a user's job gets (the same filter; the network as the bot asks for it), so
doctor sees the path jobs take, and what a job there can and cannot do.
"""

from __future__ import annotations

import json
from typing import Any

from .. import protocol

# the job: what its confinement lets it do, as JSON on stdout
JOB = """\
import json, os, socket, sys
ppid = os.getppid()

def attempt(step):
    try:
        step()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return line.split()[1]

print(json.dumps({
    "seccomp": status("Seccomp"),
    "no_new_privs": status("NoNewPrivs"),
    "signal_runtime": attempt(lambda: os.kill(ppid, 0)),
    "read_runtime_environ": attempt(lambda: open(f"/proc/{ppid}/environ", "rb").read()),
    "internet_socket": attempt(lambda: socket.socket(socket.AF_INET).close()),
    "uid": os.getuid(),
    "layer_on_path": any(path.startswith("/opt/") for path in sys.path),
}))
"""


def request(timeout_s: float = 10.0) -> dict[str, Any]:
    """The probe job as a protocol-v1 request."""
    return {
        "v": protocol.VERSION,
        "job_id": 0,
        "file_name": "probe.py",
        "code": JOB,
        "input_json": "{}",
        "timeout_s": timeout_s,
        "memory_mb": 256,
        "max_output_bytes": 64 * 1024,
    }


def findings(response: dict[str, Any]) -> dict[str, Any]:
    """What the probe job reported, or {"error": why it did not} (its outcome and message)."""
    if response.get("outcome") == "ok":
        try:
            found = json.loads(response.get("stdout") or "")
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found
    why = response.get("error_message") or response.get("stderr") or response.get("outcome")
    return {"error": f"{response.get('outcome')}: {str(why)[:300]}"}
