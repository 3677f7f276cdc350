"""Start-up and shutdown of the server: store, application, listener, signals (one process,
or the front of worker processes: ``camrelay.cluster``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import dataclass

from aiohttp import web

from camrelay.access.accounts import Accounts, Role, TokenKind
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import UnitLevel, parse_unit
from camrelay.catalog.service import Catalog
from camrelay.cluster import worker_count
from camrelay.cluster.supervisor import serve_cluster
from camrelay.errors import Conflict
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.tls import ssl_context

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


# The demo's unit tree (code, name, level, parent) and cameras (external id, name, unit,
# category, camera type, main URL, sub URL, status): Chinese names, English in brackets.
DEMO_UNITS = (
    ("330000", "浙江省交通运输厅 (Zhejiang Transport Department)", UnitLevel.PROVINCE, None),
    ("330100", "杭州市交通运输局 (Hangzhou Transport Bureau)", UnitLevel.CITY, "330000"),
    ("330110", "余杭区交通运输局 (Yuhang District Transport Bureau)", UnitLevel.COUNTY,
     "330100"),
)
_HD = "demo:?width=640&height=360&fps=15&gop=1"
_SD = "demo:?width=320&height=180&fps=15&gop=1"
DEMO_CAMERAS = (
    ("demo-1", "G60沪昆高速 K12+300 (G60 Expressway)", "330000", "expressway", "fixed",
     _HD, _SD, "online"),
    ("demo-2", "钱塘江大桥北岸 (Qiantang River Bridge, north)", "330100", "bridge", "dome",
     _HD, _SD, "online"),
    ("demo-3", "良渚收费站 (Liangzhu toll station)", "330110", "expressway", "ptz",
     "demo:?width=480&height=360&fps=15&gop=1", "demo:?width=240&height=180&fps=15&gop=1",
     "online"),
    ("demo-4", "余杭塘河航道 (Yuhang canal)", "330110", "waterway", "fixed", _HD, _SD,
     "online"),
    # a camera that cannot be reached (nothing listens on the discard port), so the
    # console shows an offline tile with its reason
    ("demo-5", "文一西路隧道 (Wenyi Road tunnel)", "330100", "tunnel", "fixed",
     "rtsp://127.0.0.1:9/unreachable", None, "offline"),
)


async def ensure_demo(store: Store, settings: Settings) -> DemoLogin | None:
    """On an empty store: a province → city → county tree, a demo administrator and
    five demo cameras (four synthetic patterns, one unreachable)."""
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    if await catalog.list_units():
        return None
    password = secrets.token_urlsafe(9)
    (root, root_name, level, _), *below = DEMO_UNITS
    first = await initialise(store, settings, unit_code=root, unit_name=root_name,
                             unit_level=level, admin="demo", password=password)
    for code, name, level, parent in below:
        await catalog.add_unit(parse_unit({"code": code, "name": name, "level": level.value,
                                           "parent": parent}))
    for external_id, name, unit, category, kind, main, sub, status in DEMO_CAMERAS:
        if category not in settings.catalog.categories:
            category = settings.catalog.categories[0]
        if kind not in settings.catalog.camera_types:
            kind = settings.catalog.camera_types[0]
        await catalog.add_camera(parse_camera(
            {"external_id": external_id, "name": name, "unit": unit, "category": category,
             "location": "camrelay demo", "camera_type": kind, "main_url": main,
             "sub_url": sub, "status": status},
            categories=settings.catalog.categories, camera_types=settings.catalog.camera_types))
    return DemoLogin("demo", password, first.token)


async def serve(settings: Settings, store: Store, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``): one process, or with ``relay.workers`` >= 2
    the front and its worker processes (``camrelay.cluster``)."""
    count = worker_count(settings)
    if count >= 2:
        await serve_cluster(settings, store, count, ready=ready, stop=stop)
        return
    # Here, not at the top: the front of worker processes (relay.workers >= 2) never
    # builds an app, and camrelay.app loads aiortc, PyAV and numpy (measured: +38 MiB RSS,
    # +0.3 s CPU)
    from camrelay.app import create_app

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
