"""Sending through a real SMTP server (`AGORA_SMTP_URL`, `smtp://host:port`)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from chassis.messaging import PermanentFailure
from notifications.emails import Mail


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


class Undeliverable(PermanentFailure):
    """The server refused the message with a permanent (5xx) reply, or cannot take a non-ASCII
    address at all: sending it again would be refused again."""


class SmtpMailer:
    """One SMTP session, opened for the first message and kept for the next ones: a session per
    message cost a connection, EHLO and QUIT each time, on both sides. Messages go over it one at
    a time, in a worker thread (smtplib blocks).

    A kept session the server has dropped since (an idle timeout, a restart) is replaced and the
    message sent on the new one. Any other failure closes the session and raises, so the event is
    retried, unless the server refused the message for good (`Undeliverable`). A message the
    server accepted is never reported as failed."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "smtp" or not parts.hostname or not parts.port:
            raise ValueError(f"expected smtp://host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self._timeout = timeout
        self._session: smtplib.SMTP | None = None
        self._turn = asyncio.Lock()

    async def send(self, mail: Mail) -> None:
        async with self._turn:
            await asyncio.to_thread(self._send, mail)

    async def close(self) -> None:
        async with self._turn:
            await asyncio.to_thread(self._close)

    def _send(self, mail: Mail) -> None:
        if self._session is not None:
            try:
                _deliver(self._session, mail)
                return
            except smtplib.SMTPServerDisconnected:  # smtplib's word for any broken connection
                self._session = None
            except BaseException:
                self._close()
                raise
        self._session = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        try:
            _deliver(self._session, mail)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.quit()
        except (smtplib.SMTPException, OSError):  # already gone: nothing left to say goodbye to
            session.close()


def _deliver(session: smtplib.SMTP, mail: Mail) -> None:
    # An address that is not ASCII travels only under SMTPUTF8 (RFC 6531), which implies 8BITMIME.
    options = () if (mail.sender + mail.recipient).isascii() else ("SMTPUTF8", "BODY=8BITMIME")
    try:
        session.sendmail(mail.sender, [mail.recipient], mail.data, options)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            raise Undeliverable(f"{mail.recipient!r} refused: {_replies(error.recipients.values())}") from error
        raise
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
        if error.smtp_code >= 500:
            raise Undeliverable(f"refused: {_replies([(error.smtp_code, error.smtp_error)])}") from error
        raise
    except smtplib.SMTPNotSupportedError as error:  # the server lacks SMTPUTF8 for a non-ASCII address
        raise Undeliverable(str(error)) from error


def _replies(replies: Iterable[tuple[int, bytes]]) -> str:
    return "; ".join(f"{code} {message.decode(errors='replace')}" for code, message in replies)
