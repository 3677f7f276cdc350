"""The store's async layer (camrelay.store.db) on SQLite and PostgreSQL: transactions
commit and roll back as blocks, a cancelled task hands its connection back, only async
drivers are accepted, and no camrelay process imports SQLAlchemy's ORM."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from camrelay.errors import ConfigError
from camrelay.store import Store, schema
from camrelay.store.db import create_async_engine


def _meta(key: str, value: str = "v") -> object:
    return schema.meta.insert().values(key=key, value=value)


async def _count(store: Store, key: str) -> int:
    async with store.connect() as conn:
        found = await conn.execute(
            select(func.count()).select_from(schema.meta).where(schema.meta.c.key == key))
        return int(found.scalar_one())


async def test_a_block_commits_at_its_end_and_rolls_back_on_error(store: Store) -> None:
    async with store.begin() as conn:
        await conn.execute(_meta("kept"))
        assert conn.in_transaction()
    assert await _count(store, "kept") == 1

    with pytest.raises(RuntimeError, match="midway"):
        async with store.begin() as conn:
            await conn.execute(_meta("dropped"))
            raise RuntimeError("midway")
    assert await _count(store, "dropped") == 0

    async with store.connect() as conn:  # explicit commit and rollback
        await conn.execute(_meta("committed"))
        await conn.commit()
        await conn.execute(_meta("rolled-back"))
        await conn.rollback()
    assert (await _count(store, "committed"), await _count(store, "rolled-back")) == (1, 0)


async def test_a_cancelled_task_rolls_back_and_hands_its_connection_back(store: Store) -> None:
    pool = store.engine.sync_engine.pool
    inside = asyncio.Event()

    async def hold() -> None:
        async with store.begin() as conn:
            await conn.execute(_meta("cancelled"))
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await asyncio.wait_for(inside.wait(), 10)
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _count(store, "cancelled") == 0


async def test_run_sync_hands_the_synchronous_connection(store: Store) -> None:
    from sqlalchemy import inspect

    async with store.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert {"cameras", "units", "meta"} <= set(tables)


def test_a_synchronous_driver_is_refused(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="async driver"):
        create_async_engine(f"sqlite:///{tmp_path}/x.db")


def test_no_camrelay_process_imports_the_orm() -> None:
    """The server and the CLI never map objects: SQLAlchemy's ORM (6 MB) stays out."""
    code = ("import sys, camrelay.cli, camrelay.server, camrelay.app, camrelay.web.app, "
            "camrelay.cluster.worker, camrelay.access.journal; "
            "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy.orm', "
            "'sqlalchemy.ext'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.strip()
    assert out == "[]"
