"""scripts/ensure-mariadb on a machine as it comes: a MariaDB whose root logs in only through
the unix socket, as Debian installs it (a ping answers, a TCP login as root is refused), and no
MariaDB at all. Run as root it fixes the first; run as anyone else it prints the exact command
for either."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.support.private_mariadb import PrivateMariaDB, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure-mariadb"
IS_ROOT = os.geteuid() == 0
NOBODY = 65534
OPEN_ROOT = (
    "mariadb -e \"ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR "
    "mysql_native_password USING PASSWORD('')\""
)


@pytest.fixture
def debian_mariadb() -> Iterator[PrivateMariaDB]:
    """A server whose root logs in only through the unix socket."""
    server = PrivateMariaDB(root_by_socket=True)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def tcp_login(port: int) -> bool:
    """Whether root gets in over TCP without a password, as the tests log in."""
    try:
        pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=5).close()
    except pymysql.err.OperationalError:
        return False
    return True


def ensure(
    port: int, socket: Path | None = None, **switch: Any
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "JOBBOT_TEST_MYSQL_URL": f"mysql+pymysql://root@127.0.0.1:{port}/",
    }
    if socket is not None:
        env["MYSQL_UNIX_PORT"] = str(socket)  # the client's default socket: this server's
    return subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False, **switch
    )


def as_someone_else() -> dict[str, Any]:
    """Run as an ordinary user: nobody when the tests run as root, else as we are."""
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if IS_ROOT else {}


@pytest.mark.skipif(not IS_ROOT, reason="opening root's login takes the OS user root")
def test_as_root_it_lets_root_in_over_tcp_when_root_was_bound_to_the_socket(
    debian_mariadb: PrivateMariaDB,
) -> None:
    assert not tcp_login(debian_mariadb.port), "as Debian installs it"
    done = ensure(debian_mariadb.port, debian_mariadb.socket)
    assert done.returncode == 0, done.stderr
    assert tcp_login(debian_mariadb.port)
    assert "root may now log in over TCP" in done.stderr


def test_as_anyone_else_it_prints_the_exact_fix_and_fails(debian_mariadb: PrivateMariaDB) -> None:
    done = ensure(debian_mariadb.port, **as_someone_else())
    assert done.returncode == 1
    assert "refuses a TCP login as root without a password" in done.stderr
    assert OPEN_ROOT in done.stderr
    assert not tcp_login(debian_mariadb.port)


@pytest.mark.skipif(not IS_ROOT, reason="hiding the installed MariaDB takes a mount namespace")
def test_without_mariadb_it_prints_the_install_command() -> None:
    hidden = [
        path
        for path in ("/usr/sbin/mariadbd", "/usr/bin/mariadb", "/usr/bin/mariadb-admin")
        if os.path.exists(path)
    ]
    mounts = "; ".join(f"mount --bind /dev/null {path}" for path in hidden)
    command = f"{mounts}; exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {SCRIPT}"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "JOBBOT_TEST_MYSQL_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "MariaDB is not installed. Install it with:" in done.stderr, done.stderr
    assert (
        "sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "mariadb-server'" in done.stderr
    )
