"""The health API on a real app whose scheduler probes the real simulator."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Role, TokenKind
from camrelay.app import create_app
from camrelay.catalog.models import UnitLevel
from camrelay.settings import Settings
from camrelay.web.keys import MONITOR_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import World, auth
from tests.health.test_monitor import HEALTH
from tests.relay.camera_link import CameraLink


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_problem_cameras_of_a_subtree_and_a_cameras_history(
        world: World, settings: Settings, camsim: CamSim) -> None:
    link = CameraLink(camsim.port)
    await link.restore()
    camera = await world.catalog.add_camera({
        "external_id": "tunnel-1", "name": "Tunnel 1", "unit": "330110",
        "category": "tunnel", "main_url": link.url("/h264")})
    await world.catalog.add_unit({"code": "320000", "name": "江苏省交通运输厅",
                                  "level": UnitLevel.PROVINCE, "parent": None})
    other = await world.accounts.add_user("js-admin", unit_code="320000",
                                          role=Role.ADMINISTRATOR, password="correct horse 2")
    other_token, _ = await world.accounts.create_token(other.id, kind=TokenKind.API, name="t")
    settings = replace(settings, health=HEALTH,
                       relay=replace(settings.relay, connect_timeout=1.0, read_timeout=1.0))
    app = create_app(settings, world.store)
    changed: asyncio.Queue[str] = asyncio.Queue()
    app[MONITOR_KEY].listeners.append(lambda cam, v: changed.put_nowait(v.status))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert await asyncio.wait_for(changed.get(), 10) == "online"
            resp = await client.get("/api/v1/health?problems=true", headers=auth(world.admin_token))
            assert resp.status == 200 and await resp.json() == []
            await link.cut()
            assert await asyncio.wait_for(changed.get(), 10) == "offline"
            resp = await client.get("/api/v1/health?unit=330100&problems=1",
                                    headers=auth(world.admin_token))
            [row] = await resp.json()
            assert (row["camera_id"], row["status"], row["reason"]) == (
                camera.id, "offline", "unreachable")
            assert row["seconds"] >= 0 and row["since"] and row["last_seen"]
            # a user of an unrelated unit sees none of it
            resp = await client.get("/api/v1/health", headers=auth(other_token))
            assert resp.status == 200 and await resp.json() == []
            resp = await client.get("/api/v1/health?unit=330000", headers=auth(other_token))
            assert resp.status == 403 and "detail" in await resp.json()
            resp = await client.get("/api/v1/health?problems=maybe",
                                    headers=auth(world.admin_token))
            assert resp.status in (400, 422)
            resp = await client.get(f"/api/v1/cameras/{camera.id}/health",
                                    headers=auth(world.admin_token))
            history = await resp.json()
            assert [i["status"] for i in history["intervals"]] == ["online", "offline"]
            assert history["intervals"][-1]["until"] is None
            assert len(history["days"]) == 7 and history["days"][-1]["availability"] < 1
            assert 0 <= history["week"] < 1
    finally:
        await link.cut()
