"""The errors an operator can act on, and how every `agora` command reports them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

# soft_wrap: a message stays one line, whatever the terminal's width. No markup: messages quote
# paths, names and log lines, whose brackets Rich would otherwise eat or choke on.
errors = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
CommandT = TypeVar("CommandT", bound=Callable[..., Any])


class AgoraError(Exception):
    """A failure the user can act on: the CLI prints its message as one line and exits 1.

    `details` (for example the last lines of a failing service's log) follow that line.
    """

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


def one_line_errors(command: CommandT) -> CommandT:
    """An AgoraError becomes one line on stderr (plus its details) and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AgoraError as error:
            errors.print(Text.assemble(("error:", "red"), f" {error}"))
            for line in error.details:
                errors.print(f"  {line}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
