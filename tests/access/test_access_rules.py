"""The default rule, rights in listings, the gate's decisions and attacks (both backends)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import digest
from camrelay.access.gate import ViewRequest
from camrelay.errors import AccessDenied, AuthenticationRequired, CameraNotFound
from camrelay.fields import utcnow
from tests.access.conftest import Folks, gate, journal, open_view
from tests.conftest import World, auth


async def rights(client: TestClient[Any, Any], folks: Folks, who: str) -> dict[str, list[str]]:
    r = await client.get("/api/v1/cameras", params={"limit": "1000"}, headers=folks.h(who))
    assert r.status == 200, await r.text()
    by_id = {c["id"]: c for c in (await r.json())["items"]}
    return {name: by_id[cid]["rights"] for name, cid in folks.cameras.items()}


async def test_listing_marks_rights_by_jurisdiction(client: TestClient[Any, Any],
                                                    folks: Folks) -> None:
    # operators of the camera's unit subtree may also talk back (rtsp:// cameras not yet
    # found without an ONVIF back-channel)
    got = await rights(client, folks, "city_op")
    assert got["city"] == ["live", "snapshot", "ptz", "talk"]
    assert got["county"] == ["live", "snapshot", "ptz", "talk"]  # the city sees its counties
    assert got["prov"] == ["request"] and got["other"] == ["request"]
    got = await rights(client, folks, "county_op")
    assert got["county"] == ["live", "snapshot", "ptz", "talk"]
    assert got["city"] == ["request"]  # a county sees only itself
    got = await rights(client, folks, "prov_op")
    assert all(got[n] == ["live", "snapshot", "ptz", "talk"] for n in folks.cameras)
    got = await rights(client, folks, "city_view")
    assert got["city"] == ["live", "snapshot"]  # a viewer cannot steer, and cannot ask to
    got = await rights(client, folks, "city_tech")
    assert got["county"] == ["live", "snapshot", "ptz", "manage"]
    got = await rights(client, folks, "prov_auditor")
    assert all(v == [] for v in got.values())


async def test_stream_addresses_only_for_managers(client: TestClient[Any, Any],
                                                  folks: Folks) -> None:
    for who, manages in (("city_op", False), ("city_tech", True), ("other_op", False)):
        r = await client.get(f"/api/v1/cameras/{folks.cameras['city']}", headers=folks.h(who))
        assert r.status == 200
        body = await r.json()
        assert ("main_url" in body) is manages, who
        assert "10.0.0.1" not in await r.text() or manages
        r = await client.get("/api/v1/catalog/export", params={"format": "csv"},
                             headers=folks.h(who))
        assert ("rtsp://10.0.0.1/city" in await r.text()) is manages


async def test_gate_decides_and_records(client: TestClient[Any, Any], folks: Folks) -> None:
    view = await open_view(client, folks.request("county_op", "county", purpose="巡查"))
    assert view.decision.basis == "own"
    with pytest.raises(AccessDenied) as denied:
        await open_view(client, folks.request("county_op", "city"))
    problem = denied.value.problem()
    assert problem["status"] == 403
    assert "grant" in problem["detail"]
    assert problem["request_grant"]["api"] == "POST /api/v1/grants"
    assert str(folks.cameras["city"]) in problem["request_grant"]["cli"]
    with pytest.raises(CameraNotFound):
        await open_view(client, folks.request("county_op", 999_999))
    with pytest.raises(AccessDenied):  # a viewer's role does not steer, even in its unit
        await open_view(client, folks.request("city_view", "city", "ptz"))
    await view.close("viewer left")

    records = await journal(client).records(
        __import__("camrelay.access.journal", fromlist=["RecordFilter"]).RecordFilter(
            user="county_op"))
    kinds = [(r["kind"], r["result"]) for r in records]
    assert kinds.count(("denied", "denied")) == 2 and ("view", "allowed") in kinds
    used = next(r for r in records if r["kind"] == "view")
    assert used["purpose"] == "巡查" and used["approver"] == "own jurisdiction"
    assert used["close_reason"] == "viewer left" and used["end"] is not None
    assert used["client_address"] == "127.0.0.9" and used["user_agent"] == "test-agent/1.0"
    assert used["unit"] == "330110" and used["camera_unit"] == "330110"


async def test_default_purpose_is_routine(client: TestClient[Any, Any], folks: Folks) -> None:
    view = await open_view(client, folks.request("prov_op", "other"))
    assert view.purpose == "routine monitoring"
    await view.close()


async def test_unit_a_guessing_unit_b_ids(client: TestClient[Any, Any], folks: Folks) -> None:
    """Unit B's cameras answer 403 (with the way to apply); unknown ids 404, nothing else."""
    theirs = folks.cameras["other"]
    r = await client.get(f"/api/v1/cameras/{theirs}", headers=folks.h("county_op"))
    assert r.status == 200 and "main_url" not in await r.json()
    for camera_id in (theirs, folks.cameras["other_county"]):
        with pytest.raises(AccessDenied):
            await open_view(client, folks.request("county_op", camera_id, "snapshot"))
    for guess in range(max(folks.cameras.values()) + 1, max(folks.cameras.values()) + 20):
        with pytest.raises(CameraNotFound):
            await open_view(client, folks.request("county_op", guess))
        r = await client.get(f"/api/v1/cameras/{guess}", headers=folks.h("county_op"))
        assert r.status == 404


async def test_technician_cannot_edit_another_units_camera(client: TestClient[Any, Any],
                                                           folks: Folks) -> None:
    other = folks.cameras["other"]
    r = await client.patch(f"/api/v1/cameras/{other}", json={"name": "mine now"},
                           headers=folks.h("city_tech"))
    assert r.status == 403
    r = await client.patch(f"/api/v1/cameras/{folks.cameras['county']}",
                           json={"unit": "330200"}, headers=folks.h("city_tech"))
    assert r.status == 403  # moving a camera out of the subtree is editing another unit
    r = await client.delete(f"/api/v1/cameras/{other}", headers=folks.h("city_tech"))
    assert r.status == 403
    r = await client.patch(f"/api/v1/cameras/{folks.cameras['county']}",
                           json={"name": "余杭 新名"}, headers=folks.h("city_tech"))
    assert r.status == 200
    r = await client.get("/api/v1/audit", params={"kind": "admin", "user": "city_tech"},
                         headers=folks.h("admin"))
    assert [x["action"] for x in await r.json()] == ["camera.update"]


@pytest.mark.parametrize("path", [
    "/api/v1/cameras/..%2F1", "/api/v1/cameras/1%00", "/api/v1/cameras/-1",
    "/api/v1/cameras/0x1", "/api/v1/cameras/99999999999999",
    "/api/v1/cameras/%D9%A1",  # an Arabic-Indic digit one: not camera 1
    "/api/v1/grants/..%2F..%2Fusers", "/api/v1/emergencies/1e3", "/api/v1/users/..%2Fadmin",
])
async def test_path_tricks(client: TestClient[Any, Any], folks: Folks, path: str) -> None:
    r = await client.get(path, headers=folks.h("county_op"))
    assert r.status in (403, 404), (path, r.status)
    assert "rtsp" not in await r.text()


async def test_bad_tokens(client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    county = folks.cameras["county"]
    for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"},
                   auth("crt_" + "A" * 43), auth("not-a-token"), auth("crt_" + "x" * 500),
                   auth(folks.tokens["county_op"][:-1] + "Z")):
        r = await client.get(f"/api/v1/cameras/{county}", headers=header)
        assert r.status == 401, header
    forged = ViewRequest(token_digest=digest("crt_forged"), user_id=folks.user_ids["county_op"],
                         camera_id=county, action="live", purpose=None, client_address=None,
                         user_agent=None, via="test")
    with pytest.raises(AuthenticationRequired):
        await gate(client).open_view(forged)
    # someone else's token digest with my user id: refused
    stolen = ViewRequest(token_digest=digest(folks.tokens["prov_op"]),
                         user_id=folks.user_ids["county_op"], camera_id=county, action="live",
                         purpose=None, client_address=None, user_agent=None, via="test")
    with pytest.raises(AuthenticationRequired):
        await gate(client).open_view(stolen)
    # revoked
    tokens = await world.accounts.list_tokens(folks.user_ids["county_op"])
    await world.accounts.revoke_token(tokens[0].id)
    r = await client.get(f"/api/v1/cameras/{county}", headers=folks.h("county_op"))
    assert r.status == 401 and "revoked" in (await r.json())["detail"]
    with pytest.raises(AuthenticationRequired):
        await open_view(client, folks.request("county_op", "county"))


async def test_expired_login_token_refuses_new_views(client: TestClient[Any, Any],
                                                     folks: Folks, world: World) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from camrelay.store import schema

    r = await client.post("/api/v1/auth/login", json={"username": "county_op",
                                                      "password": "correct horse battery"})
    assert r.status == 200
    token = (await r.json())["token"]
    folks.tokens["county_op"] = token
    view = await open_view(client, folks.request("county_op", "county"))
    async with world.store.begin() as conn:
        await conn.execute(update(schema.tokens).where(schema.tokens.c.digest == digest(token))
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await gate(client).sweep() == 0  # expiry of a login token does not cut the view
    assert not view.closed
    r = await client.get("/api/v1/cameras", headers=auth(token))
    assert r.status == 401 and "expired" in (await r.json())["detail"]
    with pytest.raises(AuthenticationRequired):
        await open_view(client, folks.request("county_op", "county"))
    await view.close()


async def test_every_route_needs_a_token(client: TestClient[Any, Any], folks: Folks) -> None:
    """Only login, /healthz, the OpenAPI document (and pages, metrics by address) are open."""
    open_paths = {"/api/v1/auth/login", "/healthz", "/api/v1/openapi.json", "/", "/player", "/screen", "/field",
                  "/favicon.ico", "/metrics"}
    failures = []
    for route in client.app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method in ("OPTIONS", "HEAD") or info in open_paths or \
                info.startswith("/static"):
            continue
        path = info.replace("{camera_id}", str(folks.cameras["county"])).replace(
            "{session_id}", "abc").replace("{grant_id}", "1").replace(
            "{emergency_id}", "1").replace("{username}", "admin").replace(
            "{token_id}", "1").replace("{code}", "330000").replace("{token}", "p1").replace(
            "{window_id}", "1")
        path = re.sub(r"\{[^}]+\}", "1", path)  # any other id (views, screens, alarms, ...)
        r = await client.request(route.method, path)
        if r.status != 401 and not (route.method == "PATCH" and info.startswith("/whep")):
            # (WHEP's PATCH answers 405 "not supported" to anyone: it reveals nothing)
            failures.append((route.method, info, r.status))
    assert failures == []


async def test_auditors_read_their_subtree(client: TestClient[Any, Any], folks: Folks) -> None:
    for who, cam in (("prov_op", "county"), ("other_op", "other"), ("county_op", "county"),
                     ("prov_op", "other")):
        await (await open_view(client, folks.request(who, cam))).close()
    r = await client.get("/api/v1/audit", params={"kind": "view"},
                         headers=folks.h("city_auditor"))
    seen = sorted((x["user"], x["camera_unit"]) for x in await r.json())
    # its subtree's users, and others' views of its subtree's cameras; not unit 330200's
    assert seen == [("county_op", "330110"), ("prov_op", "330110")]
    r = await client.get("/api/v1/audit", params={"kind": "view"},
                         headers=folks.h("county_op"))
    assert {x["user"] for x in await r.json()} == {"county_op"}  # others: their own only
    r = await client.get("/api/v1/audit/verify", headers=folks.h("city_auditor"))
    assert r.status == 200 and (await r.json())["ok"]
    r = await client.get("/api/v1/audit", params={"format": "csv", "kind": "view"},
                         headers=folks.h("prov_auditor"))
    lines = (await r.text()).splitlines()
    assert lines[0].startswith("id,kind,action,user,") and len(lines) == 5
