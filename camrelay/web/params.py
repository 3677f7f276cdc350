"""Path parameters and checks that several route modules share."""

from __future__ import annotations

from aiohttp import web

from camrelay.access.accounts import Principal, Role, User
from camrelay.catalog.models import UNIT_CODE
from camrelay.catalog.service import subtree_ids
from camrelay.errors import AccessDenied, CameraNotFound
from camrelay.web.keys import STORE_KEY

code_schema = {"type": "string", "minLength": 1, "maxLength": 64,
               "pattern": UNIT_CODE.pattern}


def camera_id_of(request: web.Request) -> int:
    raw = request.match_info["camera_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise CameraNotFound(f"camera {raw[:40]!r} does not exist")
    return int(raw)


async def check_admin_of(request: web.Request, who: Principal, user: User) -> None:
    """Refuse unless ``who`` administers the unit of ``user`` (their subtree)."""
    if who.role is not Role.ADMINISTRATOR:
        raise AccessDenied("only administrators manage accounts and tokens")
    async with request.app[STORE_KEY].connect() as conn:
        if user.unit_id not in await subtree_ids(conn, who.user.unit_id):
            raise AccessDenied(f"user {user.username!r} belongs to unit {user.unit_code}, "
                               f"outside your subtree ({who.user.unit_code} and below)")
