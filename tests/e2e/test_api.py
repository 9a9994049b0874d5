"""`python -m bot serve` with no Slack settings as a real process on MariaDB: the API, the
workers and the health endpoints; a token minted by `python -m bot token create --expires`, a
job posted and waited for over HTTP, the token listed with its expiry and last use, revoked by
the CLI (a separate process: serve refuses it within a second), and a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

from bot.store import SqlStore
from testbed.processes import clean_env, listens_on, track
from testbed.serve_process import free_port
from testbed.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_serve_without_slack_is_the_api_its_workers_and_health(
    store: SqlStore, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        DATABASE_URL=store.engine.url.render_as_string(hide_password=False),
        PORT=str(port),
        PYTHONPATH=str(ROOT),
        JOBBOT_POLL_INTERVAL="0.05",
        JOBBOT_LOG_FORMAT="text",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", *args]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
        )

    created = cli("token", "create", "--user", "ci-bot", "--expires", "30d")
    token = created.stdout.strip()
    assert token.startswith("jobbot_") and "shown only this once" in created.stderr
    assert "It expires at" in created.stderr
    log = (tmp_path / "serve.log").open("wb")
    serve = track(
        subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()
        if not listens_on(serve.pid, port):
            return False
        return requests.get(base + "/healthz", timeout=5).status_code == 200

    wait_until(healthy, timeout=60, message="serve to answer /healthz")
    auth = {"Authorization": f"Bearer {token}"}
    posted = requests.post(
        base + "/api/jobs",
        json={"code": "print(a + b)", "input": {"a": 5, "b": 3}, "name": "soma.py"},
        headers=auth,
        timeout=30,
    )
    assert posted.status_code == 201
    final = requests.get(base + posted.headers["Location"] + "?wait=10", headers=auth, timeout=30)
    assert (final.json()["status"], final.json()["result"]) == ("done", "8")
    assert requests.post(base + "/slack/events", data="x", timeout=5).status_code == 404
    [listed] = [line for line in cli("token", "list").stdout.splitlines() if "ci-bot" in line]
    assert "never" not in listed  # it expires, and it was just used
    assert token not in cli("token", "list").stdout
    assert "The API token of ci-bot" in cli("token", "revoke", "--user", "ci-bot").stdout
    # serve may still spend a turn it took ahead, for at most a second; then it is refused
    wait_until(
        lambda: requests.get(base + "/api/jobs", headers=auth, timeout=30).status_code == 401,
        timeout=10,
        message="the revoked token refused",
    )
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=60) == 0
    log.close()
    assert "Slack is not configured: serving the API" in (tmp_path / "serve.log").read_text()
