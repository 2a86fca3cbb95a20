"""All of catalog's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from catalog.seed import SeedProduct
from chassis.ids import parse_id
from chassis.messaging import Outbox


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    name: str
    description: str
    price_amount: int
    currency: str
    categories: tuple[str, ...]
    image_url: str | None


class SkuTaken(Exception):
    pass


class UnknownCategory(Exception):
    pass


_SELECT = """
    SELECT p.id::text AS id, p.sku, p.name, p.description, p.price_amount, p.currency, p.image_url,
           coalesce(array_agg(pc.category ORDER BY pc.category) FILTER (WHERE pc.category IS NOT NULL), '{}')
               AS categories
      FROM products p LEFT JOIN product_categories pc ON pc.product_id = p.id
"""


def _product(row: asyncpg.Record) -> Product:
    return Product(
        id=row["id"], sku=row["sku"], name=row["name"], description=row["description"],
        price_amount=row["price_amount"], currency=row["currency"], categories=tuple(row["categories"]),
        image_url=row["image_url"],
    )


async def list_products(
    conn: asyncpg.Pool | asyncpg.Connection, *, query: str, category: str, page: int, page_size: int
) -> tuple[list[Product], int]:
    """One page of products; with a query, best matches first, otherwise by name, whatever its case and accents."""
    filters, args = [], []
    if query:
        args.append(query)
        filters.append(f"p.search @@ websearch_to_tsquery('english', ${len(args)})")
    if category:
        args.append(category)
        filters.append(
            f"EXISTS (SELECT 1 FROM product_categories c WHERE c.product_id = p.id AND c.category = ${len(args)})"
        )
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    by_name = "p.sort_name, p.name, p.id"
    order = f"ts_rank(p.search, websearch_to_tsquery('english', $1)) DESC, {by_name}" if query else by_name
    total = await conn.fetchval(f"SELECT count(*) FROM products p {where}", *args)
    args += [page_size, (page - 1) * page_size]
    rows = await conn.fetch(
        f"{_SELECT} {where} GROUP BY p.id ORDER BY {order} LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args
    )
    return [_product(row) for row in rows], total


async def get_products(conn: asyncpg.Pool | asyncpg.Connection, ids: list[str]) -> list[Product]:
    valid = [value for value in ids if parse_id(value) is not None]
    if not valid:
        return []
    rows = await conn.fetch(f"{_SELECT} WHERE p.id = ANY($1::uuid[]) GROUP BY p.id", valid)
    return [_product(row) for row in rows]


async def list_categories(conn: asyncpg.Pool | asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT slug, name FROM categories ORDER BY name")
    return [(row["slug"], row["name"]) for row in rows]


async def create_product(conn: asyncpg.Connection, product: Product) -> Product:
    known = {row["slug"] for row in await conn.fetch("SELECT slug FROM categories WHERE slug = ANY($1)", list(product.categories))}
    unknown = sorted(set(product.categories) - known)
    if unknown:
        raise UnknownCategory(", ".join(unknown))
    try:
        await conn.execute(
            """INSERT INTO products (id, sku, name, description, price_amount, currency, image_url)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            product.id, product.sku, product.name, product.description, product.price_amount,
            product.currency, product.image_url,
        )
    except asyncpg.UniqueViolationError:
        raise SkuTaken(product.sku) from None
    await conn.executemany(
        "INSERT INTO product_categories (product_id, category) VALUES ($1, $2)",
        [(product.id, slug) for slug in product.categories],
    )
    return product


async def announce(conn: asyncpg.Connection, outbox: Outbox, products: Iterable[Product | SeedProduct]) -> None:
    """A ProductCreated for each product, in the caller's transaction: published once it commits."""
    for product in products:
        data = {
            "product_id": product.id, "sku": product.sku, "name": product.name, "description": product.description,
            "price": {"amount": product.price_amount, "currency": product.currency},
            "categories": list(product.categories), "image_url": product.image_url or "",
            "starter": isinstance(product, SeedProduct),
        }
        await outbox.add(conn, "ProductCreated", data, subject=product.id)


async def seed_if_empty(
    pool: asyncpg.Pool, categories: dict[str, str], products: list[SeedProduct], outbox: Outbox
) -> bool:
    """Loads the starter catalog on first start, announcing each product as created; concurrent
    replicas load it once."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE categories IN EXCLUSIVE MODE")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM categories)"):
            return False
        await conn.executemany("INSERT INTO categories (slug, name) VALUES ($1, $2)", list(categories.items()))
        await conn.copy_records_to_table(
            "products",
            columns=["id", "sku", "name", "description", "price_amount", "currency", "image_url"],
            records=[
                (uuid.UUID(p.id), p.sku, p.name, p.description, p.price_amount, p.currency, p.image_url)
                for p in products
            ],
        )
        await conn.copy_records_to_table(
            "product_categories",
            columns=["product_id", "category"],
            records=[(uuid.UUID(p.id), slug) for p in products for slug in p.categories],
        )
        await announce(conn, outbox, products)
        return True
