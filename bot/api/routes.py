"""The API's routes as a Flask blueprint: /api/... and the original orchestrator's paths (/,
/jobs/, /jobs/<id>, /users/<id>) with the same bodies and JSON. Every route but the spec
needs a bearer token; each calls the job service and renders what it answers."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from bot.api.jobjson import job_json
from bot.api.limits import Buckets, Refusals, SharedRateLimit, WaitSlots, retry_after
from bot.api.problems import problem, user_problem
from bot.api.submission import BadSubmission, read_submission
from bot.core.commands import MAX_LISTED, parse_job_id
from bot.core.datafiles import media_type
from bot.core.metrics import Metrics
from bot.core.models import Actor, Job
from bot.core.service import PAGE_SIZE, JobService, JobView
from bot.core.tokens import TokenCheck
from bot.errors import StoreError, UsageError, UserError

log = logging.getLogger(__name__)
PREFIX = "/api"
MAX_PAGE = 100000
WAIT_MARGIN_S = 5.0  # ?wait= may exceed the job timeout by this much (queueing, start-up)
BODY_OVERHEAD = 64 << 10  # JSON escapes and multipart boundaries around the code and input
QUERY = {"list": {"page"}, "job": {"wait"}, "user_jobs": {"limit"}}  # by route; others none
UNAVAILABLE = (
    "jobbot is temporarily unavailable (database unreachable). Nothing was saved; try again."
)


@dataclass(frozen=True)
class ApiLimits:
    """What the API accepts and how it paces its callers (from the settings)."""

    max_code_bytes: int
    max_input_bytes: int
    max_files_in_bytes: int
    job_timeout_s: float
    poll_s: float
    rate_per_minute: int
    burst: int
    wait_slots: int  # requests waiting for a job at once, in all
    waits_per_token: int = 4
    unauthorized_per_minute: int = 30  # requests without a valid token, per client address
    unauthorized_burst: int = 10

    @property
    def max_body(self) -> int:
        """The largest request body read: twice the code and input (JSON escapes), the data
        files, and room for the envelope. A bigger one is refused before it is read."""
        code_and_input = 2 * (self.max_code_bytes + self.max_input_bytes)
        return code_and_input + self.max_files_in_bytes + BODY_OVERHEAD

    @property
    def max_wait_s(self) -> float:
        """The longest ?wait= taken."""
        return self.job_timeout_s + WAIT_MARGIN_S


def owns(path: str) -> bool:
    """Whether a path is the API's (its errors are answered as problems)."""
    return path in {"/", PREFIX} or path.startswith((PREFIX + "/", "/jobs", "/users/"))


def spec_text() -> str:
    """The OpenAPI document kept beside this module."""
    return resources.files("bot.api").joinpath("openapi.json").read_text(encoding="utf-8")


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
        # Buckets are named with their limits: a changed setting starts afresh (every serve
        # process should have the same settings, or each counts apart).
        per_token, per_address = limits.rate_per_minute, limits.unauthorized_per_minute
        self.rate = SharedRateLimit(
            buckets, f"api:user:{per_token}/{limits.burst}:", per_token, limits.burst
        )
        self.unauthorized = SharedRateLimit(
            buckets,
            f"api:addr:{per_address}/{limits.unauthorized_burst}:",
            per_address,
            limits.unauthorized_burst,
        )
        self.refused = Refusals()
        self.waits = WaitSlots(limits.wait_slots, limits.waits_per_token)
        self._spec = spec_text()
        bp = self.blueprint = Blueprint("api", __name__)
        bp.before_request(self._before)
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

    # --- around every request ---------------------------------------------------------

    def _before(self) -> Response | None:
        """Body cap, token and rate, before a view reads anything."""
        request.max_content_length = self.limits.max_body
        if request.endpoint == "api.spec":
            return None
        size = request.content_length
        if size is not None and size > self.limits.max_body:
            return problem(
                413,
                "too-large",
                "Too large",
                f"The request body is {size} bytes; the limit is {self.limits.max_body}.",
            )
        taken = QUERY.get((request.endpoint or "").removeprefix("api.").removeprefix("original_"))
        unknown = sorted(set(request.args) - (taken or set()))
        if unknown:
            allowed = f"this route takes {', '.join(sorted(taken))}" if taken else "it takes none"
            return problem(
                400,
                "bad-request",
                "Bad request",
                f"Unknown query parameter {unknown[0][:40]!r}: {allowed}.",
            )
        actor = self._authenticate()
        if isinstance(actor, Response):
            return actor
        g.actor = actor
        return None

    def _authenticate(self) -> Actor | Response:
        """The caller, once their token stands and their request is within its rate; else
        the answer: 401, or 429 for a token over its rate or an address that sent too many
        requests without a valid token (token guessing is throttled)."""
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        address = request.remote_addr or "unknown"  # behind proxies: JOBBOT_TRUSTED_PROXIES
        blocked = self.refused.left(address)
        check = TokenCheck(None)
        if header and scheme.lower() == "bearer":
            # From an address over its limit only a token this process remembers is taken.
            check = self.service.check_token(presented.strip(), lookup=not blocked)
        if check.actor is None:
            return self._unauthorized(header, check, address, blocked)
        wait = self.rate.take(str(check.actor.user.id), check.digest)
        if wait is None:  # revoked, replaced or expired since it was remembered
            if check.digest is not None:
                self.service.forget_token(check.digest)
            return self._unauthorized(header, TokenCheck(None, check.digest), address, blocked)
        if wait:
            self.metrics.inc(
                "jobbot_api_rate_limited_total", "API requests refused by a token's rate limit."
            )
            return problem(
                429,
                "rate-limited",
                "Too many requests",
                f"This token may make {self.limits.rate_per_minute} requests a minute; "
                f"try again in {retry_after(wait)} s.",
                headers={"Retry-After": retry_after(wait)},
            )
        return check.actor

    def _unauthorized(
        self, header: str, check: TokenCheck, address: str, blocked: float
    ) -> Response:
        """401 for a request without a valid token, unless its address has sent too many of
        those: then 429 with Retry-After."""
        wait = blocked or self.unauthorized.take(address) or 0.0
        if wait:
            self.refused.refuse(address, wait)
            self.metrics.inc(
                "jobbot_api_unauthorized_limited_total",
                "API requests without a valid token refused by their address's rate limit.",
            )
            return problem(
                429,
                "rate-limited",
                "Too many requests",
                f"This address may make {self.limits.unauthorized_per_minute} requests a "
                f"minute without a valid token; try again in {retry_after(wait)} s.",
                headers={"Retry-After": retry_after(wait)},
            )
        how = "Get one with `/job token` in Slack or `python -m bot token create`."
        if not header:
            return problem(
                401,
                "unauthorized",
                "Unauthorized",
                f"This API needs a token: send the header Authorization: Bearer TOKEN. {how}",
                headers={"WWW-Authenticate": 'Bearer realm="jobbot"'},
            )
        invalid = 'Bearer realm="jobbot", error="invalid_token"'
        if check.expired_at is not None:
            return problem(
                401,
                "token-expired",
                "Token expired",
                f"That token expired at {check.expired_at.isoformat(timespec='seconds')}. "
                f"Get a new one with `/job token` in Slack or `python -m bot token create`.",
                headers={"WWW-Authenticate": f'{invalid}, error_description="expired"'},
            )
        return problem(
            401,
            "unauthorized",
            "Unauthorized",
            f"That token is not valid: it was revoked, replaced or mistyped. {how}",
            headers={"WWW-Authenticate": invalid},
        )

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
        return problem(503, "unavailable", "Unavailable", UNAVAILABLE, {"Retry-After": "5"})

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
        page = self._number("page", 1, MAX_PAGE, 1)
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
        owner = self._id(user_id, "user")
        limit = self._number("limit", 1, MAX_LISTED, 10)
        return _json({"user_id": owner, "jobs": self._rows(self.service.jobs_of(owner, limit))})

    def job(self, job_id: str) -> Response:
        """One job; with ?wait=S, once it is final (or after S seconds)."""
        number = parse_job_id(job_id, "status")
        wait = self._seconds("wait", self.limits.max_wait_s)
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
        key = self._idempotency_key(actor)
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
            idempotency_key=self._idempotency_key(actor),
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

    @staticmethod
    def _idempotency_key(actor: Actor) -> str | None:
        """The caller's Idempotency-Key, kept apart from every other user's."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not (1 <= len(key) <= 100 and key.isascii() and key.isprintable()):
            raise UsageError(
                "The Idempotency-Key header must be 1 to 100 printable ASCII characters."
            )
        return f"api:{actor.user.id}:{key}"

    @staticmethod
    def _number(name: str, low: int, high: int, default: int) -> int:
        text = request.args.get(name)
        if text is None:
            return default
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and low <= int(text) <= high):
            raise UsageError(
                f"{name} must be a whole number from {low} to {high}, like {name}={low}."
            )
        return int(text)

    @staticmethod
    def _seconds(name: str, high: float) -> float:
        text = request.args.get(name)
        if text is None:
            return 0.0
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value >= 0:  # NaN fails too
            raise UsageError(f"{name} must be a number of seconds, like {name}=10.")
        return min(value, high)  # a longer wait is cut to the longest a job can take

    @staticmethod
    def _id(text: str, what: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 18 and int(text) > 0):
            raise UsageError(f"`{text[:40]}` is not a {what} id: ids are positive whole numbers.")
        return int(text)
