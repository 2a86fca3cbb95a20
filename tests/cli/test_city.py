"""`agora up --detach`, `status`, the supervisor's restarts and `down`, on a city of stand-ins."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from email.message import EmailMessage
from urllib.request import urlopen

import aio_pika
import psutil

from tests.cli.conftest import AGORA, City, alive, free_port, wait_for
from tests.conftest import RABBITMQ_URL


def test_up_status_restart_down_leaves_no_process(city: City) -> None:
    started = city.agora("up", "--detach", "--timeout", "30")
    assert started.returncode == 0, started.stderr
    assert f"http://127.0.0.1:{city.env['AGORA_GATEWAY_PORT']}" in started.stdout

    status = city.status()
    assert set(status) == {"services", "infra"}
    assert [entry["name"] for entry in status["services"]] == ["tinyalpha", "tinybeta", "tinygate"]
    for entry in status["services"]:
        assert set(entry) == {"name", "instance", "pid", "healthy", "stopped", "grpc", "http"}
        assert entry["instance"] == 0
        assert entry["healthy"] is True
        assert alive(entry["pid"])
    gate = next(entry for entry in status["services"] if entry["name"] == "tinygate")
    assert gate["grpc"] is None and gate["http"] == f"127.0.0.1:{city.env['AGORA_GATEWAY_PORT']}"
    assert {entry["name"] for entry in status["infra"]} == {"postgres", "nats", "redis", "smtp"}
    for entry in status["infra"]:
        assert set(entry) == {"name", "pid", "url", "embedded", "healthy", "stopped"}
        assert entry["embedded"] is True and entry["healthy"] is True and alive(entry["pid"])
    postgres = next(entry for entry in status["infra"] if entry["name"] == "postgres")
    assert ":" not in postgres["url"].split("@")[0].removeprefix("postgresql://"), "password shown"
    # Services are forked from the fork server, yet the supervisor's own children; the fork server
    # is gone once the city is up.
    supervisor = psutil.Process(city.state()["supervisor"]["pid"])
    children = {child.pid for child in supervisor.children()}
    assert children == {entry["pid"] for entry in [*status["services"], *status["infra"]]}
    for entry in status["services"]:
        assert " ".join(psutil.Process(entry["pid"]).cmdline()).strip().endswith(f" -P -m {entry['name']}")

    victim = status["services"][0]
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> bool:
        entry = city.status()["services"][0]
        return entry["pid"] != victim["pid"] and entry["healthy"]

    assert wait_for(restarted, timeout=15)

    everything = city.processes()
    assert len(everything) == 1 + 3 + 4
    stopped = city.agora("down")
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for pid, _ in everything if alive(pid)]
    assert not (city.home / "city.json").exists()


def test_services_get_their_environment(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    services = {entry["name"]: entry for entry in city.state()["services"]}
    with urlopen(f"http://{services['tinybeta']['http']}/env", timeout=5) as response:
        beta = json.load(response)
    assert beta["AGORA_SERVICE"] == "tinybeta"
    assert beta["AGORA_CITY"] == city.env["AGORA_CITY"]
    assert json.loads(beta["AGORA_PEERS"]) == {"tinyalpha": [services["tinyalpha"]["grpc"]]}
    assert beta["AGORA_ALLOWED_CALLERS"] == "tinygate"  # the operator calls only identity and analytics
    assert beta["AGORA_NATS_URL"].startswith("nats://tinybeta:")  # its own login to the embedded NATS
    assert beta["AGORA_NATS_INBOX_PREFIX"] == "_INBOX_tinybeta"  # where it alone may hear answers
    assert beta["AGORA_DSN"].startswith(f"postgresql://{city.env['AGORA_CITY']}_tinybeta:")
    assert beta["AGORA_REDIS_URL"].startswith("redis://tinybeta:")  # its own login to the embedded Redis
    assert beta["AGORA_MTLS"] == "on"
    for name in ("ca.pem", "tinybeta.pem", "tinybeta.key", "cli.pem", "cli.key"):
        assert (city.home / "tls" / name).exists()
    assert (city.home / "tls" / "tinybeta.key").stat().st_mode & 0o777 == 0o600
    assert (city.home / "secrets" / "tinybeta.password").stat().st_mode & 0o777 == 0o600


def test_second_up_in_the_same_home_fails_with_one_line(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    second = city.agora("up", "--detach", "--timeout", "30")
    assert second.returncode != 0
    assert second.stderr.strip().count("\n") == 0
    assert "already running" in second.stderr


def test_gateway_port_in_use_fails_with_one_line(city: City) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = city.agora("up", "--detach", "--timeout", "30", AGORA_GATEWAY_PORT=port)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert not (city.home / "city.json").exists()


def test_unreachable_external_server_fails_with_one_line(city: City) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    result = city.agora("up", "--detach", "--timeout", "30", AGORA_NATS_URL=nowhere)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "AGORA_NATS_URL" in result.stderr and "Traceback" not in result.stderr
    assert not (city.home / "city.json").exists()


def test_a_service_that_never_gets_ready_fails_up_with_its_log(city: City) -> None:
    earlier_run = city.home / "logs" / "tinybeta-0.log"
    earlier_run.parent.mkdir(parents=True)
    earlier_run.write_text("a line an earlier run wrote\n")

    started = time.monotonic()
    result = city.agora("up", "--detach", "--timeout", "120", TINY_BROKEN="tinybeta", timeout=180)

    assert result.returncode != 0
    # It crash-loops from the start: up gives up after three exits instead of waiting out its timeout.
    assert "tinybeta-0 exited 3 times while starting" in result.stderr and time.monotonic() - started < 60
    assert "broken on purpose" in result.stderr and "earlier run" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (city.home / "city.json").exists()


def test_mail_lists_what_the_embedded_sink_received(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    smtp = next(entry for entry in city.state()["infra"] if entry["name"] == "smtp")
    host, port = smtp["url"].removeprefix("smtp://").split(":")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "shop@agora.local", "ada@example.com", "Your order"
    message.set_content("shipped")
    with smtplib.SMTP(host, int(port), timeout=5) as client:
        client.send_message(message)
    listing = city.agora("mail")
    assert "ada@example.com" in listing.stdout and "Your order" in listing.stdout
    whole = city.agora("mail", "--show", "1")
    assert "shipped" in whole.stdout


def test_a_rabbitmq_city_s_dead_letters_are_listed_from_any_shell(city: City) -> None:
    """The broker's URL, password included, is kept under the home's secrets at `up`."""
    rabbitmq = {"AGORA_BUS": "rabbitmq", "AGORA_RABBITMQ_URL": RABBITMQ_URL}
    started = city.agora("up", "--detach", "--timeout", "30", **rabbitmq)
    assert started.returncode == 0, started.stderr
    kept = city.home / "secrets" / "rabbitmq.url"
    assert kept.read_text() == RABBITMQ_URL and kept.stat().st_mode & 0o777 == 0o600
    try:
        listed = city.agora("dlq", "list", AGORA_RABBITMQ_URL="")
        assert listed.returncode == 0, listed.stderr
        assert "no dead letters" in listed.stdout
    finally:
        asyncio.run(_delete_queue(f"{city.env['AGORA_CITY']}.dlq"))
    assert city.agora("down").returncode == 0


async def _delete_queue(name: str) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        await (await connection.channel()).queue_delete(name)


def test_down_while_up_is_starting_says_the_city_was_stopped_while_starting(city: City) -> None:
    earlier_run = city.home / "logs" / "supervisor.log"
    earlier_run.parent.mkdir(parents=True)
    earlier_run.write_text("a line an earlier run wrote\n")
    # A Postgres that takes connections and never answers holds the start for a while.
    with socket.socket() as silent_postgres:
        silent_postgres.bind(("127.0.0.1", 0))
        silent_postgres.listen()
        database_url = f"postgresql://postgres@127.0.0.1:{silent_postgres.getsockname()[1]}/postgres"
        starting = subprocess.Popen(
            [str(AGORA), "up", "--detach", "--timeout", "30"],
            env={**city.env, "AGORA_DATABASE_URL": database_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert wait_for(lambda: (city.home / "city.json").exists(), timeout=20)

        assert city.agora("down").returncode == 0
        _, stderr = starting.communicate(timeout=60)

    assert starting.returncode == 1
    assert stderr == f"error: the city in {city.home} was stopped while starting\n"
