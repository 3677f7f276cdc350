"""Versioned schema migrations, applied at start-up.

A fresh store is created from ``schema.metadata`` and stamped with the newest version;
an older store is upgraded one step at a time, inside one transaction, so a failed
upgrade leaves it as it was.  Each step is a function of a synchronous connection that
must keep every row.  (Alembic would do the same with more machinery; we need one
linear history that runs identically on SQLite and PostgreSQL.)

Each step lives in its own module and carries its own frozen DDL, never today's
``schema`` tables: an edit of a table in ``schema`` needs a new step, and the tests,
which build every old version from its steps and upgrade it, find the edit that has
none.  Step 1 builds the first schema in an empty database (the tests' way to it; a
fresh store takes the fast path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, column, inspect, select, table, text

from camrelay.errors import StoreError
from camrelay.store import schema
from camrelay.store.db import AsyncEngine
from camrelay.store.migrations import (
    v1_base,
    v2_access,
    v3_keep_warm,
    v4_transcode,
    v5_health,
    v6_layouts,
    v7_alarms,
    v8_drills,
    v9_federation,
    v10_backchannel,
)

log = logging.getLogger(__name__)

Step = Callable[[Connection], None]

# version -> step that brings a store from version - 1 (step 1: from nothing)
STEPS: dict[int, Step] = {
    1: v1_base.create,
    2: v2_access.upgrade,
    3: v3_keep_warm.upgrade,
    4: v4_transcode.upgrade,
    5: v5_health.upgrade,
    6: v6_layouts.upgrade,
    7: v7_alarms.upgrade,
    8: v8_drills.upgrade,
    9: v9_federation.upgrade,
    10: v10_backchannel.upgrade,
}

SCHEMA_VERSION = max(STEPS)

# the version's row, as every version since the first keeps it
_meta = table("meta", column("key"), column("value"))


def _read_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("meta"):
        if inspect(conn).get_table_names():
            raise StoreError("the database holds tables but no camrelay schema version")
        return None
    value = conn.execute(
        select(_meta.c.value).where(_meta.c.key == "schema_version")
    ).scalar_one_or_none()
    return int(value) if value is not None else None


def write_version(conn: Connection, version: int) -> None:
    updated = conn.execute(
        _meta.update().where(_meta.c.key == "schema_version").values(value=str(version))
    )
    if updated.rowcount == 0:
        conn.execute(_meta.insert().values(key="schema_version", value=str(version)))


def upgrade(conn: Connection, current: int, target: int) -> None:
    """Run the steps after ``current`` up to ``target`` (from 0: build from nothing)."""
    for version in range(current + 1, target + 1):
        log.info("migrating store schema %d -> %d", version - 1, version)
        STEPS[version](conn)


def _migrate(conn: Connection) -> tuple[int | None, int]:
    if conn.dialect.name == "postgresql":
        # two nodes starting at once must not both migrate
        conn.execute(text("SELECT pg_advisory_xact_lock(7261031)"))
    current = _read_version(conn)
    if current is None:
        schema.metadata.create_all(conn)
        write_version(conn, SCHEMA_VERSION)
        return None, SCHEMA_VERSION
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the store has schema version {current}, newer than this camrelay "
            f"understands ({SCHEMA_VERSION}); upgrade camrelay"
        )
    upgrade(conn, current, SCHEMA_VERSION)
    if SCHEMA_VERSION != current:
        write_version(conn, SCHEMA_VERSION)
    return current, SCHEMA_VERSION


async def migrate(engine: AsyncEngine) -> tuple[int | None, int]:
    """Bring the store to the newest version; returns (version before, version after)."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate)
