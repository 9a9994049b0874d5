"""The API's routes as a Flask blueprint: /api/... and the original orchestrator's paths (/,
/jobs/, /jobs/<id>, /users/<id>) with the same bodies and JSON. Every route passes the gate
(bot/api/gate.py) first; each view calls the job service and renders what it answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from bot.api import params
from bot.api.gate import Gate
from bot.api.jobjson import job_json
from bot.api.limits import ApiLimits, Buckets, WaitSlots
from bot.api.problems import problem, user_problem
from bot.api.spec import PREFIX, declared_query, spec_text
from bot.api.submission import BadSubmission, read_submission
from bot.core.commands import MAX_LISTED, parse_job_id
from bot.core.datafiles import media_type
from bot.core.metrics import Metrics
from bot.core.models import Actor, Job
from bot.core.service import PAGE_SIZE, JobService, JobView
from bot.errors import StoreError, StoreOutcomeUnknown, UserError

log = logging.getLogger(__name__)
MAX_PAGE = 100000
UNAVAILABLE = (
    "jobbot is temporarily unavailable (database unreachable). Nothing was saved; try again."
)
MAYBE_SAVED = (
    "jobbot's database stopped answering after the request reached it, so it may have been "
    "saved. Send it again with the same Idempotency-Key to find out safely (the job it made, "
    "if any, is answered), or list your jobs."
)


def _json(data: Any, status: int = 200, location: str | None = None) -> Response:
    answer = Response(
        json.dumps(data, ensure_ascii=False), status=status, content_type="application/json"
    )
    if location is not None:
        answer.headers["Location"] = location
    return answer


class JobsApi:
    """The blueprint of the API on one job service."""

    def __init__(
        self, service: JobService, limits: ApiLimits, metrics: Metrics, buckets: Buckets
    ) -> None:
        self.service = service
        self.limits = limits
        self.metrics = metrics
        self.waits = WaitSlots(limits.wait_slots, limits.waits_per_token)
        self._spec = spec_text()
        self.gate = Gate(service, limits, metrics, buckets, declared_query(json.loads(self._spec)))
        bp = self.blueprint = Blueprint("api", __name__)
        bp.before_request(self.gate)
        bp.after_request(self._after)
        bp.register_error_handler(UserError, self._user_error)
        bp.register_error_handler(StoreError, self._store_error)
        bp.register_error_handler(HTTPException, self.error)

        def route(rule: str, name: str, view: Callable[..., Response], method: str) -> None:
            bp.add_url_rule(rule, name, view, methods=[method], provide_automatic_options=False)

        route(PREFIX + "/openapi.json", "spec", self.spec, "GET")
        for prefix, tag in ((PREFIX, ""), ("", "original_")):
            # the original's listing is / and its user route /users/<id>; ours sit under /api
            route(prefix + "/jobs" if prefix else "/", tag + "list", self.list_jobs, "GET")
            route(prefix + "/jobs" if prefix else "/jobs/", tag + "submit", self.submit, "POST")
            route(prefix + "/jobs/<job_id>", tag + "job", self.job, "GET")
            route(
                prefix + "/users/<user_id>/jobs" if prefix else "/users/<user_id>",
                tag + "user_jobs",
                self.user_jobs,
                "GET",
            )
        route(PREFIX + "/jobs/<job_id>/cancel", "cancel", self.cancel, "POST")
        route(PREFIX + "/jobs/<job_id>/rerun", "rerun", self.rerun, "POST")
        route(PREFIX + "/jobs/<job_id>/files/<name>", "file", self.file, "GET")

    # --- around every view ------------------------------------------------------------

    def _after(self, answer: Response) -> Response:
        self.metrics.inc(
            "jobbot_api_requests_total",
            "API requests answered, by route and status.",
            route=(request.endpoint or "none").removeprefix("api."),
            status=str(answer.status_code),
        )
        return answer

    def _user_error(self, exc: UserError) -> Response:
        actor = g.get("actor")
        return user_problem(exc, actor.user.id if actor is not None else None)

    def _store_error(self, exc: StoreError) -> Response:
        log.warning("api request failed: database", extra={"error": exc.message})
        said = MAYBE_SAVED if isinstance(exc, StoreOutcomeUnknown) else UNAVAILABLE
        return problem(503, "unavailable", "Unavailable", said, {"Retry-After": "5"})

    def error(self, exc: HTTPException) -> Response:
        """An HTTP error under the API's paths (no such route, wrong method, too large, a
        crash) as a problem."""
        status = exc.code or 500
        if status == 500:
            detail = (
                "Something went wrong on jobbot's side. Try again (a POST with an "
                "Idempotency-Key is safe to send again)."
            )
        elif status == 413:
            detail = f"The request body is over the limit of {self.limits.max_body} bytes."
        elif status == 404:
            detail = f"There is no {request.path}: the routes are listed at /api/openapi.json."
        else:
            detail = exc.description or exc.name
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        kind = (exc.name or "error").lower().replace(" ", "-")
        return problem(status, kind, exc.name or "Error", detail, headers)

    # --- the routes -------------------------------------------------------------------

    def spec(self) -> Response:
        """The OpenAPI document."""
        return Response(self._spec, content_type="application/json")

    def list_jobs(self) -> Response:
        """Everyone's jobs, a page at a time, with output only where the caller may see it."""
        page = params.number("page", 1, MAX_PAGE, 1)
        jobs = self.service.list_page(page)
        more = len(jobs) == PAGE_SIZE
        base = request.path
        return _json(
            {
                "page": page,
                "jobs": self._rows(jobs),
                "next": f"{base}?page={page + 1}" if more else None,
            }
        )

    def user_jobs(self, user_id: str) -> Response:
        """One user's latest jobs, as `/job mine` shows them to their owner."""
        owner = params.identifier(user_id, "user")
        limit = params.number("limit", 1, MAX_LISTED, 10)
        return _json({"user_id": owner, "jobs": self._rows(self.service.jobs_of(owner, limit))})

    def job(self, job_id: str) -> Response:
        """One job; with ?wait=S, once it is final (or after S seconds)."""
        number = parse_job_id(job_id, "status")
        wait = params.seconds("wait", self.limits.max_wait_s)
        actor = g.actor
        if not wait:
            return _json(job_json(*self.service.view_with_files(actor, number)))
        with self.waits.hold(actor.user.id) as refused:
            if refused is not None:
                detail = (
                    f"This token already has {self.limits.waits_per_token} requests waiting"
                    if refused == "key"
                    else "Too many requests are waiting for jobs on this server"
                )
                return problem(
                    429 if refused == "key" else 503,
                    "too-many-waits",
                    "Too many waits",
                    f"{detail}; try again in a second, or ask without wait.",
                    headers={"Retry-After": "1"},
                )
            view, files = self.service.wait(actor, number, wait, self.limits.poll_s)
        return _json(job_json(view, files))

    def submit(self) -> Response:
        """A new job from JSON or a multipart form: 201 and its Location."""
        try:
            sent = read_submission(request)
        except BadSubmission as exc:
            return problem(exc.status, exc.kind, "Bad request", exc.message, **exc.extra)
        actor = g.actor
        key = params.idempotency_key(actor)
        job, created = self.service.submit(
            actor,
            sent.name,
            sent.code,
            sent.input_text,
            origin={"kind": "api"},
            idempotency_key=key,
            files=sent.files,
        )
        return self._accepted(actor, job, created, has_files=bool(sent.files))

    def cancel(self, job_id: str) -> Response:
        """Cancel a job of the caller's (any, for an admin): 200 when it is cancelled at once
        (it was waiting), 202 when a stop of its run was asked for (it ends `cancelled`)."""
        job = self.service.cancel(g.actor, parse_job_id(job_id, "cancel"))
        view = JobView(job, full=True)
        return _json(self._render(view), 200 if job.status.is_final else 202)

    def rerun(self, job_id: str) -> Response:
        """The job's code and input again, as a new job of the caller's."""
        actor = g.actor
        job, created = self.service.rerun(
            actor,
            parse_job_id(job_id, "rerun"),
            origin={"kind": "api"},
            idempotency_key=params.idempotency_key(actor),
        )
        return self._accepted(actor, job, created)

    def file(self, job_id: str, name: str) -> Response:
        """A file the job wrote (under out/, or a figure it left open), as an attachment."""
        found = self.service.file(g.actor, parse_job_id(job_id, "status"), name)
        answer = Response(found.data, content_type=media_type(found.name))
        # The job chose these bytes: never let a browser render them as this origin's page.
        answer.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(found.name, safe='')}"
        )
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Content-Security-Policy"] = "sandbox"
        return answer

    # --- helpers ----------------------------------------------------------------------

    def _accepted(self, actor: Actor, job: Job, created: bool, has_files: bool = True) -> Response:
        """201 for a job just created (200 for one an Idempotency-Key found again). A job this
        request created from no data files has no files to list yet: it has not run."""
        base = PREFIX + "/jobs" if request.path.startswith(PREFIX + "/") else "/jobs"
        view = JobView(job, full=self.service.may_manage(actor, job))
        body = job_json(view) if created and not has_files else self._render(view)
        return _json(body, 201 if created else 200, location=f"{base}/{job.id}")

    def _rows(self, jobs: list[Job]) -> list[dict[str, Any]]:
        return [self._render(view) for view in self.service.views(g.actor, jobs)]

    def _render(self, view: JobView) -> dict[str, Any]:
        return job_json(view, self.service.listed_files(view))
