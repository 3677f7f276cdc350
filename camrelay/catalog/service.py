"""The catalogue's operations on units and cameras, each one transaction.

Callers pass validated fields (``parse_unit``, ``parse_camera``); this module
resolves unit codes, enforces the tree's integrity and keeps credentials sealed.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import Camera, DeviceStatus, Unit, UnitLevel
from camrelay.errors import CameraNotFound, Conflict, UnitNotFound, ValidationError
from camrelay.fields import utcnow
from camrelay.store import Store, schema
from camrelay.store.db import AsyncConnection

P = ParamSpec("P")
T = TypeVar("T")

_units = schema.units
_cams = schema.cameras


@dataclass(frozen=True, slots=True)
class CameraFilter:
    unit: str | None = None  # a unit code: that unit and its whole subtree
    unit_ids: frozenset[int] | None = None  # restrict to these units (visibility)
    category: str | None = None
    status: str | None = None
    text: str | None = None
    enabled: bool | None = None
    external_id: str | None = None


@dataclass(slots=True)
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _unit(row: RowMapping, parent_code: str | None) -> Unit:
    return Unit(
        id=row["id"], code=row["code"], name=row["name"], level=UnitLevel(row["level"]),
        parent_id=row["parent_id"], parent_code=parent_code,
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


async def subtree_ids(conn: AsyncConnection, unit_id: int) -> set[int]:
    """The unit and every unit below it (a recursive query on both backends)."""
    tree = select(_units.c.id).where(_units.c.id == unit_id).cte("tree", recursive=True)
    tree = tree.union_all(select(_units.c.id).where(_units.c.parent_id == tree.c.id))
    return set((await conn.execute(select(tree.c.id))).scalars())


async def ancestor_ids(conn: AsyncConnection, unit_id: int) -> list[int]:
    """The unit and its ancestors, nearest first."""
    chain: list[int] = []
    current: int | None = unit_id
    while current is not None and current not in chain:
        chain.append(current)
        current = (
            await conn.execute(select(_units.c.parent_id).where(_units.c.id == current))
        ).scalar_one_or_none()
    return chain


def _announces(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """After the change returned, tell the catalogue's ``change_watchers``."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        result = await method(*args, **kwargs)
        catalog = args[0]
        assert isinstance(catalog, Catalog)
        catalog.changed()
        return result

    return wrapper


@functools.cache
def _camera_select() -> Any:
    """Cameras with their units' codes and platform: built once (a select is immutable;
    building it anew per lookup cost each health check's resolve about a millisecond)."""
    owner = _units.alias("owner")
    maint = _units.alias("maint")
    link = schema.federation_links
    return (
        select(_cams, owner.c.code.label("unit_code"), maint.c.code.label("maint_code"),
               link.c.name.label("platform"), link.c.stale.label("link_stale"))
        .select_from(
            _cams.join(owner, owner.c.id == _cams.c.unit_id).outerjoin(
                maint, maint.c.id == _cams.c.maintenance_unit_id).outerjoin(
                link, link.c.id == _cams.c.link_id)
        )
    )


class Catalog:
    def __init__(self, store: Store, categories: Sequence[str], camera_types: Sequence[str]) -> None:
        self.store = store
        self.categories = list(categories)
        self.camera_types = list(camera_types)
        # called as watcher(camera_id, status) after a camera's status changed (the live
        # channel publishes it); must not block
        self.status_watchers: list[Callable[[int, DeviceStatus], None]] = []
        # called after units or cameras were added, changed or removed (the federation
        # channel tells upper platforms to sync again); must not block
        self.change_watchers: list[Callable[[], None]] = []

    def _status_changed(self, camera_id: int, status: DeviceStatus) -> None:
        for watcher in self.status_watchers:
            watcher(camera_id, status)
        self.changed()

    def changed(self) -> None:
        for watcher in self.change_watchers:
            watcher()

    # ---- units -------------------------------------------------------------------------

    async def list_units(self, conn: AsyncConnection | None = None) -> list[Unit]:
        parent = _units.alias("parent")
        query = (
            select(_units, parent.c.code.label("parent_code"))
            .select_from(_units.outerjoin(parent, parent.c.id == _units.c.parent_id))
            .order_by(_units.c.code)
        )
        async with self.store.connect() as c:
            rows = (await (conn or c).execute(query)).mappings().all()
        return [_unit(r, r["parent_code"]) for r in rows]

    async def unit_by_code(self, conn: AsyncConnection, code: str) -> Unit:
        parent = _units.alias("parent")
        row = (
            await conn.execute(
                select(_units, parent.c.code.label("parent_code"))
                .select_from(_units.outerjoin(parent, parent.c.id == _units.c.parent_id))
                .where(_units.c.code == code)
            )
        ).mappings().first()
        if row is None:
            raise UnitNotFound(f"unit {code!r} does not exist")
        return _unit(row, row["parent_code"])

    async def get_unit(self, code: str) -> Unit:
        async with self.store.connect() as conn:
            return await self.unit_by_code(conn, code)

    async def _unit_id(self, conn: AsyncConnection, code: str, fieldname: str) -> int:
        unit_id = (
            await conn.execute(select(_units.c.id).where(_units.c.code == code))
        ).scalar_one_or_none()
        if unit_id is None:
            raise ValidationError(f"{fieldname}: unit {code!r} does not exist", field=fieldname)
        return int(unit_id)

    @_announces
    async def add_unit(self, fields: Mapping[str, Any], conn: AsyncConnection | None = None) -> Unit:
        async with self.store.using(conn, write=True) as c:
            parent_id = None
            if fields.get("parent"):
                parent_id = await self._unit_id(c, fields["parent"], "parent")
            now = utcnow()
            try:
                await c.execute(_units.insert().values(
                    code=fields["code"], name=fields["name"], level=fields["level"].value,
                    parent_id=parent_id, created_at=now, updated_at=now,
                ))
            except IntegrityError:
                raise Conflict(f"a unit with code {fields['code']!r} already exists",
                               field="code") from None
            return await self.unit_by_code(c, fields["code"])

    @_announces
    async def update_unit(self, code: str, fields: Mapping[str, Any]) -> Unit:
        async with self.store.begin() as conn:
            unit = await self.unit_by_code(conn, code)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if "name" in fields:
                values["name"] = fields["name"]
            if "level" in fields:
                values["level"] = fields["level"].value
            if "parent" in fields:
                if fields["parent"] is None:
                    values["parent_id"] = None
                else:
                    parent_id = await self._unit_id(conn, fields["parent"], "parent")
                    if parent_id in await subtree_ids(conn, unit.id):
                        raise ValidationError(
                            f"parent: {fields['parent']!r} is {code!r} or below it; a unit "
                            "cannot be its own ancestor", field="parent")
                    values["parent_id"] = parent_id
            if "code" in fields and fields["code"] != code:
                raise ValidationError("code cannot be changed; it identifies the unit",
                                      field="code")
            await conn.execute(_units.update().where(_units.c.id == unit.id).values(**values))
            return await self.unit_by_code(conn, code)

    @_announces
    async def remove_unit(self, code: str, *, cascade: bool = False) -> dict[str, int]:
        """Remove a unit; with children or cameras only when ``cascade`` (then all of it)."""
        async with self.store.begin() as conn:
            unit = await self.unit_by_code(conn, code)
            ids = await subtree_ids(conn, unit.id)
            n_cams = (await conn.execute(
                select(func.count()).select_from(_cams).where(
                    or_(_cams.c.unit_id.in_(ids), _cams.c.maintenance_unit_id.in_(ids)))
            )).scalar_one()
            n_children = len(ids) - 1
            n_users = (await conn.execute(
                select(func.count()).select_from(schema.users).where(
                    schema.users.c.unit_id.in_(ids))
            )).scalar_one()
            if (n_children or n_cams) and not cascade:
                raise Conflict(
                    f"unit {code!r} has {n_children} sub-unit(s) and {n_cams} camera(s); "
                    "remove them first or use cascade", children=n_children, cameras=n_cams)
            if n_users:
                raise Conflict(
                    f"unit {code!r} (or a unit below it) has {n_users} user account(s); move or "
                    "remove them first", users=n_users)
            await conn.execute(_cams.update().where(_cams.c.maintenance_unit_id.in_(ids))
                               .values(maintenance_unit_id=None))
            await conn.execute(_cams.delete().where(_cams.c.unit_id.in_(ids)))
            # delete leaves first: walk the subtree bottom-up
            remaining = set(ids)
            while remaining:
                leaves = set((await conn.execute(
                    select(_units.c.id).where(_units.c.id.in_(remaining)).where(
                        ~_units.c.id.in_(select(_units.c.parent_id).where(
                            _units.c.parent_id.in_(remaining))))
                )).scalars())
                await conn.execute(_units.delete().where(_units.c.id.in_(leaves)))
                remaining -= leaves
            return {"units": len(ids), "cameras": int(n_cams)}

    # ---- cameras -----------------------------------------------------------------------

    def _camera_query(self) -> Any:
        return _camera_select()

    @staticmethod
    def _camera(row: RowMapping) -> Camera:
        return Camera(
            id=row["id"], external_id=row["external_id"], name=row["name"],
            unit_id=row["unit_id"], unit_code=row["unit_code"],
            maintenance_unit_code=row["maint_code"], contact_name=row["contact_name"],
            contact_phone=row["contact_phone"], category=row["category"],
            location=row["location"], latitude=row["latitude"], longitude=row["longitude"],
            camera_type=row["camera_type"], vendor=row["vendor"], model=row["model"],
            status=DeviceStatus(row["status"]), last_seen_at=row["last_seen_at"],
            main_url=row["main_url"], sub_url=row["sub_url"], onvif_url=row["onvif_url"],
            transport=row["transport"], username=row["username"],
            has_password=row["password_enc"] is not None, tags=tuple(row["tags"] or ()),
            enabled=bool(row["enabled"]), valid_from=row["valid_from"],
            valid_until=row["valid_until"], created_at=row["created_at"],
            updated_at=row["updated_at"], transcode_width=row["transcode_width"],
            transcode_height=row["transcode_height"],
            transcode_bitrate=row["transcode_bitrate"], link_id=row["link_id"],
            platform=row["platform"], remote_id=row["remote_id"],
            stale=bool(row["link_stale"]), pushed_until=row["pushed_until"],
            backchannel=None if row["backchannel"] is None else bool(row["backchannel"]),
        )

    async def camera_in(self, conn: AsyncConnection, camera_id: int) -> Camera:
        row = (await conn.execute(self._camera_query().where(_cams.c.id == camera_id))
               ).mappings().first()
        if row is None:
            raise CameraNotFound(f"camera {camera_id} does not exist")
        return self._camera(row)

    async def get_camera(self, camera_id: int) -> Camera:
        async with self.store.connect() as conn:
            return await self.camera_in(conn, camera_id)

    async def camera_and_password(self, camera_id: int) -> tuple[Camera, str | None]:
        """The camera and its stream password, in one query (the relay's resolve and each
        health check use it); the password never goes into a response."""
        async with self.store.connect() as conn:
            row = (await conn.execute(_camera_select().where(_cams.c.id == camera_id))
                   ).mappings().first()
        if row is None:
            raise CameraNotFound(f"camera {camera_id} does not exist")
        sealed = row["password_enc"]
        return self._camera(row), None if sealed is None else self.store.cipher.open(sealed)

    async def list_cameras(self, flt: CameraFilter, *, limit: int = 100,
                           offset: int = 0) -> tuple[list[Camera], int]:
        async with self.store.connect() as conn:
            conditions: list[Any] = []
            if flt.unit is not None:
                unit = await self.unit_by_code(conn, flt.unit)
                conditions.append(_cams.c.unit_id.in_(await subtree_ids(conn, unit.id)))
            if flt.unit_ids is not None:
                conditions.append(_cams.c.unit_id.in_(flt.unit_ids))
            if flt.category is not None:
                conditions.append(_cams.c.category == flt.category)
            if flt.status is not None:
                conditions.append(_cams.c.status == flt.status)
            if flt.enabled is not None:
                conditions.append(_cams.c.enabled == flt.enabled)
            if flt.external_id is not None:
                conditions.append(_cams.c.external_id == flt.external_id)
            if flt.text:
                pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace(
                    "_", "\\_") + "%"
                conditions.append(or_(*(
                    col.ilike(pattern, escape="\\") for col in (
                        _cams.c.name, _cams.c.location, _cams.c.external_id, _cams.c.vendor,
                        _cams.c.model)
                )))
            where = and_(literal(True), *conditions)
            total = (await conn.execute(
                select(func.count()).select_from(_cams).where(where))).scalar_one()
            rows = (await conn.execute(
                self._camera_query().where(where).order_by(_cams.c.id).limit(limit).offset(offset)
            )).mappings().all()
            return [self._camera(r) for r in rows], int(total)

    async def _camera_values(self, conn: AsyncConnection, fields: Mapping[str, Any]
                             ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "unit":
                values["unit_id"] = await self._unit_id(conn, value, "unit")
            elif key == "maintenance_unit":
                values["maintenance_unit_id"] = (
                    None if value is None else await self._unit_id(conn, value,
                                                                   "maintenance_unit"))
            elif key == "password":
                values["password_enc"] = None if value is None else self.store.cipher.seal(value)
            elif key == "status":
                values["status"] = value.value
            else:
                values[key] = value
        return values

    @_announces
    async def add_camera(self, fields: Mapping[str, Any],
                         conn: AsyncConnection | None = None) -> Camera:
        async with self.store.using(conn, write=True) as c:
            values = await self._camera_values(c, fields)
            values.setdefault("external_id", f"cam-{uuid.uuid4().hex[:16]}")
            values.setdefault("tags", [])
            values.setdefault("enabled", True)
            values.setdefault("status", DeviceStatus.UNKNOWN.value)
            values.setdefault("camera_type", "fixed")
            values.setdefault("transport", "tcp")
            now = utcnow()
            values["created_at"] = values["updated_at"] = now
            try:
                result = await c.execute(_cams.insert().values(**values).returning(_cams.c.id))
            except IntegrityError:
                raise Conflict(
                    f"a camera with external_id {values['external_id']!r} already exists",
                    field="external_id") from None
            return await self.camera_in(c, int(result.scalar_one()))

    @_announces
    async def update_camera(self, camera_id: int, fields: Mapping[str, Any],
                            conn: AsyncConnection | None = None) -> Camera:
        async with self.store.using(conn, write=True) as c:
            current = await self.camera_in(c, camera_id)
            values = await self._camera_values(c, fields)
            vf = values.get("valid_from", current.valid_from)
            vu = values.get("valid_until", current.valid_until)
            if vf is not None and vu is not None and vu <= vf:
                raise ValidationError("valid_until must be after valid_from", field="valid_until")
            if values:
                values["updated_at"] = utcnow()
                if values.get("main_url", current.main_url) != current.main_url:
                    values["backchannel"] = None  # another camera, perhaps: ask it again
                try:
                    await c.execute(_cams.update().where(_cams.c.id == camera_id).values(**values))
                except IntegrityError:
                    raise Conflict("another camera already has that external_id",
                                   field="external_id") from None
            updated = await self.camera_in(c, camera_id)
        if updated.status is not current.status:
            self._status_changed(camera_id, updated.status)
        return updated

    @_announces
    async def remove_camera(self, camera_id: int) -> Camera:
        async with self.store.begin() as conn:
            camera = await self.camera_in(conn, camera_id)
            await conn.execute(_cams.delete().where(_cams.c.id == camera_id))
            return camera

    async def set_status(self, camera_id: int, status: DeviceStatus) -> None:
        async with self.store.begin() as conn:
            values: dict[str, Any] = {"status": status.value}
            if status is DeviceStatus.ONLINE:
                values["last_seen_at"] = utcnow()
            before = (await conn.execute(select(_cams.c.status).where(
                _cams.c.id == camera_id))).scalar_one_or_none()
            await conn.execute(_cams.update().where(_cams.c.id == camera_id).values(**values))
        if before is not None and before != status.value:
            self._status_changed(camera_id, status)

    async def note_backchannel(self, camera_id: int, present: bool) -> None:
        """Record whether the camera has an ONVIF audio back-channel (talk-back found it
        or not); watchers hear of a change."""
        async with self.store.begin() as conn:
            result = await conn.execute(_cams.update().where(_cams.c.id == camera_id).where(
                or_(_cams.c.backchannel.is_(None), _cams.c.backchannel != present)).values(
                backchannel=present))
        if result.rowcount:
            self.changed()

    async def stream_credentials(self, camera_id: int) -> tuple[str | None, str | None]:
        """(username, password) for the relay and ONVIF; never for a response."""
        async with self.store.connect() as conn:
            row = (await conn.execute(select(_cams.c.username, _cams.c.password_enc).where(
                _cams.c.id == camera_id))).first()
        if row is None:
            raise CameraNotFound(f"camera {camera_id} does not exist")
        password = None if row.password_enc is None else self.store.cipher.open(row.password_enc)
        return row.username, password

    # ---- import ------------------------------------------------------------------------

    @_announces
    async def import_cameras(self, rows: Sequence[tuple[int, Mapping[str, Any]]], *,
                             skip_invalid: bool = False) -> ImportReport:
        """Validate every row, then write all in one transaction (matched by external_id).

        With any invalid row nothing is written unless ``skip_invalid``.
        """
        report = ImportReport()
        parsed: list[tuple[int, dict[str, Any]]] = []
        seen: dict[str, int] = {}
        for count, (line, raw) in enumerate(rows, 1):
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a 20 000-row file must not hold up live views
            try:
                fields = parse_camera(raw, categories=self.categories,
                                      camera_types=self.camera_types)
                if "external_id" not in fields:
                    raise ValidationError("external_id is required for an import (re-imports "
                                          "match on it)", field="external_id")
                if fields["external_id"] in seen:
                    raise ValidationError(
                        f"external_id {fields['external_id']!r} repeats line "
                        f"{seen[fields['external_id']]}", field="external_id")
                seen[fields["external_id"]] = line
                parsed.append((line, fields))
            except ValidationError as err:
                report.errors.append({"line": line, "field": err.field, "error": err.detail})
        async with self.store.begin() as conn:
            # one transaction, and the units and the existing cameras read in a few
            # batched selects instead of several per row
            codes = {fields[key] for _, fields in parsed
                     for key in ("unit", "maintenance_unit") if fields.get(key)}
            unit_ids: dict[str, int] = {}
            for chunk in _chunks(sorted(codes)):
                unit_ids.update((str(code), int(uid)) for code, uid in (await conn.execute(
                    select(_units.c.code, _units.c.id).where(_units.c.code.in_(chunk)))).all())
            valid: list[tuple[int, dict[str, Any]]] = []
            for line, fields in parsed:
                missing = next((key for key in ("unit", "maintenance_unit")
                                if fields.get(key) and fields[key] not in unit_ids), None)
                if missing is None:
                    valid.append((line, fields))
                    continue
                report.errors.append({
                    "line": line, "field": missing,
                    "error": f"{missing}: unit {fields[missing]!r} does not exist"})
            if report.errors and not skip_invalid:
                report.errors.sort(key=lambda e: e["line"])
                return report
            existing: dict[str, RowMapping] = {}
            for chunk in _chunks([fields["external_id"] for _, fields in valid]):
                for found in (await conn.execute(self._camera_query().where(
                        _cams.c.external_id.in_(chunk)))).mappings():
                    existing[found["external_id"]] = found
            now = utcnow()
            inserts: list[list[dict[str, Any]]] = []  # runs of rows with the same columns
            for count, (_, fields) in enumerate(valid, 1):
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                row = existing.get(fields["external_id"])
                if row is None:
                    values = self._import_values(fields, unit_ids)
                    for key, default in (("tags", []), ("enabled", True),
                                         ("status", DeviceStatus.UNKNOWN.value),
                                         ("camera_type", "fixed"), ("transport", "tcp")):
                        values.setdefault(key, default)
                    values["created_at"] = values["updated_at"] = now
                    if inserts and inserts[-1][0].keys() == values.keys():
                        inserts[-1].append(values)
                    else:
                        inserts.append([values])
                    report.added += 1
                    continue
                current = self._camera(row)
                sealed = row["password_enc"]
                password = None if sealed is None else self.store.cipher.open(sealed)
                if not self._differs(current, password, fields):
                    report.unchanged += 1
                    continue
                values = self._import_values(fields, unit_ids)
                vf = values.get("valid_from", current.valid_from)
                vu = values.get("valid_until", current.valid_until)
                if vf is not None and vu is not None and vu <= vf:
                    raise ValidationError("valid_until must be after valid_from",
                                          field="valid_until")
                values["updated_at"] = now
                await conn.execute(_cams.update().where(_cams.c.id == current.id)
                                   .values(**values))
                report.updated += 1
            try:
                for run in inserts:  # in file order, one executemany per run
                    for chunk in _chunks(run):
                        await conn.execute(_cams.insert(), list(chunk))
            except IntegrityError:  # a concurrent writer took one of the external ids
                raise Conflict("a camera with one of these external_ids was added meanwhile",
                               field="external_id") from None
        report.errors.sort(key=lambda e: e["line"])
        return report

    def _import_values(self, fields: Mapping[str, Any], unit_ids: Mapping[str, int]
                       ) -> dict[str, Any]:
        """Column values of an imported row (its units already checked)."""
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "unit":
                values["unit_id"] = unit_ids[value]
            elif key == "maintenance_unit":
                values["maintenance_unit_id"] = None if value is None else unit_ids[value]
            elif key == "password":
                values["password_enc"] = None if value is None else self.store.cipher.seal(value)
            elif key == "status":
                values["status"] = value.value
            else:
                values[key] = value
        return values

    @staticmethod
    def _differs(camera: Camera, password: str | None, fields: Mapping[str, Any]) -> bool:
        for key, value in fields.items():
            if key == "unit":
                current: Any = camera.unit_code
            elif key == "maintenance_unit":
                current = camera.maintenance_unit_code
            elif key == "password":
                current = password
            elif key == "tags":
                current = list(camera.tags)
            else:
                current = getattr(camera, key)
            if current != value:
                return True
        return False


# rows validated or prepared between two yields to the event loop during an import
_YIELD_EVERY = 200


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Slices small enough for any database's limit on bound parameters."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
