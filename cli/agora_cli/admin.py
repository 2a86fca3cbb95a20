"""The first admin: once identity is ready, `agora up` makes sure an admin account exists.

With AGORA_ADMIN_EMAIL and AGORA_ADMIN_PASSWORD set, that account is created or updated. Without
them, a random password is generated and shown once, only if no admin existed yet; it is stored
nowhere by the runner.
"""

from __future__ import annotations

import os
import secrets

import grpc

from agora_cli.config import Config
from agora_cli.errors import AgoraError

DEFAULT_ADMIN_EMAIL = "admin@agora.local"
CALLER_METADATA = "x-agora-caller"  # what a service trusts instead of a certificate when mTLS is off
_DEADLINE_SECONDS = 10.0


async def ensure_admin(config: Config, identity_addresses: list[str], identity: str = "cli") -> list[str]:
    """Lines to show the operator; empty when identity is not part of this city."""
    if not identity_addresses:
        return []
    from agora.identity.v1 import identity_pb2, identity_pb2_grpc

    email = os.environ.get("AGORA_ADMIN_EMAIL") or DEFAULT_ADMIN_EMAIL
    given_password = os.environ.get("AGORA_ADMIN_PASSWORD")
    password = given_password if given_password and os.environ.get("AGORA_ADMIN_EMAIL") else None
    request = identity_pb2.EnsureAdminRequest(
        email=email, password=password or secrets.token_urlsafe(12), only_if_no_admin=password is None
    )
    async with _channel(config, identity_addresses, identity) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        metadata = None if config.mtls else ((CALLER_METADATA, identity),)
        try:
            response = await stub.EnsureAdmin(request, timeout=_DEADLINE_SECONDS, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            raise AgoraError(f"identity refused EnsureAdmin: {error.code().name}: {error.details()}") from None
    if password is not None:
        return [f"admin: {email} (password from AGORA_ADMIN_PASSWORD)"]
    if response.has_requested_password:
        return [f"admin: {email} / {request.password}  (shown once; not stored)"]
    return [f"admin: {response.user.email} (already existed)"]


def _channel(config: Config, addresses: list[str], identity: str) -> grpc.aio.Channel:
    target = "ipv4:" + ",".join(addresses)
    if not config.mtls:
        return grpc.aio.insecure_channel(target)
    tls = config.home.tls
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(tls / "ca.pem").read_bytes(),
        private_key=(tls / f"{identity}.key").read_bytes(),
        certificate_chain=(tls / f"{identity}.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", "localhost")])
