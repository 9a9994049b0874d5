"""`python -m bot console` as a real process driven through its stdin: the Slack app's
/job commands, a file path standing in for an upload, completion notices printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testbed.processes import clean_env

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
    assert "/job run FILE [JSON]" in out


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
