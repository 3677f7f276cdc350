"""What an upper platform may see here: the scope of its federation credential.

A credential (issued with ``camrelay federation issue``) names units (each with its
subtree) and cameras; cameras pushed upward (``POST /api/v1/federation/push``) join the
scope of the credentials they were pushed to until their time ends.  The service account
behind a credential has the role ``federation``: it lists and watches (``live``) only what
its scope covers, never more, and is not a member of any unit's jurisdiction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from camrelay.catalog.models import Camera
from camrelay.catalog.service import subtree_ids
from camrelay.store import schema
from camrelay.store.db import AsyncConnection

_creds = schema.federation_credentials
_pushes = schema.federation_pushes


@dataclass(frozen=True, slots=True)
class FederationScope:
    credential_id: int
    name: str
    unit_ids: frozenset[int]  # the shared units and every unit below them
    camera_ids: frozenset[int]  # shared one by one
    pushed: dict[int, datetime]  # camera id -> pushed until (the latest push)

    def covers(self, camera: Camera) -> bool:
        return (camera.unit_id in self.unit_ids or camera.id in self.camera_ids
                or camera.id in self.pushed)


async def federation_scope(conn: AsyncConnection, user_id: int, now: datetime
                           ) -> FederationScope | None:
    """The scope of the (unrevoked) credential of service account ``user_id``, or None."""
    row = (await conn.execute(select(_creds).where(_creds.c.user_id == user_id).where(
        _creds.c.revoked_at.is_(None)))).mappings().first()
    if row is None:
        return None
    units: set[int] = set()
    for unit_id in row["unit_ids"] or ():
        units |= await subtree_ids(conn, int(unit_id))
    pushed: dict[int, datetime] = {}
    for push in (await conn.execute(select(_pushes).where(_pushes.c.until > now))).mappings():
        targets = push["credential_ids"]
        if targets is not None and row["id"] not in targets:
            continue
        for camera_id in push["camera_ids"]:
            until = push["until"]
            if camera_id not in pushed or pushed[camera_id] < until:
                pushed[int(camera_id)] = until
    return FederationScope(credential_id=int(row["id"]), name=row["name"],
                           unit_ids=frozenset(units),
                           camera_ids=frozenset(int(c) for c in row["camera_ids"] or ()),
                           pushed=pushed)
