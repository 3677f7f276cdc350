"""PTZ and server-side ONVIF routes: steer a camera, presets, the control lock, refresh.

* Every call asks the gate (``action="ptz"``, ``via="ptz"``); the gate decides and
  journals refusals.  The access log holds PTZ *control sessions*, not joystick ticks:
  the first command of a ``PtzLock`` session opens one gate view, kept while the same
  operator keeps steering, and closed when the session ends (release, takeover, idle
  expiry, revocation) with the number of commands in the close reason.
* Another operator gets control once the holder has been idle ``idle_takeover`` seconds
  (default 5); an emergency user (the gate's view says so, else the policy) takes it at
  once.  The lock's clock is ``PtzControl.clock`` (tests inject one; no sleeping).
* The server talks ONVIF only to the catalogue's ``onvif_url`` host:port, with the
  stored credentials; addresses a device reports for other hosts are pinned to it by
  ``camrelay.onvif.device``.
* ``onvif_snapshot`` gives the snapshot route a picture of an unwatched camera from its
  ONVIF snapshot URI, without opening the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.access.gate import GATE_KEY, View
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import Camera
from camrelay.catalog.service import Catalog
from camrelay.errors import AccessDenied, CamrelayError, Conflict
from camrelay.onvif.device import read_device
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget
from camrelay.onvif.ptz import PtzClient
from camrelay.onvif.ptzlock import DEFAULT_IDLE_TAKEOVER, PtzHolder, PtzLock, PtzSession
from camrelay.onvif.snapshot import fetch_snapshot
from camrelay.redact import strip_credentials
from camrelay.web.api_catalog import camera_id_of
from camrelay.web.context import CATALOG_KEY, POLICY_KEY, principal, view_request
from camrelay.web.openapi import BODY_KEY, Api, path_param
from camrelay.web.present import camera_json

log = logging.getLogger(__name__)

REPORT_TTL = 600.0
"""Seconds a device reading (PTZ profile, snapshot URI) is reused."""
ONVIF_TIMEOUT = 10.0
MAX_CACHED = 4096

api = Api()


class NoOnvif(Conflict):
    """The camera has no ONVIF address in the catalogue."""

    title = "Camera has no ONVIF address"


# ---- device access (registered address, stored credentials) --------------------------------

async def device_target(catalog: Catalog, camera: Camera) -> DeviceTarget:
    """The catalogue's ONVIF address of ``camera`` with its stored credentials."""
    if not camera.onvif_url:
        raise NoOnvif(f"camera {camera.id} has no ONVIF address in the catalogue "
                      "(set onvif_url, or register it with camrelay discover)")
    parts = urlsplit(camera.onvif_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NoOnvif(f"camera {camera.id}: the ONVIF address "
                      f"{strip_credentials(camera.onvif_url)} is not an http URL")
    username, password = await catalog.stream_credentials(camera.id)
    creds = Credentials(username, password or "") if username else None
    return DeviceTarget(parts.hostname, port or (443 if parts.scheme == "https" else 80), creds)


@dataclass(frozen=True, slots=True)
class _Reading:
    key: tuple[str | None, str | None, object]
    at: float
    report: DeviceReport
    target: DeviceTarget


class Devices:
    """Device readings per camera, reused for ``REPORT_TTL`` seconds (bounded)."""

    def __init__(self, *, ttl: float = REPORT_TTL, timeout: float = ONVIF_TIMEOUT) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._readings: dict[int, _Reading] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def forget(self, camera_id: int) -> None:
        self._readings.pop(camera_id, None)

    async def read(self, catalog: Catalog, camera: Camera, *, fresh: bool = False
                   ) -> tuple[DeviceReport, DeviceTarget]:
        key = (camera.onvif_url, camera.username, camera.updated_at)
        lock = self._locks.setdefault(camera.id, asyncio.Lock())
        async with lock:
            cached = self._readings.get(camera.id)
            if (not fresh and cached is not None and cached.key == key
                    and time.monotonic() - cached.at < self.ttl):
                return cached.report, cached.target
            target = await device_target(catalog, camera)
            report = await read_device(target, timeout=self.timeout)
            if len(self._readings) >= MAX_CACHED:
                self._readings.pop(next(iter(self._readings)))
            self._readings[camera.id] = _Reading(key, time.monotonic(), report, target)
            return report, target


async def onvif_snapshot(catalog: Catalog, camera: Camera, *, devices: Devices | None = None
                         ) -> bytes | None:
    """A JPEG from the camera's ONVIF snapshot URI, or None (no ONVIF, no URI, failed).

    None means "use the stream instead"; failures are logged, not raised.  The caller
    authorises and journals the snapshot as any other.
    """
    if not camera.onvif_url:
        return None
    devices = devices or Devices()
    try:
        report, target = await devices.read(catalog, camera)
        if not report.snapshot_uri:
            return None
        return await fetch_snapshot(report, target.credentials, timeout=devices.timeout)
    except OnvifError as err:
        log.info("[camera %d] no ONVIF snapshot: %s", camera.id, err.detail)
        devices.forget(camera.id)
        return None


# ---- the control sessions ------------------------------------------------------------------

@dataclass(slots=True)
class _Session:
    view: View
    user_id: int
    username: str
    emergency: bool


class PtzControl:
    """The app's PTZ state: the lock, one gate view per control session, device clients."""

    def __init__(self, catalog: Catalog, *, idle_takeover: float = DEFAULT_IDLE_TAKEOVER,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 devices: Devices | None = None) -> None:
        self.catalog = catalog
        self.clock = clock
        self.devices = devices or Devices()
        self.lock = PtzLock(idle_takeover=idle_takeover, clock=lambda: self.clock(),
                            wall_clock=wall_clock, on_session_end=self._session_ended)
        self._sessions: dict[int, _Session] = {}
        self._clients: dict[int, tuple[contextlib.AsyncExitStack, PtzClient]] = {}
        self._camera_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # lifetime
    async def context(self, app: web.Application) -> AsyncIterator[None]:
        self._sweeper = asyncio.create_task(self._sweep(), name="camrelay-ptz-sweeper")
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for camera_id, session in list(self._sessions.items()):
            holder = self.lock.holder(camera_id)
            count = holder.commands if holder is not None else 0
            self._sessions.pop(camera_id, None)
            self.lock.release(camera_id, session.username)
            await session.view.close(f"ptz control ended (server stopping): {count} command(s)")
        for camera_id in list(self._clients):
            await self._drop_client(camera_id)
        await self.flush()

    async def _sweep(self) -> None:
        interval = max(1.0, self.lock.idle_takeover)
        while True:
            await asyncio.sleep(interval)
            self.lock.expire_idle()
            await self.flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ptz: background task failed: %r", task.exception())

    async def flush(self) -> None:
        """Wait for the pending view closes (so the journal is written before we answer)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _session_ended(self, ended: PtzSession) -> None:
        camera_id = ended.camera
        assert isinstance(camera_id, int)
        session = self._sessions.pop(camera_id, None)
        if session is None:
            return
        how = ended.ended_by if ended.taken_over_by is None else \
            f"{ended.ended_by} by {ended.taken_over_by}"
        reason = f"ptz control ended ({how}): {ended.commands} command(s)"
        log.info("[camera %d] PTZ control of %s ended (%s), %d command(s)", camera_id,
                 ended.user, how, ended.commands)
        self._spawn(session.view.close(reason))
        if ended.ended_by != "takeover":
            self._spawn(self._drop_client(camera_id))

    # authorisation and the lock
    async def _open(self, request: web.Request, camera_id: int) -> View:
        return await request.app[GATE_KEY].open_view(
            view_request(request, camera_id, "ptz", "ptz"))

    def holds(self, camera_id: int, who: Principal) -> bool:
        session = self._sessions.get(camera_id)
        holder = self.lock.holder(camera_id)
        return (session is not None and holder is not None and session.user_id == who.user_id
                and holder.user == who.user.username)

    async def check(self, request: web.Request, who: Principal, camera_id: int,
                    what: str) -> None:
        """Authorise a call that is not a command (presets, lock): the session's view if
        the caller is steering, else one short view closed at once."""
        self.lock.expire_idle()
        if self.holds(camera_id, who):
            return
        view = await self._open(request, camera_id)
        await view.close(f"ptz {what}")

    async def command(self, request: web.Request, who: Principal, camera_id: int
                      ) -> PtzHolder:
        """Authorise one command and count it in the caller's control session."""
        self.lock.expire_idle()
        await self.flush()
        async with self._camera_locks.setdefault(camera_id, asyncio.Lock()):
            if self.holds(camera_id, who):
                session = self._sessions[camera_id]
                return self.lock.command(camera_id, who.user.username,
                                         emergency=session.emergency)
            view = await self._open(request, camera_id)
            try:
                emergency = await self._emergency(request, view, who, camera_id)
                holder = self.lock.command(camera_id, who.user.username, emergency=emergency)
            except BaseException as err:
                holder_name = getattr(err, "holder", None)
                await view.close(f"refused: ptz control held by {holder_name}"
                                 if holder_name else f"refused: {type(err).__name__}")
                raise
            self._sessions[camera_id] = _Session(view, who.user_id, who.user.username,
                                                 emergency)
            view.on_revoke(self._revoker(camera_id, view))
            log.info("[camera %d] PTZ control taken by %s%s", camera_id, who.user.username,
                     " (emergency)" if emergency else "")
        await self.flush()
        return holder

    async def _emergency(self, request: web.Request, view: View, who: Principal,
                         camera_id: int) -> bool:
        """Emergency access to this camera: the gate's view says so, else the policy."""
        flag = getattr(view, "emergency", None)
        if isinstance(flag, bool):
            return flag
        camera = await self.catalog.get_camera(camera_id)
        decision = await request.app[POLICY_KEY].decide(who.user, camera, "ptz")
        return decision.basis == "emergency"

    def _revoker(self, camera_id: int, view: View) -> Callable[[str], Awaitable[None]]:
        async def revoked(reason: str) -> None:
            session = self._sessions.get(camera_id)
            if session is None or session.view is not view:
                return
            del self._sessions[camera_id]  # the gate closes the view itself
            self.lock.release(camera_id, session.username)
            log.info("[camera %d] PTZ control of %s cut: %s", camera_id, session.username,
                     reason)
            self._spawn(self._stop_quietly(camera_id))  # the gate waits briefly for us

        return revoked

    async def _stop_quietly(self, camera_id: int) -> None:
        """Stop a camera whose operator lost the right (it may be moving)."""
        try:
            await self.send(camera_id, lambda ptz: ptz.stop())
        except CamrelayError as err:
            log.warning("[camera %d] cannot stop PTZ after revocation: %s", camera_id,
                        err.detail)

    async def release(self, camera_id: int, who: Principal) -> bool:
        """End the caller's session (an administrator may end anyone's); False if none."""
        holder = self.lock.holder(camera_id)
        if holder is None:
            return False
        if holder.user != who.user.username and who.role is not Role.ADMINISTRATOR:
            raise AccessDenied(f"PTZ control of camera {camera_id} is held by {holder.user}; "
                               "only the holder or an administrator releases it")
        self.lock.release(camera_id, holder.user)
        await self.flush()
        return True

    # the device
    async def client(self, camera_id: int) -> PtzClient:
        async with self._camera_locks.setdefault(-camera_id, asyncio.Lock()):
            cached = self._clients.get(camera_id)
            if cached is not None:
                return cached[1]
            camera = await self.catalog.get_camera(camera_id)
            report, target = await self.devices.read(self.catalog, camera)
            stack = contextlib.AsyncExitStack()
            try:
                ptz = await stack.enter_async_context(
                    PtzClient.for_report(report, target, timeout=self.devices.timeout))
            except BaseException:
                await stack.aclose()
                raise
            self._clients[camera_id] = (stack, ptz)
            return ptz

    async def _drop_client(self, camera_id: int) -> None:
        cached = self._clients.pop(camera_id, None)
        if cached is not None:
            with contextlib.suppress(Exception):
                await cached[0].aclose()

    async def send(self, camera_id: int, action: Callable[[PtzClient], Awaitable[Any]]
                   ) -> Any:
        """Run ``action`` on the camera's PTZ client; a failed device is read again next time."""
        try:
            return await action(await self.client(camera_id))
        except OnvifError:
            await self._drop_client(camera_id)
            self.devices.forget(camera_id)
            raise

    def holder_json(self, camera_id: int) -> dict[str, Any]:
        holder = self.lock.holder(camera_id)
        out: dict[str, Any] = {"camera_id": camera_id, "idle_takeover": self.lock.idle_takeover,
                               "holder": None}
        if holder is not None:
            idle = self.clock() - holder.last_command
            last = holder.started_at + (holder.last_command - holder.since)
            out["holder"] = {
                "user": holder.user, "since": _iso(holder.started_at),
                "last_command": _iso(last), "idle_seconds": round(max(0.0, idle), 1),
                "emergency": holder.emergency, "commands": holder.commands,
            }
        return out


def _iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


PTZ_KEY = web.AppKey("ptz", PtzControl)


def setup_ptz(app: web.Application, *, idle_takeover: float = DEFAULT_IDLE_TAKEOVER) -> Api:
    """Add the PTZ control state (``PTZ_KEY``) and routes; returns the documented API."""
    control = PtzControl(app[CATALOG_KEY], idle_takeover=idle_takeover)
    app[PTZ_KEY] = control

    async def ptz_ctx(app: web.Application) -> AsyncIterator[None]:
        async for _ in app[PTZ_KEY].context(app):
            yield

    app.cleanup_ctx.append(ptz_ctx)
    api.install(app)
    return api


# ---- routes --------------------------------------------------------------------------------

_cam = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                  "camera id")
_velocity = {"type": ["number", "null"], "minimum": -1, "maximum": 1}
MOVE = api.schema("PtzMove", {
    "type": "object", "additionalProperties": False,
    "properties": {"pan": _velocity, "tilt": _velocity, "zoom": _velocity,
                   "timeout": {"type": ["number", "null"], "minimum": 0.1, "maximum": 60,
                               "description": "seconds after which the camera stops by "
                                              "itself"}},
})
LOCK = api.schema("PtzLock", {
    "type": "object", "required": ["camera_id", "holder", "idle_takeover"],
    "properties": {
        "camera_id": {"type": "integer"},
        "idle_takeover": {"type": "number",
                          "description": "seconds of holder idleness before another "
                                         "operator may take control"},
        "holder": {"type": ["object", "null"], "properties": {
            "user": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
            "last_command": {"type": "string", "format": "date-time"},
            "idle_seconds": {"type": "number"}, "emergency": {"type": "boolean"},
            "commands": {"type": "integer"}}},
    },
})
PRESET = api.schema("PtzPreset", {"type": "object", "required": ["token", "name"],
                                  "properties": {"token": {"type": "string"},
                                                 "name": {"type": "string"}}})
_PTZ_ERRORS = (400, 401, 403, 404, 409, 422, 502, 504)


def _control(request: web.Request) -> PtzControl:
    return request.app[PTZ_KEY]


@api.route("POST", "/api/v1/cameras/{camera_id}/ptz/move",
           summary="PTZ continuous move (pan, tilt, zoom velocities in [-1, 1])", tag="ptz",
           params=[_cam], body=MOVE, ok=LOCK, errors=_PTZ_ERRORS)
async def ptz_move(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    body = request[BODY_KEY]
    control = _control(request)
    await control.command(request, principal(request), camera_id)
    pan, tilt, zoom = (body.get(k, 0.0) for k in ("pan", "tilt", "zoom"))
    timeout = body.get("timeout")
    await control.send(camera_id, lambda ptz: ptz.move(pan, tilt, zoom, timeout=timeout))
    return web.json_response(control.holder_json(camera_id))


@api.route("POST", "/api/v1/cameras/{camera_id}/ptz/stop", summary="PTZ stop", tag="ptz",
           params=[_cam], ok=LOCK, errors=_PTZ_ERRORS)
async def ptz_stop(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.command(request, principal(request), camera_id)
    await control.send(camera_id, lambda ptz: ptz.stop())
    return web.json_response(control.holder_json(camera_id))


@api.route("GET", "/api/v1/cameras/{camera_id}/ptz/presets", summary="PTZ presets",
           tag="ptz", params=[_cam], ok={"type": "array", "items": PRESET},
           errors=_PTZ_ERRORS)
async def ptz_presets(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.check(request, principal(request), camera_id, "presets listed")
    presets = await control.send(camera_id, lambda ptz: ptz.presets())
    return web.json_response([{"token": p.token, "name": p.name} for p in presets])


@api.route("POST", "/api/v1/cameras/{camera_id}/ptz/presets/{token}/goto",
           summary="PTZ go to a preset", tag="ptz",
           params=[_cam, path_param("token", {"type": "string", "maxLength": 64},
                                    "preset token")],
           ok=LOCK, errors=_PTZ_ERRORS)
async def ptz_goto(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    token = request.match_info["token"]
    if not token or len(token) > 64:
        from camrelay.errors import BadRequest

        raise BadRequest("the preset token must have 1 to 64 characters")
    control = _control(request)
    await control.command(request, principal(request), camera_id)
    await control.send(camera_id, lambda ptz: ptz.goto_preset(token))
    return web.json_response(control.holder_json(camera_id))


@api.route("GET", "/api/v1/cameras/{camera_id}/ptz/lock",
           summary="Who controls the camera's PTZ (user, since, last command, emergency)",
           tag="ptz", params=[_cam], ok=LOCK, errors=(401, 403, 404))
async def ptz_lock(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.check(request, principal(request), camera_id, "lock viewed")
    return web.json_response(control.holder_json(camera_id))


@api.route("DELETE", "/api/v1/cameras/{camera_id}/ptz/lock",
           summary="Release PTZ control (the holder, or an administrator)", tag="ptz",
           params=[_cam], responses={204: ("Released (or nobody held it)", None,
                                           "application/json")},
           errors=(401, 403, 404))
async def ptz_release(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    who = principal(request)
    await control.check(request, who, camera_id, "lock release")
    await control.release(camera_id, who)
    return web.Response(status=204)


# ---- ONVIF refresh (server side, stored credentials) ---------------------------------------

REFRESH = api.schema("OnvifRefresh", {
    "type": "object", "required": ["camera", "changed", "device"],
    "properties": {
        "camera": {"$ref": "#/components/schemas/Camera"},
        "changed": {"type": "array", "items": {"type": "string"}},
        "device": {"type": "object", "properties": {
            "address": {"type": "string"}, "vendor": {"type": "string"},
            "model": {"type": "string"}, "serial": {"type": "string"},
            "firmware": {"type": "string"}, "clock_skew_s": {"type": "number"},
            "ptz": {"type": "boolean"}, "snapshot": {"type": "boolean"},
            "main": {"type": ["string", "null"]}, "sub": {"type": ["string", "null"]},
            "external_id": {"type": "string"}}},
    },
})


def refresh_fields(report: DeviceReport) -> dict[str, Any]:
    """The catalogue fields an ONVIF reading fills (None = the device did not say)."""
    info = report.info
    return {"vendor": info.manufacturer or None, "model": info.model or None,
            "main_url": report.main.uri if report.main else None,
            "sub_url": report.sub.uri if report.sub else None}


@api.route("POST", "/api/v1/cameras/{camera_id}/onvif/refresh",
           summary="Read the camera over ONVIF (stored address and credentials) and update "
                   "vendor, model and stream URLs", tag="onvif", params=[_cam], ok=REFRESH,
           errors=(401, 403, 404, 409, 502, 504))
async def onvif_refresh(request: web.Request) -> web.Response:
    from camrelay.onvif.identity import external_id_for

    camera_id = camera_id_of(request)
    catalog = request.app[CATALOG_KEY]
    policy = request.app[POLICY_KEY]
    who = principal(request)
    camera = await catalog.get_camera(camera_id)
    await policy.check_manage_unit(who, camera.unit_code)
    control = request.app.get(PTZ_KEY)
    devices = control.devices if control is not None else Devices()
    report, _ = await devices.read(catalog, camera, fresh=True)
    fields = {k: v for k, v in refresh_fields(report).items()
              if v is not None and getattr(camera, k) != v}
    fields = parse_camera(fields, categories=catalog.categories,
                          camera_types=catalog.camera_types, partial=True)
    if fields:
        camera = await catalog.update_camera(camera_id, fields)
        devices.forget(camera_id)
        await policy.record_admin(who, "camera.onvif_refresh", camera_id=camera_id,
                                  detail={"fields": sorted(fields)},
                                  client_address=request.remote)
    (rights,) = await policy.rights_for(who, [camera])
    info = report.info
    return web.json_response({
        "camera": camera_json(camera, rights), "changed": sorted(fields),
        "device": {"address": report.address, "vendor": info.manufacturer,
                   "model": info.model, "serial": info.serial_number,
                   "firmware": info.firmware_version,
                   "clock_skew_s": round(report.clock_skew, 1), "ptz": report.ptz,
                   "snapshot": report.snapshot_uri is not None,
                   "main": report.main.uri if report.main else None,
                   "sub": report.sub.uri if report.sub else None,
                   "external_id": external_id_for(report)},
    })
