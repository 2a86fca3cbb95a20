"""A service with one slow gRPC method, run by test_shutdown.py as a real process."""

import asyncio

import grpc

from chassis import runtime
from chassis.settings import ServiceSettings


async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"finished"


async def build(app: runtime.ServiceApp) -> None:
    handler = grpc.method_handlers_generic_handler("test.Slow", {"Work": grpc.unary_unary_rpc_method_handler(slow)})
    app.add_grpc_service(lambda _servicer, server: server.add_generic_rpc_handlers((handler,)), None)


if __name__ == "__main__":
    runtime.run(ServiceSettings, build)
