"""Step 5: device health -- why a camera has its status, and the history of its status.

Frozen: the column and the table as this step first created them; never import
``schema`` here (see ``v1_base``).  ``cameras`` appears only as a foreign key's target.
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
    text,
)

_metadata = MetaData()
_TIME = DateTime(timezone=True)

Table("cameras", _metadata, Column("id", Integer, primary_key=True))

_history = Table(
    "health_history",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    Column("findings", JSON, nullable=False),
    Column("started_at", _TIME, nullable=False),
    Column("ended_at", _TIME),
    Index("ix_health_history_camera", "camera_id", "started_at"),
    Index("ix_health_history_ended", "ended_at"),
)


def upgrade(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE cameras ADD COLUMN status_reason VARCHAR(64)"))
    _history.create(conn, checkfirst=True)
