"""Emergency priority (seed 002 art. 8): access at once, confirmed or revoked afterwards.

An operator (the roles are configurable) opens emergency access for the cameras of an
incident -- listed, a unit subtree, a category or a circle around the incident's
location -- with a mandatory reason and incident reference.  The handling unit (the
opener's unit) may then watch, snapshot and steer those cameras for a short time
(default 2 hours).  Every opening is announced at once to the platform's approvers,
who confirm or revoke it; views made under it are flagged in the access log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import RowMapping

from camrelay.access.accounts import User
from camrelay.access.grants import clean_text, parse_camera_ids, unit_id_of
from camrelay.access.scope import Near, Scope
from camrelay.catalog.models import parse_unit_code
from camrelay.catalog.service import subtree_ids
from camrelay.errors import AccessDenied, Conflict, NotFound, ValidationError
from camrelay.fields import utcnow
from camrelay.roles import Role
from camrelay.settings import AccessSettings
from camrelay.store import Store, schema
from camrelay.store.db import AsyncConnection

log = logging.getLogger(__name__)

_e = schema.emergencies
_units = schema.units
_users = schema.users
_cams = schema.cameras
_notes = schema.notifications


@dataclass(frozen=True, slots=True)
class Emergency:
    id: int
    opened_by: str
    opened_by_id: int
    unit: str
    unit_id: int
    reason: str
    incident: str
    camera_ids: tuple[int, ...]
    category: str | None
    scope_unit: str | None
    scope_unit_id: int | None
    near: Near | None
    opened_at: datetime
    expires_at: datetime
    state: str  # open, confirmed, revoked
    confirmed_by: str | None
    confirmed_at: datetime | None
    revoked_by: str | None
    revoked_at: datetime | None
    comment: str | None

    def status(self, now: datetime) -> str:
        """open, confirmed, revoked or ended."""
        if self.state == "revoked":
            return "revoked"
        if now >= self.expires_at:
            return "ended"
        return self.state

    def active(self, now: datetime) -> bool:
        return self.status(now) in ("open", "confirmed")


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    created_at: datetime
    audience: str
    kind: str
    subject_id: int | None
    message: str


@functools.cache  # built once, as grants._query
def _query() -> Any:
    ou = _units.alias("ou")
    su = _units.alias("su")
    op = _users.alias("op")
    cf = _users.alias("cf")
    rv = _users.alias("rv")
    return select(
        _e, ou.c.code.label("unit_code"), su.c.code.label("scope_unit_code"),
        op.c.username.label("opener"), cf.c.username.label("confirmer"),
        rv.c.username.label("revoker"),
    ).select_from(
        _e.join(ou, ou.c.id == _e.c.unit_id).outerjoin(su, su.c.id == _e.c.scope_unit_id)
        .join(op, op.c.id == _e.c.opened_by).outerjoin(cf, cf.c.id == _e.c.confirmed_by)
        .outerjoin(rv, rv.c.id == _e.c.revoked_by)
    )


def _emergency(row: RowMapping) -> Emergency:
    near = None
    if row["latitude"] is not None and row["longitude"] is not None and row["radius_km"]:
        near = Near(row["latitude"], row["longitude"], row["radius_km"])
    return Emergency(
        id=row["id"], opened_by=row["opener"], opened_by_id=row["opened_by"],
        unit=row["unit_code"], unit_id=row["unit_id"], reason=row["reason"],
        incident=row["incident"], camera_ids=tuple(row["camera_ids"] or ()),
        category=row["category"], scope_unit=row["scope_unit_code"],
        scope_unit_id=row["scope_unit_id"], near=near, opened_at=row["opened_at"],
        expires_at=row["expires_at"], state=row["state"], confirmed_by=row["confirmer"],
        confirmed_at=row["confirmed_at"], revoked_by=row["revoker"],
        revoked_at=row["revoked_at"], comment=row["comment"],
    )


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(f"{name} must be a number from {low:g} to {high:g}", field=name)
    return float(value)


class Emergencies:
    def __init__(self, store: Store, config: AccessSettings, categories: list[str]) -> None:
        self.store = store
        self.config = config
        self.categories = categories

    async def get(self, emergency_id: int, conn: AsyncConnection | None = None) -> Emergency:
        async with self.store.using(conn) as c:
            row = (await c.execute(_query().where(_e.c.id == emergency_id))
                   ).mappings().first()
        if row is None:
            raise NotFound(f"emergency {emergency_id} does not exist")
        return _emergency(row)

    async def open(self, who: User, data: Mapping[str, Any]) -> Emergency:
        if who.role not in self.config.emergency_roles:
            raise AccessDenied(
                f"the {who.role.value} role may not open emergency access (allowed: "
                f"{', '.join(sorted(set(self.config.emergency_roles)))})")
        reason = clean_text(data.get("reason"), "reason", 1000, required=True)
        incident = clean_text(data.get("incident"), "incident", 200, required=True)
        cameras = parse_camera_ids(data.get("cameras"))
        category = data.get("category") or None
        if category is not None and category not in self.categories:
            raise ValidationError(f"category {str(category)[:64]!r} is not in the vocabulary",
                                  field="category")
        near = data.get("near")
        lat = lon = radius = None
        if near is not None:
            if not isinstance(near, Mapping):
                raise ValidationError("near must hold latitude, longitude and radius_km",
                                      field="near")
            lat = _number(near.get("latitude"), "near.latitude", -90, 90)
            lon = _number(near.get("longitude"), "near.longitude", -180, 180)
            radius = _number(near.get("radius_km"), "near.radius_km", 0.01, 500)
        hours = data.get("hours")
        duration = self.config.emergency_hours if hours is None else _number(
            hours, "hours", 0.01, self.config.emergency_max_hours)
        now = utcnow()
        async with self.store.begin() as conn:
            scope_unit_id = None
            if data.get("unit_scope"):
                scope_unit_id = await unit_id_of(
                    conn, parse_unit_code(data["unit_scope"], "unit_scope"), "unit_scope")
            if not cameras and category is None and scope_unit_id is None and near is None:
                raise ValidationError("choose the incident's cameras: cameras, unit_scope, "
                                      "category and/or near", field="cameras")
            if cameras:
                found = set((await conn.execute(
                    select(_cams.c.id).where(_cams.c.id.in_(cameras)))).scalars())
                missing = sorted(set(cameras) - found)
                if missing:
                    raise ValidationError(f"cameras: camera {missing[0]} does not exist",
                                          field="cameras")
            result = await conn.execute(_e.insert().values(
                opened_by=who.id, unit_id=who.unit_id, reason=reason, incident=incident,
                camera_ids=list(cameras), category=category, scope_unit_id=scope_unit_id,
                latitude=lat, longitude=lon, radius_km=radius, opened_at=now,
                expires_at=now + timedelta(hours=duration), state="open",
            ).returning(_e.c.id))
            emergency = await self.get(int(result.scalar_one()), conn)
            message = (f"EMERGENCY access {emergency.id} opened by {who.username} "
                       f"({who.unit_code}) for incident {incident!r}: {reason} -- until "
                       f"{emergency.expires_at.isoformat()}; confirm or revoke it")
            await conn.execute(_notes.insert().values(
                created_at=now, audience=Role.APPROVER.value, kind="emergency.open",
                subject_id=emergency.id, message=message))
        log.warning("[emergency %d] %s", emergency.id, message)
        return emergency

    async def confirm(self, emergency_id: int, who: User, comment: str | None) -> Emergency:
        comment = clean_text(comment, "comment", 1000)
        if who.role is not Role.APPROVER:
            raise AccessDenied("only an approver of the platform confirms emergency access")
        async with self.store.begin() as conn:
            emergency = await self.get(emergency_id, conn)
            if emergency.opened_by_id == who.id:
                raise AccessDenied("nobody confirms their own emergency access")
            if emergency.status(utcnow()) != "open":
                raise Conflict(f"emergency {emergency_id} is {emergency.status(utcnow())}")
            await conn.execute(_e.update().where(_e.c.id == emergency_id).values(
                state="confirmed", confirmed_by=who.id, confirmed_at=utcnow(),
                comment=comment))
            return await self.get(emergency_id, conn)

    async def revoke(self, emergency_id: int, who: User, comment: str | None) -> Emergency:
        comment = clean_text(comment, "comment", 1000)
        async with self.store.begin() as conn:
            emergency = await self.get(emergency_id, conn)
            if who.role is not Role.APPROVER and who.id != emergency.opened_by_id:
                raise AccessDenied("approvers (or the opener, to end it early) revoke emergency "
                                   "access")
            if emergency.state == "revoked":
                raise Conflict(f"emergency {emergency_id} is already revoked")
            await conn.execute(_e.update().where(_e.c.id == emergency_id).values(
                state="revoked", revoked_by=who.id, revoked_at=utcnow(), comment=comment))
            return await self.get(emergency_id, conn)

    async def list_emergencies(self, who: User, *, active_only: bool = False) -> list[Emergency]:
        async with self.store.connect() as conn:
            query = _query().order_by(_e.c.id.desc()).limit(500)
            if who.role not in (Role.APPROVER, Role.AUDITOR):
                own = await subtree_ids(conn, who.unit_id)
                query = query.where(_e.c.unit_id.in_(own))
            rows = (await conn.execute(query)).mappings().all()
        found = [_emergency(r) for r in rows]
        if active_only:
            now = utcnow()
            found = [e for e in found if e.active(now)]
        return found

    async def active_for(self, conn: AsyncConnection, user: User, now: datetime
                         ) -> list[tuple[Emergency, Scope]]:
        rows = (await conn.execute(_query().where(and_(
            _e.c.unit_id == user.unit_id, _e.c.state != "revoked", _e.c.expires_at > now,
        )))).mappings().all()
        out: list[tuple[Emergency, Scope]] = []
        for row in rows:
            em = _emergency(row)
            units = None
            if em.scope_unit_id is not None:
                units = frozenset(await subtree_ids(conn, em.scope_unit_id))
            out.append((em, Scope(camera_ids=frozenset(em.camera_ids), category=em.category,
                                  unit_ids=units, near=em.near)))
        return out

    async def notifications(self, who: User, *, since_id: int = 0) -> list[Notification]:
        if who.role not in (Role.APPROVER, Role.ADMINISTRATOR, Role.AUDITOR):
            raise AccessDenied("notifications go to approvers")
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_notes).where(_notes.c.id > since_id)
                                       .order_by(_notes.c.id.desc()).limit(500))).mappings()
            return [Notification(id=r["id"], created_at=r["created_at"], audience=r["audience"],
                                 kind=r["kind"], subject_id=r["subject_id"],
                                 message=r["message"]) for r in rows]
