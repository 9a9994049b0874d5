"""A throwaway MariaDB server of our own (its own data directory and port), so fault tests can
stop and restart a database without touching the shared one other tests use."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "mariadb-install-db"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateMariaDB:
    """start() / stop() / kill() a MariaDB server on 127.0.0.1:<port>, root without password;
    or, with `root_by_socket`, root as Debian's package leaves it: allowed in only through the
    unix socket, as the OS user root (`socket` is its path)."""

    def __init__(self, root_by_socket: bool = False) -> None:
        self.root_by_socket = root_by_socket
        self.dir = Path(tempfile.mkdtemp(prefix="jobbot-mariadb-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # A temporary directory of its own: a starting server deletes every `#sql*` file in
        # its tmpdir, and in the shared /tmp those include the temporary tables of the
        # suite's MariaDB, whose queries then fail ("Error on delete of '/tmp/#sql-...'").
        self.tmp.mkdir()
        shutil.chown(self.dir, "mysql", "mysql") if os.geteuid() == 0 else None
        shutil.chown(self.tmp, "mysql", "mysql") if os.geteuid() == 0 else None
        done = subprocess.run(
            [
                INSTALL_DB,
                f"--datadir={self.dir / 'data'}",
                f"--tmpdir={self.tmp}",  # passed on to the server it bootstraps
                f"--auth-root-authentication-method={'socket' if root_by_socket else 'normal'}",
                "--skip-test-db",
                *(["--user=mysql"] if os.geteuid() == 0 else []),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr.decode()[-2000:]}")

    @property
    def tmp(self) -> Path:
        """The server's temporary directory (`--tmpdir`)."""
        return self.dir / "tmp"

    @property
    def socket(self) -> Path:
        """The server's unix socket."""
        return self.dir / "mysqld.sock"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of database `jobbot` on this server."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/jobbot"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers; creates database `jobbot` once (when
        root may log in over TCP)."""
        command = [
            MARIADBD,
            "--no-defaults",
            f"--datadir={self.dir / 'data'}",
            f"--port={self.port}",
            f"--tmpdir={self.tmp}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.dir / 'mysqld.pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=500",
        ]
        if os.geteuid() == 0:
            command.append("--user=mysql")
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        if self.root_by_socket:  # root cannot log in over TCP: ask through the socket
            ping = ["mariadb-admin", f"--socket={self.socket}", "--user=root", "ping"]
            while subprocess.run(ping, capture_output=True, check=False).returncode != 0:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(self.log_tail())
                time.sleep(0.1)
            return
        engine = create_engine(
            f"mysql+pymysql://root@127.0.0.1:{self.port}/", connect_args={"connect_timeout": 1}
        )
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(text("CREATE DATABASE IF NOT EXISTS jobbot"))
                    return
                except Exception:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(self.log_tail()) from None
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Shut the server down (SIGTERM) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def log_tail(self) -> str:
        """The end of the server log, for failure messages."""
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        """Stop and delete everything."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
