"""`python -m bot serve` as a real process in HTTP mode, against the Slack stand-in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.slack_requests import ADMIN, SECRET
from tests.support.slack_standin import SlackStandIn
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """Starts serve, waits for /healthz, stops it with SIGTERM."""

    def __init__(
        self, standin: SlackStandIn, database_url: str, workdir: Path, **settings: str
    ) -> None:
        self.port = free_port()
        self.log_path = workdir / "serve.log"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "JOBBOT_", "DATABASE_URL", "AWS_"))
        }
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

    def start(self, timeout: float = 30.0) -> ServeProcess:
        """Start and wait until /healthz answers 200."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            return self.get("/healthz")[0] == 200

        wait_until(ready, timeout=timeout, interval=0.05, message="serve to answer /healthz")
        return self

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

    def log(self) -> str:
        """Everything the process logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
