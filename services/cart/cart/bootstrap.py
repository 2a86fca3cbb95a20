"""Cart's composition root."""

from __future__ import annotations

import functools

from agora.cart.v1 import cart_pb2_grpc

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
