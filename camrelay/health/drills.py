"""Drills (演练): every enabled camera of a unit's subtree checked now, and the report.

A drill checks each camera through the health scheduler's own check (a watched camera
judged from the hub, another opened until its first keyframe, within the same
concurrency limit) and records each verdict in the history as a scheduled check would.
Its report, kept in ``drills`` (``health.drill_keep_days``), has per unit the cameras,
how many are online and faulty (with the reasons), the time to a judged first keyframe
(median and worst) and the availability over the last week from the history; and the
list of the broken cameras with their reasons.  A camera the check cannot judge (no
stream address) is counted as unchecked, not broken.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update

from camrelay.catalog.models import Camera, Unit
from camrelay.catalog.service import CameraFilter, Catalog
from camrelay.errors import NotFound
from camrelay.fields import utcnow
from camrelay.health.history import HealthHistory, Interval, Verdict, seconds_known_online
from camrelay.store import Store, schema

_drills = schema.drills

Checker = Callable[[int, str], Awaitable[tuple[Verdict | None, float]]]

MAX_CAMERAS = 100_000


@dataclass(frozen=True, slots=True)
class Result:
    """One camera's outcome in a drill."""

    camera: Camera
    verdict: Verdict | None  # None: not checked
    seconds: float

    @property
    def status(self) -> str:
        return "unchecked" if self.verdict is None else self.verdict.status

    @property
    def got_picture(self) -> bool:
        v = self.verdict
        return v is not None and (v.status == "online" or bool(v.findings))


@dataclass(slots=True)
class _Tally:
    total: int = 0
    online: int = 0
    faulty: int = 0
    unchecked: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_frames: list[float] = field(default_factory=list)
    known: float = 0.0
    up: float = 0.0

    def add(self, result: Result, intervals: list[Interval], start: datetime,
            end: datetime) -> None:
        self.total += 1
        if result.status == "online":
            self.online += 1
        elif result.status == "unchecked":
            self.unchecked += 1
        else:
            self.faulty += 1
            reason = result.verdict.reason if result.verdict else None
            self.reasons[reason or result.status] += 1
        if result.got_picture:
            self.first_frames.append(result.seconds)
        known, up = seconds_known_online(intervals, start, end)
        self.known += known
        self.up += up

    def json(self) -> dict[str, Any]:
        frames = self.first_frames
        return {
            "total": self.total, "online": self.online, "faulty": self.faulty,
            "unchecked": self.unchecked, "reasons": dict(sorted(self.reasons.items())),
            "first_frame": {"median": round(statistics.median(frames), 3) if frames else None,
                            "worst": round(max(frames), 3) if frames else None},
            "availability_week": round(self.up / self.known, 4) if self.known else None,
        }


def build_report(unit: Unit, names: dict[str, str], results: list[Result],
                 history: dict[int, list[Interval]], now: datetime) -> dict[str, Any]:
    """The report's body (pure): per unit, the whole subtree, the broken cameras."""
    week_ago = now - timedelta(days=7)
    per_unit: dict[str, _Tally] = {}
    whole = _Tally()
    for result in results:
        intervals = history.get(result.camera.id, [])
        per_unit.setdefault(result.camera.unit_code, _Tally()).add(result, intervals,
                                                                   week_ago, now)
        whole.add(result, intervals, week_ago, now)
    broken = [r for r in results if r.status not in ("online", "unchecked")]
    broken.sort(key=lambda r: (r.camera.unit_code, r.camera.name, r.camera.id))
    return {
        "unit": unit.code, "unit_name": unit.name,
        "totals": whole.json(),
        "units": [{"unit": code, "name": names.get(code, code), **tally.json()}
                  for code, tally in sorted(per_unit.items())],
        "broken": [{"camera_id": r.camera.id, "name": r.camera.name,
                    "unit": r.camera.unit_code, "status": r.status,
                    "reason": r.verdict.reason if r.verdict else None,
                    "findings": list(r.verdict.findings) if r.verdict else []}
                   for r in broken],
        "unchecked": [r.camera.id for r in results if r.status == "unchecked"],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def drill_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "unit": row.unit_code, "state": row.state,
            "started_by": row.started_by_name, "scheduled": row.started_by_name is None,
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at),
            "report": row.report}


class Drills:
    def __init__(self, store: Store, catalog: Catalog, check: Checker) -> None:
        self.store = store
        self.catalog = catalog
        self.check = check

    async def open(self, unit: Unit, by: str | None, user_id: int | None) -> int:
        """A new drill of ``unit``'s subtree, "running" (``by``: None for the schedule)."""
        async with self.store.begin() as conn:
            result = await conn.execute(_drills.insert().values(
                unit_id=unit.id, unit_code=unit.code, state="running", started_by=user_id,
                started_by_name=by, started_at=utcnow()))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def run(self, drill_id: int, unit: Unit) -> dict[str, Any]:
        """Check every enabled camera of the subtree; store and return the report."""
        cameras, _ = await self.catalog.list_cameras(
            CameraFilter(unit=unit.code, enabled=True), limit=MAX_CAMERAS)

        async def one(camera: Camera) -> Result:
            verdict, seconds = await self.check(camera.id, camera.category)
            return Result(camera, verdict, seconds)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(c), name=f"drill {drill_id} camera {c.id}")
                     for c in cameras]
        results = [t.result() for t in tasks]
        now = utcnow()
        history = await HealthHistory(self.store).intervals_of(
            [c.id for c in cameras], now - timedelta(days=7))
        names = {u.code: u.name for u in await self.catalog.list_units()}
        report = build_report(unit, names, results, history, now)
        await self._finish(drill_id, "done", report)
        return report

    async def fail(self, drill_id: int, why: str) -> None:
        await self._finish(drill_id, "failed", {"error": why})

    async def _finish(self, drill_id: int, state: str, report: dict[str, Any]) -> None:
        async with self.store.begin() as conn:
            await conn.execute(update(_drills).where(_drills.c.id == drill_id).values(
                state=state, finished_at=utcnow(), report=report))

    async def get(self, drill_id: int) -> tuple[int, dict[str, Any]]:
        """(the drill's unit id, the drill as JSON)."""
        async with self.store.connect() as conn:
            row = (await conn.execute(select(_drills).where(
                _drills.c.id == drill_id))).first()
        if row is None:
            raise NotFound(f"no drill {drill_id}")
        return row.unit_id, drill_json(row)

    async def listing(self, unit_ids: set[int], limit: int = 100) -> list[dict[str, Any]]:
        """The newest drills of these units, without their reports' lists."""
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(_drills).where(
                _drills.c.unit_id.in_(sorted(unit_ids)))
                .order_by(_drills.c.started_at.desc(), _drills.c.id.desc())
                .limit(limit))).all()
        out = []
        for row in rows:
            one = drill_json(row)
            report = one.pop("report") or {}
            one["totals"] = report.get("totals")
            out.append(one)
        return out

    async def interrupted(self) -> int:
        """Drills left running by a process that ended: failed."""
        async with self.store.begin() as conn:
            result = await conn.execute(update(_drills).where(
                _drills.c.state == "running").values(
                state="failed", finished_at=utcnow(),
                report={"error": "the server stopped during the drill"}))
        return int(result.rowcount or 0)

    async def prune(self, keep_days: int, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - timedelta(days=keep_days)
        async with self.store.begin() as conn:
            result = await conn.execute(delete(_drills).where(and_(
                _drills.c.state != "running", _drills.c.started_at < cutoff)))
        return int(result.rowcount or 0)
