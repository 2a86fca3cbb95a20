"""Stubs for the services behind the gateway. A service the city does not run is `None`:
the routes that need it answer 503, and optional parts of aggregated pages degrade."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agora.analytics.v1 import analytics_pb2_grpc
from agora.cart.v1 import cart_pb2_grpc
from agora.catalog.v1 import catalog_pb2_grpc
from agora.identity.v1 import identity_pb2_grpc
from agora.inventory.v1 import inventory_pb2_grpc
from agora.orders.v1 import orders_pb2_grpc
from agora.payments.v1 import payments_pb2_grpc
from agora.recommendations.v1 import recommendations_pb2_grpc
from agora.shipping.v1 import shipping_pb2_grpc

from chassis.runtime import ServiceApp

_STUBS: dict[str, Any] = {
    "identity": identity_pb2_grpc.IdentityServiceStub,
    "catalog": catalog_pb2_grpc.CatalogServiceStub,
    "cart": cart_pb2_grpc.CartServiceStub,
    "orders": orders_pb2_grpc.OrdersServiceStub,
    "inventory": inventory_pb2_grpc.InventoryServiceStub,
    "payments": payments_pb2_grpc.PaymentsServiceStub,
    "shipping": shipping_pb2_grpc.ShippingServiceStub,
    "recommendations": recommendations_pb2_grpc.RecommendationsServiceStub,
    "analytics": analytics_pb2_grpc.AnalyticsServiceStub,
}


@dataclass(frozen=True)
class Upstreams:
    identity: Any
    catalog: Any
    cart: Any
    orders: Any
    inventory: Any
    payments: Any
    shipping: Any
    recommendations: Any
    analytics: Any

    @classmethod
    def connect(cls, app: ServiceApp) -> Upstreams:
        running = app.settings.peers
        return cls(**{
            name: stub(app.channel(name)) if name in running else None for name, stub in _STUBS.items()
        })
