"""Talk-back: an operator speaks to a field device over the device's own WHIP session, or
to an RTSP camera over its ONVIF audio back-channel.

Routes (registered by :func:`setup_talk`; the media is :mod:`camrelay.relay.talk` and
:mod:`camrelay.relay.backchannel`):

* ``POST /talk/{camera_id}`` with an ``application/sdp`` offer that sends Opus audio
  (a browser's microphone) and a bearer token.  The checks run in this order: camera id
  (404), a camera that can be talked to (409 ``no_talkback``: a field camera or an
  ``rtsp://`` camera of this platform), the right ``talk`` (403, journalled
  ``talk.denied``: an administrator or operator whose unit subtree holds the camera's
  unit), the content type (415), the offer (400: no audio m-line, no Opus), then for a
  field camera a publisher that hears audio (409 ``no_publisher``, ``no_talkback``), for
  an RTSP camera a back-channel (409 ``no_talkback``; 503 when it cannot be reached),
  and nobody else talking (409 ``talk_busy``).  ``201 Created`` with the answer,
  ``Location`` and ``ETag``; journalled ``talk.open`` (who, camera, from where).
* ``DELETE /talk/{camera_id}/sessions/{session_id}``: the talker (or someone who manages
  the camera) ends it.  The end, whatever its cause (DELETE, the talker's connection,
  the device leaving, shutdown), is journalled ``talk.close`` with the seconds spoken.
* ``OPTIONS`` on the endpoint: ``Accept-Post: application/sdp``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from camrelay.access.journal import JournalEvent
from camrelay.catalog.models import Camera
from camrelay.errors import AccessDenied, Conflict, NoBackchannel, NotFound
from camrelay.relay.media import StreamKey
from camrelay.web.context import principal
from camrelay.web.keys import (
    CATALOG_KEY,
    JOURNAL_KEY,
    POLICY_KEY,
    RESOLVER_KEY,
    WHEP_CONFIG_KEY,
    WHIP_KEY,
)
from camrelay.web.openapi import Api, Operation, path_param
from camrelay.web.params import camera_id_of
from camrelay.web.sdp import SDP_TYPE, WhepConfig, read_offer

if TYPE_CHECKING:  # importing it loads aiortc (the front need not)
    from camrelay.relay.talk import TalkSession

log = logging.getLogger(__name__)

MAX_SESSION_ID_CHARS = 64


def setup_talk(app: web.Application) -> None:
    """Register the talk-back routes (the app holds ``WHIP_KEY``, which owns the sessions)."""
    app.router.add_route("POST", "/talk/{camera_id}", post_offer)
    app.router.add_route("OPTIONS", "/talk/{camera_id}", options_endpoint)
    app.router.add_route("DELETE", "/talk/{camera_id}/sessions/{session_id}", delete_session)


def _talk_event(request: web.Request, kind: str, camera: Camera, **values: Any
                ) -> JournalEvent:
    who = principal(request)
    return JournalEvent(
        kind=kind, action="talk", user_id=who.user_id, username=who.user.username,
        unit_code=who.user.unit_code, camera_id=camera.id, camera_name=camera.name,
        camera_unit_code=camera.unit_code, client_address=request.remote,
        user_agent=request.headers.get("User-Agent"), **values)


async def post_offer(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    camera = await request.app[CATALOG_KEY].get_camera(camera_id)
    if not camera.talkable:
        raise Conflict(f"camera {camera_id} cannot be talked to: talk-back reaches field "
                       "devices over their WHIP session and rtsp:// cameras of this platform "
                       "over their ONVIF audio back-channel", reason="no_talkback")
    journal = request.app[JOURNAL_KEY]
    decision = await request.app[POLICY_KEY].talk_decision(who, camera)
    if not decision.allowed:
        await journal.append(_talk_event(request, "talk.denied", camera, result="denied",
                                         reason=decision.reason))
        log.info("[camera %d] talk-back refused for user %s: %s", camera_id, who.user_id,
                 decision.reason)
        raise AccessDenied(decision.reason)
    offer = await read_offer(request, request.app.get(WHEP_CONFIG_KEY) or WhepConfig(),
                             kind="audio")
    ingest = request.app[WHIP_KEY]
    if camera.is_field:
        session, answer = await ingest.start_talk(camera_id, offer, owner=who.user_id)
    else:
        spec = await request.app[RESOLVER_KEY](StreamKey(camera_id))
        catalog = request.app[CATALOG_KEY]
        try:
            session, answer = await ingest.start_camera_talk(camera_id, spec, offer,
                                                             owner=who.user_id)
        except NoBackchannel:
            await catalog.note_backchannel(camera_id, False)  # the right talk goes
            raise
        await catalog.note_backchannel(camera_id, True)
    start = _talk_event(request, "talk.open", camera, result="ok", purpose="talk-back",
                        basis=decision.basis, view_id=session.id[:32])
    try:
        await journal.append(start)
    except BaseException:
        await session.close("the access journal could not be written")
        raise

    async def ended(session: TalkSession, reason: str) -> None:
        await journal.append(JournalEvent(
            kind="talk.close", action="talk", view_id=session.id[:32],
            user_id=start.user_id, username=start.username, unit_code=start.unit_code,
            camera_id=camera.id, camera_name=camera.name, camera_unit_code=camera.unit_code,
            client_address=start.client_address, result="ok", reason=reason,
            detail={"seconds": round(session.seconds, 1), "packets": session.packets,
                    "codec": session.codec}))

    session.on_end = ended
    response = web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE)
    response.headers["Location"] = f"/talk/{camera_id}/sessions/{session.id}"
    response.headers["ETag"] = f'"{session.etag}"'
    response.headers["Cache-Control"] = "no-store"
    log.info("[camera %d] talk-back %s by user %s from %s", camera_id, session.id[:8],
             who.user_id, request.remote)
    return response


async def delete_session(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    raw = request.match_info["session_id"]
    session = request.app[WHIP_KEY].talk(raw) if len(raw) <= MAX_SESSION_ID_CHARS else None
    if session is None or session.camera_id != camera_id:
        raise NotFound("no such talk-back session")
    if session.owner != who.user_id:
        camera = await request.app[CATALOG_KEY].get_camera(camera_id)
        await request.app[POLICY_KEY].check_manage_unit(who, camera.unit_code)
        await session.close(f"ended by {who.user.username}")
    else:
        await session.close("ended by talker")
    return web.Response(status=200)


async def options_endpoint(request: web.Request) -> web.Response:
    camera_id_of(request)
    response = web.Response(status=204)
    response.headers["Allow"] = "POST, OPTIONS"
    response.headers["Accept-Post"] = SDP_TYPE
    return response


api = Api()
_cam = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})
_sess = path_param("session_id", {"type": "string", "maxLength": MAX_SESSION_ID_CHARS})
api.document_route(Operation(
    method="POST", path="/talk/{camera_id}", tag="whip", owner="camera_id",
    summary="Talk-back: an operator's SDP offer sending Opus audio to the field device "
            "publishing this camera, or to the camera's ONVIF audio back-channel (the "
            "right talk); journalled",
    params=[_cam], body={"type": "string", "minLength": 1, "pattern": "^v=0\r?\n"},
    body_type="application/sdp",
    responses={201: ("SDP answer", {"type": "string"}, "application/sdp")},
    errors=(400, 401, 403, 404, 409, 415, 503)))
api.document_route(Operation(
    method="DELETE", path="/talk/{camera_id}/sessions/{session_id}", tag="whip",
    owner="camera_id",
    summary="Talk-back: end it (the talker, or a manager of the camera); journalled",
    params=[_cam, _sess], responses={200: ("Ended", None, "application/json")},
    errors=(401, 403, 404)))
api.document_route(Operation(
    method="OPTIONS", path="/talk/{camera_id}", tag="whip", public=True, owner="camera_id",
    summary="Accept-Post: application/sdp", params=[_cam],
    responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
