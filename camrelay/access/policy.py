"""Who may do what with units and cameras: the default rule of jurisdiction.

A user may watch the cameras of their own unit and of every unit below it; technicians
and administrators manage the cameras and units of their subtree.  The catalogue itself
(without stream addresses) is visible to every signed-in user unless the deployment
restricts it to the own subtree.  Grants, emergency access and the access journal
extend this (``camrelay.access``); endpoints only ever ask this object.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from camrelay.access.accounts import Principal, Role
from camrelay.catalog.models import Camera
from camrelay.catalog.service import Catalog, subtree_ids
from camrelay.errors import AccessDenied, UnitNotFound

log = logging.getLogger(__name__)

MANAGERS = {Role.ADMINISTRATOR, Role.TECHNICIAN}
WATCHERS = {Role.ADMINISTRATOR, Role.OPERATOR, Role.VIEWER, Role.TECHNICIAN, Role.APPROVER}
PTZ_ROLES = {Role.ADMINISTRATOR, Role.OPERATOR, Role.TECHNICIAN}


class Policy:
    def __init__(self, catalog: Catalog, *, visibility: str = "platform") -> None:
        self.catalog = catalog
        self.visibility = visibility

    async def jurisdiction(self, who: Principal) -> set[int]:
        async with self.catalog.store.connect() as conn:
            return await subtree_ids(conn, who.user.unit_id)

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
        if self.visibility == "subtree":
            return frozenset(await self.jurisdiction(who))
        return None

    async def export_scope(self, who: Principal) -> frozenset[int] | None:
        return await self.listing_scope(who)

    async def check_see(self, who: Principal, camera: Camera) -> None:
        if self.visibility == "subtree" and camera.unit_id not in await self.jurisdiction(who):
            raise AccessDenied("this camera is outside your jurisdiction")

    async def rights_for(self, who: Principal, cameras: Sequence[Camera]) -> list[list[str]]:
        own = await self.jurisdiction(who)
        out: list[list[str]] = []
        for camera in cameras:
            rights: list[str] = []
            if camera.unit_id in own:
                if who.role in WATCHERS:
                    rights += ["live", "snapshot"]
                if who.role in PTZ_ROLES:
                    rights.append("ptz")
                if who.role in MANAGERS:
                    rights.append("manage")
            else:
                rights.append("request")
            out.append(rights)
        return out

    async def record_admin(self, who: Principal, action: str, *, camera_id: int | None = None,
                           detail: dict[str, Any] | None = None) -> None:
        """Administrative actions; journalled by the access log once it is wired in."""
        log.info("[user %s] %s camera=%s %s", who.user.username, action, camera_id, detail or "")
