"""PTZ commands through the device's PTZ service (ONVIF PTZ Service Specification).

``PtzClient`` holds one ``OnvifConnection`` (clock skew compensated, service URLs pinned
to the registered address) and the media profile token PTZ commands are sent with.
Velocities are clamped to the generic velocity space [-1, 1].
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from camrelay.onvif.device import DEFAULT_TIMEOUT, NS_PTZ, OnvifConnection
from camrelay.onvif.errors import OnvifUnsupported
from camrelay.onvif.models import DeviceReport, DeviceTarget, PtzPreset

_LOGGER = logging.getLogger(__name__)


def clamp(value: float | None) -> float | None:
    """A velocity in [-1, 1]; NaN counts as 0, None stays None (axis not moved)."""
    if value is None:
        return None
    if math.isnan(value):
        return 0.0
    return max(-1.0, min(1.0, float(value)))


class PtzClient:
    """Continuous move, stop, presets for one camera profile.

    ``async with PtzClient.open(target, profile_token) as ptz: await ptz.move(0.5, 0, 0)``
    """

    def __init__(self, conn: OnvifConnection, profile_token: str) -> None:
        self._conn = conn
        self.profile_token = profile_token

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: DeviceTarget, profile_token: str, *,
                   timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[PtzClient]:
        async with OnvifConnection.open(target, timeout=timeout) as conn:
            if not conn.has_service(NS_PTZ):
                raise OnvifUnsupported(f"The camera at {target.address} has no PTZ service.",
                                       address=target.address)
            yield cls(conn, profile_token)

    @classmethod
    def for_report(cls, report: DeviceReport, target: DeviceTarget, *,
                   timeout: float = DEFAULT_TIMEOUT
                   ) -> contextlib.AbstractAsyncContextManager[PtzClient]:
        """``open`` with the PTZ profile of a ``DeviceReport``."""
        token = report.ptz_profile_token
        if not report.ptz or token is None:
            raise OnvifUnsupported(f"The camera at {report.address} has no PTZ.",
                                   address=report.address)
        return cls.open(target, token, timeout=timeout)

    async def move(self, pan: float | None = 0.0, tilt: float | None = 0.0,
                   zoom: float | None = 0.0, *, timeout: float | None = None) -> None:
        """ContinuousMove; ``timeout`` (seconds) makes the camera stop by itself."""
        pan, tilt, zoom = clamp(pan), clamp(tilt), clamp(zoom)
        request: Any = await self._conn.create_type(NS_PTZ, "ContinuousMove")
        request.ProfileToken = self.profile_token
        velocity: dict[str, Any] = {}
        if pan is not None or tilt is not None:
            velocity["PanTilt"] = {"x": pan or 0.0, "y": tilt or 0.0}
        if zoom is not None:
            velocity["Zoom"] = {"x": zoom}
        request.Velocity = velocity
        if timeout is not None:
            request.Timeout = f"PT{max(0.1, timeout):.1f}S"
        await self._conn.call("PTZ ContinuousMove", "ContinuousMove", NS_PTZ, request)

    async def stop(self, *, pan_tilt: bool = True, zoom: bool = True) -> None:
        request: Any = await self._conn.create_type(NS_PTZ, "Stop")
        request.ProfileToken = self.profile_token
        request.PanTilt = pan_tilt
        request.Zoom = zoom
        await self._conn.call("PTZ Stop", "Stop", NS_PTZ, request)

    async def presets(self) -> tuple[PtzPreset, ...]:
        request: Any = await self._conn.create_type(NS_PTZ, "GetPresets")
        request.ProfileToken = self.profile_token
        answer = await self._conn.call("PTZ GetPresets", "GetPresets", NS_PTZ, request)
        out = []
        for raw in answer or []:
            token = str(getattr(raw, "token", "") or "")
            if token:
                out.append(PtzPreset(token=token, name=str(getattr(raw, "Name", "") or token)))
        return tuple(out)

    async def goto_preset(self, preset_token: str, *, speed: float | None = None) -> None:
        request: Any = await self._conn.create_type(NS_PTZ, "GotoPreset")
        request.ProfileToken = self.profile_token
        request.PresetToken = preset_token
        if speed is not None:
            s = abs(clamp(speed) or 0.0)
            request.Speed = {"PanTilt": {"x": s, "y": s}, "Zoom": {"x": s}}
        await self._conn.call("PTZ GotoPreset", "GotoPreset", NS_PTZ, request)
