"""Step 6: the console's saved layouts and tours, and the wall screens desks drive.

Frozen: the tables as this step first created them; never import ``schema`` here (see
``v1_base``).  ``users`` and ``units`` appear only as foreign keys' targets.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

_metadata = MetaData()
_TIME = DateTime(timezone=True)

Table("users", _metadata, Column("id", Integer, primary_key=True))
Table("units", _metadata, Column("id", Integer, primary_key=True))

_views = Table(
    "saved_views",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("owner_user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("owner_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("layout", String(8), nullable=False),
    Column("cameras", JSON, nullable=False),
    Column("seconds", Integer),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("updated_at", _TIME, nullable=False),
    Index("ix_saved_views_user", "owner_user_id"),
    Index("ix_saved_views_unit", "owner_unit_id"),
)

_screens = Table(
    "wall_screens",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("content", JSON),
    Column("changed_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("changed_at", _TIME),
    Column("created_at", _TIME, nullable=False),
)


def upgrade(conn: Connection) -> None:
    _views.create(conn, checkfirst=True)
    _screens.create(conn, checkfirst=True)
