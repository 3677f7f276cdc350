"""Wiring of the relay into the app: the catalogue → source resolver, snapshots, probes,
keep-warm windows, live sessions and Prometheus metrics."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

from aiohttp import web

from camrelay.access.policy import OVERSEERS
from camrelay.errors import (
    AccessDenied,
    AuthenticationRequired,
    SourceUnavailable,
)
from camrelay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from camrelay.relay.media import StreamKey
from camrelay.web.context import principal, stream_variant, view_request
from camrelay.web.devices import onvif_snapshot
from camrelay.web.keys import (
    ACCOUNTS_KEY,
    CATALOG_KEY,
    GATE_KEY,
    HUB_KEY,
    METRICS_KEY,
    POLICY_KEY,
    PROBE_KEY,
    PTZ_KEY,
    RESOLVER_KEY,
    SETTINGS_KEY,
    SNAPSHOT_JPEG_KEY,
    SNAPSHOTS_KEY,
    WEBRTC_KEY,
    WHIP_KEY,
)
from camrelay.web.openapi import Api, Operation, path_param, query
from camrelay.web.params import camera_id_of
from camrelay.web.talk import setup_talk
from camrelay.web.whep import setup_whep
from camrelay.web.whip import setup_whip

log = logging.getLogger(__name__)


SNAPSHOT_CACHE_SECONDS = 1.0

api = Api()


@api.route("GET", "/api/v1/cameras/{camera_id}/snapshot.jpg",
           owner="camera_id",
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
        return await request.app[SNAPSHOT_JPEG_KEY](gop)
    if key.variant == "main":
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
    return await request.app[SNAPSHOT_JPEG_KEY](gop)


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
           owner="camera_id",
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
    spec = await request.app[RESOLVER_KEY](key)
    result = await request.app[PROBE_KEY](spec)
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
           fan_out="sessions",
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
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            raise AuthenticationRequired("metrics need a token or a configured address")
        who = await request.app[ACCOUNTS_KEY].authenticate(secret.strip())
        if who.role not in OVERSEERS:
            raise AccessDenied("metrics are for administrators and auditors")
    return web.Response(text=request.app[METRICS_KEY].exposition(),
                        headers={"Content-Type": METRICS_CONTENT_TYPE,
                                 "Cache-Control": "no-store"})


api.document_route(Operation(
    method="GET", path="/metrics", tag="meta", public=True, fan_out="metrics",
    summary="Prometheus metrics (configured addresses, or an admin/auditor token)",
    responses={200: ("Prometheus text format", None, "text/plain")}, errors=(401, 403)))


def setup_relay(app: web.Application) -> None:
    """Start and stop the hub and the WebRTC egress with the app; add the relay routes,
    WHEP and the metrics."""
    hub, egress = app[HUB_KEY], app[WEBRTC_KEY]
    app[SNAPSHOTS_KEY] = {}

    async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        ingest = app.get(WHIP_KEY)
        if ingest is not None:
            await ingest.close()
        await egress.close()
        await hub.stop()

    app.cleanup_ctx.append(relay_ctx)
    setup_whep(app)
    if WHIP_KEY in app:
        setup_whip(app)
        setup_talk(app)
    api.install(app)
    app.router.add_get("/metrics", metrics)
