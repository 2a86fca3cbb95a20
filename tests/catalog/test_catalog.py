"""Catalog against the real Postgres: the seed, search, filters, pages and product creation."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import pytest
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from agora.common.v1 import common_pb2

from catalog import repository
from catalog.api import CatalogApi
from catalog.bootstrap import MIGRATIONS
from catalog.seed import seed_catalog
from chassis import auth, db
from chassis.chaos import ChaosSwitch
from chassis.grpc import CALLER_METADATA, GrpcServer, InvalidArgument
from chassis.messaging import Outbox
from chassis.settings import ServiceSettings
from tests.support import Tokens, free_port


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(fresh_database)
    await db.migrate(pool, MIGRATIONS)
    categories, products = seed_catalog()
    assert await repository.seed_if_empty(pool, categories, products, Outbox("catalog"))
    yield pool
    await pool.close()


def test_the_seed_is_realistic_and_the_same_every_time() -> None:
    categories, products = seed_catalog()
    assert len(products) >= 200 and len(categories) >= 8
    assert seed_catalog() == (categories, products)
    assert len({p.sku for p in products}) == len(products)
    assert all(p.price_amount > 0 and p.categories[0] in categories for p in products)


async def test_seeding_happens_once_even_when_replicas_start_together(pool: asyncpg.Pool) -> None:
    categories, products = seed_catalog()
    results = await asyncio.gather(
        *(repository.seed_if_empty(pool, categories, products, Outbox("catalog")) for _ in range(3))
    )
    assert results == [False, False, False]
    assert await pool.fetchval("SELECT count(*) FROM products") == len(products)


async def test_every_seeded_product_is_announced_once_in_the_seeding_transaction(pool: asyncpg.Pool) -> None:
    _, products = seed_catalog()
    announced = await pool.fetch("SELECT envelope FROM outbox ORDER BY id")
    assert len(announced) == len(products)
    first = json.loads(announced[0]["envelope"])
    assert first["type"] == "agora.catalog.ProductCreated.v1" and first["subject"] == products[0].id
    assert first["data"]["categories"] == list(products[0].categories)


async def test_full_text_search_ranks_matches_and_pages_are_stable(pool: asyncpg.Pool) -> None:
    found, total = await repository.list_products(pool, query="wireless", category="", page=1, page_size=100)
    assert total == len(found) > 0
    assert all("wireless" in (p.name + p.description).lower() for p in found)
    first, total_all = await repository.list_products(pool, query="", category="", page=1, page_size=50)
    second, _ = await repository.list_products(pool, query="", category="", page=2, page_size=50)
    assert total_all >= 200 and not {p.id for p in first} & {p.id for p in second}
    stemmed, _ = await repository.list_products(pool, query="lamps", category="", page=1, page_size=10)
    assert stemmed and all("Lamp" in p.name or "lamp" in p.description for p in stemmed)


async def test_products_are_listed_by_name_whatever_its_case_and_accents(pool: asyncpg.Pool) -> None:
    names = ["zebra mug", "Éclair tin", "apple crate", "Zebra print", "eclair mould", "Ångström ruler"]
    async with pool.acquire() as conn, conn.transaction():
        for number, name in enumerate(names):
            await repository.create_product(conn, repository.Product(
                id=str(uuid.uuid4()), sku=f"SORT-{number}", name=name, description="", price_amount=1,
                currency="USD", categories=("kitchen",), image_url=None,
            ))
    listed, _ = await repository.list_products(pool, query="", category="", page=1, page_size=500)
    assert [product.name for product in listed if product.sku.startswith("SORT-")] == [
        "Ångström ruler", "apple crate", "eclair mould", "Éclair tin", "zebra mug", "Zebra print",
    ]


async def test_a_category_filter_keeps_only_that_category(pool: asyncpg.Pool) -> None:
    found, total = await repository.list_products(pool, query="", category="coffee", page=1, page_size=100)
    assert total >= 20 and all("coffee" in p.categories for p in found)
    none, zero = await repository.list_products(pool, query="", category="no-such", page=1, page_size=10)
    assert (none, zero) == ([], 0)


async def test_unknown_or_malformed_ids_are_simply_absent(pool: asyncpg.Pool) -> None:
    listed, _ = await repository.list_products(pool, query="", category="", page=1, page_size=1)
    found = await repository.get_products(pool, [listed[0].id, str(uuid.uuid4()), "not-a-uuid"])
    assert [p.id for p in found] == [listed[0].id]


async def test_other_spellings_of_a_products_id_name_nothing(pool: asyncpg.Pool) -> None:
    """Postgres reads these as the same uuid (or fails on them, braces and `urn:uuid:`): each
    would be a second name for the product, or an error that is no caller's fault."""
    listed, _ = await repository.list_products(pool, query="", category="", page=1, page_size=1)
    product_id = listed[0].id
    spellings = [product_id.upper(), f"{{{product_id}}}", f"urn:uuid:{product_id}", product_id.replace("-", "")]
    assert await repository.get_products(pool, spellings) == []


async def test_a_taken_sku_or_unknown_category_creates_nothing(pool: asyncpg.Pool) -> None:
    product = repository.Product(id=str(uuid.uuid4()), sku="KIT-0001", name="Dup", description="", price_amount=1,
                                 currency="USD", categories=("kitchen",), image_url=None)
    async with pool.acquire() as conn:
        with pytest.raises(repository.SkuTaken):
            async with conn.transaction():
                await repository.create_product(conn, product)
        with pytest.raises(repository.UnknownCategory):
            async with conn.transaction():
                await repository.create_product(conn, product.__class__(**{**product.__dict__, "sku": "NEW-1",
                                                                            "categories": ("nope",)}))
    assert await pool.fetchval("SELECT count(*) FROM products WHERE sku = 'NEW-1'") == 0


@pytest.fixture
def as_admin() -> Iterator[None]:
    token = auth.current_principal.set(auth.Principal("admin-1", frozenset({"admin"})))
    yield
    auth.current_principal.reset(token)


def new_product(**changes: Any) -> catalog_pb2.CreateProductRequest:
    fields: dict[str, Any] = {"sku": "NEW-1", "name": "Lamp", "description": "Bright", "categories": ["kitchen"],
                              "price": common_pb2.Money(amount=1250, currency="USD")}
    return catalog_pb2.CreateProductRequest(**{**fields, **changes})


@pytest.mark.parametrize(("request_", "violation"), [
    (new_product(sku="NEW-1\n"), ("sku", "1 to 64 letters, digits, dots, dashes or underscores")),
    (new_product(name="La\x00mp"), ("name", "must not contain NUL")),
    (new_product(description="\x00"), ("description", "must not contain NUL")),
    (new_product(image_url="https://x.test/\x00.png"), ("image_url", "must not contain NUL")),
    (new_product(categories=["kitchen", "kit\x00chen"]), ("categories.1", "must not contain NUL")),
    (new_product(price=common_pb2.Money(amount=10_000_000_001, currency="USD")),
     ("price.amount", "must be between 0 and 10000000000")),
    (new_product(price=common_pb2.Money(amount=-1, currency="USD")), ("price.amount", "must be between 0 and 10000000000")),
    (new_product(price=common_pb2.Money(amount=100, currency="EUR")),
     ("price.currency", "must be USD: the shop sells in one currency")),
])
async def test_a_product_catalog_cannot_store_or_sell_is_refused_whoever_sends_it(
    pool: asyncpg.Pool, as_admin: None, request_: catalog_pb2.CreateProductRequest, violation: tuple[str, str]
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await CatalogApi(pool, Outbox("catalog")).CreateProduct(request_, None)

    assert refused.value.violations == [violation]
    assert await pool.fetchval("SELECT count(*) FROM products WHERE sku = 'NEW-1'") == 0


async def test_the_dearest_product_allowed_is_created(pool: asyncpg.Pool, as_admin: None) -> None:
    dearest = new_product(price=common_pb2.Money(amount=10_000_000_000, currency="USD"))

    assert (await CatalogApi(pool, Outbox("catalog")).CreateProduct(dearest, None)).price.amount == 10_000_000_000


@pytest.mark.parametrize("field", ["q", "category"])
async def test_a_search_with_nul_is_refused_before_it_reaches_the_database(pool: asyncpg.Pool, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await CatalogApi(pool, Outbox("catalog")).ListProducts(catalog_pb2.ListProductsRequest(**{field: "a\x00"}), None)

    assert refused.value.violations == [(field, "must not contain NUL")]


@pytest.fixture
async def served_catalog(pool: asyncpg.Pool) -> AsyncIterator[tuple[catalog_pb2_grpc.CatalogServiceStub, Tokens]]:
    """Catalog's API behind the chassis gRPC server, verifying tokens; a stub calling it as the gateway."""
    tokens = Tokens()
    config = ServiceSettings(service="catalog", http_port=free_port(), grpc_port=free_port(), mtls="off",
                             allowed_callers=frozenset({"gateway"}))
    verifier = tokens.verifier()
    server = GrpcServer(config, verifier=lambda: verifier, chaos=ChaosSwitch(None, "catalog"))
    server.add(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogApi(pool, Outbox("catalog")))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
            yield catalog_pb2_grpc.CatalogServiceStub(channel), tokens
    finally:
        await server.stop(0)


@pytest.mark.parametrize(("roles", "code"), [
    (None, grpc.StatusCode.UNAUTHENTICATED),
    (("customer",), grpc.StatusCode.PERMISSION_DENIED),
    (("customer", "support"), grpc.StatusCode.PERMISSION_DENIED),
])
async def test_only_an_admin_creates_products_whatever_the_gateway_let_through(
    pool: asyncpg.Pool, served_catalog: tuple[catalog_pb2_grpc.CatalogServiceStub, Tokens],
    roles: tuple[str, ...] | None, code: grpc.StatusCode,
) -> None:
    """Zero trust: catalog checks the admin role itself, so a gateway bug or a caller that skips
    it cannot add products."""
    stub, tokens = served_catalog
    metadata = [(CALLER_METADATA, "gateway")]
    if roles is not None:
        metadata.append(("authorization", f"Bearer {tokens.sign('user-1', *roles)}"))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateProduct(new_product(), metadata=metadata, timeout=10)

    assert refused.value.code() is code
    assert await pool.fetchval("SELECT count(*) FROM products WHERE sku = 'NEW-1'") == 0
    admin = [(CALLER_METADATA, "gateway"), ("authorization", f"Bearer {tokens.sign('admin-1', 'admin')}")]
    assert (await stub.CreateProduct(new_product(), metadata=admin, timeout=10)).sku == "NEW-1"
