"""What the composition root (:mod:`camrelay.app`) builds and hands to the web layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from camrelay.access.accounts import Accounts
from camrelay.access.authlog import AuthFailures
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

if TYPE_CHECKING:  # types only: importing them loads aiortc and PyAV
    from camrelay.health.monitor import HealthMonitor
    from camrelay.health.onvif_events import OnvifEventSupervisor
    from camrelay.health.webhooks import WebhookSender
    from camrelay.relay.ingest import WhipIngest
    from camrelay.relay.probe import ProbeResult
    from camrelay.relay.sinks.webrtc import WebRtcEgress


@dataclass(frozen=True, slots=True)
class Services:
    """One process's services on an open store (the caller owns the store's lifetime).

    ``owns``: in worker process K of N, whether it owns a camera (None: one process)."""

    settings: Settings
    store: Store
    catalog: Catalog
    accounts: Accounts
    journal: Journal
    policy: Policy
    views: Views  # also the gate
    auth_failures: AuthFailures
    lockout: Lockout
    bus: EventBus
    resolver: SourceResolver  # catalogue -> source, credentials opened only here
    hub: Hub
    probe: Callable[[SourceSpec], Awaitable[ProbeResult]]  # opens the camera's stream
    snapshot_jpeg: Callable[[Sequence[AccessUnit]], Awaitable[bytes]]
    egress: WebRtcEgress
    ingest: WhipIngest  # field devices publishing over WHIP
    metrics: Metrics
    keep_warm: KeepWarmScheduler
    health: HealthMonitor  # runs when health.enabled
    alarms: Alarms  # raised by the health checks when alarms.enabled
    webhooks: WebhookSender  # alarms POSTed to [[alarms.webhooks]]
    federation: Federation  # links to lower platforms (camrelay.federation)
    owns: Callable[[int], bool] | None = None
    onvif_events: OnvifEventSupervisor | None = None  # health.onvif_events and alarms on
    placement: Placement | None = None  # several nodes (redis_url): camrelay.cluster.node
