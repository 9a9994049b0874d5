"""`python -m bot console` as a real process driven through its stdin (a pipe, or a terminal
where line editing and Ctrl-C matter): the Slack app's /job commands, a file path standing
in for an upload, completion notices printed."""

from __future__ import annotations

import errno
import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bot.core.models import JobStatus
from bot.store import SqlStore, make_engine
from testbed import jobenv
from testbed.processes import clean_env, track
from testbed.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def console(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        cwd=ROOT,
        env=env,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_console_speaks_the_job_commands(tmp_path: Path) -> None:
    done = console(
        tmp_path,
        [
            '/job run examples/soma.py {"a": 5, "b": 3}',
            "/job status 999",
            "/job frobnicate",
            '/job run examples/soma.py {"a": 5,,}',
            "/job run examples/missing.py",
            "/job help",
            "exit",
        ],
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "jobbot console" in out
    assert "Job #1 queued: soma.py" in out
    assert "There is no job #999" in out
    assert "Unknown command `frobnicate`" in out
    assert "not valid JSON" in out and "line 1, column 9" in out
    assert "examples/missing.py does not exist" in out
    assert "/job run FILE [DATA...] [JSON]" in out


def test_console_prints_the_completion_and_status_shows_it(tmp_path: Path) -> None:
    # Lines are answered in order; `status` after the run may see it waiting or done, so the
    # completion notice (delivered through the notifier before exit) is what we assert.
    done = console(tmp_path, ['/job run examples/stats.py {"numbers": [1, 2, 3]}'])
    assert done.returncode == 0, done.stderr
    assert "[job #1] ✓ #1  stats.py  done" in done.stdout
    assert '"median": 2' in done.stdout


def test_run_without_json_hints_at_the_input_after_a_name_error(tmp_path: Path) -> None:
    script = tmp_path / "double.py"
    script.write_text("def main():\n    return n * 2\n")
    done = console(tmp_path, [f"/job run {script}"])
    assert done.returncode == 0, done.stderr
    assert "name 'n' is not defined" in done.stdout
    status = console(tmp_path, ["/job status 1"])
    assert 'Hint: no input was given; pass one like {"n": 1}' in status.stdout


# The system calls a thread blocked waiting for terminal input is in, by machine: read,
# poll, select, pselect6, ppoll.
WAITING_FOR_INPUT = {
    "x86_64": {"0", "7", "23", "270", "271"},
    "aarch64": {"63", "72", "73"},
}.get(os.uname().machine, set())


class Terminal:
    """The console on a pseudo-terminal, as a person at a keyboard has it (readline on)."""

    def __init__(self, tmp_path: Path, *, sigint_ignored: bool = False, **settings: str) -> None:
        self.database = f"sqlite:///{tmp_path / 'jobbot.db'}"
        env = clean_env(DATABASE_URL=self.database, PYTHONPATH=str(ROOT), TERM="xterm", **settings)
        self.master, slave = pty.openpty()
        self.process = track(
            subprocess.Popen(
                # as a shell script's background command starts it: SIGINT ignored, inherited
                ["sh", "-c", 'trap "" INT; exec "$0" -m bot console', sys.executable]
                if sigint_ignored
                else [sys.executable, "-m", "bot", "console"],
                cwd=ROOT,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        )
        os.close(slave)
        self.screen = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError as exc:  # EIO: the console closed the terminal
                assert exc.errno == errno.EIO
                return
            if not chunk:
                return
            with self._lock:
                self.screen += chunk

    def shown(self) -> str:
        """Everything the console wrote to the terminal so far."""
        with self._lock:
            return self.screen.decode(errors="replace")

    def type(self, keys: str) -> None:
        """Keystrokes (a carriage return is Enter)."""
        os.write(self.master, keys.encode())

    def wait_for(self, text: str, after: int = 0, timeout: float = 60) -> int:
        """Wait until `text` is shown past position `after`; the position just past it."""
        try:
            found = wait_until(
                lambda: (at := self.shown().find(text, after)) >= 0 and at + 1,
                timeout=timeout,
                message=repr(text),
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the terminal shows:\n{self.shown()[-2000:]}") from None
        return found - 1 + len(text)

    def job(self, job_id: int) -> JobStatus:
        """A job's status, from the console's database."""
        store = SqlStore(make_engine(self.database))
        try:
            job = store.get(job_id)
            assert job is not None
            return job.status
        finally:
            store.close()

    def reading(self) -> bool:
        """Whether the console's main thread is blocked waiting for a key (readline's select).

        A Ctrl-C sent between the prompt being drawn and that wait starting is lost until the
        next key (CPython's readline checks for signals only when its select is interrupted),
        as it would be for a person whose Ctrl-C came at that very instant; a test that means
        "Ctrl-C at the prompt" waits for this first."""
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/syscall") as f:
                number = f.read().split()[0]
        except (OSError, IndexError):
            return False
        return number in WAITING_FOR_INPUT

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        # the reader ends on EIO once the console's end of the terminal is closed; closing
        # ours first would hand it EBADF instead
        self._reader.join(timeout=30)
        os.close(self.master)


def test_a_notice_arriving_while_you_type_redraws_the_prompt_and_your_line(
    tmp_path: Path,
) -> None:
    term = Terminal(tmp_path)
    try:
        term.wait_for("jobbot> ")
        term.type('/job run examples/slow.py {"seconds": 2}\r')
        queued = term.wait_for("Job #1 queued: slow.py")
        term.type("/job stat")
        notice = term.wait_for("[job #1] ", after=queued)
        term.wait_for("jobbot> /job stat", after=notice)
        term.type("us 1\r")  # the half-typed line was kept: this completes it
        term.wait_for("Job #1  slow.py  done", after=notice)
        term.type("exit\r")
        assert term.process.wait(timeout=60) == 0
    finally:
        term.close()


def test_ctrl_c_leaves_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    term = Terminal(tmp_path, sigint_ignored=True)
    try:
        term.wait_for("jobbot> ")
        wait_until(term.reading, message="the console waiting for a key")
        term.process.send_signal(signal.SIGINT)
        assert term.process.wait(timeout=60) == 0
    finally:
        term.close()


def test_a_second_ctrl_c_quits_at_once_stopping_the_running_job(tmp_path: Path) -> None:
    term = Terminal(tmp_path, JOBBOT_JOB_TIMEOUT="120")
    try:
        term.wait_for("jobbot> ")
        term.type('/job run examples/slow.py {"seconds": 100}\r')
        queued = term.wait_for("Job #1 queued: slow.py")
        # Ctrl-C at the prompt: the console is back at it once the prompt follows the reply
        # (a Ctrl-C while it still writes the reply is a quit, not a first Ctrl-C).
        term.wait_for("jobbot> ", after=queued)
        wait_until(lambda: term.job(1) is JobStatus.RUNNING, message="the job running")
        wait_until(term.reading, message="the console waiting for a key")
        term.process.send_signal(signal.SIGINT)
        term.wait_for("Waiting for 1 job(s) to finish (Ctrl-C leaves them queued)", after=queued)
        term.process.send_signal(signal.SIGINT)
        term.wait_for("Quitting at once", after=queued)
        assert term.process.wait(timeout=60) == 0
        assert term.job(1) is JobStatus.CANCELLED, "stopped, not waited for"
    finally:
        term.close()


def test_a_chart_job_with_a_data_file_saves_its_files_where_the_console_runs(
    tmp_path: Path,
) -> None:
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}",
        PYTHONPATH=str(ROOT),
        JOBBOT_JOB_PYTHON=jobenv.job_python(),
        JOBBOT_JOB_TIMEOUT="60",
    )
    line = f"/job run {ROOT}/examples/chart.py {ROOT}/examples/sales.csv {{}}"

    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        cwd=tmp_path,
        env=env,
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "[job #1] ✓ #1  chart.py  done" in done.stdout
    assert "Files of job #1, saved:\n  jobbot-out/1/figure-1.png (" in done.stdout
    assert (tmp_path / "jobbot-out" / "1" / "summary.csv").read_text().startswith(",sales")
