"""The admin HTTP port every service has: `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

from aiohttp import web

from chassis import metrics
from chassis.health import Readiness


class AdminServer:
    def __init__(self, host: str, port: int, readiness: Readiness):
        self._host = host
        self._port = port
        self._readiness = readiness
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        failing = await self._readiness.failing()
        if failing:
            return web.json_response({"status": "unavailable", "failing": failing}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, _: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start(self) -> None:
        await self._runner.setup()
        # reuse_port: a rolling restart starts the new process on the same port before the old one stops.
        await web.TCPSite(self._runner, self._host, self._port, reuse_port=True).start()

    async def stop(self) -> None:
        await self._runner.cleanup()
