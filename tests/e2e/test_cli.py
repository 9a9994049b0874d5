"""`python -m bot ...` as a real process: run prints and exits by status; every kind of bad
input gets a clear message and exit code 2, and nothing is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore, make_engine
from bot.store.tables import SCHEMA_VERSION
from testbed import jobenv
from testbed.processes import clean_env, track
from testbed.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Runs the CLI against a fresh SQLite database, from an empty working directory; keyword
    arguments override settings."""
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}",
        PYTHONPATH=str(ROOT),
        JOBBOT_JOB_TIMEOUT="3",
    )

    def run(
        *args: str, user: str | None = None, **settings: str
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", *args]
        if user:
            command += ["--user", user]
        return subprocess.run(
            command,
            cwd=tmp_path,
            env={**env, **settings},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def stored_jobs(cli: Cli) -> list[object]:
    done = cli("list", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_run_prints_the_result_and_exits_zero(cli: Cli, tmp_path: Path) -> None:
    done = cli("run", str(ROOT / "examples" / "soma.py"), "--input", '{"a": 5, "b": 3}')
    assert done.returncode == 0, done.stderr
    assert "Result: 8" in done.stdout
    assert "Job #1 queued: soma.py" in done.stderr


def test_run_json_prints_the_job(cli: Cli) -> None:
    done = cli(
        "run", str(ROOT / "examples" / "stats.py"), "--json", "--input", '{"numbers": [3, 1, 2]}'
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "done"
    assert job["result"] == {"count": 3, "sum": 6, "min": 1, "max": 3, "median": 2}
    assert job["result_kind"] == "return"


def test_an_exception_exits_one_with_the_traceback(cli: Cli, tmp_path: Path) -> None:
    done = cli("run", str(ROOT / "examples" / "fails.py"), "--input", '{"items": [1, 0]}')
    assert done.returncode == 1
    assert "ZeroDivisionError: division by zero" in done.stdout
    assert "fails.py" in done.stdout


def test_a_timeout_exits_three_and_keeps_earlier_output(cli: Cli) -> None:
    done = cli("run", str(ROOT / "examples" / "slow.py"), "--json", "--input", '{"seconds": 30}')
    assert done.returncode == 3
    job = json.loads(done.stdout)
    assert job["status"] == "timeout"
    assert "tick 0" in job["stdout"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", "print(1)", "not a Python file"),
        ("big.py", "x = 1\n" * 60000, "the limit is 256 KB"),
        ("latin.py", b"s = '\xe9t\xe9'\n", "not UTF-8"),
        ("nul.py", b"print(1)\x00\n", "NUL bytes"),
        ("empty.py", "", "is empty"),
    ],
)
def test_bad_files_exit_two_with_a_message_and_store_nothing(
    cli: Cli, tmp_path: Path, name: str, data: bytes | str, message: str
) -> None:
    done = cli("run", write(tmp_path, name, data))
    assert done.returncode == 2
    assert message in done.stderr
    assert stored_jobs(cli) == []


def test_missing_and_unreadable_files_exit_two(cli: Cli, tmp_path: Path) -> None:
    missing = cli("run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    directory = cli("run", str(tmp_path))
    assert directory.returncode == 2
    assert "is a directory" in directory.stderr
    assert stored_jobs(cli) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 5,, "b": 3}', "line 1, column 9"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a": "' + "x" * 70000 + '"}', "the limit is 64 KB"),
    ],
)
def test_bad_json_exits_two_and_says_why(cli: Cli, text: str, message: str) -> None:
    done = cli("run", str(ROOT / "examples" / "soma.py"), "--input", text)
    assert done.returncode == 2
    assert message in done.stderr
    assert stored_jobs(cli) == []


@pytest.mark.parametrize("token", ["abc", "0", "-1", "1.5"])
def test_bad_job_ids_exit_two(cli: Cli, token: str) -> None:
    done = cli("status", token)
    assert done.returncode == 2
    assert "positive whole numbers" in done.stderr


def test_unknown_job_exits_two(cli: Cli) -> None:
    done = cli("status", "42")
    assert done.returncode == 2
    assert "There is no job #42" in done.stderr


def test_status_mine_and_list_respect_ownership(cli: Cli) -> None:
    assert (
        cli(
            "run", str(ROOT / "examples" / "soma.py"), "--input", '{"a": 1, "b": 1}', user="alice"
        ).returncode
        == 0
    )
    own = cli("status", "1", user="alice")
    assert "Result: 2" in own.stdout
    other = cli("status", "1", user="bob")
    assert other.returncode == 0
    assert "Result" not in other.stdout
    assert "Only its owner or an admin" in other.stdout
    assert "#1" in cli("mine", user="alice").stdout
    assert cli("mine", user="bob").stdout.strip() == "You have no jobs yet."
    (row,) = json.loads(cli("list", "--json", user="bob").stdout)
    assert (row["id"], row["status"], row["owner_id"], row["file_name"]) == (
        1,
        "done",
        1,
        "soma.py",
    )
    assert "result" not in row and "input" not in row


def test_cancelling_someone_elses_job_exits_two(cli: Cli, tmp_path: Path) -> None:
    # A job that stays waiting: stored by alice while no worker runs.
    env_run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bot.app.environment import load_settings;"
            "from bot.app.wiring.parts import local_identity;"
            "from bot.app.wiring.runtime import Runtime;"
            "rt = Runtime(load_settings()); rt.migrate();"
            "rt.service.submit(rt.service.actor(local_identity('alice')), 'wait.py', "
            "b'print(1)', '{}')",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'jobbot.db'}",
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert env_run.returncode == 0, env_run.stderr
    refused = cli("cancel", "1", user="bob")
    assert refused.returncode == 2
    assert "not yours" in refused.stderr
    accepted = cli("cancel", "1", user="alice")
    assert accepted.returncode == 0
    assert "Job #1 cancelled." in accepted.stdout
    again = cli("cancel", "1", user="alice")
    assert again.returncode == 2
    assert "already finished (cancelled)" in again.stderr


def test_migrate_is_idempotent(cli: Cli) -> None:
    first, second = cli("migrate"), cli("migrate")
    assert first.returncode == second.returncode == 0
    assert f"schema version {SCHEMA_VERSION}" in second.stdout


def test_invalid_settings_are_all_reported_and_exit_two(cli: Cli) -> None:
    done = cli("mine", JOBBOT_WORKERS="zero", JOBBOT_MEMORY_MB="1")
    assert done.returncode == 2
    assert "JOBBOT_WORKERS" in done.stderr
    assert "JOBBOT_MEMORY_MB" in done.stderr


def test_a_database_that_does_not_answer_exits_four_database_unavailable(cli: Cli) -> None:
    done = cli("mine", DATABASE_URL="mysql+pymysql://root@127.0.0.1:1/jobbot")
    assert done.returncode == 4
    assert done.stderr.startswith("jobbot: database unavailable: OperationalError (2003)")


def test_a_long_printed_result_is_bounded_and_says_it_was_cut(cli: Cli, tmp_path: Path) -> None:
    code = "import sys\nsys.stdout.write(''.join(f'line {i}\\n' for i in range(200_000)))\n"
    loud = write(tmp_path, "loud.py", code)
    for done in (cli("run", loud), cli("status", "1")):
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) < 220, "200 lines at most, like printed output that is not the result"
        assert "line 199" in done.stdout and "line 200\n" not in done.stdout
        assert "more lines; use --json for all" in done.stdout
        assert lines[-1] == "... (output was cut at the size limit)"


def test_run_without_input_hints_at_the_input_after_a_name_error(cli: Cli, tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, "double.py", "print(n * 2)\n"))
    assert done.returncode == 1
    assert "NameError: name 'n' is not defined" in done.stdout
    assert 'Hint: no input was given; pass one like {"n": 1}' in done.stdout


def test_mine_and_list_json_are_complete_where_the_text_shows_output(cli: Cli) -> None:
    soma = str(ROOT / "examples" / "soma.py")
    assert cli("run", soma, "--input", '{"a": 2, "b": 5}', user="alice").returncode == 0
    text = cli("mine", user="alice").stdout
    assert "→ 7" in text, "the text view shows the result to its owner"
    for command in (("mine", "--json"), ("list", "--json")):
        (own,) = json.loads(cli(*command, user="alice").stdout)
        assert (own["result"], own["input"]) == ("7", {"a": 2, "b": 5})
        assert own["stdout"] == "7\n" and own["status"] == "done"
        assert own == json.loads(cli("status", "1", "--json", user="alice").stdout)
    (theirs,) = json.loads(cli("list", "--json", user="bob").stdout)
    assert "→" not in cli("list", user="bob").stdout, "nor does the text to anyone else"
    assert theirs["id"] == 1 and theirs["owner"] == "alice" and theirs["status"] == "done"
    assert not {"result", "input", "stdout", "stderr", "traceback"} & set(theirs)
    assert theirs == json.loads(cli("status", "1", "--json", user="bob").stdout)


def test_a_mistyped_sqlite_folder_exits_four_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    env = clean_env(DATABASE_URL=f"sqlite:///{missing / 'j.db'}", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "bot", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stdout
    assert f"the folder {missing} does not exist" in done.stderr
    assert "No jobs" not in done.stdout
    assert not (tmp_path / "nonexistent").exists()


def test_with_no_database_url_the_default_jobbot_db_is_created_here(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "list"],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "No jobs."
    assert (tmp_path / "jobbot.db").is_file()


def test_cli_errors_name_cli_commands_not_console_ones(cli: Cli) -> None:
    for args, command in [
        (("status", "abc"), "python -m bot status 12"),
        (("cancel", ""), "python -m bot cancel 12"),
        (("rerun", "0"), "python -m bot rerun 12"),
        (("status", "42"), "python -m bot mine"),
    ]:
        done = cli(*args)
        assert done.returncode == 2
        assert command in done.stderr, done.stderr
        assert "/job" not in done.stderr


def test_run_no_worker_says_no_worker_runs_then_waits_for_one(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}", PYTHONPATH=str(ROOT))
    soma = str(ROOT / "examples" / "soma.py")
    with (tmp_path / "out.txt").open("w") as out:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                soma,
                "--input",
                '{"a": 1, "b": 2}',
                "--no-worker",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    track(run)
    said: list[str] = []

    def read() -> None:
        assert run.stderr is not None
        for line in run.stderr:
            said.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: len(said) >= 2, timeout=60, message="what run --no-worker says first")
    assert said[0] == "Job #1 queued: soma.py\n"
    assert said[1].startswith("No worker is running: job #1 stays queued until one starts")
    assert run.poll() is None, "and it keeps waiting, as documented"
    store = SqlStore(make_engine(f"sqlite:///{tmp_path / 'jobbot.db'}"))
    job = store.get(1)
    store.close()
    assert job is not None and job.status is JobStatus.WAITING
    worker = track(subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=tmp_path, env=env))
    run.wait(timeout=120)
    worker.terminate()
    assert worker.wait(timeout=60) == 0
    assert run.returncode == 0 and "Result: 3" in (tmp_path / "out.txt").read_text()


def test_start_with_half_the_slack_settings_says_what_is_missing(tmp_path: Path) -> None:
    """`scripts/start` runs `python -m bot` with no command: with an app-level token alone it
    must neither serve nor open the console, but say what is missing and where to find it."""
    env = clean_env(PYTHONPATH=str(ROOT), SLACK_APP_TOKEN="xapp-1-half")
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Slack is half configured: SLACK_APP_TOKEN is set" in done.stderr
    assert "SLACK_BOT_TOKEN is missing" in done.stderr and "Install to Workspace" in done.stderr
    assert "xapp-1-half" not in done.stderr + done.stdout


def test_a_chart_job_with_a_data_file_saves_its_files_and_prints_where(
    cli: Cli, tmp_path: Path
) -> None:
    done = cli(
        "run",
        str(ROOT / "examples" / "chart.py"),
        "--file",
        str(ROOT / "examples" / "sales.csv"),
        JOBBOT_JOB_PYTHON=jobenv.job_python(),
        JOBBOT_JOB_TIMEOUT="60",
    )

    assert done.returncode == 0, done.stderr
    assert "Result: total: 960" in done.stdout
    assert "Files of job #1, saved:\n  jobbot-out/1/figure-1.png (" in done.stdout
    assert "  jobbot-out/1/summary.csv (" in done.stdout
    figure = tmp_path / "jobbot-out" / "1" / "figure-1.png"
    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    figure.unlink()

    again = cli("files", "1")

    assert again.returncode == 0, again.stderr
    assert "jobbot-out/1/figure-1.png" in again.stdout and figure.exists()
    refused = cli("files", "1", user="mallory")
    assert refused.returncode == 2 and "only its owner or an admin" in refused.stderr


def test_data_files_over_the_limit_exit_two_and_store_nothing(cli: Cli, tmp_path: Path) -> None:
    data = write(tmp_path, "big.csv", "x" * 200)

    done = cli("run", str(ROOT / "examples" / "soma.py"), "--file", data,
               JOBBOT_MAX_FILES_IN_BYTES="100")  # fmt: skip

    assert done.returncode == 2
    assert "The data files (big.csv) are 200 bytes together; the limit is 100 bytes." in (
        done.stderr
    )
    assert stored_jobs(cli) == []
    missing = cli("run", str(ROOT / "examples" / "soma.py"), "--file", "nope.csv")
    assert missing.returncode == 2 and "nope.csv does not exist." in missing.stderr


def test_files_of_a_job_without_any_says_so(cli: Cli) -> None:
    cli("run", str(ROOT / "examples" / "soma.py"), "--input", '{"a": 1, "b": 2}')

    done = cli("files", "1")

    assert done.returncode == 0 and done.stdout == "Job #1 has no files out.\n"
