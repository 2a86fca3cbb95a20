"""Sending through a real SMTP server (`AGORA_SMTP_URL`, `smtp://host:port`)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """One SMTP session per message, in a worker thread (smtplib blocks). Any failure raises, so
    the event is retried; a message the server accepted is never reported as failed."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "smtp" or not parts.hostname or not parts.port:
            raise ValueError(f"expected smtp://host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
            smtp.send_message(message)
