"""What every API request passes before a view reads anything: the body cap, the query
parameters its operation declares in the spec, the bearer token, and the rate of that token
(or, without a valid one, of the client's address)."""

from __future__ import annotations

from flask import Response, g, request

from bot.api.limits import ApiLimits, Buckets, Refusals, SharedRateLimit, retry_after
from bot.api.problems import problem
from bot.api.spec import spec_path
from bot.core.metrics import Metrics
from bot.core.models import Actor
from bot.core.service import JobService
from bot.core.tokens import TokenCheck

OPEN = {"api.spec"}  # endpoints anyone may read: no token, no body


class Gate:
    """The checks before every view of one API (a blueprint's before_request)."""

    def __init__(
        self,
        service: JobService,
        limits: ApiLimits,
        metrics: Metrics,
        buckets: Buckets,
        query: dict[tuple[str, str], frozenset[str]],
    ) -> None:
        self.service = service
        self.limits = limits
        self.metrics = metrics
        self.query = query  # the query parameters each operation declares (bot/api/spec.py)
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

    def __call__(self) -> Response | None:
        """Body cap, query parameters, token and rate; None lets the view run (as g.actor)."""
        request.max_content_length = self.limits.max_body
        size = request.content_length
        if request.endpoint not in OPEN and size is not None and size > self.limits.max_body:
            return problem(
                413,
                "too-large",
                "Too large",
                f"The request body is {size} bytes; the limit is {self.limits.max_body}.",
            )
        unknown = self._unknown_query()  # on every route, the spec's too: the API is strict
        if unknown is not None:
            return unknown
        if request.endpoint in OPEN:
            return None
        actor = self._authenticate()
        if isinstance(actor, Response):
            return actor
        g.actor = actor
        return None

    def _unknown_query(self) -> Response | None:
        """400 naming the first query parameter the route's operation does not declare in the
        spec (a parameter sent with no value, `?flag`, is one too)."""
        rule = request.url_rule
        path = spec_path(rule.rule) if rule is not None else request.path
        taken = self.query.get((path, request.method), frozenset())
        unknown = sorted(set(request.args) - taken)
        if not unknown:
            return None
        allowed = f"this route takes {', '.join(sorted(taken))}" if taken else "it takes none"
        return problem(
            400,
            "bad-request",
            "Bad request",
            f"Unknown query parameter {unknown[0][:40]!r}: {allowed}.",
        )

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
            check = self.service.tokens.check(presented.strip(), lookup=not blocked)
        if check.actor is None:
            return self._unauthorized(header, check, address, blocked)
        wait = self.rate.take(str(check.actor.user.id), check.digest)
        if wait is None:  # revoked, replaced or expired since it was remembered
            if check.digest is not None:
                self.service.tokens.forget(check.digest)
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
