"""A cheap status query of an ONVIF device, for the health checks.

At most two small SOAP calls to the device service, both mandatory in ONVIF Core and
answered from the device's own state (no media pipeline, no WSDL beyond the device
service's, no ``GetServices``):

1. ``GetSystemDateAndTime``, unauthenticated (always allowed, ONVIF Core 5.9.4): the
   device is there and speaks ONVIF, and its clock against ours;
2. with credentials, ``GetDeviceInformation`` (WS-Security, its ``Created`` on the
   device's clock): the credentials are accepted, and the model and firmware.

Never raises for what the device does: every failure becomes a :class:`DeviceStatus`
with the ``OnvifError`` reason (``auth``, ``unreachable``, ``timeout``, ``not_onvif``,
``protocol``) and its message (no password, no SOAP body).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from camrelay.onvif.device import OnvifConnection, device_info, translating
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import DeviceInfo, DeviceTarget

_LOGGER = logging.getLogger(__name__)

_SILENT = frozenset({"unreachable", "timeout"})
"""Reasons that mean nothing at the address answered at all."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What one status query learned."""

    answered: bool  # something answered at the ONVIF address (even with a fault)
    reason: str | None = None  # None: every call succeeded; else the OnvifError reason
    detail: str | None = None  # the failure's message, for operators
    clock_skew: float | None = None  # the device's clock minus ours, seconds (None: unread)
    info: DeviceInfo | None = None  # from GetDeviceInformation (None: not asked or failed)


def _failed(err: OnvifError, clock_skew: float | None = None) -> DeviceStatus:
    return DeviceStatus(answered=err.reason not in _SILENT, reason=err.reason,
                        detail=err.detail, clock_skew=clock_skew)


async def device_status(target: DeviceTarget, *, timeout: float) -> DeviceStatus:
    """Ask the device at ``target`` for its clock (and identity, with credentials);
    ``timeout`` bounds the whole query."""
    skew: float | None = None
    try:
        with translating(target, "reading the device status"):
            async with asyncio.timeout(timeout), OnvifConnection.open(
                    target, timeout=timeout, services=False) as conn:
                if conn.device_time is not None:
                    skew = conn.clock_skew
                if target.credentials is None:
                    return DeviceStatus(answered=True, clock_skew=skew)
                raw = await conn.call("GetDeviceInformation", "GetDeviceInformation")
                return DeviceStatus(answered=True, clock_skew=skew, info=device_info(raw))
    except OnvifError as err:
        _LOGGER.debug("[onvif %s] status: %s (%s)", target.address, err.detail, err.reason)
        return _failed(err, skew)
