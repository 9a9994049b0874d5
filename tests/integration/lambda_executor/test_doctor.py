"""`python -m bot doctor` with JOBBOT_EXECUTOR=lambda: the function's state, runtime, timeout,
memory and code, a probe of the live handler, and clear failure rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app.doctor import run_checks
from bot.executors.aws_lambda.doctor import lambda_checks
from testbed.lambda_setup import lambda_settings
from testbed.lambda_standin import LambdaStandIn
from tests.integration.lambda_executor.conftest import weakened_handler


def rows_by_name(rows: list[tuple[str, str, bool]]) -> dict[str, tuple[str, bool]]:
    """{check: (detail, ok)}."""
    return {name: (detail, ok) for name, detail, ok in rows}


def test_a_healthy_function_passes_every_check(standin: LambdaStandIn) -> None:
    rows = rows_by_name(lambda_checks(lambda_settings()))

    assert all(ok for _, ok in rows.values()), rows
    assert (
        rows["lambda function"][0] == "jobbot-runner in us-east-1: Active, last update Successful"
    )
    assert rows["lambda runtime"][0].startswith("python3.13")
    assert rows["lambda timeout"][0].startswith("7 s (job timeout 2 s needs 7 s)")
    assert rows["lambda code"][0] == "the deployed harness matches this jobbot"
    probe = rows["lambda runner"][0]
    assert "uid 993" in probe and "leftover files in /tmp: 0" in probe
    assert "a trivial job ran through the sandbox" in probe
    assert rows["lambda confinement"] == (
        "seccomp filter on: the job cannot signal the runtime or read its environment; "
        "Internet sockets refused, so the Runtime API is out of the job's reach",
        True,
    )
    assert standin.executions == 1  # one invoke: the handler ran the probe job, no user code


def test_a_function_timeout_shorter_than_the_job_timeout_fails(standin: LambdaStandIn) -> None:
    rows = rows_by_name(lambda_checks(lambda_settings(JOBBOT_JOB_TIMEOUT="20")))

    assert rows["lambda timeout"] == ("7 s (job timeout 20 s needs 25 s): redeploy", False)


def test_a_missing_function_is_a_failure_row_saying_to_deploy(standin: LambdaStandIn) -> None:
    rows = lambda_checks(lambda_settings(JOBBOT_LAMBDA_FUNCTION="not-there"))

    assert rows == [
        (
            "lambda function",
            "not-there in us-east-1 does not exist: run `python -m bot lambda deploy`",
            False,
        )
    ]


def test_absent_credentials_are_a_failure_row(
    standin: LambdaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    [(name, detail, ok)] = lambda_checks(lambda_settings())

    assert (name, ok) == ("lambda credentials", False)
    assert "no usable AWS credentials" in detail


def test_doctor_reports_the_lambda_executor_and_function(
    standin: LambdaStandIn, tmp_path: Path
) -> None:
    settings = lambda_settings(DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}")

    rows = rows_by_name(run_checks(settings))

    assert rows["executor"] == ("lambda", True)
    assert rows["lambda network"][0].startswith("off")
    assert rows["lambda tenancy"][0].startswith("per-user")
    assert "no SDK retries" in rows["lambda invoke"][0]
    assert "Firecracker" in rows["isolation"][0]
    assert rows["lambda function"][1] and rows["lambda runner"][1]


@pytest.mark.parametrize(
    ("function", "setting", "ok", "says"),
    [
        ("per-tenant", "per-user", True, "PER_TENANT: Lambda never gives two users one"),
        ("shared", "shared", True, "WARNING none: created without tenant isolation"),
        ("shared", "per-user", False, "run `python -m bot lambda deploy --replace`"),
        ("per-tenant", "shared", False, "set JOBBOT_LAMBDA_TENANCY=per-user"),
    ],
)
def test_doctor_shows_the_functions_tenancy_against_the_setting(
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    setting: str,
    ok: bool,
    says: str,
) -> None:
    with LambdaStandIn(timeout_s=7, max_concurrency=1, tenancy=function) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        rows = rows_by_name(lambda_checks(lambda_settings(JOBBOT_LAMBDA_TENANCY=setting)))

    detail, passed = rows["lambda function tenancy"]
    assert passed is ok and says in detail
    assert rows["lambda runner"][1], rows["lambda runner"]  # the probe went through either way


def test_doctor_warns_loudly_of_shared_tenancy_and_of_the_network(
    standin: LambdaStandIn, tmp_path: Path
) -> None:
    settings = lambda_settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}",
        JOBBOT_LAMBDA_TENANCY="shared",
        JOBBOT_LAMBDA_NETWORK="on",
    )

    rows = rows_by_name(run_checks(settings))

    assert rows["lambda tenancy"][0].startswith("WARNING shared")
    assert rows["lambda network"][0].startswith("WARNING on")
    assert "Runtime API" in rows["lambda network"][0]


def test_doctor_says_how_tenant_ids_are_made(standin: LambdaStandIn, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'jobbot.db'}"

    unkeyed = rows_by_name(run_checks(lambda_settings(DATABASE_URL=database)))
    keyed = rows_by_name(
        run_checks(lambda_settings(DATABASE_URL=database, JOBBOT_LAMBDA_TENANT_KEY="k" * 32))
    )

    assert "an unkeyed hash" in unkeyed["lambda tenancy"][0]
    assert "HMAC-keyed by JOBBOT_LAMBDA_TENANT_KEY" in keyed["lambda tenancy"][0]
    assert "k" * 32 not in str(keyed)


def test_the_probe_job_runs_confined_as_the_network_setting_says(standin: LambdaStandIn) -> None:
    rows = rows_by_name(lambda_checks(lambda_settings(JOBBOT_LAMBDA_NETWORK="on")))

    detail, ok = rows["lambda confinement"]
    assert (
        ok
        and "Internet sockets allowed" in detail
        and "Runtime API is in the job's reach" in detail
    )


def test_a_runner_whose_filter_is_off_fails_the_confinement_row(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LambdaStandIn(timeout_s=7, max_concurrency=1, **weakened_handler()) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        rows = rows_by_name(lambda_checks(lambda_settings()))

    detail, ok = rows["lambda confinement"]
    assert not ok and detail.startswith("NOT as it must be") and "'seccomp': '0'" in detail
