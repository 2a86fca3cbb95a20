from __future__ import annotations

from chassis.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Every limit is an environment variable (`AGORA_RATE_LIMIT_PER_MINUTE`, ...)."""

    rate_limit_per_minute: int = 600
    login_rate_limit_per_minute: int = 10
    register_rate_limit_per_minute: int = 20
    catalog_cache_seconds: float = 1.0
