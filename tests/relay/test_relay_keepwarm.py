"""Keep-warm windows (important periods): cameras live before anyone opens them.

Through the real app: windows are stored, applied to the hub by the scheduler (its
``tick`` is called directly, with a chosen time, so no test waits for its timer), cut
short by DELETE, and picked up again by a new app on the same store (a restart).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from camrelay.fields import utcnow
from camrelay.relay.media import StreamKey
from camrelay.settings import Settings
from camrelay.web.keys import HUB_KEY, SCHEDULER_KEY
from tests.conftest import World, auth


async def _demo_camera(world: World, name: str) -> int:
    from camrelay.catalog.fields import parse_camera

    fields = parse_camera({"external_id": name, "name": name, "unit": "330110",
                           "category": "bridge", "main_url": "demo:?width=160&height=120&gop=1"},
                          categories=world.catalog.categories,
                          camera_types=world.catalog.camera_types)
    return (await world.catalog.add_camera(fields)).id


async def test_windows_warm_streams_and_end(client: TestClient[Any, Any], world: World,
                                            settings: Settings) -> None:
    h = auth(world.admin_token)
    now_cam = await _demo_camera(world, "kw-now")
    later_cam = await _demo_camera(world, "kw-later")
    until = (utcnow() + timedelta(hours=2)).isoformat()
    later = (utcnow() + timedelta(hours=1)).isoformat()
    r = await client.post("/api/v1/keep-warm", json={"cameras": [now_cam], "until": until,
                                                      "reason": "National Day"}, headers=h)
    assert r.status == 201, await r.text()
    (window,) = await r.json()
    assert window["open"] is True and window["reason"] == "National Day"
    r = await client.post("/api/v1/keep-warm", json={"cameras": [later_cam], "from": later,
                                                      "until": until}, headers=h)
    assert r.status == 201 and (await r.json())[0]["open"] is False

    scheduler = client.app[SCHEDULER_KEY]
    hub = client.app[HUB_KEY]
    assert await scheduler.tick() == {StreamKey(now_cam)}
    sub = await hub.subscribe(StreamKey(now_cam), timeout=5)  # the stream is live, unwatched
    sub.close()
    assert {s.key for s in hub.status()} == {StreamKey(now_cam)}
    # when the later window opens, its camera is warmed too
    assert await scheduler.tick(utcnow() + timedelta(hours=1, minutes=1)) == {
        StreamKey(now_cam), StreamKey(later_cam)}

    r = await client.get("/api/v1/keep-warm", headers=h)
    assert [w["camera_id"] for w in await r.json()] == [now_cam, later_cam]
    r = await client.delete(f"/api/v1/keep-warm/{window['id']}", headers=h)
    assert r.status == 200
    assert StreamKey(now_cam) not in await scheduler.tick()


async def test_windows_survive_a_restart(client: TestClient[Any, Any], world: World,
                                         settings: Settings) -> None:
    cam = await _demo_camera(world, "kw-restart")
    r = await client.post("/api/v1/keep-warm", json={
        "cameras": [cam], "until": (utcnow() + timedelta(hours=1)).isoformat()},
        headers=auth(world.admin_token))
    assert r.status == 201
    from camrelay.app import create_app

    app = create_app(settings, world.store)  # a second node / a restarted server
    async with TestClient(TestServer(app, host="127.0.0.1")) as again:
        assert await again.app[SCHEDULER_KEY].tick() == {StreamKey(cam)}


async def test_bad_windows_and_rights(client: TestClient[Any, Any], world: World) -> None:
    from camrelay.access.accounts import Role, TokenKind

    h = auth(world.admin_token)
    cam = await _demo_camera(world, "kw-bad")
    past = (utcnow() - timedelta(hours=1)).isoformat()
    r = await client.post("/api/v1/keep-warm", json={"cameras": [cam], "until": past},
                          headers=h)
    assert r.status == 422 and (await r.json())["field"] == "until"
    r = await client.post("/api/v1/keep-warm", json={"until": (
        utcnow() + timedelta(days=40)).isoformat(), "cameras": [cam]}, headers=h)
    assert r.status == 422
    r = await client.post("/api/v1/keep-warm", json={"until": (
        utcnow() + timedelta(hours=1)).isoformat()}, headers=h)
    assert r.status == 422 and (await r.json())["field"] == "cameras"
    viewer = await world.accounts.add_user("kw-viewer", unit_code="330110", role=Role.VIEWER,
                                           password="long enough password")
    token, _ = await world.accounts.create_token(viewer.id, kind=TokenKind.API)
    r = await client.post("/api/v1/keep-warm", json={"cameras": [cam], "until": (
        utcnow() + timedelta(hours=1)).isoformat()}, headers=auth(token))
    assert r.status == 403
    r = await client.delete("/api/v1/keep-warm/999999", headers=h)
    assert r.status == 404
