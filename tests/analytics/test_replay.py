"""`agora replay analytics` against the running service: real NATS streams, real Postgres."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from agora.analytics.v1 import analytics_pb2

from agora_cli.errors import AgoraError
from agora_cli.replay import replay_analytics
from analytics import repository
from tests.analytics.conftest import HISTORY_FIGURES, Service, captured, confirmed, history, new_id


async def test_a_replay_wipes_the_projections_and_reaches_the_same_figures(service: Service) -> None:
    events = history()
    await service.publish(*events)
    await service.report_settles_on(HISTORY_FIGURES)
    # Damage the live projections: a replay that did not rebuild from the streams would keep this.
    async with asyncpg.create_pool(service.settings.dsn, min_size=1, max_size=1) as pool:
        await pool.execute("INSERT INTO orders (order_id, confirmed) VALUES ('bogus', true)")
        await pool.execute("DELETE FROM users")
    assert await service.report() != HISTORY_FIGURES

    applied = await replay_analytics(service.cli_config())

    assert applied == len(events)
    assert await service.report() == HISTORY_FIGURES


async def test_events_published_during_a_replay_are_counted_once(service: Service) -> None:
    orders = [new_id() for _ in range(60)]
    before, during = orders[:40], orders[40:]
    await service.publish(
        *(event for order in before for event in (confirmed(order, {"cup": 1}), captured(order, 100)))
    )

    def expected(count: int) -> dict[str, object]:
        return {
            "orders_confirmed": count,
            "orders_cancelled": 0,
            "orders_shipped": 0,
            "users_registered": 0,
            "revenue": (100 * count, "USD"),
            "refunded": (0, "USD"),
            "top_products": [("cup", "Product cup", count)] if count else [],
        }

    replaying = asyncio.create_task(replay_analytics(service.cli_config()))
    for order in during:
        await service.publish(confirmed(order, {"cup": 1}), captured(order, 100))
        await asyncio.sleep(0.005)
    await replaying

    await service.report_settles_on(expected(len(orders)))
    await asyncio.sleep(0.5)  # late duplicates from the live consumer would show up by now
    assert await service.report() == expected(len(orders))


async def test_a_replay_of_empty_streams_leaves_an_empty_report(service: Service) -> None:
    assert await replay_analytics(service.cli_config()) == 0

    report = await service.report()
    assert (report["orders_confirmed"], report["revenue"], report["top_products"]) == (0, (0, "USD"), [])


async def test_only_one_replay_runs_at_a_time(service: Service) -> None:
    async with asyncpg.create_pool(service.settings.dsn, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert await repository.try_lock_replay(conn)
        with pytest.raises(AgoraError, match="ABORTED"):
            await replay_analytics(service.cli_config())


async def test_only_the_cli_may_replay_and_only_admins_see_the_report(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.call("Rebuild", analytics_pb2.RebuildRequest(), caller="gateway")
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED

    customer = service.tokens.sign("user-1", "customer")
    for token, code in [(None, grpc.StatusCode.UNAUTHENTICATED), (customer, grpc.StatusCode.PERMISSION_DENIED)]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await service.call("SalesReport", analytics_pb2.SalesReportRequest(), token=token)
        assert caught.value.code() is code


async def test_replay_needs_a_running_city(service: Service) -> None:
    config = service.cli_config()
    config.home.state_file.unlink()
    with pytest.raises(AgoraError, match="no city is running"):
        await replay_analytics(config)
