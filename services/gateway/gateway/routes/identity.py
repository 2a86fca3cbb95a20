"""Accounts and tokens at the edge; identity does the work, the gateway adds the login limit."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Mapping
from typing import Annotated, Any

from agora.identity.v1 import identity_pb2
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chassis.http import Problem
from gateway.models import CONTROLS, FORMATTING, NOT_BLANK, STORABLE, WHITESPACE
from gateway.ratelimit import RateLimiter, Verdict
from gateway.security import CurrentUser
from gateway.settings import GatewaySettings
from gateway.upstream import call
from gateway.upstreams import Upstreams

Text = Annotated[str, Field(max_length=1000)]
# Identity's rule: dots only between the parts of each side, and no whitespace, control or
# invisible formatting character (a combining accent is fine: identity composes it).
_EMAIL_PART = rf"[^@.{WHITESPACE}{CONTROLS}{FORMATTING}]+"
_EMAIL = rf"^{_EMAIL_PART}(?:\.{_EMAIL_PART})*@(?:{_EMAIL_PART}\.)+{_EMAIL_PART}$"


class Registration(BaseModel):
    """Identity's own rules, stated here so the OpenAPI document tells clients what is valid."""

    email: Annotated[str, Field(max_length=254, pattern=_EMAIL)]
    password: Annotated[str, Field(min_length=8, max_length=128)]
    name: Annotated[str, Field(max_length=200, pattern=NOT_BLANK)]


class Credentials(BaseModel):
    email: Annotated[str, Field(max_length=1000, pattern=STORABLE)]
    password: Text


class RefreshToken(BaseModel):
    refresh_token: Annotated[str, Field(max_length=500)]


class UserOut(BaseModel):
    user_id: str
    email: str
    name: str


class Me(UserOut):
    roles: list[str]


class Tokens(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


def _tokens(pair: identity_pb2.TokenPair, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({
        "access_token": pair.access_token, "token_type": pair.token_type or "Bearer",
        "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
    }, headers={"Cache-Control": "no-store", **(headers or {})})


def router(upstreams: Upstreams, limiter: RateLimiter, settings: GatewaySettings) -> APIRouter:
    routes = APIRouter(prefix="/api/v1", tags=["identity"])

    async def limit(scope: str, key: str, per_minute: int) -> Verdict:
        verdict = await limiter.hit(scope, key, per_minute)
        if not verdict.allowed:
            raise Problem(429, "too many attempts; wait before trying again", headers=verdict.headers())
        return verdict

    def closer_to_refusing(request: Request, own: Verdict) -> dict[str, str]:
        """The `RateLimit-*` headers of the route's own limit or the edge-wide one, whichever
        this answer leaves with fewer requests: the one that will refuse the client first."""
        edge: Verdict | None = getattr(request.state, "edge_verdict", None)
        return (edge if edge is not None and edge.remaining < own.remaining else own).headers()

    async def counted(request: Request, own: Verdict, answer: Awaitable[Any]) -> Any:
        """The upstream's answer; a refusal carries the headers of the limit closer to refusing."""
        try:
            return await answer
        except Problem as refused:
            refused.headers = {**closer_to_refusing(request, own), **(refused.headers or {})}
            raise

    def address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def account(email: str) -> str:
        """The account an email names, as identity finds it (trimmed, lower case, NFC): were each
        spelling of it (`JOSÉ@`, or `josé@` with its accent as a separate mark) counted on its own,
        a guesser could multiply the limit."""
        return unicodedata.normalize("NFC", email.strip().lower())

    @routes.post("/auth/register", status_code=201, response_model=UserOut, summary="Create an account",
                 responses={409: {"description": "email taken"}, 422: {"description": "invalid fields"}})
    async def register(body: Registration, request: Request) -> JSONResponse:
        attempt = await limit("register", address(request), settings.register_rate_limit_per_minute)
        registering = call("identity", upstreams.identity, "Register", identity_pb2.RegisterRequest(
            email=body.email, password=body.password, name=body.name
        ))
        user = await counted(request, attempt, registering)
        return JSONResponse({"user_id": user.user_id, "email": user.email, "name": user.name}, status_code=201,
                            headers=closer_to_refusing(request, attempt))

    @routes.post("/auth/login", response_model=Tokens, summary="Exchange credentials for tokens",
                 responses={401: {"description": "wrong email or password"}})
    async def login(body: Credentials, request: Request) -> JSONResponse:
        attempt = await limit("login", f"{account(body.email)}|{address(request)}", settings.login_rate_limit_per_minute)
        login = call("identity", upstreams.identity, "Login", identity_pb2.LoginRequest(
            email=body.email, password=body.password
        ))
        # Only wrong guesses count against the brute-force limit: a client that knows the
        # password may log in as often as it likes (within the edge-wide limit).
        pair = await counted(request, attempt, login)
        await limiter.refund(attempt)
        return _tokens(pair, closer_to_refusing(request, attempt._replace(remaining=attempt.remaining + 1)))

    @routes.post("/auth/refresh", response_model=Tokens, summary="Rotate a refresh token for a new pair",
                 responses={401: {"description": "unknown, used or expired refresh token"}})
    async def refresh(body: RefreshToken) -> JSONResponse:
        pair = await call("identity", upstreams.identity, "Refresh", identity_pb2.RefreshRequest(
            refresh_token=body.refresh_token
        ))
        return _tokens(pair)

    @routes.post("/auth/logout", status_code=204, summary="Revoke a refresh token", response_class=Response)
    async def logout(body: RefreshToken) -> Response:
        await call("identity", upstreams.identity, "Logout", identity_pb2.LogoutRequest(refresh_token=body.refresh_token))
        return Response(status_code=204)

    @routes.get("/me", response_model=Me, summary="The signed-in user",
                responses={401: {"description": "no valid access token"}})
    async def me(_: CurrentUser) -> JSONResponse:
        user = await call("identity", upstreams.identity, "GetUser", identity_pb2.GetUserRequest())
        return JSONResponse({"user_id": user.user_id, "email": user.email, "name": user.name, "roles": list(user.roles)})

    return routes
