"""Step 4: per-camera transcoding size and bitrate (new nullable columns; rows keep theirs).

Frozen: literal DDL, the same on SQLite and PostgreSQL; never import ``schema`` here.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_COLUMNS = ("transcode_width", "transcode_height", "transcode_bitrate")


def upgrade(conn: Connection) -> None:
    for column in _COLUMNS:
        conn.execute(text(f"ALTER TABLE cameras ADD COLUMN {column} INTEGER"))
