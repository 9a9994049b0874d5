"""Hostile code through both executors: the LocalExecutor (zygote sandbox) and the
LambdaExecutor (real boto3, the loopback stand-in, the real handler in an emulated execution
environment with a private network, as a microVM has).

Every entry is bounded (a fork bomb stops after 500 forks, a disk filler at 2 GB, network
probes only at 127.0.0.1). Each ends with a clear status, and then, for every entry:

- the secrets planted in the bot's environment (and in the Lambda runtime's) appear nowhere
  in the result;
- a normal job right after succeeds (the executor, the zygote or the environment serve on);
- nothing of the job is left: no process (host-wide for the job uids, or inside the Lambda
  environment), no file in any /tmp;
- the machine keeps its disk (free space of / and /dev/shm). Memory outlives a job only in a
  process or a tmpfs file, and both are checked above; the machine's MemAvailable is not,
  since every other process on a shared test machine moves it.

Where the executors legitimately differ, the test says so and asserts each one's documented
behaviour (the README's "Security tested" section has the table).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.request import BoltRequest

from bot.core.models import Identity, Outcome, RunRequest, RunResult
from bot.core.ports import Executor, StartGate
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from bot.store import SqlStore
from testbed import jobenv
from testbed.lambda_setup import lambda_settings
from testbed.lambda_standin import RUNTIME_UID, LambdaStandIn
from testbed.waiting import wait_until
from tests.integration.executor.conftest import (
    memory_kb,
    owned_by,
    processes_of,
    reset_peak_memory,
)
from tests.support import probes

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 2.0
MAX_OUTPUT = 256 * 1024
MEMORY_MB = 256
MAX_PROCS = 32
TMP_BYTES = 64 * MIB
UID_BASE = 62700  # clear of the other sandbox tests' uids (61000-62699)
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-hostile-planted-1",
    "SLACK_SIGNING_SECRET": "hostile-planted-2",
    "DATABASE_URL": "mysql+pymysql://jobbot:hostile-planted-3@127.0.0.1:3306/jobbot",
    "AWS_ACCESS_KEY_ID": "AKIAHOSTILEPLANTED04",
    "AWS_SECRET_ACCESS_KEY": "hostile-planted-5",
    "AWS_SESSION_TOKEN": "hostile-planted-6",
}
ALLOWED_ENV = {
    "PATH", "LANG", "TZ", "HOME", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "MPLBACKEND",
}  # fmt: skip
JOB_ENVIRONMENT_ENV = {"MPLCONFIGDIR"}  # the local job environment's read-only font cache
NORMAL = "def main(a, b):\n    return a + b\n"
# A job stopped at its 2 s limit reports about 2 s; a loaded 2-core machine may add seconds,
# but a job that was not stopped would run 60 s, or for ever.
STOPPED_WELL_BEFORE_MS = 10_000


# --- the machine -------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What a job must not take from the machine: its disk."""

    root_free_mb: int
    shm_free_mb: int

    @classmethod
    def now(cls) -> Machine:
        return cls(shutil.disk_usage("/").free // MIB, shutil.disk_usage("/dev/shm").free // MIB)

    def assert_kept_by(self, after: Machine) -> None:
        """Nothing lasting was taken (slack for other processes on the test machine, such as a
        parallel test building the Lambda layer, a few hundred MiB; a disk filler would take
        GiBs, its private tmpfs allows 64 MiB)."""
        assert after.root_free_mb > self.root_free_mb - 1024, (self, after)
        assert after.shm_free_mb > self.shm_free_mb - 16, (self, after)


def leaked_secrets(result: RunResult) -> list[str]:
    """Planted secret values (or any part of the DB password) anywhere in the result."""
    text = json.dumps(result.__dict__, default=str)
    return [name for name, value in SECRETS.items() if value in text]


# --- the two executors -------------------------------------------------------------------


@dataclass
class Target:
    """One executor under attack, and how to tell that a job left nothing behind."""

    name: str
    executor: Executor
    standin: LambdaStandIn | None = None
    uids: tuple[int, ...] = ()
    zygote: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_lambda(self) -> bool:
        return self.standin is not None

    def run(self, code: str, input_: dict[str, Any] | None = None, **kw: Any) -> RunResult:
        request = RunRequest(
            job_id=kw.pop("job_id", 1),
            file_name="job.py",
            code=code,
            input_json=json.dumps(input_ or {}),
            timeout_s=kw.pop("timeout_s", TIMEOUT_S),
            memory_mb=kw.pop("memory_mb", MEMORY_MB),
            max_output_bytes=kw.pop("max_output_bytes", MAX_OUTPUT),
            files=kw.pop("files", ()),
        )
        assert not kw
        return self.executor.run(request)

    def hostile(self, code: str, input_: dict[str, Any] | None = None, **kw: Any) -> RunResult:
        """Run a hostile job, then check what every hostile job must leave intact."""
        before = Machine.now()
        result = self.run(code, input_, **kw)
        assert leaked_secrets(result) == []
        normal = self.run(NORMAL, {"a": 2, "b": 3})
        assert (normal.outcome, normal.result_json) == (Outcome.OK, "5"), normal
        self.assert_nothing_left()
        before.assert_kept_by(Machine.now())
        return result

    def assert_nothing_left(self) -> None:
        if self.standin is None:
            wait_until(lambda: not processes_of(self.uids), timeout=5, message="no job process")
            assert self.zygote is not None
            for tmp in ("/tmp", "/var/tmp", "/dev/shm", f"/proc/{self.zygote}/root/tmp"):
                assert owned_by(tmp, self.uids) == [], tmp
            return
        seen = json.loads(self.run(probes.LOOK_AROUND).stdout)
        assert seen["others"] == []  # no process of an earlier job in the environment
        assert seen["tmp"] == [seen["own_dir"]]  # /tmp holds only the running job's directory
        # and host-wide: the runtimes of live environments are the only processes of its uid
        standin = self.standin
        wait_until(
            lambda: len(standin.processes(RUNTIME_UID)) == standin.live_environments(),
            timeout=5,
            message="only the runtimes run as the Lambda uid",
        )


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bot's secrets in this process's environment (before any executor starts), and a
    stand-in for the bot's directory: a world-readable `.env` and `jobbot.db` holding them.

    AWS variables are replaced too: boto3 signs with the planted keys (the stand-in does not
    check signatures), so no real AWS configuration can be used by accident.
    """
    empty = tmp_path_factory.mktemp("no-aws")
    bot_dir = Path(tempfile.mkdtemp(prefix=".botdir-", dir=Path(__file__).parent))
    bot_dir.chmod(0o755)
    (bot_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    (bot_dir / "jobbot.db").write_bytes(b"SQLite format 3\0" + SECRETS["DATABASE_URL"].encode())
    for child in bot_dir.iterdir():
        child.chmod(0o644)
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield bot_dir
    shutil.rmtree(bot_dir)


@pytest.fixture(scope="module")
def local_target(planted: Path) -> Iterator[Target]:
    """The local executor configured like the bot's (its directory, the repo and HOME hidden)."""
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=2,
        uid_base=UID_BASE,
        max_procs=MAX_PROCS,
        max_file_bytes=16 * MIB,
        tmp_bytes=TMP_BYTES,
        hide_paths=[str(planted), str(REPO), str(Path.home())],
    )
    assert executor.uids, "the hostile suite runs as root (CI): jobs get uids of their own"
    yield Target("local", executor, uids=executor.uids, zygote=executor.zygote_pid)
    executor.close()


@pytest.fixture(scope="module")
def lambda_target(planted: Path) -> Iterator[Target]:
    """The Lambda executor as wiring builds it, on a stand-in whose runtime holds the planted
    secrets in its environment, with one warm environment at a time and a private network."""
    with (
        pytest.MonkeyPatch.context() as patch,
        LambdaStandIn(
            timeout_s=function_timeout_s(TIMEOUT_S),
            max_concurrency=1,
            credentials=SECRETS,
            network="private",
        ) as standin,
    ):
        patch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        executor = build_lambda_executor(lambda_settings(JOBBOT_JOB_TIMEOUT=f"{TIMEOUT_S:g}"))
        assert isinstance(executor, LambdaExecutor)
        yield Target("lambda", executor, standin=standin)
        executor.close()


@pytest.fixture(params=["local", "lambda"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each test runs through both executors."""
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found


# --- exhausting the machine ------------------------------------------------------------


def test_a_fork_bomb_stops_at_the_process_limit(target: Target) -> None:
    result = target.hostile(probes.FORK_BOMB)

    assert result.outcome is Outcome.OK, result
    made, failed = map(int, result.stdout.split())
    assert made + failed == 500
    if target.is_lambda:  # RLIMIT_NPROC 64 on the runtime's uid (the runtime counts too)
        assert made < 64 and failed > 436
    else:  # RLIMIT_NPROC and pids.max of the slot: the job itself is one of them
        assert made == MAX_PROCS - 1


def test_a_memory_bomb_ends_as_out_of_memory(target: Target) -> None:
    code = (
        "blocks = []\n"
        "for _ in range(64):  # bounded: 4 GiB at most\n"
        "    blocks.append(bytearray(64 << 20))\n"
        "print('allocated', len(blocks) * 64, 'MiB')\n"
    )
    # The limit, not the clock, must end it: on a loaded host filling the cgroup can take
    # longer than the suite's 2 s timeout.
    result = target.hostile(code, timeout_s=10)

    assert result.outcome is Outcome.MEMORY, result
    assert result.error_message == f"the job ran out of memory (limit {MEMORY_MB} MB)"
    assert "allocated" not in result.stdout


def test_a_disk_filler_stops_at_its_private_tmp_limit(target: Target) -> None:
    result = target.hostile(probes.DISK_FILLER, {"wheres": [".", "/tmp", "/dev/shm", "/var/tmp"]})

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.stdout)
    # ENOSPC everywhere writable (the job's private tmpfs: 64 MiB), EACCES on /var/tmp for
    # Lambda (read-only there), ENOSPC for the local job's private /var/tmp
    assert sum(mib for _, mib in found) <= 64 + 16
    assert [errno for errno, _ in found] == ([28, 28, 28, 13] if target.is_lambda else [28] * 4)


def test_an_output_flood_is_cut_at_the_cap_while_read(target: Target) -> None:
    baseline = reset_peak_memory()
    result = target.hostile(probes.OUTPUT_FLOOD, {"streams": ["stdout", "stderr"]}, timeout_s=10)

    assert result.outcome is Outcome.OK, result
    assert (result.stdout_truncated, result.stderr_truncated) == (True, True)
    assert result.stdout == "y" * MAX_OUTPUT and result.stderr == "y" * MAX_OUTPUT
    assert memory_kb("VmHWM") - baseline < 30 * 1024  # the bot never held the 200 MiB


def test_an_infinite_loop_is_stopped_at_the_time_limit(target: Target) -> None:
    result = target.hostile("print('spinning', flush=True)\nwhile True:\n    pass\n")

    assert result.outcome is Outcome.TIMEOUT, result
    assert result.error_message == "the job ran longer than 2 s and was stopped"
    assert result.stdout == "spinning\n"  # output before the kill is kept
    assert 1900 <= result.duration_ms < STOPPED_WELL_BEFORE_MS


def test_sleeping_past_the_timeout_is_stopped_at_the_time_limit(target: Target) -> None:
    result = target.hostile("import time\nprint('before', flush=True)\ntime.sleep(60)\n")

    assert result.outcome is Outcome.TIMEOUT, result
    assert result.stdout == "before\n"
    assert 1900 <= result.duration_ms < STOPPED_WELL_BEFORE_MS


# --- escaping the sandbox --------------------------------------------------------------


def test_a_setsid_double_fork_does_not_outlive_the_job(target: Target) -> None:
    result = target.hostile(probes.DAEMON)

    assert result.outcome is Outcome.OK, result
    if not target.is_lambda:  # host pids; on Lambda it lived in the environment's PID space
        assert not Path(f"/proc/{int(result.stdout)}").exists()
    # nothing_left (in hostile()) found no process of the job, host-wide or in the environment


def test_the_bots_environment_and_proc_environ_are_out_of_reach(target: Target) -> None:
    bot = None if target.is_lambda else os.getpid()  # Lambda: the bot is not on that machine
    result = target.hostile(probes.ENVIRONS, {"pids": {"bot": bot}})

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.stdout)
    assert set(found["env"]) == ALLOWED_ENV | (set() if target.is_lambda else JOB_ENVIRONMENT_ENV)
    # the parent (supervisor / handler) and init: PermissionError (root, another uid, or a
    # non-dumpable handler of the same uid on Lambda)
    assert (found["parent"], found["init"]) == ("PermissionError", "PermissionError")
    assert found["parent_tasks"] == ["PermissionError"]
    if bot is not None:
        assert found["named"] == {"bot": "PermissionError"}
    assert found["readable"] == []  # no other process's environment, anywhere


def test_the_bots_files_are_out_of_reach(target: Target, planted: Path) -> None:
    paths = [
        str(planted / ".env"),
        str(planted / "jobbot.db"),
        str(REPO / "pyproject.toml"),
        str(REPO / ".env.example"),
        str(Path.home() / ".bash_history"),
        "/proc/1/cwd/.env",
        "/proc/1/environ",
        "/proc/{ppid}/cwd/.env",
    ]
    result = target.hostile(probes.READ_FILES, {"paths": paths})

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.stdout)
    for path in paths[:5]:  # hidden from jobs (Lambda: not on the machine at all)
        assert found[path] == "FileNotFoundError", path
    assert {found[p] for p in found if p.startswith("/proc/")} <= {
        "PermissionError",
        "FileNotFoundError",
    }


def test_local_services_on_127_0_0_1_are_unreachable(target: Target) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # one we know is listening
        own = listener.getsockname()[1]
        result = target.hostile(probes.NETWORK, {"ports": [3306, 5432, 6379, 5672, own]})

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.stdout)
    ports = {found[str(p)] for p in (3306, 5432, 6379, 5672, own)}
    if target.is_lambda:
        # EPERM: the job's seccomp filter gives it no Internet sockets at all (unless
        # JOBBOT_LAMBDA_NETWORK=on), so neither the microVM's loopback nor the Runtime API
        assert ports == {1}
    else:
        assert ports == {101}  # ENETUNREACH: the job's network namespace has no loopback
    assert found["/run/mysqld/mysqld.sock"] == found["/var/run/postgresql/.s.PGSQL.5432"] == 2


def test_signalling_the_parent_fails_or_only_fails_this_job(target: Target) -> None:
    code = """\
import json, os, signal
out = {}
for name, pid in (("init", 1), ("bot", bot)):
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
            out[name] = "sent"
        except OSError as exc:
            out[name] = exc.errno
print(json.dumps(out), flush=True)
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print("parent: sent", flush=True)
except OSError as exc:
    print("parent:", exc.errno, flush=True)
os.kill(-1, signal.SIGKILL)  # everything this uid may signal
"""
    bot = None if target.is_lambda else os.getpid()
    zygote = target.zygote
    environments = target.standin.environments() if target.standin else 0
    result = target.hostile(code, {"bot": bot})

    if target.is_lambda:
        # the same uid as the runtime, but the job's seccomp filter refuses (EPERM) every
        # signal to a task that was there before it, -1 included: the job fails on its own
        # and the runtime serves on in the same environment
        assert result.outcome is Outcome.ERROR, result
        assert result.error_type == "PermissionError"
        assert result.stdout == '{"init": 1}\nparent: 1\n'
        assert target.standin is not None and target.standin.environments() == environments
    else:
        # another uid than everything else: EPERM (1) everywhere, and kill(-1) reaches only
        # the job's own uid (of which nothing else runs; Linux spares the caller itself)
        assert result.outcome is Outcome.OK, result
        assert result.stdout == '{"init": 1, "bot": 1}\nparent: 1\n'
        assert target.executor.zygote_pid == zygote  # type: ignore[attr-defined]
    assert os.getppid() > 1  # and the bot (this process) is alive to check


TAMPER = """\
import ctypes, errno, json, os, sys

def parent_of(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])

tried = {}
modules = [json] + [sys.modules[m] for m in ("pandas", "numpy") if m in sys.modules]
targets = [m.__file__ for m in modules]
targets += [os.path.join(p, name) for p in sys.path if p.endswith(("site-packages", "lib-dynload"))
            for name in ("sitecustomize.py", "usercustomize.py", "zz-jobbot.pth")]
targets.append(os.path.join(os.path.dirname(json.__file__), "..", "sitecustomize.py"))
for target in targets:
    try:
        with open(target, "a") as fh:
            fh.write("\\nimport os; os.environ['TAMPERED'] = '1'\\n")
        tried[target] = "WRITTEN"
    except OSError as exc:
        tried[target] = errno.errorcode[exc.errno]
libc = ctypes.CDLL(None, use_errno=True)
parent = os.getppid()
targets = {parent, parent_of(parent)}  # the supervisor or handler, and the template
if neighbours:  # every other process in the job's cgroup: the slot's templates and spares
    mine = open("/proc/self/cgroup").read()
    for name in os.listdir("/proc"):
        try:
            same = open(f"/proc/{name}/cgroup").read() == mine
            if name.isdigit() and int(name) != os.getpid() and same:
                targets.add(int(name))
        except OSError:
            continue
for pid in sorted(targets):
    if neighbours:
        try:
            os.kill(pid, 9)
            tried[f"kill {pid}"] = "KILLED"
        except OSError as exc:
            tried[f"kill {pid}"] = errno.errorcode[exc.errno]
    try:
        with open(f"/proc/{pid}/mem", "r+b") as fh:
            fh.write(b"x")
        tried[f"mem {pid}"] = "WRITTEN"
    except OSError as exc:
        tried[f"mem {pid}"] = errno.errorcode[exc.errno]
    attached = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    tried[f"ptrace {pid}"] = "ATTACHED" if attached == 0 else errno.errorcode[ctypes.get_errno()]
json.dumps = lambda *a, **k: "tampered"  # this process's copy only
json.JOBBOT_MARK = True
print(repr(tried))
"""

AFTER_TAMPER = """\
import json, os, sys
print(json.dumps({"dumps": json.dumps([1]), "mark": hasattr(json, "JOBBOT_MARK"),
                  "env": os.environ.get("TAMPERED"), "site": "sitecustomize" in sys.modules}))
"""


def test_a_job_that_tampers_with_preloaded_modules_cannot_reach_the_next_job(
    target: Target,
) -> None:
    # on Lambda the job shares the runtime's uid and may kill it (see the signalling test)
    tampered = target.hostile(TAMPER, {"neighbours": not target.is_lambda})

    assert tampered.outcome is Outcome.OK, tampered
    tried = ast.literal_eval(tampered.stdout)
    if not target.is_lambda:  # the slot's templates and spares: root, out of reach
        assert sum(what.startswith("kill ") for what in tried) >= 4
    assert any(t.endswith("json/__init__.py") for t in tried)
    if not target.is_lambda:  # the job environment's packages, preloaded in a template
        assert any("/site-packages/" in t for t in tried)
    for what, verdict in tried.items():
        assert verdict in ("EACCES", "EROFS", "EPERM", "ENOENT"), (what, verdict)
    after = target.run(AFTER_TAMPER)
    assert json.loads(after.stdout) == {"dumps": "[1]", "mark": False, "env": None, "site": False}


# --- breaking the result ---------------------------------------------------------------


def test_a_huge_return_value_is_a_clear_error(target: Target) -> None:
    result = target.hostile("def main():\n    return 'x' * (8 << 20)\n")

    assert result.outcome is Outcome.ERROR, result
    assert result.error_type == "ResultTooLarge"
    assert result.error_message == (
        f"the result is {(8 << 20) + 2} bytes of JSON, more than the limit of {MAX_OUTPUT} bytes"
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [("{1, 2}", "set"), ("float('nan')", "float"), ("object()", "object"), ("b'raw'", "bytes")],
)
def test_a_return_value_that_is_not_json_is_a_clear_error(
    target: Target, value: str, kind: str
) -> None:
    result = target.hostile(f"def main():\n    return {value}\n")

    assert result.outcome is Outcome.ERROR, result
    assert result.error_type == "UnserializableResult"
    assert (result.error_message or "").startswith(
        f"main() returned a {kind} value, which cannot be encoded as JSON"
    )


def test_recursion_past_the_limit_is_a_recursion_error(target: Target) -> None:
    result = target.hostile("def f(n):\n    return f(n + 1)\n\nf(0)\n")

    assert result.outcome is Outcome.ERROR, result
    assert result.error_type == "RecursionError"
    assert result.error_message == "maximum recursion depth exceeded"


def test_recursion_with_the_limit_lifted_is_stopped_by_its_memory_or_time_limit(
    target: Target,
) -> None:
    code = "import sys\nsys.setrecursionlimit(10**7)\n\ndef f(n):\n    return f(n + 1)\n\nf(0)\n"
    result = target.hostile(code)

    # Python frames live on the heap since 3.11 (no C stack to overflow), so the frames fill
    # the job's memory. Locally the memory cgroup kills the job when they pass its limit, if
    # the machine is fast enough to get there within the time limit. On Lambda RLIMIT_AS
    # raises MemoryError instead, and formatting a traceback millions of frames deep runs
    # into the time limit.
    stopped = {
        Outcome.TIMEOUT: "the job ran longer than 2 s and was stopped",
        Outcome.MEMORY: f"the job ran out of memory (limit {MEMORY_MB} MB)",
    }
    if target.is_lambda:
        assert result.outcome is Outcome.TIMEOUT, result
    assert stopped.get(result.outcome) == result.error_message, result


def test_stdin_can_be_read_once_and_closed(target: Target) -> None:
    code = """\
import json, os, sys
first = sys.stdin.read()
again = sys.stdin.read()
os.close(0)
try:
    input()
    after = "read"
except (EOFError, OSError, ValueError) as exc:
    after = type(exc).__name__
print(json.dumps([first, again, after]))
"""
    result = target.hostile(code, {"a": 1})

    assert result.outcome is Outcome.OK, result
    assert json.loads(result.stdout) == ['{"a": 1}', "", "OSError"]


def test_writing_outside_the_working_directory_never_reaches_the_host(
    target: Target, planted: Path
) -> None:
    targets = ["/etc/jobbot-x", "/usr/jobbot-x", "/jobbot-x", "/var/jobbot-x", "/root/jobbot-x",
               f"{REPO}/jobbot-x", f"{planted}/jobbot-x", "/run/jobbot-x", "/var/tmp/jobbot-x",
               "/tmp/jobbot-x", "/dev/shm/jobbot-x", f"{sys.base_prefix}/jobbot-x"]  # fmt: skip
    result = target.hostile(probes.WRITE_FILES, {"targets": targets})

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.stdout)
    private = {"/tmp/jobbot-x", "/dev/shm/jobbot-x"} | (
        set() if target.is_lambda else {"/var/tmp/jobbot-x"}
    )
    for path in targets:
        if path in private:
            assert found[path] == "written", path  # the job's own tmpfs, gone with it
        else:
            # EACCES, EROFS (read-only host), ENOENT (a masked, empty directory)
            assert found[path] in (2, 13, 30), (path, found[path])
        assert not Path(path).exists(), path  # nothing reached the host


HOSTILE_OUTPUT = (
    "<!channel> <!here|here> <!subteam^S0TEAM> <@U0BOB> <#C0CHAN|general> "
    "&lt;!everyone&gt; ```\n``` ````x```` `\u200b``\u200b` \u202egnp.exe\u202c "
    "\u2066isolated\u2069 \u200frtl \x1b[31mred\x1b[0m bell\x07 nul\x00 del\x7f c1\x85 "
    "ls\u2028ps\u2029 <https://evil.example|click> *bold* _it_ ~s~ `"
)


def test_output_that_tries_to_ping_or_break_formatting_is_returned_verbatim(
    target: Target,
) -> None:
    result = target.hostile(f"print({HOSTILE_OUTPUT!r})\n")

    # the job's text is data: kept as it was (made inert only when shown in Slack, see
    # test_hostile_output_is_inert_in_every_slack_message)
    assert result.outcome is Outcome.OK, result
    assert result.stdout == HOSTILE_OUTPUT + "\n"


# --- ... and that output in Slack ----------------------------------------------------------

CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
HOSTILE_JOB = f"""\
import sys
print({HOSTILE_OUTPUT!r})
print({HOSTILE_OUTPUT!r}, file=sys.stderr)

def main(fail):
    if fail:
        raise ValueError({HOSTILE_OUTPUT!r})
    return {{"msg": {HOSTILE_OUTPUT!r}}}
"""


class Borrowed:
    """The module's executor lent to a Runtime, which closes its executor when it stops."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        return self.inner.run(request, start)

    def stop(self, job_id: int) -> bool:
        return self.inner.stop(job_id)

    def describe(self) -> list[tuple[str, str, bool]]:
        return self.inner.describe()

    def close(self) -> None:
        """The module fixture closes it."""


def assert_inert(text: str, owner: str) -> None:
    """Text as Slack will render it: no broadcast, mention (but the owner's, jobbot's own),
    channel or link markup from the job; no control or direction characters; every code
    block closed where jobbot closed it."""
    assert "<!" not in text and "<#" not in text and "<http" not in text, text
    assert set(re.findall(r"<@[^>]*>", text)) <= {f"<@{owner}>"}, text
    assert not CONTROL.search(text), repr(text)
    assert "````" not in text and text.count("```") % 2 == 0, text


def test_hostile_output_is_inert_in_every_slack_message(
    target: Target, mariadb_store: SqlStore
) -> None:
    from bot.app.wiring.runtime import Runtime
    from bot.app.wiring.surfaces import notifiers_for, slack_app_for
    from testbed import slack_requests as sr
    from testbed.slack_ledger import settled
    from testbed.slack_standin import SlackStandIn, iter_blocks_text
    from tests.integration.slack.conftest import slack_settings

    url = mariadb_store.engine.url.render_as_string(hide_password=False)
    with SlackStandIn() as slack:
        settings = slack_settings(slack, url, JOBBOT_JOB_TIMEOUT="2", JOBBOT_NOTIFY_CHANNEL="C0N")
        runtime = Runtime(settings, store=mariadb_store, executor_factory=lambda s: Borrowed(
            target.executor))  # fmt: skip
        runtime.start_dispatcher(notifiers_for(settings, runtime))
        runtime.start_workers()
        app = slack_app_for(settings, runtime)
        assert app is not None
        acks = []

        def send(request: sr.SlackRequest) -> None:
            response = app.app.dispatch(BoltRequest(body=request.body, headers=request.headers))
            assert response.status == 200
            if response.body:
                acks.append(json.loads(response.body))

        try:
            file = slack.add_file("<!here>`x`\u202e.py", HOSTILE_JOB)
            send(sr.event(sr.file_message("here", [file])))
            actor = runtime.service.actor(Identity("slack", sr.TEAM, sr.ALICE))
            since = datetime.now(UTC) - timedelta(seconds=60)
            wait_until(lambda: runtime.store.latest_upload(actor.user.id, sr.CHANNEL, since))
            for fail in ("false", "true"):
                send(sr.slash(f'run {{"fail": {fail}}}'))
            jobs = wait_until(lambda: len(found := mariadb_store.list_all(10)) == 2 and found)

            settled(mariadb_store, [j.id for j in jobs], timeout=20)
            for job in jobs:
                send(sr.slash(f"status {job.id}"))
            send(sr.slash("mine"))
            send(sr.slash("list"))
            send(sr.event(sr.home_opened()))
            slack.wait_for("views.publish")
        finally:
            app.close()
            runtime.stop(grace_s=5)

    done, failed = sorted(
        (mariadb_store.get(j.id) for j in jobs), key=lambda j: j is not None and j.status.value
    )
    assert done is not None and failed is not None
    assert (done.status.value, failed.status.value) == ("done", "error")
    assert HOSTILE_OUTPUT in (failed.error_message or "")  # stored as the job printed it
    shown = [*acks]
    for call in slack.calls():
        if call.api in {"chat.postMessage", "chat.update", "chat.postEphemeral", "response_url",
                        "views.publish"}:  # fmt: skip
            shown.append(call.body)
    # at least: both outcomes, both status replies, mine, list and the Home tab (status
    # messages, and acks that became response_url answers, add to it depending on timing)
    assert len(shown) >= 7
    everything = []
    for body in shown:
        texts = [str(body.get("text") or "")]
        texts += iter_blocks_text(body.get("blocks") or (body.get("view") or {}).get("blocks"))
        for text in texts:
            assert_inert(text, sr.ALICE)
            everything.append(text)
    # and the job's text did reach the people allowed to see it, escaped
    joined = "\n".join(everything)
    assert "&lt;!channel&gt; &lt;!here|here&gt;" in joined
    assert "\\u202egnp.exe\\u202c" in joined  # direction overrides shown as escapes
