"""The Lambda stand-in is as strict as Lambda: its Runtime API follows rapid's states against a
runtime that misbehaves (the test itself, as an "external" runtime), it routes by tenant,
and it reports killed runtimes and timeouts as Lambda does."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bot.sandbox import protocol
from testbed.lambda_runtime_api import API
from testbed.lambda_standin import LambdaStandIn
from testbed.waiting import wait_until
from tests.integration.lambda_executor.conftest import job

pytestmark = pytest.mark.usefixtures("aws_env")
REPO = Path(__file__).resolve().parents[3]


class BadRuntime:
    """A runtime driven by hand: whatever a job that reached the Runtime API could send."""

    def __init__(self, address: str) -> None:
        self.address = address

    def call(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request on a fresh connection."""
        host, port = self.address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(method, API + path, body=body)
            response = conn.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            conn.close()

    def next(self) -> tuple[str, bytes, dict[str, str]]:
        """GET /next: (request id, event, headers)."""
        status, headers, body = self.call("GET", "/invocation/next")
        assert status == 200, body
        return headers["Lambda-Runtime-Aws-Request-Id"], body, headers

    def respond(self, request_id: str, body: bytes, kind: str = "response") -> tuple[int, Any]:
        """POST a result: (status, decoded body)."""
        status, _, data = self.call("POST", f"/invocation/{request_id}/{kind}", body)
        return status, json.loads(data)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as threads:
        yield threads


def client(standin: LambdaStandIn) -> Any:
    """A boto3 Lambda client on the stand-in (no retries, a read timeout past the tests)."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=60)
    return boto3.client(
        "lambda", region_name=standin.region, endpoint_url=standin.endpoint_url, config=config
    )


def invoke(
    threads: ThreadPoolExecutor, standin: LambdaStandIn, payload: dict[str, Any], **kw: str
) -> Future[Any]:
    """Start an invoke (as tenant "anyone" unless told); its future gives (FunctionError or
    None, decoded body)."""
    if standin.tenancy == "per-tenant":
        kw.setdefault("TenantId", "anyone")

    def run() -> tuple[str | None, Any]:
        response = client(standin).invoke(
            FunctionName=standin.function_name, Payload=json.dumps(payload), **kw
        )
        return response.get("FunctionError"), json.loads(response["Payload"].read())

    return threads.submit(run)


def runtime_of(standin: LambdaStandIn, index: int) -> BadRuntime:
    """The hand-driven runtime of environment `index`, once the stand-in has started it."""
    wait_until(lambda: standin.environments() > index, message=f"environment {index}")
    return BadRuntime(standin.environment(index).api.address)


def test_next_during_an_invocation_sends_its_event_again_and_any_caller_may_answer(
    pool: ThreadPoolExecutor,
) -> None:
    with LambdaStandIn(runtime="external") as standin:
        answer = invoke(pool, standin, {"user": "a"})
        runtime = runtime_of(standin, 0)

        first_id, first, _ = runtime.next()
        again_id, again, _ = runtime.next()  # what a job that reaches the API gets
        status, _ = runtime.respond(again_id, b'{"forged": true}')

        assert (again_id, again) == (first_id, first) and json.loads(first) == {"user": "a"}
        assert status == 202
        assert answer.result(30) == (None, {"forged": True})


def test_a_result_is_refused_out_of_turn_or_for_another_request_id(
    pool: ThreadPoolExecutor,
) -> None:
    with LambdaStandIn(runtime="external") as standin:
        answer = invoke(pool, standin, {"n": 1})
        runtime = runtime_of(standin, 0)

        early = runtime.respond("not-yet", b"{}")
        request_id, _, _ = runtime.next()
        wrong = runtime.respond("11111111-2222-3333-4444-555555555555", b"{}")
        right = runtime.respond(request_id, b'{"ok": 1}')
        twice = runtime.respond(request_id, b'{"ok": 2}')
        error_after = runtime.respond(request_id, b"{}", kind="error")

        assert early[0] == 403 and early[1]["errorType"] == "InvalidStateTransition"
        assert wrong == (
            400,
            {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"},
        )
        assert right[0] == 202
        assert twice[0] == error_after[0] == 403
        assert answer.result(30) == (None, {"ok": 1})


def test_next_after_a_result_hands_out_the_next_invocation_in_the_same_environment(
    pool: ThreadPoolExecutor,
) -> None:
    with LambdaStandIn(runtime="external") as standin:
        first = invoke(pool, standin, {"n": 1})
        runtime = runtime_of(standin, 0)
        request_id, _, _ = runtime.next()
        runtime.respond(request_id, b'"one"')
        assert first.result(30) == (None, "one")

        waiting = pool.submit(runtime.next)  # ready: the environment may take the next one
        wait_until(lambda: standin.ready_environments() == 1, message="a ready runtime")
        second = invoke(pool, standin, {"n": 2})
        second_id, event, _ = waiting.result(30)
        runtime.respond(second_id, b'"two"')

        assert json.loads(event) == {"n": 2} and second_id != request_id
        assert second.result(30) == (None, "two")
        assert standin.environments() == 1
        assert [r.environment for r in standin.records] == [0, 0]


def test_an_environment_serves_one_invocation_at_a_time(pool: ThreadPoolExecutor) -> None:
    with LambdaStandIn(runtime="external", max_concurrency=2) as standin:
        first = invoke(pool, standin, {"n": 1})
        one = runtime_of(standin, 0)
        first_id, _, _ = one.next()
        second = invoke(pool, standin, {"n": 2})  # the first environment is busy
        two = runtime_of(standin, 1)
        second_id, event, _ = two.next()
        two.respond(second_id, b'"two"')
        one.respond(first_id, b'"one"')

        assert json.loads(event) == {"n": 2}
        assert first.result(30) == (None, "one") and second.result(30) == (None, "two")


def test_a_per_tenant_function_gives_each_tenant_its_own_environments(
    pool: ThreadPoolExecutor,
) -> None:
    with LambdaStandIn(runtime="external", tenancy="per-tenant") as standin:
        first = invoke(pool, standin, {"n": 0}, TenantId="blue")
        blue = runtime_of(standin, 0)
        request_id, _, headers = blue.next()
        blue.respond(request_id, b"0")
        assert first.result(30) == (None, 0)
        blue_waits = pool.submit(blue.next)  # blue's environment is ready again...
        wait_until(lambda: standin.ready_environments() == 1, message="blue ready")

        second = invoke(pool, standin, {"n": 1}, TenantId="green")  # ...but not for green
        green = runtime_of(standin, 1)
        green_id, _, green_headers = green.next()
        green.respond(green_id, b"1")
        third = invoke(pool, standin, {"n": 2}, TenantId="blue")
        blue_id, event, blue_headers = blue_waits.result(30)
        blue.respond(blue_id, b"2")

        assert second.result(30) == (None, 1) and third.result(30) == (None, 2)
        assert json.loads(event) == {"n": 2}
        tenants = [
            h["Lambda-Runtime-Aws-Tenant-Id"] for h in (headers, green_headers, blue_headers)
        ]
        assert tenants == ["blue", "green", "blue"]
        assert [r.environment for r in standin.records] == [0, 1, 0]


@pytest.mark.parametrize(
    ("tenancy", "tenant", "message"),
    [
        ("per-tenant", None, "A tenant ID is required"),
        ("shared", "blue", "without tenant isolation"),
    ],
)
def test_a_tenant_id_is_required_exactly_by_a_per_tenant_function(
    tenancy: str, tenant: str | None, message: str
) -> None:
    with LambdaStandIn(runtime="external", tenancy=tenancy) as standin:
        extra = {"TenantId": tenant} if tenant else {}
        with pytest.raises(client(standin).exceptions.InvalidParameterValueException) as raised:
            client(standin).invoke(FunctionName=standin.function_name, Payload=b"{}", **extra)

        assert message in str(raised.value)
        assert standin.environments() == 0


@pytest.mark.parametrize(
    ("oom", "error_type"), [(False, "Runtime.ExitError"), (True, "Runtime.OutOfMemory")]
)
def test_a_killed_runtime_fails_the_invocation_as_lambda_reports_it(
    oom: bool, error_type: str
) -> None:
    with LambdaStandIn(timeout_s=10, max_concurrency=1) as standin:
        standin.kill_runtime(after_s=0.3, oom=oom)
        response = client(standin).invoke(
            FunctionName=standin.function_name,
            Payload=json.dumps(protocol.request_body(job("import time\ntime.sleep(5)"))),
            TenantId="anyone",
        )
        body = json.loads(response["Payload"].read())

        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == error_type
        assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
        assert standin.live_environments() == 0  # Lambda resets the environment


def test_the_function_timeout_resets_the_environment_and_the_re_init_counts(
    pool: ThreadPoolExecutor,
) -> None:
    with LambdaStandIn(runtime="external", timeout_s=1) as standin:
        stuck = invoke(pool, standin, {"n": 1})
        runtime_of(standin, 0).next()  # takes the event and never answers
        function_error, body = stuck.result(30)
        assert function_error == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
        assert body["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
        assert standin.environment(0).dead.is_set()

        # the reset environment's re-init is part of the next invocation: a runtime that
        # never gets ready times that invocation out too, within its own timeout
        never_ready = invoke(pool, standin, {"n": 2})
        function_error, body = never_ready.result(30)
        assert function_error == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
        assert [r.executed for r in standin.records] == [True, False]


def test_a_cold_start_init_is_not_counted_into_the_timeout(pool: ThreadPoolExecutor) -> None:
    with LambdaStandIn(runtime="external", timeout_s=1) as standin:
        answer = invoke(pool, standin, {"n": 1})
        runtime = runtime_of(standin, 0)
        time.sleep(1.5)  # an init longer than the function timeout (Lambda allows 10 s)
        request_id, _, headers = runtime.next()
        remaining_ms = int(headers["Lambda-Runtime-Deadline-Ms"]) - time.time() * 1000
        runtime.respond(request_id, b'"in time"')

        assert answer.result(30) == (None, "in time")
        assert remaining_ms > 0  # the invoke phase began when the event was handed out


def run_in_a_new_standin(code: str) -> tuple[Any, str]:
    """(the decoded answer, the environments' logs) of one job on a stand-in of its own."""
    with LambdaStandIn(timeout_s=10, max_concurrency=1) as standin:
        response = client(standin).invoke(
            FunctionName=standin.function_name,
            Payload=json.dumps(protocol.request_body(job(code))),
            TenantId="anyone",
        )
        return json.loads(response["Payload"].read()), standin.logs()


def test_the_user_namespace_path_a_non_root_run_takes_works_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As root the runtime drops to uid 993; without root (forced here) a user namespace maps
    993 to the caller, after a check that refuses to start, saying why, where it cannot."""
    monkeypatch.setenv("JOBBOT_STANDIN_USERNS", "1")
    code = "import os\nprint(os.getuid(), open('/proc/self/uid_map').read().split()[:1])\n"
    body, logs = run_in_a_new_standin(code)

    assert body["outcome"] == "ok", logs
    assert body["stdout"] == "993 ['993']\n"  # uid 993 inside, mapped, not the host's root


# Threads of the Lambda uid elsewhere on the host: another environment's runtime and its jobs.
HOLD_THREADS = """\
import os, sys, threading
if os.geteuid() == 0:
    os.setgroups([])
    os.setresgid(993, 993, 993)
    os.setresuid(993, 993, 993)
for _ in range(int(sys.argv[1])):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
print("holding", flush=True)
sys.stdin.read()
"""


def test_an_environment_counts_only_its_own_threads_against_the_uids_process_limit() -> None:
    """On Lambda the runtime's uid runs nothing outside its own microVM; here many environments
    share one host, so each must count RLIMIT_NPROC on its own (the sandbox sets a job's limit
    from the threads it sees in its own /proc). With 200 threads of the same uid held elsewhere
    on the host, a job still starts its 8 threads."""
    code = (
        "import threading\nthreads = [threading.Thread(target=print) for _ in range(8)]\n"
        "[t.start() for t in threads]\n[t.join() for t in threads]\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_THREADS, "200"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        try:
            body, logs = run_in_a_new_standin(code)
        finally:
            holder.communicate()  # closing stdin ends it

    assert body["outcome"] == "ok", (body, logs)
    assert body["stdout"] == "\n" * 8


# In a process whose own seccomp filter refuses unshare (as a machine without unprivileged user
# namespaces would), the stand-in's check must refuse, loudly.
NO_USER_NAMESPACES = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from bot.sandbox.inside import seccomp
unshare = {"x86_64": 272, "aarch64": 97}[os.uname().machine]
seccomp.install([
    (seccomp.LD_W_ABS, 0, 0, seccomp.OFFSET_NR),
    (seccomp.JEQ, 0, 1, unshare),
    (seccomp.RET_K, 0, 0, seccomp.RET_ERRNO | 1),
    (seccomp.RET_K, 0, 0, seccomp.RET_ALLOW),
])
from testbed.lambda_function import check_user_namespaces
try:
    check_user_namespaces()
except RuntimeError as exc:
    print(exc)
"""


def test_without_root_or_user_namespaces_the_stand_in_refuses_to_start() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", NO_USER_NAMESPACES, str(REPO)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip

    assert "needs root, or unprivileged user namespaces" in ran.stdout
    assert "Operation not permitted" in ran.stdout
