"""Accounts and sessions, in plain Python: what a valid account is, and when a refresh token works.

Secrets (passwords, tokens) live in fields excluded from `repr`, so a command or a result that
ends up in a log line or a traceback never shows one.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

CUSTOMER = "customer"
ADMIN = "admin"

PASSWORD_LENGTH = range(8, 129)
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200
# Deliberately loose: one @, no spaces, dots only between the parts of each side, a dot in the
# domain. Whether the mailbox exists is something only sending mail can tell; but an address a
# mail server refuses outright (`b@b..co`) would be an account whose welcome email is never sent.
_EMAIL = re.compile(r"^[^@\s.]+(?:\.[^@\s.]+)*@(?:[^@\s.]+\.)+[^@\s.]+$")
# Controls and the invisible formatting characters (zero-width space, byte order mark, ...): an
# address holding one looks like another account's. The same characters the edge's pattern names.
_UNSEEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8]"
)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Register:
    email: str
    password: str = field(repr=False)
    name: str


@dataclass(frozen=True)
class Login:
    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Refresh:
    refresh_token: str = field(repr=False)


@dataclass(frozen=True)
class Logout:
    refresh_token: str = field(repr=False)


@dataclass(frozen=True)
class GetUser:
    user_id: str


@dataclass(frozen=True)
class GetJwks:
    pass


@dataclass(frozen=True)
class EnsureAdmin:
    email: str
    password: str = field(repr=False)
    name: str
    only_if_no_admin: bool = False


@dataclass(frozen=True)
class RotateSigningKey:
    pass


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class UserRegistered:
    user_id: str
    email: str
    name: str


# ---------------------------------------------------------------- errors


class InvalidInput(Exception):
    def __init__(self, violations: list[tuple[str, str]]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in violations))
        self.violations = violations


class EmailTaken(Exception):
    pass


class BadCredentials(Exception):
    """Wrong email or wrong password: deliberately one error, so neither is revealed."""


class InvalidRefreshToken(Exception):
    """Unknown, used, revoked or expired: the client must log in again."""


class UserNotFound(Exception):
    pass


# ---------------------------------------------------------------- accounts


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class EnsuredAdmin:
    user: User
    has_requested_password: bool


@dataclass(frozen=True)
class NewAccount:
    email: str
    password: str = field(repr=False)
    name: str


def normalize_email(email: str) -> str:
    """Emails are unique whatever their case and however their accents were typed:
    `Ann@Example.com` and `ann@example.com` are one account, and so are `josé@…` with a composed
    é and with an e followed by a combining accent (NFC, as RFC 6532 asks of email addresses)."""
    return unicodedata.normalize("NFC", email.strip().lower())


def normalize_password(password: str) -> str:
    """The same password typed on another keyboard or system is the same password: a ligature,
    a full-width letter and a decomposed accent are compared as their NFKC form, as NIST SP
    800-63B asks of passwords that accept Unicode."""
    return unicodedata.normalize("NFKC", password)


def validate_account(email: str, password: str, name: str) -> NewAccount:
    """Every violation at once, so a form can show them all; field names as the edge API has them."""
    email = normalize_email(email)
    name = name.strip()
    violations = []
    if (
        len(email) > MAX_EMAIL_LENGTH
        or not _EMAIL.fullmatch(email)
        or _UNSEEN.search(email)
    ):
        violations.append(("email", "must be a valid email address"))
    if len(normalize_password(password)) not in PASSWORD_LENGTH:  # the password stored, not as typed
        violations.append(("password", f"must be {PASSWORD_LENGTH.start} to {PASSWORD_LENGTH.stop - 1} characters"))
    if not name:
        violations.append(("name", "must not be empty"))
    elif len(name) > MAX_NAME_LENGTH:
        violations.append(("name", f"must be at most {MAX_NAME_LENGTH} characters"))
    if violations:
        raise InvalidInput(violations)
    return NewAccount(email=email, password=normalize_password(password), name=name)


def could_be_a_password(normal: str, typed: str) -> bool:
    """No account has a password outside the allowed length, so such a login needs no hashing.
    The length of its normal form, which is what is stored, or of the text as typed, which
    accounts registered before registration measured the normal form were allowed."""
    return len(normal) in PASSWORD_LENGTH or len(typed) in PASSWORD_LENGTH


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)


def access_claims(
    user: User, *, issuer: str, audience: str, issued_at: datetime, lifetime: timedelta
) -> dict[str, Any]:
    iat = int(issued_at.timestamp())
    return {
        "sub": user.id,
        "roles": sorted(user.roles),
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "jti": uuid.uuid4().hex,
    }


@dataclass(frozen=True)
class StoredRefreshToken:
    user: User
    family_id: str
    expires_at: datetime
    used: bool
    family_revoked: bool


class RefreshVerdict(Enum):
    ROTATE = "rotate"
    REUSED = "reused"
    REFUSE = "refuse"


def judge_refresh(token: StoredRefreshToken | None, now: datetime) -> RefreshVerdict:
    """A refresh token works once. Presenting one that was already rotated means two parties hold
    it, one of them a thief; since we cannot tell which, the whole family (session) is revoked
    (OAuth 2.0 Security BCP, RFC 9700 §4.14.2)."""
    if token is None or token.family_revoked:
        return RefreshVerdict.REFUSE
    if token.used:
        return RefreshVerdict.REUSED
    if now >= token.expires_at:
        return RefreshVerdict.REFUSE
    return RefreshVerdict.ROTATE
