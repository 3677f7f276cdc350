"""The upper side: keep each link's import current, and tell the lower side who watches.

One task per link: open the lower side's live channel, then sync fully (so no change
between the two is missed), then sync again ``DEBOUNCE`` seconds after each
``catalog.changed`` (at once after a ``federation.push``), when a push ends, and every
``federation.sync_seconds``.  A channel that ends or fails marks the link stale and in
error (its import stays: the last good copy); the task retries, 1 s doubling to
``federation.retry_max_seconds``, and the next good sync clears both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import delete, select, update

from camrelay.access.journal import Journal, JournalEvent
from camrelay.access.views import LiveView
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.errors import CamrelayError
from camrelay.federation.links import Link, Links, remove_units
from camrelay.fields import parse_datetime, utcnow
from camrelay.settings import FederationSettings
from camrelay.store import schema
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

DEBOUNCE = 0.2  # seconds: a burst of changes down there becomes one sync
_units = schema.units
_cams = schema.cameras
_links = schema.federation_links


class LinkRefused(Exception):
    """The lower platform refused the credential (revoked, unknown)."""


@dataclass(frozen=True, slots=True)
class ViewReport:
    """Who watches an imported camera, as told to the platform it comes from."""

    link_id: int
    remote_id: int
    event: str  # open, close
    ref: str
    user: str
    unit: str
    purpose: str
    platform: str | None  # where the viewer sits, for a report passed on down a chain
    audio: str | None = None  # on close: the codec the viewer was sent the audio in


class Federation:
    def __init__(self, catalog: Catalog, journal: Journal, settings: FederationSettings
                 ) -> None:
        self.catalog = catalog
        self.links = Links(catalog)
        self.journal = journal
        self.settings = settings
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._reports: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._kick: dict[int, asyncio.Event] = {}

    # ---- life ------------------------------------------------------------------------

    async def start(self) -> None:
        ssl_context: ssl.SSLContext | bool = True
        if self.settings.ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=str(self.settings.ca_file))
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context))
        for link in await self.links.list():
            self.follow(link.id)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            await stop_task(task)
        self._tasks.clear()
        for task in list(self._reports):
            await stop_task(task)
        if self._session is not None:
            await self._session.close()

    def follow(self, link_id: int) -> None:
        if link_id in self._tasks or self._session is None:
            return
        self._kick[link_id] = asyncio.Event()
        self._tasks[link_id] = asyncio.create_task(self._run(link_id),
                                                   name=f"federation link {link_id}")

    async def forget(self, link_id: int) -> None:
        await stop_task(self._tasks.pop(link_id, None))
        self._kick.pop(link_id, None)

    # ---- the channel -------------------------------------------------------------------

    async def _run(self, link_id: int) -> None:
        backoff = 1.0
        while True:
            synced: list[bool] = []
            try:
                await self._follow_channel(link_id, synced)
                problem = "the lower platform closed its live channel"
            except asyncio.CancelledError:
                raise
            except LinkRefused as err:
                problem = f"the lower platform refused the credential: {err}"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError,
                    CamrelayError) as err:
                problem = f"cannot reach the lower platform: {type(err).__name__}: {err}"
            log.warning("[link %d] %s; retrying in %.0f s (its cameras are kept, stale)",
                        link_id, problem, backoff)
            try:
                await self.links.set_state(link_id, "error", error=problem[:500], stale=True)
                self.catalog.changed()  # a chain above sees the stale mark too
            except CamrelayError:
                return  # the link was removed
            if synced:  # it worked for a while: start again at once
                backoff = 1.0
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.retry_max_seconds)

    async def _follow_channel(self, link_id: int, synced: list[bool]) -> None:
        assert self._session is not None
        base, secret = await self.links.endpoint(link_id)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.timeout,
                                        sock_read=None)
        async with self._session.get(f"{base}/api/v1/events", timeout=timeout,
                                     headers=_auth(secret)) as resp:
            if resp.status in (401, 403):
                raise LinkRefused(f"{resp.status} {await _detail(resp)}")
            if resp.status != 200:
                raise ValueError(f"the live channel answered {resp.status}")
            await self.sync(link_id)
            synced.append(True)
            await self._pump(link_id, resp)

    async def _pump(self, link_id: int, resp: aiohttp.ClientResponse) -> None:
        loop = asyncio.get_running_loop()
        idle_limit = 2 * 15.0 + self.settings.timeout  # keep-alives every 15 s
        last_data = loop.time()
        next_sync = loop.time() + self.settings.sync_seconds
        pending: float | None = None
        event_type = ""
        reader = asyncio.ensure_future(resp.content.readline())
        try:
            while True:
                wake = min(next_sync, pending if pending is not None else next_sync,
                           last_data + idle_limit, await self._push_end(link_id, loop))
                done, _ = await asyncio.wait({reader}, timeout=max(0.0, wake - loop.time()))
                if reader in done:
                    line = reader.result()
                    if not line:
                        return
                    last_data = loop.time()
                    reader = asyncio.ensure_future(resp.content.readline())
                    text = line.decode("utf-8", "replace").rstrip("\r\n")
                    if text.startswith("event:"):
                        event_type = text[6:].strip()
                    elif text.startswith("data:"):
                        data = json.loads(text[5:])
                        if event_type == "token.revoked":
                            raise LinkRefused(str(data.get("reason")))
                        if event_type == "federation.push":
                            await self.sync(link_id)
                            await self._journal_push(link_id, data)
                            next_sync = loop.time() + self.settings.sync_seconds
                        elif event_type == "catalog.changed" and pending is None:
                            pending = loop.time() + DEBOUNCE
                    continue
                now = loop.time()
                if now - last_data >= idle_limit:
                    raise TimeoutError("nothing on the live channel, not even a keep-alive")
                await self.sync(link_id)
                pending = None
                next_sync = now + self.settings.sync_seconds
        finally:
            reader.cancel()

    async def _push_end(self, link_id: int, loop: asyncio.AbstractEventLoop) -> float:
        """Loop time just after the earliest push of this link ends (or far away)."""
        async with self.catalog.store.connect() as conn:
            until: datetime | None = (await conn.execute(select(_cams.c.pushed_until).where(
                _cams.c.link_id == link_id).where(_cams.c.pushed_until.is_not(None)).order_by(
                _cams.c.pushed_until).limit(1))).scalar_one_or_none()
        if until is None:
            return float(loop.time() + 3600)
        return float(loop.time() + max(0.0, (until - utcnow()).total_seconds()) + 0.5)

    # ---- a sync --------------------------------------------------------------------------

    async def sync(self, link_id: int) -> None:
        """Fetch the shared catalogue and apply it; raises if it cannot be fetched."""
        assert self._session is not None
        base, secret = await self.links.endpoint(link_id)
        async with asyncio.timeout(self.settings.timeout), self._session.get(
                f"{base}/api/v1/federation/catalogue", headers=_auth(secret)) as resp:
            if resp.status in (401, 403):
                raise LinkRefused(f"{resp.status} {await _detail(resp)}")
            if resp.status != 200:
                raise ValueError(f"the shared catalogue answered {resp.status}")
            body = await resp.json()
        await self.apply(await self.links.get(link_id), body)

    async def apply(self, link: Link, body: Mapping[str, Any]) -> None:
        """Make the link's import what the lower side shares now."""
        remote_units = [u for u in body.get("units", []) if isinstance(u, dict)]
        remote_cams = [c for c in body.get("cameras", []) if isinstance(c, dict)]
        conflicts: list[str] = []
        async with self.catalog.store.begin() as conn:
            mine = {r.code: r.id for r in await conn.execute(select(
                _units.c.code, _units.c.id).where(_units.c.link_id == link.id))}
            taken = {r.code for r in await conn.execute(select(_units.c.code).where(
                _units.c.code.in_([u["code"] for u in remote_units])))} - set(mine)
            by_code = {u["code"]: u for u in remote_units if u["code"] not in taken}
            conflicts += sorted(taken)
            local: dict[str, int] = {}
            now = utcnow()

            async def place(code: str, seen: frozenset[str] = frozenset()) -> int:
                if code in local:
                    return local[code]
                unit = by_code[code]
                parent = unit.get("parent")
                parent_id = link.attach_unit_id
                if isinstance(parent, str) and parent in by_code and parent not in seen:
                    parent_id = await place(parent, seen | {code})
                values = {"name": str(unit["name"])[:200], "parent_id": parent_id,
                          "level": unit["level"] if unit["level"] in UnitLevel.__members__.values()
                          else UnitLevel.DEPARTMENT.value, "updated_at": now}
                if code in mine:
                    await conn.execute(update(_units).where(_units.c.id == mine[code])
                                       .values(**values))
                    local[code] = mine[code]
                else:
                    result = await conn.execute(_units.insert().values(
                        code=code, link_id=link.id, created_at=now, **values
                    ).returning(_units.c.id))
                    local[code] = int(result.scalar_one())
                return local[code]

            for code in by_code:
                await place(code)
            existing = {r.remote_id: r.id for r in await conn.execute(select(
                _cams.c.remote_id, _cams.c.id).where(_cams.c.link_id == link.id))}
            for cam in remote_cams:
                values = _camera_values(link, cam, local.get(str(cam.get("unit"))), now)
                if values is None:
                    continue
                if cam["id"] in existing:
                    await conn.execute(update(_cams).where(_cams.c.id == existing[cam["id"]])
                                       .values(**values))
                else:
                    await conn.execute(_cams.insert().values(
                        link_id=link.id, remote_id=cam["id"], created_at=now, transport="tcp",
                        **values))
            gone = set(existing) - {c.get("id") for c in remote_cams}
            if gone:
                await conn.execute(delete(_cams).where(_cams.c.link_id == link.id).where(
                    _cams.c.remote_id.in_(gone)))
            await remove_units(conn, {i for c, i in mine.items() if c not in local})
            await conn.execute(update(_links).where(_links.c.id == link.id).values(
                state="connected", stale=False, last_sync_at=now,
                remote_platform=str(body.get("platform") or "")[:200] or None,
                error=None if not conflicts else
                f"unit codes already used here, not imported: {', '.join(conflicts)[:400]}"))
        log.info("[link %d] synced: %d units, %d cameras", link.id, len(local), len(remote_cams))
        self.catalog.changed()

    async def _journal_push(self, link_id: int, data: Mapping[str, Any]) -> None:
        link = await self.links.get(link_id)
        async with self.catalog.store.connect() as conn:
            local = [r.id for r in await conn.execute(select(_cams.c.id).where(
                _cams.c.link_id == link_id).where(_cams.c.remote_id.in_(
                    [int(c) for c in data.get("cameras", []) if isinstance(c, int)])))]
        await self.journal.append(JournalEvent(
            kind="admin", action="federation.push_received",
            username=f"{data.get('by')}@{link.name}"[:64], unit_code=link.attach_unit,
            camera_id=local[0] if local else None, result="ok",
            reason=str(data.get("reason"))[:500],
            detail={"link": link.name, "cameras": local, "until": data.get("until"),
                    "pushed_by_unit": str(data.get("unit"))[:64]}))

    # ---- who watches -----------------------------------------------------------------------

    def observe_view(self, view: LiveView, what: str) -> None:
        """A views observer: an imported camera's view is reported to its platform."""
        camera = view.camera
        if camera.link_id is None or camera.remote_id is None:
            return
        self.report(ViewReport(link_id=camera.link_id, remote_id=camera.remote_id, event=what,
                               ref=view.view_id, user=view.user.username,
                               unit=view.user.unit_code, purpose=view.purpose, platform=None,
                               audio=view.audio if what == "close" else None))

    def report(self, report: ViewReport) -> None:
        if self._session is None:
            return
        task = asyncio.create_task(self._report(report), name="federation view report")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, report: ViewReport) -> None:
        assert self._session is not None
        body = {"camera_id": report.remote_id, "event": report.event, "ref": report.ref,
                "user": report.user, "unit": report.unit, "purpose": report.purpose}
        if report.platform is not None:
            body["platform"] = report.platform
        if report.audio is not None:
            body["audio"] = report.audio
        try:
            base, secret = await self.links.endpoint(report.link_id)
            async with asyncio.timeout(self.settings.timeout), self._session.post(
                    f"{base}/api/v1/federation/views", json=body, headers=_auth(secret)
            ) as resp:
                if resp.status >= 300:
                    log.warning("[link %d] the lower platform did not record the view of "
                                "camera %d by %s: %d %s", report.link_id, report.remote_id,
                                report.user, resp.status, await _detail(resp))
        except (aiohttp.ClientError, OSError, TimeoutError, CamrelayError) as err:
            log.warning("[link %d] cannot tell the lower platform who watches camera %d: "
                        "%s: %s", report.link_id, report.remote_id, type(err).__name__, err)


def _camera_values(link: Link, cam: Mapping[str, Any], unit_id: int | None,
                   now: datetime) -> dict[str, Any] | None:
    if not isinstance(cam.get("id"), int) or not isinstance(cam.get("name"), str):
        return None

    def text(name: str, limit: int) -> str | None:
        value = cam.get(name)
        return value[:limit] if isinstance(value, str) else None

    def number(name: str) -> float | None:
        value = cam.get(name)
        return float(value) if isinstance(value, (int, float)) else None

    status = cam.get("status")
    return {
        "external_id": f"{link.name}:{cam.get('external_id')}"[:128],
        "name": cam["name"][:200], "unit_id": unit_id or link.attach_unit_id,
        "category": text("category", 64) or "other", "location": text("location", 200),
        "latitude": number("latitude"), "longitude": number("longitude"),
        "camera_type": text("camera_type", 32) or "fixed", "vendor": text("vendor", 100),
        "model": text("model", 100), "contact_name": text("contact_name", 100),
        "contact_phone": text("contact_phone", 40),
        "status": status if status in ("online", "offline", "fault", "unknown") else "unknown",
        "last_seen_at": parse_datetime(cam.get("last_seen_at"), "last_seen_at"),
        "tags": [t for t in cam.get("tags") or [] if isinstance(t, str)][:32],
        "enabled": bool(cam.get("enabled", True)), "main_url": None, "sub_url": None,
        "pushed_until": parse_datetime(cam.get("pushed_until"), "pushed_until"),
        "updated_at": now,
    }


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _detail(resp: aiohttp.ClientResponse) -> str:
    try:
        body = await resp.json(content_type=None)
        return str(body.get("detail", ""))[:200] if isinstance(body, dict) else ""
    except (ValueError, aiohttp.ClientError):
        return ""
