"""All of recommendations' SQL. Counts change through upserts and updates that add or take away,
so concurrent orders never lose each other's changes; rows are locked and written in key order so
they cannot deadlock. A count that falls to nothing is deleted (the tables hold only positive ones)."""

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


async def record_order(conn: asyncpg.Connection, order_id: str, state: str) -> bool:
    """Records the order as `state` unless it is recorded already; True if this call recorded it.
    A concurrent call for the same order waits for the first one's commit, then finds its row."""
    return bool(
        await conn.fetchval(
            "INSERT INTO learned_orders (order_id, state) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
            order_id,
            state,
        )
    )


async def cancel_learned_order(conn: asyncpg.Connection, order_id: str) -> bool:
    """Marks a learned order cancelled; True if it was learned (its counts must be taken back)."""
    return bool(
        await conn.fetchval(
            "UPDATE learned_orders SET state = 'cancelled' WHERE order_id = $1 AND state = 'learned' RETURNING true",
            order_id,
        )
    )


async def unlearn_order(conn: asyncpg.Connection, units: dict[str, int]) -> None:
    """Takes back what `learn_order` counted for one order."""
    products = sorted(units)
    await conn.execute(
        "SELECT 1 FROM sales WHERE product_id = ANY($1::text[]) ORDER BY product_id FOR UPDATE", products
    )
    await conn.execute(
        """WITH line AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS line (product_id, units))
           DELETE FROM sales USING line WHERE sales.product_id = line.product_id AND sales.units <= line.units""",
        products,
        [units[product] for product in products],
    )
    await conn.execute(
        """WITH line AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS line (product_id, units))
           UPDATE sales SET units = sales.units - line.units FROM line WHERE sales.product_id = line.product_id""",
        products,
        [units[product] for product in products],
    )
    pairs = "product_id = ANY($1::text[]) AND other_id = ANY($1::text[])"
    await conn.execute(
        f"SELECT 1 FROM bought_together WHERE {pairs} ORDER BY product_id, other_id FOR UPDATE", products
    )
    await conn.execute(f"DELETE FROM bought_together WHERE {pairs} AND orders <= 1", products)
    await conn.execute(f"UPDATE bought_together SET orders = orders - 1 WHERE {pairs}", products)


async def forget_orders_older_than(pool: asyncpg.Pool, seconds: float) -> int:
    deleted = await pool.execute(
        "DELETE FROM learned_orders WHERE recorded_at < now() - make_interval(secs => $1)", seconds
    )
    return int(deleted.split()[-1])


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
