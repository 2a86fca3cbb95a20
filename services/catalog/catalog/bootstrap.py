"""Catalog's composition root."""

from __future__ import annotations

from pathlib import Path

from agora.catalog.v1 import catalog_pb2_grpc

from catalog import repository
from catalog.api import CatalogApi
from catalog.seed import seed_catalog
from chassis import messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings

MIGRATIONS = {"catalog": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class CatalogSettings(ServiceSettings):
    pass


async def build(app: runtime.ServiceApp) -> None:
    pool = await app.postgres(MIGRATIONS)
    outbox = await app.outbox(pool)
    categories, products = seed_catalog()
    if await repository.seed_if_empty(pool, categories, products, outbox):
        runtime.log.info("catalog_seeded", products=len(products), categories=len(categories))
    app.verify_tokens(identity_verifier(app))
    app.add_grpc_service(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogApi(pool, outbox))
