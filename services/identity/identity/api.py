"""Identity's gRPC servicer: requests become commands, results become messages, domain errors
become status codes (here, and only here)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from agora.identity.v1 import identity_pb2, identity_pb2_grpc

from chassis import auth
from chassis.grpc import InvalidArgument
from identity import domain

Handle = Callable[[Any], Awaitable[Any]]

# Who may run the operator commands (`agora up`'s first admin, `agora keys rotate`).
OPERATOR = "cli"
# Who may handle credentials: the edge, which rate-limits guesses. Every service may call
# identity for its keys, and none of the others may try passwords past the edge's limit.
EDGE = "gateway"

_STATUS: dict[type[Exception], tuple[grpc.StatusCode, str]] = {
    domain.EmailTaken: (grpc.StatusCode.ALREADY_EXISTS, "an account with this email already exists"),
    domain.BadCredentials: (grpc.StatusCode.UNAUTHENTICATED, "wrong email or password"),
    domain.InvalidRefreshToken: (grpc.StatusCode.UNAUTHENTICATED, "the refresh token is unknown, used or expired"),
    domain.UserNotFound: (grpc.StatusCode.NOT_FOUND, "the account no longer exists"),
}


def _user(user: domain.User) -> identity_pb2.User:
    return identity_pb2.User(user_id=user.id, email=user.email, name=user.name, roles=sorted(user.roles))


def _token_pair(tokens: domain.TokenPair) -> identity_pb2.TokenPair:
    return identity_pb2.TokenPair(
        access_token=tokens.access_token, token_type="Bearer",
        expires_in=tokens.expires_in, refresh_token=tokens.refresh_token,
    )


class IdentityApi(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, handle: Handle):
        self._handle = handle

    async def _run(self, command: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self._handle(command)
        except domain.InvalidInput as error:
            raise InvalidArgument(error.violations) from None
        except tuple(_STATUS) as error:
            await context.abort(*_STATUS[type(error)])

    async def Register(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(EDGE)
        command = domain.Register(email=request.email, password=request.password, name=request.name)
        return _user(await self._run(command, context))

    async def Login(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(EDGE)
        command = domain.Login(email=request.email, password=request.password)
        return _token_pair(await self._run(command, context))

    async def Refresh(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(EDGE)
        return _token_pair(await self._run(domain.Refresh(request.refresh_token), context))

    async def Logout(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(EDGE)
        await self._run(domain.Logout(request.refresh_token), context)
        return identity_pb2.LogoutResponse()

    async def GetUser(self, request, context):  # type: ignore[no-untyped-def]
        principal = auth.require_principal()
        return _user(await self._run(domain.GetUser(principal.user_id), context))

    async def GetJwks(self, request, context):  # type: ignore[no-untyped-def]
        jwks = await self._run(domain.GetJwks(), context)
        return identity_pb2.GetJwksResponse(jwks_json=json.dumps(jwks, separators=(",", ":")))

    async def EnsureAdmin(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(OPERATOR)
        command = domain.EnsureAdmin(
            email=request.email, password=request.password, name=request.name,
            only_if_no_admin=request.only_if_no_admin,
        )
        ensured = await self._run(command, context)
        return identity_pb2.EnsureAdminResponse(
            user=_user(ensured.user), has_requested_password=ensured.has_requested_password
        )

    async def RotateSigningKey(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller(OPERATOR)
        kid = await self._run(domain.RotateSigningKey(), context)
        return identity_pb2.RotateSigningKeyResponse(kid=kid)
