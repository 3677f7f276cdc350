"""The lower side: federation credentials, the shared catalogue, pushes upward."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from camrelay.access.accounts import Accounts, Role, TokenKind, User, check_username
from camrelay.access.federated import FederationScope
from camrelay.catalog.models import Camera, Unit
from camrelay.catalog.service import CameraFilter, Catalog
from camrelay.errors import Conflict, NotFound, ValidationError
from camrelay.fields import utcnow
from camrelay.store import schema

log = logging.getLogger(__name__)

_creds = schema.federation_credentials
_pushes = schema.federation_pushes
_users = schema.users
_tokens = schema.tokens
ACCOUNT_PREFIX = "federation."
MAX_SHARED = 100_000  # cameras one catalogue answer may hold


@dataclass(frozen=True, slots=True)
class Credential:
    id: int
    name: str
    account: str
    token_id: int
    units: tuple[str, ...]
    cameras: tuple[int, ...]
    created_at: datetime
    revoked_at: datetime | None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def credential_json(c: Credential) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "account": c.account, "units": list(c.units),
            "cameras": list(c.cameras), "created_at": _iso(c.created_at),
            "revoked_at": _iso(c.revoked_at), "active": c.revoked_at is None}


class Credentials:
    def __init__(self, catalog: Catalog, accounts: Accounts) -> None:
        self.catalog = catalog
        self.accounts = accounts
        self.store = catalog.store

    async def issue(self, by: User, name: str, unit_codes: list[str], camera_ids: list[int]
                    ) -> tuple[str, Credential]:
        """A new credential: its token (shown once) and what the store keeps."""
        check_username(name)
        if not unit_codes and not camera_ids:
            raise ValidationError("share at least one unit or camera", field="units")
        async with self.store.begin() as conn:
            unit_ids = []
            for code in unit_codes:
                unit_ids.append((await self.catalog.unit_by_code(conn, code)).id)
            for camera_id in camera_ids:
                await self.catalog.camera_in(conn, camera_id)
            user = await self.accounts.add_user(ACCOUNT_PREFIX + name, unit_code=by.unit_code,
                                                role=Role.FEDERATION, password=None,
                                                display_name=f"upper platform {name}",
                                                service=True, conn=conn)
            secret, token = await self.accounts.create_token(
                user.id, kind=TokenKind.API, name=f"federation {name}", conn=conn)
            try:
                result = await conn.execute(_creds.insert().values(
                    name=name, user_id=user.id, token_id=token.id, unit_ids=unit_ids,
                    camera_ids=sorted(set(camera_ids)), created_by=by.id,
                    created_at=utcnow()).returning(_creds.c.id))
            except IntegrityError:
                raise Conflict(f"a federation credential named {name!r} exists",
                               field="name") from None
            credential_id = int(result.scalar_one())
        return secret, await self.get(credential_id)

    async def all(self) -> list[Credential]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_creds, _users.c.username).select_from(
                _creds.join(_users, _users.c.id == _creds.c.user_id)).order_by(_creds.c.id)
            )).mappings().all()
            codes = {u.id: u.code for u in await self.catalog.list_units(conn)}
        return [Credential(id=r["id"], name=r["name"], account=r["username"],
                           token_id=r["token_id"],
                           units=tuple(codes.get(u, "?") for u in r["unit_ids"]),
                           cameras=tuple(r["camera_ids"]), created_at=r["created_at"],
                           revoked_at=r["revoked_at"]) for r in rows]

    async def get(self, credential_id: int) -> Credential:
        for one in await self.all():
            if one.id == credential_id:
                return one
        raise NotFound(f"federation credential {credential_id} does not exist")

    async def revoke(self, credential_id: int) -> Credential:
        """Revoke the token and disable the account (their live views are then cut by
        the gate's sweep)."""
        credential = await self.get(credential_id)
        now = utcnow()
        async with self.store.begin() as conn:
            await conn.execute(_creds.update().where(_creds.c.id == credential_id).where(
                _creds.c.revoked_at.is_(None)).values(revoked_at=now))
            await conn.execute(_tokens.update().where(_tokens.c.id == credential.token_id)
                               .where(_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
            await conn.execute(_users.update().where(
                _users.c.username == credential.account).values(disabled=True, updated_at=now))
        return await self.get(credential_id)

    async def push(self, by: User, camera_ids: list[int], minutes: float, reason: str,
                   credential_ids: list[int] | None) -> datetime:
        until = utcnow() + timedelta(minutes=minutes)
        async with self.store.begin() as conn:
            await conn.execute(_pushes.insert().values(
                camera_ids=sorted(set(camera_ids)), credential_ids=credential_ids,
                reason=reason, until=until, created_by=by.id, created_at=utcnow()))
        return until

    async def shared(self, scope: FederationScope, platform: str) -> dict[str, Any]:
        """The shared part of the catalogue: units and cameras with their catalogue
        fields and status, never a stream address or a credential."""
        cameras, _ = await self.catalog.list_cameras(CameraFilter(), limit=MAX_SHARED)
        shared = [c for c in cameras if scope.covers(c)]
        units = {u.id: u for u in await self.catalog.list_units()}
        wanted = set(scope.unit_ids) | {c.unit_id for c in shared}
        codes = {units[i].code for i in wanted if i in units}
        return {"platform": platform,
                "units": [_unit(units[i], codes) for i in sorted(wanted) if i in units],
                "cameras": [_camera(c, scope) for c in shared]}


def _unit(unit: Unit, shared_codes: set[str]) -> dict[str, Any]:
    parent = unit.parent_code if unit.parent_code in shared_codes else None
    return {"code": unit.code, "name": unit.name, "level": unit.level.value, "parent": parent}


def _camera(camera: Camera, scope: FederationScope) -> dict[str, Any]:
    return {
        "id": camera.id, "external_id": camera.external_id, "name": camera.name,
        "unit": camera.unit_code, "category": camera.category, "location": camera.location,
        "latitude": camera.latitude, "longitude": camera.longitude,
        "camera_type": camera.camera_type, "vendor": camera.vendor, "model": camera.model,
        "contact_name": camera.contact_name, "contact_phone": camera.contact_phone,
        "status": camera.status.value, "last_seen_at": _iso(camera.last_seen_at),
        "tags": list(camera.tags), "enabled": camera.enabled,
        "platform": camera.platform,  # imported here from further down, or None
        "pushed_until": _iso(scope.pushed.get(camera.id)),
    }
