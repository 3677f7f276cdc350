"""Grants through the real API: request → approve/reject, scope, grantee, expiry, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from camrelay.errors import AccessDenied
from camrelay.fields import utcnow
from camrelay.store import schema
from tests.access.conftest import Folks, add_camera, add_person, open_view
from tests.access.test_access_rules import rights
from tests.conftest import World


def until(hours: float = 8) -> str:
    return (utcnow() + timedelta(hours=hours)).isoformat()


async def request_grant(client: TestClient[Any, Any], folks: Folks, who: str,
                        **body: Any) -> dict[str, Any]:
    body.setdefault("actions", ["live"])
    body.setdefault("purpose", "G60 拥堵疏导")
    body.setdefault("valid_until", until())
    r = await client.post("/api/v1/grants", json=body, headers=folks.h(who))
    assert r.status == 201, await r.text()
    grant = await r.json()
    assert grant["status"] == "pending"
    return grant


async def decide(client: TestClient[Any, Any], folks: Folks, who: str, grant_id: int,
                 verb: str, expect: int = 200) -> dict[str, Any]:
    r = await client.post(f"/api/v1/grants/{grant_id}/{verb}", json={"comment": "ok"},
                          headers=folks.h(who))
    assert r.status == expect, await r.text()
    return dict(await r.json())


async def test_request_approve_watch_and_log(client: TestClient[Any, Any], folks: Folks) -> None:
    other = folks.cameras["other"]
    grant = await request_grant(client, folks, "county_op", grantee_user="county_op",
                                cameras=[other], actions=["live", "snapshot"])
    # pending: still refused
    with pytest.raises(AccessDenied):
        await open_view(client, folks.request("county_op", other))
    # nobody approves their own request; operators do not approve at all
    await decide(client, folks, "county_op", grant["id"], "approve", 403)
    await decide(client, folks, "prov_op", grant["id"], "approve", 403)
    approved = await decide(client, folks, "approver", grant["id"], "approve")
    assert approved["status"] == "active" and approved["decided_by"] == "approver"
    await decide(client, folks, "approver2", grant["id"], "approve", 409)  # decided already
    got = await rights(client, folks, "county_op")
    assert got["other"] == ["live", "snapshot", "request"]  # PTZ still needs a request
    view = await open_view(client, folks.request("county_op", other, purpose=None))
    assert view.decision.basis == "grant" and view.purpose == "G60 拥堵疏导"
    with pytest.raises(AccessDenied):
        await open_view(client, folks.request("county_op", other, "ptz"))
    await view.close("viewer left")
    r = await client.get("/api/v1/audit", params={"user": "county_op", "kind": "view"},
                         headers=folks.h("admin"))
    (record,) = await r.json()
    assert record["approver"] == "approver" and record["grant_id"] == grant["id"]
    assert record["start"] and record["end"] and record["duration_s"] >= 0
    assert record["purpose"] == "G60 拥堵疏导"
    r = await client.get("/api/v1/audit", params={"kind": "admin"}, headers=folks.h("admin"))
    actions = [x["action"] for x in await r.json()]
    assert "grant.request" in actions and "grant.approve" in actions


async def test_approver_cannot_approve_own_request(client: TestClient[Any, Any],
                                                   folks: Folks) -> None:
    grant = await request_grant(client, folks, "approver", grantee_user="approver",
                                cameras=[folks.cameras["other"]])
    r = await client.post(f"/api/v1/grants/{grant['id']}/approve", json={},
                          headers=folks.h("approver"))
    assert r.status == 403 and "own request" in (await r.json())["detail"]
    # a request for another user, made by approver2, is not approver2's to decide either
    grant = await request_grant(client, folks, "approver2", grantee_user="county_op",
                                cameras=[folks.cameras["other"]])
    await decide(client, folks, "approver2", grant["id"], "approve", 403)
    await decide(client, folks, "approver", grant["id"], "approve")


async def test_reject_and_list_by_status(client: TestClient[Any, Any], folks: Folks) -> None:
    a = await request_grant(client, folks, "county_op", grantee_unit="330110",
                            cameras=[folks.cameras["other"]])
    b = await request_grant(client, folks, "county_op", grantee_unit="330110",
                            category="tunnel")
    rejected = await decide(client, folks, "approver", a["id"], "reject")
    assert rejected["status"] == "rejected" and rejected["decision_comment"] == "ok"
    await decide(client, folks, "approver", b["id"], "approve")
    r = await client.get("/api/v1/grants", params={"status": "active"},
                         headers=folks.h("county_op"))
    assert [g["id"] for g in await r.json()] == [b["id"]]
    r = await client.get("/api/v1/grants", params={"status": "pending"},
                         headers=folks.h("approver"))
    assert await r.json() == []
    await decide(client, folks, "approver", b["id"], "revoke")
    r = await client.get("/api/v1/grants", params={"status": "revoked"},
                         headers=folks.h("county_op"))
    assert [g["id"] for g in await r.json()] == [b["id"]]
    # another unit's operator sees neither
    r = await client.get("/api/v1/grants", headers=folks.h("other_op"))
    assert await r.json() == []
    r = await client.get(f"/api/v1/grants/{b['id']}", headers=folks.h("other_op"))
    assert r.status == 404


async def test_bad_requests(client: TestClient[Any, Any], folks: Folks) -> None:
    base = {"actions": ["live"], "purpose": "x", "valid_until": until(),
            "grantee_user": "county_op", "cameras": [folks.cameras["other"]]}
    for change, field in [({"valid_until": (utcnow() - timedelta(hours=1)).isoformat()},
                           "valid_until"),
                          ({"valid_until": until(24 * 400)}, "valid_until"),
                          ({"cameras": [987654]}, "cameras"),
                          ({"cameras": [], "category": None}, "cameras"),
                          ({"category": "spaceport"}, "category"),
                          ({"grantee_unit": "330110"}, "grantee_unit"),
                          ({"actions": ["record"]}, "actions.0")]:
        r = await client.post("/api/v1/grants", json={**base, **change},
                              headers=folks.h("county_op"))
        assert r.status == 422, (change, await r.text())
        assert (await r.json())["field"] == field, change
    # asking on behalf of someone else, or for another unit, is refused
    r = await client.post("/api/v1/grants", json={**base, "grantee_user": "other_op"},
                          headers=folks.h("county_op"))
    assert r.status == 403
    r = await client.post("/api/v1/grants", json={**base, "grantee_user": None,
                                                  "grantee_unit": "330200"},
                          headers=folks.h("county_op"))
    assert r.status == 403


async def test_category_and_subtree_scope_cover_later_cameras(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    g1 = await request_grant(client, folks, "county_op", grantee_unit="330110",
                             unit_scope="330200", category="tunnel")
    await decide(client, folks, "approver", g1["id"], "approve")
    later_tunnel = await add_camera(world, "later-tunnel", "330210", "tunnel")
    later_bridge = await add_camera(world, "later-bridge", "330210", "bridge")
    elsewhere_tunnel = await add_camera(world, "tunnel-elsewhere", "330000", "tunnel")
    view = await open_view(client, folks.request("county_op", later_tunnel))
    await view.close()
    for camera in (later_bridge, elsewhere_tunnel):  # category AND subtree must both match
        with pytest.raises(AccessDenied):
            await open_view(client, folks.request("county_op", camera))


async def test_unit_grantee_excludes_subunits_unless_said(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    await add_person(world, folks, "city_op2", "330100", __import__(
        "camrelay.access.accounts", fromlist=["Role"]).Role.OPERATOR)
    target = folks.cameras["other"]
    g = await request_grant(client, folks, "city_admin", grantee_unit="330100",
                            cameras=[target])
    await decide(client, folks, "approver", g["id"], "approve")
    (await open_view(client, folks.request("city_op2", target)))  # a user of the unit
    with pytest.raises(AccessDenied):  # a user of its sub-unit: no
        await open_view(client, folks.request("county_op", target))
    g2 = await request_grant(client, folks, "city_admin", grantee_unit="330100",
                             include_subunits=True, cameras=[folks.cameras["other_county"]])
    await decide(client, folks, "approver", g2["id"], "approve")
    view = await open_view(client, folks.request("county_op", "other_county"))
    await view.close()


async def test_grant_whose_validity_has_passed(client: TestClient[Any, Any], folks: Folks,
                                               world: World) -> None:
    g = await request_grant(client, folks, "county_op", grantee_user="county_op",
                            cameras=[folks.cameras["other"]])
    await decide(client, folks, "approver", g["id"], "approve")
    async with world.store.begin() as conn:
        await conn.execute(update(schema.grants).where(schema.grants.c.id == g["id"]).values(
            valid_until=utcnow() - timedelta(seconds=1)))
    with pytest.raises(AccessDenied):
        await open_view(client, folks.request("county_op", "other"))
    r = await client.get(f"/api/v1/grants/{g['id']}", headers=folks.h("county_op"))
    assert (await r.json())["status"] == "expired"
    # a pending request whose time passed cannot be approved any more
    g2 = await request_grant(client, folks, "county_op", grantee_user="county_op",
                             cameras=[folks.cameras["other"]])
    async with world.store.begin() as conn:
        await conn.execute(update(schema.grants).where(schema.grants.c.id == g2["id"]).values(
            valid_until=utcnow() - timedelta(seconds=1)))
    await decide(client, folks, "approver", g2["id"], "approve", 409)
