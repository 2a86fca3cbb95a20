"""The embedded servers and provisioning, driven directly (no supervisor), against real binaries."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import nats as nats_client
import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from agora_cli import bus_setup, infra
from agora_cli.config import Home
from agora_cli.errors import AgoraError
from agora_cli.net import wait_until
from agora_cli.processes import same_process_alive
from agora_cli.provision import provision
from chassis.messaging.nats_bus import NatsBus
from tests.cli.conftest import free_port
from tests.conftest import ADMIN_DSN, RABBITMQ_URL, unique_city


async def started(server: infra.Infra) -> infra.Infra:
    assert server.child is not None
    server.child.spawn()
    assert await wait_until(lambda: infra.answers(server), timeout=30), server.child.log_path.read_text()
    return server


async def stop(server: infra.Infra) -> None:
    assert server.child is not None
    pid, created = server.child.pid, server.child.created
    await server.child.stop(10)
    assert not same_process_alive(pid, created)
    assert not await infra.answers(server)


@pytest.fixture
def home(agora_home: Path) -> Home:
    home = Home(agora_home)
    home.create()
    return home


@pytest.fixture
async def postgres(home: Home) -> AsyncIterator[infra.Infra]:
    server = await asyncio.to_thread(infra.postgres, home, free_port(), "superuser-secret")
    await started(server)
    yield server
    await stop(server)


async def test_nats_redis_and_smtp_start_answer_and_stop(home: Home) -> None:
    nats = infra.nats(home, free_port(), free_port(), city="c", services=["tinyalpha"])
    servers = [nats, infra.redis(home, free_port(), city="c", services=["tinyalpha"]), infra.smtp(home, free_port())]
    await asyncio.gather(*(started(server) for server in servers))
    for server in servers:
        await stop(server)
    assert (home.root / "nats.conf").stat().st_mode & 0o777 == 0o600  # it holds the passwords
    assert (home.root / "redis.acl").stat().st_mode & 0o777 == 0o600


async def test_on_the_embedded_redis_each_service_logs_in_and_reaches_only_its_own_keys(home: Home) -> None:
    """The gateway's rate limits sit beside cart's carts: neither may read the other's keys, and
    no one without a login may read either."""
    server = await started(infra.redis(home, free_port(), city="c", services=["cart", "gateway"]))
    cart = Redis.from_url(infra.redis_login(home, server.url, "cart"))
    gateway = Redis.from_url(infra.redis_login(home, server.url, "gateway"))
    try:
        await cart.hset("c:cart:user:ada", "p1", 2)
        assert await cart.hgetall("c:cart:user:ada") == {b"p1": b"2"}
        assert await cart.eval("return redis.call('HGET', KEYS[1], 'p1')", 1, "c:cart:user:ada") == b"2"
        script = cart.register_script("return redis.call('HLEN', KEYS[1])")  # SCRIPT LOAD, EVALSHA
        assert await script(keys=["c:cart:user:ada"]) == 1
        await gateway.set("c:gateway:rl:x", 1)
        for refused in (
            gateway.hgetall("c:cart:user:ada"),  # another service's keys
            gateway.eval("return redis.call('HGETALL', KEYS[1])", 1, "c:cart:user:ada"),
            gateway.delete("c:cart:user:ada"),
            cart.get("c:gateway:rl:x"),
            cart.set("elsewhere", 1),  # outside every service's keys
            cart.flushall(),  # the commands Redis calls dangerous
            cart.keys("*"),
            cart.config_get("dir"),
            gateway.scan(),  # nor list or count others' keys, which name no key themselves
            gateway.randomkey(),
            gateway.dbsize(),
            gateway.memory_stats(),
            gateway.script_flush(),  # nor flush or kill others' scripts
            gateway.script_kill(),
        ):
            with pytest.raises(redis_errors.NoPermissionError):
                await refused
        with pytest.raises(redis_errors.AuthenticationError):
            await Redis.from_url(server.url).ping()  # no login
        with pytest.raises(redis_errors.AuthenticationError):
            await Redis.from_url(server.url.replace("redis://", "redis://cart:wrong@")).ping()
        assert await cart.hgetall("c:cart:user:ada") == {b"p1": b"2"}
    finally:
        await cart.aclose()
        await gateway.aclose()
        await stop(server)
    secrets_in_acl = (home.root / "redis.acl").read_text()
    assert infra.redis_login(home, server.url, "cart").split(":")[2].split("@")[0] not in secrets_in_acl  # hashed


async def test_a_service_role_reaches_only_its_own_database_and_needs_its_password(
    postgres: infra.Infra, home: Home
) -> None:
    city = unique_city()
    alpha = await provision(postgres.url, city, "alpha", "alpha-secret")
    beta = await provision(postgres.url, city, "beta", "beta-secret")

    connection = await asyncpg.connect(alpha)
    await connection.execute("CREATE TABLE things (id int)")
    await connection.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(beta.rsplit("/", 1)[0] + f"/{city}_alpha")
    await infra.close_maintenance_databases(postgres.url)
    for maintenance in ("postgres", "template1"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(beta.rsplit("/", 1)[0] + f"/{maintenance}")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(alpha.replace("alpha-secret", "guess"))

    assert await provision(postgres.url, city, "alpha", "alpha-secret") == alpha
    connection = await asyncpg.connect(alpha)
    assert await connection.fetchval("SELECT count(*) FROM things") == 0
    await connection.close()


async def test_the_services_reach_an_embedded_postgres_over_its_socket_and_still_need_their_password() -> None:
    root = Path(tempfile.mkdtemp(prefix="agora-socket-"))  # short: a socket's path has at most 107 bytes
    try:
        home = Home(root)
        home.create()
        port = free_port()
        postgres = await started(await asyncio.to_thread(infra.postgres, home, port, "superuser-secret"))
        try:
            assert postgres.socket_dir is not None
            assert (postgres.socket_dir / f".s.PGSQL.{port}").is_socket()
            city = unique_city()
            alpha = await provision(postgres.url, city, "alpha", "alpha-secret", socket_dir=postgres.socket_dir)
            assert "127.0.0.1" not in alpha

            connection = await asyncpg.connect(alpha)
            assert await connection.fetchval("SELECT inet_server_addr()") is None  # NULL: a Unix socket
            await connection.close()
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(alpha.replace("alpha-secret", "guess"))
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(f"postgresql://postgres:guess@/postgres?host={postgres.socket_dir}&port={port}")
        finally:
            await stop(postgres)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_home_too_deep_for_a_socket_address_keeps_postgres_on_tcp(tmp_path: Path) -> None:
    home = Home(tmp_path / ("nested-" * 12))
    home.create()
    assert infra._socket_directory(home, 5432) is None
    assert not (home.root / "run").exists()


async def test_provisioning_on_an_external_server_revokes_public_connect() -> None:
    city = unique_city()
    alpha = await provision(ADMIN_DSN, city, "alpha", "alpha-secret")
    beta = await provision(ADMIN_DSN, city, "beta", "beta-secret")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(beta.rsplit("/", 1)[0] + f"/{city}_alpha")
        connection = await asyncpg.connect(alpha)
        await connection.close()
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        for name in (f"{city}_alpha", f"{city}_beta"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        await admin.close()


async def test_an_external_server_that_does_not_answer_is_named() -> None:
    server = infra.external("redis", f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(AgoraError, match="AGORA_REDIS_URL"):
        await infra.check_external(server)


async def test_every_consumer_of_the_topology_gets_its_rabbitmq_queue_before_any_service_starts() -> None:
    """Bound to what each service's subscription table names, so an event waits for a consumer
    that is not running yet; a service that consumes nothing, or is not installed, gets none."""
    city = unique_city()
    setup = await infra.BusSetup.start("rabbitmq", city, ["inventory", "gateway", "notinstalled"])
    await setup.run(RABBITMQ_URL)
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        catalog = await channel.get_exchange(f"{city}.catalog")
        await catalog.publish(aio_pika.Message(b"{}"), routing_key=f"{city}.catalog.ProductCreated")
        await catalog.publish(aio_pika.Message(b"{}"), routing_key=f"{city}.catalog.NobodyListens")
        inventory = await channel.get_queue(f"{city}.inventory")
        assert await wait_until(lambda: _holds(inventory, 1), timeout=5)
        for missing in ("gateway", "notinstalled"):
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await (await connection.channel()).get_queue(f"{city}.{missing}")
    finally:
        cleanup = await connection.channel()
        await cleanup.queue_delete(f"{city}.inventory")
        for producer in ("catalog", "orders"):
            await cleanup.exchange_delete(f"{city}.{producer}")
        await connection.close()


async def _holds(queue: aio_pika.abc.AbstractQueue, count: int) -> bool:
    declared = await queue.declare()
    return declared.message_count == count


async def test_the_operator_sets_up_the_bus_and_a_wrong_login_fails_the_start_clearly(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    nats = await started(infra.nats(home, free_port(), free_port(), city="c", services=["tinyalpha"]))
    try:
        operator = infra.nats_login(home, nats.url, infra.OPERATOR)
        await (await infra.BusSetup.start("nats", "c", ["inventory", "gateway", "tinyalpha"])).run(operator)
        client = await nats_client.connect(operator)
        try:
            names = {info.config.name for info in await client.jetstream().streams_info()}
            consumers = {info.name for info in await client.jetstream().consumers_info("C_ORDERS")}
        finally:
            await client.close()
        assert {"C_ORDERS", "C_CATALOG", "C_DLQ"} <= names
        assert consumers == {"inventory"}
        monkeypatch.setattr(bus_setup, "SETTLE_SECONDS", 2.0)
        with pytest.raises(SystemExit, match="NATS did not let the operator set up the streams"):
            await bus_setup.set_up(NatsBus(nats.url.replace("nats://", "nats://operator:wrong@"), "c"), {})
    finally:
        await stop(nats)


async def test_a_bus_that_cannot_be_set_up_fails_the_start_in_one_line() -> None:
    setup = await infra.BusSetup.start("rabbitmq", unique_city(), ["inventory"])
    with pytest.raises(AgoraError, match=r"could not set up the city's rabbitmq: .+") as caught:
        await setup.run(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    assert "\n" not in str(caught.value)


async def test_a_bus_setup_never_run_leaves_no_process() -> None:
    """The broker did not start: the setup, waiting for its URL, is ended."""
    setup = await infra.BusSetup.start("nats", unique_city(), ["inventory"])
    await setup.cancel()
    await setup.cancel()  # twice is harmless
    with pytest.raises(AgoraError):
        await setup.run("nats://127.0.0.1:1")
