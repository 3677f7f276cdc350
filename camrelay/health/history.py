"""Status of each camera in the store: the catalogue's columns and the history intervals.

A camera's history is a run of intervals (status, reason, findings, from, until); the
open one has no end.  A check that finds the same status, reason and findings kind
extends nothing (the open interval stands); a change closes it and opens another, and
updates the catalogue's ``status``, ``status_reason`` and ``last_seen_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update

from camrelay.fields import utcnow
from camrelay.store import Store, schema

_cams = schema.cameras
_hist = schema.health_history
# a camera's catalogue status with its open history interval (if any)
_BEFORE = select(_cams.c.status.label("before"), _hist.c.id, _hist.c.status, _hist.c.reason,
                 _hist.c.findings).select_from(_cams.outerjoin(_hist, and_(
                     _hist.c.camera_id == _cams.c.id, _hist.c.ended_at.is_(None))))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one check concluded."""

    status: str  # "online", "offline", "fault"
    reason: str | None = None  # "unreachable", "auth", "timeout", "no_video", a finding kind
    findings: tuple[dict[str, Any], ...] = ()

    def same_as(self, status: str, reason: str | None, findings: list[dict[str, Any]]) -> bool:
        return (status == self.status and reason == self.reason
                and sorted(f["kind"] for f in findings) == sorted(f["kind"] for f in self.findings))


@dataclass(frozen=True, slots=True)
class Interval:
    status: str
    reason: str | None
    findings: list[dict[str, Any]]
    started_at: datetime
    ended_at: datetime | None


class HealthHistory:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, camera_id: int, verdict: Verdict,
                     now: datetime | None = None) -> tuple[str | None, bool]:
        """Store ``verdict``; returns (the catalogue status before, whether it changed)."""
        now = now or utcnow()
        async with self.store.begin() as conn:
            # the catalogue's status and the open interval, in one query
            row = (await conn.execute(_BEFORE.where(_cams.c.id == camera_id))).first()
            if row is None:
                return None, False  # deleted meanwhile
            before: str = row.before
            values: dict[str, Any] = {"status": verdict.status, "status_reason": verdict.reason}
            if verdict.status != "offline":
                values["last_seen_at"] = now  # it answered with video
            await conn.execute(update(_cams).where(_cams.c.id == camera_id).values(**values))
            if row.id is not None and verdict.same_as(row.status, row.reason,
                                                      list(row.findings or [])):
                return before, False
            if row.id is not None:
                await conn.execute(update(_hist).where(_hist.c.id == row.id)
                                   .values(ended_at=now))
            await conn.execute(_hist.insert().values(
                camera_id=camera_id, status=verdict.status, reason=verdict.reason,
                findings=list(verdict.findings), started_at=now, ended_at=None))
        return before, before != verdict.status

    async def intervals(self, camera_id: int, since: datetime) -> list[Interval]:
        return (await self.intervals_of([camera_id], since)).get(camera_id, [])

    async def intervals_of(self, camera_ids: list[int], since: datetime
                           ) -> dict[int, list[Interval]]:
        """The intervals of each camera given that end after ``since`` (or are open)."""
        out: dict[int, list[Interval]] = {}
        async with self.store.connect() as conn:
            for start in range(0, len(camera_ids), 500):  # bounded IN lists
                rows = (await conn.execute(select(_hist).where(and_(
                    _hist.c.camera_id.in_(camera_ids[start:start + 500]),
                    (_hist.c.ended_at.is_(None)) | (_hist.c.ended_at > since)))
                    .order_by(_hist.c.started_at, _hist.c.id))).all()
                for r in rows:
                    out.setdefault(r.camera_id, []).append(Interval(
                        r.status, r.reason, list(r.findings or []), r.started_at, r.ended_at))
        return out

    async def down_since(self, camera_ids: list[int]) -> dict[int, Interval]:
        """The open interval of each camera given (only those that have one)."""
        if not camera_ids:
            return {}
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_hist).where(and_(
                _hist.c.camera_id.in_(camera_ids), _hist.c.ended_at.is_(None))))).all()
        return {r.camera_id: Interval(r.status, r.reason, list(r.findings or []),
                                      r.started_at, None) for r in rows}

    async def prune(self, keep_days: int, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - timedelta(days=keep_days)
        async with self.store.begin() as conn:
            result = await conn.execute(delete(_hist).where(and_(
                _hist.c.ended_at.is_not(None), _hist.c.ended_at < cutoff)))
        return int(result.rowcount or 0)


def availability(intervals: list[Interval], start: datetime, end: datetime
                 ) -> float | None:
    """Share of [start, end) known to be online (None: nothing known then)."""
    known, online = seconds_known_online(intervals, start, end)
    return None if known == 0 else round(online / known, 4)


def seconds_known_online(intervals: list[Interval], start: datetime, end: datetime
                         ) -> tuple[float, float]:
    """Seconds of [start, end) with a known status, and of those online."""
    known = online = 0.0
    for one in intervals:
        lo = max(one.started_at, start)
        hi = min(one.ended_at or end, end)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        known += seconds
        if one.status == "online":
            online += seconds
    return known, online


def per_day(intervals: list[Interval], days: int, now: datetime) -> list[tuple[date, float | None]]:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days - 1, -1, -1):
        start = midnight - timedelta(days=back)
        out.append((start.date(), availability(intervals, start,
                                               min(now, start + timedelta(days=1)))))
    return out
