"""Cart's composition root."""

from __future__ import annotations

import functools

from agora.cart.v1 import cart_pb2_grpc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from cart import handlers
from cart.api import CartApi
from cart.catalog import Catalog
from cart.store import CartStore
from chassis import auth, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings


class CartSettings(ServiceSettings):
    pass


async def build(app: runtime.ServiceApp, *, verifier: auth.TokenVerifier | None = None) -> None:
    """`verifier` replaces the one fed by identity's JWKS (tests sign their own tokens)."""
    redis = await app.redis()
    # A Redis restart leaves every pooled connection dead, and the pool learns it only by using
    # one: without a retry each dead connection fails one request, long after Redis is back
    # (and a caller's half-open probe that meets one keeps its breaker open another period).
    # One immediate retry reconnects. Every cart write is safe to repeat (a quantity set, a key
    # deleted); the inbox's WATCHed transaction is never retried by redis-py.
    redis.set_retry(Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)))
    prefix = f"{app.settings.city}:cart:"
    store = CartStore(redis, prefix)
    app.verify_tokens(verifier or identity_verifier(app))
    app.add_grpc_service(
        cart_pb2_grpc.add_CartServiceServicer_to_server, CartApi(store, Catalog(app.channel("catalog")))
    )
    await app.consume(
        {event_type: functools.partial(handler, store=store) for event_type, handler in handlers.SUBSCRIPTIONS.items()},
        messaging.RedisInbox(redis, prefix),
    )
