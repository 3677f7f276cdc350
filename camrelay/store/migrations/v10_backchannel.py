"""Step 10: whether a camera has an ONVIF audio back-channel (talk-back), as camrelay last
found when an operator asked to talk to it; null until then (a new nullable column; rows
keep theirs).

Frozen: literal DDL, the same on SQLite and PostgreSQL; never import ``schema`` here.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def upgrade(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE cameras ADD COLUMN backchannel BOOLEAN"))
