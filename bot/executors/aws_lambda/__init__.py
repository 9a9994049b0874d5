"""The AWS Lambda executor: the invoking executor, its doctor checks, deploy and the zip."""

from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor, lambda_checks

__all__ = ["LambdaExecutor", "build_lambda_executor", "lambda_checks"]
