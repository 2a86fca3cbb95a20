"""Notifications' composition root. No gRPC API: the runtime serves only the admin HTTP port."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from chassis import messaging, runtime
from chassis.settings import ServiceSettings
from notifications import handlers
from notifications.mailer import SmtpMailer

MIGRATIONS = {"notifications": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class NotificationsSettings(ServiceSettings):
    smtp_url: str = Field(pattern=r"^smtp://[^/:]+:\d+/?$")
    """`AGORA_SMTP_URL`, required: where every email goes."""
    mail_from: str = "Agora <no-reply@agora.example>"
    """`AGORA_MAIL_FROM`: the sender customers see."""


async def build(app: runtime.ServiceApp) -> None:
    settings = app.settings
    assert isinstance(settings, NotificationsSettings)
    pool = await app.postgres(MIGRATIONS)
    mailer = SmtpMailer(settings.smtp_url)
    app.on_shutdown(mailer.close)
    await app.consume(
        handlers.subscriptions(mailer=mailer, sender=settings.mail_from),
        messaging.PostgresInbox(pool),
    )
