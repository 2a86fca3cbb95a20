"""The chassis gRPC server and client over real sockets: mTLS callers, deadlines across hops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agora_cli.certs import ensure_certificates
from chassis import auth, metrics
from chassis.chaos import ChaosSwitch
from chassis.grpc import CALLER_METADATA, DependencyUnavailable, GrpcServer, open_channel, set_request_context
from chassis.resilience import Guard, load_policies, parse_policies
from chassis.resilience.grpc_errors import unavailable_dependency
from chassis.settings import ServiceSettings
from tests.support import AUDIENCE, ISSUER, Dependency, Tokens, free_port

Behaviour = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def settings(name: str, tls_dir: Path | None, *, callers: set[str] = frozenset(), peers: dict | None = None) -> ServiceSettings:
    return ServiceSettings(
        service=name, http_port=free_port(), grpc_port=free_port(), tls_dir=tls_dir,
        mtls="on" if tls_dir else "off", allowed_callers=frozenset(callers), peers=peers or {},
    )


async def serve(
    config: ServiceSettings, behaviour: Behaviour, *, verifier: auth.TokenVerifier | None = None,
    **others: grpc.RpcMethodHandler,
) -> GrpcServer:
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(behaviour), **others}
    )
    server = GrpcServer(config, verifier=lambda: verifier, chaos=ChaosSwitch(None, config.service))
    server.add(lambda _servicer, grpc_server: grpc_server.add_generic_rpc_handlers((handler,)), None)
    await server.start()
    return server


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def echo_call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary("/test.Echo/Echo")


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    ensure_certificates(tmp_path, ["hop1", "hop2", "stranger", "client"])
    return tmp_path


@pytest.fixture
async def running() -> AsyncIterator[list[GrpcServer]]:
    servers: list[GrpcServer] = []
    yield servers
    for server in servers:
        await server.stop(0)


def guard(name: str) -> Guard:
    return Guard(name, load_policies().for_dependency(name))


async def test_only_allowed_callers_with_certificates_get_through(tls_dir: Path, running: list[GrpcServer]) -> None:
    server_settings = settings("hop1", tls_dir, callers={"client"})
    running.append(await serve(server_settings, echo))
    address = [f"127.0.0.1:{server_settings.grpc_port}"]

    allowed = open_channel(settings("client", tls_dir), "hop1", guard("hop1"), addresses=address)
    assert await echo_call(allowed)(b"hello", timeout=5) == b"hello"

    stranger = open_channel(settings("stranger", tls_dir), "hop1", guard("hop1"), addresses=address)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await echo_call(stranger)(b"hello", timeout=5)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED

    async with grpc.aio.insecure_channel(address[0]) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as no_certificate:
            await plain.unary_unary("/test.Echo/Echo")(b"hello", timeout=2)
    assert no_certificate.value.code() is grpc.StatusCode.UNAVAILABLE

    for channel in (allowed, stranger):
        await channel.close()


# The grpc-timeout header carries the budget with limited precision and gRPC rounds it up,
# so the next hop may see a few milliseconds more than the caller had left.
GRPC_TIMEOUT_ROUNDING = 0.02


async def test_the_remaining_deadline_travels_to_the_next_hop_and_expiry_cancels_the_work(
    tls_dir: Path, running: list[GrpcServer]
) -> None:
    seen_budget: list[float] = []
    hop2_outcome: list[str] = []

    async def hop2(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen_budget.append(context.time_remaining() or 0.0)
        try:
            await asyncio.sleep(float(request.decode()))
        except asyncio.CancelledError:
            hop2_outcome.append("cancelled")
            raise
        hop2_outcome.append("finished")
        return b"done"

    hop2_settings = settings("hop2", tls_dir, callers={"hop1"})
    running.append(await serve(hop2_settings, hop2))
    hop1_settings = settings("hop1", tls_dir, callers={"client"},
                             peers={"hop2": [f"127.0.0.1:{hop2_settings.grpc_port}"]})
    to_hop2 = open_channel(hop1_settings, "hop2", guard("hop2"))

    async def hop1(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await echo_call(to_hop2)(request)

    running.append(await serve(hop1_settings, hop1))
    client = open_channel(settings("client", tls_dir), "hop1", guard("hop1"),
                          addresses=[f"127.0.0.1:{hop1_settings.grpc_port}"])

    assert await echo_call(client)(b"0", timeout=0.8) == b"done"
    assert 0 < seen_budget[0] <= 0.8 + GRPC_TIMEOUT_ROUNDING

    cancelled = metrics.grpc_server_requests.labels("hop2", "Echo", "CANCELLED")._value.get
    cancelled_before = cancelled()
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await echo_call(client)(b"2", timeout=0.3)
    assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.5)
    assert hop2_outcome == ["finished", "cancelled"]
    assert cancelled() == cancelled_before + 1, "a call cut short is not counted as OK"
    assert seen_budget[1] <= 0.3 + GRPC_TIMEOUT_ROUNDING
    await client.close()
    await to_hop2.close()


async def test_every_call_is_counted_per_method_and_code(running: list[GrpcServer]) -> None:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, "nothing here")
        return b""

    server_settings = settings("counted", None, callers={"client"})
    running.append(await serve(server_settings, refuse))
    before = metrics.grpc_server_requests.labels("counted", "Echo", "NOT_FOUND")._value.get()
    client = open_channel(settings("client", None), "counted", guard("counted"),
                          addresses=[f"127.0.0.1:{server_settings.grpc_port}"])
    with pytest.raises(grpc.aio.AioRpcError):
        await echo_call(client)(b"x", timeout=2)
    counted = metrics.grpc_server_requests.labels("counted", "Echo", "NOT_FOUND")._value.get
    # The server counts once its handler has finished, which may be just after the client has its answer.
    async with asyncio.timeout(5):
        while counted() < before + 1:  # noqa: ASYNC110 (a counter offers nothing to wait on)
            await asyncio.sleep(0.01)
    assert counted() == before + 1
    await client.close()


async def test_a_token_whose_keys_identity_cannot_give_is_an_outage_naming_identity(running: list[GrpcServer]) -> None:
    async def identity_down() -> dict:
        raise ConnectionError("identity is down")

    server_settings = settings("keyless", None, callers={"client"})
    verifier = auth.TokenVerifier(identity_down, issuer=ISSUER, audience=AUDIENCE)
    running.append(await serve(server_settings, echo, verifier=verifier))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_settings.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as answered:
            await echo_call(channel)(
                b"x", timeout=5, metadata=((CALLER_METADATA, "client"), ("authorization", f"Bearer {Tokens().sign('u1')}"))
            )

    assert answered.value.code() is grpc.StatusCode.UNAVAILABLE
    assert unavailable_dependency(answered.value) == "identity"


async def test_a_call_its_caller_gave_up_on_is_counted_cancelled_not_ok(running: list[GrpcServer]) -> None:
    """The usual way a timeout shows two hops down: the middle hop's own deadline cancels it."""
    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(5)
        return request

    server_settings = settings("slowpoke", None, callers={"client"})
    running.append(await serve(server_settings, slow))
    client = open_channel(settings("client", None), "slowpoke", guard("slowpoke"),
                          addresses=[f"127.0.0.1:{server_settings.grpc_port}"])
    counted = metrics.grpc_client_requests.labels
    before = {code: counted("client", "slowpoke", "Echo", code)._value.get() for code in ("OK", "CANCELLED")}
    async def ask() -> bytes:
        return await echo_call(client)(b"x", timeout=10)

    call = asyncio.create_task(ask())
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    after = {code: counted("client", "slowpoke", "Echo", code)._value.get() for code in ("OK", "CANCELLED")}
    assert after == {"OK": before["OK"], "CANCELLED": before["CANCELLED"] + 1}
    await client.close()


async def test_a_service_answering_for_a_dependency_that_is_down_is_neither_retried_nor_its_circuit_opened(
    running: list[GrpcServer],
) -> None:
    """Orders answers for cart: retrying orders would multiply the attempts on cart, which orders
    has made under its own policy, and opening orders' circuit would refuse the calls that never
    need cart."""
    calls = 0

    async def cart_is_down(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal calls
        calls += 1
        raise DependencyUnavailable("cart") from ConnectionError("cart refused the connection")

    orders = settings("orders", None, callers={"client"})
    running.append(await serve(orders, echo, GetOrder=grpc.unary_unary_rpc_method_handler(cart_is_down)))
    policy = parse_policies({"defaults": {"breaker": {"minimum_calls": 3, "window_size": 3}}}).defaults
    channel = open_channel(settings("client", None), "orders", Guard("orders-answering-for-cart", policy),
                           addresses=[f"127.0.0.1:{orders.grpc_port}"])
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as answered:
            await channel.unary_unary("/test.Echo/GetOrder")(b"", timeout=2)  # a Get*: retryable
        assert answered.value.code() is grpc.StatusCode.UNAVAILABLE
        assert answered.value.details() == "cart is unavailable; try again"
        assert unavailable_dependency(answered.value) == "cart"
    assert calls == 5
    assert await echo_call(channel)(b"still served", timeout=2) == b"still served"
    await channel.close()


async def test_a_health_probe_is_not_refused_by_an_open_breaker(running: list[GrpcServer]) -> None:
    """Readiness must follow the dependency's recovery, not wait out the breaker's open period."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from chassis.resilience import BreakerOpen, parse_policies

    dependency = settings("hop2", None)
    policy = parse_policies({"defaults": {"retry": {"max_attempts": 1}, "breaker": {
        "minimum_calls": 3, "window_size": 3, "open_seconds": 60}}}).defaults
    channel = open_channel(settings("client", None), "hop2", Guard("hop2-health-test", policy),
                           addresses=[f"127.0.0.1:{dependency.grpc_port}"])
    for _ in range(3):  # nothing listens yet: the breaker opens
        with pytest.raises(grpc.aio.AioRpcError):
            await echo_call(channel)(b"0", timeout=0.5)
    with pytest.raises(BreakerOpen):
        await echo_call(channel)(b"0", timeout=0.5)

    running.append(await serve(dependency, lambda request, context: asyncio.sleep(0, b"done")))
    probe = health_pb2_grpc.HealthStub(channel)
    answer = await probe.Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(BreakerOpen):  # traffic still waits for the open period
        await echo_call(channel)(b"0", timeout=0.5)
    await channel.close()


async def test_the_health_service_answers_what_readiness_says(running: list[GrpcServer]) -> None:
    """A service that runs but cannot serve (its database is down, say) says NOT_SERVING, so the
    gateway's readiness, which asks it, does not claim to serve what it cannot."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from chassis.health import Readiness

    database = Dependency()
    readiness = Readiness()
    readiness.add("postgres", database.check)
    config = settings("hop1", None)
    server = GrpcServer(config, verifier=lambda: None, chaos=ChaosSwitch(None, "hop1"), readiness=readiness)
    await server.start()
    running.append(server)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
        async def status() -> int:
            return (await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)).status

        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING  # still starting
        readiness.accepting = True
        assert await status() == health_pb2.HealthCheckResponse.SERVING
        database.down = True
        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
        database.down = False
        assert await status() == health_pb2.HealthCheckResponse.SERVING


async def test_a_server_stream_is_guarded_and_carries_the_callers_metadata(
    tls_dir: Path, running: list[GrpcServer]
) -> None:
    seen: list[dict[str, str]] = []

    async def count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        seen.append({key: value for key, value in context.invocation_metadata() or ()})
        for number in range(int(request.decode())):
            yield str(number).encode()

    server_settings = settings("hop1", tls_dir, callers={"client"})
    running.append(await serve(server_settings, echo, Count=grpc.unary_stream_rpc_method_handler(count)))
    address = [f"127.0.0.1:{server_settings.grpc_port}"]
    before = metrics.grpc_server_requests.labels("hop1", "Count", "OK")._value.get()

    allowed = open_channel(settings("client", tls_dir), "hop1", guard("hop1"), addresses=address)
    set_request_context(request_id="request-1", authorization="Bearer some-token")
    numbers = [message async for message in allowed.unary_stream("/test.Echo/Count")(b"3", timeout=5)]
    assert numbers == [b"0", b"1", b"2"]
    assert seen[0]["authorization"] == "Bearer some-token" and seen[0]["x-request-id"] == "request-1"

    stranger = open_channel(settings("stranger", tls_dir), "hop1", guard("hop1"), addresses=address)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        [message async for message in stranger.unary_stream("/test.Echo/Count")(b"3", timeout=5)]
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert len(seen) == 1, "a refused caller's stream never starts"
    async with asyncio.timeout(5):
        while metrics.grpc_server_requests.labels("hop1", "Count", "OK")._value.get() < before + 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    set_request_context(request_id=None, authorization=None)
    for channel in (allowed, stranger):
        await channel.close()


async def test_a_client_stream_is_not_served_since_no_guard_covers_it(running: list[GrpcServer]) -> None:
    async def total(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        return b"".join([request async for request in requests])

    server_settings = settings("hop1", None, callers={"client"})
    running.append(await serve(server_settings, echo, Total=grpc.stream_unary_rpc_method_handler(total)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_settings.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.stream_unary("/test.Echo/Total")(iter([b"a", b"b"]), timeout=5,
                                                            metadata=(("x-agora-caller", "client"),))
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


def unavailable_once() -> tuple[grpc.RpcMethodHandler, list[int]]:
    """A method that answers UNAVAILABLE to its first call and OK to the next; and its call count."""
    calls = [0]

    async def restarting(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        calls[0] += 1
        if calls[0] == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        return b"ready"

    return grpc.unary_unary_rpc_method_handler(restarting), calls


async def test_the_client_retries_only_idempotent_calls(running: list[GrpcServer]) -> None:
    """A read is retried and answers; a write that is not safe to repeat is sent once and fails,
    since its first attempt may have been done (`PlaceOrder` is retried only by the client that
    holds its idempotency key; `Refresh` begins like `Remove` but sets no absolute state)."""
    get_thing, get_calls = unavailable_once()
    place_order, place_calls = unavailable_once()
    refresh, refresh_calls = unavailable_once()
    server_settings = settings("flaky", None, callers={"client"})
    running.append(await serve(server_settings, echo, GetThing=get_thing, PlaceOrder=place_order, Refresh=refresh))
    channel = open_channel(settings("client", None), "flaky", Guard("flaky-idempotency", parse_policies({}).defaults),
                           addresses=[f"127.0.0.1:{server_settings.grpc_port}"])

    assert await channel.unary_unary("/test.Echo/GetThing")(b"", timeout=5) == b"ready"
    assert get_calls == [2]
    for method, calls in (("PlaceOrder", place_calls), ("Refresh", refresh_calls)):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await channel.unary_unary(f"/test.Echo/{method}")(b"", timeout=5)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
        assert calls == [1], f"{method} must not be sent twice"
    await channel.close()


CALLER_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN_ID = 0xB7AD6B7169203331


async def test_the_server_continues_the_callers_trace_and_passes_it_to_the_next_hop(
    running: list[GrpcServer],
) -> None:
    """A caller's `traceparent` makes the handler's span a child of the caller's, and the calls
    the handler makes carry that trace on."""
    from opentelemetry import trace
    from opentelemetry.propagate import extract
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    provider = trace.get_tracer_provider()  # the process' own can be set only once
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen_by_hop1: list[trace.SpanContext] = []
    seen_by_hop2: list[trace.SpanContext] = []

    async def hop2(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        seen_by_hop2.append(trace.get_current_span(extract(metadata)).get_span_context())
        return b"done"

    hop2_settings = settings("trace_hop2", None, callers={"trace_hop1"})
    running.append(await serve(hop2_settings, hop2))
    hop1_settings = settings("trace_hop1", None, callers={"client"},
                             peers={"trace_hop2": [f"127.0.0.1:{hop2_settings.grpc_port}"]})
    to_hop2 = open_channel(hop1_settings, "trace_hop2", guard("trace_hop2"))

    async def hop1(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen_by_hop1.append(trace.get_current_span().get_span_context())
        return await echo_call(to_hop2)(request)

    running.append(await serve(hop1_settings, hop1))
    traceparent = f"00-{CALLER_TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hop1_settings.grpc_port}") as plain:
        answer = await echo_call(plain)(b"x", timeout=5, metadata=(("x-agora-caller", "client"),
                                                                   ("traceparent", traceparent)))
    assert answer == b"done"
    await to_hop2.close()

    [hop1_span] = seen_by_hop1
    assert hop1_span.trace_id == CALLER_TRACE_ID
    assert hop1_span.span_id != CALLER_SPAN_ID, "the server starts a span of its own in the caller's trace"
    [server_span] = [span for span in exporter.get_finished_spans()
                     if span.name == "trace_hop1/Echo" and span.context.trace_id == CALLER_TRACE_ID]
    assert server_span.kind is SpanKind.SERVER
    assert server_span.parent is not None and server_span.parent.span_id == CALLER_SPAN_ID
    [hop2_parent] = seen_by_hop2  # what hop1's call to the next hop carried
    assert hop2_parent.trace_id == CALLER_TRACE_ID
    assert hop2_parent.span_id not in (CALLER_SPAN_ID, 0)


async def test_a_certificate_from_a_foreign_ca_naming_an_allowed_caller_is_refused(
    tls_dir: Path, running: list[GrpcServer]
) -> None:
    """Anyone can make a CA and have it name itself `client`: only the city's CA vouches for a name."""
    reached = 0

    async def counted_echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal reached
        reached += 1
        return request

    foreign_ca = tls_dir / "foreign-ca"
    ensure_certificates(foreign_ca, ["client"])
    # The impostor trusts the city's CA, so it can verify the server: only its own certificate is wrong.
    impostor = tls_dir / "impostor"
    impostor.mkdir()
    (impostor / "ca.pem").write_bytes((tls_dir / "ca.pem").read_bytes())
    for suffix in ("pem", "key"):
        (impostor / f"client.{suffix}").write_bytes((foreign_ca / f"client.{suffix}").read_bytes())
    assert (impostor / "client.pem").read_bytes() != (tls_dir / "client.pem").read_bytes()
    server_settings = settings("hop1", tls_dir, callers={"client"})
    running.append(await serve(server_settings, counted_echo))
    address = [f"127.0.0.1:{server_settings.grpc_port}"]

    genuine = open_channel(settings("client", tls_dir), "hop1", guard("hop1"), addresses=address)
    assert await echo_call(genuine)(b"hello", timeout=5) == b"hello"
    assert reached == 1

    forged = open_channel(settings("client", impostor), "hop1", guard("hop1"), addresses=address)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await echo_call(forged)(b"hello", timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    assert reached == 1, "the forged caller never reaches the handler"
    for channel in (genuine, forged):
        await channel.close()


async def test_a_peer_is_dialled_by_its_addresses_or_by_one_dns_name(running: list[GrpcServer]) -> None:
    """`agora up` gives each instance's address; Kubernetes gives a headless Service's name, which
    resolves to every pod."""
    catalog = settings("catalog", None, callers={"gateway"})
    running.append(await serve(catalog, echo))
    for address in (f"127.0.0.1:{catalog.grpc_port}", f"localhost:{catalog.grpc_port}"):
        channel = open_channel(settings("gateway", None), "catalog", guard("catalog"), addresses=[address])
        assert await echo_call(channel)(b"hello", timeout=3) == b"hello"
        await channel.close()
    with pytest.raises(ValueError, match="either IPv4 addresses or one DNS name"):
        open_channel(settings("gateway", None), "catalog", guard("catalog"), addresses=["a.local:1", "b.local:1"])


async def test_a_server_with_a_maximum_connection_age_ends_its_connections_and_calls_go_on(
    running: list[GrpcServer],
) -> None:
    """Behind a DNS name, a caller resolves it again only when its connection ends: the server
    ending it now and then is how callers find the pods an autoscaler added."""

    async def caller_address(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return context.peer().encode()  # the caller's end of the connection: a new one, a new port

    catalog = ServiceSettings(
        service="catalog", http_port=free_port(), grpc_port=free_port(), mtls="off", allowed_callers=frozenset({"gateway"}),
        grpc_max_connection_age_seconds=1.0,
    )
    running.append(await serve(catalog, caller_address))
    channel = open_channel(settings("gateway", None), "catalog", guard("catalog"),
                           addresses=[f"localhost:{catalog.grpc_port}"])
    first = await echo_call(channel)(b"", timeout=3)
    assert await echo_call(channel)(b"", timeout=3) == first  # one connection while it is young
    await asyncio.sleep(2.0)
    assert await echo_call(channel)(b"", timeout=3) != first
    await channel.close()
