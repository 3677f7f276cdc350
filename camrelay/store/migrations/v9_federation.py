"""Step 9: federation -- credentials issued to upper platforms, pushes upward, links to
lower platforms, and which units and cameras were imported over a link.

Frozen: the tables and columns as this step first created them; never import ``schema``
here (see ``v1_base``).  ``users``, ``tokens`` and ``units`` appear only as foreign keys'
targets.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
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
    text,
)

_metadata = MetaData()
_TIME = DateTime(timezone=True)

Table("users", _metadata, Column("id", Integer, primary_key=True))
Table("tokens", _metadata, Column("id", Integer, primary_key=True))
Table("units", _metadata, Column("id", Integer, primary_key=True))

_credentials = Table(
    "federation_credentials",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_id", Integer, ForeignKey("tokens.id", ondelete="CASCADE"), nullable=False),
    Column("unit_ids", JSON, nullable=False),
    Column("camera_ids", JSON, nullable=False),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", _TIME, nullable=False),
    Column("revoked_at", _TIME),
)

_pushes = Table(
    "federation_pushes",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_ids", JSON, nullable=False),
    Column("credential_ids", JSON),
    Column("reason", Text, nullable=False),
    Column("until", _TIME, nullable=False),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", _TIME, nullable=False),
    Index("ix_federation_pushes_until", "until"),
)

_links = Table(
    "federation_links",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", String(1024), nullable=False),
    Column("credential_enc", Text, nullable=False),
    Column("attach_unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"),
           nullable=False),
    Column("state", String(16), nullable=False),
    Column("stale", Boolean, nullable=False),
    Column("error", Text),
    Column("remote_platform", String(200)),
    Column("last_sync_at", _TIME),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", _TIME, nullable=False),
)


def upgrade(conn: Connection) -> None:
    timestamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text("ALTER TABLE units ADD COLUMN link_id INTEGER"))
    conn.execute(text("ALTER TABLE cameras ADD COLUMN link_id INTEGER"))
    conn.execute(text("ALTER TABLE cameras ADD COLUMN remote_id INTEGER"))
    conn.execute(text(f"ALTER TABLE cameras ADD COLUMN pushed_until {timestamp}"))
    for one in (_credentials, _pushes, _links):
        one.create(conn, checkfirst=True)
