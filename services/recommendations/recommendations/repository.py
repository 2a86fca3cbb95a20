"""All of recommendations' SQL. Counts only grow, through upserts that add, so concurrent orders
never lose each other's increments; rows are written in key order so they cannot deadlock."""

from __future__ import annotations

import asyncpg


async def learn_order(conn: asyncpg.Connection, units: dict[str, int]) -> None:
    """Counts one confirmed order: its units per product, and each pair of its products."""
    products = sorted(units)
    await conn.execute(
        """INSERT INTO sales (product_id, units)
           SELECT product_id, units FROM unnest($1::text[], $2::bigint[]) AS line (product_id, units)
            ORDER BY product_id
           ON CONFLICT (product_id) DO UPDATE SET units = sales.units + excluded.units""",
        products,
        [units[product] for product in products],
    )
    await conn.execute(
        """INSERT INTO bought_together (product_id, other_id, orders)
           SELECT one.id, other.id, 1 FROM unnest($1::text[]) AS one (id), unnest($1::text[]) AS other (id)
            WHERE one.id <> other.id ORDER BY one.id, other.id
           ON CONFLICT (product_id, other_id) DO UPDATE SET orders = bought_together.orders + 1""",
        products,
    )


async def learn_product(conn: asyncpg.Connection, product_id: str, categories: list[str]) -> None:
    await conn.execute(
        """INSERT INTO product_categories (product_id, category)
           SELECT $1, category FROM unnest($2::text[]) AS listed (category) ORDER BY category
           ON CONFLICT DO NOTHING""",
        product_id,
        categories,
    )


async def bought_with(pool: asyncpg.Pool, product_id: str, limit: int) -> list[str]:
    """The products most often in the same order as `product_id`, best first."""
    rows = await pool.fetch(
        "SELECT other_id FROM bought_together WHERE product_id = $1 ORDER BY orders DESC, other_id LIMIT $2",
        product_id,
        limit,
    )
    return [row["other_id"] for row in rows]


async def same_categories(pool: asyncpg.Pool, product_id: str, limit: int) -> list[str]:
    """Other products sharing a category with `product_id`, best sellers first."""
    rows = await pool.fetch(
        """SELECT neighbour.product_id
             FROM product_categories own
             JOIN product_categories neighbour ON neighbour.category = own.category
                  AND neighbour.product_id <> own.product_id
             LEFT JOIN sales ON sales.product_id = neighbour.product_id
            WHERE own.product_id = $1
            GROUP BY neighbour.product_id, sales.units
            ORDER BY coalesce(sales.units, 0) DESC, neighbour.product_id
            LIMIT $2""",
        product_id,
        limit,
    )
    return [row["product_id"] for row in rows]


async def best_sellers(pool: asyncpg.Pool, limit: int) -> list[str]:
    """The products with the most units sold, best first."""
    rows = await pool.fetch("SELECT product_id FROM sales ORDER BY units DESC, product_id LIMIT $1", limit)
    return [row["product_id"] for row in rows]
