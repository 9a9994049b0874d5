"""Deployer: creates or updates the runner function idempotently, changing only what differs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions

from bot.core.backoff import NO_JITTER, backoff
from bot.executors.aws_lambda import package as lambda_package
from bot.executors.aws_lambda.client import error_code, function_timeout_s
from bot.executors.aws_lambda.layers import LayerError
from bot.executors.aws_lambda.tenancy import PER_TENANT, PER_USER, function_tenancy

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import FunctionConfigurationResponseTypeDef

    from bot.app.config import Settings
    from bot.executors.aws_lambda.layers import LayerStep

RUNTIME = "python3.13"
ARCHITECTURE = "arm64"  # the default: Graviton costs about 20% less per GB-s
PROPAGATION_S = 30.0  # how long a new execution role may take to become assumable
# Lambda keeps this much of the account's concurrency unreserved (all of it when the account
# may run fewer at once: new accounts)
UNRESERVED_MINIMUM = 100


class DeployError(Exception):
    """Deploy cannot go on; the message says why and what to do (`misconfigured`: a setting
    must change, exit code 2)."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


@dataclass(frozen=True)
class FunctionSpec:
    """What the runner function must look like."""

    name: str
    role_arn: str  # "" keeps an existing function's role (creating one needs it)
    timeout_s: int
    memory_mb: int
    reserved_concurrency: int | None  # None leaves the function's setting alone
    tenancy: str = PER_USER  # per-user: created PER_TENANT (Lambda never changes it later)
    runtime: str = RUNTIME
    handler: str = lambda_package.HANDLER
    architecture: str = ARCHITECTURE

    @classmethod
    def from_settings(cls, settings: Settings) -> FunctionSpec:
        """The spec the settings ask for."""
        return cls(
            name=settings.lambda_function,
            role_arn=settings.lambda_role_arn,
            timeout_s=function_timeout_s(settings.job_timeout),
            memory_mb=settings.lambda_memory_mb,
            reserved_concurrency=settings.lambda_reserved_concurrency,
            tenancy=settings.lambda_tenancy,
            architecture=settings.lambda_architecture,
        )


class Deployer:
    """Brings the function in line with a spec, changing only what differs.

    Args:
        client: a Lambda client (retries on: every call here is safe to repeat).
        spec: the wanted function.
        out: where progress and changes are printed.
        replace: delete and re-create a function whose tenancy differs from the spec's
            (Lambda sets it only at creation); without it, deploy refuses.
        layer: the job packages' layer step (None: the function gets no layer).
        sleep: how to wait between retries of a role that is not assumable yet.
        propagation_s: how long to keep retrying that.
        waiter_delay_s: the waiters' polling interval.
    """

    def __init__(
        self,
        client: LambdaClient,
        spec: FunctionSpec,
        out: TextIO,
        *,
        replace: bool = False,
        layer: LayerStep | None = None,
        sleep: Callable[[float], None] = time.sleep,
        propagation_s: float = PROPAGATION_S,
        waiter_delay_s: int = 1,
    ) -> None:
        self.client = client
        self.layer = layer
        self.spec = spec
        self.out = out
        self.replace = replace
        self.sleep = sleep
        self.propagation_s = propagation_s
        self.waiter_delay_s = waiter_delay_s
        self.changes: list[str] = []

    def say(self, line: str) -> None:
        """Print a progress line."""
        print(line, file=self.out, flush=True)

    def deploy(self, zip_bytes: bytes) -> list[str]:
        """Create or update the function; returns what changed (empty: nothing did)."""
        sha = lambda_package.code_sha256(zip_bytes)
        self.say(f"package: {len(zip_bytes)} bytes, CodeSha256 {sha}")
        current = self._get()
        if current is not None:
            current = self._settled(current)
        # every refusal comes before the first change, so none leaves a half-applied deploy
        self._check_concurrency(current)
        if current is not None and function_tenancy(current["Configuration"]) != self.spec.tenancy:
            self._check_replace(function_tenancy(current["Configuration"]))
            self._check_role()
        if current is None:
            self._check_role()
        try:
            if self.layer is not None:
                self.layer.prepare(lambda_package.unzipped_size(zip_bytes))
                self.changes += self.layer.publish()
        except LayerError as exc:
            raise DeployError(str(exc), misconfigured=exc.misconfigured) from exc
        finally:
            if self.layer is not None:
                self.layer.close()
        if current is not None and function_tenancy(current["Configuration"]) != self.spec.tenancy:
            self._replace(function_tenancy(current["Configuration"]))
            current = None
        if current is None:
            self._create(zip_bytes)
        else:
            config = current["Configuration"]
            self._update_code(config, zip_bytes, sha)
            self._update_configuration(config)
        self._apply_concurrency()
        if self.changes:
            self.say(f"done: {len(self.changes)} change(s) to {self.spec.name}")
        else:
            self.say(f"nothing changed: {self.spec.name} is up to date")
        return self.changes

    # --- steps -------------------------------------------------------------------------

    def _get(self) -> Any:
        try:
            return self.client.get_function(FunctionName=self.spec.name)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc)[0] == "ResourceNotFoundException":
                return None
            raise

    def _consequences(self) -> str:
        return (
            f"deletes {self.spec.name} and creates it again: invokes in flight fail (their "
            "jobs end with an error), its reserved concurrency is set again only from "
            "JOBBOT_LAMBDA_RESERVED_CONCURRENCY, and anything configured on it by hand (VPC, "
            "aliases, versions, triggers, tags, policy statements) is lost; its name "
            "and ARN stay, so the bot's IAM policy still applies"
        )

    def _check_replace(self, have: str) -> None:
        """Refuse a tenancy change without --replace, saying what --replace would do."""
        spec = self.spec
        if not self.replace:
            raise DeployError(
                f"{spec.name} has tenancy {have}, JOBBOT_LAMBDA_TENANCY asks for {spec.tenancy}, "
                "and Lambda sets tenant isolation only when it creates a function. "
                f"`python -m bot lambda deploy --replace` {self._consequences()}. Or set "
                f"JOBBOT_LAMBDA_TENANCY={have} to keep it as it is",
                misconfigured=True,
            )

    def _replace(self, have: str) -> None:
        """Delete the function so that it is created again with the wanted tenancy."""
        spec = self.spec
        self.say(
            f"replacing {spec.name} (tenancy {have} -> {spec.tenancy}): {self._consequences()}"
        )
        self.client.delete_function(FunctionName=spec.name)
        self.changes.append(f"deleted {spec.name} (tenancy {have})")
        waited = 0.0
        while self._get() is not None:  # deletion is quick; bound it all the same
            if waited >= self.propagation_s:
                raise DeployError(
                    f"{spec.name} was still there {self.propagation_s:g} s after deletion"
                )
            self.sleep(1.0)
            waited += 1.0

    def _wait(self, waiter: str, what: str) -> None:
        self.say(f"waiting until {self.spec.name} is {what}")
        try:
            self.client.get_waiter(waiter).wait(  # type: ignore[call-overload]
                FunctionName=self.spec.name,
                WaiterConfig={"Delay": self.waiter_delay_s, "MaxAttempts": 900},
            )
        except botocore.exceptions.WaiterError as exc:
            raise DeployError(f"{self.spec.name} did not become {what}: {exc}") from exc

    def _settled(self, current: Any) -> Any:
        """The function once a pending creation or an update in progress (ours or anyone's)
        has finished, read again then: that update may have changed what deploy compares."""
        config: FunctionConfigurationResponseTypeDef = current["Configuration"]
        pending = config.get("State") == "Pending"
        updating = config.get("LastUpdateStatus") == "InProgress"
        if pending:
            self._wait("function_active_v2", "active")
        if updating:
            self._wait("function_updated_v2", "updated")
        return self._get() if pending or updating else current

    def _check_concurrency(self, current: Any) -> None:
        """Refuse a reserved concurrency the account cannot give, before changing anything."""
        wanted = self.spec.reserved_concurrency
        concurrency = (current or {}).get("Concurrency") or {}
        have = int(concurrency.get("ReservedConcurrentExecutions") or 0)
        if wanted is None or wanted <= have:
            return  # nothing reserved, or less than before: the account only gains
        limit = self.client.get_account_settings()["AccountLimit"]
        total = int(limit.get("ConcurrentExecutions", 0))
        unreserved = int(limit.get("UnreservedConcurrentExecutions", 0))
        minimum = min(UNRESERVED_MINIMUM, total)
        left = unreserved + have - wanted
        if left < minimum:
            raise DeployError(
                f"JOBBOT_LAMBDA_RESERVED_CONCURRENCY={wanted} would leave this account {left} "
                f"unreserved concurrent executions in the region, and Lambda keeps at least "
                f"{minimum} (the account may run {total} at once, {unreserved} of them "
                "unreserved now). Nothing was changed. Lower or unset the setting, or ask AWS "
                "for a higher concurrency quota: new accounts start with a low one",
                misconfigured=True,
            )

    def _configuration(self) -> dict[str, Any]:
        spec = self.spec
        wanted: dict[str, Any] = {
            "Runtime": spec.runtime,
            "Handler": spec.handler,
            "Timeout": spec.timeout_s,
            "MemorySize": spec.memory_mb,
            "Environment": {"Variables": {}},  # the function carries no settings or secrets
            # the job packages' layer, and no other
            "Layers": [self.layer.arn] if self.layer is not None and self.layer.arn else [],
        }
        if spec.role_arn:
            wanted["Role"] = spec.role_arn
        return wanted

    def _check_role(self) -> None:
        """Refuse to create the function without its execution role."""
        if not self.spec.role_arn:
            raise DeployError(
                f"{self.spec.name} does not exist yet, and creating it needs its execution role: "
                "set JOBBOT_LAMBDA_ROLE_ARN (see `python -m bot lambda policy`)",
                misconfigured=True,
            )

    def _create(self, zip_bytes: bytes) -> None:
        spec = self.spec
        self._check_role()
        self.say(
            f"creating {spec.name}: {spec.runtime} on {spec.architecture}, {spec.memory_mb} MB, "
            f"timeout {spec.timeout_s} s, role {spec.role_arn}, tenancy {spec.tenancy}"
        )
        tenancy: dict[str, Any] = {}
        if spec.tenancy == PER_USER:
            tenancy["TenancyConfig"] = {"TenantIsolationMode": PER_TENANT}
        waited = 0.0  # counted, not measured, so `sleep` alone decides how long it takes
        attempt = 0
        while True:
            try:
                self.client.create_function(
                    FunctionName=spec.name,
                    Code={"ZipFile": zip_bytes},
                    PackageType="Zip",
                    Architectures=[spec.architecture],  # type: ignore[list-item]
                    Description="jobbot runner: runs one job per invocation",
                    Publish=False,
                    **tenancy,
                    **self._configuration(),
                )
                break
            except botocore.exceptions.ClientError as exc:
                attempt += 1
                delay = backoff(attempt, first=1.0, cap=8.0, jitter=NO_JITTER)
                assumable = "cannot be assumed" not in str(exc)
                if error_code(exc)[0] != "InvalidParameterValueException" or assumable:
                    raise
                if waited + delay > self.propagation_s:
                    raise DeployError(
                        f"Lambda still cannot assume {spec.role_arn} after "
                        f"{self.propagation_s:g} s: check that the role exists and trusts "
                        "lambda.amazonaws.com (`python -m bot lambda policy`)"
                    ) from exc
                self.say(
                    f"the new role is not assumable yet (IAM propagation); retrying in {delay:g} s"
                )
                self.sleep(delay)
                waited += delay
        self.changes.append(f"created {spec.name}")
        self._wait("function_active_v2", "active")
        self.say(f"created {spec.name}")

    def _update_code(
        self, config: FunctionConfigurationResponseTypeDef, zip_bytes: bytes, sha: str
    ) -> None:
        spec = self.spec
        architectures = list(config.get("Architectures", ["x86_64"]))
        if config.get("CodeSha256") == sha and architectures == [spec.architecture]:
            self.say(f"code: up to date ({sha})")
            return
        self.client.update_function_code(
            FunctionName=spec.name,
            ZipFile=zip_bytes,
            Architectures=[spec.architecture],  # type: ignore[list-item]
        )
        change = f"code: {config.get('CodeSha256')} -> {sha}"
        if architectures != [spec.architecture]:
            change += f" (architecture {','.join(architectures)} -> {spec.architecture})"
        self.changes.append(change)
        self.say(change)
        self._wait("function_updated_v2", "updated")

    def _update_configuration(self, config: FunctionConfigurationResponseTypeDef) -> None:
        current: dict[str, Any] = dict(config)
        differences = []
        for key, value in self._configuration().items():
            have = current.get(key)
            if key == "Environment":
                have = {"Variables": dict((have or {}).get("Variables") or {})}
            if key == "Layers":
                have = [layer["Arn"] for layer in have or []]
            if have != value:
                differences.append((key, have, value))
        if not differences:
            self.say("configuration: up to date")
            return
        self.client.update_function_configuration(
            FunctionName=self.spec.name, **self._configuration()
        )
        for key, have, value in differences:
            if key == "Environment":
                names = ", ".join(sorted((have or {}).get("Variables", {})))
                change = f"configuration: Environment variables removed ({names})"
            else:
                change = f"configuration: {key} {have} -> {value}"
            self.changes.append(change)
            self.say(change)
        self._wait("function_updated_v2", "updated")

    def _apply_concurrency(self) -> None:
        wanted = self.spec.reserved_concurrency
        response = self.client.get_function_concurrency(FunctionName=self.spec.name)
        have = response.get("ReservedConcurrentExecutions")
        if wanted is None:
            self.say(
                "reserved concurrency: not configured (JOBBOT_LAMBDA_RESERVED_CONCURRENCY), "
                f"left as it is ({have if have is not None else 'none'})"
            )
            return
        if have == wanted:
            self.say(f"reserved concurrency: up to date ({wanted})")
            return
        self.client.put_function_concurrency(
            FunctionName=self.spec.name, ReservedConcurrentExecutions=wanted
        )
        change = f"reserved concurrency: {have if have is not None else 'none'} -> {wanted}"
        self.changes.append(change)
        self.say(change)
