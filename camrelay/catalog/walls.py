"""The console's saved layouts and tours, and the wall screens (上墙) desks drive.

A saved view is a layout (a layout kind and a camera per tile) or a tour (a camera list
cycled through a layout every ``seconds``); it belongs to a user or to a unit.  A screen
is a named display of a unit signed in as a service account; it remembers what a desk
last sent to it (:class:`ScreenContent`) and who sent it.  Views hold camera ids only:
names come from the catalogue, which shows each caller only what it may list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from camrelay.errors import Conflict, NotFound
from camrelay.fields import utcnow
from camrelay.store import Store, schema

_sv = schema.saved_views
_ws = schema.wall_screens
_units = schema.units
_users = schema.users


@dataclass(frozen=True, slots=True)
class SavedView:
    id: int
    kind: str  # "layout" or "tour"
    name: str
    owner_user_id: int | None
    owner_unit_id: int | None
    layout: str
    cameras: tuple[int | None, ...]
    seconds: int | None
    created_by: int | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScreenContent:
    """What a screen shows: a layout or a tour, saved (``view``) or sent ad hoc."""

    kind: str
    layout: str
    cameras: tuple[int | None, ...]
    seconds: int | None = None
    name: str | None = None
    view: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "layout": self.layout, "cameras": list(self.cameras),
                "seconds": self.seconds, "name": self.name, "view": self.view}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScreenContent:
        return cls(kind=data["kind"], layout=data["layout"], cameras=tuple(data["cameras"]),
                   seconds=data.get("seconds"), name=data.get("name"), view=data.get("view"))


@dataclass(frozen=True, slots=True)
class Screen:
    id: int
    name: str
    unit_id: int
    unit_code: str
    account_id: int
    account: str
    content: ScreenContent | None
    changed_by: str | None
    changed_at: datetime | None
    created_at: datetime


def _view(m: RowMapping) -> SavedView:
    return SavedView(id=m["id"], kind=m["kind"], name=m["name"],
                     owner_user_id=m["owner_user_id"], owner_unit_id=m["owner_unit_id"],
                     layout=m["layout"], cameras=tuple(m["cameras"]), seconds=m["seconds"],
                     created_by=m["created_by"], updated_at=m["updated_at"])


class SavedViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def visible_to(self, user_id: int, unit_id: int) -> list[SavedView]:
        """The user's own views and those of the user's unit."""
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_sv).where(or_(
                _sv.c.owner_user_id == user_id, _sv.c.owner_unit_id == unit_id))
                .order_by(_sv.c.kind, _sv.c.name, _sv.c.id))).mappings().all()
        return [_view(r) for r in rows]

    async def get(self, view_id: int) -> SavedView:
        async with self.store.connect() as conn:
            row = (await conn.execute(select(_sv).where(_sv.c.id == view_id))).mappings().first()
        if row is None:
            raise NotFound(f"saved view {view_id} does not exist")
        return _view(row)

    async def _check_name(self, conn: Any, kind: str, name: str, user: int | None,
                          unit: int | None, other_than: int | None = None) -> None:
        owner = _sv.c.owner_user_id == user if user is not None else _sv.c.owner_unit_id == unit
        found = (await conn.execute(select(_sv.c.id).where(
            owner, _sv.c.kind == kind, _sv.c.name == name))).scalars().all()
        if any(i != other_than for i in found):
            raise Conflict(f"a saved {kind} of that owner is already named {name!r}")

    async def add(self, *, kind: str, name: str, owner_user_id: int | None,
                  owner_unit_id: int | None, layout: str, cameras: Sequence[int | None],
                  seconds: int | None, created_by: int) -> SavedView:
        async with self.store.begin() as conn:
            await self._check_name(conn, kind, name, owner_user_id, owner_unit_id)
            new_id = (await conn.execute(_sv.insert().values(
                kind=kind, name=name, owner_user_id=owner_user_id,
                owner_unit_id=owner_unit_id, layout=layout, cameras=list(cameras),
                seconds=seconds, created_by=created_by, updated_at=utcnow(),
            ).returning(_sv.c.id))).scalar_one()
        return await self.get(int(new_id))

    async def update(self, view: SavedView, *, name: str, layout: str,
                     cameras: Sequence[int | None], seconds: int | None) -> SavedView:
        async with self.store.begin() as conn:
            await self._check_name(conn, view.kind, name, view.owner_user_id,
                                   view.owner_unit_id, other_than=view.id)
            await conn.execute(_sv.update().where(_sv.c.id == view.id).values(
                name=name, layout=layout, cameras=list(cameras), seconds=seconds,
                updated_at=utcnow()))
        return await self.get(view.id)

    async def remove(self, view_id: int) -> None:
        async with self.store.begin() as conn:
            await conn.execute(_sv.delete().where(_sv.c.id == view_id))


_changer = _users.alias("changer")
_account = _users.alias("account")
_SCREEN = (select(_ws, _units.c.code.label("unit_code"),
                  _account.c.username.label("account"),
                  _changer.c.username.label("changer"))
           .join(_units, _units.c.id == _ws.c.unit_id)
           .join(_account, _account.c.id == _ws.c.account_id)
           .outerjoin(_changer, _changer.c.id == _ws.c.changed_by))


def _screen(m: RowMapping) -> Screen:
    content = m["content"]
    return Screen(id=m["id"], name=m["name"], unit_id=m["unit_id"], unit_code=m["unit_code"],
                  account_id=m["account_id"], account=m["account"],
                  content=ScreenContent.from_json(content) if content else None,
                  changed_by=m["changer"], changed_at=m["changed_at"],
                  created_at=m["created_at"])


class Screens:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(self) -> list[Screen]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(_SCREEN.order_by(_ws.c.name))).mappings().all()
        return [_screen(r) for r in rows]

    async def get(self, screen_id: int) -> Screen:
        async with self.store.connect() as conn:
            row = (await conn.execute(_SCREEN.where(_ws.c.id == screen_id))).mappings().first()
        if row is None:
            raise NotFound(f"screen {screen_id} does not exist")
        return _screen(row)

    async def add(self, name: str, *, unit_id: int, account_id: int) -> Screen:
        try:
            async with self.store.begin() as conn:
                new_id = (await conn.execute(_ws.insert().values(
                    name=name, unit_id=unit_id, account_id=account_id,
                    created_at=utcnow()).returning(_ws.c.id))).scalar_one()
        except IntegrityError:
            raise Conflict(f"a screen named {name!r} already exists") from None
        return await self.get(int(new_id))

    async def show(self, screen_id: int, content: ScreenContent, changed_by: int) -> Screen:
        async with self.store.begin() as conn:
            await conn.execute(_ws.update().where(_ws.c.id == screen_id).values(
                content=content.as_json(), changed_by=changed_by, changed_at=utcnow()))
        return await self.get(screen_id)

    async def remove(self, screen_id: int) -> None:
        async with self.store.begin() as conn:
            await conn.execute(_ws.delete().where(_ws.c.id == screen_id))


# tiles per layout kind, as the console draws them (console/layouts.js)
LAYOUT_TILES = {"1": 1, "2x2": 4, "3x3": 9, "4x4": 16, "1+5": 6, "1+7": 8}
