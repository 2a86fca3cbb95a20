"""Dead letters, for `agora dlq list|replay`.

Replay publishes the original message back where it was first published, so every consumer of
that subject sees it again; the inboxes make that harmless for those that had applied it.
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
