"""What moto 5.2.5's Lambda lacks and `lambda deploy` needs, added to moto's backend (the
service side) for the tests; the real boto3 client talks to it unchanged.

Measured on moto 5.2.5 (tests/integration/lambda_executor/test_deploy.py checks it still holds):

- CreateFunction accepts `TenancyConfig` and drops it: GetFunction never returns one, so a
  function created per-tenant looks shared. Here it is kept and returned.
- Invoke accepts `TenantId` (the header) and ignores it; nothing to add for deploy.
- GetAccountSettings answers 404 "Not yet implemented". Here it answers from the account
  quota moto itself enforces in PutFunctionConcurrency (MOTO_LAMBDA_CONCURRENCY_QUOTA; 1,000,
  Lambda's default, when unset), less the functions' reserved concurrency.
- UpdateFunctionCode ignores `Architectures`; Lambda moves the function to them. Here it does.
- Moto takes code of any size. Lambda refuses a request over 69,905,067 bytes (a 50 MB zip
  in base64) with 413 RequestEntityTooLargeException, a layer over 250 MB unzipped, and a
  function whose code and layers together are over 250 MB unzipped; so does moto here.

`moto_server` runs moto as a server on loopback HTTP: the code under test reaches it through
real boto3 clients and AWS_ENDPOINT_URL, as it would reach AWS.
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ACCOUNT_SETTINGS = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"
REQUEST_LIMIT = 69_905_067  # bytes of a request carrying code: a 50 MB zip in base64
UNZIPPED_LIMIT = 262_144_000  # 250 MB: a layer, or a function with all its layers


@contextmanager
def moto_server() -> Iterator[str]:
    """Moto as a server on a free loopback port; its URL. Moto's state is global to the
    process: it is reset on the way out, so the next server starts empty."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    config = json.dumps({"lambda": {"use_docker": False}}).encode()
    urllib.request.urlopen(f"{url}/moto-api/config", data=config).close()  # noqa: S310
    try:
        yield url
    finally:
        urllib.request.urlopen(f"{url}/moto-api/reset", data=b"").close()  # noqa: S310
        server.stop()


def unzipped(code: bytes) -> int:
    """Bytes of a zip's files once unpacked (0 for no code)."""
    if not code:
        return 0
    return sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(code)).infolist())


def _size_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda import exceptions, models, responses

    class RequestTooLarge(exceptions.LambdaClientError):
        code = 413

    for operation in ("create_function", "update_function_code", "publish_layer_version"):
        original = getattr(responses.LambdaResponse, operation)
        name = "".join(part.title() for part in operation.split("_"))

        def checked(self: Any, *, _original: Any = original, _name: str = name) -> Any:
            if len(self.body or b"") > REQUEST_LIMIT:
                raise RequestTooLarge(
                    "RequestEntityTooLargeException",
                    f"Request must be smaller than {REQUEST_LIMIT} bytes for the {_name} operation",
                )
            return _original(self)

        monkeypatch.setattr(responses.LambdaResponse, operation, checked)

    layer_init = models.LayerVersion.__init__

    def layer(self: Any, *args: Any, **kw: Any) -> None:
        layer_init(self, *args, **kw)
        if unzipped(self.code_bytes) > UNZIPPED_LIMIT:
            raise exceptions.InvalidParameterValueException(
                f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes"
            )

    monkeypatch.setattr(models.LayerVersion, "__init__", layer)
    update = models.LambdaFunction.update_configuration

    def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "Layers" in config_updates:
            check_total(self, config_updates["Layers"])
        result: dict[str, Any] = update(self, config_updates)
        return result

    monkeypatch.setattr(models.LambdaFunction, "update_configuration", update_configuration)
    update_code = models.LambdaFunction.update_function_code

    def update_function_code(self: Any, updated_spec: dict[str, Any]) -> Any:
        if updated_spec.get("Architectures"):
            self.architectures = updated_spec["Architectures"]
        return update_code(self, updated_spec)

    monkeypatch.setattr(models.LambdaFunction, "update_function_code", update_function_code)


def check_total(function: Any, layer_arns: list[str]) -> None:
    """Lambda's refusal of a function whose code and layers are over 250 MB unzipped."""
    from moto.awslambda import exceptions, models

    backend = models.lambda_backends[function.account_id][function.region]
    total = unzipped(function.code_bytes)
    for arn in layer_arns:
        version = backend.layers_versions_by_arn(arn)
        total += unzipped(version.code_bytes) if version is not None else 0
    if total > UNZIPPED_LIMIT:
        raise exceptions.InvalidParameterValueException(
            f"Function code combined with layers exceeds the maximum allowed size of "
            f"{UNZIPPED_LIMIT} bytes. The actual size is {total} bytes."
        )


def teach_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add TenancyConfig, GetAccountSettings and Lambda's size limits to moto's Lambda
    (undone with monkeypatch)."""
    from moto.awslambda import models, responses, urls

    _size_limits(monkeypatch)

    create = models.LambdaFunction.__init__
    describe = models.LambdaFunction.get_configuration

    def init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kw: Any) -> None:
        create(self, account_id, spec, *args, **kw)
        self.tenancy_config = spec.get("TenancyConfig")
        check_total(self, [layer["Arn"] for layer in self.layers])

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
