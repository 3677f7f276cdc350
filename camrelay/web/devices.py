"""ONVIF device readings of catalogue cameras (registered address, stored credentials),
shared by the PTZ control, the ONVIF refresh and the snapshot of an unwatched camera.

``onvif_snapshot`` gives the snapshot route a picture of an unwatched camera from its
ONVIF snapshot URI, without opening the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from camrelay.catalog.models import Camera
from camrelay.catalog.service import Catalog
from camrelay.errors import Conflict
from camrelay.onvif.device import read_device
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget
from camrelay.onvif.snapshot import fetch_snapshot
from camrelay.redact import strip_credentials

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
