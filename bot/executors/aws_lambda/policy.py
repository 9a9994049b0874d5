"""The least-privilege IAM policies of the runner function's role and of the bot's own role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions

from bot.executors.aws_lambda.client import session_region
from bot.executors.aws_lambda.layers import S3_PREFIX, layer_name

if TYPE_CHECKING:
    from bot.app.config import Settings


@dataclass(frozen=True)
class FunctionRef:
    """What JOBBOT_LAMBDA_FUNCTION names: a function name, maybe with a qualifier, or (part of)
    an ARN, whose parts then win over the session's."""

    name: str
    qualifier: str | None = None
    partition: str | None = None
    region: str | None = None
    account: str | None = None


def parse_function(value: str) -> FunctionRef:
    """The parts of a function name, `name:qualifier`, `account:function:name[:qualifier]` or
    `arn:partition:lambda:region:account:function:name[:qualifier]` (as Invoke accepts)."""
    parts = value.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "function":
        qualifier = parts[7] if len(parts) > 7 else None
        return FunctionRef(parts[6], qualifier, parts[1], parts[3], parts[4])
    if len(parts) >= 3 and parts[1] == "function" and parts[0].isdigit():
        return FunctionRef(parts[2], parts[3] if len(parts) > 3 else None, account=parts[0])
    return FunctionRef(parts[0], parts[1] if len(parts) > 1 else None)


@dataclass(frozen=True)
class Target:
    """Where the function lives, for ARNs."""

    partition: str
    region: str
    account: str
    function: str  # its name alone
    role_arn: str
    qualifier: str | None = None  # a version or alias the bot invokes
    bucket: str = ""  # JOBBOT_LAMBDA_ARTIFACT_BUCKET: deploy's uploads of large layers

    @property
    def layer_arn(self) -> str:
        """The job packages' layer (its versions are this ARN + ":N")."""
        name = layer_name(self.function)
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:layer:{name}"

    @property
    def function_arn(self) -> str:
        """The runner function's ARN (unqualified)."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{self.function}"

    @property
    def invoked_arns(self) -> str | list[str]:
        """What the bot invokes: the function, and its qualified ARN when it names one."""
        if self.qualifier is None:
            return self.function_arn
        return [self.function_arn, f"{self.function_arn}:{self.qualifier}"]

    @property
    def log_group_arn(self) -> str:
        """The function's own log group."""
        return (
            f"arn:{self.partition}:logs:{self.region}:{self.account}"
            f":log-group:/aws/lambda/{self.function}"
        )


def _layer_statements(target: Target) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = [
        {
            # deploy looks for the version of the packages' fingerprint, publishes one when
            # the list changed, and attaches it (which needs GetLayerVersion on it)
            "Sid": "PackagesLayer",
            "Effect": "Allow",
            "Action": [
                "lambda:ListLayerVersions",
                "lambda:PublishLayerVersion",
                "lambda:GetLayerVersion",
            ],
            "Resource": [target.layer_arn, f"{target.layer_arn}:*"],
        }
    ]
    if target.bucket:
        statements.append(
            {
                # a layer zip over 50 MB goes through S3: deploy uploads it, Lambda reads it
                # with deploy's credentials, and deploy deletes it once published
                "Sid": "LayerUploadsOnly",
                "Effect": "Allow",
                "Action": [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": f"arn:{target.partition}:s3:::{target.bucket}/{S3_PREFIX}/*",
            }
        )
    return statements


def policies(target: Target) -> dict[str, Any]:
    """The execution role (trust + logs only) and the bot's own policy (invoke + deploy)."""
    version = "2012-10-17"
    return {
        "function_arn": target.function_arn,
        "execution_role": {
            "role_arn": target.role_arn,
            "trust_policy": {
                "Version": version,
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "policy": {
                "Version": version,
                "Statement": [
                    {
                        "Sid": "OwnLogGroupOnly",
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                        ],
                        "Resource": [target.log_group_arn, f"{target.log_group_arn}:*"],
                    }
                ],
            },
        },
        "bot_role": {
            "policy": {
                "Version": version,
                "Statement": [
                    {
                        "Sid": "InvokeRunner",
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": target.invoked_arns,
                    },
                    {
                        "Sid": "DeployRunner",
                        "Effect": "Allow",
                        "Action": [
                            "lambda:GetFunction",
                            "lambda:GetFunctionConfiguration",
                            "lambda:GetFunctionConcurrency",
                            "lambda:CreateFunction",
                            "lambda:UpdateFunctionCode",
                            "lambda:UpdateFunctionConfiguration",
                            "lambda:PutFunctionConcurrency",
                            # deploy --replace only: tenant isolation is set at creation
                            "lambda:DeleteFunction",
                        ],
                        "Resource": target.function_arn,
                    },
                    *_layer_statements(target),
                    {
                        # deploy reads the account's unreserved concurrency before it reserves
                        # any; AWS grants this action on the account alone, so on "*"
                        "Sid": "ReadAccountConcurrency",
                        "Effect": "Allow",
                        "Action": "lambda:GetAccountSettings",
                        "Resource": "*",
                    },
                    {
                        "Sid": "PassExecutionRoleToLambdaOnly",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": target.role_arn,
                        "Condition": {
                            "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}
                        },
                    },
                ],
            },
        },
    }


def _account_from_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 and parts[0] == "arn" and parts[4].isdigit() else None


def resolve_target(settings: Settings, session: Any, notes: TextIO) -> Target:
    """ARN parts from the settings (a function ARN's own first), the session's region and
    (if needed) STS."""
    function = parse_function(settings.lambda_function)
    region = function.region or session_region(session, settings) or "REGION"
    if region == "REGION":
        print("note: no AWS region configured; the policies say REGION", file=notes)
    partition = function.partition or (
        session.get_partition_for_region(region) if region != "REGION" else "aws"
    )
    account = function.account or _account_from_arn(settings.lambda_role_arn)
    if account is None:
        try:
            account = session.client("sts", region_name=region).get_caller_identity()["Account"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            print(
                f"note: cannot tell the AWS account ({exc}); the policies say ACCOUNT_ID",
                file=notes,
            )
            account = "ACCOUNT_ID"
    role_arn = settings.lambda_role_arn
    if not role_arn:
        role_arn = f"arn:{partition}:iam::{account}:role/{function.name}-execution"
        print(
            f"note: JOBBOT_LAMBDA_ROLE_ARN is not set; the policies assume the role {role_arn} "
            "(create it with the execution_role policies, then set JOBBOT_LAMBDA_ROLE_ARN)",
            file=notes,
        )
    return Target(
        partition,
        region,
        account,
        function.name,
        role_arn,
        function.qualifier,
        settings.lambda_artifact_bucket,
    )
