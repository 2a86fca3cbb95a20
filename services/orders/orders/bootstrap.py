"""Orders' composition root: `build(app)` wires the use cases to their dependencies by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agora.orders.v1 import orders_pb2_grpc
from pydantic import Field

from chassis import auth, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.periodic import Periodic
from chassis.settings import ServiceSettings
from orders import domain, handlers, repository
from orders.api import OrdersApi
from orders.changes import OrderChanges
from orders.peers import Cart, Catalog, Shipping

MIGRATIONS = {"orders": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}

COMMANDS: dict[type, Callable[..., Awaitable[Any]]] = {
    domain.PlaceOrder: handlers.place_order,
    domain.GetOrder: handlers.get_order,
    domain.ListOrders: handlers.list_orders,
    domain.CancelOrder: handlers.cancel_order,
}


class OrdersSettings(ServiceSettings):
    # API.md promises a replayed key answers the same order for at least 24 hours.
    idempotency_key_retention_hours: float = Field(default=48, ge=24)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def build(
    app: runtime.ServiceApp,
    *,
    clock: Callable[[], datetime] = _utc_now,
    verifier: auth.TokenVerifier | None = None,
    outbox: handlers.Outbox | None = None,
) -> None:
    """Wires orders into `app`; tests may replace the clock, the token verifier or the outbox."""
    pool = await app.postgres(MIGRATIONS)
    changes = OrderChanges(pool)
    app.add_worker(changes)
    app.on_stopping(changes.end_follows)
    dependencies = {
        "pool": pool,
        "cart": Cart(app.channel("cart")),
        "catalog": Catalog(app.channel("catalog")),
        "shipping": Shipping(app.channel("shipping")),
        "outbox": outbox or await app.outbox(pool),
        "clock": clock,
        "changes": changes,
    }
    settings = app.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("orders needs its own settings: runtime.run(OrdersSettings, build)")
    retention = settings.idempotency_key_retention_hours
    app.add_worker(Periodic("forget-idempotency-keys", 3600, lambda: repository.forget_keys_older_than(pool, retention)))
    app.add_worker(Periodic("forget-lines-left-in-cart", 3600, lambda: repository.forget_lines_left_expired(pool)))
    app.verify_tokens(verifier or identity_verifier(app))
    api = OrdersApi(command_handler(dependencies), inject(handlers.follow_order, dependencies))
    app.add_grpc_service(orders_pb2_grpc.add_OrdersServiceServicer_to_server, api)
    await app.consume(
        {event_type: inject(handler, dependencies) for event_type, handler in handlers.SUBSCRIPTIONS.items()},
        messaging.PostgresInbox(pool),
    )


def command_handler(dependencies: dict[str, Any]) -> Callable[[Any], Awaitable[Any]]:
    """One callable for every command and query, each handler given the dependencies it names."""
    injected = {command: inject(handler, dependencies) for command, handler in COMMANDS.items()}

    async def handle(command: Any) -> Any:
        return await injected[type(command)](command)

    return handle


def inject(handler: Callable[..., Any], dependencies: dict[str, Any]) -> Callable[..., Any]:
    wanted = inspect.signature(handler).parameters
    return functools.partial(handler, **{name: value for name, value in dependencies.items() if name in wanted})
