"""The AWS Lambda executor: client, invoke, outcome mapping, doctor checks, deploy and the zip."""

from bot.executors.aws_lambda.doctor import lambda_checks
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor

__all__ = ["LambdaExecutor", "build_lambda_executor", "lambda_checks"]
