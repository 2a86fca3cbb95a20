"""`agora keys rotate`: identity signs new access tokens with a fresh key from now on.

Tokens signed with the old key keep working until they expire: identity keeps publishing the
old key until then (docs/security.md). Only the `cli` caller may ask for a rotation.
"""

from __future__ import annotations

import asyncio

import typer

from agora_cli import state
from agora_cli.config import Config
from agora_cli.errors import AgoraError, one_line_errors

app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
_DEADLINE_SECONDS = 10.0


@app.command()
@one_line_errors
def rotate() -> None:
    """Sign new access tokens with a new key; tokens already issued stay valid until they expire."""
    kid = asyncio.run(rotate_signing_key(Config.from_env()))
    typer.echo(f"new signing key: {kid}")


async def rotate_signing_key(config: Config, identity: str = "cli") -> str:
    """Asks the running city's identity to rotate; returns the new key id."""
    import grpc  # loaded only by the commands that talk to the city, as in agora_cli.admin
    from agora.identity.v1 import identity_pb2, identity_pb2_grpc

    from agora_cli.admin import CALLER_METADATA, _channel

    city = state.running(config.home)
    addresses = [entry["grpc"] for entry in city["services"] if entry["name"] == "identity" and entry["grpc"]]
    if not addresses:
        raise AgoraError("identity is not running in this city")
    async with _channel(config, addresses, identity) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        metadata = None if config.mtls else ((CALLER_METADATA, identity),)
        try:
            response = await stub.RotateSigningKey(
                identity_pb2.RotateSigningKeyRequest(), timeout=_DEADLINE_SECONDS, metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            raise AgoraError(f"identity refused RotateSigningKey: {error.code().name}: {error.details()}") from None
    return str(response.kid)
