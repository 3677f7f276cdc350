"""WHIP (RFC 9725) ingest endpoint: field devices publish a field camera's video.

Routes (registered by :func:`setup_whip`; the ingest is :mod:`camrelay.relay.ingest`):

* ``POST /whip/{camera_id}`` with an ``application/sdp`` offer and a bearer token.  The
  checks run in this order: camera id (404), a field camera (main_url ``whip:``, else 409
  ``not_field_camera``), the publish right (403, journalled ``feed.denied``: an
  administrator, operator or technician whose unit subtree holds the camera's unit), the
  content type (415), the offer (400: no H.264 with packetization-mode=1; its Opus
  audio is received, and sent talk-back when it is sendrecv: :mod:`camrelay.web.talk`), a second
  publisher (409 ``publisher_connected``).  ``201 Created`` with the answer, ``Location``
  (the session URL), ``ETag``; the start is journalled ``feed.open`` (who, from where)
  and the camera goes ``online``.
* ``DELETE /whip/{camera_id}/sessions/{session_id}``: the publisher (the same account)
  or someone who manages the camera ends the feed (200).  The end, whatever its cause
  (DELETE, ICE failure, shutdown), is journalled ``feed.close`` with the duration and the
  camera goes ``offline`` with the reason "no publisher"; its viewers' sessions end.
* ``PATCH`` on the session: ``405`` with ``Allow: DELETE, OPTIONS``.  The answer carries
  all our candidates, so camrelay does neither trickle ICE nor ICE restart; RFC 9725
  section 4.3.1 lets a server answer PATCH with 405, and clients then stop trying.
  No 307: one camera's publisher always talks to this process (with worker processes the
  front routes ``/whip/{camera_id}`` to the camera's worker).
* ``POST /whip/{camera_id}/position`` (JSON ``latitude``, ``longitude``, ``time``): the
  publisher's position, kept in memory only while its feed lasts and shown as
  ``live_position`` with the camera.
* ``OPTIONS`` on both: ``Accept-Post: application/sdp`` on the endpoint.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from camrelay.access.journal import JournalEvent
from camrelay.catalog.models import Camera, DeviceStatus
from camrelay.errors import (
    AccessDenied,
    Conflict,
    NotFound,
    ValidationError,
)
from camrelay.events import Event
from camrelay.fields import parse_datetime
from camrelay.relay.media import WHIP_SCHEME as SCHEME
from camrelay.relay.media import Position
from camrelay.web.context import principal
from camrelay.web.keys import (
    BODY_KEY,
    CATALOG_KEY,
    EVENTS_KEY,
    JOURNAL_KEY,
    POLICY_KEY,
    WHEP_CONFIG_KEY,
    WHIP_KEY,
)
from camrelay.web.openapi import Api, Operation, path_param
from camrelay.web.params import camera_id_of
from camrelay.web.sdp import SDP_TYPE, WhepConfig, read_offer

if TYPE_CHECKING:  # importing it loads aiortc (the front need not)
    from camrelay.relay.ingest import PublishSession

log = logging.getLogger(__name__)

NO_PUBLISHER = "no publisher"
ENDED_BY_PUBLISHER = "ended by publisher"
MAX_SESSION_ID_CHARS = 64
_ALLOW_SESSION = "DELETE, OPTIONS"


def setup_whip(app: web.Application) -> None:
    """Register the WHIP routes; the app must hold ``WHIP_KEY`` and close it on cleanup."""
    app.router.add_route("POST", "/whip/{camera_id}", post_offer)
    app.router.add_route("OPTIONS", "/whip/{camera_id}", options_endpoint)
    app.router.add_route("DELETE", "/whip/{camera_id}/sessions/{session_id}", delete_session)
    app.router.add_route("OPTIONS", "/whip/{camera_id}/sessions/{session_id}",
                         options_session)
    api.install(app)


def is_field_camera(camera: Camera) -> bool:
    return camera.main_url == SCHEME


def live_position(app: web.Application, camera_id: int) -> dict[str, Any] | None:
    """The position of the camera's live feed, for the camera's JSON (None: not live)."""
    ingest = app.get(WHIP_KEY)
    session = ingest.of_camera(camera_id) if ingest is not None else None
    if session is None or session.position is None:
        return None
    p = session.position
    return {"latitude": p.latitude, "longitude": p.longitude,
            "time": p.at.isoformat().replace("+00:00", "Z"),
            "received": p.received.isoformat().replace("+00:00", "Z")}


def _config(request: web.Request) -> WhepConfig:
    return request.app.get(WHEP_CONFIG_KEY) or WhepConfig()


def _session(request: web.Request, camera_id: int) -> PublishSession:
    raw = request.match_info["session_id"]
    session = request.app[WHIP_KEY].get(raw) if len(raw) <= MAX_SESSION_ID_CHARS else None
    if session is None or session.camera_id != camera_id:
        raise NotFound("no such WHIP session")
    return session


def _feed_event(request: web.Request, kind: str, camera: Camera, **values: Any
                ) -> JournalEvent:
    who = principal(request)
    return JournalEvent(
        kind=kind, action="publish", user_id=who.user_id, username=who.user.username,
        unit_code=who.user.unit_code, camera_id=camera.id, camera_name=camera.name,
        camera_unit_code=camera.unit_code, client_address=request.remote,
        user_agent=request.headers.get("User-Agent"), **values)


async def _set_status(request: web.Request | web.Application, camera_id: int,
                      status: DeviceStatus, reason: str | None) -> None:
    app = request.app if isinstance(request, web.Request) else request
    await app[CATALOG_KEY].set_status(camera_id, status)
    bus = app.get(EVENTS_KEY)
    if bus is not None:
        bus.publish(Event("camera.status", {"camera_id": camera_id, "status": status.value,
                                            "reason": reason}, camera_id=camera_id))


async def post_offer(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    camera = await request.app[CATALOG_KEY].get_camera(camera_id)
    if not is_field_camera(camera):
        raise Conflict(f"camera {camera_id} is not a field camera (its main_url is not "
                       f"{SCHEME})", reason="not_field_camera")
    journal = request.app[JOURNAL_KEY]
    decision = await request.app[POLICY_KEY].publish_decision(who, camera)
    if not decision.allowed:
        await journal.append(_feed_event(request, "feed.denied", camera, result="denied",
                                         reason=decision.reason))
        log.info("[camera %d] WHIP publish refused for user %s: %s", camera_id, who.user_id,
                 decision.reason)
        raise AccessDenied(decision.reason)
    offer = await read_offer(request, _config(request))
    session, answer = await request.app[WHIP_KEY].start_session(camera_id, offer,
                                                                owner=who.user_id)
    start = _feed_event(request, "feed.open", camera, result="ok", purpose="field video",
                        basis=decision.basis, view_id=session.id[:32])
    app = request.app
    try:
        await journal.append(start)
    except BaseException:
        await session.close("the access journal could not be written")
        raise

    async def ended(session: PublishSession, reason: str) -> None:
        await app[JOURNAL_KEY].append(JournalEvent(
            kind="feed.close", action="publish", view_id=session.id[:32],
            user_id=start.user_id, username=start.username, unit_code=start.unit_code,
            camera_id=camera.id, camera_name=camera.name, camera_unit_code=camera.unit_code,
            client_address=start.client_address, result="ok", reason=reason,
            detail={"seconds": round(session.seconds, 1), "units": session.feed.units,
                    "bytes": session.feed.bytes, "keyframes": session.feed.keyframes}))
        await _set_status(app, camera.id, DeviceStatus.OFFLINE, NO_PUBLISHER)

    session.on_end = ended
    await _set_status(request, camera_id, DeviceStatus.ONLINE, None)
    location = f"/whip/{camera_id}/sessions/{session.id}"
    response = web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE)
    response.headers["Location"] = location
    response.headers["ETag"] = f'"{session.etag}"'
    response.headers["Cache-Control"] = "no-store"
    log.info("[camera %d] WHIP publisher %s for user %s from %s", camera_id, session.id[:8],
             who.user_id, request.remote)
    return response


async def delete_session(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    session = _session(request, camera_id)
    if session.owner != who.user_id:
        camera = await request.app[CATALOG_KEY].get_camera(camera_id)
        await request.app[POLICY_KEY].check_manage_unit(who, camera.unit_code)
        await session.close(f"ended by {who.user.username}")
    else:
        await session.close(ENDED_BY_PUBLISHER)
    return web.Response(status=200)


POSITION = {
    "type": "object", "required": ["latitude", "longitude", "time"],
    "additionalProperties": False,
    "properties": {
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "time": {"type": "string", "maxLength": 64,
                 "description": "the device's time of the fix, RFC 3339 with an offset"},
    },
}
api = Api()
_cam = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})
_sess = path_param("session_id", {"type": "string", "maxLength": 64})


@api.route("POST", "/whip/{camera_id}/position", tag="whip", owner="camera_id",
           summary="WHIP: the publishing device's position (kept while its feed lasts)",
           params=[_cam], body=POSITION, ok=POSITION, errors=(400, 401, 403, 404, 409, 422))
async def post_position(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    session = request.app[WHIP_KEY].of_camera(camera_id)
    if session is None:
        raise Conflict(f"camera {camera_id} has no publisher", reason="no_publisher")
    if session.owner != who.user_id:
        raise AccessDenied("only the publishing device sends the camera's position")
    body = request[BODY_KEY]
    values = {}
    for name, (low, high) in (("latitude", (-90, 90)), ("longitude", (-180, 180))):
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= high:
            raise ValidationError(f"{name} must be a number from {low} to {high}", field=name)
        values[name] = float(value)
    at = parse_datetime(body["time"], "time")
    assert at is not None
    session.position = Position(values["latitude"], values["longitude"], at.astimezone(UTC),
                                datetime.now(UTC))
    return web.json_response({**values, "time": at.isoformat()})


async def options_endpoint(request: web.Request) -> web.Response:
    camera_id_of(request)
    response = web.Response(status=204)
    response.headers["Allow"] = "POST, OPTIONS"
    response.headers["Accept-Post"] = SDP_TYPE
    return response


async def options_session(request: web.Request) -> web.Response:
    camera_id_of(request)
    if len(request.match_info["session_id"]) > MAX_SESSION_ID_CHARS:
        raise NotFound("no such WHIP session")
    response = web.Response(status=204)
    response.headers["Allow"] = _ALLOW_SESSION
    return response


api.document_route(Operation(
    method="POST", path="/whip/{camera_id}", tag="whip", owner="camera_id",
    summary="WHIP: a field device sends its SDP offer (H.264), gets the answer (201, "
            "Location, ETag); journalled",
    params=[_cam], body={"type": "string", "minLength": 1, "pattern": "^v=0\r?\n"},
    body_type="application/sdp",
    responses={201: ("SDP answer", {"type": "string"}, "application/sdp")},
    errors=(400, 401, 403, 404, 409, 415)))
api.document_route(Operation(
    method="DELETE", path="/whip/{camera_id}/sessions/{session_id}", tag="whip",
    owner="camera_id",
    summary="WHIP: end the feed (its publisher, or a manager of the camera); journalled",
    params=[_cam, _sess], responses={200: ("Ended", None, "application/json")},
    errors=(401, 403, 404)))
# PATCH (trickle ICE / ICE restart): 405 from the router, Allow: DELETE, OPTIONS
api.document_route(Operation(
    method="OPTIONS", path="/whip/{camera_id}", tag="whip", public=True, owner="camera_id",
    summary="Accept-Post: application/sdp", params=[_cam],
    responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
api.document_route(Operation(
    method="OPTIONS", path="/whip/{camera_id}/sessions/{session_id}", tag="whip",
    public=True, owner="camera_id", summary="Allowed methods", params=[_cam, _sess],
    responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
