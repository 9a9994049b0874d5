"""What an operator sees, asserted on real processes: `serve`'s log (one JSON object per line,
job events with job_id and user_id, no secret and no user output at INFO), its `GET /metrics`
(valid Prometheus text with every series the issue names), and `python -m bot doctor`
against the Slack and Lambda stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.core.models import Identity, Job, JobStatus, NewJob
from bot.executors.aws_lambda.client import function_timeout_s
from bot.store import SqlStore, make_engine
from bot.store.tables import SCHEMA_VERSION
from testbed import slack_requests as sr
from testbed.lambda_standin import LambdaStandIn
from testbed.processes import clean_env
from testbed.serve_process import ROOT, ServeProcess
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from tests.conftest import clean_mariadb

DB_USER, DB_PASSWORD = "jobbot_obs", "obs-planted-db-password"
AWS_SECRET = "obs-planted-aws-secret"
OUTPUT_MARK, INPUT_MARK, TYPED_MARK = "OUT-7f3a9c", "IN-5d1e2b", "TYPED-9b8c7d"
JOB = f"""\
import sys
print({OUTPUT_MARK!r})
print({OUTPUT_MARK!r}, file=sys.stderr)

def main(secret):
    if secret == "fail":
        raise ValueError({OUTPUT_MARK!r})
    return {{"echo": secret, "out": {OUTPUT_MARK!r}}}
"""


@pytest.fixture(scope="module")
def password_url(_mariadb_schema: str) -> Iterator[str]:
    """The session's database through an account with a password (a secret to look for)."""
    url = make_url(_mariadb_schema)
    admin = create_engine(_mariadb_schema)
    with admin.begin() as conn:
        conn.execute(
            text(f"CREATE USER IF NOT EXISTS '{DB_USER}'@'%' IDENTIFIED BY '{DB_PASSWORD}'")
        )
        conn.execute(text(f"GRANT ALL ON `{url.database}`.* TO '{DB_USER}'@'%'"))
    yield url.set(username=DB_USER, password=DB_PASSWORD).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP USER IF EXISTS '{DB_USER}'@'%'"))
    admin.dispose()


@dataclass
class Served:
    """What one serve process did, logged and exposed."""

    log: str
    metrics: str
    jobs: list[Job]
    secrets: list[str]


def settled(store: SqlStore, job_id: int) -> bool:
    job = store.get(job_id)
    events = store.notification_events(job_id)
    return bool(job and job.status.is_final and events and all(s == "sent" for _, s in events))


@pytest.fixture(scope="module")
def served(password_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """serve (local executor, MariaDB with a password, planted AWS secret) running two jobs
    that print a marker and take one as input, through one Slack 429, a forged request and a
    mistyped command; then /metrics, SIGTERM and its whole log."""
    clean_mariadb(password_url)
    store = SqlStore(make_engine(password_url))
    with SlackStandIn() as standin:
        server = ServeProcess(
            standin,
            password_url,
            tmp_path_factory.mktemp("observed"),
            JOBBOT_JOB_TIMEOUT="2",
            JOBBOT_LOG_FORMAT="json",
            JOBBOT_LOG_LEVEL="INFO",
            AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        ).start()
        try:
            user = "U0OBSERVE"
            owner = store.ensure_user(Identity("slack", sr.TEAM, user))
            file = standin.add_file("marked.py", JOB)
            assert (
                sr.post(server.url, sr.event(sr.file_message("", [file], user=user))).status == 200
            )
            since = datetime.now(UTC) - timedelta(minutes=5)
            wait_until(lambda: store.latest_upload(owner.id, sr.CHANNEL, since))
            standin.inject("chat.postMessage", status=429, retry_after=1)  # one Slack error
            for secret in (INPUT_MARK, "fail"):
                sr.post(server.url, sr.slash(f'run {{"secret": "{secret}"}}', user=user))
            assert sr.post(server.url, sr.slash("help", secret="forged")).status == 401
            typo = sr.post(server.url, sr.slash(f'run {{"x": "{TYPED_MARK}"', user=user))
            assert "not valid JSON" in message_text(typo.json())
            jobs = wait_until(lambda: len(found := store.list_by_owner(owner.id, 5)) == 2 and found)
            wait_until(lambda: all(settled(store, j.id) for j in jobs), timeout=30)
            status, metrics = server.get("/metrics")
            assert status == 200
        finally:
            code = server.stop()
        assert code == 0
        yield Served(
            server.log(),
            metrics,
            [store.get(j.id) for j in jobs],  # type: ignore[misc]
            [standin.token, sr.SECRET, DB_PASSWORD, AWS_SECRET],
        )
    store.close()


# --- logs ----------------------------------------------------------------------------------


def test_serve_logs_one_json_object_per_line(served: Served) -> None:
    lines = served.log.splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON

    assert len(records) > 10
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert {r["level"] for r in records} <= {"info", "warning", "error"}  # INFO: no debug


def test_job_events_carry_the_job_id_and_the_user_id(served: Served) -> None:
    records = [json.loads(line) for line in served.log.splitlines()]
    owner = served.jobs[0].owner_id
    for job in served.jobs:
        events = {r["msg"] for r in records if r.get("job_id") == job.id}
        assert {"job submitted", "job started", "job finished", "slack notification delivered"} <= (
            events
        ), events
        for record in records:
            if record.get("job_id") == job.id and record["msg"].startswith(("job ", "slack")):
                assert record["user_id"] == owner, record
    finished = [r for r in records if r["msg"] == "job finished"]
    assert sorted(r["status"] for r in finished) == ["done", "error"]


def test_no_secret_and_no_user_output_or_input_reaches_the_log(served: Served) -> None:
    for secret in served.secrets:
        assert secret not in served.log
    for mark in (OUTPUT_MARK, INPUT_MARK, TYPED_MARK):
        assert mark not in served.log
    # the two submissions are handled at once: either may get the lower id
    by_input = {json.loads(j.input_json or "{}")["secret"]: j for j in served.jobs}
    done, failed = by_input[INPUT_MARK], by_input["fail"]
    assert (done.status, failed.status) == (JobStatus.DONE, JobStatus.ERROR)
    assert OUTPUT_MARK in (done.stdout or "") and OUTPUT_MARK in (failed.error_message or "")
    # the refusals of the forged request and the Slack 429 are logged, by kind only
    assert '"reason": "bad_signature"' in served.log and '"kind": "rate_limited"' in served.log


# --- metrics -------------------------------------------------------------------------------


def samples(metrics: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by name, through prometheus_client's own parser (so the text is valid)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    series = found.get(name, [])
    return sum(v for have, v in series if all(have.get(k) == x for k, x in labels.items()))


def test_metrics_are_prometheus_text_with_every_series_an_operator_needs(served: Served) -> None:
    found = samples(served.metrics)

    assert value(found, "jobbot_jobs", status="done") == 1
    assert value(found, "jobbot_jobs", status="error") == 1
    assert "jobbot_queue_depth" in found and value(found, "jobbot_queue_depth") == 0
    assert value(found, "jobbot_job_duration_seconds_count", executor="local") == 2
    assert value(found, "jobbot_job_duration_seconds_bucket", executor="local", le="+Inf") == 2
    assert value(found, "jobbot_jobs_finished_total", status="error") == 1
    assert value(found, "jobbot_ack_seconds_count", kind="command") >= 3
    assert value(found, "jobbot_ack_seconds_count", kind="event") >= 1
    assert value(found, "jobbot_slack_errors_total", kind="rate_limited") == 1
    assert value(found, "jobbot_slack_requests_rejected_total", reason="bad_signature") == 1


def test_lambda_errors_are_exposed_by_kind(mariadb_store: SqlStore, tmp_path: Path) -> None:
    store = mariadb_store
    url = store.engine.url.render_as_string(hide_password=False)
    with (
        SlackStandIn() as slack,
        LambdaStandIn(timeout_s=function_timeout_s(2), max_concurrency=1) as lam,
    ):
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_LAMBDA": lam.endpoint_url,
               "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}  # fmt: skip
        server = ServeProcess(
            slack, url, tmp_path, JOBBOT_EXECUTOR="lambda", JOBBOT_JOB_TIMEOUT="2",
            JOBBOT_LAMBDA_CONCURRENCY="1", **aws,
        ).start()  # fmt: skip
        try:
            owner = store.ensure_user(Identity("slack", sr.TEAM, sr.ALICE))
            lam.throttle(times=1)  # absorbed by the executor's own quick retry
            lam.function_error("Runtime.ExitError", "Runtime exited with error: exit status 9")
            for n in range(2):
                server_submit(store, owner.id, n)
            wait_until(
                lambda: (
                    all(j.status.is_final for j in store.list_by_owner(owner.id, 5))
                    and len(store.list_by_owner(owner.id, 5)) == 2
                ),
                timeout=30,
            )
            found = samples(server.get("/metrics")[1])
        finally:
            assert server.stop() == 0

    assert value(found, "jobbot_lambda_errors_total", kind="throttled") == 1
    assert value(found, "jobbot_lambda_errors_total", kind="runtime_exited") == 1
    assert value(found, "jobbot_job_duration_seconds_count", executor="lambda") == 2


def server_submit(store: SqlStore, owner_id: int, n: int) -> None:
    """A job straight into the queue (the serve process's workers find it by polling)."""
    store.submit(NewJob(owner_id, f"n{n}.py", f"print({n})", "0" * 64, "{}"))


# --- doctor --------------------------------------------------------------------------------


def doctor(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, tuple[str, bool]], str]:
    """`python -m bot doctor` in a fresh process: (exit code, {check: (detail, ok)}, output)."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        env=clean_env(PYTHONPATH=str(ROOT), JOBBOT_SANDBOX_UID_BASE="63100", **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows = {}
    for line in done.stdout.splitlines():
        flag, name, detail = line[:4], line[6:].split("  ", 1)[0], line[6:].split("  ", 1)[1]
        rows[name.strip()] = (detail.strip(), flag == "ok  ")
    return done.returncode, rows, done.stdout + done.stderr


def test_doctor_reports_database_schema_executor_isolation_and_slack(
    password_url: str, tmp_path: Path
) -> None:
    with SlackStandIn() as slack:
        code, rows, out = doctor(
            {"DATABASE_URL": password_url, "SLACK_BOT_TOKEN": slack.token,
             "SLACK_SIGNING_SECRET": sr.SECRET, "SLACK_API_URL": slack.base_url},
            tmp_path,
        )  # fmt: skip

    assert code == 0, out
    assert rows["database"] == (f"{password_url.replace(DB_PASSWORD, '***')} answers", True)
    assert rows["schema"] == (f"version {SCHEMA_VERSION} (code expects {SCHEMA_VERSION})", True)
    assert rows["executor"] == ("local", True)
    assert rows["isolation"][1] and "network namespace" in rows["isolation"][0]
    assert rows["network isolation"] == ("a network namespace per slot (loopback down)", True)
    assert rows["slack auth"][1] and "U0BOT" in rows["slack auth"][0]
    assert DB_PASSWORD not in out and slack.token not in out and sr.SECRET not in out


def test_doctor_reports_the_lambda_function_and_a_revoked_slack_token(
    mariadb_store: SqlStore, tmp_path: Path
) -> None:
    url = mariadb_store.engine.url.render_as_string(hide_password=False)
    with SlackStandIn() as slack, LambdaStandIn(timeout_s=function_timeout_s(10)) as lam:
        code, rows, out = doctor(
            {"DATABASE_URL": url, "JOBBOT_EXECUTOR": "lambda",
             "SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_SIGNING_SECRET": sr.SECRET,
             "SLACK_API_URL": slack.base_url, "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
             "AWS_ENDPOINT_URL_LAMBDA": lam.endpoint_url,
             "AWS_CONFIG_FILE": str(tmp_path / "none"),
             "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")},
            tmp_path,
        )  # fmt: skip

    assert code == 1, out
    assert rows["executor"] == ("lambda", True)
    assert rows["isolation"][1] and "Firecracker" in rows["isolation"][0]
    assert rows["lambda function"][1] and rows["lambda runner"][1]
    assert rows["slack auth"] == (f"auth.test at {slack.base_url} failed: invalid_auth", False)
    assert "xoxb-revoked" not in out


def test_doctor_says_when_the_database_does_not_answer(tmp_path: Path) -> None:
    code, rows, out = doctor(
        {"DATABASE_URL": "mysql+pymysql://u:pw-planted@127.0.0.1:1/x"}, tmp_path
    )

    assert code == 1
    detail, ok = rows["database"]
    assert not ok and detail.startswith("mysql+pymysql://u:***@127.0.0.1:1/x: ")
    assert "pw-planted" not in out
    assert "schema" not in rows  # nothing to ask a database that is not there
