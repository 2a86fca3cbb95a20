"""Dead letters, for `agora dlq list|replay`.

Replay gives a letter back to the consumer that dead-lettered it, and to no other: the others
acked the event when it first came, and an event that still fails would otherwise come back as a
letter from each of them, more at every replay.
"""

from __future__ import annotations

from chassis.messaging.bus import Bus, DeadLetter


async def list_dead_letters(bus: Bus, consumer: str | None = None) -> list[DeadLetter]:
    """Oldest first; `ref` identifies each one for `replay_dead_letter`."""
    return await bus.dead_letters(consumer)


async def replay_dead_letter(bus: Bus, ref: str) -> DeadLetter:
    """Replays one letter and removes it; LookupError if there is none with that ref."""
    for letter in await bus.dead_letters():
        if letter.ref == ref:
            await bus.replay(letter)
            return letter
    raise LookupError(f"no dead letter {ref!r}")


async def replay_all(bus: Bus, consumer: str | None = None) -> int:
    """Replays every letter (of one consumer, if given) and removes them; returns how many."""
    letters = await bus.dead_letters(consumer)
    for letter in letters:
        await bus.replay(letter)
    return len(letters)
