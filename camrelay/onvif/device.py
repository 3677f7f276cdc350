"""Reading an ONVIF device: identity, services, media profiles, stream and snapshot URIs.

A thin typed layer over onvif-zeep-async (``ONVIFCamera``), after Home Assistant's
ONVIF integration:

1. the device's clock is read with an unauthenticated ``GetSystemDateAndTime`` and the
   skew is folded into every WS-Security ``Created`` timestamp (cameras reject tokens
   that are stale by *their* clock);
2. service XAddrs come from ``GetServices`` (``GetCapabilities`` as fallback) and any
   that point at another host are rewritten to the registered ``host:port`` -- a
   device never steers later calls elsewhere;
3. every library failure is translated at this boundary into a
   ``camrelay.onvif.errors`` error (``raise ... from err``), worded for a technician,
   without password or SOAP body.

WSDL documents are loaded by onvif-zeep-async in an executor; nothing here blocks the
event loop.  No zeep object leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from camrelay.onvif import _lib
from camrelay.onvif.errors import (
    NotOnvif,
    OnvifAuthFailed,
    OnvifError,
    OnvifTimeout,
    OnvifUnreachable,
    OnvifUnsupported,
)
from camrelay.onvif.models import (
    DeviceInfo,
    DeviceReport,
    DeviceTarget,
    MediaProfile,
    StreamInfo,
)
from camrelay.redact import redact_text, strip_credentials

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20.0
SKEW_WARNING_SECONDS = 60.0

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_IMAGING = "http://www.onvif.org/ver20/imaging/wsdl"
# a PullPoint subscription's address (onvif-zeep-async's key for it) and, at the same
# address, its WS-BaseNotification subscription manager (Renew, Unsubscribe)
NS_PULLPOINT = NS_EVENTS + "/PullPointSubscription"
NS_SUBSCRIPTION_MANAGER = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager"

# GetCapabilities categories -> service namespaces (fallback when GetServices is missing)
_CAPABILITY_NAMESPACES = {
    "Device": NS_DEVICE,
    "Media": NS_MEDIA,
    "PTZ": NS_PTZ,
    "Events": NS_EVENTS,
    "Imaging": NS_IMAGING,
}


# --- error translation ------------------------------------------------------------------


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def translate_error(err: BaseException, target: DeviceTarget, action: str) -> OnvifError | None:
    """The camrelay error for a library failure, or None if ``err`` is not one we know."""
    where = target.address
    password = target.credentials.password if target.credentials else None
    for exc in _chain(err):
        if isinstance(exc, OnvifError):
            return exc
        if isinstance(exc, _lib.ONVIFAuthError):
            return OnvifAuthFailed(
                f"The camera at {where} rejected the user name or password ({action}).",
                address=where)
        if isinstance(exc, _lib.Fault):
            if _lib.is_auth_error(exc):
                return OnvifAuthFailed(
                    f"The camera at {where} rejected the user name or password ({action}). "
                    "Check the credentials; if they are right, check the camera's clock and "
                    "that the user has ONVIF rights.", address=where)
            subcodes = " ".join(str(getattr(c, "text", c)) for c in (exc.subcodes or []))
            message = redact_text(str(exc.message or "no reason given"), password)[:200]
            if "ActionNotSupported" in subcodes or "ActionNotSupported" in message:
                return OnvifUnsupported(
                    f"The camera at {where} does not support {action}.", address=where)
            return OnvifError(f"The camera at {where} refused {action}: {message}",
                              address=where)
        if isinstance(exc, (_lib.ONVIFTimeoutError, TimeoutError)):
            return OnvifTimeout(
                f"The camera at {where} did not answer {action} in time.", address=where)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return OnvifUnreachable(
                f"Cannot find {target.host}: the name does not resolve.", address=where)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return OnvifUnreachable(
                f"Nothing answers at {where} (connection refused or no route); check the "
                "address, the port and that the camera is powered.", address=where)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return OnvifError(f"The device at {where} closed the connection during {action}.",
                              address=where)
        if isinstance(exc, _lib.TransportError):
            status = getattr(exc, "status_code", 0) or 0
            if status == 401:
                return OnvifAuthFailed(
                    f"The camera at {where} rejected the user name or password ({action}; "
                    "HTTP 401).", address=where)
            return NotOnvif(
                f"The device at {where} answered {action} with HTTP {status} and no SOAP "
                "message: it does not look like an ONVIF device (check the port).",
                address=where)
        if isinstance(exc, (_lib.XMLSyntaxError, _lib.XMLParseError)):
            return NotOnvif(
                f"The device at {where} answered {action} with something that is not an "
                "ONVIF (SOAP) message; check the port.", address=where)
        if isinstance(exc, (AttributeError, TypeError)) and _raised_in_zeep_loader(exc):
            # zeep parses non-strictly: an HTML page or plain text becomes ``None`` and
            # its loader then fails on it -- the device did not send SOAP.
            return NotOnvif(
                f"The device at {where} answered {action} with something that is not an "
                "ONVIF (SOAP) message; check the port.", address=where)
        if isinstance(exc, (ConnectionError, aiohttp.ClientOSError)):
            return OnvifUnreachable(
                f"The connection to {where} failed during {action}.", address=where)
    return None


def _raised_in_zeep_loader(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    filename = last.tb_frame.f_code.co_filename.replace("\\", "/")
    return "/zeep/" in filename and filename.endswith(("loader.py", "soap.py"))


@contextlib.contextmanager
def translating(target: DeviceTarget, action: str) -> Iterator[None]:
    """Turn library failures inside the block into camrelay errors (``from err``)."""
    try:
        yield
    except OnvifError:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as err:
        translated = translate_error(err, target, action)
        if translated is None:
            raise
        raise translated from err


# --- URL rewriting ----------------------------------------------------------------------


def _netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return host if port is None else f"{host}:{port}"


def rewrite_service_url(url: str, target: DeviceTarget) -> str:
    """An XAddr/snapshot URL on another host -> the registered ``host:port``, same path."""
    parts = urlsplit(url.strip())
    if parts.hostname is None or parts.hostname.lower() == target.host.lower().strip("[]"):
        return strip_credentials(url.strip())
    _LOGGER.debug("[onvif %s] rewriting %s to the registered address", target.address,
                  strip_credentials(url))
    return urlunsplit((parts.scheme or "http", _netloc(target.host, target.port), parts.path,
                       parts.query, parts.fragment))


def rewrite_stream_url(url: str, target: DeviceTarget) -> str:
    """An RTSP URI on another host -> the registered host, keeping port, path and query."""
    parts = urlsplit(url.strip())
    if parts.hostname is None or parts.hostname.lower() == target.host.lower().strip("[]"):
        return strip_credentials(url.strip())
    port = parts.port
    return urlunsplit((parts.scheme, _netloc(target.host, port), parts.path, parts.query,
                       parts.fragment))


# --- the connection ---------------------------------------------------------------------


def _camera_time(sys_date: Any) -> dt.datetime | None:
    """The device clock from a GetSystemDateAndTime answer (UTC, else local + offset 0)."""
    if sys_date is None:
        return None
    stamp = getattr(sys_date, "UTCDateTime", None) or getattr(sys_date, "LocalDateTime", None)
    if stamp is None or stamp.Date is None or stamp.Time is None:
        return None
    try:
        return dt.datetime(stamp.Date.Year, stamp.Date.Month, stamp.Date.Day, stamp.Time.Hour,
                           stamp.Time.Minute, stamp.Time.Second, tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


class OnvifConnection:
    """An ``ONVIFCamera`` with skew compensated and service URLs pinned to the target.

    Open it with ``async with OnvifConnection.open(target) as conn``; ``conn.service(ns)``
    gives the library's service proxy, to be used only inside ``conn.call``.
    """

    def __init__(self, target: DeviceTarget, camera: Any, timeout: float) -> None:
        self.target = target
        self._camera = camera
        self.timeout = timeout
        self.clock_skew = 0.0
        self.device_time: dt.datetime | None = None  # None: the clock could not be read
        self.warn_skew = True  # a skewed clock is logged as a warning
        self.xaddrs: dict[str, str] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: DeviceTarget, *, timeout: float = DEFAULT_TIMEOUT,
                   services: bool = True) -> AsyncIterator[OnvifConnection]:
        """``services=False``: read the clock only, and leave its skew to the caller to
        judge (the device service is still usable; :mod:`camrelay.onvif.status`)."""
        creds = target.credentials
        await _lib.load()
        camera = _lib.ONVIFCamera(
            target.host, target.port,
            creds.username if creds else None, creds.password if creds else None,
            no_cache=True, adjust_time=False, nat_override=True)
        conn = cls(target, camera, timeout)
        conn.warn_skew = services
        try:
            await conn._read_clock()
            if services:
                await conn._list_services()
            yield conn
        finally:
            with contextlib.suppress(Exception):
                await camera.close()

    async def call(self, action: str, operation: str, service_ns: str = NS_DEVICE,
                   params: Any = None, *, authenticated: bool = True,
                   timeout: float | None = None) -> Any:
        """Call ``operation`` on the service ``service_ns``, translating failures;
        ``timeout`` (default: the connection's) bounds it."""
        with translating(self.target, action):
            async with asyncio.timeout(timeout or self.timeout):
                service = await self._service(service_ns)
                name = operation if authenticated else f"authless_{operation}"
                return await getattr(service, name)(params)

    async def create_type(self, service_ns: str, name: str) -> Any:
        with translating(self.target, f"building {name}"):
            service = await self._service(service_ns)
            return service.create_type(name)

    def has_service(self, namespace: str) -> bool:
        return namespace in self.xaddrs

    def pin_subscription(self, address: str) -> None:
        """Use the subscription at ``address`` (rewritten to the registered host:port)
        for ``NS_PULLPOINT`` and ``NS_SUBSCRIPTION_MANAGER`` calls."""
        url = rewrite_service_url(address, self.target)
        self.xaddrs[NS_PULLPOINT] = url
        self._camera.xaddrs[NS_PULLPOINT] = url

    async def _service(self, namespace: str) -> Any:
        camera = self._camera
        if namespace == NS_DEVICE:
            return await camera.create_devicemgmt_service()
        if namespace == NS_SUBSCRIPTION_MANAGER and NS_PULLPOINT in self.xaddrs:
            return await camera.create_subscription_service("PullPointSubscription")
        if namespace not in self.xaddrs:
            raise OnvifUnsupported(
                f"The camera at {self.target.address} does not offer the service {namespace}.",
                address=self.target.address)
        if namespace == NS_PULLPOINT:
            return await camera.create_pullpoint_service()
        name = {NS_MEDIA: "media", NS_PTZ: "ptz", NS_EVENTS: "events",
                NS_IMAGING: "imaging"}[namespace]
        return await camera.create_onvif_service(name)

    async def _read_clock(self) -> None:
        target = self.target
        camera = self._camera
        # 1. the device clock, unauthenticated (ONVIF Core 5.9.4: GetSystemDateAndTime is
        #    always allowed), so that WS-Security timestamps match the device's clock.
        with translating(target, "reading the clock"):
            async with asyncio.timeout(self.timeout):
                devicemgmt = await camera.create_devicemgmt_service()
                try:
                    sys_date = await devicemgmt.authless_GetSystemDateAndTime()
                except _lib.Fault as fault:
                    if not _lib.is_auth_error(fault):
                        raise
                    sys_date = None  # a camera that authenticates even this call
        cam_time = self.device_time = _camera_time(sys_date)
        if cam_time is not None:
            skew = cam_time - dt.datetime.now(dt.UTC)
            self.clock_skew = skew.total_seconds()
            if abs(self.clock_skew) > SKEW_WARNING_SECONDS:
                _LOGGER.log(
                    logging.WARNING if self.warn_skew else logging.DEBUG,
                    "[onvif %s] the camera's clock is off by %.0f s; compensating (set up NTP "
                    "on the camera)", target.address, self.clock_skew)
            camera.dt_diff = skew
            # rebuild the device service so its UsernameToken carries the offset
            await devicemgmt.close()
            camera.services.pop(devicemgmt.binding_key, None)

    async def _list_services(self) -> None:
        target = self.target
        camera = self._camera
        # 2. service addresses, pinned to the registered host:port
        xaddrs: dict[str, str] = {}
        try:
            services = await self.call("listing services", "GetServices",
                                       params={"IncludeCapability": False})
        except (OnvifUnsupported, NotOnvif):
            services = None
        except OnvifError as err:
            if err.reason != "protocol":
                raise
            services = None
        for service in services or []:
            namespace = getattr(service, "Namespace", None)
            xaddr = getattr(service, "XAddr", None)
            if namespace and xaddr:
                xaddrs[str(namespace)] = rewrite_service_url(str(xaddr), target)
        if not xaddrs:
            capabilities = await self.call("reading capabilities", "GetCapabilities",
                                           params={"Category": "All"})
            for category, namespace in _CAPABILITY_NAMESPACES.items():
                section = getattr(capabilities, category, None)
                xaddr = getattr(section, "XAddr", None) if section is not None else None
                if xaddr:
                    xaddrs[namespace] = rewrite_service_url(str(xaddr), target)
        self.xaddrs = xaddrs
        camera.xaddrs = dict(xaddrs)


# --- reading ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def device_info(raw: Any) -> DeviceInfo:
    """A ``GetDeviceInformation`` answer as a value."""
    return DeviceInfo(
        manufacturer=_text(getattr(raw, "Manufacturer", None)),
        model=_text(getattr(raw, "Model", None)),
        firmware_version=_text(getattr(raw, "FirmwareVersion", None)),
        serial_number=_text(getattr(raw, "SerialNumber", None)),
        hardware_id=_text(getattr(raw, "HardwareId", None)),
    )


def _profile(raw: Any) -> MediaProfile:
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None) if encoder is not None else None
    rate = getattr(encoder, "RateControl", None) if encoder is not None else None
    fps = getattr(rate, "FrameRateLimit", None) if rate is not None else None
    bitrate = getattr(rate, "BitrateLimit", None) if rate is not None else None
    encoding = getattr(encoder, "Encoding", None) if encoder is not None else None
    return MediaProfile(
        token=_text(raw.token),
        name=_text(getattr(raw, "Name", None)) or _text(raw.token),
        encoding=_text(encoding) or None,
        width=int(getattr(resolution, "Width", 0) or 0) if resolution is not None else 0,
        height=int(getattr(resolution, "Height", 0) or 0) if resolution is not None else 0,
        fps=float(fps) if fps else None,
        bitrate_kbps=int(bitrate) if bitrate else None,
        ptz=getattr(raw, "PTZConfiguration", None) is not None,
    )


def pick_main_and_sub(profiles: Sequence[MediaProfile]
                      ) -> tuple[MediaProfile | None, MediaProfile | None]:
    """Main = most pixels (then bitrate), sub = fewest pixels; sub None if only one."""
    video = [p for p in profiles if p.pixels > 0]
    if not video:
        return None, None
    main = max(video, key=lambda p: (p.pixels, p.bitrate_kbps or 0))
    rest = [p for p in video if p.token != main.token]
    sub = min(rest, key=lambda p: (p.pixels, p.bitrate_kbps or 0)) if rest else None
    return main, sub


async def _stream(conn: OnvifConnection, profile: MediaProfile) -> StreamInfo | None:
    request = await conn.create_type(NS_MEDIA, "GetStreamUri")
    request.ProfileToken = profile.token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    try:
        answer = await conn.call(f"GetStreamUri for profile {profile.name}", "GetStreamUri",
                                 NS_MEDIA, request)
    except OnvifUnsupported:
        return None
    uri = _text(getattr(answer, "Uri", None))
    if not uri:
        return None
    return StreamInfo(profile=profile, uri=rewrite_stream_url(uri, conn.target))


async def _snapshot_uri(conn: OnvifConnection, profile: MediaProfile) -> str | None:
    request = await conn.create_type(NS_MEDIA, "GetSnapshotUri")
    request.ProfileToken = profile.token
    try:
        answer = await conn.call("GetSnapshotUri", "GetSnapshotUri", NS_MEDIA, request)
    except OnvifError as err:
        if err.reason in ("auth", "timeout", "unreachable"):
            raise
        _LOGGER.info("[onvif %s] no snapshot URI: %s", conn.target.address, err.detail)
        return None
    uri = _text(getattr(answer, "Uri", None))
    return rewrite_service_url(uri, conn.target) if uri else None


async def read_device(target: DeviceTarget, *, timeout: float = DEFAULT_TIMEOUT,
                      endpoint_reference: str | None = None) -> DeviceReport:
    """Read identity, profiles, stream and snapshot URIs of the device at ``target``.

    Raises ``OnvifAuthFailed``, ``OnvifUnreachable``, ``NotOnvif``, ``OnvifTimeout`` or
    ``OnvifError``; ``timeout`` bounds the whole read.
    """
    with translating(target, "reading the device"):
        async with asyncio.timeout(timeout), OnvifConnection.open(
                target, timeout=timeout) as conn:
            info = device_info(
                await conn.call("GetDeviceInformation", "GetDeviceInformation"))
            profiles: tuple[MediaProfile, ...] = ()
            main_stream = sub_stream = None
            snapshot_uri = None
            if conn.has_service(NS_MEDIA):
                raw_profiles = await conn.call("GetProfiles", "GetProfiles", NS_MEDIA)
                profiles = tuple(_profile(p) for p in raw_profiles or [])
                main, sub = pick_main_and_sub(profiles)
                if main is not None:
                    main_stream = await _stream(conn, main)
                    snapshot_uri = await _snapshot_uri(conn, main)
                if sub is not None:
                    sub_stream = await _stream(conn, sub)
            ptz = conn.has_service(NS_PTZ) and any(p.ptz for p in profiles)
            report = DeviceReport(
                host=target.host, port=target.port, info=info, clock_skew=conn.clock_skew,
                services=tuple(sorted(conn.xaddrs)), profiles=profiles, main=main_stream,
                sub=sub_stream, snapshot_uri=snapshot_uri, ptz=ptz,
                endpoint_reference=endpoint_reference)
    _LOGGER.info("[onvif %s] read %s %s (%d profiles, PTZ %s)", target.address,
                 info.manufacturer, info.model, len(profiles), "yes" if ptz else "no")
    return report


async def read_devices(targets: Sequence[DeviceTarget], *, concurrency: int = 8,
                       timeout: float = DEFAULT_TIMEOUT) -> list[DeviceReport | OnvifError]:
    """Read many devices, at most ``concurrency`` at once; one result per target, in order.

    A device that cannot be read yields its ``OnvifError`` instead of a report.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    semaphore = asyncio.Semaphore(concurrency)

    async def one(target: DeviceTarget) -> DeviceReport | OnvifError:
        async with semaphore:
            try:
                return await read_device(target, timeout=timeout)
            except OnvifError as err:
                _LOGGER.info("[onvif %s] cannot read: %s", target.address, err.detail)
                return err

    return list(await asyncio.gather(*(one(t) for t in targets)))
