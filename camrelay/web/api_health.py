"""Device health over the API, and the health scheduler's place in the app.

``GET /api/v1/health``: the cameras of a unit's subtree (the caller's own unit by
default; another only inside the caller's jurisdiction) with status, reason, findings
and since when; ``?problems=true`` keeps those not online.  ``GET
/api/v1/cameras/{id}/health``: a camera's status intervals of the last week, its
availability per day and over the week, its latest ONVIF device status and its ONVIF
event subscription's state (kept in the memory of the process that checks it: the route
goes to the camera's worker).  Status changes go to the live channel as
``camera.status``.  In a worker process each worker checks only the cameras it owns.
The ONVIF event subscriptions (:mod:`camrelay.health.onvif_events`) run with the app
when ``health.onvif_events`` and ``alarms.enabled`` are on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from camrelay.catalog.service import CameraFilter
from camrelay.errors import AccessDenied, ValidationError
from camrelay.fields import utcnow
from camrelay.health.history import HealthHistory, Interval, availability, per_day
from camrelay.tasks import stop_task
from camrelay.web.context import principal
from camrelay.web.keys import (
    CATALOG_KEY,
    MONITOR_KEY,
    ONVIF_EVENTS_KEY,
    POLICY_KEY,
    SETTINGS_KEY,
    STORE_KEY,
)
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import camera_id_of

log = logging.getLogger(__name__)

api = Api()
MAX_LISTED = 10_000

FINDING = {"type": "object", "properties": {
    "kind": {"type": "string"}, "value": {"type": "number"}, "threshold": {"type": "number"}}}
CAMERA_HEALTH = api.schema("CameraHealth", {
    "type": "object", "required": ["camera_id", "name", "unit", "status"],
    "properties": {
        "camera_id": {"type": "integer"}, "name": {"type": "string"},
        "unit": {"type": "string"}, "maintenance_unit": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["online", "offline", "fault", "unknown"]},
        "reason": {"type": ["string", "null"]},
        "findings": {"type": "array", "items": FINDING},
        "since": {"type": ["string", "null"], "format": "date-time"},
        "seconds": {"type": ["number", "null"], "description": "how long in this status"},
        "last_seen": {"type": ["string", "null"], "format": "date-time"},
    },
})
HISTORY = api.schema("CameraHealthHistory", {
    "type": "object", "required": ["camera_id", "intervals", "days", "week"],
    "properties": {
        "camera_id": {"type": "integer"},
        "intervals": {"type": "array", "items": {"type": "object", "properties": {
            "status": {"type": "string"}, "reason": {"type": ["string", "null"]},
            "findings": {"type": "array", "items": FINDING},
            "from": {"type": "string", "format": "date-time"},
            "until": {"type": ["string", "null"], "format": "date-time"}}}},
        "days": {"type": "array", "items": {"type": "object", "properties": {
            "date": {"type": "string", "format": "date"},
            "availability": {"type": ["number", "null"]}}}},
        "week": {"type": ["number", "null"], "description": "share of the last 7 days online"},
        "device": {"type": ["object", "null"],
                   "description": "the latest ONVIF device status (null: not asked since "
                                  "the server started, or no ONVIF address)",
                   "properties": {
                       "checked_at": {"type": "string", "format": "date-time"},
                       "answered": {"type": "boolean"},
                       "reason": {"type": ["string", "null"]},
                       "detail": {"type": ["string", "null"]},
                       "clock_drift_seconds": {"type": ["number", "null"],
                                               "description": "device clock minus ours"},
                       "manufacturer": {"type": ["string", "null"]},
                       "model": {"type": ["string", "null"]},
                       "firmware": {"type": ["string", "null"]}}},
        "events": {"type": ["object", "null"],
                   "description": "the camera's ONVIF event subscription (PullPoint) as the "
                                  "process that follows it holds it (null: events off, no "
                                  "ONVIF address, or not followed by this server)",
                   "properties": {
                       "state": {"type": "string",
                                 "enum": ["subscribing", "subscribed", "retrying"]},
                       "since": {"type": "string", "format": "date-time"},
                       "subscriptions": {"type": "integer",
                                         "description": "subscriptions made"},
                       "faults": {"type": "integer"},
                       "reason": {"type": ["string", "null"],
                                  "description": "the last failure's reason"},
                       "detail": {"type": ["string", "null"]},
                       "events": {"type": "integer",
                                  "description": "notifications received"}}},
    },
})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@api.route("GET", "/api/v1/health", tag="health",
           summary="Cameras of a unit's subtree with their status and since when",
           params=[query("unit", {"type": "string", "minLength": 1, "maxLength": 64},
                         "a unit code (default: your own unit)"),
                   query("problems", {"type": "boolean"}, "only cameras not online")],
           ok={"type": "array", "items": CAMERA_HEALTH})
async def list_health(request: web.Request) -> web.Response:
    who = principal(request)
    catalog = request.app[CATALOG_KEY]
    code = request.query.get("unit") or who.user.unit_code
    unit = await catalog.get_unit(code)
    if unit.id not in await request.app[POLICY_KEY].jurisdiction(who):
        raise AccessDenied(f"unit {code!r} is outside your jurisdiction "
                           f"({who.user.unit_code} and below)")
    raw = request.query.get("problems", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError("problems must be true or false", field="problems")
    problems = raw in ("true", "1")
    cameras, _ = await catalog.list_cameras(CameraFilter(unit=code), limit=MAX_LISTED)
    if problems:
        cameras = [c for c in cameras if c.status.value != "online"]
    open_now = await HealthHistory(request.app[STORE_KEY]).down_since([c.id for c in cameras])
    now = utcnow()
    out: list[dict[str, Any]] = []
    for camera in cameras:
        interval: Interval | None = open_now.get(camera.id)
        out.append({
            "camera_id": camera.id, "name": camera.name, "unit": camera.unit_code,
            "maintenance_unit": camera.maintenance_unit_code, "status": camera.status.value,
            "reason": interval.reason if interval else None,
            "findings": interval.findings if interval else [],
            "since": _iso(interval.started_at) if interval else None,
            "seconds": round((now - interval.started_at).total_seconds(), 1)
            if interval else None,
            "last_seen": _iso(camera.last_seen_at),
        })
    out.sort(key=lambda c: (c["status"] == "online", -float(c["seconds"] or 0)))
    return web.json_response(out)


@api.route("GET", "/api/v1/cameras/{camera_id}/health", tag="health", owner="camera_id",
           summary="A camera's status history, availability per day and week, and its "
                   "latest ONVIF device status",
           params=[path_param("camera_id", {"type": "integer", "minimum": 1,
                                            "maximum": 2**31 - 1}, "camera id")],
           ok=HISTORY)
async def camera_health(request: web.Request) -> web.Response:
    camera = await request.app[CATALOG_KEY].get_camera(camera_id_of(request))
    who = principal(request)
    if camera.unit_id not in await request.app[POLICY_KEY].jurisdiction(who):
        await request.app[POLICY_KEY].check_see(who, camera)
    now = utcnow()
    week_ago = now - timedelta(days=7)
    intervals = await HealthHistory(request.app[STORE_KEY]).intervals(camera.id, week_ago)
    reading = request.app[MONITOR_KEY].devices.get(camera.id)
    supervisor = request.app.get(ONVIF_EVENTS_KEY)
    follow = supervisor.states.get(camera.id) if supervisor is not None else None
    return web.json_response({
        "camera_id": camera.id,
        "intervals": [{"status": i.status, "reason": i.reason, "findings": i.findings,
                       "from": _iso(i.started_at), "until": _iso(i.ended_at)}
                      for i in intervals],
        "days": [{"date": day.isoformat(), "availability": share}
                 for day, share in per_day(intervals, 7, now)],
        "week": availability(intervals, week_ago, now),
        "device": reading.as_dict() if reading is not None else None,
        "events": None if follow is None else {
            "state": follow.state, "since": _iso(follow.since),
            "subscriptions": follow.subscriptions, "faults": follow.faults,
            "reason": follow.reason, "detail": follow.detail, "events": follow.events},
    })


def setup_health(app: web.Application) -> None:
    """Run the health scheduler (``MONITOR_KEY``; after the hub) with the app; add the
    routes."""
    monitor = app[MONITOR_KEY]
    enabled = app[SETTINGS_KEY].health.enabled

    async def monitor_ctx(app: web.Application) -> AsyncIterator[None]:
        task = None
        if enabled:
            task = asyncio.create_task(monitor.run(), name="health scheduler")
        yield
        await stop_task(task)
        await monitor.close()  # the probe process (drills use it with the scheduler off)

    app.cleanup_ctx.append(monitor_ctx)
    supervisor = app.get(ONVIF_EVENTS_KEY)

    async def onvif_events_ctx(app: web.Application) -> AsyncIterator[None]:
        task = None
        if supervisor is not None:
            task = asyncio.create_task(supervisor.run(), name="onvif events")
        yield
        await stop_task(task)  # before the webhooks stop: its alarms reach them

    app.cleanup_ctx.append(onvif_events_ctx)
    api.install(app)
