"""Wiring of the relay into the app: the catalogue → source resolver, snapshots, probes,
keep-warm windows, live sessions and Prometheus metrics."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from aiohttp import web

from camrelay.access.gate import GATE_KEY
from camrelay.access.policy import OVERSEERS
from camrelay.catalog.service import Catalog
from camrelay.errors import (
    AccessDenied,
    NoStream,
    SourceUnavailable,
)
from camrelay.fields import utcnow
from camrelay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from camrelay.metrics import Metrics
from camrelay.relay.hub import Hub, SourceSpec, TranscodeSettings
from camrelay.relay.media import StreamKey
from camrelay.relay.probe import probe
from camrelay.relay.sinks.snapshot import snapshot_jpeg
from camrelay.relay.sinks.webrtc import WebRtcConfig, WebRtcEgress
from camrelay.relay.sources.registry import default_sources
from camrelay.settings import Settings
from camrelay.web.api_catalog import camera_id_of
from camrelay.web.context import (
    CATALOG_KEY,
    POLICY_KEY,
    SETTINGS_KEY,
    principal,
    stream_variant,
    view_request,
)
from camrelay.web.openapi import Api, Operation, path_param, query
from camrelay.web.whep import WEBRTC_KEY, WHEP_CONFIG_KEY, WhepConfig, setup_whep

log = logging.getLogger(__name__)

HUB_KEY = web.AppKey("hub", Hub)
METRICS_KEY = web.AppKey("metrics", Metrics)
SNAPSHOTS_KEY = web.AppKey("snapshot_cache", dict)

SNAPSHOT_CACHE_SECONDS = 1.0

api = Api()


def make_resolver(catalog: Catalog, settings: Settings) -> Any:
    """StreamKey → SourceSpec from the catalogue (credentials opened only here)."""

    async def resolve(key: StreamKey) -> SourceSpec:
        camera = await catalog.get_camera(key.camera_id)
        if not camera.active_at(utcnow()):
            raise SourceUnavailable(f"camera {camera.id} is disabled or outside its validity "
                                    "window", reason="disabled", retry_after=60)
        url = camera.sub_url if key.variant == "sub" and camera.sub_url else camera.main_url
        if not url:
            raise NoStream(f"camera {camera.id} has no stream address (main_url); a "
                           "technician sets one with camrelay camera update")
        username, password = await catalog.stream_credentials(camera.id)
        transcode = None
        if camera.transcode_width or camera.transcode_height or camera.transcode_bitrate:
            transcode = TranscodeSettings(width=camera.transcode_width,
                                          height=camera.transcode_height,
                                          bitrate=camera.transcode_bitrate)
        return SourceSpec(url=url, username=username, password=password,
                          transport="udp" if camera.transport == "udp" else "tcp",
                          connect_timeout=settings.relay.connect_timeout,
                          read_timeout=settings.relay.read_timeout, transcode=transcode,
                          client=settings.relay.rtsp_client)

    return resolve


@api.route("GET", "/api/v1/cameras/{camera_id}/snapshot.jpg",
           summary="A JPEG of the camera's current picture (not stored on the server)",
           tag="relay", params=[path_param("camera_id", {"type": "integer", "minimum": 1,
                                                          "maximum": 2**31 - 1}),
                                query("stream", {"type": "string", "enum": ["main", "sub"]}),
                                query("purpose", {"type": "string", "maxLength": 500})],
           responses={200: ("JPEG picture", {"type": "string", "format": "binary"},
                            "image/jpeg")},
           errors=(400, 401, 403, 404, 409, 503))
async def snapshot(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    view = await request.app[GATE_KEY].open_view(
        view_request(request, camera_id, "snapshot", "snapshot"))
    try:
        key = StreamKey(camera_id, stream_variant(request))
        cache: dict[StreamKey, tuple[float, bytes]] = request.app[SNAPSHOTS_KEY]
        cached = cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < SNAPSHOT_CACHE_SECONDS:
            jpeg = cached[1]
        else:
            jpeg = await _fresh_snapshot(request, key)
            cache.clear()  # one short-lived picture per process at most (seed 002 art. 26)
            cache[key] = (time.monotonic(), jpeg)
    except BaseException as err:
        await view.close("failed" if not isinstance(err, asyncio.CancelledError) else "ended")
        if isinstance(err, SourceUnavailable) and not view.manages_camera:
            raise err.without_address(camera_id) from err
        raise
    await view.close("ended")
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


async def _fresh_snapshot(request: web.Request, key: StreamKey) -> bytes:
    """From the watched stream's cached GOP; for an unwatched camera from its ONVIF
    snapshot URI where it has one, else by opening the stream on demand."""
    hub = request.app[HUB_KEY]
    gop = hub.latest_gop(key)
    if gop:
        return await snapshot_jpeg(gop)
    if key.variant == "main":
        from camrelay.web.api_ptz import PTZ_KEY, onvif_snapshot

        catalog = request.app[CATALOG_KEY]
        camera = await catalog.get_camera(key.camera_id)
        ptz = request.app.get(PTZ_KEY)
        jpeg = await onvif_snapshot(catalog, camera, devices=ptz.devices if ptz else None)
        if jpeg is not None:
            return jpeg
    sub = await hub.subscribe(key, timeout=request.app[SETTINGS_KEY].relay.join_timeout)
    try:
        gop = sub.initial_gop or (await asyncio.wait_for(sub.get(), 5.0),)
    finally:
        sub.close()
    return await snapshot_jpeg(gop)


PROBE = api.schema("ProbeResult", {
    "type": "object",
    "properties": {"url": {"type": "string"}, "codec": {"type": "string"},
                   "profile": {"type": ["string", "null"]}, "width": {"type": "integer"},
                   "height": {"type": "integer"}, "fps": {"type": ["number", "null"]},
                   "bitrate": {"type": ["integer", "null"]},
                   "time_to_first_keyframe": {"type": "number"},
                   "keyframe_interval": {"type": ["number", "null"]},
                   "transport": {"type": "string"}, "needs_transcode": {"type": "boolean"}},
})


@api.route("POST", "/api/v1/cameras/{camera_id}/probe",
           summary="Test a camera's stream: codec, profile, size, fps, bitrate, first keyframe",
           tag="relay", params=[path_param("camera_id", {"type": "integer", "minimum": 1,
                                                          "maximum": 2**31 - 1}),
                                query("stream", {"type": "string", "enum": ["main", "sub"]})],
           ok=PROBE, errors=(400, 401, 403, 404, 409, 503))
async def probe_camera(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    catalog = request.app[CATALOG_KEY]
    camera = await catalog.get_camera(camera_id)
    await request.app[POLICY_KEY].check_manage_unit(principal(request), camera.unit_code)
    key = StreamKey(camera_id, stream_variant(request))
    spec = await make_resolver(catalog, request.app[SETTINGS_KEY])(key)
    result = await probe(spec)
    return web.json_response(asdict(result))


SESSION = api.schema("Session", {
    "type": "object",
    "properties": {"id": {"type": "string"}, "camera_id": {"type": "integer"},
                   "stream": {"type": "string"}, "transcoded": {"type": "boolean"},
                   "state": {"type": "string"}, "dropped": {"type": "integer"},
                   "user_id": {"type": ["integer", "null"]}, "age_seconds": {"type": "number"},
                   "worker": {"type": "integer", "description": "the worker process that "
                              "serves it (relay.workers >= 2; added by the front)"}},
})


@api.route("GET", "/api/v1/sessions",
           summary="Live viewing sessions (who watches what) of cameras or viewers in the "
                   "caller's subtree (administrators, auditors)",
           tag="relay", ok={"type": "array", "items": SESSION})
async def sessions(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in OVERSEERS:
        raise AccessDenied("only administrators and auditors list viewing sessions")
    now = time.monotonic()
    out = []
    live = request.app[WEBRTC_KEY].sessions()
    overseen = await request.app[POLICY_KEY].overseen(
        who, [(s.key.camera_id, s.owner) for s in live])
    for session, shown in zip(live, overseen, strict=True):
        if not shown:
            continue
        info = session.info()
        out.append({"id": info.id, "camera_id": info.camera_id, "stream": info.variant,
                    "transcoded": info.transcoded, "state": info.connection_state,
                    "dropped": info.dropped, "user_id": session.owner,
                    "age_seconds": round(now - session.created, 1)})
    return web.json_response(out)


def _metrics_allowed(request: web.Request) -> bool:
    remote = request.remote or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in request.app[SETTINGS_KEY].server.metrics_addresses)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; open to the configured addresses, else a token with rights."""
    if not _metrics_allowed(request):
        from camrelay.web.middleware import ACCOUNTS_KEY

        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            from camrelay.errors import AuthenticationRequired

            raise AuthenticationRequired("metrics need a token or a configured address")
        who = await request.app[ACCOUNTS_KEY].authenticate(secret.strip())
        if who.role not in OVERSEERS:
            raise AccessDenied("metrics are for administrators and auditors")
    return web.Response(text=request.app[METRICS_KEY].exposition(),
                        headers={"Content-Type": METRICS_CONTENT_TYPE,
                                 "Cache-Control": "no-store"})


def setup_relay(app: web.Application, settings: Settings) -> list[Api]:
    """Add the hub, WebRTC egress, WHEP and relay routes; returns the documented APIs."""
    catalog = app[CATALOG_KEY]
    hub = Hub(make_resolver(catalog, settings), default_sources(), linger=settings.relay.linger_seconds,
              connect_timeout=settings.relay.connect_timeout)
    registry = Metrics()
    egress = WebRtcEgress(hub, WebRtcConfig.from_settings(settings.relay),
                          observe_first_media=registry.observe_first_media)
    registry.watch_relay(hub, egress)
    app[METRICS_KEY] = registry
    app[HUB_KEY] = hub
    app[WEBRTC_KEY] = egress
    app[WHEP_CONFIG_KEY] = WhepConfig.from_settings(settings)
    app[SNAPSHOTS_KEY] = {}

    async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await egress.close()
        await hub.stop()

    app.cleanup_ctx.append(relay_ctx)
    setup_whep(app)
    api.install(app)
    app.router.add_get("/metrics", metrics)
    whep = Api()
    cam = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})
    sess = path_param("session_id", {"type": "string", "maxLength": 64})
    whep.document_route(Operation(
        method="POST", path="/whep/{camera_id}", tag="whep",
        summary="WHEP: send an SDP offer, get the answer (201, Location, ETag)",
        params=[cam, query("stream", {"type": "string", "enum": ["main", "sub"]}),
                query("purpose", {"type": "string", "maxLength": 500})],
        body={"type": "string", "minLength": 1, "pattern": "^v=0\r?\n"},
        body_type="application/sdp",
        responses={201: ("SDP answer", {"type": "string"}, "application/sdp")},
        errors=(400, 401, 403, 404, 409, 415, 503)))
    whep.document_route(Operation(
        method="DELETE", path="/whep/{camera_id}/sessions/{session_id}", tag="whep",
        summary="WHEP: end a session (its viewer; or an administrator over the camera's or "
                "the viewer's unit, with a reason, journalled)",
        params=[cam, sess, query(
            "reason", {"type": "string", "maxLength": 500},
            "why an administrator ends another user's view (required then; journalled, and "
            "the view's close reason names the administrator)")],
        responses={200: ("Ended", None, "application/json")}, errors=(400, 401, 403, 404)))
    # PATCH (trickle ICE / ICE restart) is not an operation of the session: the router
    # answers it with 405 and Allow: DELETE, OPTIONS (RFC 9725 section 4.3.1)
    whep.document_route(Operation(
        method="OPTIONS", path="/whep/{camera_id}", tag="whep", public=True,
        summary="CORS preflight (Accept-Post: application/sdp)", params=[cam],
        responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
    whep.document_route(Operation(
        method="OPTIONS", path="/whep/{camera_id}/sessions/{session_id}", tag="whep",
        public=True, summary="CORS preflight", params=[cam, sess],
        responses={204: ("Preflight answer", None, "application/json")}, errors=(404,)))
    whep.document_route(Operation(
        method="GET", path="/metrics", tag="meta", public=True,
        summary="Prometheus metrics (configured addresses, or an admin/auditor token)",
        responses={200: ("Prometheus text format", None, "text/plain")}, errors=(401, 403)))
    return [api, whep]
