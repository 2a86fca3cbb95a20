"""Argon2id password hashing, off the event loop.

Parameters: OWASP's first Argon2id configuration (19 MiB memory, 2 iterations, 1 lane), about
50 ms per hash on this project's 2-core reference machine. Hashing runs in a worker thread
(argon2-cffi releases the GIL) so other requests keep being served meanwhile. Hashes carry their
parameters, so raising them later only needs `needs_rehash`, checked at each login.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1


class PasswordHasher:
    def __init__(self) -> None:
        self._argon2 = _Argon2(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    async def prepare(self) -> None:
        """Computes the hash `verify_nothing` checks against, once, before the first login."""
        self._dummy_hash = await self.hash("the password of no account")

    async def verify_nothing(self, password: str) -> None:
        """For an unknown email: the same work as a real check, so timing does not tell them apart."""
        if self._dummy_hash is None:
            await self.prepare()
        await self.verify(self._dummy_hash or "", password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
