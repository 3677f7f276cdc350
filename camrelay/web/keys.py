"""Every key of the application's state (and the request's body), in one place: what the composition root
(:mod:`camrelay.app`) hands to the web layer and the routes read.

The services themselves know nothing of aiohttp; only this module names them as keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from camrelay.access.accounts import Accounts
from camrelay.access.authlog import AuthFailures
from camrelay.access.gate import Gate
from camrelay.access.journal import Journal
from camrelay.access.lockout import Lockout
from camrelay.access.policy import Policy
from camrelay.access.views import Views
from camrelay.catalog.service import Catalog
from camrelay.events import EventBus
from camrelay.federation.sync import Federation
from camrelay.health.alarms import Alarms
from camrelay.metrics import Metrics
from camrelay.placement import Placement
from camrelay.relay.hub import Hub, SourceResolver, SourceSpec
from camrelay.relay.keepwarm import KeepWarmScheduler
from camrelay.relay.media import AccessUnit
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.web.ptz_control import PtzControl
from camrelay.web.sdp import WhepConfig

if TYPE_CHECKING:  # types only: importing them loads aiortc and PyAV (the front need not)
    from camrelay.health.drills import Drills
    from camrelay.health.monitor import HealthMonitor
    from camrelay.health.onvif_events import OnvifEventSupervisor
    from camrelay.health.webhooks import WebhookSender
    from camrelay.relay.ingest import WhipIngest
    from camrelay.relay.probe import ProbeResult
    from camrelay.relay.sinks.webrtc import WebRtcEgress

SETTINGS_KEY = web.AppKey("settings", Settings)
STORE_KEY = web.AppKey("store", Store)
CATALOG_KEY = web.AppKey("catalog", Catalog)
POLICY_KEY = web.AppKey("policy", Policy)
ACCOUNTS_KEY = web.AppKey("accounts", Accounts)
JOURNAL_KEY = web.AppKey("journal", Journal)
GATE_KEY = web.AppKey("gate", Gate)
VIEWS_KEY = web.AppKey("views", Views)
LOCKOUT_KEY = web.AppKey("lockout", Lockout)
AUTH_FAILURES_KEY = web.AppKey("auth_failures", AuthFailures)
EVENTS_KEY = web.AppKey("events", EventBus)
HUB_KEY = web.AppKey("hub", Hub)
RESOLVER_KEY: web.AppKey[SourceResolver] = web.AppKey("resolver")
PROBE_KEY: web.AppKey[Callable[[SourceSpec], Awaitable[ProbeResult]]] = web.AppKey("probe")
SNAPSHOT_JPEG_KEY: web.AppKey[Callable[[Sequence[AccessUnit]], Awaitable[bytes]]] = \
    web.AppKey("snapshot_jpeg")
METRICS_KEY = web.AppKey("metrics", Metrics)
SNAPSHOTS_KEY = web.AppKey("snapshot_cache", dict)
SCHEDULER_KEY = web.AppKey("keep_warm", KeepWarmScheduler)
MONITOR_KEY: web.AppKey[HealthMonitor] = web.AppKey("health_monitor")
ALARMS_KEY = web.AppKey("alarms", Alarms)
ONVIF_EVENTS_KEY: web.AppKey[OnvifEventSupervisor] = web.AppKey("onvif_events")
WEBHOOKS_KEY: web.AppKey[WebhookSender] = web.AppKey("alarm_webhooks")
DRILLS_KEY: web.AppKey[Drills] = web.AppKey("drills")
WEBRTC_KEY: web.AppKey[WebRtcEgress] = web.AppKey("camrelay_webrtc")
WHIP_KEY: web.AppKey[WhipIngest] = web.AppKey("camrelay_whip")
WHEP_CONFIG_KEY = web.AppKey("camrelay_whep_config", WhepConfig)
PTZ_KEY = web.AppKey("ptz", PtzControl)
PUBLIC_KEY = web.AppKey("public_routes", set)  # (METHOD, canonical path) open without a token
OPENAPI_KEY = web.AppKey("openapi", dict)
APIS_KEY = web.AppKey("apis", list)
FEDERATION_KEY = web.AppKey("federation", Federation)
PLACEMENT_KEY: web.AppKey[Placement] = web.AppKey("placement")  # several nodes (redis_url)

BODY_KEY: web.RequestKey[Any] = web.RequestKey("body", object)
