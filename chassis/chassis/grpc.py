"""gRPC server and client helpers (`grpc.aio`).

Server side, every call (unary, or a server stream) passes one interceptor that: admits only
the callers this service allows (their identity comes from the mTLS client certificate),
continues the caller's trace, takes the caller's remaining deadline as this call's budget,
verifies the user token when one is sent, records metrics, and turns an unexpected exception
into INTERNAL without leaking it. A client stream has no such guard, so it is not served.

Client side, every unary call carries a deadline (the policy's timeout, shortened to what remains
of the budget we were given), the trace context, the request id and the user's token, and goes
through the dependency's resilience guard (bulkhead, breaker, retry budget). A server stream
carries the same metadata, with the timeout its caller chose, and no guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from chassis import auth, metrics
from chassis.chaos import ChaosSwitch, InjectedFault
from chassis.health import Readiness
from chassis.logs import get_logger
from chassis.request_id import current_request_id
from chassis.resilience import Guard, deadline_scope, timeout_for_next_call
from chassis.resilience.grpc_errors import UNAVAILABLE_DEPENDENCY_KEY
from chassis.settings import ServiceSettings

log = get_logger(__name__)
_tracer = trace.get_tracer("chassis.grpc")

SPIFFE_PREFIX = "spiffe://agora.local/"
CALLER_METADATA = "x-agora-caller"  # only trusted when mTLS is off (debugging)

# The raw bearer token of the user this call acts for, forwarded to the next hop unchanged.
_forwarded_authorization: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "forwarded_authorization", default=None
)


class InvalidArgument(Exception):
    """Raise from a servicer to answer INVALID_ARGUMENT with per-field violations.

    The violations travel as JSON in the trailing metadata key `x-field-violations`
    (docs/contracts.md), so the gateway can answer 422 with an `errors` list.
    """

    def __init__(self, violations: Sequence[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in violations))
        self.violations = list(violations)


FIELD_VIOLATIONS_KEY = "x-field-violations"


class DependencyUnavailable(Exception):
    """Raise from a servicer when a service it needs did not answer (after its own policy's
    retries): the caller gets UNAVAILABLE naming `dependency` in the trailing metadata key
    `x-unavailable-dependency`, so it neither retries this well service nor counts the answer
    against its circuit (`chassis.resilience.grpc_errors`), and the edge names the service that
    is down."""

    def __init__(self, dependency: str):
        super().__init__(f"{dependency} is unavailable; try again")
        self.dependency = dependency


def dependency_failed(dependency: str, error: Exception) -> Exception:
    """What a servicer raises for a call to `dependency` that failed (after its policy): the
    caller's own 401 if the dependency refused the user's token forwarded to it (it expired on
    the way), otherwise DependencyUnavailable."""
    if isinstance(error, grpc.aio.AioRpcError) and error.code() is grpc.StatusCode.UNAUTHENTICATED:
        return auth.Unauthenticated(f"{dependency} refused the access token")
    return DependencyUnavailable(dependency)


def set_request_context(*, request_id: str | None, authorization: str | None) -> None:
    """Used by the gateway: what the next gRPC hops should carry for this request."""
    current_request_id.set(request_id)
    _forwarded_authorization.set(authorization)


# ---------------------------------------------------------------- credentials


def _tls_files(settings: ServiceSettings, identity: str) -> tuple[bytes, bytes, bytes]:
    directory = Path(settings.tls_dir or "")
    return (
        (directory / "ca.pem").read_bytes(),
        (directory / f"{identity}.key").read_bytes(),
        (directory / f"{identity}.pem").read_bytes(),
    )


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials:
    ca, key, cert = _tls_files(settings, settings.service)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def channel_credentials(settings: ServiceSettings, identity: str | None = None) -> grpc.ChannelCredentials:
    ca, key, cert = _tls_files(settings, identity or settings.service)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def _caller_of(context: grpc.aio.ServicerContext, mtls: bool) -> str | None:
    if not mtls:
        for key, value in context.invocation_metadata() or ():
            if key == CALLER_METADATA:
                return str(value)
        return None
    properties = context.auth_context()
    for raw in properties.get("peer_spiffe_id", []) or properties.get("x509_subject_alternative_name", []):
        value = raw.decode() if isinstance(raw, bytes) else raw
        if value.startswith(SPIFFE_PREFIX):
            return value.removeprefix(SPIFFE_PREFIX)
    return None


# ---------------------------------------------------------------- server


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    """Guards unary calls and server streams alike. A method of another kind is refused as
    UNIMPLEMENTED, so that no call ever skips the caller and token checks."""

    def __init__(self, settings: ServiceSettings, verifier: Callable[[], auth.TokenVerifier | None], chaos: ChaosSwitch):
        self._settings = settings
        self._verifier = verifier
        self._chaos = chaos

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc.health"):
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._serving(method, context):
                    return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                guarded,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._serving(method, context):
                    async for response in stream(request, context):
                        yield response

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return None  # a client stream: answered UNIMPLEMENTED, as no guard covers it

    @contextlib.asynccontextmanager
    async def _serving(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Admits the caller and its user, and answers what the servicer raised, around the
        servicer's whole work: one response, or every message of a stream."""
        settings = self._settings
        metadata = {key: value for key, value in (context.invocation_metadata() or ())}
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        request_id = metadata.get("x-request-id")
        structlog.contextvars.bind_contextvars(request_id=request_id, rpc=method)
        current_request_id.set(request_id)
        with _tracer.start_as_current_span(
            f"{settings.service}/{method}", context=propagate.extract(metadata), kind=SpanKind.SERVER
        ) as span:
            try:
                caller = _caller_of(context, settings.mtls_enabled)
                if caller is None or caller not in settings.allowed_callers:
                    log.warning("caller_refused", caller=caller)
                    code = grpc.StatusCode.PERMISSION_DENIED
                    await context.abort(code, f"caller {caller!r} may not call {settings.service}")
                auth.current_caller.set(caller)
                authorization = metadata.get("authorization")
                _forwarded_authorization.set(authorization)
                verifier = self._verifier()
                principal_token = auth.current_principal.set(None)
                if authorization is not None and verifier is not None:
                    try:
                        auth.current_principal.set(await auth.principal_from_metadata(metadata, verifier))
                    except auth.Unauthenticated as error:
                        log.info("token_refused", reason=str(error))
                        code = grpc.StatusCode.UNAUTHENTICATED
                        await context.abort(code, "invalid or expired access token")
                    except auth.KeysUnavailable as error:
                        log.warning("token_unchecked", reason=str(error))
                        code = grpc.StatusCode.UNAVAILABLE
                        context.set_trailing_metadata(((UNAVAILABLE_DEPENDENCY_KEY, error.dependency),))
                        await context.abort(code, f"{error.dependency} is unavailable; try again")
                try:
                    await self._chaos.before_call(method)
                except InjectedFault as fault:
                    code = grpc.StatusCode.UNAVAILABLE
                    await context.abort(code, str(fault))
                remaining = context.time_remaining()
                try:
                    with deadline_scope(remaining):
                        yield
                except auth.Unauthenticated:
                    code = grpc.StatusCode.UNAUTHENTICATED
                    await context.abort(code, "a valid access token is required")
                except auth.PermissionDenied as error:
                    code = grpc.StatusCode.PERMISSION_DENIED
                    await context.abort(code, str(error) or "not allowed")
                except InvalidArgument as error:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    violations = [{"field": field, "message": message} for field, message in error.violations]
                    context.set_trailing_metadata(((FIELD_VIOLATIONS_KEY, json.dumps(violations)),))
                    await context.abort(code, str(error))
                except DependencyUnavailable as error:
                    code = grpc.StatusCode.UNAVAILABLE
                    cause = error.__cause__
                    log.warning("dependency_unavailable", dependency=error.dependency,
                                cause=(str(cause) or type(cause).__name__) if cause else None)
                    context.set_trailing_metadata(((UNAVAILABLE_DEPENDENCY_KEY, error.dependency),))
                    await context.abort(code, str(error))
                finally:
                    auth.current_principal.reset(principal_token)
            except grpc.aio.AbortError:
                code = context.code() or code
                raise
            except asyncio.CancelledError:  # the caller gave up, or its deadline passed
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                span.set_status(trace.Status(trace.StatusCode.ERROR))
                log.exception("grpc_handler_failed")
                await context.abort(code, "internal error")
            finally:
                if context.code() not in (None, grpc.StatusCode.OK) and code is grpc.StatusCode.OK:
                    code = context.code()
                metrics.grpc_server_requests.labels(settings.service, method, code.name).inc()
                metrics.grpc_server_duration.labels(settings.service, method).observe(time.perf_counter() - started)
                structlog.contextvars.unbind_contextvars("request_id", "rpc")


class _ReadinessHealth(health.aio.HealthServicer):
    """The standard health service, answering NOT_SERVING while the service is not ready (its
    database unreachable, say), as its `/readyz` does: a caller that asks, such as the gateway's
    own readiness, learns what the service can really do, not merely that it runs."""

    def __init__(self, readiness: Readiness | None):
        super().__init__()
        self._readiness = readiness

    async def Check(self, request, context):  # type: ignore[no-untyped-def]
        if self._readiness is not None and await self._readiness.failing():
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return await super().Check(request, context)


class GrpcServer:
    """A `grpc.aio` server with the chassis interceptor, mTLS and the standard health service."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        verifier: Callable[[], auth.TokenVerifier | None],
        chaos: ChaosSwitch,
        readiness: Readiness | None = None,
    ):
        self._settings = settings
        # A rolling restart starts the new process on the same port before the old one stops.
        options: list[tuple[str, int]] = [("grpc.so_reuseport", 1)]
        if settings.grpc_max_connection_age_seconds > 0:
            # No grace limit: an aged connection takes no new calls, and those under way, an
            # order's event stream among them (up to ten minutes), end when they end.
            options.append(("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_seconds * 1000)))
        self._server = grpc.aio.server(interceptors=[_ServerInterceptor(settings, verifier, chaos)], options=options)
        self.health = _ReadinessHealth(readiness)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)

    def add(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        add_to_server(servicer, self._server)

    async def start(self) -> None:
        settings = self._settings
        address = f"{settings.host}:{settings.grpc_port}"
        if settings.mtls_enabled:
            self._server.add_secure_port(address, server_credentials(settings))
        else:
            self._server.add_insecure_port(address)
        await self._server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)


# ---------------------------------------------------------------- client


class _ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, settings: ServiceSettings, target: str, guard: Guard, identity: str):
        self._service = settings.service
        self._target = target
        self._guard = guard
        self._identity = identity
        self._mtls = settings.mtls_enabled

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        path = client_call_details.method
        path = path.decode() if isinstance(path, bytes) else path
        method = path.rsplit("/", 1)[-1]
        idempotent = _is_idempotent(method)

        async def attempt(timeout: float, *, wait_for_ready: bool = False) -> Any:
            metadata = _outgoing_metadata(client_call_details, self._identity, self._mtls)
            details = client_call_details._replace(timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready)
            started = time.perf_counter()
            code = "OK"
            try:
                call = await continuation(details, request)
                return await call
            except grpc.aio.AioRpcError as error:
                code = error.code().name
                raise
            except asyncio.CancelledError:
                # The caller gave up (its own deadline passed, say): not a success to count.
                code = grpc.StatusCode.CANCELLED.name
                raise
            except Exception:
                code = grpc.StatusCode.UNKNOWN.name
                raise
            finally:
                metrics.grpc_client_requests.labels(self._service, self._target, method, code).inc()
                metrics.grpc_client_duration.labels(self._service, self._target, method).observe(
                    time.perf_counter() - started
                )

        # A timeout the caller gave this one call narrows the deadline like an incoming one does.
        with _tracer.start_as_current_span(f"{self._target}/{method}", kind=SpanKind.CLIENT), deadline_scope(
            client_call_details.timeout
        ):
            if path.startswith(_HEALTH_SERVICE):
                # A health probe asks how the dependency is now: an open breaker must neither
                # answer for it (readiness would lag the recovery by the open period) nor count
                # it, and a connection still being made is waited for within the probe's time.
                return await attempt(timeout_for_next_call(HEALTH_PROBE_SECONDS), wait_for_ready=True)
            return await self._guard.call(
                lambda timeout: attempt(timeout_for_next_call(timeout)), idempotent=idempotent
            )


class _StreamClientInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """A server stream carries the same metadata as a unary call, but skips the resilience
    guard: it lasts as long as its follower wants, and would hold a bulkhead slot all that time.
    Its caller gives it a timeout and resumes it when it breaks."""

    def __init__(self, settings: ServiceSettings, identity: str):
        self._identity = identity
        self._mtls = settings.mtls_enabled

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        metadata = _outgoing_metadata(client_call_details, self._identity, self._mtls)
        return await continuation(client_call_details._replace(metadata=metadata), request)


def _outgoing_metadata(details: grpc.aio.ClientCallDetails, identity: str, mtls: bool) -> grpc.aio.Metadata:
    """The call's own metadata, plus the trace, the request id, the user's token and (without
    mTLS) the caller's name."""
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for key, value in carrier.items():
        metadata.add(key, value)
    if (request_id := current_request_id.get()) is not None:
        metadata.add("x-request-id", request_id)
    if (authorization := _forwarded_authorization.get()) is not None and "authorization" not in {
        key for key, _ in metadata
    }:
        metadata.add("authorization", authorization)
    if not mtls:
        metadata.add(CALLER_METADATA, identity)
    return metadata


_HEALTH_SERVICE = "/grpc.health.v1.Health/"
HEALTH_PROBE_SECONDS = 1.0
RECONNECT_BACKOFF_MS = (200, 2_000)


_IDEMPOTENT_PREFIXES = ("Get", "List", "Recommend", "Sales", "Check", "Ensure", "Set", "Remove", "Clear")


def _is_idempotent(method: str) -> bool:
    """Reads, and writes whose repeat has the same effect, may be retried; others never are.

    `Set*`, `Remove*` and `Clear` set an absolute state; `PlaceOrder` is safe to repeat only
    because it carries an idempotency key, and is retried by the client that holds the key.
    """
    return method.startswith(_IDEMPOTENT_PREFIXES)


def open_channel(
    settings: ServiceSettings,
    target: str,
    guard: Guard,
    *,
    addresses: Sequence[str] | None = None,
    identity: str | None = None,
) -> grpc.aio.Channel:
    """A channel to every instance of `target`, balanced round-robin on the client side."""
    uri = _channel_target(list(addresses or settings.peer(target)))
    options = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.enable_retries", 0),  # retries are ours: budgeted, and only for idempotent calls
        ("grpc.keepalive_time_ms", 30_000),
        # gRPC's default reconnect backoff grows to two minutes: a peer restarted by the
        # supervisor or a rolling restart would be back long before its callers looked again.
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
        ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
    ]
    identity = identity or settings.service
    interceptors = [_ClientInterceptor(settings, target, guard, identity), _StreamClientInterceptor(settings, identity)]
    if settings.mtls_enabled:
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.aio.secure_channel(
            uri, channel_credentials(settings, identity), options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(uri, options=options, interceptors=interceptors)


def _channel_target(addresses: Sequence[str]) -> str:
    """gRPC's target for the instances: their IP addresses as given (`agora up` knows each
    instance's port), or one DNS name that resolves to every instance (a Kubernetes headless
    Service). gRPC resolves the name again when a connection ends, which servers behind one make
    happen with `grpc_max_connection_age_seconds`, so callers find the instances added since."""
    hosts = [address.rsplit(":", 1)[0] for address in addresses]
    if all(_is_ipv4(host) for host in hosts):
        return "ipv4:" + ",".join(addresses)
    if len(addresses) == 1:
        return f"dns:///{addresses[0]}"
    raise ValueError(f"a peer is either IPv4 addresses or one DNS name, not {list(addresses)}")


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


ErrorMapper = Callable[[Exception], tuple[grpc.StatusCode, str] | None]


def translating(mapper: ErrorMapper) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Decorates a servicer method: domain errors become status codes, in one place per service."""

    def decorate(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await method(self, request, context)
            except (auth.Unauthenticated, auth.PermissionDenied, InvalidArgument, DependencyUnavailable):
                raise
            except Exception as error:
                mapped = mapper(error)
                if mapped is None:
                    raise
                await context.abort(*mapped)

        wrapper.__name__ = method.__name__
        wrapper.__doc__ = method.__doc__
        return wrapper

    return decorate
