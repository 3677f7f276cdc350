"""Step 8: drills -- the reports of a check of every camera of a subtree at once.

Frozen: the table as this step first created it; never import ``schema`` here (see
``v1_base``).  ``units`` and ``users`` appear only as foreign keys' targets.
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

Table("units", _metadata, Column("id", Integer, primary_key=True))
Table("users", _metadata, Column("id", Integer, primary_key=True))

_drills = Table(
    "drills",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("started_by_name", String(64)),
    Column("started_at", _TIME, nullable=False),
    Column("finished_at", _TIME),
    Column("report", JSON),
    Index("ix_drills_started", "started_at"),
)


def upgrade(conn: Connection) -> None:
    _drills.create(conn, checkfirst=True)
