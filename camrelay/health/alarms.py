"""Alarms: a camera's abnormal condition, stored once and routed to the units responsible.

Each check's verdict (:class:`camrelay.health.history.Verdict`) names the conditions it
saw, one alarm kind each: ``offline`` (critical), ``fault.<reason>`` such as
``fault.auth`` (major), ``finding.<kind>`` such as ``finding.black`` (minor).  A
condition with an active alarm of its camera and kind is merged into it (``count`` and
``last_seen_at`` grow; nothing is pushed again); a new one raises an alarm, or reopens
the alarm of the same camera and kind cleared less than ``reopen_seconds`` ago (a
flapping camera keeps one row); an active alarm whose condition the verdict no longer
names is cleared.

An alarm is routed to the camera's owner unit and maintenance unit (the catalogue's
``maintenance_unit``), and with ``alarms.route_to_parents`` to their parent units too;
the routes are stored with it (``alarm_units``).  A user sees and acknowledges an alarm
when one of its units lies in the user's subtree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update

from camrelay.errors import Conflict, NotFound
from camrelay.fields import utcnow
from camrelay.health.history import Verdict
from camrelay.store import Store, schema
from camrelay.store.db import AsyncConnection

log = logging.getLogger(__name__)

_alarms = schema.alarms
_routes = schema.alarm_units
_cams = schema.cameras
_units = schema.units

SEVERITY = {"offline": "critical", "fault": "major", "finding": "minor", "onvif": "major"}


class AlarmNotFound(NotFound):
    title = "Alarm not found"


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    camera_id: int
    kind: str
    severity: str
    reason: str | None
    value: dict[str, Any]
    count: int
    raised_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None
    acked_by: str | None
    ack_comment: str | None
    acked_at: datetime | None
    unit_ids: frozenset[int]
    units: tuple[str, ...]  # the routed units' codes

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    active: bool | None = None  # True: not cleared; False: cleared; None: both
    unit_ids: frozenset[int] | None = None  # routed to one of these
    camera_id: int | None = None
    kind: str | None = None
    since: datetime | None = None  # raised or seen since


def conditions(verdict: Verdict) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """The alarm kinds a verdict names, each with its reason and measured value."""
    if verdict.status == "offline":
        return {"offline": (verdict.reason, {"reason": verdict.reason})}
    if verdict.status != "fault":
        return {}
    if verdict.findings:
        return {f"finding.{f['kind']}": (str(f["kind"]), dict(f)) for f in verdict.findings}
    return {f"fault.{verdict.reason or 'error'}": (verdict.reason, {"reason": verdict.reason})}


Listener = Callable[[str, Alarm], None]  # ("raised" | "cleared" | "acked", alarm)


class Alarms:
    def __init__(self, store: Store, *, route_to_parents: bool = False,
                 reopen_seconds: float = 600.0) -> None:
        self.store = store
        self.route_to_parents = route_to_parents
        self.reopen = timedelta(seconds=reopen_seconds)
        self.listeners: list[Listener] = []

    async def observe(self, camera_id: int, verdict: Verdict, now: datetime | None = None
                      ) -> list[tuple[str, Alarm]]:
        """Raise, merge or clear the camera's alarms after a check; returns the changes
        (merges are not changes) and hands each to the listeners."""
        return await self.update(camera_id, conditions(verdict), prefix=None, now=now)

    async def update(self, camera_id: int,
                     wanted: dict[str, tuple[str | None, dict[str, Any]]], *,
                     prefix: str | None, now: datetime | None = None
                     ) -> list[tuple[str, Alarm]]:
        """Make the camera's active alarms the ``wanted`` kinds.  ``prefix``: only
        kinds starting with it are cleared (None: every kind not from another source,
        i.e. not ``onvif.``)."""
        now = now or utcnow()
        changed: list[int] = []
        cleared: list[int] = []
        async with self.store.begin() as conn:
            open_rows = {r.kind: r for r in await conn.execute(select(
                _alarms.c.id, _alarms.c.kind).where(and_(
                    _alarms.c.camera_id == camera_id, _alarms.c.cleared_at.is_(None))))}
            for kind, (reason, value) in wanted.items():
                row = open_rows.get(kind)
                if row is not None:
                    await conn.execute(update(_alarms).where(_alarms.c.id == row.id).values(
                        count=_alarms.c.count + 1, last_seen_at=now, value=value,
                        reason=reason))
                    continue
                changed.append(await self._raise(conn, camera_id, kind, reason, value, now))
            for kind, row in open_rows.items():
                if kind in wanted:
                    continue
                mine = kind.startswith(prefix) if prefix else not kind.startswith("onvif.")
                if mine:
                    await conn.execute(update(_alarms).where(_alarms.c.id == row.id)
                                       .values(cleared_at=now))
                    cleared.append(row.id)
        if not changed and not cleared:
            return []
        loaded = {a.id: a for a in await self._load([*changed, *cleared])}
        out = [("cleared", loaded[i]) for i in cleared if i in loaded]
        out += [("raised", loaded[i]) for i in changed if i in loaded]
        for action, alarm in out:
            log.info("[camera %s] alarm %s %s (%s)", camera_id, alarm.kind, action,
                     alarm.reason or "-")
            self._tell(action, alarm)
        return out

    def _tell(self, action: str, alarm: Alarm) -> None:
        for listener in self.listeners:
            try:
                listener(action, alarm)
            except Exception:  # one listener's bug must not lose the others
                log.exception("alarm listener failed")

    async def _raise(self, conn: AsyncConnection, camera_id: int, kind: str,
                     reason: str | None, value: dict[str, Any], now: datetime) -> int:
        recent = (await conn.execute(select(_alarms.c.id).where(and_(
            _alarms.c.camera_id == camera_id, _alarms.c.kind == kind,
            _alarms.c.cleared_at >= now - self.reopen)).order_by(
                _alarms.c.cleared_at.desc()).limit(1))).scalar_one_or_none()
        if recent is not None:  # flapping: the same alarm again
            await conn.execute(update(_alarms).where(_alarms.c.id == recent).values(
                cleared_at=None, count=_alarms.c.count + 1, last_seen_at=now, value=value,
                reason=reason))
            return int(recent)
        key = (await conn.execute(_alarms.insert().values(
            camera_id=camera_id, kind=kind, severity=SEVERITY.get(kind.split(".")[0], "minor"),
            reason=reason, value=value, count=1, raised_at=now, last_seen_at=now)
        )).inserted_primary_key
        assert key is not None
        alarm_id = int(key[0])
        for unit_id in await self._route(conn, camera_id):
            await conn.execute(_routes.insert().values(alarm_id=alarm_id, unit_id=unit_id))
        return alarm_id

    async def _route(self, conn: AsyncConnection, camera_id: int) -> set[int]:
        row = (await conn.execute(select(_cams.c.unit_id, _cams.c.maintenance_unit_id).where(
            _cams.c.id == camera_id))).one()
        units = {u for u in (row.unit_id, row.maintenance_unit_id) if u is not None}
        if self.route_to_parents:
            parents = (await conn.execute(select(_units.c.parent_id).where(
                _units.c.id.in_(units)))).scalars()
            units |= {p for p in parents if p is not None}
        return units

    async def _load(self, ids: Iterable[int], conn: AsyncConnection | None = None
                    ) -> list[Alarm]:
        ids = list(ids)
        if not ids:
            return []
        async with self.store.using(conn) as c:
            rows = (await c.execute(select(_alarms).where(_alarms.c.id.in_(ids)))).all()
            routes: dict[int, list[tuple[int, str]]] = {}
            for r in await c.execute(select(_routes.c.alarm_id, _units.c.id, _units.c.code)
                                     .join(_units, _units.c.id == _routes.c.unit_id)
                                     .where(_routes.c.alarm_id.in_(ids))):
                routes.setdefault(r.alarm_id, []).append((r.id, r.code))
        order = {alarm_id: i for i, alarm_id in enumerate(ids)}
        return sorted((_alarm(r, routes.get(r.id, [])) for r in rows),
                      key=lambda a: order[a.id])

    async def list(self, visible: frozenset[int] | None, where: AlarmFilter,
                   limit: int = 1000) -> list[Alarm]:
        """Alarms routed to a unit of ``visible`` (None: every alarm), newest first."""
        query = select(_alarms.c.id)
        if visible is not None:
            query = query.where(_alarms.c.id.in_(select(_routes.c.alarm_id).where(
                _routes.c.unit_id.in_(visible))))
        if where.unit_ids is not None:
            query = query.where(_alarms.c.id.in_(select(_routes.c.alarm_id).where(
                _routes.c.unit_id.in_(where.unit_ids))))
        if where.active is True:
            query = query.where(_alarms.c.cleared_at.is_(None))
        elif where.active is False:
            query = query.where(_alarms.c.cleared_at.is_not(None))
        if where.camera_id is not None:
            query = query.where(_alarms.c.camera_id == where.camera_id)
        if where.kind is not None:
            query = query.where(_alarms.c.kind == where.kind)
        if where.since is not None:
            query = query.where(_alarms.c.last_seen_at >= where.since)
        query = query.order_by(_alarms.c.last_seen_at.desc(), _alarms.c.id.desc()).limit(limit)
        async with self.store.connect() as conn:
            ids = list((await conn.execute(query)).scalars())
            return await self._load(ids, conn)

    async def get(self, alarm_id: int, visible: frozenset[int] | None) -> Alarm:
        found = await self._load([alarm_id])
        if not found or (visible is not None and not found[0].unit_ids & visible):
            # an alarm outside the caller's units does not exist for them
            raise AlarmNotFound(f"alarm {alarm_id} does not exist")
        return found[0]

    async def ack(self, alarm_id: int, visible: frozenset[int] | None, *, user_id: int,
                  username: str, comment: str, now: datetime | None = None) -> Alarm:
        alarm = await self.get(alarm_id, visible)
        if alarm.acked_at is not None:
            raise Conflict(f"alarm {alarm_id} was acknowledged by {alarm.acked_by} at "
                           f"{alarm.acked_at.isoformat()}")
        async with self.store.begin() as conn:
            result = await conn.execute(update(_alarms).where(and_(
                _alarms.c.id == alarm_id, _alarms.c.acked_at.is_(None))).values(
                    acked_by=user_id, acked_by_name=username, ack_comment=comment,
                    acked_at=now or utcnow()))
            if result.rowcount == 0:
                raise Conflict(f"alarm {alarm_id} was acknowledged meanwhile")
        [acked] = await self._load([alarm_id])
        self._tell("acked", acked)
        return acked

    async def prune(self, keep_days: int, now: datetime | None = None) -> int:
        """Delete alarms cleared more than ``keep_days`` ago."""
        cutoff = (now or utcnow()) - timedelta(days=keep_days)
        async with self.store.begin() as conn:
            result = await conn.execute(delete(_alarms).where(and_(
                _alarms.c.cleared_at.is_not(None), _alarms.c.cleared_at < cutoff)))
        return int(result.rowcount or 0)


def _alarm(r: Any, routes: list[tuple[int, str]]) -> Alarm:
    return Alarm(id=r.id, camera_id=r.camera_id, kind=r.kind, severity=r.severity,
                 reason=r.reason, value=dict(r.value or {}), count=r.count,
                 raised_at=r.raised_at, last_seen_at=r.last_seen_at, cleared_at=r.cleared_at,
                 acked_by=r.acked_by_name, ack_comment=r.ack_comment, acked_at=r.acked_at,
                 unit_ids=frozenset(u for u, _ in routes),
                 units=tuple(sorted(c for _, c in routes)))


def alarm_json(alarm: Alarm) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {"id": alarm.id, "camera_id": alarm.camera_id, "kind": alarm.kind,
            "severity": alarm.severity, "reason": alarm.reason, "value": alarm.value,
            "count": alarm.count, "raised_at": iso(alarm.raised_at),
            "last_seen_at": iso(alarm.last_seen_at), "cleared_at": iso(alarm.cleared_at),
            "active": alarm.active, "units": list(alarm.units),
            "ack": None if alarm.acked_at is None else {
                "by": alarm.acked_by, "comment": alarm.ack_comment,
                "at": iso(alarm.acked_at)}}
