"""The same mechanisms over real `grpc.aio` calls: deadlines cross the wire, failures trip the breaker."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from chassis.resilience import BreakerOpen, DeadlineExceeded, Guard, deadline_scope, load_policies

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


async def start_server(handler: Handler) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    method = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Hop", {"Call": method})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def stub(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary("/test.Hop/Call")


@pytest.fixture
async def servers() -> AsyncIterator[list[grpc.aio.Server]]:
    started: list[grpc.aio.Server] = []
    yield started
    for server in started:
        await server.stop(None)


async def test_the_remaining_deadline_travels_to_the_next_hop(servers: list[grpc.aio.Server]) -> None:
    async def last_hop(_: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return str(context.time_remaining()).encode()

    last, last_address = await start_server(last_hop)
    servers.append(last)
    channel = grpc.aio.insecure_channel(last_address)
    guard = Guard("last", load_policies({"defaults": {"timeout_seconds": 5.0}}).defaults)

    async def middle_hop(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with deadline_scope(context.time_remaining()):
            return await guard.call(lambda seconds: stub(channel)(request, timeout=seconds), idempotent=True)

    middle, middle_address = await start_server(middle_hop)
    servers.append(middle)
    async with grpc.aio.insecure_channel(middle_address) as client:
        seen_by_last_hop = float(await stub(client)(b"", timeout=0.5))
    await channel.close()
    assert 0.2 < seen_by_last_hop <= 0.5, "the last hop must get what was left of 0.5 s, not its own 5 s"


async def test_a_hop_whose_deadline_has_passed_does_not_call_the_next(servers: list[grpc.aio.Server]) -> None:
    reached_last_hop = 0

    async def last_hop(_: bytes, __: grpc.aio.ServicerContext) -> bytes:
        nonlocal reached_last_hop
        reached_last_hop += 1
        return b"late"

    last, last_address = await start_server(last_hop)
    servers.append(last)
    channel = grpc.aio.insecure_channel(last_address)
    guard = Guard("last", load_policies({}).defaults)
    follow_ups: list[asyncio.Task[bytes]] = []

    async def follow_up(request: bytes) -> bytes:
        await asyncio.sleep(0.3)  # still working after the caller gave up
        return await guard.call(lambda seconds: stub(channel)(request, timeout=seconds), idempotent=True)

    async def middle_hop(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with deadline_scope(context.time_remaining()):
            follow_ups.append(asyncio.create_task(follow_up(request)))  # inherits the deadline
        return await asyncio.shield(follow_ups[-1])

    middle, middle_address = await start_server(middle_hop)
    servers.append(middle)
    async with grpc.aio.insecure_channel(middle_address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub(client)(b"", timeout=0.1)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(follow_ups[0], 5.0)
    await channel.close()
    assert reached_last_hop == 0


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_dependency_trips_the_breaker_and_is_then_refused_fast() -> None:
    guard = Guard(
        "nobody_home",
        load_policies({"defaults": {"retry": {"max_attempts": 1}, "breaker": {"minimum_calls": 5}}}).defaults,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{unused_port()}") as channel:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await guard.call(lambda seconds: stub(channel)(b"", timeout=seconds), idempotent=True)
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(BreakerOpen):
            await guard.call(lambda seconds: stub(channel)(b"", timeout=seconds), idempotent=True)
