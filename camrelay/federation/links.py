"""The upper side: links to lower platforms (credential sealed, never shown) and the
units and cameras imported over them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from camrelay.access.accounts import TOKEN_PREFIX, User, check_username
from camrelay.catalog.service import Catalog
from camrelay.errors import Conflict, NotFound, ValidationError
from camrelay.fields import utcnow
from camrelay.store import Store, schema

_links = schema.federation_links
_units = schema.units
_cams = schema.cameras


@dataclass(frozen=True, slots=True)
class Link:
    id: int
    name: str
    url: str
    attach_unit: str
    attach_unit_id: int
    state: str  # connecting, connected, error
    stale: bool
    error: str | None
    remote_platform: str | None
    last_sync_at: datetime | None
    created_at: datetime


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def link_json(link: Link, counts: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    return {"id": link.id, "name": link.name, "url": link.url,
            "attach_under": link.attach_unit, "state": link.state, "stale": link.stale,
            "error": link.error, "remote_platform": link.remote_platform,
            "last_sync_at": _iso(link.last_sync_at), "created_at": _iso(link.created_at),
            "units": counts[0], "cameras": counts[1]}


def parse_base_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("url is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.query or parts.fragment or len(value) > 1000:
        raise ValidationError("url must be the lower camrelay's http:// or https:// base "
                              "address, without credentials, query or fragment", field="url")
    return value.rstrip("/")


class Links:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.store: Store = catalog.store

    _query = select(_links, _units.c.code.label("attach_code")).select_from(
        _links.join(_units, _units.c.id == _links.c.attach_unit_id))

    @staticmethod
    def _link(row: Any) -> Link:
        return Link(id=row["id"], name=row["name"], url=row["url"],
                    attach_unit=row["attach_code"], attach_unit_id=row["attach_unit_id"],
                    state=row["state"], stale=bool(row["stale"]), error=row["error"],
                    remote_platform=row["remote_platform"], last_sync_at=row["last_sync_at"],
                    created_at=row["created_at"])

    async def add(self, by: User, name: str, url: str, credential: str, attach_under: str
                  ) -> Link:
        check_username(name)
        url = parse_base_url(url)
        if not credential.startswith(TOKEN_PREFIX) or len(credential) > 200:
            raise ValidationError("credential must be the token the lower platform issued "
                                  "(camrelay federation issue)", field="credential")
        async with self.store.begin() as conn:
            unit = await self.catalog.unit_by_code(conn, attach_under)
            try:
                result = await conn.execute(_links.insert().values(
                    name=name, url=url, credential_enc=self.store.cipher.seal(credential),
                    attach_unit_id=unit.id, state="connecting", stale=False,
                    created_by=by.id, created_at=utcnow()).returning(_links.c.id))
            except IntegrityError:
                raise Conflict(f"a link named {name!r} exists", field="name") from None
            return await self._get_in(conn, int(result.scalar_one()))

    async def _get_in(self, conn: Any, link_id: int) -> Link:
        row = (await conn.execute(self._query.where(_links.c.id == link_id))).mappings().first()
        if row is None:
            raise NotFound(f"link {link_id} does not exist")
        return self._link(row)

    async def get(self, link_id: int) -> Link:
        async with self.store.connect() as conn:
            return await self._get_in(conn, link_id)

    async def by_name(self, name: str) -> Link:
        for link in await self.list():
            if link.name == name:
                return link
        raise NotFound(f"link {name!r} does not exist")

    async def list(self) -> list[Link]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(self._query.order_by(_links.c.id))).mappings().all()
        return [self._link(r) for r in rows]

    async def counts(self, link_id: int) -> tuple[int, int]:
        async with self.store.connect() as conn:
            units = len((await conn.execute(select(_units.c.id).where(
                _units.c.link_id == link_id))).all())
            cams = len((await conn.execute(select(_cams.c.id).where(
                _cams.c.link_id == link_id))).all())
        return units, cams

    async def endpoint(self, link_id: int) -> tuple[str, str]:
        """(base URL, credential) for a pull or a call down; never for a response."""
        async with self.store.connect() as conn:
            row = (await conn.execute(select(_links.c.url, _links.c.credential_enc).where(
                _links.c.id == link_id))).first()
        if row is None:
            raise NotFound(f"link {link_id} does not exist")
        return row.url, self.store.cipher.open(row.credential_enc)

    async def set_state(self, link_id: int, state: str, *, error: str | None = None,
                        stale: bool | None = None) -> None:
        values: dict[str, Any] = {"state": state, "error": error}
        if stale is not None:
            values["stale"] = stale
        async with self.store.begin() as conn:
            await conn.execute(update(_links).where(_links.c.id == link_id).values(**values))

    async def remove(self, link_id: int) -> Link:
        """The link and everything imported over it."""
        async with self.store.begin() as conn:
            link = await self._get_in(conn, link_id)
            await conn.execute(delete(_cams).where(_cams.c.link_id == link_id))
            await remove_units(conn, set((await conn.execute(select(_units.c.id).where(
                _units.c.link_id == link_id))).scalars()))
            await conn.execute(delete(_links).where(_links.c.id == link_id))
        self.catalog.changed()
        return link


async def remove_units(conn: Any, ids: set[int]) -> set[int]:
    """Remove imported units that hold nothing else any more, leaves first; returns the
    ones kept (a local camera, user or unit was put under them)."""
    remaining = set(ids)
    while remaining:
        busy = set((await conn.execute(select(_units.c.parent_id).where(
            _units.c.parent_id.in_(remaining)))).scalars())
        busy |= set((await conn.execute(select(_cams.c.unit_id).where(
            _cams.c.unit_id.in_(remaining)))).scalars())
        busy |= set((await conn.execute(select(_cams.c.maintenance_unit_id).where(
            _cams.c.maintenance_unit_id.in_(remaining)))).scalars())
        busy |= set((await conn.execute(select(schema.users.c.unit_id).where(
            schema.users.c.unit_id.in_(remaining)))).scalars())
        leaves = remaining - busy
        if not leaves:
            break
        await conn.execute(delete(_units).where(_units.c.id.in_(leaves)))
        remaining -= leaves
    return remaining
