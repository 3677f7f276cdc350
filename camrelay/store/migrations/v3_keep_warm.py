"""Step 3: keep-warm windows for important periods (a new table; no existing row changes).

Frozen: the table as this step first created it; never import ``schema`` here (see
``v1_base``).  ``cameras`` and ``users`` appear only as the targets of foreign keys.
"""

from __future__ import annotations

from sqlalchemy import (
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

# referred to, not created
Table("cameras", _metadata, Column("id", Integer, primary_key=True))
Table("users", _metadata, Column("id", Integer, primary_key=True))

_keep_warm = Table(
    "keep_warm",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("variant", String(8), nullable=False),
    Column("starts_at", _TIME, nullable=False),
    Column("ends_at", _TIME, nullable=False),
    Column("reason", String(200)),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", _TIME, nullable=False),
    Index("ix_keep_warm_ends", "ends_at"),
)


def upgrade(conn: Connection) -> None:
    _keep_warm.create(conn, checkfirst=True)
