"""Values of the ONVIF layer: frozen dataclasses, no zeep object ever escapes.

Everything the catalogue, the CLI and the REST API need from a camera is here;
``camrelay.onvif.device`` fills them from onvif-zeep-async answers and
``camrelay.onvif.discovery`` from WS-Discovery ProbeMatches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from camrelay.redact import strip_credentials

DEFAULT_PROBE_PORT = 3702  # WS-Discovery (UDP)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A device user name and password; the password never shows in ``repr``."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """A device as the technician gave it or the catalogue holds it.

    ``host``/``port`` are the registered address of the device's HTTP (ONVIF) service;
    every later call goes there, whatever the device advertises in its XAddrs.
    """

    host: str
    port: int = 80
    credentials: Credentials | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Scopes:
    """The parts of ONVIF discovery scopes a technician recognises."""

    name: str | None = None
    location: str | None = None
    hardware: str | None = None
    profiles: tuple[str, ...] = ()
    raw: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device that answered a WS-Discovery Probe (deduplicated by endpoint reference)."""

    endpoint_reference: str
    xaddrs: tuple[str, ...]
    types: tuple[str, ...]
    scopes: Scopes
    metadata_version: int | None
    source: str
    """IP address the answer came from (for a multicast probe, the address to read)."""

    @property
    def port(self) -> int:
        """Port of the device service: from an XAddr on ``source``, else the first, else 80."""
        from urllib.parse import urlsplit

        fallback: int | None = None
        for xaddr in self.xaddrs:
            try:
                parts = urlsplit(xaddr)
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                continue
            if parts.hostname == self.source:
                return port
            if fallback is None:
                fallback = port
        return fallback if fallback is not None else 80


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclass(frozen=True, slots=True)
class MediaProfile:
    """One media profile; resolution 0x0 when the profile has no video encoder."""

    token: str
    name: str
    encoding: str | None
    width: int
    height: int
    fps: float | None
    bitrate_kbps: int | None
    ptz: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A profile with its RTSP URI (credentials never embedded, host = registered host)."""

    profile: MediaProfile
    uri: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", strip_credentials(self.uri))


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What camrelay knows about a device after reading it once."""

    host: str
    port: int
    info: DeviceInfo
    clock_skew: float
    """Device clock minus ours, in seconds (compensated for in WS-Security)."""
    services: tuple[str, ...]
    """Namespaces of the services the device offers."""
    profiles: tuple[MediaProfile, ...]
    main: StreamInfo | None
    sub: StreamInfo | None
    snapshot_uri: str | None
    ptz: bool
    endpoint_reference: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ptz_profile_token(self) -> str | None:
        """The profile to send PTZ commands with: the main one if it has PTZ."""
        candidates = ([self.main.profile] if self.main else []) + list(self.profiles)
        for profile in candidates:
            if profile.ptz:
                return profile.token
        return None


@dataclass(frozen=True, slots=True)
class PtzPreset:
    token: str
    name: str


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """One result of ``scan``: discovered and/or read; a failed read keeps its error."""

    host: str
    port: int
    discovery: DiscoveredDevice | None
    report: DeviceReport | None
    error_reason: str | None = None
    """``auth``, ``unreachable``, ``not_onvif``, ``timeout``, ``protocol``, ... or None."""
    error: str | None = None
    """A one-line message for the technician, without secrets."""

    @property
    def ok(self) -> bool:
        return self.report is not None
