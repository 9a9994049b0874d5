"""Hostile jobs through the shared LocalExecutor: each must be contained, then the next job runs.

The machine is expected to be root with namespaces and cgroups (CI): these tests assert that
isolation is in force there and never skip. On a non-root box they assert the documented
degraded behaviour instead (see test_degraded.py).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.executors.local import LocalExecutor
from testbed import jobenv
from testbed.processes import descendants
from testbed.waiting import wait_until
from tests.support import probes

from .conftest import (
    IS_ROOT,
    MAX_FILE_BYTES,
    MAX_PROCS,
    REPO,
    SECRETS,
    TMP_BYTES,
    harness_request,
    memory_kb,
    owned_by,
    processes_of,
    reset_peak_memory,
    tmp_entries_of_a_checkout,
    under_private_tmp,
)

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="test_degraded.py covers non-root hosts")


def run(
    executor: LocalExecutor, code: str, input_: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    return executor.run_harness(harness_request(code, input_, **kw))


def still_serving(executor: LocalExecutor) -> None:
    response = run(executor, "def main(a, b):\n    return a + b\n", {"a": 2, "b": 3})
    assert (response["outcome"], response["result_json"]) == ("ok", "5")


@pytest.fixture(autouse=True)
def _serves_after_each_hostile_job(executor: LocalExecutor) -> Iterator[None]:
    yield
    still_serving(executor)
    wait_until(lambda: not processes_of(executor.uids), timeout=5, message="no job processes left")


def test_describe_reports_full_isolation_on_a_root_host(executor: LocalExecutor) -> None:
    rows = {check: (detail, ok) for check, detail, ok in executor.describe()}
    assert rows["network isolation"] == ("a network namespace per slot (loopback down)", True)
    uids = executor.uids
    assert len(uids) == 4
    assert rows["privileges"] == (f"jobs run as uid {uids[0]}-{uids[-1]}, no_new_privs", True)
    assert rows["process limit"][1] and "pids.max" in rows["process limit"][0]
    assert rows["memory limit"][1] and "cgroup" in rows["memory limit"][0]
    detail, ok = rows["filesystem"]
    assert ok, detail
    assert "private tmpfs /tmp (64 MiB per job), host read-only" in detail
    assert str(REPO) in detail and "/run" in detail
    assert rows["zygote"][0].startswith(f"pid {executor.zygote_pid}, python")
    assert all(ok for _, _, ok in executor.describe())


def test_jobs_run_the_bots_interpreter_as_their_slot_uid_with_stdlib_access(
    executor: LocalExecutor,
) -> None:
    code = (
        "import os, sys, sqlite3, xml.dom.minidom, subprocess\n"
        "child = subprocess.run([sys.executable, '-c', 'import sys; print(sys.version)'],"
        " capture_output=True, text=True)\n"
        "print(json.dumps([os.getuid(), os.getgid(), os.getgroups(), sys.version, child.stdout]))\n"
    )
    response = run(executor, "import json\n" + code)
    assert response["outcome"] == "ok", response
    uid, gid, groups, version, child_version = json.loads(response["stdout"])
    assert uid in executor.uids and gid == uid and groups == []
    # the same interpreter as the bot, not a system python with another standard library
    import sys

    assert version == sys.version
    assert child_version.strip() == sys.version


def test_the_environment_holds_none_of_the_bots_variables(executor: LocalExecutor) -> None:
    response = run(executor, "import os, json\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(response["stdout"])
    assert set(env) == {
        "PATH", "LANG", "TZ", "HOME", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "MPLBACKEND", "MPLCONFIGDIR",
    }  # fmt: skip
    assert env["MPLCONFIGDIR"] == f"{Path(jobenv.job_python()).parents[1]}/mplconfig"
    assert not any(secret in response["stdout"] for secret in SECRETS.values())


def test_proc_environ_of_the_parent_init_bot_and_zygote_is_unreadable(
    executor: LocalExecutor,
) -> None:
    pids = {"bot": os.getpid(), "zygote": executor.zygote_pid}
    response = run(executor, probes.ENVIRONS, {"pids": pids})
    found = json.loads(response["stdout"])
    # EACCES everywhere: another uid, or root
    assert (found["parent"], found["init"]) == ("PermissionError", "PermissionError")
    assert found["named"] == {"bot": "PermissionError", "zygote": "PermissionError"}
    assert found["readable"] == []  # no other process's environment, anywhere
    assert not any(secret in response["stdout"] for secret in SECRETS.values())


def test_the_bot_dir_repository_and_home_are_hidden(executor: LocalExecutor, bot_dir: Path) -> None:
    targets = [bot_dir / ".env", bot_dir / "jobbot.db", REPO / "pyproject.toml", Path.home()]
    response = run(executor, probes.READ_FILES, {"paths": [str(p) for p in targets]})
    found = json.loads(response["stdout"])
    assert found == {
        str(bot_dir / ".env"): "FileNotFoundError",
        str(bot_dir / "jobbot.db"): "FileNotFoundError",
        str(REPO / "pyproject.toml"): "FileNotFoundError",
        str(Path.home()): "IsADirectoryError",  # an empty read-only tmpfs now
    }
    listing = run(
        executor, "import os\nprint(sorted(os.listdir(home)))", {"home": str(Path.home())}
    )
    assert listing["stdout"] in ("[]\n", "['.pyenv']\n")  # only the interpreter stays reachable


def test_loopback_tcp_and_database_sockets_are_unreachable(executor: LocalExecutor) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        response = run(executor, probes.NETWORK, {"ports": [3306, 5432, port]})
    found = json.loads(response["stdout"])
    assert found == {
        "3306": 101,  # ENETUNREACH: loopback is down in the job's network namespace
        "5432": 101,
        str(port): 101,  # a listener we know exists on the host
        "/run/mysqld/mysqld.sock": 2,  # ENOENT: /run is masked
        "/var/run/postgresql/.s.PGSQL.5432": 2,
    }


def test_signalling_the_parent_the_zygote_and_the_bot_is_not_permitted(
    executor: LocalExecutor,
) -> None:
    code = (
        "import os, json\nout = {}\n"
        "pids = [('ppid', os.getppid()), ('bot', bot), ('zygote', zygote), ('init', 1)]\n"
        "for name, pid in pids:\n"
        "    try:\n        os.kill(pid, 0)\n        out[name] = 'allowed'\n"
        "    except OSError as exc:\n        out[name] = exc.errno\n"
        "print(json.dumps(out))\n"
    )
    response = run(executor, code, {"bot": os.getpid(), "zygote": executor.zygote_pid})
    # signal 0 performs exactly the permission check a real signal would
    assert json.loads(response["stdout"]) == {"ppid": 1, "bot": 1, "zygote": 1, "init": 1}


def test_a_bounded_fork_bomb_stops_at_the_process_limit_and_leaves_nothing(
    executor: LocalExecutor,
) -> None:
    response = run(executor, probes.FORK_BOMB, timeout_s=10)
    assert response["outcome"] == "ok"
    forked, failed = map(int, response["stdout"].split())
    assert forked == MAX_PROCS - 1  # the job's own process counts too
    assert failed == 500 - forked
    assert processes_of(executor.uids) == []  # the sleepers died with the job


def test_a_setsid_double_fork_escapee_dies_with_the_job(executor: LocalExecutor) -> None:
    response = run(executor, probes.DAEMON, {"linger": True}, timeout_s=1)
    assert response["outcome"] == "timeout"
    escapee = int(response["stdout"])
    assert not Path(f"/proc/{escapee}").exists()
    assert processes_of(executor.uids) == []


def test_the_memory_cgroup_bounds_a_jobs_children_together(executor: LocalExecutor) -> None:
    code = (
        "import os\nkids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = bytearray(150 * 1024 * 1024)\n"
        "        for i in range(0, len(block), 4096):\n            block[i] = 1\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in kids])\n"
    )
    # each child stays under RLIMIT_AS (256 MB) but together they exceed the cgroup limit
    response = run(executor, code, memory_mb=256)
    assert response["outcome"] == "ok"
    assert -9 in json.loads(response["stdout"])  # the kernel OOM-killed at least one child


def test_100_mb_of_output_is_cut_at_the_cap_and_the_job_still_finishes(
    executor: LocalExecutor,
) -> None:
    baseline = reset_peak_memory()
    response = run(executor, probes.OUTPUT_FLOOD, {"streams": ["stdout"]}, timeout_s=30)
    assert response["outcome"] == "ok"
    assert response["stdout_truncated"] is True
    assert response["stdout"] == "y" * (1 << 20)
    assert (response["stderr"], response["stderr_truncated"]) == ("done\n", False)
    assert memory_kb("VmHWM") - baseline < 30 * 1024  # the bot never held the 100 MB


def test_writing_a_1_gb_file_stops_at_the_file_size_limit(executor: LocalExecutor) -> None:
    code = (
        "import os\nchunk = b'z' * (1 << 20)\nwritten = 0\n"
        "with open('big.bin', 'wb', buffering=0) as fh:\n"
        "    try:\n"
        "        for _ in range(1024):\n            written += fh.write(chunk)\n"
        "    except OSError as exc:\n        print(exc.errno, written >> 20)\n"
    )
    response = run(executor, code)
    assert response["stdout"] == f"27 {MAX_FILE_BYTES >> 20}\n"  # EFBIG at RLIMIT_FSIZE


def test_a_disk_filler_hits_the_private_tmpfs_limit_long_before_2_gb(
    executor: LocalExecutor,
) -> None:
    for where in (".", "/tmp", "/var/tmp", "/dev/shm"):
        response = run(executor, probes.DISK_FILLER, {"wheres": [where]})
        [[errno, mib]] = json.loads(response["stdout"])
        assert errno == 28  # ENOSPC
        assert mib <= TMP_BYTES >> 20


def test_writing_outside_the_job_directory_fails_or_stays_private(executor: LocalExecutor) -> None:
    targets = ["/etc/jobbot-x", "/usr/jobbot-x", "/jobbot-x", "/var/jobbot-x", "/root/jobbot-x",
               f"{REPO}/jobbot-x", "/run/jobbot-x", "/tmp/jobbot-x", "/var/tmp/jobbot-x",
               "/dev/shm/jobbot-x", "/run/lock/jobbot-x"]  # fmt: skip
    found = json.loads(run(executor, probes.WRITE_FILES, {"targets": targets})["stdout"])
    private = {"/tmp/jobbot-x", "/var/tmp/jobbot-x", "/dev/shm/jobbot-x", "/run/lock/jobbot-x"}
    for path in targets:
        if path in private:
            assert found[path] == "written", path  # the job's own tmpfs, gone with it
        elif under_private_tmp(Path(path).parent):
            # a checkout in /tmp: the job's tmpfs holds just the path down to the job
            # environment, the sandbox's directories
            assert found[path] == 13, path  # EACCES
        else:
            assert found[path] in (13, 30), path  # EACCES, or EROFS from the read-only host
        assert not Path(path).exists(), path  # nothing reached the host


def test_concurrent_jobs_see_neither_each_others_files_nor_sockets(
    executor: LocalExecutor,
) -> None:
    code = (
        "import os, socket, time, json\n"
        "mine = f'/tmp/secret-{name}'\nopen(mine, 'w').write(name)\nopen('here', 'w').write(name)\n"
        "server = socket.socket(socket.AF_UNIX)\n"
        "server.bind(f'\\0jobbot-{name}')\nserver.listen()\n"
        "seen = set()\ndeadline = time.time() + 1.5\n"
        "while time.time() < deadline:\n"
        "    for top in ('/tmp', '/var/tmp', '/dev/shm'):\n"
        "        for entry in os.listdir(top):\n"
        "            if entry.startswith('secret-') and entry != os.path.basename(mine):\n"
        "                seen.add(entry)\n"
        "    for other in set('abc') - {name}:\n"
        "        try:\n"
        "            socket.socket(socket.AF_UNIX).connect(f'\\0jobbot-{other}')\n"
        "            seen.add(f'socket-{other}')\n"
        "        except OSError:\n"
        "            pass\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps([os.getcwd(), sorted(seen), os.listdir('/tmp')]))\n"
    )
    results: dict[str, dict[str, Any]] = {}

    def job(name: str) -> None:
        results[name] = run(executor, code, {"name": name})

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cwds = set()
    for name, response in results.items():
        cwd, seen, listing = json.loads(response["stdout"])
        assert seen == [], name
        expected = {os.path.basename(cwd), f"secret-{name}", *tmp_entries_of_a_checkout()}
        assert sorted(listing) == sorted(expected)
        cwds.add(cwd)
    assert len(cwds) == 3


def test_many_jobs_leak_no_processes_fds_mounts_or_job_dirs(executor: LocalExecutor) -> None:
    still_serving(executor)
    zygote = executor.zygote_pid
    assert zygote is not None
    # the package and slot templates, and each slot template's spare (a supervisor and its
    # prepared job process, both root): what the sandbox runs between jobs
    assert set(executor.template_pids) <= descendants(zygote)
    slot_templates = len(executor.template_pids) - 1  # all but the package template
    idle = 1 + 3 * slot_templates
    wait_until(lambda: len(descendants(zygote)) == idle, message="the last job's supervisor")
    before_fds = len(os.listdir("/proc/self/fd"))
    before_zygote_fds = len(os.listdir(f"/proc/{zygote}/fd"))
    before_mounts = Path(f"/proc/{zygote}/mountinfo").read_text()
    host_mounts = Path("/proc/self/mountinfo").read_text()
    code = (
        "import os, subprocess\nopen('f', 'w').write('x')\nopen('/tmp/g', 'w').write('x')\n"
        "subprocess.Popen(['sleep', '60'])\nprint('ok')\n"
    )
    for _ in range(20):
        assert run(executor, code)["outcome"] == "ok"
    assert processes_of(executor.uids) == []
    assert len(os.listdir("/proc/self/fd")) == before_fds
    assert executor.zygote_pid == zygote
    assert len(os.listdir(f"/proc/{zygote}/fd")) == before_zygote_fds
    assert Path(f"/proc/{zygote}/mountinfo").read_text() == before_mounts
    assert Path("/proc/self/mountinfo").read_text() == host_mounts  # nothing propagated
    for tmp in ("/tmp", f"/proc/{zygote}/root/tmp"):  # the host's, and the zygote's view
        assert owned_by(tmp, executor.uids) == []
    wait_until(lambda: len(descendants(zygote)) == idle, message="job supervisors to exit")
    assert set(executor.template_pids) <= descendants(zygote)


LISTENER = """
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\\0jobbot-cross-job-channel")
s.listen(1)
s.settimeout(4)
try:
    s.accept()
    print("a neighbour got in")
except socket.timeout:
    print("nobody came")
"""

KNOCKER = """
import socket, time
end = time.monotonic() + 2
while time.monotonic() < end:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect("\\0jobbot-cross-job-channel")
        print("reached the other job")
        break
    except OSError as exc:
        err = exc.errno
    finally:
        c.close()
    time.sleep(0.05)
else:
    print(f"refused: {err}")
"""


def listening(uids: tuple[int, ...]) -> bool:
    """Whether a job of these uids listens on the abstract socket (seen in its own network
    namespace: /proc/PID/net/unix)."""
    for pid in processes_of(uids):
        try:
            if "@jobbot-cross-job-channel" in Path(f"/proc/{pid}/net/unix").read_text():
                return True
        except OSError:  # ended meanwhile
            continue
    return False


def test_concurrent_jobs_share_no_abstract_unix_socket(executor: LocalExecutor) -> None:
    """Each slot has its own network namespace: a job listening on an abstract unix socket is
    unreachable from a job running at the same time in another slot."""
    listened: list[dict[str, Any]] = []
    listener = threading.Thread(target=lambda: listened.append(run(executor, LISTENER)))
    listener.start()
    try:
        wait_until(lambda: listening(executor.uids), message="the job listening")
        knocked = run(executor, KNOCKER)
    finally:
        listener.join(10)
    assert knocked["outcome"] == "ok", knocked
    assert knocked["stdout"].startswith("refused:"), knocked["stdout"]
    assert listened and listened[0]["stdout"] == "nobody came\n", listened
