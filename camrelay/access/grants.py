"""Grants: access beyond the default rule, applied for and approved (seed 002 art. 7).

A grant names a grantee (a unit -- its own users, its sub-units only when the grant says
so -- or one user), a scope (``camrelay.access.scope``), actions, a purpose and a
validity.  It is requested, then approved or rejected by an approver of the platform
(or, where configured, an administrator of the owning unit); nobody decides their own
request.  An approved grant is active inside its validity until it is revoked.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import RowMapping

from camrelay.access.accounts import User
from camrelay.access.scope import Scope
from camrelay.catalog.models import parse_unit_code
from camrelay.catalog.service import ancestor_ids, subtree_ids
from camrelay.errors import AccessDenied, Conflict, NotFound, ValidationError
from camrelay.fields import clean_text as field_text
from camrelay.fields import parse_datetime, utcnow
from camrelay.roles import Role
from camrelay.settings import AccessSettings
from camrelay.store import Store, schema
from camrelay.store.db import AsyncConnection

ACTIONS = ("live", "snapshot", "ptz")
_g = schema.grants
_units = schema.units
_users = schema.users
_cams = schema.cameras

MAX_PURPOSE = 500
MAX_COMMENT = 1000


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    grantee_unit: str | None
    grantee_unit_id: int | None
    grantee_user: str | None
    grantee_user_id: int | None
    include_subunits: bool
    camera_ids: tuple[int, ...]
    category: str | None
    scope_unit: str | None
    scope_unit_id: int | None
    actions: tuple[str, ...]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    state: str  # pending, approved, rejected, revoked
    requested_by: str
    requested_by_id: int
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str | None
    revoked_by: str | None
    revoked_at: datetime | None
    revoke_reason: str | None

    def status(self, now: datetime) -> str:
        """pending, rejected, revoked, expired, scheduled or active."""
        if self.state != "approved":
            return self.state
        if now >= self.valid_until:
            return "expired"
        if now < self.valid_from:
            return "scheduled"
        return "active"


def clean_text(value: Any, name: str, limit: int, *, required: bool = False) -> str | None:
    """Free text of a grant or emergency (purpose, reason, comment): tabs allowed."""
    return field_text(value, name, limit, required=required, allow_tab=True)


def parse_actions(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(v in ACTIONS for v in value):
        raise ValidationError(f"actions must be a non-empty list of {', '.join(ACTIONS)}",
                              field="actions")
    return tuple(a for a in ACTIONS if a in value)


def parse_camera_ids(value: Any) -> tuple[int, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list) or len(value) > 1000 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in value):
        raise ValidationError("cameras must be a list of camera ids", field="cameras")
    return tuple(sorted(set(value)))


# Built once: the six aliases' column collections cost milliseconds of CPU per
# call, and every view opened reads the grants and emergencies of its user (a wall of
# 16 tiles at once: 16 times).  The select is immutable; .where() returns a copy.
@functools.cache
def _query() -> Any:
    gu = _units.alias("gu")
    su = _units.alias("su")
    us = _users.alias("us")
    rq = _users.alias("rq")
    dc = _users.alias("dc")
    rv = _users.alias("rv")
    return select(
        _g, gu.c.code.label("grantee_unit_code"), su.c.code.label("scope_unit_code"),
        us.c.username.label("grantee_username"), rq.c.username.label("requester"),
        dc.c.username.label("decider"), rv.c.username.label("revoker"),
    ).select_from(
        _g.outerjoin(gu, gu.c.id == _g.c.grantee_unit_id)
        .outerjoin(su, su.c.id == _g.c.scope_unit_id)
        .outerjoin(us, us.c.id == _g.c.grantee_user_id)
        .join(rq, rq.c.id == _g.c.requested_by)
        .outerjoin(dc, dc.c.id == _g.c.decided_by)
        .outerjoin(rv, rv.c.id == _g.c.revoked_by)
    )


def _grant(row: RowMapping) -> Grant:
    return Grant(
        id=row["id"], grantee_unit=row["grantee_unit_code"], grantee_unit_id=row["grantee_unit_id"],
        grantee_user=row["grantee_username"], grantee_user_id=row["grantee_user_id"],
        include_subunits=bool(row["include_subunits"]),
        camera_ids=tuple(row["camera_ids"] or ()), category=row["category"],
        scope_unit=row["scope_unit_code"], scope_unit_id=row["scope_unit_id"],
        actions=tuple(row["actions"] or ()), purpose=row["purpose"],
        valid_from=row["valid_from"], valid_until=row["valid_until"], state=row["state"],
        requested_by=row["requester"], requested_by_id=row["requested_by"],
        requested_at=row["requested_at"], decided_by=row["decider"],
        decided_at=row["decided_at"], decision_comment=row["decision_comment"],
        revoked_by=row["revoker"], revoked_at=row["revoked_at"],
        revoke_reason=row["revoke_reason"],
    )


async def unit_id_of(conn: AsyncConnection, code: str, name: str) -> int:
    unit_id = (await conn.execute(select(_units.c.id).where(_units.c.code == code))
               ).scalar_one_or_none()
    if unit_id is None:
        raise ValidationError(f"{name}: unit {code!r} does not exist", field=name)
    return int(unit_id)


class Grants:
    def __init__(self, store: Store, config: AccessSettings, categories: Sequence[str]) -> None:
        self.store = store
        self.config = config
        self.categories = list(categories)

    async def get(self, grant_id: int, conn: AsyncConnection | None = None) -> Grant:
        async with self.store.using(conn) as c:
            row = (await c.execute(_query().where(_g.c.id == grant_id))).mappings().first()
        if row is None:
            raise NotFound(f"grant {grant_id} does not exist")
        return _grant(row)

    async def request(self, who: User, data: Mapping[str, Any]) -> Grant:
        """A new pending grant, as ``who`` applies for it."""
        if who.role is Role.AUDITOR:
            raise AccessDenied("auditors read the access log; they do not apply for access")
        now = utcnow()
        purpose = clean_text(data.get("purpose"), "purpose", MAX_PURPOSE, required=True)
        actions = parse_actions(data.get("actions"))
        cameras = parse_camera_ids(data.get("cameras"))
        category = data.get("category") or None
        if category is not None and category not in self.categories:
            raise ValidationError(f"category {str(category)[:64]!r} is not in the vocabulary",
                                  field="category")
        valid_from = parse_datetime(data.get("valid_from"), "valid_from") or now
        valid_until = parse_datetime(data.get("valid_until"), "valid_until")
        if valid_until is None:
            raise ValidationError("valid_until is required: every grant ends", field="valid_until")
        if valid_until <= max(valid_from, now):
            raise ValidationError("valid_until must be in the future and after valid_from",
                                  field="valid_until")
        if valid_until - valid_from > timedelta(days=self.config.max_grant_days):
            raise ValidationError(f"a grant lasts at most {self.config.max_grant_days} days",
                                  field="valid_until")
        grantee_unit = data.get("grantee_unit") or None
        grantee_user = data.get("grantee_user") or None
        if (grantee_unit is None) == (grantee_user is None):
            raise ValidationError("name exactly one grantee: grantee_unit or grantee_user",
                                  field="grantee_unit")
        include_subunits = bool(data.get("include_subunits", False))
        async with self.store.begin() as conn:
            own = await subtree_ids(conn, who.unit_id)
            unit_id: int | None = None
            user_id: int | None = None
            if grantee_unit is not None:
                unit_id = await unit_id_of(conn, parse_unit_code(grantee_unit, "grantee_unit"),
                                           "grantee_unit")
                allowed = (unit_id == who.unit_id or who.role is Role.APPROVER
                           or (who.role is Role.ADMINISTRATOR and unit_id in own))
                if not allowed:
                    raise AccessDenied("you may apply for your own unit only (administrators: "
                                       "for units of their subtree)")
            else:
                row = (await conn.execute(select(_users.c.id, _users.c.unit_id).where(
                    _users.c.username == str(grantee_user)))).first()
                if row is None:
                    raise ValidationError(f"grantee_user: user {str(grantee_user)[:64]!r} does "
                                          "not exist", field="grantee_user")
                user_id = int(row.id)
                allowed = (user_id == who.id or who.role is Role.APPROVER
                           or (who.role is Role.ADMINISTRATOR and row.unit_id in own))
                if not allowed:
                    raise AccessDenied("you may apply for yourself only (administrators: for "
                                       "users of their subtree)")
                include_subunits = False
            scope_unit_id = None
            if data.get("unit_scope"):
                scope_unit_id = await unit_id_of(
                    conn, parse_unit_code(data["unit_scope"], "unit_scope"), "unit_scope")
            if not cameras and category is None and scope_unit_id is None:
                raise ValidationError("give a scope: cameras, a category and/or a unit_scope",
                                      field="cameras")
            if cameras:
                found = set((await conn.execute(
                    select(_cams.c.id).where(_cams.c.id.in_(cameras)))).scalars())
                missing = sorted(set(cameras) - found)
                if missing:
                    raise ValidationError(f"cameras: camera {missing[0]} does not exist",
                                          field="cameras")
            result = await conn.execute(_g.insert().values(
                grantee_unit_id=unit_id, grantee_user_id=user_id,
                include_subunits=include_subunits, camera_ids=list(cameras), category=category,
                scope_unit_id=scope_unit_id, actions=list(actions), purpose=purpose,
                valid_from=valid_from, valid_until=valid_until, state="pending",
                requested_by=who.id, requested_at=now).returning(_g.c.id))
            return await self.get(int(result.scalar_one()), conn)

    async def _check_decider(self, conn: AsyncConnection, who: User, grant: Grant) -> None:
        if grant.requested_by_id == who.id or grant.grantee_user_id == who.id:
            raise AccessDenied("nobody approves their own request; another approver must "
                               "decide it")
        if who.role is Role.APPROVER:
            return
        if who.role is Role.ADMINISTRATOR and self.config.owner_admins_approve:
            own = await subtree_ids(conn, who.unit_id)
            owners: set[int] = set()
            if grant.camera_ids:
                owners |= set((await conn.execute(select(_cams.c.unit_id).where(
                    _cams.c.id.in_(grant.camera_ids)))).scalars())
            if grant.scope_unit_id is not None:
                owners.add(grant.scope_unit_id)
            if owners and owners <= own and (grant.category is None or grant.scope_unit_id):
                return
            raise AccessDenied("administrators approve grants for cameras of their own subtree "
                               "only")
        raise AccessDenied("only an approver of the platform decides grant requests")

    async def decide(self, grant_id: int, who: User, *, approve: bool,
                     comment: str | None) -> Grant:
        comment = clean_text(comment, "comment", MAX_COMMENT)
        async with self.store.begin() as conn:
            grant = await self.get(grant_id, conn)
            await self._check_decider(conn, who, grant)
            if grant.state != "pending":
                raise Conflict(f"grant {grant_id} is {grant.state}, not pending")
            now = utcnow()
            if approve and grant.valid_until <= now:
                raise Conflict(f"grant {grant_id} ended at {grant.valid_until.isoformat()} "
                               "before it was approved; apply again")
            updated = await conn.execute(_g.update().where(
                and_(_g.c.id == grant_id, _g.c.state == "pending")).values(
                state="approved" if approve else "rejected", decided_by=who.id,
                decided_at=now, decision_comment=comment))
            if updated.rowcount != 1:
                raise Conflict(f"grant {grant_id} was decided meanwhile")
            return await self.get(grant_id, conn)

    async def revoke(self, grant_id: int, who: User, reason: str | None) -> Grant:
        reason = clean_text(reason, "reason", MAX_COMMENT)
        async with self.store.begin() as conn:
            grant = await self.get(grant_id, conn)
            if who.role not in (Role.APPROVER, Role.ADMINISTRATOR) \
                    and who.id != grant.requested_by_id:
                raise AccessDenied("approvers, administrators and the requester revoke grants")
            if who.role is Role.ADMINISTRATOR and who.id != grant.requested_by_id:
                own = await subtree_ids(conn, who.unit_id)
                grantee_unit = grant.grantee_unit_id
                if grantee_unit is None and grant.grantee_user_id is not None:
                    grantee_unit = (await conn.execute(select(_users.c.unit_id).where(
                        _users.c.id == grant.grantee_user_id))).scalar_one_or_none()
                if grantee_unit not in own and grant.scope_unit_id not in own:
                    raise AccessDenied("this grant concerns neither units nor cameras of your "
                                       "subtree")
            if grant.state in ("revoked", "rejected"):
                raise Conflict(f"grant {grant_id} is already {grant.state}")
            await conn.execute(_g.update().where(_g.c.id == grant_id).values(
                state="revoked", revoked_by=who.id, revoked_at=utcnow(), revoke_reason=reason))
            return await self.get(grant_id, conn)

    async def list_grants(self, who: User, *, status: str | None = None,
                   limit: int = 500) -> list[Grant]:
        """Approvers, auditors and root-level readers see all; others theirs and their unit's."""
        now = utcnow()
        query = _query().order_by(_g.c.id.desc())
        async with self.store.connect() as conn:
            if who.role not in (Role.APPROVER, Role.AUDITOR, Role.ADMINISTRATOR):
                query = query.where(or_(_g.c.requested_by == who.id,
                                        _g.c.grantee_user_id == who.id,
                                        _g.c.grantee_unit_id == who.unit_id))
            elif who.role is not Role.APPROVER:
                own = await subtree_ids(conn, who.unit_id)
                query = query.where(or_(_g.c.requested_by == who.id,
                                        _g.c.grantee_unit_id.in_(own),
                                        _g.c.scope_unit_id.in_(own),
                                        _g.c.grantee_user_id.in_(
                                            select(_users.c.id).where(_users.c.unit_id.in_(own)))))
            rows = (await conn.execute(query)).mappings().all()
        grants = [_grant(r) for r in rows]
        if status is not None:
            grants = [g for g in grants if g.status(now) == status]
        return grants[:limit]

    async def active_for(self, conn: AsyncConnection, user: User, now: datetime
                         ) -> list[tuple[Grant, Scope]]:
        """The grants that cover ``user`` now, each with its resolved scope."""
        ancestors = await ancestor_ids(conn, user.unit_id)
        rows = (await conn.execute(_query().where(and_(
            _g.c.state == "approved", _g.c.valid_from <= now, _g.c.valid_until > now,
            or_(_g.c.grantee_user_id == user.id, _g.c.grantee_unit_id == user.unit_id,
                and_(_g.c.include_subunits == True,
                     _g.c.grantee_unit_id.in_(ancestors))))))).mappings().all()
        out: list[tuple[Grant, Scope]] = []
        for row in rows:
            grant = _grant(row)
            units = None
            if grant.scope_unit_id is not None:
                units = frozenset(await subtree_ids(conn, grant.scope_unit_id))
            out.append((grant, Scope(camera_ids=frozenset(grant.camera_ids),
                                     category=grant.category, unit_ids=units)))
        return out
