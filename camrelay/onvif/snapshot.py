"""A JPEG from the camera's ONVIF snapshot URI, over HTTP digest (or basic) auth.

Only the registered host is contacted: the URI in a ``DeviceReport`` is already pinned
to it, redirects are not followed, and a URI naming another host is refused.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote, urlsplit

import aiohttp

from camrelay.onvif.device import translating
from camrelay.onvif.errors import OnvifAuthFailed, OnvifError, OnvifUnsupported
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget
from camrelay.redact import strip_credentials

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024


async def fetch_snapshot(report_or_uri: DeviceReport | str, credentials: Credentials | None,
                         *, timeout: float = DEFAULT_TIMEOUT,
                         max_bytes: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """The image bytes; raises ``OnvifAuthFailed``, ``OnvifUnreachable``, ``OnvifTimeout``...

    Credentials embedded in a URI (``http://user:pass@host/...``) are used when
    ``credentials`` is None, and never sent anywhere but that host.
    """
    if isinstance(report_or_uri, DeviceReport):
        if not report_or_uri.snapshot_uri:
            raise OnvifUnsupported(
                f"The camera at {report_or_uri.address} offers no snapshot URI.",
                address=report_or_uri.address)
        uri = report_or_uri.snapshot_uri
        registered_host = report_or_uri.host
    else:
        uri = report_or_uri
        registered_host = urlsplit(uri).hostname or ""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OnvifError(f"The snapshot URI {strip_credentials(uri)} is not an HTTP URL.")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = DeviceTarget(host, port, credentials)
    if host.lower() != registered_host.lower().strip("[]"):
        raise OnvifError(
            f"Refusing to fetch a snapshot from {host}: the camera is registered at "
            f"{registered_host}.", address=target.address)
    if credentials is None and parts.username is not None:
        credentials = Credentials(unquote(parts.username), unquote(parts.password or ""))
    url = strip_credentials(uri)
    with translating(DeviceTarget(host, port, credentials), "the snapshot request"):
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
            data = await _get(session, url, credentials, max_bytes, target)
    _LOGGER.debug("[onvif %s] snapshot of %d bytes", target.address, len(data))
    return data


async def _get(session: aiohttp.ClientSession, url: str, credentials: Credentials | None,
               max_bytes: int, target: DeviceTarget) -> bytes:
    middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
    if credentials is not None:
        middlewares = (aiohttp.DigestAuthMiddleware(credentials.username, credentials.password),)
    response = await session.get(url, middlewares=middlewares, allow_redirects=False)
    try:
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status == 401 and credentials is not None and \
                challenge.lower().startswith("basic"):
            response.release()
            response = await session.get(
                url, auth=aiohttp.BasicAuth(credentials.username, credentials.password),
                allow_redirects=False)
        if response.status == 401:
            raise OnvifAuthFailed(
                f"The camera at {target.address} rejected the user name or password for the "
                "snapshot.", address=target.address)
        if response.status != 200:
            raise OnvifError(
                f"The camera at {target.address} answered the snapshot request with HTTP "
                f"{response.status}.", address=target.address)
        if not response.content_type.startswith("image/"):
            raise OnvifError(
                f"The camera at {target.address} sent {response.content_type} instead of an "
                "image.", address=target.address)
        data = await response.content.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise OnvifError(f"The snapshot from {target.address} is larger than "
                             f"{max_bytes} bytes.", address=target.address)
        return data
    finally:
        response.release()
