"""`agora replay analytics`: analytics wipes its projections and rebuilds them from the streams.

The rebuild runs inside analytics (its `Rebuild` RPC, which only the `cli` caller may ask for):
the streams keep 30 days or 1 GiB of events per producer, and the report reaches the same figures
from them. The report stays available meanwhile, showing the old figures until the new ones are
swapped in.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from agora_cli import state
from agora_cli.config import Config
from agora_cli.errors import AgoraError, one_line_errors

replay_app = typer.Typer(help="Rebuild projections from the event streams.", no_args_is_help=True)
DEFAULT_TIMEOUT_SECONDS = 600.0


@replay_app.command()
@one_line_errors
def analytics(
    timeout: Annotated[
        float, typer.Option(min=1, max=24 * 3600, help="Seconds to wait for the rebuild.")
    ] = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Wipe analytics' projections and rebuild them from the start of the streams."""
    applied = asyncio.run(replay_analytics(Config.from_env(), timeout=timeout))
    typer.echo(f"analytics rebuilt from {applied} events")


async def replay_analytics(config: Config, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, identity: str = "cli") -> int:
    """Asks the running city's analytics to rebuild; answers how many events it applied."""
    import grpc  # loaded only by the commands that talk to the city, as in agora_cli.admin
    from agora.analytics.v1 import analytics_pb2, analytics_pb2_grpc

    from agora_cli.admin import CALLER_METADATA, _channel

    city = state.running(config.home)
    # One instance is enough: the rebuild replaces the projections every instance reads.
    addresses = [entry["grpc"] for entry in city["services"] if entry["name"] == "analytics" and entry["grpc"]][:1]
    if not addresses:
        raise AgoraError("analytics is not running in this city")
    async with _channel(config, addresses, identity) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        metadata = None if config.mtls else ((CALLER_METADATA, identity),)
        try:
            response = await stub.Rebuild(analytics_pb2.RebuildRequest(), timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            raise AgoraError(f"analytics refused Rebuild: {error.code().name}: {error.details()}") from None
    return int(response.events_applied)
