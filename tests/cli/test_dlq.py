"""`agora dlq` gives up on an event bus that does not answer, in one line, instead of hanging
(and without the chassis' log line for each failed attempt to reach it)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from agora_cli import dlq
from agora_cli.errors import AgoraError
from chassis.settings import ServiceSettings
from tests.cli.conftest import free_port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections and never says a word, as a hung broker does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("bus", ["nats", "rabbitmq"])
@pytest.mark.parametrize("answers", ["silent", "refused"])
def test_dlq_gives_up_on_a_bus_that_does_not_answer(
    bus: str, answers: str, silent_server: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = silent_server if answers == "silent" else free_port()
    settings = ServiceSettings(
        service="cli", http_port=0, city="c", bus=bus,
        nats_url=f"nats://127.0.0.1:{port}", rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{port}/",
    )
    monkeypatch.setattr(dlq, "_settings", lambda: settings)
    monkeypatch.setattr(dlq, "BUS_TIMEOUT_SECONDS", 1.0)
    started = time.monotonic()

    with pytest.raises(AgoraError) as gave_up:
        dlq._run(lambda bus: dlq._messaging().list_dead_letters(bus, None))

    assert time.monotonic() - started < 5
    assert "\n" not in str(gave_up.value)
    assert "event bus" in str(gave_up.value)
    assert capsys.readouterr().out == ""
