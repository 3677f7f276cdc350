"""Asking a camera for a keyframe now: ONVIF Media ``SetSynchronizationPoint``.

The ONVIF Media Service Specification has the device insert an I-frame (an IDR for
H.264) in the streams of a media profile on this request; cameras answer it within a
frame or two.  camrelay asks when a viewer joins a running stream mid-GOP
(:mod:`camrelay.relay.keyframes`), so the request must be one round trip: a
:class:`SyncPoint` keeps the connection (clock skew compensated, service addresses
pinned to the registered address) and the profile token found once.

The profile is the one whose stream URI is the catalogue's address of the stream
(path and query compared: the host may be a NAT's), else the device's main or sub
profile by the stream's variant.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from camrelay.onvif.device import DEFAULT_TIMEOUT, NS_MEDIA, OnvifConnection, read_device
from camrelay.onvif.models import DeviceReport, DeviceTarget, MediaProfile

_LOGGER = logging.getLogger(__name__)


def _place(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path.rstrip("/"), parts.query


def profile_for(report: DeviceReport, stream_url: str, variant: str) -> MediaProfile | None:
    """The media profile that serves ``stream_url`` (``variant``: "main" or "sub")."""
    streams = [s for s in (report.main, report.sub) if s is not None]
    for stream in streams:
        if _place(stream.uri) == _place(stream_url):
            return stream.profile
    chosen = report.sub if variant == "sub" else report.main
    return chosen.profile if chosen is not None else None


class SyncPoint:
    """``async with SyncPoint.open(target, url, variant) as point``: ``await point.ask()``
    as often as needed; None instead of a point when the device has no such profile."""

    def __init__(self, conn: OnvifConnection, profile_token: str) -> None:
        self._conn = conn
        self.profile_token = profile_token

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: DeviceTarget, stream_url: str, variant: str, *,
                   report: DeviceReport | None = None, timeout: float = DEFAULT_TIMEOUT
                   ) -> AsyncIterator[SyncPoint | None]:
        """``report``: the device as read recently (else it is read now)."""
        if report is None:
            report = await read_device(target, timeout=timeout)
        profile = profile_for(report, stream_url, variant)
        if profile is None or NS_MEDIA not in report.services:
            _LOGGER.info("[onvif %s] no media profile for the %s stream: keyframes are not "
                         "asked for", target.address, variant)
            yield None
            return
        async with OnvifConnection.open(target, timeout=timeout) as conn:
            yield cls(conn, profile.token)

    async def ask(self) -> None:
        request = await self._conn.create_type(NS_MEDIA, "SetSynchronizationPoint")
        request.ProfileToken = self.profile_token
        await self._conn.call(f"SetSynchronizationPoint for profile {self.profile_token}",
                              "SetSynchronizationPoint", NS_MEDIA, request)
