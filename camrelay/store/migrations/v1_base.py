"""Step 1: the first schema (units, cameras, users, tokens and the version in ``meta``).

Frozen: these are the tables as camrelay first created them, kept here as they were so
that a later edit of ``camrelay.store.schema`` cannot change what this step builds.
Never import ``schema`` here; the likeness to it is deliberate.  ``UTCDateTime`` is
written as the column type it stores, ``DateTime(timezone=True)``.
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

Table(
    "meta",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

Table(
    "units",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=True),
    Column("created_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
    Index("ix_units_parent", "parent_id"),
)

Table(
    "cameras",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("external_id", String(128), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("maintenance_unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT")),
    Column("contact_name", String(100)),
    Column("contact_phone", String(40)),
    Column("category", String(64), nullable=False),
    Column("location", String(200)),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("camera_type", String(32), nullable=False),
    Column("vendor", String(100)),
    Column("model", String(100)),
    Column("status", String(16), nullable=False),
    Column("last_seen_at", _TIME),
    Column("main_url", String(1024)),
    Column("sub_url", String(1024)),
    Column("onvif_url", String(1024)),
    Column("transport", String(8), nullable=False),
    Column("username", String(128)),
    Column("password_enc", Text),
    Column("tags", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("valid_from", _TIME),
    Column("valid_until", _TIME),
    Column("created_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
    Index("ix_cameras_unit", "unit_id"),
    Index("ix_cameras_category", "category"),
)

Table(
    "users",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200)),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", Text),
    Column("disabled", Boolean, nullable=False),
    Column("service", Boolean, nullable=False),
    Column("created_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
)

Table(
    "tokens",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("name", String(100)),
    Column("kind", String(16), nullable=False),
    Column("created_at", _TIME, nullable=False),
    Column("expires_at", _TIME),
    Column("revoked_at", _TIME),
    Column("last_used_at", _TIME),
    Index("ix_tokens_user", "user_id"),
)


def create(conn: Connection) -> None:
    """The tables of schema version 1, in an empty database."""
    _metadata.create_all(conn)
