"""Keep-warm windows over the API, and the scheduler that applies them to the hub.

A window (cameras, a unit subtree or a category; main or sub stream; from–until) keeps
its streams pulled with nobody watching, so the hall opens them at once during an
important period. Windows are stored; the scheduler re-reads them on every change and
every few seconds, so windows that start later, and windows of a node that restarted,
take effect by themselves.  In a worker process (``relay.workers`` >= 2) every worker runs
the scheduler and warms only the cameras it owns (``owns``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from camrelay.access.accounts import Role
from camrelay.catalog.keepwarm import KeepWarmWindow, KeepWarmWindows
from camrelay.catalog.service import CameraFilter
from camrelay.errors import AccessDenied, NotFound, ValidationError
from camrelay.fields import parse_datetime, utcnow
from camrelay.relay.media import Variant
from camrelay.tasks import stop_task
from camrelay.web.context import principal
from camrelay.web.keys import BODY_KEY, CATALOG_KEY, POLICY_KEY, SCHEDULER_KEY, STORE_KEY
from camrelay.web.openapi import Api, path_param

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=31)
MAX_CAMERAS = 1000

api = Api()



WINDOW = api.schema("KeepWarmWindow", {
    "type": "object", "required": ["id", "camera_id", "stream", "from", "until", "open"],
    "properties": {
        "id": {"type": "integer"}, "camera_id": {"type": "integer"},
        "stream": {"type": "string", "enum": ["main", "sub"]},
        "from": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
        "reason": {"type": ["string", "null"]}, "open": {"type": "boolean"},
        "created_by": {"type": ["integer", "null"]},
    },
})
WINDOW_NEW = api.schema("KeepWarmNew", {
    "type": "object", "additionalProperties": False, "required": ["until"],
    "properties": {
        "cameras": {"type": "array", "maxItems": MAX_CAMERAS,
                    "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
        "unit": {"type": "string", "minLength": 1, "maxLength": 64},
        "category": {"type": "string", "minLength": 1, "maxLength": 64},
        "stream": {"type": "string", "enum": ["main", "sub"]},
        "from": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time",
                  "description": "in the future, later than from and at most 31 days after "
                                 "it"},
        "reason": {"type": "string", "maxLength": 200},
    },
})


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def window_json(window: KeepWarmWindow, now: datetime) -> dict[str, Any]:
    return {"id": window.id, "camera_id": window.camera_id, "stream": window.variant,
            "from": _iso(window.starts_at), "until": _iso(window.ends_at),
            "reason": window.reason, "open": window.open_at(now),
            "created_by": window.created_by}


def _windows(request: web.Request) -> KeepWarmWindows:
    return KeepWarmWindows(request.app[STORE_KEY])


KEEPERS = (Role.ADMINISTRATOR, Role.OPERATOR, Role.TECHNICIAN)


@api.route("POST", "/api/v1/keep-warm", tag="relay",
           summary="Keep cameras live in a time window (important periods), watched or not",
           body=WINDOW_NEW, ok={"type": "array", "items": WINDOW}, ok_status=201)
async def add_windows(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    who = principal(request)
    if who.role not in KEEPERS:
        raise AccessDenied("only administrators, operators and technicians keep cameras warm")
    now = utcnow()
    starts = parse_datetime(body.get("from"), "from") or now
    until = parse_datetime(body["until"], "until")
    if until is None:
        raise ValidationError("until must be a time such as 2026-10-01T08:00:00+08:00",
                              field="until")
    if until <= max(starts, now):
        raise ValidationError("until must be in the future and after from", field="until")
    if until - starts > MAX_WINDOW:
        raise ValidationError("a keep-warm window lasts at most 31 days", field="until")
    if not any(body.get(k) for k in ("cameras", "unit", "category")):
        raise ValidationError("give cameras, a unit or a category", field="cameras")
    catalog = request.app[CATALOG_KEY]
    policy = request.app[POLICY_KEY]
    cameras = []
    for camera_id in sorted(set(body.get("cameras") or [])):
        cameras.append(await catalog.get_camera(camera_id))
    if body.get("unit") or body.get("category"):
        page, total = await catalog.list_cameras(
            CameraFilter(unit=body.get("unit"), category=body.get("category")),
            limit=MAX_CAMERAS)
        if total > MAX_CAMERAS:
            raise ValidationError(f"that selects {total} cameras; at most {MAX_CAMERAS}",
                                  field="unit" if body.get("unit") else "category")
        cameras.extend(c for c in page if c.id not in {x.id for x in cameras})
    if not cameras:
        raise ValidationError("no camera matches", field="cameras")
    for camera, rights in zip(cameras, await policy.rights_for(who, cameras)):
        if "live" not in rights:
            raise AccessDenied(f"you may not watch camera {camera.id}, so you cannot keep it "
                               "warm")
    variant: Variant = "sub" if body.get("stream") == "sub" else "main"
    windows = await _windows(request).add([c.id for c in cameras], variant=variant,
                                          starts_at=starts, ends_at=until,
                                          reason=body.get("reason"), created_by=who.user_id)
    await policy.record_admin(who, "relay.keep_warm", detail={
        "cameras": [c.id for c in cameras], "stream": variant, "from": _iso(starts),
        "until": _iso(until)})
    request.app[SCHEDULER_KEY].changed()
    return web.json_response([window_json(w, now) for w in windows], status=201)


@api.route("GET", "/api/v1/keep-warm", tag="relay",
           summary="Keep-warm windows that are open or still to come",
           ok={"type": "array", "items": WINDOW})
async def list_windows(request: web.Request) -> web.Response:
    principal(request)
    now = utcnow()
    return web.json_response([window_json(w, now)
                              for w in await _windows(request).current_and_future(now)])


@api.route("DELETE", "/api/v1/keep-warm/{window_id}", tag="relay",
           summary="End a keep-warm window now",
           params=[path_param("window_id", {"type": "integer", "minimum": 1,
                                            "maximum": 2**31 - 1})], ok=WINDOW)
async def remove_window(request: web.Request) -> web.Response:
    raw = request.match_info["window_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise NotFound(f"keep-warm window {raw[:20]!r} does not exist")
    who = principal(request)
    windows = _windows(request)
    existing = [w for w in await windows.current_and_future() if w.id == int(raw)]
    if not existing:
        raise NotFound(f"keep-warm window {raw} does not exist or has ended")
    if who.role is not Role.ADMINISTRATOR and existing[0].created_by != who.user_id:
        raise AccessDenied("only its creator or an administrator ends a keep-warm window")
    window = await windows.remove(int(raw))
    await request.app[POLICY_KEY].record_admin(who, "relay.keep_warm_end",
                                               camera_id=window.camera_id,
                                               detail={"window": window.id})
    request.app[SCHEDULER_KEY].changed()
    return web.json_response(window_json(window, utcnow()))


def setup_keep_warm(app: web.Application) -> None:
    """Run the keep-warm scheduler (``SCHEDULER_KEY``) with the app; add its routes."""
    scheduler = app[SCHEDULER_KEY]

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run(), name="keep-warm scheduler")
        yield
        await stop_task(task)

    app.cleanup_ctx.append(scheduler_ctx)
    api.install(app)
