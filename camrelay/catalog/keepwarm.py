"""Keep-warm windows: cameras kept live during important periods (seed 000 art. 9).

A window names a camera stream and a time span; while it is open the relay keeps that
stream pulled even with nobody watching, so the hall sees it at once. Windows are
stored, so a restart during an important period picks them up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from camrelay.errors import NotFound
from camrelay.fields import utcnow
from camrelay.store import Store, schema

_kw = schema.keep_warm


@dataclass(frozen=True, slots=True)
class KeepWarmWindow:
    id: int
    camera_id: int
    variant: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: int | None
    created_at: datetime

    def open_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def _window(row: object) -> KeepWarmWindow:
    m = row._mapping  # type: ignore[attr-defined]
    return KeepWarmWindow(id=m["id"], camera_id=m["camera_id"], variant=m["variant"],
                          starts_at=m["starts_at"], ends_at=m["ends_at"], reason=m["reason"],
                          created_by=m["created_by"], created_at=m["created_at"])


class KeepWarmWindows:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, camera_ids: list[int], *, variant: str, starts_at: datetime,
                  ends_at: datetime, reason: str | None, created_by: int | None
                  ) -> list[KeepWarmWindow]:
        """One window per camera, in one transaction."""
        now = utcnow()
        async with self.store.begin() as conn:
            ids = []
            for camera_id in camera_ids:
                result = await conn.execute(_kw.insert().values(
                    camera_id=camera_id, variant=variant, starts_at=starts_at,
                    ends_at=ends_at, reason=reason, created_by=created_by, created_at=now,
                ).returning(_kw.c.id))
                ids.append(int(result.scalar_one()))
            rows = (await conn.execute(select(_kw).where(_kw.c.id.in_(ids))
                                       .order_by(_kw.c.id))).all()
        return [_window(r) for r in rows]

    async def current_and_future(self, now: datetime | None = None) -> list[KeepWarmWindow]:
        now = now or utcnow()
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_kw).where(_kw.c.ends_at > now)
                                       .order_by(_kw.c.starts_at, _kw.c.id))).all()
        return [_window(r) for r in rows]

    async def remove(self, window_id: int) -> KeepWarmWindow:
        async with self.store.begin() as conn:
            row = (await conn.execute(select(_kw).where(_kw.c.id == window_id))).first()
            if row is None:
                raise NotFound(f"keep-warm window {window_id} does not exist")
            await conn.execute(_kw.delete().where(_kw.c.id == window_id))
        return _window(row)
