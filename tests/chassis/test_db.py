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
