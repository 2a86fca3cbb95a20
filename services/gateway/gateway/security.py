"""Authentication and rate limits at the edge.

A guard in the edge middleware runs before routing for every request: it verifies the bearer
token if one is sent (keeping the result with the request), charges the request to the user, or
to the client address when anonymous, and puts the `RateLimit-*` headers on the answer. The
operator's probes (`/healthz`, `/readyz`, `/metrics`), which supervisors and scrapers poll, are
never charged nor refused, and verify no token; their headers say where the client address stands.
Routes then say what they need with `Depends(require_user)` or `Depends(require_admin)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from chassis import auth
from chassis.grpc import set_request_context
from chassis.http import Admission, Problem, problem_response
from gateway.ratelimit import RateLimiter, Verdict

Scope = MutableMapping[str, Any]

_UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": "Bearer"}
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class EdgeGuard:
    """The chassis edge's guard (`create_app(guard=...)`): it runs inside the request's span, so
    a refusal carries the request id and trace context, and the request id reaches the next hops."""

    def __init__(self, *, verifier: auth.TokenVerifier, limiter: RateLimiter, per_minute: int):
        self.verifier = verifier
        self.limiter = limiter
        self.per_minute = per_minute

    async def __call__(self, scope: Scope) -> Admission:
        client = scope.get("client") or ("unknown", 0)
        if scope["path"] in PROBES:  # no token is verified: a probe must not wait on identity
            return _headers(self.limiter.peek("api", f"addr:{client[0]}", self.per_minute)), None
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
        principal: auth.Principal | None = None
        token_error: str | None = None
        keys_unavailable: auth.KeysUnavailable | None = None
        if authorization is not None:
            try:
                principal = await auth.principal_from_metadata({"authorization": authorization}, self.verifier)
            except auth.Unauthenticated as error:
                token_error = str(error)
            except auth.KeysUnavailable as error:
                keys_unavailable = error
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["token_error"] = token_error
        state["keys_unavailable"] = keys_unavailable
        set_request_context(
            request_id=state.get("request_id"), authorization=authorization if principal else None
        )

        who = f"user:{principal.user_id}" if principal else f"addr:{client[0]}"
        verdict = self.limiter.hit_fast("api", who, self.per_minute)
        state["edge_verdict"] = verdict  # for a route with a limit of its own to weigh against
        headers = _headers(verdict)
        if not verdict.allowed:
            return headers, problem_response(
                429, "too many requests; slow down", headers={"Retry-After": str(verdict.reset_seconds)}
            )
        return headers, None


def _headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", b"%d" % verdict.limit),
        (b"ratelimit-remaining", b"%d" % verdict.remaining),
        (b"ratelimit-reset", b"%d" % verdict.reset_seconds),
    ]


async def require_user(request: Request) -> auth.Principal:
    principal: auth.Principal | None = request.state.principal
    if principal is None and (unchecked := request.state.keys_unavailable) is not None:
        raise Problem(503, f"{unchecked.dependency} is unavailable, so the access token cannot be checked; try again shortly",
                      headers={"Retry-After": "1"})
    if principal is None:
        detail = "a valid bearer access token is required"
        if request.state.token_error:
            detail = "the access token is invalid or expired"
        raise Problem(401, detail, headers=_UNAUTHENTICATED_HEADERS)
    return principal


async def require_admin(request: Request) -> auth.Principal:
    principal = await require_user(request)
    if "admin" not in principal.roles:
        raise Problem(403, "this operation needs the admin role")
    return principal


CurrentUser = Annotated[auth.Principal, Depends(require_user)]
CurrentAdmin = Annotated[auth.Principal, Depends(require_admin)]


async def refusal(request: Request) -> Response | None:
    """What the matched route answers a caller without the token or role it needs, or None.
    An error handler asks first, so authentication comes before judging the request (API.md):
    no token and a body that is not JSON is a 401, a customer's such body on an admin route a 403.
    FastAPI reads the body before it runs a route's dependencies, so they never got to say."""
    check = required_check(request.scope.get("route"))
    try:
        if check is not None:
            await check(request)
    except Problem as refused:
        return problem_response(refused.status, refused.detail, headers=refused.headers)
    return None


def required_check(route: object) -> Callable[[Request], Awaitable[auth.Principal]] | None:
    """`require_admin` or `require_user`, whichever the route depends on (the stricter if both),
    at any depth of its dependencies; None for a public route."""
    dependant = getattr(route, "dependant", None)
    found: set[object] = set()
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        found.add(current.call)
        pending.extend(current.dependencies)
    return next((check for check in (require_admin, require_user) if check in found), None)
