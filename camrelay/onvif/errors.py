"""Errors raised by camrelay's ONVIF layer, each worded for the technician on site.

Every library failure (zeep faults, aiohttp connection errors, onvif-zeep-async
wrappers) is translated into one of these at the boundary with ``raise ... from err``.
Messages carry the registered ``host:port`` only: never a password, never a SOAP body.

The HTTP status is 502/504 (a gateway talking to a device), not 401: a camera that
refuses our stored password must not look like the operator's own session expiring.
"""

from __future__ import annotations

import math
from typing import Any

from camrelay.errors import CamrelayError, Conflict


class OnvifError(CamrelayError):
    """Root of the ONVIF errors: the device could not be used as asked."""

    status = 502
    title = "ONVIF device error"
    reason = "protocol"

    def __init__(self, detail: str, *, address: str | None = None, **extra: Any) -> None:
        extra.setdefault("reason", self.reason)
        if address is not None:
            extra.setdefault("address", address)
        super().__init__(detail, **extra)
        self.address = address


class OnvifAuthFailed(OnvifError):
    """The device rejected the user name or password (ter:NotAuthorized, HTTP 401)."""

    title = "Camera rejected the credentials"
    reason = "auth"


class OnvifUnreachable(OnvifError):
    """Nothing answers at the address (connection refused, no route, unknown name)."""

    title = "Camera unreachable"
    reason = "unreachable"


class NotOnvif(OnvifError):
    """Something answers, but it does not speak ONVIF (HTML page, 404, not SOAP)."""

    title = "Not an ONVIF device"
    reason = "not_onvif"


class OnvifTimeout(OnvifError):
    """The device accepted the connection but did not answer in time."""

    status = 504
    title = "Camera did not answer in time"
    reason = "timeout"


class OnvifUnsupported(OnvifError):
    """The device does not offer the service asked for (no PTZ, no snapshot)."""

    title = "Not supported by the camera"
    reason = "unsupported"


class PtzBusy(Conflict):
    """Another operator holds PTZ control of this camera and has not been idle long enough."""

    title = "PTZ control held by another operator"

    def __init__(self, detail: str, *, holder: str, idle_for: float, retry_after: float,
                 **extra: Any) -> None:
        super().__init__(detail, holder=holder, idle_for=round(idle_for, 1),
                         retry_after=round(retry_after, 1), **extra)
        self.holder = holder
        self.idle_for = idle_for
        # whole seconds, for the Retry-After header; the exact wait is in the problem body
        self.retry_after = max(1, math.ceil(retry_after))
