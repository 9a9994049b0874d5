"""The Lambda executor's settings that matter most: no SDK retries, a read timeout beyond the
function timeout, the function timeout itself, and the invoke payload."""

from __future__ import annotations

import json

import pytest

from bot.core.models import RunRequest
from bot.executors.aws_lambda.client import client_config, function_timeout_s
from bot.executors.aws_lambda.executor import encode_request
from bot.executors.aws_lambda.policy import FunctionRef, Target, parse_function, policies


@pytest.mark.parametrize(("job", "function"), [(10, 15), (2.5, 8), (1, 6), (895, 900), (900, 900)])
def test_the_function_timeout_is_the_job_timeout_plus_headroom(job: float, function: int) -> None:
    assert function_timeout_s(job) == function


def test_the_invoke_client_never_retries_and_outwaits_the_function() -> None:
    config = client_config(function_timeout_s(10), pool=16)

    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.read_timeout == 20  # function timeout (15 s) + 5 s
    assert config.connect_timeout == 3
    assert config.max_pool_connections == 16


def test_the_payload_is_the_protocol_request_in_compact_utf8() -> None:
    request = RunRequest(3, "olá.py", "print('olá')", '{"a": 1}', 10.0, 256, 1024)

    payload = encode_request(request)

    assert b"ol\xc3\xa1" in payload and b", " not in payload
    assert json.loads(payload) == {
        "v": 1,
        "job_id": 3,
        "file_name": "olá.py",
        "code": "print('olá')",
        "input_json": '{"a": 1}',
        "timeout_s": 10.0,
        "memory_mb": 256,
        "max_output_bytes": 1024,
        "files": [],
        "max_files_out": 10,
        "max_files_out_bytes": 4 * 1024 * 1024,
    }


def test_the_network_is_asked_for_only_when_turned_on() -> None:
    request = RunRequest(3, "a.py", "print(1)", "{}", 10.0, 256, 1024)

    assert "network" not in json.loads(encode_request(request))
    assert json.loads(encode_request(request, network=True))["network"] is True


def test_a_lone_surrogate_still_makes_a_valid_payload() -> None:
    request = RunRequest(3, "a.py", "print('\ud800')", "{}", 10.0, 256, 1024)

    assert json.loads(encode_request(request))["code"] == "print('\ud800')"


def test_a_function_is_named_by_name_qualifier_or_arn() -> None:
    assert parse_function("runner") == FunctionRef("runner")
    assert parse_function("runner:live") == FunctionRef("runner", "live")
    assert parse_function("111122223333:function:runner") == FunctionRef(
        "runner", account="111122223333"
    )
    assert parse_function("arn:aws-cn:lambda:cn-north-1:111122223333:function:runner:7") == (
        FunctionRef("runner", "7", "aws-cn", "cn-north-1", "111122223333")
    )


def test_the_policies_name_one_function_one_log_group_and_one_role() -> None:
    target = Target(
        "aws", "eu-west-1", "111122223333", "runner", "arn:aws:iam::111122223333:role/r"
    )

    printed = policies(target)

    arn = "arn:aws:lambda:eu-west-1:111122223333:function:runner"
    assert printed["function_arn"] == arn
    resources = [s["Resource"] for s in printed["bot_role"]["policy"]["Statement"]] + printed[
        "execution_role"
    ]["policy"]["Statement"][0]["Resource"]
    layer = "arn:aws:lambda:eu-west-1:111122223333:layer:runner-packages"
    assert resources == [
        arn,
        arn,
        [layer, f"{layer}:*"],  # the job packages layer and its versions
        "*",  # GetAccountSettings: AWS grants it on the account alone
        "arn:aws:iam::111122223333:role/r",
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/runner",
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/runner:*",
    ]
