"""The catalogue's REST API against a real app and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import World, auth

CAMERA = {
    "external_id": "zj-hz-0001",
    "name": "G60 杭金衢 K12+300",
    "unit": "330100",
    "maintenance_unit": "330110",
    "contact_name": "王工",
    "contact_phone": "0571-8888 0000",
    "category": "expressway",
    "location": "杭州市余杭区 G60 K12+300",
    "latitude": 30.27,
    "longitude": 120.15,
    "camera_type": "ptz",
    "vendor": "Hikvision",
    "model": "DS-2DE4425IW",
    "status": "online",
    "main_url": "rtsp://admin:Canary-Secret-42@10.1.2.3:554/Streaming/Channels/101",
    "sub_url": "rtsp://10.1.2.3:554/Streaming/Channels/102",
    "tags": ["g60", "bridge-approach"],
}


async def test_units_tree_and_cameras(client: TestClient[Any, Any], world: World) -> None:
    h = auth(world.admin_token)
    r = await client.get("/api/v1/units", headers=h)
    assert r.status == 200
    assert [u["code"] for u in await r.json()] == ["330000", "330100", "330110"]

    r = await client.post("/api/v1/cameras", json=CAMERA, headers=h)
    body = await r.json()
    assert r.status == 201, body
    assert body["main_url"] == "rtsp://10.1.2.3:554/Streaming/Channels/101"
    assert body["username"] == "admin" and body["has_password"] is True
    assert "Canary-Secret-42" not in await r.text()

    r = await client.get("/api/v1/cameras", params={"unit": "330000", "q": "K12"}, headers=h)
    page = await r.json()
    assert page["total"] == 1 and page["items"][0]["external_id"] == "zj-hz-0001"
    r = await client.get("/api/v1/cameras", params={"unit": "330110"}, headers=h)
    assert (await r.json())["total"] == 0

    r = await client.delete("/api/v1/units/330100", headers=h)
    assert r.status == 409
    problem = await r.json()
    assert r.content_type == "application/problem+json" and problem["cameras"] == 1


async def test_bad_input_names_the_field(client: TestClient[Any, Any], world: World) -> None:
    h = auth(world.admin_token)
    for change, field in [({"latitude": 91}, "latitude"), ({"unit": "nope"}, "unit"),
                          ({"category": "spaceport"}, "category"),
                          ({"main_url": "http://x/y"}, "main_url"),
                          ({"name": "x" * 201}, "name")]:
        r = await client.post("/api/v1/cameras", json={**CAMERA, **change}, headers=h)
        assert r.status == 422, (change, await r.text())
        assert (await r.json())["field"] == field
    r = await client.post("/api/v1/cameras", data=b"{not json", headers={
        **h, "Content-Type": "application/json"})
    assert r.status == 400
    r = await client.get("/api/v1/cameras")
    assert r.status == 401
