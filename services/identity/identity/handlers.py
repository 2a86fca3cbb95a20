"""Identity's use cases: one verb-named function each, the command first, dependencies by keyword.

Password hashing runs outside any transaction: a connection is never held while a CPU-heavy
hash is computed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter

from chassis.logs import get_logger
from identity import domain
from identity.domain import (
    ADMIN,
    CUSTOMER,
    BadCredentials,
    EnsureAdmin,
    EnsuredAdmin,
    GetJwks,
    GetUser,
    InvalidRefreshToken,
    Login,
    Logout,
    Refresh,
    RefreshVerdict,
    Register,
    RotateSigningKey,
    TokenPair,
    User,
    UserNotFound,
    UserRegistered,
)
from identity.passwords import PasswordHasher
from identity.repository import Database, Repository
from identity.tokens import KeyVault, SigningKey, jwks_document, new_refresh_token, refresh_token_digest

log = get_logger(__name__)
logins_refused = Counter("agora_identity_logins_refused_total", "Logins refused, by why", ["reason"])

Clock = Callable[[], datetime]
DEFAULT_ADMIN_NAME = "Administrator"


class Outbox(Protocol):
    async def add(self, conn: Any, name: str, data: dict[str, Any], *, subject: str | None = None) -> Any: ...


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_lifetime: timedelta
    refresh_lifetime: timedelta
    # A retired key stays published this long past the last token it signed can expire, so a
    # verifier whose clock runs a little behind still finds it.
    key_retirement_margin: timedelta = timedelta(minutes=1)


async def register(command: Register, *, db: Database, hasher: PasswordHasher, outbox: Outbox, clock: Clock) -> User:
    account = domain.validate_account(command.email, command.password, command.name)
    password_hash = await hasher.hash(account.password)
    user = User(id=str(uuid.uuid4()), email=account.email, name=account.name, roles=frozenset({CUSTOMER}))
    async with db.transaction() as repo:
        await repo.add_user(user, password_hash, clock())
        await _record(outbox, repo, UserRegistered(user.id, user.email, user.name))
    log.info("user_registered", user_id=user.id)
    return user


async def login(
    command: Login, *, db: Database, hasher: PasswordHasher, vault: KeyVault, policy: TokenPolicy, clock: Clock
) -> TokenPair:
    async with db.transaction() as repo:
        found = await repo.credentials(domain.normalize_email(command.email))
    password = domain.normalize_password(command.password)
    if not domain.could_be_a_password(password, command.password):
        logins_refused.labels("impossible_password").inc()
        raise BadCredentials()
    if found is None:
        # As many checks as a wrong password of a real account costs: two when its normal form
        # differs from the text as typed (below), or timing would tell which emails have accounts.
        await hasher.verify_nothing(command.password)
        if password != command.password:
            await hasher.verify_nothing(command.password)
        # Counted, not logged: a line naming no account tells nothing, and naming the email
        # would put guessed addresses in the logs. A rising count is a stuffing attack.
        logins_refused.labels("unknown_email").inc()
        raise BadCredentials()
    user, password_hash = found
    if await hasher.verify(password_hash, password):
        new_hash = await hasher.hash(password) if hasher.needs_rehash(password_hash) else None
    elif password != command.password and await hasher.verify(password_hash, command.password):
        # Hashed as typed, before passwords were normalized: rehashed as its normal form now.
        new_hash = await hasher.hash(password)
    else:
        log.info("login_refused", user_id=user.id)
        logins_refused.labels("wrong_password").inc()
        raise BadCredentials()
    now = clock()
    async with db.transaction() as repo:
        if new_hash is not None:
            await repo.set_password_hash(user.id, new_hash)
        family_id = str(uuid.uuid4())
        await repo.start_family(family_id, user.id, now)
        tokens = await _issue_tokens(repo, user, family_id, vault=vault, policy=policy, now=now)
    log.info("user_logged_in", user_id=user.id, session=family_id)
    return tokens


async def refresh(command: Refresh, *, db: Database, vault: KeyVault, policy: TokenPolicy, clock: Clock) -> TokenPair:
    now = clock()
    digest = refresh_token_digest(command.refresh_token)
    async with db.transaction() as repo:
        stored = await repo.refresh_token_for_update(digest)
        verdict = domain.judge_refresh(stored, now)
        if stored is None or verdict is RefreshVerdict.REFUSE:
            raise InvalidRefreshToken()
        if verdict is RefreshVerdict.ROTATE:
            await repo.mark_used(digest, now)
            return await _issue_tokens(repo, stored.user, stored.family_id, vault=vault, policy=policy, now=now)
        await repo.revoke_family(stored.family_id, now)
    # Refused only once the revocation is committed: raising inside would roll it back.
    log.warning("refresh_token_reused", user_id=stored.user.id, session=stored.family_id)
    raise InvalidRefreshToken()


async def logout(command: Logout, *, db: Database, clock: Clock) -> None:
    """Ends the session the token belongs to; an unknown token has nothing to end."""
    async with db.transaction() as repo:
        await repo.revoke_family_of(refresh_token_digest(command.refresh_token), clock())


async def forget_expired_sessions(*, db: Database, clock: Clock) -> int:
    """Housekeeping: sessions that can no longer be refreshed are deleted, and so are the
    expired, rotated tokens of the others. Returns the number of sessions deleted."""
    async with db.transaction() as repo:
        sessions = await repo.forget_expired_families(clock())
        await repo.forget_expired_used_tokens(clock())
        return sessions


async def get_user(command: GetUser, *, db: Database) -> User:
    async with db.transaction() as repo:
        user = await repo.user(command.user_id)
    if user is None:
        raise UserNotFound(command.user_id)
    return user


async def get_jwks(command: GetJwks, *, db: Database, clock: Clock) -> dict[str, Any]:
    async with db.transaction() as repo:
        return jwks_document(await repo.published_keys(clock()))


async def ensure_admin(
    command: EnsureAdmin, *, db: Database, hasher: PasswordHasher, outbox: Outbox, clock: Clock
) -> EnsuredAdmin:
    """Creates the admin, or gives an existing account this password and the admin role; with
    `only_if_no_admin`, an existing admin is left alone."""
    if command.only_if_no_admin:
        async with db.transaction() as repo:
            existing = await repo.first_admin()
        if existing is not None:
            return EnsuredAdmin(existing, has_requested_password=False)
    account = domain.validate_account(command.email, command.password, command.name or DEFAULT_ADMIN_NAME)
    password_hash = await hasher.hash(account.password)
    async with db.transaction() as repo:
        found = await repo.credentials(account.email)
        if found is None:
            user = User(str(uuid.uuid4()), account.email, account.name, frozenset({CUSTOMER, ADMIN}))
            await repo.add_user(user, password_hash, clock())
            await _record(outbox, repo, UserRegistered(user.id, user.email, user.name))
        else:
            existing_user = found[0]
            if ADMIN not in existing_user.roles:
                # Whoever registered this email before the operator named it may hold sessions:
                # a refresh reads the roles again, so they would turn into admin sessions.
                await repo.revoke_families_of_user(existing_user.id, clock())
            await repo.set_password_hash(existing_user.id, password_hash)
            user = await repo.grant_role(existing_user.id, ADMIN)
    log.info("admin_ensured", user_id=user.id, created=found is None)
    return EnsuredAdmin(user, has_requested_password=True)


async def rotate_signing_key(
    command: RotateSigningKey, *, db: Database, vault: KeyVault, policy: TokenPolicy, clock: Clock
) -> str:
    """New tokens are signed with a new key at once; the old key stays published until every
    token it signed has expired, then it is deleted."""
    now = clock()
    key = SigningKey.generate()
    async with db.transaction() as repo:
        await repo.lock_signing_keys()
        await repo.forget_retired_signing_keys(now)
        await repo.retire_signing_keys(now + policy.access_lifetime + policy.key_retirement_margin)
        await repo.add_signing_key(key.kid, key.public_jwk(), vault.seal(key), now)
    log.info("signing_key_rotated", kid=key.kid)
    return key.kid


async def ensure_signing_key(*, db: Database, vault: KeyVault, clock: Clock) -> None:
    """The first start creates the first key; replicas starting together create only one. A
    later start opens the active key, so a wrong key-encryption key stops the process at once."""
    async with db.transaction() as repo:
        await repo.lock_signing_keys()
        active = await repo.active_signing_key()
        if active is None:
            key = SigningKey.generate()
            await repo.add_signing_key(key.kid, key.public_jwk(), vault.seal(key), clock())
            log.info("signing_key_created", kid=key.kid)
        else:
            vault.open(*active)


async def _issue_tokens(
    repo: Repository, user: User, family_id: str, *, vault: KeyVault, policy: TokenPolicy, now: datetime
) -> TokenPair:
    # The active key is read for every token, so a rotation done through any replica takes
    # effect on all of them at once.
    active = await repo.active_signing_key()
    if active is None:
        raise RuntimeError("no signing key: ensure_signing_key runs at start-up")
    refresh_token = new_refresh_token()
    await repo.add_refresh_token(refresh_token_digest(refresh_token), family_id, now, now + policy.refresh_lifetime)
    claims = domain.access_claims(
        user, issuer=policy.issuer, audience=policy.audience, issued_at=now, lifetime=policy.access_lifetime
    )
    access_token = vault.open(*active).sign(claims)
    return TokenPair(access_token, int(policy.access_lifetime.total_seconds()), refresh_token)


async def _record(outbox: Outbox, repo: Repository, event: UserRegistered) -> None:
    data = {"user_id": event.user_id, "email": event.email, "name": event.name}
    await outbox.add(repo.connection, type(event).__name__, data, subject=event.user_id)


HANDLERS: dict[type, Callable[..., Any]] = {
    Register: register,
    Login: login,
    Refresh: refresh,
    Logout: logout,
    GetUser: get_user,
    GetJwks: get_jwks,
    EnsureAdmin: ensure_admin,
    RotateSigningKey: rotate_signing_key,
}
