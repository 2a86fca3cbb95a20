from __future__ import annotations

from chassis.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Every limit is an environment variable (`AGORA_RATE_LIMIT_PER_MINUTE`, ...)."""

    rate_limit_per_minute: int = 600
    login_rate_limit_per_minute: int = 10
    # Per client address: enough that every client of a laptop city, all at 127.0.0.1 (a storefront,
    # a test suite signing up a user per test), can sign up, while a flood is cut off before its
    # Argon2id hashing (about 50 ms of CPU each) takes more than a tenth of a core.
    register_rate_limit_per_minute: int = 120
    catalog_cache_seconds: float = 1.0
    # Proxies in front of the gateway whose X-Forwarded-For names the client (uvicorn's
    # `forwarded_allow_ips`: addresses or networks, comma-separated); none by default.
    trusted_proxies: str = ""
    follows_per_user: int = 10  # order event streams one user may hold open on one gateway instance
