"""The city's embedded mail server: accepts every message and keeps it as one .eml file.

Run as `python -m agora_cli.smtp_sink --port PORT --dir DIR`. Nothing is relayed; `agora mail`
and tests read the files. Each file is written under a temporary name and renamed, so a reader
never sees half a message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from agora_cli.config import HOST


class MailDrop:
    def __init__(self, directory: Path):
        self._directory = directory

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # The envelope recipients are kept too: Bcc addresses appear nowhere else.
        header = f"X-Agora-Envelope-From: {envelope.mail_from}\r\nX-Agora-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        store(self._directory, header.encode() + content)
        return "250 Message accepted for delivery"


def store(directory: Path, message: bytes) -> Path:
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
    partial = directory / f".{name}.part"
    partial.write_bytes(message)
    os.replace(partial, directory / name)
    return directory / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    arguments = parser.parse_args()
    arguments.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(MailDrop(arguments.dir), hostname=HOST, port=arguments.port)
    controller.start()
    print(f"smtp sink on {HOST}:{arguments.port}, storing in {arguments.dir}", flush=True)

    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()

    asyncio.run(wait())
    controller.stop()


if __name__ == "__main__":
    main()
