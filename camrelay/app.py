"""The composition root: the one place that builds the services and wires them together.

:func:`build` makes, on an open store, the catalogue, accounts, journal, policy, the gate
(views), lockout, the event bus, the catalogue → source resolver, the hub with its source
table, the WebRTC egress, the metrics, the keep-warm scheduler, the health
scheduler and the ONVIF event subscriptions; :func:`create_app`
hands them to the web layer (:mod:`camrelay.web.app`), which declares routes only.
``camrelay serve`` (:mod:`camrelay.server`), the worker processes
(:mod:`camrelay.cluster.worker`) and the tests call :func:`create_app`.
"""

from __future__ import annotations

from aiohttp import web

from camrelay.access.accounts import Accounts
from camrelay.access.authlog import AuthFailures
from camrelay.access.journal import Journal, load_node_id
from camrelay.access.lockout import Lockout
from camrelay.access.policy import Policy
from camrelay.access.seats import LocalSeats, Seats
from camrelay.access.views import Views
from camrelay.catalog.keepwarm import KeepWarmWindows
from camrelay.catalog.service import Catalog
from camrelay.errors import NoStream, SourceUnavailable
from camrelay.events import Event, EventBus, stream_state_publisher
from camrelay.federation.links import Links
from camrelay.federation.sync import Federation
from camrelay.fields import utcnow
from camrelay.health.alarms import Alarm, Alarms, alarm_json
from camrelay.health.history import Verdict
from camrelay.health.monitor import HealthMonitor
from camrelay.health.onvif_events import OnvifEventSupervisor
from camrelay.health.webhooks import WebhookSender
from camrelay.metrics import Metrics
from camrelay.onvif.models import DeviceTarget
from camrelay.ownership import Ownership
from camrelay.relay.hub import Hub, SourceResolver, SourceSpec, TranscodeSettings
from camrelay.relay.ingest import WhipIngest
from camrelay.relay.keepwarm import KeepWarmScheduler
from camrelay.relay.media import WHIP_SCHEME, StreamKey
from camrelay.relay.probe import probe
from camrelay.relay.sinks.snapshot import snapshot_jpeg
from camrelay.relay.sinks.webrtc import WebRtcConfig, WebRtcEgress
from camrelay.relay.sources.registry import default_sources
from camrelay.relay.sources.whip import Feeds
from camrelay.services import Services
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.web.app import application
from camrelay.web.devices import CameraKeyframes, catalogue_streams, device_target


def make_resolver(catalog: Catalog, settings: Settings) -> SourceResolver:
    """StreamKey → SourceSpec from the catalogue (credentials opened only here).

    A camera imported from a lower platform (``link_id``) is pulled from that platform
    over WHEP: ``whep+<link url>/whep/<its id there>`` with the link's federation
    credential as the bearer token, both read from the link now (so a link's new address
    or credential applies to the next pull, and the credential is stored once)."""
    links = Links(catalog)

    async def resolve(key: StreamKey) -> SourceSpec:
        camera, password = await catalog.camera_and_password(key.camera_id)
        if not camera.active_at(utcnow()):
            raise SourceUnavailable(f"camera {camera.id} is disabled or outside its validity "
                                    "window", reason="disabled", retry_after=60)
        if camera.link_id is not None and camera.remote_id is not None:
            base, credential = await links.endpoint(camera.link_id)
            return SourceSpec(url=f"whep+{base}/whep/{camera.remote_id}", password=credential,
                              connect_timeout=settings.relay.connect_timeout,
                              read_timeout=settings.relay.read_timeout)
        url = camera.sub_url if key.variant == "sub" and camera.sub_url else camera.main_url
        if not url:
            raise NoStream(f"camera {camera.id} has no stream address (main_url); a "
                           "technician sets one with camrelay camera update")
        if url == WHIP_SCHEME:  # a field camera: its publisher's feed, by camera id
            return SourceSpec(url=f"{WHIP_SCHEME}{camera.id}",
                              connect_timeout=settings.relay.connect_timeout,
                              read_timeout=settings.relay.read_timeout)
        username = camera.username
        transcode = None
        if camera.transcode_width or camera.transcode_height or camera.transcode_bitrate:
            transcode = TranscodeSettings(width=camera.transcode_width,
                                          height=camera.transcode_height,
                                          bitrate=camera.transcode_bitrate)
        return SourceSpec(url=url, username=username, password=password,
                          transport="udp" if camera.transport == "udp" else "tcp",
                          connect_timeout=settings.relay.connect_timeout,
                          read_timeout=settings.relay.read_timeout, transcode=transcode,
                          client=settings.relay.rtsp_client)

    return resolve


def wire_alarms(settings: Settings, store: Store, bus: EventBus, health: HealthMonitor
                ) -> tuple[Alarms, WebhookSender]:
    """Alarms from the health checks, pushed to the routed units' channels and webhooks."""
    config = settings.alarms
    alarms = Alarms(store, route_to_parents=config.route_to_parents,
                    reopen_seconds=config.reopen_seconds)
    webhooks = WebhookSender(config.webhooks, config.webhook_queue)

    def push(action: str, alarm: Alarm) -> None:
        data = alarm_json(alarm)
        # to the users of the routed units only (not by camera: a maintenance unit may
        # not list the camera it maintains)
        bus.publish(Event(f"alarm.{action}", data, unit_ids=alarm.unit_ids))
        webhooks.offer(f"alarm.{action}", data)

    alarms.listeners.append(push)
    if config.enabled:
        health.observers.append(alarms.observe)

        async def prune() -> None:
            await alarms.prune(config.history_days)

        health.after_period.append(prune)
    return alarms, webhooks


def build(settings: Settings, store: Store, *, worker: Ownership | None = None) -> Services:
    """The services of one process on an open store.

    ``worker``: this is worker process ``worker.index`` of ``worker.count`` behind the
    front (``camrelay.cluster``): it keeps only the cameras it owns warm and writes its
    heartbeats as node ``<node id>-w<index>``."""
    node = load_node_id(settings.data_dir)
    if worker is not None:
        node += worker.node_suffix
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    accounts = Accounts(store)
    access = settings.access
    journal = Journal(settings, store)
    policy = Policy(catalog, visibility=settings.catalog.visibility, config=access,
                    journal=journal)
    cluster = None
    if settings.redis_url:  # several nodes: redis-py is imported only then
        from camrelay.cluster.node import ClusterNode

        cluster = ClusterNode(settings, settings.cluster.node_id or load_node_id(
            settings.data_dir), "main" if worker is None else f"w{worker.index}",
            viewers=lambda: len(egress))
    seats: Seats = cluster.seats if cluster is not None else LocalSeats(settings.limits)
    views = Views(policy, accounts, journal, node=node, watch_seconds=access.watch_seconds,
                  heartbeat_seconds=access.heartbeat_seconds, seats=seats)
    bus = EventBus()
    federation = Federation(catalog, journal, settings.federation)
    views.observers.append(federation.observe_view)
    # upper platforms sync again when the shared catalogue may have changed
    catalog.change_watchers.append(lambda: bus.publish(Event(
        "catalog.changed", {}, roles=frozenset({"federation"}))))
    catalog.status_watchers.append(lambda camera_id, status: bus.publish(Event(
        "camera.status", {"camera_id": camera_id, "status": status.value},
        camera_id=camera_id)))
    resolver = make_resolver(catalog, settings)
    feeds = Feeds()
    webrtc = WebRtcConfig.from_settings(settings.relay)
    hub = Hub(resolver, default_sources(feeds, webrtc),
              linger=settings.relay.linger_seconds,
              connect_timeout=settings.relay.connect_timeout,
              admit=cluster.admit if cluster is not None else None,
              keyframes=CameraKeyframes(catalogue_streams(catalog)),
              keyframe_wait=settings.relay.keyframe_request_wait_seconds)
    metrics = Metrics()
    egress = WebRtcEgress(hub, webrtc, observe_first_media=metrics.observe_first_media)
    if cluster is not None:  # leases fence the hub; events and revocations cross nodes
        cluster.attach(hub, bus, views)
    metrics.watch_relay(hub, egress)
    hub.watch(stream_state_publisher(bus))
    owns = worker.owns if worker is not None else None

    async def target_for(camera_id: int) -> DeviceTarget:
        return await device_target(catalog, await catalog.get_camera(camera_id))

    health = HealthMonitor(store, hub, resolver, settings.health, owns=owns,
                           target_for=target_for)

    def publish_status(camera_id: int, verdict: Verdict) -> None:
        bus.publish(Event("camera.status", {"camera_id": camera_id, "status": verdict.status,
                                            "reason": verdict.reason}, camera_id=camera_id))

    health.listeners.append(publish_status)
    health.listeners.append(lambda camera_id, verdict: catalog.changed())
    alarms, webhooks = wire_alarms(settings, store, bus, health)
    onvif_events = None
    if settings.health.onvif_events and settings.alarms.enabled:
        onvif_events = OnvifEventSupervisor(store, alarms, target_for, settings.health,
                                            owns=owns)
    return Services(
        settings=settings, store=store, catalog=catalog, accounts=accounts, journal=journal,
        policy=policy, views=views, auth_failures=AuthFailures(journal),
        lockout=Lockout(access.lockout, shared=None if cluster is None
                        else cluster.lockout_counters()), bus=bus, resolver=resolver, hub=hub,
        probe=probe, snapshot_jpeg=snapshot_jpeg, egress=egress,
        ingest=WhipIngest(feeds, hub, webrtc), metrics=metrics,
        keep_warm=KeepWarmScheduler(KeepWarmWindows(store), hub, owns=owns,
                                    claim=cluster.may_warm if cluster is not None else None,
                                    claim_interval=None if cluster is None
                                    else settings.cluster.lease_seconds),
        health=health, alarms=alarms, webhooks=webhooks, federation=federation, owns=owns,
        placement=cluster, onvif_events=onvif_events)


def create_app(settings: Settings, store: Store, *, worker: Ownership | None = None
               ) -> web.Application:
    """An application on an open store; the caller owns the store's lifetime.

    ``worker``: this app is worker process ``worker.index`` of ``worker.count`` behind the
    front (``camrelay.cluster``): it trusts the front's client address on its unix
    socket, serves only the cameras it owns, keeps only those warm and writes its
    heartbeats as node ``<node id>-w<index>``."""
    return application(build(settings, store, worker=worker))
