"""Analytics' gRPC API: the admin's sales report, and the replay the CLI asks for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import grpc
from agora.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from agora.common.v1 import common_pb2

from analytics import handlers
from analytics.replay import ReplayRunning
from chassis import auth


class AnalyticsApi(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, pool: asyncpg.Pool, *, rebuild: Callable[[], Awaitable[int]] | None):
        """`rebuild` is None when the bus keeps no history to replay."""
        self._pool = pool
        self._rebuild = rebuild

    async def SalesReport(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_principal("admin")
        report = await handlers.sales_report(pool=self._pool)
        return analytics_pb2.SalesReportResponse(
            orders_confirmed=report.orders_confirmed,
            orders_cancelled=report.orders_cancelled,
            revenue=common_pb2.Money(amount=report.revenue_cents, currency=handlers.REPORT_CURRENCY),
            refunded=common_pb2.Money(amount=report.refunded_cents, currency=handlers.REPORT_CURRENCY),
            top_products=[
                analytics_pb2.TopProduct(product_id=top.product_id, name=top.name, units=top.units)
                for top in report.top_products
            ],
            orders_shipped=report.orders_shipped,
            users_registered=report.users_registered,
        )

    async def Rebuild(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller("cli")
        if self._rebuild is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this bus keeps no history to replay")
        try:
            applied = await self._rebuild()
        except ReplayRunning as error:
            await context.abort(grpc.StatusCode.ABORTED, str(error))
        return analytics_pb2.RebuildResponse(events_applied=applied)
