"""The gateway is ready only while the services it cannot do without say they can serve."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2_grpc

from chassis.chaos import ChaosSwitch
from chassis.grpc import GrpcServer
from chassis.health import Readiness
from chassis.settings import ServiceSettings
from gateway.bootstrap import _serving
from tests.support import Dependency, free_port


async def test_an_essential_service_that_runs_but_cannot_serve_makes_the_gateway_unready() -> None:
    catalog_database = Dependency()
    catalog_readiness = Readiness()
    catalog_readiness.add("postgres", catalog_database.check)
    catalog_readiness.accepting = True
    config = ServiceSettings(service="catalog", http_port=free_port(), grpc_port=free_port(), mtls="off")
    catalog = GrpcServer(config, verifier=lambda: None, chaos=ChaosSwitch(None, "catalog"), readiness=catalog_readiness)
    await catalog.start()
    gateway = Readiness()
    gateway.accepting = True
    async with grpc.aio.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
        gateway.add("catalog", _serving("catalog", health_pb2_grpc.HealthStub(channel)))

        assert await gateway.failing() == []
        catalog_database.down = True
        assert await gateway.failing() == ["catalog"]
        catalog_database.down = False
        assert await gateway.failing() == []
    await catalog.stop(0)
