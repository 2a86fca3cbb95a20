"""Signing keys, access tokens and refresh tokens: the cryptography, kept apart from the rules.

Access tokens are JWTs signed with Ed25519 (`EdDSA`): small, fast, and with no parameter choices
to get wrong. Private signing keys are stored in identity's database sealed with AES-256-GCM
under a key-encryption key (KEK) that lives in a file, `AGORA_HOME/secrets/identity-signing.kek`
(mode 0600), never in the database: a copy of the database alone cannot mint tokens. The key id
is the associated data, so a sealed key cannot be swapped under another id.

Refresh tokens are 256 random bits, shown to the client once; only their SHA-256 is stored
(they are random, so a slow hash adds nothing), so a leaked database does not hand out sessions.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
_NONCE_BYTES = 12
_KEK_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=secrets.token_urlsafe(12), private_key=Ed25519PrivateKey.generate())

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return jwk | {"kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


class KeyVault:
    """Seals private signing keys for storage and opens them again, remembering what it opened."""

    def __init__(self, kek: bytes):
        self._aead = AESGCM(kek)
        self._opened: dict[str, SigningKey] = {}

    def seal(self, key: SigningKey) -> bytes:
        raw = key.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, raw, key.kid.encode())

    def open(self, kid: str, sealed: bytes) -> SigningKey:
        if kid not in self._opened:
            try:
                raw = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], kid.encode())
            except InvalidTag:
                raise ValueError(
                    f"cannot open signing key {kid}: the key-encryption key is not the one it was sealed with"
                ) from None
            self._opened[kid] = SigningKey(kid, Ed25519PrivateKey.from_private_bytes(raw))
        return self._opened[kid]


def load_or_create_kek(path: Path) -> bytes:
    """The key-encryption key in `path`, created (readable by the owner only) on first start.

    Several replicas may start at once: each writes a candidate aside and links it into place,
    which succeeds for exactly one; the others read the winner's.
    """
    try:
        return _read_kek(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(os.urandom(_KEK_BYTES)).decode())
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return _read_kek(path)


def _read_kek(path: Path) -> bytes:
    kek = base64.b64decode(path.read_text().strip(), validate=True)
    if len(kek) != _KEK_BYTES:
        raise ValueError(f"{path} does not hold a {_KEK_BYTES}-byte key")
    return kek


def jwks_document(public_jwks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"keys": public_jwks}


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
