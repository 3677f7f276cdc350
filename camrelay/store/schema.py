"""The store's tables (SQLAlchemy Core), as of the newest schema version.

A fresh store is created from these definitions; an older one is brought here by the
steps in ``camrelay.store.migrations``.  ``tests`` check that both roads end in the
same schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=UTC)
        return stored.astimezone(UTC)


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
    Column("link_id", Integer),  # imported from a lower platform (camrelay.federation)
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
    # H.264 made by camrelay for viewers that cannot play the camera (once per camera)
    Column("transcode_width", Integer),
    Column("transcode_height", Integer),
    Column("transcode_bitrate", Integer),
    Column("status_reason", String(64)),  # why offline or fault: "unreachable", "blur", ...
    # imported from a lower platform (camrelay.federation): its link, its id down there,
    # and, when the lower side pushed it upward, until when
    Column("link_id", Integer),
    Column("remote_id", Integer),
    Column("pushed_until", UTCDateTime),
    # has an ONVIF audio back-channel (talk-back), as last found when asked; null: unknown
    Column("backchannel", Boolean),
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

# ---- access: grants, emergency access, notifications (schema version 2) ----------------------

grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # grantee: a unit (its users; sub-units only with include_subunits) or one user
    Column("grantee_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("grantee_user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("include_subunits", Boolean, nullable=False),
    # scope: listed cameras, or cameras matching category and/or a unit subtree
    Column("camera_ids", JSON, nullable=False),
    Column("category", String(64)),
    Column("scope_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("actions", JSON, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # pending, approved, rejected, revoked
    Column("requested_by", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("decided_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("decided_at", UTCDateTime),
    Column("decision_comment", Text),
    Column("revoked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("revoked_at", UTCDateTime),
    Column("revoke_reason", Text),
    Index("ix_grants_state", "state"),
)

emergencies = Table(
    "emergencies",
    metadata,
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
    Column("opened_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # open, confirmed, revoked
    Column("confirmed_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("confirmed_at", UTCDateTime),
    Column("revoked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("revoked_at", UTCDateTime),
    Column("comment", Text),
    Index("ix_emergencies_state", "state"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("audience", String(32), nullable=False),  # a role, e.g. "approver"
    Column("kind", String(32), nullable=False),
    Column("subject_id", Integer),
    Column("message", Text, nullable=False),
)

# Important periods (seed 000 art. 9): cameras kept live in a time window, watched or not.
keep_warm = Table(
    "keep_warm",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("variant", String(8), nullable=False),  # "main" or "sub"
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("reason", String(200)),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_keep_warm_ends", "ends_at"),
)

# Device health: one row per status interval of a camera (the open one has no end).
health_history = Table(
    "health_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    Column("findings", JSON, nullable=False),  # [{kind, value, threshold}, ...]
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Index("ix_health_history_camera", "camera_id", "started_at"),
    Index("ix_health_history_ended", "ended_at"),
)

# The console's saved layouts and tours: owned by a user (owner_user_id) or by a unit
# (owner_unit_id; seen by that unit's users); exactly one of the two is set.
saved_views = Table(
    "saved_views",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # "layout" or "tour"
    Column("name", String(100), nullable=False),
    Column("owner_user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("owner_unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE")),
    Column("layout", String(8), nullable=False),
    Column("cameras", JSON, nullable=False),  # camera id (or null: an empty tile) per tile
    Column("seconds", Integer),  # a tour's period
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_saved_views_user", "owner_user_id"),
    Index("ix_saved_views_unit", "owner_unit_id"),
)

# Wall screens (上墙): a named display of a unit, signed in as a service account, and
# what a desk last sent to it.
wall_screens = Table(
    "wall_screens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("content", JSON),  # {kind, name, view, layout, cameras, seconds} or null
    Column("changed_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("changed_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

# Alarms: one row per camera and kind while its condition lasts (repeats merge into it),
# routed to the units in ``alarm_units``.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),  # offline, fault.auth, finding.black, ...
    Column("severity", String(16), nullable=False),  # critical, major, minor
    Column("reason", String(64)),
    Column("value", JSON, nullable=False),  # what was measured: a finding or {"reason": ...}
    Column("count", Integer, nullable=False),  # checks that saw it (repeats merged)
    Column("raised_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime),
    Column("acked_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("acked_by_name", String(64)),
    Column("ack_comment", Text),
    Column("acked_at", UTCDateTime),
    Index("ix_alarms_camera_kind", "camera_id", "kind", "cleared_at"),
    Index("ix_alarms_cleared", "cleared_at"),
)

alarm_units = Table(
    "alarm_units",
    metadata,
    Column("alarm_id", Integer, ForeignKey("alarms.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_alarm_units_unit", "unit_id"),
)

# Drills: a check of every enabled camera of a unit's subtree at once, and its report
# (``camrelay.health.drills``); rows older than ``health.drill_keep_days`` are pruned.
drills = Table(
    "drills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running, done, failed
    Column("started_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("started_by_name", String(64)),  # None: the schedule
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("report", JSON),
    Index("ix_drills_started", "started_at"),
)

# ---- federation: platforms linked province <- city <- county (camrelay.federation) ----------

# On the lower side: what an upper platform may see (units with their subtrees, cameras),
# behind a service account of role "federation" and one API token.
federation_credentials = Table(
    "federation_credentials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_id", Integer, ForeignKey("tokens.id", ondelete="CASCADE"), nullable=False),
    Column("unit_ids", JSON, nullable=False),
    Column("camera_ids", JSON, nullable=False),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

# On the lower side: cameras pushed upward for a while (to every credential, or to some).
federation_pushes = Table(
    "federation_pushes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("camera_ids", JSON, nullable=False),
    Column("credential_ids", JSON),  # null: every active credential
    Column("reason", Text, nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_federation_pushes_until", "until"),
)

# On the upper side: a lower platform, its sealed credential and the sync's state.
federation_links = Table(
    "federation_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", String(1024), nullable=False),
    Column("credential_enc", Text, nullable=False),
    Column("attach_unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"),
           nullable=False),
    Column("state", String(16), nullable=False),  # connecting, connected, error
    Column("stale", Boolean, nullable=False),
    Column("error", Text),
    Column("remote_platform", String(200)),
    Column("last_sync_at", UTCDateTime),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
)

# ---- the access journal ---------------------------------------------------------------------
# Kept apart (its own MetaData): on SQLite it lives in its own database file next to the
# store, so a long catalogue transaction never holds up the open event of a view; on
# PostgreSQL it shares the store's database.  ``camrelay.access.journal`` creates it and
# its append-only triggers.

journal_metadata = MetaData()

journal = Table(
    "journal",
    journal_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),  # view.open, view.close, view.denied, admin, auth
    Column("action", String(64)),
    Column("view_id", String(32)),
    Column("user_id", Integer),
    Column("username", String(64)),
    Column("unit_code", String(64)),
    Column("camera_id", Integer),
    Column("camera_name", String(200)),
    Column("camera_unit_code", String(64)),
    Column("purpose", Text),
    Column("basis", String(16)),
    Column("grant_id", Integer),
    Column("approver", String(64)),
    Column("emergency_id", Integer),
    Column("incident", String(200)),
    Column("client_address", String(64)),
    Column("user_agent", String(400)),
    Column("result", String(16)),
    Column("reason", Text),
    Column("detail", Text),
    Column("mac", String(64), nullable=False),
    Index("ix_journal_view", "view_id"),
    Index("ix_journal_at", "at"),
)

journal_head = Table(
    "journal_head",
    journal_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("mac", String(64), nullable=False),
    Column("seal", String(64), nullable=False),
)

view_heartbeats = Table(
    "view_heartbeats",
    journal_metadata,
    Column("view_id", String(32), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Index("ix_view_heartbeats_node", "node"),
)
