"""`python -m bot serve` as a real process in HTTP mode, against the Slack stand-in; and, run
as a module, the same serve with its executions recorded and faults injected:

    python -m testbed.serve_process EXECUTIONS_FILE [--crash-at POINT] [--executor KIND]
        [--hold-claims FILE]

The options mean what they mean for testbed.worker_process (same CrashingStore, same
counting executor); `serve`'s own Process (bot.app.wiring.process) runs unchanged on the
composed Runtime.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from testbed.processes import clean_env, listens_on, track
from testbed.slack_requests import ADMIN, SECRET
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """Starts serve, waits for /healthz, stops it with SIGTERM."""

    def __init__(
        self,
        standin: SlackStandIn,
        database_url: str,
        workdir: Path,
        *,
        entry: Sequence[str] | None = None,
        **settings: str,
    ) -> None:
        self.port = free_port()
        self.log_path = workdir / f"serve-{self.port}.log"
        # None: `python -m bot serve`; else the arguments of this module's instrumented serve.
        self.entry = list(entry) if entry is not None else None
        self.env = clean_env()
        self.env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": database_url,
                "SLACK_BOT_TOKEN": standin.token,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": standin.base_url,
                "PORT": str(self.port),
                "JOBBOT_ADMINS": ADMIN,
                "JOBBOT_POLL_INTERVAL": "0.05",
                "JOBBOT_LOG_FORMAT": "json",
            }
        )
        self.env.update(settings)
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where Slack requests go."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    def get(self, path: str) -> tuple[int, str]:
        """GET an endpoint: (status, body)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=5
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def start(self, timeout: float = 120.0) -> ServeProcess:
        """Start and wait until /healthz answers 200 (a deadline with margin for a loaded 2-core
        machine running tests in parallel). The port was free when chosen, but any
        process on the machine may take it before serve binds it: then serve starts again on
        another one (and that attempt's lines leave the log)."""
        for _ in range(5):
            if self._start_once(timeout):
                return self
            self.port = free_port()
            self.env["PORT"] = str(self.port)
        raise AssertionError(f"serve found no free port: {self.log()[-3000:]}")

    def _start_once(self, timeout: float) -> bool:
        """One start; False if the port was taken meanwhile."""
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        command = (
            [sys.executable, "-m", "bot", "serve"]
            if self.entry is None
            else [sys.executable, "-m", "testbed.serve_process", *self.entry]
        )
        process = self.process = track(
            subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        )
        log.close()

        def answered() -> bool:
            # our serve's own socket (another process may answer on a port it took meanwhile)
            if process.poll() is not None:
                return True
            return listens_on(process.pid, self.port) and self.get("/healthz")[0] == 200

        wait_until(answered, timeout=timeout, interval=0.05, message="serve to answer /healthz")
        if process.poll() is None:
            return True
        if "Address already in use" in self.log()[logged:]:
            with self.log_path.open("r+b") as fh:
                fh.truncate(logged)
            return False
        raise AssertionError(f"serve exited {process.returncode}: {self.log()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        """The exit code once the process ended by itself (e.g. at a crash point)."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        """Everything the process logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def main() -> None:
    """serve on a Runtime whose executor records executions and whose store may crash."""
    from bot.app import logs
    from bot.app.environment import load_settings
    from bot.app.wiring.process import Process
    from testbed.worker_process import instrumented_runtime

    settings = load_settings(env_file=None)
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    runtime = instrumented_runtime(settings)
    process = Process(settings, runtime, slack=True, http=True)  # as `serve` composes it
    sys.exit(0 if process.run_until_signal() else 1)


if __name__ == "__main__":
    main()
