"""Bad input gets a clear 4xx problem naming the field, and nothing is half-written.

Runs on SQLite and PostgreSQL.  Also: temporary connections end by themselves.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from camrelay.catalog.service import CameraFilter
from camrelay.settings import Settings
from tests.conftest import World, auth

CAMERA: dict[str, Any] = {
    "external_id": "bad-0001", "name": "杭州湾跨海大桥 南岸", "unit": "330100",
    "category": "bridge", "main_url": "rtsp://10.1.2.3/live", "latitude": 30.3,
    "longitude": 121.2,
}


async def problem(r: Any, status: int) -> dict[str, Any]:
    body = await r.json()
    assert r.status == status, body
    assert r.content_type == "application/problem+json"
    assert body["status"] == status and body["title"] and body["detail"]
    return dict(body)


async def snapshot(world: World) -> tuple[Any, ...]:
    cameras, total = await world.catalog.list_cameras(CameraFilter(), limit=1000)
    return total, cameras, await world.catalog.list_units()


async def test_each_bad_field_is_named(client: TestClient[Any, Any], world: World) -> None:
    h = auth(world.admin_token)
    r = await client.post("/api/v1/cameras", json=CAMERA, headers=h)
    assert r.status == 201
    before = await snapshot(world)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"unit": "339999"}, 422, "unit"),
        ({"maintenance_unit": "339999"}, 422, "maintenance_unit"),
        ({"external_id": "bad-0001"}, 409, "external_id"),
        ({"external_id": "has space"}, 422, "external_id"),
        ({"main_url": "rtsp//10.1.2.3/live"}, 422, "main_url"),
        ({"main_url": "rtsp://"}, 422, "main_url"),
        ({"main_url": "rtsp://10.1.2.3:99999/x"}, 422, "main_url"),
        ({"main_url": "http://10.1.2.3/live"}, 422, "main_url"),
        ({"onvif_url": "rtsp://10.1.2.3/"}, 422, "onvif_url"),
        ({"latitude": 90.5}, 422, "latitude"),
        ({"longitude": -180.01}, 422, "longitude"),
        ({"latitude": None}, 422, "latitude"),  # one of the pair only
        ({"category": "spaceport"}, 422, "category"),
        ({"status": "lost"}, 422, "status"),
        ({"camera_type": "periscope"}, 422, "camera_type"),
        ({"transport": "http"}, 422, "transport"),
        ({"name": "桥" * 201}, 422, "name"),
        ({"location": "x" * 201}, 422, "location"),
        ({"contact_phone": "call me"}, 422, "contact_phone"),
        ({"tags": ["has space"]}, 422, "tags.0"),
        ({"valid_from": "2026-01-02T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"}, 422,
         "valid_until"),
        ({"valid_until": "2026-01-01T00:00:00"}, 422, "valid_until"),  # no offset
        ({"colour": "red"}, 422, "colour"),
        ({"name": None}, 422, "name"),
    ]
    for change, status, field in cases:
        body = {**CAMERA, "external_id": "bad-0002", **change}
        r = await client.post("/api/v1/cameras", json=body, headers=h)
        got = await problem(r, status)
        assert got.get("field") == field, (change, got)
    body = {k: v for k, v in CAMERA.items() if k != "category"}
    assert (await problem(await client.post("/api/v1/cameras", json=body, headers=h),
                          422))["field"] == "category"
    assert await snapshot(world) == before

    cam_id = before[1][0].id
    for change, field in [({"unit": "339999"}, "unit"), ({"latitude": 91}, "latitude"),
                          ({"valid_until": "1999-01-01T00:00:00Z",
                            "valid_from": "2000-01-01T00:00:00Z"}, "valid_until")]:
        r = await client.patch(f"/api/v1/cameras/{cam_id}", json=change, headers=h)
        assert (await problem(r, 422))["field"] == field
    r = await client.patch(f"/api/v1/cameras/{cam_id}",
                           json={"valid_from": "2100-01-01T00:00:00Z"}, headers=h)
    assert r.status == 200
    before = await snapshot(world)
    r = await client.patch(f"/api/v1/cameras/{cam_id}",
                           json={"valid_until": "2099-01-01T00:00:00Z"}, headers=h)
    assert (await problem(r, 422))["field"] == "valid_until"  # against the stored valid_from
    for path in ("/api/v1/cameras/999999", "/api/v1/cameras/abc", "/api/v1/cameras/0"):
        await problem(await client.get(path, headers=h), 404)
    await problem(await client.get("/api/v1/units/339999", headers=h), 404)

    unit_cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"code": "330120", "name": "x", "level": "county", "parent": "339999"}, 422, "parent"),
        ({"code": "330110", "name": "x", "level": "county", "parent": "330100"}, 409, "code"),
        ({"code": "bad code", "name": "x", "level": "county", "parent": "330100"}, 422, "code"),
        ({"code": "330120", "name": "x", "level": "hamlet", "parent": "330100"}, 422, "level"),
        ({"code": "330120", "name": "", "level": "county", "parent": "330100"}, 422, "name"),
    ]
    for body, status, field in unit_cases:
        r = await client.post("/api/v1/units", json=body, headers=h)
        assert (await problem(r, status)).get("field") == field, body
    r = await client.patch("/api/v1/units/330000", json={"parent": "330110"}, headers=h)
    assert (await problem(r, 422))["field"] == "parent"  # its own descendant
    assert await snapshot(world) == before


async def test_bodies_that_are_not_json_or_too_large(client: TestClient[Any, Any],
                                                     world: World, settings: Settings) -> None:
    h = auth(world.admin_token)
    json_type = {**h, "Content-Type": "application/json"}
    for data in (b"{not json", b"", b"\xff\xfe{}", b'{"name": "x"'):
        r = await client.post("/api/v1/cameras", data=data, headers=json_type)
        assert "not valid JSON" in (await problem(r, 400))["detail"]
    r = await client.post("/api/v1/cameras", data=b"[1, 2]", headers=json_type)
    assert "must be an object" in (await problem(r, 422))["detail"]
    r = await client.post("/api/v1/cameras", data=b"name=x",
                          headers={**h, "Content-Type": "application/x-www-form-urlencoded"})
    await problem(r, 415)
    for query, name in [("limit=0", "limit"), ("limit=abc", "limit"), ("offset=-1", "offset"),
                        ("status=lost", "status"), ("enabled=perhaps", "enabled"),
                        ("q=" + "x" * 201, "q"), ("unit=bad%20code", "unit")]:
        r = await client.get(f"/api/v1/cameras?{query}", headers=h)
        assert f"query parameter {name}" in (await problem(r, 400))["detail"], query
    await problem(await client.get("/api/v1/catalog/export?format=xml", headers=h), 400)
    assert (await snapshot(world))[0] == 0

    # a body over server.max_body_bytes: 413, nothing read into the store
    from camrelay.app import create_app

    small = replace(settings, server=replace(settings.server, max_body_bytes=4096))
    async with TestClient(TestServer(create_app(small, world.store), host="127.0.0.1")) as c:
        body = {**CAMERA, "location": "x" * 190, "tags": [f"t{i}" for i in range(32)],
                "name": "桥" * 200}
        r = await c.post("/api/v1/cameras", json={**body, "vendor": "v" * 5000}, headers=h)
        assert "larger than 4096 bytes" in (await problem(r, 413))["detail"]
        rows = [{"line": i, "fields": CAMERA} for i in range(200)]
        r = await c.post("/api/v1/catalog/import", json={"rows": rows}, headers=h)
        await problem(r, 413)
    assert (await snapshot(world))[0] == 0


async def test_units_with_children_or_cameras_are_not_removed_silently(
        client: TestClient[Any, Any], world: World) -> None:
    h = auth(world.admin_token)
    assert (await client.post("/api/v1/cameras", json=CAMERA, headers=h)).status == 201
    before = await snapshot(world)
    got = await problem(await client.delete("/api/v1/units/330100", headers=h), 409)
    assert (got["children"], got["cameras"]) == (1, 1)
    got = await problem(await client.delete("/api/v1/units/330000?cascade=true", headers=h),
                        409)
    assert got["users"] == 1  # the admin's own unit: never, not even with cascade
    assert await snapshot(world) == before
    r = await client.delete("/api/v1/units/330100?cascade=true", headers=h)
    assert r.status == 200 and await r.json() == {"units": 2, "cameras": 1}
    assert [u.code for u in await world.catalog.list_units()] == ["330000"]


async def test_a_temporary_connection_ends_by_itself(client: TestClient[Any, Any],
                                                     world: World) -> None:
    h = auth(world.admin_token)
    now = datetime.now(UTC)
    windows = {
        "past": (now - timedelta(days=10), now - timedelta(seconds=1), False),
        "current": (now - timedelta(hours=1), now + timedelta(hours=1), True),
        "future": (now + timedelta(days=1), now + timedelta(days=2), False),
        "open-ended": (None, None, True),
    }
    for name, (start, end, active) in windows.items():
        body = {**CAMERA, "external_id": f"tmp-{name}",
                "valid_from": start and start.isoformat(), "valid_until": end and end.isoformat()}
        r = await client.post("/api/v1/cameras", json=body, headers=h)
        cam = await r.json()
        assert r.status == 201 and cam["enabled"] is True
        assert cam["active"] is active, name
        stored = await world.catalog.get_camera(cam["id"])
        assert stored.active_at(now) is active
        if end is not None:
            assert not stored.active_at(end)  # the end is exclusive
    r = await client.get("/api/v1/cameras", params={"q": "tmp-"}, headers=h)
    assert {c["external_id"]: c["active"] for c in (await r.json())["items"]} == {
        f"tmp-{name}": w[2] for name, w in windows.items()}
    # extending the window brings a lapsed camera back
    past = (await world.catalog.list_cameras(CameraFilter(external_id="tmp-past")))[0][0]
    r = await client.patch(f"/api/v1/cameras/{past.id}", json={
        "valid_until": (now + timedelta(days=1)).isoformat()}, headers=h)
    assert (await r.json())["active"] is True
