"""The ONVIF device status of a checked camera, and how it sharpens the stream's verdict.

With ``health.onvif_status``, each check of a camera with an ONVIF address asks the
device (:func:`camrelay.onvif.status.device_status`) while its stream is judged, in the
same concurrency slot.  :func:`sharpen` then combines both:

- the stream is offline, but the device answers: ``fault`` / ``stream`` (the device is
  there; its stream is not) -- or ``fault`` / ``auth`` if it refused the credentials;
- the stream is offline and the device is silent too: ``offline`` / ``unreachable``;
- the device refused the credentials while the stream works: ``fault`` / ``auth``
  (PTZ, events and snapshots need them; picture findings, if any, go first);
- the device's clock is off by more than ``health.clock_drift_seconds``: the finding
  ``clock_drift`` with the measured drift in seconds (device minus server);
- a stream fault of its own (``auth``, ``no_video``, ``decode``, ``error``) stands.

The latest status of each camera is kept in memory (:class:`DeviceReading`) for
``GET /api/v1/cameras/{id}/health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from camrelay.health.history import Verdict
from camrelay.onvif.status import DeviceStatus


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """A device status and when it was taken."""

    at: datetime
    status: DeviceStatus

    def as_dict(self) -> dict[str, Any]:
        status, info = self.status, self.status.info
        skew = status.clock_skew
        return {
            "checked_at": self.at.isoformat().replace("+00:00", "Z"),
            "answered": status.answered,
            "reason": status.reason,
            "detail": status.detail,
            "clock_drift_seconds": None if skew is None else round(skew, 1),
            "manufacturer": info.manufacturer if info else None,
            "model": info.model if info else None,
            "firmware": info.firmware_version if info else None,
        }


def clock_drift(status: DeviceStatus, limit: float) -> dict[str, Any] | None:
    """The ``clock_drift`` finding, if the device's clock is off by more than ``limit``."""
    skew = status.clock_skew
    if limit <= 0 or skew is None or abs(skew) <= limit:
        return None
    return {"kind": "clock_drift", "value": round(skew, 1), "threshold": limit}


def sharpen(verdict: Verdict, status: DeviceStatus | None, drift_limit: float) -> Verdict:
    """The stream's ``verdict`` with what the device said (see the module doc)."""
    if status is None:
        return verdict
    if verdict.status == "offline":
        if status.reason == "auth":
            return Verdict("fault", "auth")
        return Verdict("fault", "stream") if status.answered else Verdict(
            "offline", "unreachable")
    if verdict.status == "fault" and not verdict.findings:
        return verdict
    if verdict.status == "online" and status.reason == "auth":
        return Verdict("fault", "auth")
    drift = clock_drift(status, drift_limit)
    if drift is None:
        return verdict
    findings = (*verdict.findings, drift)
    return Verdict("fault", str(findings[0]["kind"]), findings)
