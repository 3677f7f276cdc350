"""Settings: one TOML file plus ``CAMRELAY_*`` environment variables, validated once.

No file at all works: every key has an embedded default and data lives under a local
data directory.  Environment variables override the file: top-level keys as
``CAMRELAY_DATA_DIR``, keys of a section as ``CAMRELAY_SERVER__LISTEN`` (section, two
underscores, key).  Every problem is reported with the key it concerns.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from camrelay.errors import ConfigError
from camrelay.redact import strip_credentials
from camrelay.roles import Role

ENV_PREFIX = "CAMRELAY_"

DEFAULT_CATEGORIES = (
    "expressway", "ordinary_road", "bridge", "tunnel", "waterway", "port", "city_street",
    "public_security", "water", "forest_fire", "emergency", "other",
)
DEFAULT_CAMERA_TYPES = (
    "fixed", "dome", "ptz", "thermal", "body_worn", "vehicle", "phone", "drone", "other",
)


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None

    def __repr__(self) -> str:
        return f"IceServer(urls={self.urls!r}, username={self.username!r}, credential='***')"


@dataclass(frozen=True)
class ServerSettings:
    listen: str = "127.0.0.1:8080"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain_http: bool = False  # plain HTTP on a non-loopback address
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 8 * 1024 * 1024
    metrics_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


@dataclass(frozen=True)
class RelaySettings:
    linger_seconds: float = 15.0
    connect_timeout: float = 5.0
    read_timeout: float = 5.0
    join_timeout: float = 5.0
    # a joiner late in the GOP resumes at the camera's next keyframe when that is due
    # within this many seconds and sooner than the catch-up (0: always the catch-up)
    join_wait_seconds: float = 0.75
    # a joiner that would lag behind live asks the camera for a keyframe (ONVIF
    # SetSynchronizationPoint) and waits up to this many seconds for it (0: never ask)
    keyframe_request_wait_seconds: float = 0.8
    ice_servers: list[IceServer] = field(default_factory=list)  # empty: no STUN/TURN traffic
    ice_host_addresses: list[str] = field(default_factory=list)  # empty: every local address
    workers: int = 1  # processes: 1 = one process; 0 = one per CPU; N >= 2 = front + N workers
    # H.264 RTSP cameras: camrelay's own client, or FFmpeg (PyAV) for every camera
    rtsp_client: Literal["native", "ffmpeg"] = "native"


@dataclass(frozen=True)
class CatalogSettings:
    categories: list[str] = field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    camera_types: list[str] = field(default_factory=lambda: list(DEFAULT_CAMERA_TYPES))
    # "platform": every signed-in user sees the whole directory; "subtree": only their own
    visibility: Literal["platform", "subtree"] = "platform"


@dataclass(frozen=True)
class LockoutSettings:
    window_seconds: float = 15 * 60  # failures older than this are forgotten
    slow_after: int = 3  # failed logins before each further attempt is slowed
    slow_seconds: float = 1.0
    lock_after: int = 10  # failures of one account before it is locked
    lock_address_after: int = 30  # failures from one client address before it is locked
    lock_seconds: float = 15 * 60


@dataclass(frozen=True)
class AccessSettings:
    emergency_hours: float = 2.0
    emergency_max_hours: float = 24.0
    emergency_roles: list[str] = field(default_factory=lambda: ["operator", "administrator"])
    owner_admins_approve: bool = False  # besides the platform's approvers
    max_grant_days: int = 366
    heartbeat_seconds: float = 5.0
    # live views re-checked against the store this often (cut within 1 s); in a cluster
    # revocations come through Redis at once and this poll (up to 10 s) is the fallback
    watch_seconds: float = 0.5
    lockout: LockoutSettings = field(default_factory=LockoutSettings)


@dataclass(frozen=True)
class LogSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``[health.diagnosis]``: when a measurement becomes a finding."""

    flat_std: float = 4.0  # luma and colour spread below this: one flat colour
    black_luma: float = 24.0  # a flat picture this dark is "black"
    overexposed_share: float = 0.45  # share of pixels at >= 245
    underexposed_luma: float = 35.0  # mean luma below this
    blur_laplacian: float = 60.0  # variance of the Laplacian below this
    occluded_share: float = 0.3  # share of flat, dark blocks
    occluded_block_std: float = 6.0  # a block "flat" below this spread
    occluded_block_luma: float = 70.0  # and "dark" below this mean
    colour_cast: float = 28.0  # mean chroma distance from grey (0..181)
    noise_sigma: float = 5.0  # estimated noise level
    frozen_tolerance: float = 1.0  # mean absolute luma difference
    frozen_samples: int = 2  # samples in a row, the first included, to call it frozen

    def overridden(self, changes: dict[str, float]) -> Thresholds:
        """These thresholds with ``changes`` (names checked when settings load)."""
        typed = {k: (int(v) if k == "frozen_samples" else float(v)) for k, v in changes.items()}
        return replace(self, **typed)  # type: ignore[arg-type]


THRESHOLD_NAMES = frozenset(f.name for f in fields(Thresholds))


@dataclass(frozen=True)
class DiagnosisSettings(Thresholds):
    """``[health.diagnosis]``: the thresholds, and per camera category the ones that differ."""

    enabled: bool = True
    # e.g. {"tunnel": {"underexposed_luma": 15.0}}: a tunnel camera is darker than a bridge's
    categories: dict[str, dict[str, float]] = field(default_factory=dict)

    def for_category(self, category: str | None) -> Thresholds:
        base = Thresholds(**{name: getattr(self, name) for name in THRESHOLD_NAMES})
        changes = self.categories.get(category or "")
        return base.overridden(changes) if changes else base


@dataclass(frozen=True)
class HealthSettings:
    enabled: bool = True  # probe the cameras at all
    period_seconds: float = 300.0  # every enabled camera is checked once per period
    concurrency: int = 8  # probes open at once (per process)
    probe_timeout: float = 10.0  # connect + first keyframe, else "timeout"
    probe_nice: int = 10  # CPU priority lowered by this in the probe process (0-19)
    history_days: int = 90  # status history kept this long
    drill_every_hours: float = 0.0  # a drill of every top unit's subtree this often (0: none)
    drill_keep_days: int = 365  # drill reports kept this long
    thumbnails: bool = True  # keep each checked camera's latest keyframe as a thumbnail
    thumbnail_width: int = 160  # pixels; the height keeps the picture's aspect
    # ONVIF device status with each check of a camera with an ONVIF address: its clock
    # (unauthenticated) and, with credentials, GetDeviceInformation
    onvif_status: bool = True
    onvif_status_timeout: float = 5.0  # the whole status query, else "timeout"
    clock_drift_seconds: float = 300.0  # a device clock off by more: finding (0: not judged)
    # ONVIF events (motion, tamper, video loss) as alarms: a PullPoint subscription per
    # enabled camera with an ONVIF address (needs alarms.enabled)
    onvif_events: bool = True
    onvif_termination_seconds: float = 600.0  # asked for; renewed at 80 % of what is granted
    onvif_pull_timeout: float = 20.0  # longest PullMessages wait
    onvif_message_limit: int = 100  # notifications per PullMessages
    onvif_retry_min_seconds: float = 1.0  # after a failure; doubled each time ...
    onvif_retry_max_seconds: float = 300.0  # ... up to this
    onvif_concurrency: int = 8  # subscriptions being set up at once (per process)
    onvif_reconcile_seconds: float = 60.0  # the catalogue is read again this often
    diagnosis: DiagnosisSettings = field(default_factory=DiagnosisSettings)


@dataclass(frozen=True)
class ClusterSettings:
    """``[cluster]``: this node among several sharing one store and one Redis (``redis_url``)."""

    node_id: str = ""  # default: <data_dir>/node.id
    public_url: str = ""  # how viewers reach this node; default: http(s)://server.listen
    lease_seconds: float = 3.0  # a camera's lease; the owner renews it every third of it
    heartbeat_seconds: float = 1.0  # membership heartbeat (kept for 3 heartbeats)
    max_cameras: int = 0  # load limit: above it new cameras go to another node (0: none)
    ticket_seconds: float = 30.0  # life of the one-use ticket a 307 carries


@dataclass(frozen=True)
class LimitSettings:
    """``[limits]``: live views at once (0: no limit), for the whole cluster with
    ``redis_url``; emergency views are never refused (they go over, counted)."""

    per_camera: int = 0  # live views of one camera
    per_unit: int = 0  # live views by the users of one unit (not its sub-units)
    units: dict[str, int] = field(default_factory=dict)  # per_unit for these unit codes


@dataclass(frozen=True)
class AlarmWebhook:
    """``[[alarms.webhooks]]``: where alarms are POSTed, signed with HMAC-SHA256."""

    url: str
    secret: str | None = None  # the signing key (redacted in dumps) ...
    secret_env: str | None = None  # ... or the name of the variable that holds it
    units: list[str] = field(default_factory=list)  # unit codes; empty: every alarm
    timeout: float = 5.0  # per attempt
    retries: int = 4  # attempts after the first, 1 s, 2 s, 4 s, ... apart

    def signing_key(self, env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        if self.secret_env:
            return env.get(self.secret_env, "")
        return self.secret or ""


@dataclass(frozen=True)
class AlarmSettings:
    """``[alarms]``: alarms raised by device health, routed to the responsible units."""

    enabled: bool = True
    route_to_parents: bool = False  # also the parent units of the owner and maintenance unit
    reopen_seconds: float = 600.0  # a condition back within this long reopens its alarm
    history_days: int = 90  # cleared alarms kept this long
    webhook_queue: int = 1000  # alarms waiting for the webhooks; more are dropped (logged)
    webhooks: list[AlarmWebhook] = field(default_factory=list)


@dataclass(frozen=True)
class FederationSettings:
    """``[federation]``: links to lower platforms (README "Linking platforms")."""

    platform_name: str = ""  # how upper platforms name this one; default: the top unit's name
    sync_seconds: float = 60.0  # a full sync of every link this often, besides its changes
    retry_max_seconds: float = 30.0  # a failed link retries 1 s doubling to this
    timeout: float = 10.0  # per call to a lower platform (connect, catalogue, view report)
    ca_file: Path | None = None  # the private CA of lower platforms served over https


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("camrelay-data")
    database_url: str | None = None  # default: SQLite in data_dir
    credential_key: str | None = None  # default: generated into data_dir/credential.key
    audit_key: str | None = None  # default: generated into data_dir/audit.key
    redis_url: str | None = None  # redis://, rediss://, redis+sentinel://: several nodes
    server: ServerSettings = field(default_factory=ServerSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    log: LogSettings = field(default_factory=LogSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'camrelay.db').resolve()}"

    @property
    def public_url(self) -> str:
        """How viewers and other nodes reach this node (``cluster.public_url``, else the
        listen address), without a trailing slash."""
        if self.cluster.public_url:
            return self.cluster.public_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        host = self.server.host
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self.server.port}"

    def redacted(self) -> dict[str, Any]:
        """A dump for logs and ``--show-config``: every secret masked."""
        raw = dataclasses.asdict(self)
        for key in ("credential_key", "audit_key"):
            if raw.get(key):
                raw[key] = "***"
        for key in ("database_url", "redis_url"):
            if raw.get(key):
                raw[key] = strip_credentials(raw[key])
        for server in raw["relay"]["ice_servers"]:
            if server.get("credential"):
                server["credential"] = "***"
        for hook in raw["alarms"]["webhooks"]:
            if hook.get("secret"):
                hook["secret"] = "***"
            hook["url"] = strip_credentials(hook["url"])
        dump: dict[str, Any] = _jsonable(raw)
        return dump


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"server.listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (if given) and the environment into validated settings."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"settings file {path} cannot be read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"settings file {path} is not valid TOML: {err}") from None
    for name, value in env.items():
        if (not name.startswith(ENV_PREFIX) or name in _CLI_ONLY_ENV
                or name.startswith(ENV_PREFIX + "TEST_")):
            continue
        dotted = name[len(ENV_PREFIX):].lower()
        section, sep, key = dotted.partition("__")
        if sep:
            data.setdefault(section, {})
            if isinstance(data[section], dict):
                data[section][key] = value
        else:
            data[section] = value
    settings: Settings = _build(Settings, data, "")
    _check(settings)
    return settings


# Variables of the CLI client or of the process (CAMRELAY_NO_EXTENSIONS: the pure-Python
# fan-out send path and UDP receive), not of the server's settings.
_CLI_ONLY_ENV = {
    "CAMRELAY_NO_GSO",  # the fan-out's C send path without UDP GSO (read at import)
    "CAMRELAY_NO_EXTENSIONS",
    "CAMRELAY_CONFIG", "CAMRELAY_DEBUG", "CAMRELAY_URL", "CAMRELAY_TOKEN", "CAMRELAY_CAMERA_PASSWORD",
    "CAMRELAY_PASSWORD", "CAMRELAY_FEDERATION_CREDENTIAL", "CAMRELAY_CA_FILE", "CAMRELAY_TEST_NETNS", "CAMRELAY_SKIP_SETUP",
    "CAMRELAY_TEST_POSTGRES_URL", "CAMRELAY_TEST_REDIS_URL",
}


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'settings'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where + '.' if where else ''}{unknown[0]}: unknown setting")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            key = f"{where}.{f.name}" if where else f.name
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value in ("", None) and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key)
    if origin is Literal:
        if isinstance(value, str) and value.upper() in args:
            value = value.upper()
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                        "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        try:
            number = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"{key}: must not be negative, got {value!r}")
        return number
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value).expanduser()
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type")  # pragma: no cover - programming error


def _check(settings: Settings) -> None:
    server = settings.server
    host, _ = split_listen(server.listen)
    if (server.tls_cert is None) != (server.tls_key is None):
        raise ConfigError("server.tls_cert and server.tls_key: give both or neither")
    for tls in (server.tls_cert, server.tls_key):
        if tls is not None and not tls.is_file():
            raise ConfigError(f"server.tls: {tls} does not exist")
    if server.tls_cert is None and not is_loopback(host) and not server.allow_plain_http:
        raise ConfigError(
            f"server.listen: {server.listen} is not a loopback address and no TLS certificate is "
            "configured; bearer tokens must not cross the network in clear. Set server.tls_cert "
            "and server.tls_key, or server.allow_plain_http = true on a trusted network"
        )
    if settings.database_url and not settings.database_url.startswith(
        ("sqlite+aiosqlite://", "postgresql+asyncpg://")
    ):
        raise ConfigError(
            "database_url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    _check_cluster(settings)
    for net in server.metrics_addresses:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"server.metrics_addresses: {net!r} is not an address") from None
    for role in settings.access.emergency_roles:
        if role not in tuple(Role):
            raise ConfigError(f"access.emergency_roles: {role!r} is not a role "
                              f"({', '.join(Role)})")
    access = settings.access
    if not 0 < access.emergency_hours <= access.emergency_max_hours:
        raise ConfigError("access.emergency_hours: must be above 0 and at most "
                          "access.emergency_max_hours")
    if settings.redis_url:  # revocations reach every node through Redis at once
        if access.watch_seconds <= 0 or access.watch_seconds > 10:
            raise ConfigError("access.watch_seconds: must be above 0 and at most 10 in a "
                              "cluster (the store poll is the fallback while Redis is down)")
    elif access.watch_seconds <= 0 or access.watch_seconds > 1:
        raise ConfigError("access.watch_seconds: must be above 0 and at most 1 (revocation "
                          "must cut live views within a second)")
    if not 0 <= settings.relay.join_wait_seconds <= 5:
        raise ConfigError("relay.join_wait_seconds: must be between 0 and 5")
    if not 0 <= settings.relay.keyframe_request_wait_seconds <= 5:
        raise ConfigError("relay.keyframe_request_wait_seconds: must be between 0 and 5")
    if access.heartbeat_seconds <= 0:
        raise ConfigError("access.heartbeat_seconds: must be above 0")
    if not settings.catalog.categories:
        raise ConfigError("catalog.categories: must not be empty")
    _check_health(settings)
    _check_alarms(settings)
    fed = settings.federation
    if fed.sync_seconds < 1 or fed.retry_max_seconds < 1 or fed.timeout <= 0:
        raise ConfigError("federation: sync_seconds and retry_max_seconds must be at least 1, "
                          "timeout above 0")


def _check_alarms(settings: Settings) -> None:
    for i, hook in enumerate(settings.alarms.webhooks):
        where = f"alarms.webhooks[{i}]"
        if not hook.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url: must start with http:// or https://")
        if (hook.secret is None) == (hook.secret_env is None):
            raise ConfigError(f"{where}: give secret or secret_env (one of them)")
        if hook.timeout <= 0:
            raise ConfigError(f"{where}.timeout: must be above 0")
    if settings.alarms.webhook_queue < 1:
        raise ConfigError("alarms.webhook_queue: must be at least 1")


REDIS_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://")


def _check_cluster(settings: Settings) -> None:
    cluster = settings.cluster
    if settings.redis_url and not settings.redis_url.startswith(REDIS_SCHEMES):
        raise ConfigError("redis_url: must start with " + ", ".join(REDIS_SCHEMES))
    if cluster.public_url and not cluster.public_url.startswith(("http://", "https://")):
        raise ConfigError("cluster.public_url: must start with http:// or https://")
    if cluster.lease_seconds < 1:
        raise ConfigError("cluster.lease_seconds: must be at least 1")
    if not 0 < cluster.heartbeat_seconds <= cluster.lease_seconds:
        raise ConfigError("cluster.heartbeat_seconds: must be above 0 and at most "
                          "cluster.lease_seconds")
    if cluster.ticket_seconds <= 0:
        raise ConfigError("cluster.ticket_seconds: must be above 0")
    host = settings.server.host
    if settings.redis_url and not cluster.public_url and host in ("0.0.0.0", "::", ""):
        raise ConfigError("cluster.public_url: required with redis_url when server.listen is "
                          f"a wildcard address ({settings.server.listen}): other nodes send "
                          "viewers there")

def _check_health(settings: Settings) -> None:
    health = settings.health
    if health.period_seconds < 10:
        raise ConfigError("health.period_seconds: must be at least 10")
    if health.concurrency < 1:
        raise ConfigError("health.concurrency: must be at least 1")
    if health.probe_timeout <= 0 or health.probe_timeout >= health.period_seconds:
        raise ConfigError("health.probe_timeout: must be above 0 and below health.period_seconds")
    if not 0 <= health.probe_nice <= 19:
        raise ConfigError("health.probe_nice: must be between 0 and 19")
    if health.drill_every_hours < 0:
        raise ConfigError("health.drill_every_hours: must be 0 (no scheduled drills) or more")
    if health.drill_keep_days < 1:
        raise ConfigError("health.drill_keep_days: must be at least 1")
    if not 16 <= health.thumbnail_width <= 640:
        raise ConfigError("health.thumbnail_width: must be between 16 and 640")
    if health.onvif_status_timeout <= 0 or health.onvif_status_timeout >= health.period_seconds:
        raise ConfigError("health.onvif_status_timeout: must be above 0 and below "
                          "health.period_seconds")
    if health.clock_drift_seconds < 0:
        raise ConfigError("health.clock_drift_seconds: must be 0 (not judged) or more")
    if health.onvif_termination_seconds < 2:
        raise ConfigError("health.onvif_termination_seconds: must be at least 2")
    if health.onvif_pull_timeout < 1:
        raise ConfigError("health.onvif_pull_timeout: must be at least 1")
    if health.onvif_message_limit < 1 or health.onvif_concurrency < 1:
        raise ConfigError("health.onvif_message_limit and health.onvif_concurrency: must be "
                          "at least 1")
    if not 0 < health.onvif_retry_min_seconds <= health.onvif_retry_max_seconds:
        raise ConfigError("health.onvif_retry_min_seconds: must be above 0 and at most "
                          "health.onvif_retry_max_seconds")
    if health.onvif_reconcile_seconds < 1:
        raise ConfigError("health.onvif_reconcile_seconds: must be at least 1")
    if health.diagnosis.frozen_samples < 2:
        raise ConfigError("health.diagnosis.frozen_samples: must be at least 2")
    for category, changes in health.diagnosis.categories.items():
        where = f"health.diagnosis.categories.{category}"
        if category not in settings.catalog.categories:
            raise ConfigError(f"{where}: {category!r} is not in catalog.categories")
        for name in changes:
            if name not in THRESHOLD_NAMES:
                raise ConfigError(f"{where}.{name}: unknown threshold")
