"""Stable identities: the same camera found again is the same catalogue entry."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from camrelay.onvif.models import DeviceReport

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtspu": 554, "http": 80, "https": 443}
_UUID_PREFIX = re.compile(r"^(urn:)?uuid:", re.IGNORECASE)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def external_id_for(report: DeviceReport) -> str:
    """``onvif:<vendor>:<serial>``, else ``onvif:epr:<uuid>``, else ``onvif:addr:<host:port>``.

    The serial number is what survives re-addressing and firmware updates; the endpoint
    reference is the WS-Discovery identity (stable across reboots by the spec); the
    address is a last resort and changes with the network.
    """
    serial = report.info.serial_number.strip()
    if serial and serial.strip("0") and serial.lower() not in {"unknown", "n/a", "none"}:
        vendor = _slug(report.info.manufacturer) or "unknown"
        return f"onvif:{vendor}:{serial}"
    if report.endpoint_reference:
        return "onvif:epr:" + _UUID_PREFIX.sub("", report.endpoint_reference.strip()).lower()
    return f"onvif:addr:{report.address}"


def _key(url: str) -> tuple[str, int | None, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return ((parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme),
            parts.path.rstrip("/") or "/")


def same_stream(url_a: str, url_b: str) -> bool:
    """Same host, port (scheme default if absent) and path; credentials and query ignored."""
    return _key(url_a) == _key(url_b)
