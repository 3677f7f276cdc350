"""The web layer over the services that the composition root (:mod:`camrelay.app`) built:
middlewares, application state, routes and their start/stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from camrelay.services import Services
from camrelay.web import (
    api_access,
    api_accounts,
    api_catalog,
    api_cluster,
    api_meta,
    api_screens,
    api_views,
    events,
)
from camrelay.web.api_alarms import setup_alarms
from camrelay.web.api_drills import setup_drills
from camrelay.web.api_federation import setup_federation
from camrelay.web.api_health import setup_health
from camrelay.web.api_keepwarm import setup_keep_warm
from camrelay.web.api_ptz import setup_ptz
from camrelay.web.api_relay import setup_relay
from camrelay.web.keys import (
    ACCOUNTS_KEY,
    ALARMS_KEY,
    APIS_KEY,
    AUTH_FAILURES_KEY,
    CATALOG_KEY,
    EVENTS_KEY,
    FEDERATION_KEY,
    GATE_KEY,
    HUB_KEY,
    JOURNAL_KEY,
    LOCKOUT_KEY,
    METRICS_KEY,
    MONITOR_KEY,
    ONVIF_EVENTS_KEY,
    OPENAPI_KEY,
    PLACEMENT_KEY,
    POLICY_KEY,
    PROBE_KEY,
    PUBLIC_KEY,
    RESOLVER_KEY,
    SCHEDULER_KEY,
    SETTINGS_KEY,
    SNAPSHOT_JPEG_KEY,
    STORE_KEY,
    VIEWS_KEY,
    WEBHOOKS_KEY,
    WEBRTC_KEY,
    WHEP_CONFIG_KEY,
    WHIP_KEY,
)
from camrelay.web.middleware import bearer_auth, front_peer, misdirected_guard, problems, text_only
from camrelay.web.openapi import Api
from camrelay.web.placement import routing, ticket_auth
from camrelay.web.routes import APIS, OWNERS
from camrelay.web.sdp import WhepConfig

log = logging.getLogger(__name__)

CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Pages and their files: no inline script, no third-party origin, no framing, no
    sniffing, no referrer (the console shows catalogue text that units typed in)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    placement = request.app.get(PLACEMENT_KEY)
    csp = CONSOLE_CSP
    if placement is not None:  # a WHEP offer may be sent on to another node (307)
        peers = " ".join(sorted(placement.origins()))
        csp = CONSOLE_CSP.replace("connect-src 'self'", f"connect-src 'self' {peers}")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith(("/api/", "/whep/", "/metrics")):
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Frame-Options", "DENY")


def application(services: Services) -> web.Application:
    """The application over ``services``; in a worker process (``services.owns``) it
    trusts the front's client address on its unix socket and refuses (421) a request
    about a camera another worker owns."""
    middlewares: list[Middleware] = [problems, text_only, bearer_auth]
    owns = services.owns
    if owns is not None:
        def elsewhere(path: str) -> bool:
            camera = OWNERS.camera_of(path)
            return camera is not None and not owns(camera)

        middlewares = [front_peer, problems, text_only, misdirected_guard(elsewhere),
                       bearer_auth]
    placement = services.placement
    if placement is not None:  # several nodes: ticket before bearer, routing after
        at = middlewares.index(bearer_auth)
        middlewares[at:at + 1] = [ticket_auth(placement), bearer_auth, routing(placement)]
    settings = services.settings
    app = web.Application(middlewares=middlewares,
                          client_max_size=settings.server.max_body_bytes)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = services.store
    app[CATALOG_KEY] = services.catalog
    app[ACCOUNTS_KEY] = services.accounts
    app[POLICY_KEY] = services.policy
    app[JOURNAL_KEY] = services.journal
    app[AUTH_FAILURES_KEY] = services.auth_failures
    app[VIEWS_KEY] = services.views
    app[GATE_KEY] = services.views
    app[LOCKOUT_KEY] = services.lockout
    app[EVENTS_KEY] = services.bus
    app[HUB_KEY] = services.hub
    app[RESOLVER_KEY] = services.resolver
    app[PROBE_KEY] = services.probe
    app[SNAPSHOT_JPEG_KEY] = services.snapshot_jpeg
    app[WEBRTC_KEY] = services.egress
    app[WHIP_KEY] = services.ingest
    app[METRICS_KEY] = services.metrics
    app[SCHEDULER_KEY] = services.keep_warm
    app[MONITOR_KEY] = services.health
    app[ALARMS_KEY] = services.alarms
    app[WEBHOOKS_KEY] = services.webhooks
    if services.onvif_events is not None:
        app[ONVIF_EVENTS_KEY] = services.onvif_events
    app[FEDERATION_KEY] = services.federation
    app[WHEP_CONFIG_KEY] = WhepConfig.from_settings(settings)
    app.cleanup_ctx.append(_access_context)
    if placement is not None:
        app[PLACEMENT_KEY] = placement
        app.cleanup_ctx.append(_placement_context)
    bus = services.bus

    async def end_channels(app: web.Application) -> None:
        bus.close()  # before aiohttp waits for the open event streams to finish

    app.on_shutdown.append(end_channels)
    app.on_response_prepare.append(_security_headers)
    for one in (api_meta.api, api_catalog.api, api_accounts.api, api_access.api, events.api,
                api_views.api, api_screens.api, api_cluster.api):
        one.install(app)
    setup_relay(app)  # the hub and the egress, WHEP, metrics
    setup_keep_warm(app)  # after the hub: started after it
    setup_ptz(app)  # PTZ, ONVIF refresh (sets PTZ_KEY)
    setup_alarms(app)  # the webhooks: stopped after the health scheduler
    setup_health(app)  # after the hub: started after it
    setup_drills(app)  # after the health scheduler, whose checks it uses
    setup_federation(app)  # links followed after the hub started (stopped before it)
    api_meta.setup_pages(app)
    app[APIS_KEY] = list(APIS)
    app[PUBLIC_KEY] = {(op.method, op.path) for one in APIS for op in one.operations
                       if op.public}
    app[OPENAPI_KEY] = merged_document(APIS)
    return app


async def _access_context(app: web.Application) -> AsyncIterator[None]:
    """The journal (created, protected, crash-recovered) and the watcher of live views."""
    views = app[VIEWS_KEY]
    await views.start()
    failures = app[AUTH_FAILURES_KEY]
    await failures.start()
    try:
        yield
    finally:
        await failures.stop()  # the last window's counts go to the journal
        await views.stop()
        await app[JOURNAL_KEY].close()


async def _placement_context(app: web.Application) -> AsyncIterator[None]:
    """Membership, leases and their renewal (camrelay.cluster.node) while the app runs."""
    placement = app[PLACEMENT_KEY]
    await placement.start()
    try:
        yield
    finally:
        await placement.stop()


def merged_document(apis: tuple[Api, ...] | list[Api]) -> dict[str, object]:
    merged = Api()
    for one in apis:
        merged.operations.extend(one.operations)
        merged.schemas.update(one.schemas)
    return merged.document()
