import asyncio
from pathlib import Path

import asyncpg
import pytest

from chassis import db


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql)


async def test_migrations_apply_once_in_order(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path / "svc", "001_create.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path / "svc", "002_seed.sql", "INSERT INTO things VALUES (1);")
    pool = await db.connect(fresh_database)
    try:
        assert await db.migrate(pool, {"svc": tmp_path / "svc"}) == ["svc/001_create.sql", "svc/002_seed.sql"]
        assert await db.migrate(pool, {"svc": tmp_path / "svc"}) == []
        write(tmp_path / "svc", "003_more.sql", "INSERT INTO things VALUES (2);")
        assert await db.migrate(pool, {"svc": tmp_path / "svc"}) == ["svc/003_more.sql"]
        assert await pool.fetchval("SELECT count(*) FROM things") == 2
    finally:
        await pool.close()


async def test_a_failing_migration_leaves_nothing_half_applied(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path / "svc", "001_broken.sql", "CREATE TABLE a (id int); SELECT no_such_function();")
    pool = await db.connect(fresh_database)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await db.migrate(pool, {"svc": tmp_path / "svc"})
        assert await pool.fetchval("SELECT to_regclass('a')") is None
        assert await pool.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await pool.close()


async def test_replicas_starting_together_apply_each_migration_once(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path / "svc", "001_create.sql", "CREATE TABLE counter (n int); INSERT INTO counter VALUES (0);")
    write(tmp_path / "svc", "002_bump.sql", "UPDATE counter SET n = n + 1;")
    pools = [await db.connect(fresh_database) for _ in range(4)]
    try:
        await asyncio.gather(*(db.migrate(pool, {"svc": tmp_path / "svc"}) for pool in pools))
        assert await pools[0].fetchval("SELECT n FROM counter") == 1
    finally:
        for pool in pools:
            await pool.close()


def test_two_migrations_with_one_number_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "")
    write(tmp_path, "001_b.sql", "")
    with pytest.raises(ValueError, match="share a number"):
        db._migration_files(tmp_path)


async def test_a_released_connection_is_not_reset_but_its_open_transaction_is_rolled_back(fresh_database: str) -> None:
    """No reset round trip on release (pooled connections keep no session state), yet a
    transaction left open never leaks into the next borrower."""
    pool = await db.connect(fresh_database, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'kept'")
            await conn.execute("CREATE TABLE t (n int)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('application_name')") == "kept"
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO t VALUES (1)")
        assert await pool.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await pool.close()


async def _advisory_locks(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND a.datname = current_database()"
    )


async def test_migrations_give_their_lock_back_to_the_pool(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path / "svc", "001_create.sql", "CREATE TABLE things (id int);")
    pool = await db.connect(fresh_database, min_size=1, max_size=1)
    try:
        await db.migrate(pool, {"svc": tmp_path / "svc"})
        assert await _advisory_locks(pool) == 0
    finally:
        await pool.close()


async def test_a_lock_that_cannot_be_given_back_closes_its_connection(fresh_database: str) -> None:
    pool = await db.connect(fresh_database, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = conn.get_server_pid()
            await conn.execute("SELECT pg_advisory_lock(7)")
            with pytest.raises(asyncpg.DataError):  # any failure: here the key cannot even be sent
                await db.unlock(conn, "not a key")  # type: ignore[arg-type]
        assert await pool.fetchval("SELECT pg_backend_pid()") != backend
    finally:
        await pool.close()
