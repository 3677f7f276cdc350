"""Step 2: grants, emergency access and notifications (new tables; no existing row changes).

Frozen: the tables as this step first created them; never import ``schema`` here (see
``v1_base``).  ``units`` and ``users`` appear only as the targets of foreign keys: they
exist already and are not created again.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
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

# referred to, not created
Table("units", _metadata, Column("id", Integer, primary_key=True))
Table("users", _metadata, Column("id", Integer, primary_key=True))

_grants = Table(
    "grants",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grantee_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("grantee_user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("include_subunits", Boolean, nullable=False),
    Column("camera_ids", JSON, nullable=False),
    Column("category", String(64)),
    Column("scope_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("actions", JSON, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("valid_from", _TIME, nullable=False),
    Column("valid_until", _TIME, nullable=False),
    Column("state", String(16), nullable=False),
    Column("requested_by", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("requested_at", _TIME, nullable=False),
    Column("decided_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("decided_at", _TIME),
    Column("decision_comment", Text),
    Column("revoked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("revoked_at", _TIME),
    Column("revoke_reason", Text),
    Index("ix_grants_state", "state"),
)

_emergencies = Table(
    "emergencies",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("opened_by", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("incident", String(200), nullable=False),
    Column("camera_ids", JSON, nullable=False),
    Column("category", String(64)),
    Column("scope_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("radius_km", Float),
    Column("opened_at", _TIME, nullable=False),
    Column("expires_at", _TIME, nullable=False),
    Column("state", String(16), nullable=False),
    Column("confirmed_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("confirmed_at", _TIME),
    Column("revoked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("revoked_at", _TIME),
    Column("comment", Text),
    Index("ix_emergencies_state", "state"),
)

_notifications = Table(
    "notifications",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", _TIME, nullable=False),
    Column("audience", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject_id", Integer),
    Column("message", Text, nullable=False),
)


def upgrade(conn: Connection) -> None:
    for table in (_grants, _emergencies, _notifications):
        table.create(conn, checkfirst=True)
