"""Who may do what with units and cameras: the rules of jurisdiction, grants, emergency.

* The default rule: a user may use the cameras of their own unit and of every unit
  below it, with the actions of their role (``ROLE_ACTIONS``); technicians and
  administrators manage the cameras and units of their subtree.
* A grant (``camrelay.access.grants``) adds its actions on its scope for its grantee.
* Emergency access (``camrelay.access.emergency``) adds every action of the role on the
  incident's cameras for the opener's unit, and takes precedence in the log.
* The catalogue itself (without stream addresses) is visible to every signed-in user
  unless the deployment restricts it to the own subtree.
* Live uses are overseen by the administrators and auditors whose subtree holds the
  camera's unit or the viewer's: they list them, and administrators may end them.

Endpoints only ever ask this object; grants and emergencies never widen a role: a
viewer with a PTZ grant still cannot steer.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from camrelay.access.accounts import Principal, User
from camrelay.access.emergency import Emergencies, Emergency
from camrelay.access.federated import FederationScope, federation_scope
from camrelay.access.grants import Grant, Grants
from camrelay.access.scope import Scope
from camrelay.catalog.models import Camera
from camrelay.catalog.service import Catalog, subtree_ids
from camrelay.errors import AccessDenied, UnitNotFound
from camrelay.fields import utcnow
from camrelay.roles import Role
from camrelay.settings import AccessSettings
from camrelay.store import schema
from camrelay.store.db import AsyncConnection

if TYPE_CHECKING:
    from camrelay.access.journal import Journal

log = logging.getLogger(__name__)

MANAGERS = {Role.ADMINISTRATOR, Role.TECHNICIAN}
OVERSEERS = {Role.ADMINISTRATOR, Role.AUDITOR}
ROLE_ACTIONS: dict[Role, tuple[str, ...]] = {
    Role.ADMINISTRATOR: ("live", "snapshot", "ptz"),
    Role.APPROVER: ("live", "snapshot"),
    Role.OPERATOR: ("live", "snapshot", "ptz"),
    Role.VIEWER: ("live", "snapshot"),
    Role.TECHNICIAN: ("live", "snapshot", "ptz"),
    Role.AUDITOR: (),
    Role.FEDERATION: ("live",),  # only what its credential shares (access.federated)
}
WATCHERS = {r for r, a in ROLE_ACTIONS.items() if "live" in a}
PTZ_ROLES = {r for r, a in ROLE_ACTIONS.items() if "ptz" in a}
# who may publish field video (WHIP) to a field camera of a unit of their own subtree;
# grants and emergency access do not extend it
PUBLISHERS = {Role.ADMINISTRATOR, Role.OPERATOR, Role.TECHNICIAN}
# who may talk back to a field device (the right ``talk``) of a unit of their own
# subtree: the command hall's administrators and duty operators; grants and emergency
# access do not extend it
TALKERS = {Role.ADMINISTRATOR, Role.OPERATOR}
ROUTINE = "routine monitoring"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a user may do one action on one camera, and on what basis."""

    allowed: bool
    basis: str  # "own", "grant", "emergency" or "none"
    reason: str = ""
    grant_id: int | None = None
    approver: str | None = None
    emergency_id: int | None = None
    incident: str | None = None
    purpose: str | None = None  # the grant's purpose or the emergency's reason


@dataclass(slots=True)
class Holdings:
    """What one user holds right now: jurisdiction, active grants, emergencies."""

    user: User
    own: set[int]
    grants: list[tuple[Grant, Scope]] = field(default_factory=list)
    emergencies: list[tuple[Emergency, Scope]] = field(default_factory=list)
    federation: FederationScope | None = None  # an upper platform's service account

    def decide(self, camera: Camera, action: str) -> Decision:
        role_actions = ROLE_ACTIONS[self.user.role]
        if action not in role_actions:
            return Decision(False, "none", f"the {self.user.role.value} role does not allow "
                            f"{action}")
        if self.user.role is Role.FEDERATION:
            if self.federation is not None and self.federation.covers(camera):
                pushed = camera.id in self.federation.pushed
                return Decision(True, "federation", purpose="pushed upward" if pushed
                                else f"federation ({self.federation.name})")
            return Decision(False, "none", f"camera {camera.id} is not shared with this "
                            "platform's federation credential")
        for em, scope in self.emergencies:
            if scope.covers(camera):
                return Decision(True, "emergency", emergency_id=em.id, incident=em.incident,
                                purpose=f"emergency: {em.reason}")
        if camera.unit_id in self.own:
            return Decision(True, "own", purpose=ROUTINE)
        for grant, scope in self.grants:
            if action in grant.actions and scope.covers(camera):
                return Decision(True, "grant", grant_id=grant.id, approver=grant.decided_by,
                                purpose=grant.purpose)
        return Decision(False, "none", f"camera {camera.id} belongs to unit {camera.unit_code}, "
                        f"outside your jurisdiction ({self.user.unit_code} and below), and no "
                        f"active grant covers {action}")

    def emergency_of(self, camera: Camera) -> int | None:
        """The emergency access under which the user watches ``camera``, if any."""
        return self.decide(camera, "live").emergency_id

    def manages(self, camera: Camera) -> bool:
        """May change the camera, and so read its stream address."""
        return self.user.role in MANAGERS and camera.unit_id in self.own

    def rights(self, camera: Camera) -> list[str]:
        out = [a for a in ("live", "snapshot", "ptz") if self.decide(camera, a).allowed]
        if self.manages(camera):
            out.append("manage")
        if camera.unit_id in self.own:  # never by grant or emergency
            if camera.is_field and self.user.role in PUBLISHERS:
                out.append("publish")
            if camera.talk_possible and self.user.role in TALKERS:
                out.append("talk")
        role_actions = ROLE_ACTIONS[self.user.role]
        if role_actions and not all(a in out for a in role_actions):
            out.append("request")
        return out


def how_to_request(camera: Camera, action: str) -> dict[str, Any]:
    return {
        "request_grant": {
            "owner_unit": camera.unit_code,
            "api": "POST /api/v1/grants",
            "body": {"grantee_user": "<you>", "cameras": [camera.id], "actions": [action],
                     "purpose": "<why>", "valid_until": "<ISO time>"},
            "cli": f"camrelay grant request --to-user <you> --camera {camera.id} "
                   f"--actions {action} --purpose TEXT --until ISO-TIME",
            "note": "an approver of the platform decides the request; in an emergency an "
                    "operator can open emergency access (camrelay emergency open)",
        },
    }


class Policy:
    def __init__(self, catalog: Catalog, *, visibility: str = "platform",
                 config: AccessSettings | None = None, journal: Journal | None = None) -> None:
        self.catalog = catalog
        self.visibility = visibility
        self.config = config or AccessSettings()
        self.journal = journal
        self.grants = Grants(catalog.store, self.config, catalog.categories)
        self.emergencies = Emergencies(catalog.store, self.config, catalog.categories)

    async def jurisdiction(self, who: Principal | User) -> set[int]:
        user = who.user if isinstance(who, Principal) else who
        async with self.catalog.store.connect() as conn:
            return await subtree_ids(conn, user.unit_id)

    async def holdings(self, user: User, *, conn: AsyncConnection | None = None,
                       now: datetime | None = None) -> Holdings:
        now = now or utcnow()
        async with self.catalog.store.using(conn) as c:
            if user.role is Role.FEDERATION:  # no jurisdiction: only the shared scope
                return Holdings(user=user, own=set(),
                                federation=await federation_scope(c, user.id, now))
            held = Holdings(user=user, own=await subtree_ids(c, user.unit_id))
            held.grants = await self.grants.active_for(c, user, now)
            held.emergencies = await self.emergencies.active_for(c, user, now)
        return held

    async def decide(self, user: User, camera: Camera, action: str) -> Decision:
        return (await self.holdings(user)).decide(camera, action)

    async def publish_decision(self, who: Principal, camera: Camera) -> Decision:
        """Whether ``who`` may publish ``camera``'s field video (see ``PUBLISHERS``)."""
        return await self._subtree_decision(who, camera, PUBLISHERS, "publish field video",
                                            "field video")

    async def talk_decision(self, who: Principal, camera: Camera) -> Decision:
        """Whether ``who`` may talk back to ``camera``'s field device (``TALKERS``)."""
        return await self._subtree_decision(who, camera, TALKERS,
                                            "talk back to field devices", "talk-back")

    async def _subtree_decision(self, who: Principal, camera: Camera, roles: set[Role],
                                what: str, purpose: str) -> Decision:
        if who.role not in roles:
            return Decision(False, "none", f"the {who.role.value} role cannot {what}")
        if camera.unit_id not in await self.jurisdiction(who):
            return Decision(False, "none", f"camera {camera.id} belongs to unit "
                            f"{camera.unit_code}, outside your jurisdiction "
                            f"({who.user.unit_code} and below)")
        return Decision(True, "own", purpose=purpose)

    async def check_manage_unit(self, who: Principal, unit_code: str | None, *,
                                creating: bool = False, missing_ok: bool = False) -> None:
        """Refuse unless ``who`` manages ``unit_code`` (a unit of their subtree)."""
        if who.role not in MANAGERS:
            raise AccessDenied(f"the {who.role.value} role cannot change the catalogue")
        if unit_code is None:
            if creating and who.role is Role.ADMINISTRATOR and not await self._has_units():
                return
            raise AccessDenied("only a unit below your own can be changed")
        try:
            unit = await self.catalog.get_unit(unit_code)
        except UnitNotFound:
            if missing_ok or creating:
                return  # the operation itself reports the missing unit
            raise
        if unit.id not in await self.jurisdiction(who):
            raise AccessDenied(f"unit {unit_code!r} is outside your jurisdiction "
                               f"({who.user.unit_code} and below)")
        if who.role is Role.TECHNICIAN and creating:
            raise AccessDenied("technicians manage cameras, not units")

    async def _has_units(self) -> bool:
        return bool(await self.catalog.list_units())

    async def listing_scope(self, who: Principal) -> frozenset[int] | None:
        if who.role is Role.FEDERATION:  # its catalogue is GET /api/v1/federation/catalogue
            return frozenset()
        if self.visibility == "subtree":
            held = await self.holdings(who.user)
            units = set(held.own)
            for _, scope in [*held.grants, *held.emergencies]:
                if scope.unit_ids is not None:
                    units |= scope.unit_ids
            return frozenset(units)
        return None

    async def export_scope(self, who: Principal) -> frozenset[int] | None:
        return await self.listing_scope(who)

    async def check_see(self, who: Principal, camera: Camera) -> None:
        if self.visibility != "subtree":
            return
        held = await self.holdings(who.user)
        if camera.unit_id not in held.own and not any(
                held.decide(camera, a).allowed for a in ("live", "snapshot", "ptz")):
            raise AccessDenied("this camera is outside your jurisdiction",
                               **how_to_request(camera, "live"))

    async def rights_for(self, who: Principal | User, cameras: Sequence[Camera]
                         ) -> list[list[str]]:
        user = who.user if isinstance(who, Principal) else who
        held = await self.holdings(user)
        return [held.rights(camera) for camera in cameras]

    async def overseen(self, who: Principal, uses: Sequence[tuple[int, int | None]]
                       ) -> list[bool]:
        """For each live use (camera id, viewer's user id): whether ``who`` oversees it,
        i.e. is an administrator or auditor whose subtree holds the camera's unit or the
        viewer's unit (as they are now in the store)."""
        if who.role not in OVERSEERS or not uses:
            return [False] * len(uses)
        cams, users = schema.cameras, schema.users
        camera_ids = {camera for camera, _ in uses}
        user_ids = {user for _, user in uses if user is not None}
        async with self.catalog.store.connect() as conn:
            own = await subtree_ids(conn, who.user.unit_id)
            camera_units = {row.id: row.unit_id for row in await conn.execute(
                select(cams.c.id, cams.c.unit_id).where(cams.c.id.in_(camera_ids)))}
            user_units = {row.id: row.unit_id for row in await conn.execute(
                select(users.c.id, users.c.unit_id).where(users.c.id.in_(user_ids)))} \
                if user_ids else {}
        return [camera_units.get(camera) in own
                or (user is not None and user_units.get(user) in own)
                for camera, user in uses]

    async def overseen_places(self, who: Principal, camera_ids: Collection[int],
                              unit_codes: Collection[str]) -> tuple[set[int], set[str]]:
        """Of these cameras and unit codes, those in the subtree of ``who`` (an
        administrator or auditor; nothing for other roles)."""
        if who.role not in OVERSEERS or not (camera_ids or unit_codes):
            return set(), set()
        cams, units = schema.cameras, schema.units
        async with self.catalog.store.connect() as conn:
            own = await subtree_ids(conn, who.user.unit_id)
            cameras = {row.id for row in await conn.execute(
                select(cams.c.id, cams.c.unit_id).where(cams.c.id.in_(set(camera_ids))))
                if row.unit_id in own} if camera_ids else set()
            codes = {row.code for row in await conn.execute(
                select(units.c.code, units.c.id).where(units.c.code.in_(set(unit_codes))))
                if row.id in own} if unit_codes else set()
        return cameras, codes

    async def record_admin(self, who: Principal | User, action: str, *,
                           camera_id: int | None = None,
                           detail: dict[str, Any] | None = None,
                           client_address: str | None = None) -> None:
        """Journal an administrative action (seed 002 art. 22: who manages is responsible)."""
        user = who.user if isinstance(who, Principal) else who
        log.info("[user %s] %s camera=%s %s", user.username, action, camera_id, detail or "")
        if self.journal is not None:
            await self.journal.record_admin(user, action, camera_id=camera_id, detail=detail,
                                            client_address=client_address)
