"""Step 7: alarms -- a camera's abnormal condition, routed to the units responsible.

Frozen: the tables as this step first created them; never import ``schema`` here (see
``v1_base``).  ``cameras``, ``units`` and ``users`` appear only as foreign keys' targets.
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
    Text,
)

_metadata = MetaData()
_TIME = DateTime(timezone=True)

Table("cameras", _metadata, Column("id", Integer, primary_key=True))
Table("units", _metadata, Column("id", Integer, primary_key=True))
Table("users", _metadata, Column("id", Integer, primary_key=True))

_alarms = Table(
    "alarms",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("reason", String(64)),
    Column("value", JSON, nullable=False),
    Column("count", Integer, nullable=False),
    Column("raised_at", _TIME, nullable=False),
    Column("last_seen_at", _TIME, nullable=False),
    Column("cleared_at", _TIME),
    Column("acked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("acked_by_name", String(64)),
    Column("ack_comment", Text),
    Column("acked_at", _TIME),
    Index("ix_alarms_camera_kind", "camera_id", "kind", "cleared_at"),
    Index("ix_alarms_cleared", "cleared_at"),
)

_routes = Table(
    "alarm_units",
    _metadata,
    Column("alarm_id", Integer, ForeignKey("alarms.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_alarm_units_unit", "unit_id"),
)


def upgrade(conn: Connection) -> None:
    _alarms.create(conn, checkfirst=True)
    _routes.create(conn, checkfirst=True)
