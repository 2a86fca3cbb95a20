"""The dead-letter stream: events a consumer gave up on, kept with the error, replayable."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from chassis.messaging.bus import DLQ_PRODUCER, Bus, Delivery, stream_name

dead_letters = Counter("agora_dead_letters_total", "Events sent to the dead-letter stream", ["consumer"])


async def dead_letter(bus: Bus, consumer: str, delivery: Delivery, error: str) -> None:
    record = {
        "consumer": consumer,
        "error": error[:2000],
        "deliveries": delivery.deliveries,
        "failed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": delivery.subject,
        "headers": delivery.headers,
        "body": delivery.body.decode("utf-8", errors="replace"),
    }
    await bus.publish(
        f"{bus.city}.{DLQ_PRODUCER}.{consumer}", json.dumps(record).encode(),
        msg_id=str(uuid.uuid4()), headers={},
    )
    dead_letters.labels(consumer).inc()


async def list_dead_letters(bus: Any) -> list[dict[str, Any]]:
    """Every dead letter with its stream sequence (the id `replay` takes)."""
    js = bus.jetstream
    await bus.ensure_stream(DLQ_PRODUCER)
    info = await js.stream_info(stream_name(bus.city, DLQ_PRODUCER))
    letters = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            message = await js.get_msg(stream_name(bus.city, DLQ_PRODUCER), sequence)
        except Exception:  # deleted after a replay
            continue
        letters.append({"seq": sequence, **json.loads(message.data)})
    return letters


async def replay_dead_letters(bus: Any, sequences: list[int] | None = None) -> int:
    """Republishes dead letters to their original subjects and removes them; returns how many.

    The consumer's inbox still holds for a replayed event, so a replay never applies twice.
    """
    replayed = 0
    for letter in await list_dead_letters(bus):
        if sequences is not None and letter["seq"] not in sequences:
            continue
        await bus.publish(
            letter["subject"], letter["body"].encode(), msg_id=f"replay-{uuid.uuid4()}",
            headers={key: value for key, value in letter["headers"].items() if key != "Nats-Msg-Id"},
        )
        await bus.jetstream.delete_msg(stream_name(bus.city, DLQ_PRODUCER), letter["seq"])
        replayed += 1
    return replayed
