"""The guard over real `grpc.aio` calls: deadlines cross the wire, failures trip the breaker."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from chassis.resilience import BreakerOpen, DeadlineExceeded, Guard, deadline_scope, parse_policies

from .fakes import metric

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]
Start = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def start_server() -> AsyncIterator[Start]:
    """Starts a server on a free port that answers `/test.Hop/Call` with `handler`."""
    started: list[grpc.aio.Server] = []

    async def start(handler: Handler) -> str:
        server = grpc.aio.server()
        method = grpc.unary_unary_rpc_method_handler(handler)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Hop", {"Call": method})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in started:
        await server.stop(None)


def hop(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary("/test.Hop/Call")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_remaining_deadline_travels_to_the_next_hop(start_server: Start, dependency: str) -> None:
    async def last_hop(_: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return str(context.time_remaining()).encode()

    channel = grpc.aio.insecure_channel(await start_server(last_hop))
    guard = Guard(dependency, parse_policies({"defaults": {"timeout_seconds": 5.0}}).defaults)

    async def middle_hop(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with deadline_scope(context.time_remaining()):
            return await guard.call(lambda timeout: hop(channel)(request, timeout=timeout), idempotent=True)

    async with grpc.aio.insecure_channel(await start_server(middle_hop)) as client:
        seen_by_last_hop = float(await hop(client)(b"", timeout=0.5))
    await channel.close()
    # gRPC sends the deadline as a rounded timeout: the last hop may see a hair over what was left.
    assert 0.2 < seen_by_last_hop <= 0.51, "the last hop must get what was left of 0.5 s, not its own 5 s"


async def test_a_hop_whose_deadline_has_passed_does_not_call_the_next(start_server: Start, dependency: str) -> None:
    reached_last_hop = 0

    async def last_hop(_: bytes, __: grpc.aio.ServicerContext) -> bytes:
        nonlocal reached_last_hop
        reached_last_hop += 1
        return b"late"

    channel = grpc.aio.insecure_channel(await start_server(last_hop))
    guard = Guard(dependency, parse_policies({}).defaults)

    async def late_follow_up(request: bytes) -> bytes:
        await asyncio.sleep(0.2)  # still working after the caller gave up
        try:
            return await guard.call(lambda timeout: hop(channel)(request, timeout=timeout), idempotent=True)
        except DeadlineExceeded:
            refused.set()
            raise

    async def slow_middle_hop(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with deadline_scope(context.time_remaining()):
            follow_up = asyncio.create_task(late_follow_up(request))  # inherits the deadline
        # Shielded, so it outlives this handler's cancellation as work in the real world does.
        return await asyncio.shield(follow_up)

    refused = asyncio.Event()
    async with grpc.aio.insecure_channel(await start_server(slow_middle_hop)) as client:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await hop(client)(b"", timeout=0.1)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(refused.wait(), 5.0)
    await channel.close()
    assert reached_last_hop == 0


async def test_an_unavailable_answer_is_retried_and_the_retry_answers(start_server: Start, dependency: str) -> None:
    calls = 0

    async def restarting(_: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        return b"ready"

    guard = Guard(dependency, parse_policies({}).defaults)
    async with grpc.aio.insecure_channel(await start_server(restarting)) as channel:
        assert await guard.call(lambda timeout: hop(channel)(b"", timeout=timeout), idempotent=True) == b"ready"
    assert calls == 2
    assert metric("agora_resilience_retries_total", dependency) == 1


async def test_an_unreachable_dependency_trips_the_breaker_and_is_then_refused_fast(dependency: str) -> None:
    policy = parse_policies({"defaults": {"retry": {"max_attempts": 1}, "breaker": {"minimum_calls": 5}}}).defaults
    guard = Guard(dependency, policy)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{unused_port()}") as channel:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await guard.call(lambda timeout: hop(channel)(b"", timeout=timeout), idempotent=True)
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(BreakerOpen):
            await guard.call(lambda timeout: hop(channel)(b"", timeout=timeout), idempotent=True)
    assert metric("agora_breaker_state", dependency) == 2
