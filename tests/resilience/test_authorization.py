"""Authorization on every surface: one matrix of surface x {owner, other, admin}, through the
real Bolt app on MariaDB and the Slack stand-in.

Alice owns a finished job whose input and output carry markers, and waiting jobs. Bob (any
other user) and an admin (JOBBOT_ADMINS) try every way jobbot shows or acts on a job:
`/job status`, `/job list`, `/job mine`, the App Home, `status` in a mention and in a DM,
cancel and re-run by slash command and by mention, the Re-run button in a thread and on the
Home tab (its value forged to Alice's job), and the HTTP API with each one's token. The
observed matrix must equal the intended one, and nothing that reached Bob ever carries
Alice's input or output.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from bot.core.models import Job, JobStatus, RunRequest, RunResult
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.slack_standin import SlackStandIn, iter_blocks_text, message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack, running_stack, standin
from tests.support.fake_jobs import scripted
from tests.support.fakes import FakeExecutor

__all__ = ["standin"]  # the Slack stand-in fixture of the Bolt-level suite
OUTPUT = "987654321"  # Alice's job's result: the sum of its input's numbers
INPUT = "ALICE-PRIVATE-INPUT"
ACTORS = {"owner": sr.ALICE, "other": sr.BOB, "admin": sr.ADMIN}
CODE = "def main(**kw):\n    return kw\n"


@dataclass
class Authz:
    """The stack, a gate that holds Alice's blocker job, and what everyone was sent."""

    stack: Stack
    gate: threading.Event
    acks: dict[str, list[str]]

    def dispatch(self, user: str, request: sr.SlackRequest) -> str:
        response = self.stack.dispatch(request)
        assert response.status == 200, response.body
        text = message_text(json.loads(response.body)) if response.body else ""
        self.acks.setdefault(user, []).append(text)
        return text

    def slash(self, user: str, text: str) -> str:
        hook = self.stack.standin.response_url(user)
        return self.dispatch(user, sr.slash(text, user=user, response_url=hook))

    def later(self, user: str, send: Callable[[], None]) -> str:
        """Send a request whose answer comes later (ephemeral, DM, response_url, Home tab)."""
        before = len(self.sent_to(user))
        send()
        found = wait_until(lambda: self.sent_to(user)[before:], message=f"an answer to {user}")
        return "\n".join(found)

    def sent_to(self, user: str) -> list[str]:
        """Every text Slack would show to `user` alone, oldest first."""
        texts = []
        for call in self.stack.standin.calls():
            body = call.body
            mine = (
                (call.api == "response_url" and f"/webhook/{user}/" in call.path)
                or (call.api == "chat.postEphemeral" and body.get("user") == user)
                or (call.api == "chat.postMessage" and body.get("channel") == "D" + user)
                or (call.api == "views.publish" and body.get("user_id") == user)
            )
            if mine:
                view = body.get("view")
                view = json.loads(view) if isinstance(view, str) else view
                blocks = view.get("blocks") if isinstance(view, dict) else body.get("blocks")
                texts.append("\n".join([str(body.get("text") or ""), *iter_blocks_text(blocks)]))
        return texts


@pytest.fixture
def authz(standin: SlackStandIn, mariadb_store: SqlStore) -> Iterator[Authz]:
    """The Slack app on MariaDB with one running job per user at most; Alice's jobs whose
    code says `# hold` wait for the gate."""
    gate = threading.Event()

    def behaviour(request: RunRequest) -> RunResult:
        if "# hold" in request.code:
            gate.wait(30)
        return scripted(request)

    executor = FakeExecutor(behaviour)
    with running_stack(standin, mariadb_store, executor, JOBBOT_MAX_JOBS_PER_USER="1") as stack:
        try:
            yield Authz(stack, gate, {})
        finally:
            gate.set()  # before the stack stops: its held jobs may finish


def alices_jobs(authz: Authz) -> tuple[Job, list[Job]]:
    """Alice's finished job (markers in its input and output) and four waiting ones."""
    stack = authz.stack

    def run(name: str, code: str, input_json: str) -> Job:
        file = stack.standin.add_file(name, code)
        stack.dispatch(sr.event(sr.file_message("here", [file])))
        wait_until(lambda: stack.wait_upload().file_id == file["id"], message="the upload")
        before = len(stack.jobs())
        authz.slash(sr.ALICE, f"run {input_json}")
        return stack.wait_jobs(before + 1)[0]

    done = run("report.py", CODE, json.dumps({"secret": INPUT, "n": int(OUTPUT)}))
    done = stack.wait_final(done.id)
    assert done.status is JobStatus.DONE and done.result == int(OUTPUT)
    blocker = run("hold.py", "# hold\n" + CODE, "{}")
    wait_until(lambda: stack.job(blocker.id).status is JobStatus.RUNNING, message="running")
    waiting = [run(f"w{n}.py", CODE, "{}") for n in range(4)]  # one running job per user
    assert [stack.job(j.id).status for j in waiting] == [JobStatus.WAITING] * 4
    return done, waiting


def seen_as(text: str, job: Job) -> str:
    """full: its output shown; status: the job shown without it; absent: not shown."""
    if OUTPUT in text:
        return "full"
    return "status" if f"#{job.id}" in text else "absent"


def acted(authz: Authz, before: set[int], actor: str, check: Callable[[], bool]) -> str:
    """done when the action took effect; refused when it did not and the actor was told."""
    if check():
        return "done"
    told = authz.sent_to(actor)[-1:] + authz.acks.get(actor, [])[-1:]
    assert any("not yours" in text for text in told), told
    assert {j.id for j in authz.stack.jobs()} == before  # nothing new was stored
    return "refused"


def test_every_surface_shows_and_acts_only_for_the_owner_and_admins(authz: Authz) -> None:
    stack = authz.stack
    done, waiting = alices_jobs(authz)
    matrix: dict[tuple[str, str], str] = {}

    for role, user in ACTORS.items():
        matrix["/job status", role] = seen_as(authz.slash(user, f"status {done.id}"), done)
        matrix["/job list", role] = seen_as(authz.slash(user, "list"), done)
        matrix["/job mine", role] = seen_as(authz.slash(user, "mine"), done)
        home = authz.later(user, lambda u=user: stack.dispatch(sr.event(sr.home_opened(u))))
        matrix["App Home", role] = seen_as(home, done)
        mention = authz.later(
            user,
            lambda u=user: stack.dispatch(
                sr.event(sr.mention(f"<@U0BOT> status {done.id}", user=u))
            ),
        )
        matrix["mention: status", role] = seen_as(mention, done)
        dm = authz.later(
            user,
            lambda u=user: stack.dispatch(
                sr.event(sr.dm_text(f"status {done.id}", user=u, channel="D" + u))
            ),
        )
        matrix["DM: status", role] = seen_as(dm, done)

    # acting: Bob first (his attempts must change nothing), then the owner, then an admin
    for role, index in [("other", 0), ("owner", 0), ("admin", 1)]:
        user, target = ACTORS[role], waiting[index]
        before = {j.id for j in stack.jobs()}
        authz.slash(user, f"cancel {target.id}")
        matrix["/job cancel", role] = acted(
            authz, before, user, lambda t=target: stack.job(t.id).status is JobStatus.CANCELLED
        )
    for role, index in [("other", 2), ("owner", 2), ("admin", 3)]:
        user, target = ACTORS[role], waiting[index]
        before = {j.id for j in stack.jobs()}
        authz.later(
            user,
            lambda u=user, t=target: stack.dispatch(
                sr.event(sr.mention(f"<@U0BOT> cancel {t.id}", user=u))
            ),
        )
        matrix["mention: cancel", role] = acted(
            authz, before, user, lambda t=target: stack.job(t.id).status is JobStatus.CANCELLED
        )

    def reruns_by(user: str) -> list[Job]:
        return [j for j in stack.jobs() if j.rerun_of == done.id and j.owner.external_id == user]

    rerun_ways: dict[str, Callable[[str], object]] = {
        "/job rerun": lambda u: authz.slash(u, f"rerun {done.id}"),
        "mention: rerun": lambda u: stack.dispatch(
            sr.event(sr.mention(f"<@U0BOT> rerun {done.id}", user=u))
        ),
        "thread Re-run button": lambda u: stack.dispatch(
            sr.interactive(
                sr.rerun_click(str(done.id), user=u, response_url=stack.standin.response_url(u))
            )
        ),
        "Home Re-run button": lambda u: stack.dispatch(
            sr.interactive(sr.rerun_click(str(done.id), user=u, home=True))
        ),
    }
    for surface, send in rerun_ways.items():
        for role in ("other", "owner", "admin"):
            user = ACTORS[role]
            before = {j.id for j in stack.jobs()}
            count, told = len(reruns_by(user)), len(authz.sent_to(user))
            send(user)
            if role != "other":
                wait_until(lambda u=user, c=count: len(reruns_by(u)) > c, message="a re-run")
            elif surface != "/job rerun":  # the refusal comes after the ack
                wait_until(lambda t=told: len(authz.sent_to(sr.BOB)) > t, message="a refusal")
            matrix[surface, role] = acted(
                authz, before, user, lambda u=user, c=count: len(reruns_by(u)) > c
            )

    expected = {}
    for surface, other in [
        ("/job status", "status"), ("/job list", "status"), ("/job mine", "absent"),
        ("App Home", "absent"), ("mention: status", "status"), ("DM: status", "status"),
    ]:  # fmt: skip
        own_only = surface in {"/job mine", "App Home"}  # each person's own jobs
        expected.update({
            (surface, "owner"): "full",
            (surface, "other"): other,
            (surface, "admin"): "absent" if own_only else "full",
        })  # fmt: skip
    for surface in ["/job cancel", "mention: cancel", *rerun_ways]:
        expected.update({(surface, "owner"): "done", (surface, "other"): "refused",
                         (surface, "admin"): "done"})  # fmt: skip
    assert matrix == expected

    # whatever reached Bob: never Alice's input or output
    for text in authz.sent_to(sr.BOB) + authz.acks[sr.BOB]:
        assert OUTPUT not in text and INPUT not in text, text
    assert [j.owner.external_id for j in stack.jobs() if j.rerun_of == done.id].count(sr.BOB) == 0
    assert {stack.job(j.id).status for j in waiting} == {JobStatus.CANCELLED}


def test_the_http_api_shows_and_acts_only_for_the_owner_and_admins(authz: Authz) -> None:
    """The same matrix through the HTTP API (real HTTP, waitress, the same runtime), each
    person with their own token: fields Bob may not see are absent, and nothing he is sent
    carries Alice's input or output."""
    from bot.api.spec import owns
    from bot.app.server import HttpServer, Mount, build_web_app
    from bot.app.wiring.surfaces import build_api
    from bot.core.models import Identity

    stack, runtime = authz.stack, authz.stack.runtime
    done, waiting = alices_jobs(authz)
    api = build_api(stack.settings, runtime)
    web = build_web_app(
        runtime.store.ping, runtime.metrics, [Mount(api.blueprint, owns, api.error)]
    )
    server = HttpServer(web, 0, 4, host="127.0.0.1")
    service = runtime.service
    actors = {role: service.actor(Identity("slack", sr.TEAM, u)) for role, u in ACTORS.items()}
    tokens = {role: service.tokens.mint(actor) for role, actor in actors.items()}
    sent_to_bob: list[str] = []

    def call(role: str, method: str, path: str) -> tuple[int, str]:
        answer = requests.request(
            method,
            f"http://127.0.0.1:{server.port}{path}",
            headers={"Authorization": f"Bearer {tokens[role]}"},
            timeout=30,
        )
        if role == "other":
            sent_to_bob.append(answer.text)
        return answer.status_code, answer.text

    def shown(role: str, path: str) -> str:
        status, text = call(role, "GET", path)
        assert status == 200, text
        if OUTPUT in text:
            return "full"
        return "status" if f'"id": {done.id},' in text else "absent"

    matrix: dict[tuple[str, str], str] = {}
    try:
        alice = actors["owner"].user.id
        for role in ACTORS:
            matrix["GET /api/jobs/N", role] = shown(role, f"/api/jobs/{done.id}")
            matrix["GET /api/jobs", role] = shown(role, "/api/jobs")
            matrix["GET /api/users/ALICE/jobs", role] = shown(role, f"/api/users/{alice}/jobs")
            matrix["GET /jobs/N (original)", role] = shown(role, f"/jobs/{done.id}")
        for role, index in [("other", 0), ("owner", 0), ("admin", 1)]:
            before = {j.id for j in stack.jobs()}
            status, text = call(role, "POST", f"/api/jobs/{waiting[index].id}/cancel")
            cancelled = stack.job(waiting[index].id).status is JobStatus.CANCELLED
            matrix["POST cancel", role] = "done" if status == 200 and cancelled else "refused"
            if status != 200:
                assert status == 403 and "not yours" in text
                assert {j.id for j in stack.jobs()} == before
        for role in ("other", "owner", "admin"):
            before = {j.id for j in stack.jobs()}
            status, text = call(role, "POST", f"/api/jobs/{done.id}/rerun")
            matrix["POST rerun", role] = "done" if status == 201 else "refused"
            if status != 201:
                assert status == 403 and "not yours" in text
                assert {j.id for j in stack.jobs()} == before
    finally:
        server.close()
    expected = {}
    for surface in ["GET /api/jobs/N", "GET /api/jobs", "GET /api/users/ALICE/jobs",
                    "GET /jobs/N (original)"]:  # fmt: skip
        expected.update({(surface, "owner"): "full", (surface, "other"): "status",
                         (surface, "admin"): "full"})  # fmt: skip
    for surface in ["POST cancel", "POST rerun"]:
        expected.update({(surface, "owner"): "done", (surface, "other"): "refused",
                         (surface, "admin"): "done"})  # fmt: skip
    assert matrix == expected
    for text in sent_to_bob:
        assert OUTPUT not in text and INPUT not in text, text
        assert '"input"' not in text and '"result"' not in text  # absent, not null
