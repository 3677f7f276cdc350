"""WHEP (draft-ietf-wish-whep) playback endpoint: one HTTP POST per viewer.

Routes (registered by :func:`setup_whep`):

* ``POST /whep/{camera_id}?stream=main|sub`` with an ``application/sdp`` offer, an
  optional ``purpose`` query or ``X-Camrelay-Purpose`` header.  ``201 Created`` with the
  SDP answer, ``Location`` (the session URL), ``ETag`` and one
  ``Link: <url>; rel="ice-server"`` per configured STUN/TURN server (none by default).
  The checks run in this order, so that who may not see a camera learns nothing more:
  camera id (404), the gate (403/404), content type (415), the offer (400), the
  source (503 with ``Retry-After`` and the reason in the problem body; the failure's
  text, which names the stream address, only for a caller who manages the camera; 409
  with reason ``no_stream`` for a camera that has no stream address).
* ``DELETE /whep/{camera_id}/sessions/{session_id}``: ends the session (200); the session
  id is a 128-bit random capability.  Its owner ends it ("ended by viewer"); anyone else goes
  through the gate's ``end_view``: only an administrator over the camera's or the
  viewer's unit, with a ``reason`` query parameter, journalled, and the close reason
  names the administrator; a refusal (403) is journalled too.
* ``PATCH`` on the session: ``405 Method Not Allowed`` (from the router, with
  ``Allow: DELETE, OPTIONS``).  The answer carries all our candidates (aiortc gathers
  before answering) and clients send complete offers, so this endpoint does neither
  trickle ICE nor ICE restart; RFC 9725 section 4.3.1 asks a server that supports
  neither to answer PATCH with 405, and clients then stop trying.  No PATCH route is
  registered, so the OpenAPI document, ``Allow`` and the 405 all say the same thing.
* Path parameters are checked against the OpenAPI document on every route, OPTIONS
  included: a camera id outside 1..2**31-1 or a session id longer than 64 characters
  is a 404 problem.
* ``OPTIONS`` on both: CORS preflight; ``Accept-Post: application/sdp`` on the endpoint.

CORS: origins listed in :class:`WhepConfig` get ``Access-Control-Allow-Origin`` (echoed,
with ``Vary: Origin``) and may read ``Location``, ``ETag`` and ``Link``; preflights allow
``Authorization`` and ``Content-Type``.  Authentication is the app's middleware
(``request[PRINCIPAL_KEY]``); errors are ``camrelay.errors`` exceptions that the app's
``problems`` middleware turns into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from camrelay.errors import (
    AccessDenied,
    BadRequest,
    NotFound,
    SourceUnavailable,
    UnsupportedMediaType,
)
from camrelay.events import Event, EventBus
from camrelay.web.context import (
    MAX_PURPOSE_CHARS,
    PURPOSE_HEADER,
    principal,
    stream_variant,
    view_request,
)
from camrelay.web.keys import (
    EVENTS_KEY,
    GATE_KEY,
    PLACEMENT_KEY,
    WEBRTC_KEY,
    WHEP_CONFIG_KEY,
)
from camrelay.web.openapi import Api, Operation, path_param, query
from camrelay.web.params import camera_id_of
from camrelay.web.sdp import SDP_TYPE, WhepConfig, read_offer

if TYPE_CHECKING:
    from camrelay.settings import IceServer

log = logging.getLogger(__name__)

ENDED_BY_VIEWER = "ended by viewer"  # the close reason of the viewer's own DELETE


def _tell_viewer(bus: EventBus, user_id: int, camera_id: int, location: str
                 ) -> Callable[[str], Awaitable[None]]:
    """A revoke callback: the viewer's live channel learns why its picture went dark."""

    async def revoked(reason: str) -> None:
        bus.publish(Event("view.revoked", {"camera_id": camera_id, "session": location,
                                           "reason": reason}, user_id=user_id))

    return revoked



_ALLOW_ENDPOINT = "POST, OPTIONS"
_ALLOW_SESSION = "DELETE, OPTIONS"
_EXPOSE = "Location, ETag, Link"


def setup_whep(app: web.Application) -> None:
    """Register the WHEP routes; the app must hold ``GATE_KEY`` and ``WEBRTC_KEY``
    (``WHEP_CONFIG_KEY`` is optional) and close the egress on cleanup."""
    app.router.add_route("POST", "/whep/{camera_id}", post_offer)
    app.router.add_route("OPTIONS", "/whep/{camera_id}", options_endpoint)
    app.router.add_route("DELETE", "/whep/{camera_id}/sessions/{session_id}", delete_session)
    app.router.add_route("OPTIONS", "/whep/{camera_id}/sessions/{session_id}",
                         options_session)
    app.on_response_prepare.append(_cors_headers)


def _config(request: web.Request) -> WhepConfig:
    return request.app.get(WHEP_CONFIG_KEY) or WhepConfig()


MAX_SESSION_ID_CHARS = 64


def _session_id(request: web.Request) -> str:
    raw = request.match_info["session_id"]
    if len(raw) > MAX_SESSION_ID_CHARS:
        raise NotFound("no such WHEP session")
    return raw


def _link_headers(servers: tuple[IceServer, ...]) -> list[str]:
    links = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username is not None and server.credential is not None:
                user = server.username.replace('"', "")
                secret = server.credential.replace('"', "")
                link += f'; username="{user}"; credential="{secret}"; credential-type="password"'
            links.append(link)
    return links


async def post_offer(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    gate = request.app[GATE_KEY]
    egress = request.app[WEBRTC_KEY]
    config = _config(request)
    view = await gate.open_view(view_request(request, camera_id, "live", "whep"))
    try:
        if request.content_type != SDP_TYPE:
            raise UnsupportedMediaType(f"send the offer as {SDP_TYPE}, "
                                       f"not {request.content_type or 'nothing'}")
        variant = stream_variant(request)
        offer = await read_offer(request, config)
        session, answer = await egress.start_session(camera_id, variant, offer, view=view,
                                                     owner=who.user_id)
    except BaseException as err:
        status = getattr(err, "status", None)
        await view.close(f"refused: {status or type(err).__name__}")
        if isinstance(err, SourceUnavailable) and not view.manages_camera:
            raise err.without_address(camera_id) from err
        raise
    location = f"/whep/{camera_id}/sessions/{session.id}"
    placement = request.app.get(PLACEMENT_KEY)
    if placement is not None:  # several nodes: DELETE must reach this one, wherever posted
        location = placement.public_url + location
    bus = request.app.get(EVENTS_KEY)
    if bus is not None:
        view.on_revoke(_tell_viewer(bus, who.user_id, camera_id, location))
    response = web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE)
    response.headers["Location"] = location
    response.headers["ETag"] = f'"{session.etag}"'
    response.headers["Cache-Control"] = "no-store"
    for link in _link_headers(egress.config.ice_servers):
        response.headers.add("Link", link)
    log.info("[camera %d] WHEP session %s for user %s", camera_id, session.id[:8],
             who.user_id)
    return response


async def delete_session(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    who = principal(request)
    egress = request.app[WEBRTC_KEY]
    session = egress.get(_session_id(request))
    if session is None or session.key.camera_id != camera_id:
        raise NotFound("no such WHEP session")
    if session.owner == who.user_id:
        await session.close(ENDED_BY_VIEWER)
        return web.Response(status=200)
    if session.view is None:
        raise AccessDenied("this WHEP session belongs to another user")
    reason = request.query.get("reason")
    if reason is not None and len(reason) > MAX_PURPOSE_CHARS:
        raise BadRequest(f"reason is longer than {MAX_PURPOSE_CHARS} characters")
    close_reason = await request.app[GATE_KEY].end_view(
        who, session.view, reason=reason, client_address=request.remote)
    await session.close(close_reason)
    return web.Response(status=200)


async def options_endpoint(request: web.Request) -> web.Response:
    camera_id_of(request)
    response = web.Response(status=204)
    response.headers["Allow"] = _ALLOW_ENDPOINT
    response.headers["Accept-Post"] = SDP_TYPE
    _preflight(request, response, _ALLOW_ENDPOINT)
    return response


async def options_session(request: web.Request) -> web.Response:
    camera_id_of(request)
    _session_id(request)
    response = web.Response(status=204)
    response.headers["Allow"] = _ALLOW_SESSION
    _preflight(request, response, _ALLOW_SESSION)
    return response


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    origins = _config(request).cors_origins
    if origin in origins or "*" in origins:
        return origin
    placement = request.app.get(PLACEMENT_KEY)
    if placement is not None and origin in placement.origins():
        return origin  # a console served by another node of the cluster
    return None


def _preflight(request: web.Request, response: web.StreamResponse, methods: str) -> None:
    if _allowed_origin(request) is None:
        return
    response.headers["Access-Control-Allow-Methods"] = methods
    response.headers["Access-Control-Allow-Headers"] = \
        f"Authorization, Content-Type, If-Match, {PURPOSE_HEADER}"
    response.headers["Access-Control-Max-Age"] = "600"


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    if not request.path.startswith("/whep/"):
        return
    origin = _allowed_origin(request)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = _EXPOSE
    response.headers.add("Vary", "Origin")


# The routes above are added by setup_whep; their documentation (and their owner: the
# worker process of the camera, with relay.workers >= 2) is declared here.
api = Api()
_cam = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})
_sess = path_param("session_id", {"type": "string", "maxLength": 64})
api.document_route(Operation(
    method="POST", path="/whep/{camera_id}", tag="whep", owner="camera_id",
    summary="WHEP: send an SDP offer, get the answer (201, Location, ETag)",
    params=[_cam, query("stream", {"type": "string", "enum": ["main", "sub"]}),
            query("purpose", {"type": "string", "maxLength": 500}),
            query("ticket", {"type": "string", "maxLength": 64},
                  "several nodes: the one-use ticket of another node's 307, in place of "
                  "Authorization")],
    body={"type": "string", "minLength": 1, "pattern": "^v=0\r?\n"},
    body_type="application/sdp",
    responses={201: ("SDP answer", {"type": "string"}, "application/sdp")},
    errors=(400, 401, 403, 404, 409, 415, 503)))
api.document_route(Operation(
    method="DELETE", path="/whep/{camera_id}/sessions/{session_id}", tag="whep",
    owner="camera_id",
    summary="WHEP: end a session (its viewer; or an administrator over the camera's or "
            "the viewer's unit, with a reason, journalled)",
    params=[_cam, _sess, query(
        "reason", {"type": "string", "maxLength": 500},
        "why an administrator ends another user's view (required then; journalled, and "
        "the view's close reason names the administrator)")],
    responses={200: ("Ended", None, "application/json")}, errors=(400, 401, 403, 404)))
# PATCH (trickle ICE / ICE restart) is not an operation of the session: the router
# answers it with 405 and Allow: DELETE, OPTIONS (RFC 9725 section 4.3.1)
api.document_route(Operation(
    method="OPTIONS", path="/whep/{camera_id}", tag="whep", public=True, owner="camera_id",
    summary="CORS preflight (Accept-Post: application/sdp)", params=[_cam],
    responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
api.document_route(Operation(
    method="OPTIONS", path="/whep/{camera_id}/sessions/{session_id}", tag="whep",
    public=True, owner="camera_id", summary="CORS preflight", params=[_cam, _sess],
    responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
