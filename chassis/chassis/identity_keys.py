"""The token verifier a service uses, fed with the issuer's public keys over gRPC (GetJwks).

Identity is the only token issuer; every other service fetches its JWKS through the chassis
channel (mTLS, deadline, breaker) and caches it in `auth.TokenVerifier`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agora.identity.v1 import identity_pb2, identity_pb2_grpc

from chassis.auth import TokenVerifier, jwks_from_json
from chassis.runtime import ServiceApp


def identity_verifier(app: ServiceApp) -> TokenVerifier:
    async def fetch_jwks() -> Mapping[str, Any]:
        stub = identity_pb2_grpc.IdentityServiceStub(app.channel("identity"))
        response = await stub.GetJwks(identity_pb2.GetJwksRequest())
        return jwks_from_json(response.jwks_json)

    return TokenVerifier(fetch_jwks, issuer=app.settings.jwt_issuer, audience=app.settings.jwt_audience)
