from datetime import UTC, datetime, timedelta

import pytest

from identity import domain

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _violations(email: str = "ada@example.com", password: str = "x" * 8, name: str = "Ada") -> list[str]:
    with pytest.raises(domain.InvalidInput) as caught:
        domain.validate_account(email, password, name)
    return [field for field, _ in caught.value.violations]


def test_an_account_is_normalized() -> None:
    account = domain.validate_account("  Ada@Example.COM ", "x" * 8, "  Ada  ")
    assert (account.email, account.name) == ("ada@example.com", "Ada")


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com",
                                   "ada@@example.com", "a" * 250 + "@example.com", "ada@example..com",
                                   ".ada@example.com", "ada.@example.com", "ada@.example.com", "a..da@example.com",
                                   "\ufeffada@example.com", "ada\u200b@example.com", "ada\x7f@example.com",
                                   "ada\x9b@example.com", "ada@exam\u00adple.com"])
def test_invalid_emails_are_refused(email: str) -> None:
    assert _violations(email=email) == ["email"]


@pytest.mark.parametrize("email", ["ada@example.com", "ada.lovelace@mail.example.co.uk", "jos\u00e9@caf\u00e9.fr",
                                   "a+tag@example.com", "o'brien@example.ie"])
def test_valid_emails_are_taken(email: str) -> None:
    assert domain.validate_account(email, "x" * 8, "Ada").email == email


@pytest.mark.parametrize("password, valid", [("x" * 7, False), ("x" * 8, True), ("x" * 128, True), ("x" * 129, False),
                                             ("é" * 8, True)])
def test_passwords_are_8_to_128_characters(password: str, valid: bool) -> None:
    if valid:
        assert domain.validate_account("ada@example.com", password, "Ada").password == password
    else:
        assert _violations(password=password) == ["password"]


def test_every_violation_is_reported_at_once() -> None:
    assert _violations(email="nope", password="short", name="   ") == ["email", "password", "name"]


def test_secrets_never_show_in_a_repr() -> None:
    shown = repr([
        domain.Register("ada@example.com", "hunter22secret", "Ada"), domain.Login("ada@example.com", "hunter22secret"),
        domain.Refresh("refresh-secret"), domain.Logout("refresh-secret"),
        domain.TokenPair("access-secret", 900, "refresh-secret"), domain.EnsureAdmin("a@b.c", "hunter22secret", ""),
    ])
    assert "secret" not in shown


def test_access_claims_carry_what_every_verifier_checks() -> None:
    user = domain.User("u-1", "ada@example.com", "Ada", frozenset({"customer", "admin"}))
    claims = domain.access_claims(user, issuer="iss", audience="aud", issued_at=NOW, lifetime=timedelta(minutes=15))
    assert claims["sub"] == "u-1" and claims["roles"] == ["admin", "customer"]
    assert (claims["iss"], claims["aud"]) == ("iss", "aud")
    assert claims["exp"] - claims["iat"] == 900 and claims["iat"] == int(NOW.timestamp())
    assert claims["jti"] != domain.access_claims(user, issuer="iss", audience="aud", issued_at=NOW,
                                                 lifetime=timedelta(minutes=15))["jti"]


def _stored(**overrides: object) -> domain.StoredRefreshToken:
    user = domain.User("u", "ada@example.com", "Ada", frozenset({domain.CUSTOMER}))
    values: dict = {"user": user, "family_id": "f", "expires_at": NOW + timedelta(days=1), "used": False,
                    "family_revoked": False}
    return domain.StoredRefreshToken(**(values | overrides))


@pytest.mark.parametrize(
    "token, verdict",
    [
        (_stored(), domain.RefreshVerdict.ROTATE),
        (None, domain.RefreshVerdict.REFUSE),
        (_stored(used=True), domain.RefreshVerdict.REUSED),
        (_stored(family_revoked=True), domain.RefreshVerdict.REFUSE),
        (_stored(used=True, family_revoked=True), domain.RefreshVerdict.REFUSE),
        (_stored(expires_at=NOW), domain.RefreshVerdict.REFUSE),
    ],
    ids=["fresh", "unknown", "replayed", "revoked", "replayed-after-revocation", "expired"],
)
def test_a_refresh_token_works_once_within_its_lifetime(
    token: domain.StoredRefreshToken | None, verdict: domain.RefreshVerdict
) -> None:
    assert domain.judge_refresh(token, NOW) is verdict
