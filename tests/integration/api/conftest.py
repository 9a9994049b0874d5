"""The API as `serve` runs it: the real Flask app on waitress in a Process of its own wiring,
on MariaDB and on SQLite, reached over real HTTP; tokens minted by the job service."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.app.environment import load_settings
from bot.app.wiring.process import Process
from bot.core.models import Actor, Identity
from testbed.serve_process import free_port
from tests.conftest import clean_mariadb

ADMIN = "api-admin"
ADD = "print(a + b)\n"
_names = itertools.count(1)


@dataclass
class Caller:
    """Someone with a token: their actor, and requests carrying their token."""

    api: Api
    actor: Actor
    token: str

    @property
    def user_id(self) -> int:
        """The caller's user id."""
        return self.actor.user.id

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request with this caller's token."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.api.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET with the token."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST with the token."""
        return self.request("POST", path, **kwargs)

    def submit(self, code: str = ADD, input: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/jobs as JSON; the created job."""
        answer = self.post("/api/jobs", json={"code": code, "input": input or {"a": 5, "b": 3}})
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body


@dataclass
class Api:
    """A running server."""

    process: Process
    base: str

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request, no token unless given."""
        return requests.request(method, self.base + path, timeout=60, **kwargs)

    def caller(self, name: str | None = None) -> Caller:
        """A new user (or a named one) with a fresh token."""
        service = self.process.runtime.service
        who = name or f"user{next(_names)}"
        actor = service.actor(Identity("local", "api-test", who))
        return Caller(self, actor, service.tokens.mint(actor))

    def admin(self) -> Caller:
        """An admin with a fresh token."""
        return self.caller(ADMIN)

    def job_count(self) -> int:
        """How many jobs the database holds."""
        return sum(self.process.runtime.store.count_by_status().values())


def start_api(url: str, workdir: Path, *, workers: bool, **settings: str) -> Api:
    """serve's Process with its HTTP door (no Slack) on `url`."""
    port = free_port()
    values = {
        "DATABASE_URL": url,
        "PORT": str(port),
        "JOBBOT_ADMINS": ADMIN,
        "JOBBOT_POLL_INTERVAL": "0.05",
        "JOBBOT_JOB_TIMEOUT": "5",
        "JOBBOT_WORKERS": "2",
        "JOBBOT_API_RATE": "100000",
        "JOBBOT_API_BURST": "10000",
        "JOBBOT_API_UNAUTHORIZED_RATE": "100000",
        "JOBBOT_API_UNAUTHORIZED_BURST": "10000",
        **settings,
    }
    process = Process(load_settings(values, env_file=None), http=True, workers=workers)
    process.start()
    assert process.http is not None
    return Api(process, f"http://127.0.0.1:{process.http.port}")


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database URL of the module's servers, emptied once."""
    if request.param == "mariadb":
        url: str = request.getfixturevalue("_mariadb_schema")
        clean_mariadb(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('api') / 'jobbot.db'}"


@pytest.fixture(scope="module")
def api(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server that queues jobs but runs none (they stay waiting)."""
    served = start_api(backend, tmp_path_factory.mktemp("idle"), workers=False)
    yield served
    served.process.stop(grace_s=5)


@pytest.fixture(scope="module")
def running(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server whose workers run jobs in the local sandbox."""
    served = start_api(backend, tmp_path_factory.mktemp("run"), workers=True)
    yield served
    served.process.stop(grace_s=10)
