"""ONVIF device readings of catalogue cameras (registered address, stored credentials),
shared by the PTZ control, the ONVIF refresh and the snapshot of an unwatched camera.

``onvif_snapshot`` gives the snapshot route a picture of an unwatched camera from its
ONVIF snapshot URI, without opening the stream.  :class:`CameraKeyframes` asks
catalogue cameras for a keyframe when a viewer joins mid-GOP (the relay's
``KeyframeAsker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from camrelay.catalog.models import Camera
from camrelay.catalog.service import Catalog
from camrelay.errors import Conflict, SourceUnavailable
from camrelay.onvif.device import read_device
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget
from camrelay.onvif.snapshot import fetch_snapshot
from camrelay.onvif.syncpoint import SyncPoint
from camrelay.redact import strip_credentials
from camrelay.relay.media import WHIP_SCHEME, StreamKey

log = logging.getLogger(__name__)

REPORT_TTL = 600.0
"""Seconds a device reading (PTZ profile, snapshot URI) is reused."""
ONVIF_TIMEOUT = 10.0
MAX_CACHED = 4096


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


# where a stream's keyframes are asked for: the camera's ONVIF address, the stream's URL
# and the device as read recently (None: read it now), or None when it cannot be asked
Locate = Callable[[StreamKey], Awaitable[tuple[DeviceTarget, str, DeviceReport | None] | None]]


def catalogue_streams(catalog: Catalog, devices: Devices | None = None) -> Locate:
    """Streams of catalogue cameras with an ONVIF address (not field cameras, not
    cameras pulled from another platform); the device readings are reused for
    ``REPORT_TTL`` (a camera whose stream starts again, as in a tour, is not read
    again each time)."""
    readings = devices or Devices()

    async def locate(key: StreamKey) -> tuple[DeviceTarget, str, DeviceReport | None] | None:
        camera = await catalog.get_camera(key.camera_id)
        url = camera.sub_url if key.variant == "sub" and camera.sub_url else camera.main_url
        if (not camera.onvif_url or camera.link_id is not None or not url
                or url == WHIP_SCHEME):
            return None
        report, target = await readings.read(catalog, camera)
        return target, url, report

    return locate


class CameraKeyframes:
    """Keyframes on request (``camrelay.relay.keyframes.KeyframeAsker``) through ONVIF:
    one open :class:`SyncPoint` per running stream, from ``prepare`` to ``release``."""

    def __init__(self, locate: Locate, *, timeout: float = ONVIF_TIMEOUT) -> None:
        self._locate = locate
        self.timeout = timeout
        self._points: dict[StreamKey, tuple[contextlib.AsyncExitStack, SyncPoint]] = {}

    async def prepare(self, key: StreamKey) -> bool:
        located = await self._locate(key)
        if located is None:
            return False
        target, url, report = located
        stack = contextlib.AsyncExitStack()
        try:
            point = await stack.enter_async_context(
                SyncPoint.open(target, url, key.variant, report=report, timeout=self.timeout))
        except BaseException:
            await stack.aclose()
            raise
        if point is None:
            await stack.aclose()
            return False
        await self.release(key)
        self._points[key] = (stack, point)
        return True

    async def ask(self, key: StreamKey) -> None:
        entry = self._points.get(key)
        if entry is None:
            raise SourceUnavailable(f"[stream {key}] keyframe requests are not prepared",
                                    reason="unsupported")
        await entry[1].ask()

    async def release(self, key: StreamKey) -> None:
        entry = self._points.pop(key, None)
        if entry is not None:
            await entry[0].aclose()
