"""`agora dlq list|replay`: the dead letters of a running city, and sending them back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agora_cli import state
from agora_cli.config import home_from_env
from agora_cli.errors import AgoraError, one_line_errors
from agora_cli.infra import operator_nats_url
from agora_cli.secrets_store import kept_url

if TYPE_CHECKING:
    from chassis.settings import ServiceSettings

dlq_app = typer.Typer(help="Dead letters: events a consumer gave up on, with the error.", no_args_is_help=True)
# No markup: letters' errors and refs are printed as they are, brackets included. Piped (a
# script, grep) not cut at 80 columns, as the other commands' output.
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 240)


def _messaging() -> ModuleType:
    """The chassis' messaging, imported only by the commands that use it: it pulls in NATS and
    aiohttp, which would add about a second to every `agora` command."""
    from chassis import messaging

    return messaging


def _settings() -> ServiceSettings:
    from chassis.settings import ServiceSettings

    home = home_from_env()
    city = state.running(home)
    infra = {entry["name"]: entry for entry in city["infra"]}
    bus = "rabbitmq" if "rabbitmq" in infra else "nats"
    return ServiceSettings(
        service="cli", http_port=0, city=city["city"], bus=bus,
        nats_url=operator_nats_url(home, infra["nats"]) if "nats" in infra else "nats://127.0.0.1:4222",
        rabbitmq_url=os.environ.get("AGORA_RABBITMQ_URL") or kept_url(home.secrets, "rabbitmq"),
    )


BUS_TIMEOUT_SECONDS = 15.0
"""For connecting to the city's bus."""
WORK_TIMEOUT_SECONDS = 600.0
"""For the command once connected. Not the 15 s: a replay moves one letter at a time (hundreds a
second), and a DLQ of a few thousand letters used to hit that limit part way. Each letter replayed
is gone from the dead letters, so a replay cut short is safe to run again for the rest."""


async def _with_bus(work: Any) -> Any:
    bus = await asyncio.wait_for(_messaging().connect_bus(_settings()), BUS_TIMEOUT_SECONDS)
    try:
        return await asyncio.wait_for(work(bus), WORK_TIMEOUT_SECONDS)
    finally:
        await bus.close()


def _run(work: Any) -> Any:
    """`work(bus)` on the city's bus; what goes wrong becomes an AgoraError, and a bus that does
    not answer (NATS stopped, say) is given up on instead of waited for forever."""
    try:
        with _chassis_logs_silenced():
            return asyncio.run(_with_bus(work))
    except AgoraError:
        raise
    except TimeoutError:
        raise AgoraError(
            "the city's event bus did not answer in time (see `agora status`); a replay cut short can be run"
            " again for the rest"
        ) from None
    except LookupError as error:
        raise AgoraError(str(error.args[0]) if error.args else "not found") from None
    except Exception as error:  # the broker's client raises its own kinds of connection errors
        raise AgoraError(f"cannot use the city's event bus: {str(error) or type(error).__name__}") from None


@contextlib.contextmanager
def _chassis_logs_silenced() -> Iterator[None]:
    """The chassis logs every failed attempt to reach the bus, a few a second, on stdout: a
    service's log wants them, an operator wants the one line `_run` gives instead."""
    import structlog  # as the chassis is: only the commands that reach the bus need it

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


@dlq_app.command("list")
@one_line_errors
def list_letters(consumer: Annotated[str | None, typer.Option(help="Only this consumer's.")] = None) -> None:
    """Every dead letter: which consumer, which event, why, and its ref for `replay`."""
    letters = _run(lambda bus: _messaging().list_dead_letters(bus, consumer))
    if not letters:
        console.print("no dead letters")
        return
    table = Table("ref", "consumer", "event", "deliveries", "when", "error")
    for letter in letters:
        table.add_row(letter.ref, letter.consumer, letter.event_type or "(malformed)", str(letter.deliveries),
                      letter.dead_lettered_at, letter.error[:120])
    console.print(table)


@dlq_app.command("replay")
@one_line_errors
def replay(
    ref: Annotated[str | None, typer.Argument(help="One letter's ref (from `list`); all when omitted.")] = None,
    consumer: Annotated[str | None, typer.Option(help="With no ref: only this consumer's.")] = None,
) -> None:
    """Sends letters back to their consumers. The inbox still guarantees nothing applies twice."""
    if ref is not None:
        if consumer is not None:
            raise typer.BadParameter("a REF names one letter already; give REF or --consumer", param_hint="--consumer")
        _run(lambda bus: _messaging().replay_dead_letter(bus, ref))
        console.print(f"replayed {ref}")
        return
    count = _run(lambda bus: _messaging().replay_all(bus, consumer))
    console.print(f"replayed {count} dead letter(s)")
