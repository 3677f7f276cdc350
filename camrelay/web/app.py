"""The application factory: the only place (with the CLI) that wires the packages together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from camrelay.access.accounts import Accounts
from camrelay.access.authlog import AUTH_FAILURES_KEY, AuthFailures
from camrelay.access.gate import GATE_KEY
from camrelay.access.journal import JOURNAL_KEY, Journal, load_node_id
from camrelay.access.lockout import LOCKOUT_KEY, Lockout
from camrelay.access.policy import Policy
from camrelay.access.views import VIEWS_KEY, Views
from camrelay.catalog.service import Catalog
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.web import api_access, api_accounts, api_catalog, api_ptz, events
from camrelay.web.context import CATALOG_KEY, POLICY_KEY, SETTINGS_KEY, STORE_KEY
from camrelay.web.middleware import (
    ACCOUNTS_KEY,
    PUBLIC_KEY,
    bearer_auth,
    front_peer,
    misdirected_guard,
    problems,
    text_only,
)
from camrelay.web.openapi import Api, Operation

if TYPE_CHECKING:
    from camrelay.cluster.routing import Ownership

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
OPENAPI_KEY = web.AppKey("openapi", dict)
APIS_KEY = web.AppKey("apis", list)

meta = Api()


@meta.route("GET", "/healthz", summary="Liveness and store check", tag="meta", public=True,
            ok={"type": "object", "required": ["status"],
                "properties": {"status": {"type": "string"}}}, errors=())
async def healthz(request: web.Request) -> web.Response:
    async with request.app[STORE_KEY].connect() as conn:
        from sqlalchemy import text

        await conn.execute(text("SELECT 1"))
    return web.json_response({"status": "ok"})


@meta.route("GET", "/api/v1/openapi.json", summary="This document", tag="meta", public=True,
            ok={"type": "object"}, errors=())
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "index.html")


async def player(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "player.html")


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "favicon.svg")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Pages and their files: no inline script, no third-party origin, no framing, no
    sniffing, no referrer (the console shows catalogue text that units typed in)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith(("/api/", "/whep/", "/metrics")):
        headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        headers.setdefault("X-Frame-Options", "DENY")


def create_app(settings: Settings, store: Store, *, worker: Ownership | None = None
               ) -> web.Application:
    """An application on an open store; the caller owns the store's lifetime.

    ``worker``: this app is worker process ``worker.index`` of ``worker.count`` behind the
    front (``camrelay.cluster``): it trusts the front's client address on its unix
    socket, serves only the cameras it owns, keeps only those warm and writes its
    heartbeats as node ``<node id>-w<index>``."""
    middlewares: list[Middleware] = [problems, text_only, bearer_auth]
    node = load_node_id(settings.data_dir)
    if worker is not None:
        from camrelay.cluster.routing import camera_of

        def elsewhere(path: str) -> bool:
            camera = camera_of(path)
            return camera is not None and not worker.owns(camera)

        middlewares = [front_peer, problems, text_only, misdirected_guard(elsewhere),
                       bearer_auth]
        node += worker.node_suffix
    app = web.Application(middlewares=middlewares,
                          client_max_size=settings.server.max_body_bytes)
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store
    app[CATALOG_KEY] = catalog
    accounts = Accounts(store)
    app[ACCOUNTS_KEY] = accounts
    access = settings.access
    journal = Journal(settings, store)
    policy = Policy(catalog, visibility=settings.catalog.visibility, config=access,
                    journal=journal)
    app[POLICY_KEY] = policy
    views = Views(policy, accounts, journal, node=node,
                  watch_seconds=access.watch_seconds,
                  heartbeat_seconds=access.heartbeat_seconds)
    app[JOURNAL_KEY] = journal
    app[AUTH_FAILURES_KEY] = AuthFailures(journal)
    app[VIEWS_KEY] = views
    app[GATE_KEY] = views
    app[LOCKOUT_KEY] = Lockout(access.lockout)
    app.cleanup_ctx.append(_access_context)
    bus = events.EventBus()
    app[events.EVENTS_KEY] = bus
    catalog.status_watchers.append(lambda camera_id, status: bus.publish(events.Event(
        "camera.status", {"camera_id": camera_id, "status": status.value},
        camera_id=camera_id)))

    async def end_channels(app: web.Application) -> None:
        bus.close()  # before aiohttp waits for the open event streams to finish

    app.on_shutdown.append(end_channels)
    app.on_response_prepare.append(_security_headers)

    apis = [meta, api_catalog.api, api_accounts.api, api_access.api, events.api]
    for one in apis:
        one.install(app)
    app[PUBLIC_KEY] = set()
    from camrelay.web.api_relay import setup_relay
    apis.extend(setup_relay(app, settings))
    from camrelay.web.api_keepwarm import setup_keep_warm
    from camrelay.web.api_relay import HUB_KEY

    app[HUB_KEY].watch(events.stream_state_publisher(bus))
    owns = worker.owns if worker is not None else None
    apis.append(setup_keep_warm(app, app[HUB_KEY], owns=owns))  # after the hub: started after it
    apis.append(api_ptz.setup_ptz(app))  # PTZ, ONVIF refresh (sets PTZ_KEY)
    from camrelay.web.api_health import setup_health

    apis.append(setup_health(app, owns=owns))  # after the hub: started after it
    app.router.add_get("/", index)
    app.router.add_get("/player", player)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static", STATIC)
    pages = Api()
    pages.document_route(Operation(
        method="GET", path="/", summary="The console: sign-in and the video wall (HTML)",
        tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
    pages.document_route(Operation(
        method="GET", path="/player", summary="The single-camera player page (HTML)",
        tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
    pages.document_route(Operation(
        method="GET", path="/favicon.ico", summary="The console's icon (SVG)",
        tag="pages", public=True, responses={200: ("SVG picture", None, "image/svg+xml")}))
    apis.append(pages)
    app[APIS_KEY] = apis
    app[PUBLIC_KEY] |= {(op.method, op.path) for one in apis for op in one.operations
                         if op.public}
    app[OPENAPI_KEY] = merged_document(apis)
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


def merged_document(apis: list[Api]) -> dict[str, object]:
    merged = Api()
    for one in apis:
        merged.operations.extend(one.operations)
        merged.schemas.update(one.schemas)
    return merged.document()


async def store_context(settings: Settings) -> AsyncIterator[Store]:  # pragma: no cover
    store = await Store.open(settings)
    try:
        yield store
    finally:
        await store.close()
