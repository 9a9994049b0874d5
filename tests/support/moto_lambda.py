"""What moto 5.2.5's Lambda lacks and `lambda deploy` needs, added to moto's backend (the
service side) for the tests; the real boto3 client talks to it unchanged.

Measured on moto 5.2.5 (tests/integration/lambda_executor/test_deploy.py checks it still holds):

- CreateFunction accepts `TenancyConfig` and drops it: GetFunction never returns one, so a
  function created per-tenant looks shared. Here it is kept and returned.
- Invoke accepts `TenantId` (the header) and ignores it; nothing to add for deploy.
- GetAccountSettings answers 404 "Not yet implemented". Here it answers from the account
  quota moto itself enforces in PutFunctionConcurrency (MOTO_LAMBDA_CONCURRENCY_QUOTA; 1,000,
  Lambda's default, when unset), less the functions' reserved concurrency.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

ACCOUNT_SETTINGS = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"


def teach_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add TenancyConfig and GetAccountSettings to moto's Lambda (undone with monkeypatch)."""
    from moto.awslambda import models, responses, urls

    create = models.LambdaFunction.__init__
    describe = models.LambdaFunction.get_configuration

    def init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kw: Any) -> None:
        create(self, account_id, spec, *args, **kw)
        self.tenancy_config = spec.get("TenancyConfig")

    def get_configuration(self: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        configuration: dict[str, Any] = describe(self, *args, **kw)
        if getattr(self, "tenancy_config", None):
            configuration["TenancyConfig"] = self.tenancy_config
        return configuration

    def get_account_settings(self: Any) -> tuple[int, dict[str, str], str]:
        quota = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", "1000"))
        functions = self.backend.list_functions()
        reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
        limit = {"ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": quota - reserved}
        body = {"AccountLimit": limit, "AccountUsage": {"FunctionCount": len(functions)}}
        return 200, {}, json.dumps(body)

    monkeypatch.setattr(models.LambdaFunction, "__init__", init)
    monkeypatch.setattr(models.LambdaFunction, "get_configuration", get_configuration)
    monkeypatch.setattr(
        responses.LambdaResponse, "get_account_settings", get_account_settings, raising=False
    )
    monkeypatch.setitem(urls.url_paths, ACCOUNT_SETTINGS, responses.LambdaResponse.dispatch)


def seen_mid_update(monkeypatch: pytest.MonkeyPatch, **stale: Any) -> None:
    """The next GetFunction shows the function in the middle of an update (LastUpdateStatus
    InProgress) with `stale` values; the ones after it, the function as it is."""
    from moto.awslambda import models

    describe = models.LambdaFunction.get_configuration
    first = [True]

    def get_configuration(self: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        configuration: dict[str, Any] = describe(self, *args, **kw)
        if first[0]:
            first[0] = False
            return {**configuration, **stale, "LastUpdateStatus": "InProgress"}
        return configuration

    monkeypatch.setattr(models.LambdaFunction, "get_configuration", get_configuration)
