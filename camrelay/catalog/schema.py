"""The store's tables (SQLAlchemy Core), as of the newest schema version.

A fresh store is created from these definitions; an older one is brought here by the
steps in ``camrelay.catalog.migrations``.  ``tests`` check that both roads end in the
same schema.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

units = Table(
    "units",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_units_parent", "parent_id"),
)

cameras = Table(
    "cameras",
    metadata,
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
    Column("last_seen_at", UTCDateTime),
    Column("main_url", String(1024)),
    Column("sub_url", String(1024)),
    Column("onvif_url", String(1024)),
    Column("transport", String(8), nullable=False),
    Column("username", String(128)),
    Column("password_enc", Text),
    Column("tags", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("valid_from", UTCDateTime),
    Column("valid_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_cameras_unit", "unit_id"),
    Index("ix_cameras_category", "category"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200)),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", Text),
    Column("disabled", Boolean, nullable=False),
    Column("service", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("name", String(100)),
    Column("kind", String(16), nullable=False),  # "login" or "api"
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Index("ix_tokens_user", "user_id"),
)
