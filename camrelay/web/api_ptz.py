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

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from camrelay.catalog.fields import parse_camera
from camrelay.errors import BadRequest
from camrelay.onvif.identity import external_id_for
from camrelay.onvif.models import DeviceReport
from camrelay.onvif.ptzlock import DEFAULT_IDLE_TAKEOVER
from camrelay.web.context import principal
from camrelay.web.devices import Devices
from camrelay.web.keys import BODY_KEY, CATALOG_KEY, GATE_KEY, POLICY_KEY, PTZ_KEY
from camrelay.web.openapi import Api, path_param
from camrelay.web.params import camera_id_of
from camrelay.web.present import camera_json
from camrelay.web.ptz_control import PtzControl

log = logging.getLogger(__name__)

api = Api()


def setup_ptz(app: web.Application, *, idle_takeover: float = DEFAULT_IDLE_TAKEOVER) -> Api:
    """Add the PTZ control state (``PTZ_KEY``) and routes; returns the documented API."""
    control = PtzControl(app[CATALOG_KEY], app[GATE_KEY], app[POLICY_KEY],
                         idle_takeover=idle_takeover)
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
           owner="camera_id",
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
           owner="camera_id",
           params=[_cam], ok=LOCK, errors=_PTZ_ERRORS)
async def ptz_stop(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.command(request, principal(request), camera_id)
    await control.send(camera_id, lambda ptz: ptz.stop())
    return web.json_response(control.holder_json(camera_id))


@api.route("GET", "/api/v1/cameras/{camera_id}/ptz/presets", summary="PTZ presets",
           owner="camera_id",
           tag="ptz", params=[_cam], ok={"type": "array", "items": PRESET},
           errors=_PTZ_ERRORS)
async def ptz_presets(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.check(request, principal(request), camera_id, "presets listed")
    presets = await control.send(camera_id, lambda ptz: ptz.presets())
    return web.json_response([{"token": p.token, "name": p.name} for p in presets])


@api.route("POST", "/api/v1/cameras/{camera_id}/ptz/presets/{token}/goto",
           owner="camera_id",
           summary="PTZ go to a preset", tag="ptz",
           params=[_cam, path_param("token", {"type": "string", "maxLength": 64},
                                    "preset token")],
           ok=LOCK, errors=_PTZ_ERRORS)
async def ptz_goto(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    token = request.match_info["token"]
    if not token or len(token) > 64:
        raise BadRequest("the preset token must have 1 to 64 characters")
    control = _control(request)
    await control.command(request, principal(request), camera_id)
    await control.send(camera_id, lambda ptz: ptz.goto_preset(token))
    return web.json_response(control.holder_json(camera_id))


@api.route("GET", "/api/v1/cameras/{camera_id}/ptz/lock",
           owner="camera_id",
           summary="Who controls the camera's PTZ (user, since, last command, emergency)",
           tag="ptz", params=[_cam], ok=LOCK, errors=(401, 403, 404))
async def ptz_lock(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    control = _control(request)
    await control.check(request, principal(request), camera_id, "lock viewed")
    return web.json_response(control.holder_json(camera_id))


@api.route("DELETE", "/api/v1/cameras/{camera_id}/ptz/lock",
           owner="camera_id",
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
           owner="camera_id",
           summary="Read the camera over ONVIF (stored address and credentials) and update "
                   "vendor, model and stream URLs", tag="onvif", params=[_cam], ok=REFRESH,
           errors=(401, 403, 404, 409, 502, 504))
async def onvif_refresh(request: web.Request) -> web.Response:
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
