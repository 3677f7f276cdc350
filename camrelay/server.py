"""Start-up and shutdown of the server: store, application, listener, signals (one process,
or the front of worker processes: ``camrelay.cluster``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web

from camrelay.access.accounts import Accounts, Role, TokenKind
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.catalog.store import Store
from camrelay.errors import Conflict
from camrelay.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    token: str


async def initialise(store: Store, settings: Settings, *, unit_code: str, unit_name: str,
                     unit_level: UnitLevel, admin: str, password: str) -> FirstAdmin:
    """Create the root unit and the first administrator on an empty store."""
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    accounts = Accounts(store)
    if await catalog.list_units() or await accounts.list_users():
        raise Conflict("the store is already initialised; nothing was changed")
    from camrelay.catalog.models import parse_unit

    fields = parse_unit({"code": unit_code, "name": unit_name, "level": unit_level.value})
    async with store.begin() as conn:
        await catalog.add_unit(fields, conn)
        user = await accounts.add_user(admin, unit_code=unit_code, role=Role.ADMINISTRATOR,
                                       password=password, conn=conn)
        token, _ = await accounts.create_token(user.id, kind=TokenKind.API, name="init",
                                               conn=conn)
    return FirstAdmin(admin, token)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    token: str


async def ensure_demo(store: Store, settings: Settings) -> DemoLogin | None:
    """On an empty store: a demo unit, a demo administrator and a demo camera."""
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    if await catalog.list_units():
        return None
    password = secrets.token_urlsafe(9)
    first = await initialise(store, settings, unit_code="demo", unit_name="Demo command centre",
                             unit_level=UnitLevel.PROVINCE, admin="demo", password=password)
    from camrelay.catalog.models import parse_camera

    await catalog.add_camera(parse_camera(
        {"external_id": "demo-1", "name": "Demo camera (synthetic pattern)", "unit": "demo",
         "category": settings.catalog.categories[0], "location": "camrelay demo",
         "camera_type": "fixed", "main_url": "demo:", "status": "online"},
        categories=settings.catalog.categories, camera_types=settings.catalog.camera_types))
    return DemoLogin("demo", password, first.token)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    server = settings.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(server.tls_cert), str(server.tls_key))
    return context


async def serve(settings: Settings, store: Store, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``): one process, or with ``relay.workers`` >= 2
    the front and its worker processes (``camrelay.cluster``)."""
    from camrelay.cluster import worker_count

    count = worker_count(settings)
    if count >= 2:
        from camrelay.cluster.supervisor import serve_cluster

        await serve_cluster(settings, store, count, ready=ready, stop=stop)
        return
    from camrelay.web.app import create_app

    app = create_app(settings, store)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    context = ssl_context(settings)
    site = web.TCPSite(runner, settings.server.host, settings.server.port, ssl_context=context,
                       reuse_address=True)
    await site.start()
    scheme = "https" if context else "http"
    log.info("camrelay listening on %s://%s:%d", scheme, settings.server.host,
             settings.server.port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("camrelay stopping")
        await runner.cleanup()
