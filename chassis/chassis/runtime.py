"""One call runs a service: `runtime.run(SettingsClass, build)`.

`build(app)` is the service's composition root. It asks the app for what it needs (a Postgres
pool with migrations applied, Redis, channels to the services it calls) and registers what it
offers (gRPC servicers, workers such as the outbox relay and consumers, readiness checks).
Nothing connects before `build` runs, and everything registered is stopped in reverse order
on SIGTERM: readiness goes false first, then in-flight calls and messages finish.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import asyncpg
import grpc

from chassis import auth, db, logs, resilience, tracing
from chassis import settings as settings_module
from chassis.admin_http import AdminServer
from chassis.chaos import ChaosSwitch
from chassis.grpc import GrpcServer, open_channel
from chassis.health import Readiness
from chassis.periodic import Periodic
from chassis.settings import ServiceSettings

if TYPE_CHECKING:
    from chassis import messaging

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
log = logs.get_logger("chassis.runtime")


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class HttpServer(Protocol):
    """The gateway's edge server; replaces the admin server on the same port."""

    async def serve(self) -> None: ...
    async def shutdown(self) -> None: ...


class ServiceApp:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.readiness = Readiness()
        self.chaos = ChaosSwitch(settings.chaos_dir, settings.service)
        self.policies = resilience.load_policies()
        self._verifier: auth.TokenVerifier | None = None
        self._grpc: GrpcServer | None = None
        self._http: HttpServer | None = None
        self._workers: list[Worker] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self._on_stopping: list[Callable[[], None]] = []
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._bus: messaging.Bus | None = None  # connected on first use

    # ------------------------------------------------------------ what a service needs

    async def postgres(self, migrations: dict[str, Path], *, max_size: int = 10) -> asyncpg.Pool:
        """The service's own database, migrated. `migrations` maps a namespace to its directory."""
        if not self.settings.dsn:
            raise RuntimeError(f"{self.settings.service} needs AGORA_DSN")
        pool = await db.connect(self.settings.dsn, max_size=max_size)
        await db.migrate(pool, migrations)
        self.readiness.add("postgres", lambda: pool.fetchval("SELECT 1"))
        self._closers.append(pool.close)
        return pool

    async def redis(self) -> Any:
        from redis.asyncio import Redis

        if not self.settings.redis_url:
            raise RuntimeError(f"{self.settings.service} needs AGORA_REDIS_URL")
        client = Redis.from_url(self.settings.redis_url)
        await client.ping()
        self.readiness.add("redis", client.ping)
        self._closers.append(client.aclose)
        return client

    def channel(self, target: str) -> grpc.aio.Channel:
        """One shared channel per dependency, guarded by that dependency's resilience policy."""
        if target not in self._channels:
            guard = resilience.Guard(target, self.policies.for_dependency(target))
            self._channels[target] = open_channel(self.settings, target, guard)
            self._closers.append(self._channels[target].close)
        return self._channels[target]

    async def bus(self) -> messaging.Bus:
        """The event bus (NATS JetStream, or RabbitMQ with AGORA_BUS=rabbitmq), connected once."""
        from chassis import messaging

        if self._bus is None:
            self._bus = await messaging.connect_bus(self.settings)
            self.readiness.add("bus", self._bus.healthy)
            self._closers.append(self._bus.close)
        return self._bus

    async def outbox(self, pool: asyncpg.Pool) -> messaging.Outbox:
        """An outbox for this service's events, with its relay running as a worker."""
        from chassis import messaging

        bus = await self.bus()
        self.add_worker(messaging.OutboxRelay(pool, bus, service=self.settings.service))
        return messaging.Outbox(self.settings.service)

    async def consume(self, subscriptions: dict[str, messaging.Handler], inbox: messaging.Inbox) -> None:
        """Handles the listed event types; one durable consumer named after this service."""
        from chassis import messaging

        self.add_worker(messaging.Consumer(self.settings.service, await self.bus(), inbox, subscriptions))
        if isinstance(inbox, messaging.PostgresInbox):
            self.add_worker(Periodic("forget-inbox-claims", 3600, inbox.forget_expired))

    # ------------------------------------------------------------ what a service offers

    def verify_tokens(self, verifier: auth.TokenVerifier) -> None:
        """Calls carrying a user token get `auth.current_principal` set from the verified token."""
        self._verifier = verifier

    def add_grpc_service(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        if self._grpc is None:
            self._grpc = GrpcServer(self.settings, verifier=lambda: self._verifier, chaos=self.chaos,
                                    readiness=self.readiness)
        self._grpc.add(add_to_server, servicer)

    def serve_http(self, server: HttpServer) -> None:
        self._http = server

    def add_worker(self, worker: Worker) -> None:
        self._workers.append(worker)

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        self.readiness.add(name, check)

    def on_shutdown(self, close: Callable[[], Awaitable[Any]]) -> None:
        self._closers.append(close)

    def on_stopping(self, end: Callable[[], None]) -> None:
        """`end()` runs as soon as the service is told to stop, before its servers wait for the
        calls in flight: it should end what would otherwise last the whole grace period (a
        server stream, which its client then takes up with another instance)."""
        self._on_stopping.append(end)

    # ------------------------------------------------------------ lifecycle

    async def run_until_stopped(self, stop: asyncio.Event) -> None:
        settings = self.settings
        admin = None if self._http else AdminServer(settings.host, settings.http_port, self.readiness)
        http_task = None
        if admin:
            await admin.start()
        if self._grpc:
            await self._grpc.start()
        for worker in self._workers:
            await worker.start()
        if self._http:
            http_task = asyncio.create_task(self._http.serve())
        self.readiness.accepting = True
        log.info("service_started", grpc_port=settings.grpc_port, http_port=settings.http_port)

        await stop.wait()
        log.info("service_stopping")
        self.readiness.accepting = False
        for end in self._on_stopping:
            end()
        if self._http and http_task:
            await self._http.shutdown()
            await http_task
        if self._grpc:
            await self._grpc.stop(settings.shutdown_grace_seconds)
        for worker in reversed(self._workers):
            await worker.stop()
        for close in reversed(self._closers):
            await close()
        if admin:
            await admin.stop()
        log.info("service_stopped")


async def _main(settings: ServiceSettings, build: Callable[[ServiceApp], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = ServiceApp(settings)
    await build(app)
    await app.run_until_stopped(stop)


def run(settings_class: type[SettingsT], build: Callable[[Any], Awaitable[None]]) -> None:
    """The whole `__main__` of a service."""
    settings = settings_module.load(settings_class)
    logs.configure(settings.service, level=settings.log_level)
    tracing.configure(settings.service, settings.instance)
    if settings.mtls == "off":
        log.warning("mtls_off", detail="AGORA_MTLS=off: gRPC is unencrypted and callers are unauthenticated")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(settings, build))
