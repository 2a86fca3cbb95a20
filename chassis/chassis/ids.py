"""Agora's ids are UUIDs spelled one way: lower case, with hyphens (as `str(uuid.uuid4())` writes).

To a client an id is an opaque string, so another spelling of the same UUID (upper case, braces,
a `urn:uuid:` prefix, no hyphens) names nothing. Read as a UUID instead, such a spelling reached
the same row under a second name, and some of them (braces, `urn:uuid:`) failed in the database
driver: an internal error that callers' circuit breakers counted against the service, so a few
anonymous requests could open them for everyone.
"""

from __future__ import annotations

import uuid


def parse_id(value: str) -> uuid.UUID | None:
    """The UUID `value` spells in Agora's own way, or None for anything else."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None
