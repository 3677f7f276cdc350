"""Drills and the tree's thumbnails over the API.

``POST /api/v1/drills`` starts a drill of a unit's subtree (administrators, operators
and technicians, within their jurisdiction; journalled as ``health.drill``); it runs in
the background (``?wait=true``: the answer waits for the report).  ``GET
/api/v1/drills`` lists the drills of the caller's jurisdiction, ``GET
/api/v1/drills/{id}`` gives one as JSON, ``GET /api/v1/drills/{id}.html`` (or
``?format=html``) as a self-contained page.  With ``health.drill_every_hours`` a drill of
each top unit's subtree runs on that period (in worker 0 only, with worker processes);
reports older than ``health.drill_keep_days`` are pruned.

``GET /api/v1/cameras/{id}/thumbnail``: the camera's latest checked keyframe as a small
JPEG (memory only), to a user who may watch the camera, journalled as a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from camrelay.access.accounts import Role
from camrelay.access.journal import JournalEvent
from camrelay.catalog.models import Unit
from camrelay.errors import AccessDenied, NotFound, ValidationError
from camrelay.health.drill_page import CSP, render
from camrelay.health.drills import Drills
from camrelay.tasks import stop_task
from camrelay.web.context import principal, view_request
from camrelay.web.keys import (
    BODY_KEY,
    CATALOG_KEY,
    DRILLS_KEY,
    GATE_KEY,
    JOURNAL_KEY,
    MONITOR_KEY,
    POLICY_KEY,
    SETTINGS_KEY,
    STORE_KEY,
)
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import camera_id_of, code_schema

log = logging.getLogger(__name__)

api = Api()

DRILLERS = (Role.ADMINISTRATOR, Role.OPERATOR, Role.TECHNICIAN)
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

DRILL = api.schema("Drill", {
    "type": "object", "required": ["id", "unit", "state", "started_at"],
    "properties": {
        "id": {"type": "integer"}, "unit": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "done", "failed"]},
        "started_by": {"type": ["string", "null"], "description": "null: the schedule"},
        "scheduled": {"type": "boolean"},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "report": {"type": ["object", "null"], "description":
                   "unit, unit_name, totals, units (per unit: total, online, faulty, "
                   "unchecked, reasons, first_frame {median, worst} in seconds, "
                   "availability_week), broken (camera_id, name, unit, status, reason, "
                   "findings), unchecked (camera ids); or error"},
    },
})
DRILL_NEW = api.schema("DrillNew", {
    "type": "object", "additionalProperties": False,
    "properties": {"unit": {**code_schema, "description": "default: your own unit"}},
})


class DrillRunner:
    """Owns the drills running in this process (cancelled and awaited at shutdown)."""

    def __init__(self, drills: Drills) -> None:
        self.drills = drills
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.listeners: list[Callable[[int], None]] = []  # a drill ended (its id)

    def start(self, drill_id: int, unit: Unit) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(drill_id, unit), name=f"drill {drill_id}")
        self._tasks[drill_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(drill_id, None))
        return task

    async def _run(self, drill_id: int, unit: Unit) -> None:
        try:
            report = await self.drills.run(drill_id, unit)
            log.info("[drill %d] %s: %d cameras, %d faulty", drill_id, unit.code,
                     report["totals"]["total"], report["totals"]["faulty"])
        except asyncio.CancelledError:
            await asyncio.shield(self.drills.fail(drill_id, "the server stopped during the "
                                                  "drill"))
            raise
        except Exception as exc:  # the store failed: the drill says so
            log.exception("[drill %d] failed", drill_id)
            await self.drills.fail(drill_id, f"the drill failed: {type(exc).__name__}")
        for listener in self.listeners:
            listener(drill_id)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            await stop_task(task)


RUNNER_KEY = web.AppKey("drill_runner", DrillRunner)


@api.route("POST", "/api/v1/drills", tag="health",
           summary="Check every enabled camera of a unit's subtree now and write a report",
           params=[query("wait", {"type": "boolean"}, "answer when the report is written")],
           body=DRILL_NEW,
           responses={202: ("Started: the drill runs (state running)", DRILL,
                            "application/json"),
                      200: ("With wait=true: the drill with its report", DRILL,
                            "application/json")})
async def start_drill(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in DRILLERS:
        raise AccessDenied("only administrators, operators and technicians run drills")
    wait = _flag(request, "wait")
    body = request[BODY_KEY] or {}
    code = body.get("unit") or who.user.unit_code
    unit = await request.app[CATALOG_KEY].get_unit(code)
    if unit.id not in await request.app[POLICY_KEY].jurisdiction(who):
        raise AccessDenied(f"unit {code!r} is outside your jurisdiction "
                           f"({who.user.unit_code} and below)")
    drills = request.app[DRILLS_KEY]
    drill_id = await drills.open(unit, who.user.username, who.user.id)
    await request.app[POLICY_KEY].record_admin(who, "health.drill", detail={
        "drill": drill_id, "unit": unit.code}, client_address=request.remote)
    task = request.app[RUNNER_KEY].start(drill_id, unit)
    if wait:
        await asyncio.shield(task)
    _, drill = await drills.get(drill_id)
    return web.json_response(drill, status=200 if wait else 202)


@api.route("GET", "/api/v1/drills", tag="health",
           summary="Drills of your jurisdiction, newest first (totals only)",
           params=[query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
           ok={"type": "array", "items": DRILL})
async def list_drills(request: web.Request) -> web.Response:
    who = principal(request)
    limit = int(request.query.get("limit", "100"))
    units = await request.app[POLICY_KEY].jurisdiction(who)
    return web.json_response(await request.app[DRILLS_KEY].listing(units, limit))


@api.route("GET", "/api/v1/drills/{drill_id}.html", tag="health",
           summary="A drill's report as a self-contained HTML page (SVG charts, no script)",
           params=[path_param("drill_id", ID)],
           responses={200: ("HTML page", None, "text/html")})
async def drill_page(request: web.Request) -> web.Response:
    return _page(await _drill(request))


@api.route("GET", "/api/v1/drills/{drill_id}", tag="health",
           summary="A drill and its report (?format=html: the page)",
           params=[path_param("drill_id", ID),
                   query("format", {"type": "string", "enum": ["json", "html"]})],
           responses={200: ("The drill (JSON), or its page with format=html", DRILL,
                            "application/json,text/html")})
async def get_drill(request: web.Request) -> web.Response:
    drill = await _drill(request)
    if request.query.get("format") == "html":
        return _page(drill)
    return web.json_response(drill)


def _page(drill: dict[str, Any]) -> web.Response:
    return web.Response(text=render(drill), content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
                                 "Cache-Control": "no-store"})


async def _drill(request: web.Request) -> dict[str, Any]:
    raw = request.match_info["drill_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise NotFound(f"no drill {raw[:40]!r}")
    unit_id, drill = await request.app[DRILLS_KEY].get(int(raw))
    if unit_id not in await request.app[POLICY_KEY].jurisdiction(principal(request)):
        raise NotFound(f"no drill {raw}")  # another jurisdiction's: not even its existence
    return drill


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError(f"{name} must be true or false", field=name)
    return raw in ("true", "1")


@api.route("GET", "/api/v1/cameras/{camera_id}/thumbnail", tag="health", owner="camera_id",
           summary="The camera's latest checked keyframe as a small JPEG (kept in memory "
                   "only; journalled as a snapshot)",
           params=[path_param("camera_id", ID),
                   query("purpose", {"type": "string", "maxLength": 500})],
           responses={200: ("JPEG picture", {"type": "string", "format": "binary"},
                            "image/jpeg")},
           errors=(400, 401, 403, 404))
async def thumbnail(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    view = await request.app[GATE_KEY].open_view(
        view_request(request, camera_id, "snapshot", "thumbnail"))
    picture = request.app[MONITOR_KEY].thumbnails.get(camera_id)
    if picture is None:
        await view.close("failed")
        raise NotFound(f"no thumbnail of camera {camera_id} yet: it has not been checked "
                       "with a picture since the server started")
    await view.close("ended")
    return web.Response(body=picture.jpeg, content_type="image/jpeg", headers={
        "Cache-Control": "no-store",  # no copy kept in caches either
        "X-Camrelay-Taken-At": picture.taken_at.isoformat().replace("+00:00", "Z")})


async def _scheduled(app: web.Application) -> None:
    """Every ``health.drill_every_hours``: a drill of each top unit's subtree, and the
    pruning of old reports."""
    settings = app[SETTINGS_KEY].health
    runner, drills = app[RUNNER_KEY], app[DRILLS_KEY]
    every = settings.drill_every_hours * 3600
    while True:
        await asyncio.sleep(every)
        try:
            await drills.prune(settings.drill_keep_days)
            for unit in await app[CATALOG_KEY].list_units():
                if unit.parent_id is not None:
                    continue
                drill_id = await drills.open(unit, None, None)
                await app[JOURNAL_KEY].append(JournalEvent(
                    kind="admin", action="health.drill", unit_code=unit.code,
                    detail={"drill": drill_id, "unit": unit.code, "scheduled": True},
                    result="ok"))
                await runner.start(drill_id, unit)  # one subtree after the other
        except asyncio.CancelledError:
            raise
        except Exception:  # a store hiccup: the next period tries again
            log.exception("scheduled drill failed; the next one starts on time")


def setup_drills(app: web.Application) -> None:
    """The drills (after the health scheduler) and their routes."""
    monitor = app[MONITOR_KEY]
    drills = Drills(app[STORE_KEY], app[CATALOG_KEY], monitor.check_now)
    app[DRILLS_KEY] = drills
    runner = app[RUNNER_KEY] = DrillRunner(drills)
    settings = app[SETTINGS_KEY].health
    # with worker processes, worker 0 (which owns camera 0's share) runs the schedule
    first = monitor.owns is None or monitor.owns(0)

    async def drills_ctx(app: web.Application) -> AsyncIterator[None]:
        if first:
            stale = await drills.interrupted()
            if stale:
                log.warning("%d drill(s) were left running by the last process: failed",
                            stale)
            await drills.prune(settings.drill_keep_days)
        task = None
        if first and settings.drill_every_hours > 0:
            task = asyncio.create_task(_scheduled(app), name="drill schedule")
        yield
        await stop_task(task)
        await runner.stop()

    app.cleanup_ctx.append(drills_ctx)
    api.install(app)
