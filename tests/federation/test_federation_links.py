"""Linked platforms with real camrelay apps on loopback ports: county -> city -> province.

Each platform is a real application (its own SQLite store and journal) served on a
127.0.0.1 port; the upper one follows the lower one's live channel over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from camrelay.access.accounts import Accounts, Role, TokenKind, digest
from camrelay.access.gate import ViewRequest
from camrelay.app import create_app
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.settings import Settings, load_settings
from camrelay.store import Store
from camrelay.web.keys import VIEWS_KEY
from tests.servers import free_port

SECRET_URL = "rtsp://10.9.9.9:554/Streaming/Channels/101"
SECRET_PASSWORD = "s3cret-camera-pw"
WAIT = 10.0  # seconds a condition may take under load (it takes well under one)


class Platform:
    """One camrelay: store, app and a fixed loopback port (so it can come back)."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.name = name
        self.settings: Settings = load_settings(env={
            "CAMRELAY_DATA_DIR": str(tmp / name), "CAMRELAY_HEALTH__ENABLED": "false",
            "CAMRELAY_FEDERATION__RETRY_MAX_SECONDS": "1"})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store: Store | None = None
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.token = ""

    async def open(self, units: list[tuple[str, str, str | None]]) -> None:
        self.store = await Store.open(self.settings)
        catalog = Catalog(self.store, self.settings.catalog.categories,
                          self.settings.catalog.camera_types)
        for code, level, parent in units:
            await catalog.add_unit({"code": code, "name": f"{self.name} {code}",
                                    "level": UnitLevel(level), "parent": parent})
        accounts = Accounts(self.store)
        admin = await accounts.add_user("admin", unit_code=units[0][0],
                                        role=Role.ADMINISTRATOR, password="correct horse 1")
        self.token, _ = await accounts.create_token(admin.id, kind=TokenKind.API)
        await self.start()

    async def start(self) -> None:
        assert self.store is not None
        self.app = create_app(self.settings, self.store)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def close(self) -> None:
        await self.stop()
        if self.store is not None:
            await self.store.close()

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   status: int = 200) -> Any:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.url + path, json=body,
                headers={"Authorization": f"Bearer {token or self.token}"}) as resp:
            text = await resp.text()
            assert resp.status == status, (method, path, resp.status, text)
            return json.loads(text) if text else None

    async def raw(self, path: str, token: str) -> str:
        async with aiohttp.ClientSession() as http, http.get(
                self.url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
            return await resp.text()

    async def cameras(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.call("GET", "/api/v1/cameras?limit=1000"))[
            "items"]
        return items

    async def link(self) -> dict[str, Any]:
        (one,) = await self.call("GET", "/api/v1/federation/links")
        return dict(one)


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = WAIT) -> float:
    """Seconds until ``check`` holds (polling a remote server's state, not a signal)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
    return loop.time() - start


@pytest.fixture
async def platforms(tmp_path: Path) -> AsyncIterator[Callable[[str], Platform]]:
    made: list[Platform] = []

    def make(name: str) -> Platform:
        made.append(Platform(tmp_path, name))
        return made[-1]

    yield make
    for one in reversed(made):
        await one.close()


async def _camera(p: Platform, unit: str, external_id: str) -> int:
    cam = await p.call("POST", "/api/v1/cameras", {
        "external_id": external_id, "name": f"camera {external_id}", "unit": unit,
        "category": "expressway", "main_url": SECRET_URL, "username": "admin",
        "password": SECRET_PASSWORD}, status=201)
    return int(cam["id"])


def _by_external(cams: list[dict[str, Any]], external_id: str) -> dict[str, Any] | None:
    return next((c for c in cams if c["external_id"] == external_id), None)


async def _link(upper: Platform, lower: Platform, name: str, units: list[str], attach: str
                ) -> str:
    issued = await lower.call("POST", "/api/v1/federation/credentials",
                              {"name": name, "units": units}, status=201)
    await upper.call("POST", "/api/v1/federation/links", {
        "name": lower.name, "url": lower.url, "credential": issued["token"],
        "attach_under": attach}, status=201)
    return str(issued["token"])


async def test_two_levels_share_sync_identity_push_stale_and_revoke(
        platforms: Callable[[str], Platform]) -> None:
    county, city = platforms("county"), platforms("city")
    await county.open([("330110", "county", None), ("33011001", "department", "330110"),
                       ("33011002", "department", "330110")])
    await city.open([("330100", "city", None)])
    shared = await _camera(county, "33011001", "yh-shared-1")
    unshared = await _camera(county, "33011002", "yh-private-1")
    credential = await _link(city, county, "city", ["33011001"], "330100")

    async def imported(external_id: str) -> bool:
        return _by_external(await city.cameras(), external_id) is not None

    await eventually(lambda: imported("county:yh-shared-1"), "the shared camera at the city")
    cams = await city.cameras()
    cam = _by_external(cams, "county:yh-shared-1")
    assert cam is not None and cam["platform"] == "county" and cam["stale"] is False
    assert cam["unit"] == "33011001"
    assert {u["code"]: u["parent"] for u in await city.call("GET", "/api/v1/units")}[
        "33011001"] == "330100"  # the imported unit hangs under attach_under
    assert _by_external(cams, "county:yh-private-1") is None
    # nothing the city receives holds a stream address or a camera credential
    for raw in (await county.raw("/api/v1/federation/catalogue", credential),
                json.dumps(cams), json.dumps(await city.call("GET", "/api/v1/federation/links"))):
        for secret in (SECRET_URL, "10.9.9.9", SECRET_PASSWORD, "rtsp://", credential):
            assert secret not in raw
    # the credential lists nothing else
    await county.call("GET", "/api/v1/cameras", token=credential, status=403)
    await county.call("GET", f"/api/v1/cameras/{unshared}", token=credential, status=403)

    # a camera added down there appears within seconds
    await _camera(county, "33011001", "yh-shared-2")
    took = await eventually(lambda: imported("county:yh-shared-2"), "a new county camera")
    assert took < 3.0

    # who watches above is journalled below: the person, unit and purpose
    assert city.app is not None
    gate = city.app[VIEWS_KEY]
    view = await gate.open_view(ViewRequest(
        token_digest=digest(city.token), user_id=1, camera_id=cam["id"], action="live",
        purpose="G60 accident", client_address="127.0.0.1", user_agent="test", via="whep"))
    await view.close("ended by viewer")

    async def county_views() -> list[dict[str, Any]]:
        rows = await county.call("GET", f"/api/v1/audit?camera={shared}")
        return [r for r in (rows["items"] if isinstance(rows, dict) else rows)
                if r["user"] == "admin@city"]

    async def recorded() -> bool:
        rows = await county_views()
        return bool(rows) and rows[0].get("end") is not None

    await eventually(recorded, "the county's journal names the city viewer, open and end")
    (row,) = await county_views()
    assert row["purpose"] == "G60 accident" and row["unit"] == "330100"
    assert row["basis"] == "federation"

    # push upward: an unshared camera appears at once, flagged, journalled on both sides
    await county.call("POST", "/api/v1/federation/push", {
        "cameras": [unshared], "minutes": 30, "reason": "tunnel fire"}, status=201)
    took = await eventually(lambda: imported("county:yh-private-1"), "the pushed camera")
    assert took < 2.0
    pushed = _by_external(await city.cameras(), "county:yh-private-1")
    assert pushed is not None and pushed["pushed_until"] is not None
    county_log = json.dumps(await county.call("GET", "/api/v1/audit?kind=admin"))
    assert "federation.push" in county_log

    async def city_journalled() -> bool:
        return "federation.push_received" in json.dumps(
            await city.call("GET", "/api/v1/audit?kind=admin"))

    await eventually(city_journalled, "the push in the city's journal")

    # the county goes down: the link is stale, the cameras are kept; back: not stale
    await county.stop()

    async def stale() -> bool:
        return bool((await city.link())["stale"])

    await eventually(stale, "the link marked stale")
    kept = _by_external(await city.cameras(), "county:yh-shared-1")
    assert kept is not None and kept["stale"] is True
    await county.start()

    async def recovered() -> bool:
        link = await city.link()
        return link["state"] == "connected" and not link["stale"]

    await eventually(recovered, "the link recovered")

    # revoking the credential down there puts the link in error up here
    (issued,) = await county.call("GET", "/api/v1/federation/credentials")
    await county.call("DELETE", f"/api/v1/federation/credentials/{issued['id']}")

    async def refused() -> bool:
        link = await city.link()
        return link["state"] == "error" and "credential" in (link["error"] or "")

    await eventually(refused, "the link in error after the revocation")


async def test_three_levels_a_county_camera_reaches_the_province(
        platforms: Callable[[str], Platform]) -> None:
    county, city, province = platforms("county"), platforms("city"), platforms("province")
    await county.open([("330110", "county", None)])
    await city.open([("330100", "city", None)])
    await province.open([("330000", "province", None)])
    await _link(city, county, "city", ["330110"], "330100")
    await _link(province, city, "province", ["330100"], "330000")
    await _camera(county, "330110", "yh-0001")

    async def at_province() -> bool:
        return _by_external(await province.cameras(), "city:county:yh-0001") is not None

    await eventually(at_province, "the county camera at the province")
    units = {u["code"]: u["parent"] for u in await province.call("GET", "/api/v1/units")}
    assert units["330100"] == "330000" and units["330110"] == "330100"
