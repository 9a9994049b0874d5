"""`python -m bot lambda deploy | policy` against moto's Lambda and IAM served on loopback
HTTP (no Docker: moto's simple backend), through real boto3 clients."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bot.executors.aws_lambda import package as lambda_package
from bot.executors.aws_lambda.deploy import run_lambda_command
from testbed.lambda_setup import lambda_settings
from tests.support.moto_lambda import seen_mid_update

pytestmark = pytest.mark.usefixtures("aws_env")

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[3]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def make_role(iam: Any, name: str = "jobbot-runner-execution") -> str:
    """An execution role in moto's IAM; its ARN."""
    return str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    )


def deploy(
    sleeps: list[float] | None = None, *, replace: bool = False, **values: str
) -> tuple[int, str]:
    """Run `lambda deploy` with these settings; (exit code, what it printed)."""
    out = io.StringIO()
    code = run_lambda_command(
        lambda_settings(**values),
        "deploy",
        out,
        replace=replace,
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )
    return code, out.getvalue()


def zip_of(source: str) -> bytes:
    """A deployment zip holding one handler file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def test_moto_alone_drops_tenancy_and_lacks_account_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why tests/support/moto_lambda.py exists: if this fails, moto learnt them, drop it."""
    with mock_aws(config={"lambda": {"use_docker": False}}):
        lam, iam = (
            boto3.client("lambda", region_name=REGION),
            boto3.client("iam", region_name=REGION),
        )
        lam.create_function(
            FunctionName="plain", Runtime="python3.13", Role=make_role(iam), Handler="handler.h",
            Code={"ZipFile": zip_of("def h(e, c):\n    return e\n")},
            TenancyConfig={"TenantIsolationMode": "PER_TENANT"},
        )  # fmt: skip
        answered = lam.invoke(FunctionName="plain", Payload=b"{}", TenantId="anyone")

        assert "TenancyConfig" not in lam.get_function(FunctionName="plain")["Configuration"]
        assert answered["StatusCode"] == 200  # the tenant id is accepted, and ignored
        with pytest.raises(lam.exceptions.ClientError, match="Not yet implemented"):
            lam.get_account_settings()


def test_deploy_creates_the_function_as_specified(aws: tuple[Any, Any]) -> None:
    lam, iam = aws
    role = make_role(iam)

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="10")

    assert code == 0, printed
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["Runtime"] == "python3.13"
    assert config["Handler"] == "sandbox.fresh.lambda_handler.handler"
    assert config["Timeout"] == 15  # the job timeout + 5 s
    assert config["MemorySize"] == 512
    assert config["Role"] == role
    assert config["Architectures"] == ["arm64"]
    assert config["TenancyConfig"] == {"TenantIsolationMode": "PER_TENANT"}  # the default
    assert config.get("Environment", {}).get("Variables", {}) == {}
    assert config["CodeSha256"] == lambda_package.code_sha256(lambda_package.build_zip())
    assert "created jobbot-runner" in printed
    assert "waiting until jobbot-runner is active" in printed


def test_shared_tenancy_creates_the_function_without_tenant_isolation(aws: tuple[Any, Any]) -> None:
    lam, iam = aws

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=make_role(iam), JOBBOT_LAMBDA_TENANCY="shared")

    assert code == 0, printed
    assert "TenancyConfig" not in lam.get_function(FunctionName="jobbot-runner")["Configuration"]


def test_a_function_without_tenant_isolation_is_refused_and_left_as_it_is(
    aws: tuple[Any, Any],
) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_TENANCY="shared")
    before = lam.get_function(FunctionName="jobbot-runner")["Configuration"]

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="20")

    assert code == 2
    assert "has tenancy shared, JOBBOT_LAMBDA_TENANCY asks for per-user" in printed
    assert "`python -m bot lambda deploy --replace` deletes jobbot-runner" in printed
    assert "JOBBOT_LAMBDA_TENANCY=shared to keep it" in printed
    after = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert after == before  # nothing changed, not even the timeout


def test_replace_re_creates_the_function_per_tenant_after_saying_what_it_does(
    aws: tuple[Any, Any],
) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_TENANCY="shared")

    code, printed = deploy(
        replace=True, JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="5"
    )

    assert code == 0, printed
    said, deleted = (
        printed.index("replacing jobbot-runner"),
        printed.index("creating jobbot-runner"),
    )
    assert said < deleted and "invokes in flight fail" in printed
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["TenancyConfig"] == {"TenantIsolationMode": "PER_TENANT"}
    assert config["CodeSha256"] == lambda_package.code_sha256(lambda_package.build_zip())
    concurrency = lam.get_function_concurrency(FunctionName="jobbot-runner")
    assert concurrency["ReservedConcurrentExecutions"] == 5


def test_replace_changes_nothing_when_the_tenancy_already_fits(aws: tuple[Any, Any]) -> None:
    _, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role)

    code, printed = deploy(replace=True, JOBBOT_LAMBDA_ROLE_ARN=role)

    assert code == 0 and "nothing changed" in printed and "replacing" not in printed


def test_the_package_holds_the_sandbox_lambda_half_alone_and_is_reproducible() -> None:
    first, second = lambda_package.build_zip(), lambda_package.build_zip()

    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert first == second
    assert "sandbox/fresh/lambda_handler.py" in names and "sandbox/fresh/spawn.py" in names
    assert "sandbox/inside/runner.py" in names and "sandbox/protocol.py" in names
    assert all(name.startswith("sandbox/") and name.endswith(".py") for name in names)
    assert not any(name.startswith("sandbox/zygote/") for name in names)  # the local mode


def test_a_second_deploy_with_nothing_changed_changes_nothing(aws: tuple[Any, Any]) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="5")
    before = lam.get_function(FunctionName="jobbot-runner")
    del before["ResponseMetadata"]

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="5")

    assert code == 0
    assert "nothing changed: jobbot-runner is up to date" in printed
    assert "->" not in printed
    after = lam.get_function(FunctionName="jobbot-runner")
    del after["ResponseMetadata"]
    assert after == before


def test_changed_settings_update_only_what_differs_and_say_so(aws: tuple[Any, Any]) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="10")

    code, printed = deploy(
        JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="20", JOBBOT_LAMBDA_MEMORY_MB="1024"
    )

    assert code == 0
    assert "configuration: Timeout 15 -> 25" in printed
    assert "configuration: MemorySize 512 -> 1024" in printed
    assert "code: up to date" in printed
    assert "waiting until jobbot-runner is updated" in printed
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert (config["Timeout"], config["MemorySize"]) == (25, 1024)


def test_foreign_code_and_environment_variables_are_replaced(aws: tuple[Any, Any]) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role)
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("sandbox/fresh/lambda_handler.py", "def handler(e, c):\n    return e\n")
    lam.update_function_code(FunctionName="jobbot-runner", ZipFile=other.getvalue())
    lam.update_function_configuration(
        FunctionName="jobbot-runner", Environment={"Variables": {"DATABASE_URL": "oops"}}
    )

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role)

    assert code == 0
    assert "code: " in printed and "->" in printed
    assert "Environment variables removed (DATABASE_URL)" in printed
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["CodeSha256"] == lambda_package.code_sha256(lambda_package.build_zip())
    assert config.get("Environment", {}).get("Variables", {}) == {}


def test_reserved_concurrency_is_applied_when_configured(aws: tuple[Any, Any]) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(
        FunctionName="jobbot-runner"
    )

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="20")

    assert code == 0
    assert "reserved concurrency: none -> 20" in printed
    assert (
        lam.get_function_concurrency(FunctionName="jobbot-runner")["ReservedConcurrentExecutions"]
        == 20
    )


def test_creating_without_a_role_arn_says_what_to_set(aws: tuple[Any, Any]) -> None:
    lam, _ = aws

    code, printed = deploy()

    assert code == 2
    assert "set JOBBOT_LAMBDA_ROLE_ARN" in printed
    assert lam.list_functions()["Functions"] == []


def test_a_role_still_propagating_is_retried_until_lambda_can_assume_it(
    aws: tuple[Any, Any],
) -> None:
    lam, iam = aws
    arn = f"arn:aws:iam::123456789012:role/{'late-role'}"
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # IAM "propagates" during the first back-off
        sleeps.append(seconds)
        if len(sleeps) == 1:
            make_role(iam, "late-role")

    out = io.StringIO()
    code = run_lambda_command(
        lambda_settings(JOBBOT_LAMBDA_ROLE_ARN=arn), "deploy", out, sleep=sleep
    )

    assert code == 0, out.getvalue()
    assert sleeps == [1.0]
    assert "not assumable yet" in out.getvalue()
    assert lam.get_function(FunctionName="jobbot-runner")["Configuration"]["Role"] == arn


def test_a_role_that_never_becomes_assumable_fails_after_the_propagation_window(
    aws: tuple[Any, Any],
) -> None:
    sleeps: list[float] = []

    code, printed = deploy(sleeps, JOBBOT_LAMBDA_ROLE_ARN="arn:aws:iam::123456789012:role/none")

    assert code == 1
    assert sum(sleeps) <= 30
    assert "still cannot assume" in printed


def test_policy_prints_least_privilege_policies_iam_accepts(aws: tuple[Any, Any]) -> None:
    _, iam = aws
    role = make_role(iam)
    out = io.StringIO()

    code = run_lambda_command(lambda_settings(JOBBOT_LAMBDA_ROLE_ARN=role), "policy", out)

    assert code == 0
    printed = json.loads(out.getvalue())
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:jobbot-runner"
    assert printed["function_arn"] == function_arn
    execution = printed["execution_role"]
    assert execution["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    [logs] = execution["policy"]["Statement"]
    assert all(action.startswith("logs:") for action in logs["Action"])
    assert all("log-group:/aws/lambda/jobbot-runner" in r for r in logs["Resource"])
    bot = {s["Sid"]: s for s in printed["bot_role"]["policy"]["Statement"]}
    assert bot["InvokeRunner"]["Action"] == "lambda:InvokeFunction"
    assert bot["InvokeRunner"]["Resource"] == function_arn
    assert bot["DeployRunner"]["Resource"] == function_arn
    assert bot["PassExecutionRoleToLambdaOnly"]["Resource"] == role
    everything = json.dumps(printed)
    # no wildcard but the one action AWS grants on the account alone
    assert bot["ReadAccountConcurrency"] == {
        "Sid": "ReadAccountConcurrency",
        "Effect": "Allow",
        "Action": "lambda:GetAccountSettings",
        "Resource": "*",
    }
    assert everything.count('"*"') == 1
    # moto's IAM validates policy documents: both are accepted as they are printed
    iam.put_role_policy(
        RoleName="jobbot-runner-execution",
        PolicyName="logs",
        PolicyDocument=json.dumps(execution["policy"]),
    )
    iam.create_policy(
        PolicyName="jobbot-bot", PolicyDocument=json.dumps(printed["bot_role"]["policy"])
    )


def test_policy_without_a_role_arn_asks_sts_for_the_account(aws: tuple[Any, Any]) -> None:
    out = io.StringIO()

    code = run_lambda_command(lambda_settings(), "policy", out)

    assert code == 0
    printed = json.loads(out.getvalue())
    assert printed["execution_role"]["role_arn"] == (
        "arn:aws:iam::123456789012:role/jobbot-runner-execution"
    )


def test_policy_for_a_function_arn_names_that_function_where_it_is(aws: tuple[Any, Any]) -> None:
    _, iam = aws
    arn = "arn:aws:lambda:eu-west-1:210987654321:function:runner"
    out = io.StringIO()

    code = run_lambda_command(lambda_settings(JOBBOT_LAMBDA_FUNCTION=f"{arn}:live"), "policy", out)

    assert code == 0
    printed = json.loads(out.getvalue())
    assert printed["function_arn"] == arn
    bot = {s["Sid"]: s for s in printed["bot_role"]["policy"]["Statement"]}
    assert bot["InvokeRunner"]["Resource"] == [arn, f"{arn}:live"]  # the alias it invokes
    assert bot["DeployRunner"]["Resource"] == arn
    logs = printed["execution_role"]["policy"]["Statement"][0]["Resource"]
    assert logs[0] == "arn:aws:logs:eu-west-1:210987654321:log-group:/aws/lambda/runner"
    assert printed["execution_role"]["role_arn"] == (
        "arn:aws:iam::210987654321:role/runner-execution"  # the ARN's account, not STS's
    )
    iam.create_policy(
        PolicyName="jobbot-bot", PolicyDocument=json.dumps(printed["bot_role"]["policy"])
    )


def test_deploy_compares_with_the_function_as_it_is_once_an_update_has_finished(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="10")  # Timeout 15
    lam.update_function_configuration(FunctionName="jobbot-runner", Timeout=25)  # someone's
    seen_mid_update(monkeypatch, Timeout=15)  # ...still in progress when deploy first looks

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_JOB_TIMEOUT="20")  # wants 25

    assert code == 0, printed
    assert "waiting until jobbot-runner is updated" in printed
    assert "configuration: up to date" in printed and "Timeout 15" not in printed
    assert lam.get_function(FunctionName="jobbot-runner")["Configuration"]["Timeout"] == 25


def test_a_reserved_concurrency_the_account_cannot_give_is_refused_before_anything_changes(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lam, iam = aws
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "120")  # 120 at once in all
    role = make_role(iam)

    code, printed = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="50")

    assert code == 2, printed
    assert "would leave this account 70 unreserved" in printed and "at least 100" in printed
    assert "Nothing was changed" in printed and "changed before the failure" not in printed
    assert lam.list_functions()["Functions"] == []  # not even created


def test_reserving_more_is_checked_against_what_the_function_already_holds(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lam, iam = aws
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "120")
    role = make_role(iam)
    deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="5")

    refused, said = deploy(
        JOBBOT_LAMBDA_ROLE_ARN=role,
        JOBBOT_LAMBDA_RESERVED_CONCURRENCY="25",
        JOBBOT_JOB_TIMEOUT="20",
    )
    allowed, done = deploy(JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_RESERVED_CONCURRENCY="20")

    assert refused == 2 and "would leave this account 95 unreserved" in said
    assert allowed == 0 and "reserved concurrency: 5 -> 20" in done
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["Timeout"] == 7  # the refused deploy's 25 s never went in


def test_the_package_is_stored_so_its_bytes_do_not_depend_on_zlib(tmp_path: Path) -> None:
    names = zipfile.ZipFile(io.BytesIO(lambda_package.build_zip())).infolist()
    without_zlib = subprocess.run(
        [
            sys.executable,
            "-c",
            # zipfile falls back to binascii for CRC-32; package.py is loaded alone (the
            # executor package imports botocore, which needs zlib)
            "import importlib.util, sys; sys.modules['zlib'] = None\n"
            "spec = importlib.util.spec_from_file_location('package', sys.argv[1])\n"
            "package = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(package)\n"
            "sys.stdout.buffer.write(package.build_zip())",
            lambda_package.__file__,
        ],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout

    assert {info.compress_type for info in names} == {zipfile.ZIP_STORED}
    assert without_zlib == lambda_package.build_zip()
