"""Versioned schema migrations, applied at start-up.

A fresh store is created from ``schema.metadata`` and stamped with the newest version;
an older store is upgraded one step at a time, inside one transaction, so a failed
upgrade leaves it as it was.  Each step is a function of a synchronous connection that
must keep every row.  (Alembic would do the same with more machinery; we need one
linear history that runs identically on SQLite and PostgreSQL.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from camrelay.errors import StoreError
from camrelay.store import schema
from camrelay.store.db import AsyncEngine

log = logging.getLogger(__name__)

Step = Callable[[Connection], None]

# version -> step that upgrades a store from version - 1
STEPS: dict[int, Step] = {}

SCHEMA_VERSION = 4


def step(version: int) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        STEPS[version] = fn
        return fn

    return register


def _read_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("meta"):
        if inspect(conn).get_table_names():
            raise StoreError("the database holds tables but no camrelay schema version")
        return None
    value = conn.execute(
        select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
    ).scalar_one_or_none()
    return int(value) if value is not None else None


def _write_version(conn: Connection, version: int) -> None:
    updated = conn.execute(
        schema.meta.update().where(schema.meta.c.key == "schema_version").values(value=str(version))
    )
    if updated.rowcount == 0:
        conn.execute(schema.meta.insert().values(key="schema_version", value=str(version)))


def _migrate(conn: Connection) -> tuple[int | None, int]:
    if conn.dialect.name == "postgresql":
        # two nodes starting at once must not both migrate
        conn.execute(text("SELECT pg_advisory_xact_lock(7261031)"))
    current = _read_version(conn)
    if current is None:
        schema.metadata.create_all(conn)
        _write_version(conn, SCHEMA_VERSION)
        return None, SCHEMA_VERSION
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the store has schema version {current}, newer than this camrelay "
            f"understands ({SCHEMA_VERSION}); upgrade camrelay"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        log.info("migrating store schema %d -> %d", version - 1, version)
        STEPS[version](conn)
    if SCHEMA_VERSION != current:
        _write_version(conn, SCHEMA_VERSION)
    return current, SCHEMA_VERSION


@step(2)
def _access_tables(conn: Connection) -> None:
    """Grants, emergency access and notifications (new tables; no existing row changes)."""
    for table in (schema.grants, schema.emergencies, schema.notifications):
        table.create(conn, checkfirst=True)


@step(3)
def _keep_warm_windows(conn: Connection) -> None:
    """Keep-warm windows for important periods (a new table; no existing row changes)."""
    schema.keep_warm.create(conn, checkfirst=True)


@step(4)
def _transcode_settings(conn: Connection) -> None:
    """Per-camera transcoding size and bitrate (new nullable columns; rows keep theirs)."""
    for column in ("transcode_width", "transcode_height", "transcode_bitrate"):
        conn.execute(text(f"ALTER TABLE cameras ADD COLUMN {column} INTEGER"))


async def migrate(engine: AsyncEngine) -> tuple[int | None, int]:
    """Bring the store to the newest version; returns (version before, version after)."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate)
