"""Emergency priority: at once, scoped, mandatory reason, 2 h default, announced, flagged."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.errors import AccessDenied
from tests.access.conftest import Folks, add_camera, open_view
from tests.conftest import World


async def open_emergency(client: TestClient[Any, Any], folks: Folks, who: str,
                         expect: int = 201, **body: Any) -> dict[str, Any]:
    body.setdefault("reason", "G60 多车追尾，隧道口起火")
    body.setdefault("incident", "ZJ-2026-0815")
    r = await client.post("/api/v1/emergencies", json=body, headers=folks.h(who))
    assert r.status == expect, await r.text()
    return dict(await r.json())


async def test_radius_opens_at_once_for_two_hours(client: TestClient[Any, Any], folks: Folks,
                                                  world: World) -> None:
    with pytest.raises(AccessDenied):
        await open_view(client, folks.request("county_op", "other"))
    em = await open_emergency(client, folks, "county_op",
                              near={"latitude": 29.875, "longitude": 121.555, "radius_km": 3})
    assert em["status"] == "open"
    hours = (datetime.fromisoformat(em["expires_at"]) -
             datetime.fromisoformat(em["opened_at"])) / timedelta(hours=1)
    assert abs(hours - 2) < 0.01
    view = await open_view(client, folks.request("county_op", "other", "ptz"))
    assert view.emergency and view.decision.incident == "ZJ-2026-0815"
    view2 = await open_view(client, folks.request("county_op", "other_county"))
    with pytest.raises(AccessDenied):  # 50 km away
        await open_view(client, folks.request("county_op", "prov"))
    far = await add_camera(world, "no-coordinates", "330210", "tunnel")
    with pytest.raises(AccessDenied):  # no coordinates: not within any radius
        await open_view(client, folks.request("county_op", far))
    await view.close()
    await view2.close()
    r = await client.get("/api/v1/audit", params={"kind": "view", "user": "county_op"},
                         headers=folks.h("prov_auditor"))
    records = await r.json()
    assert all(x["emergency"] and x["incident"] == "ZJ-2026-0815" for x in records)
    assert records[0]["approver"] == "emergency (ZJ-2026-0815)"
    assert records[0]["purpose"].startswith("emergency: ")
    # announced to the approvers at once
    r = await client.get("/api/v1/notifications", headers=folks.h("approver"))
    (note,) = await r.json()
    assert note["kind"] == "emergency.open" and note["subject_id"] == em["id"]
    assert "ZJ-2026-0815" in note["message"]
    r = await client.get("/api/v1/notifications", headers=folks.h("county_op"))
    assert r.status == 403


async def test_reason_and_incident_are_mandatory(client: TestClient[Any, Any],
                                                 folks: Folks) -> None:
    for body in ({"reason": "", "incident": "X", "cameras": [1]},
                 {"reason": "   ", "incident": "X", "cameras": [1]},
                 {"incident": "X", "cameras": [1]}, {"reason": "fire", "cameras": [1]}):
        r = await client.post("/api/v1/emergencies", json=body, headers=folks.h("county_op"))
        assert r.status == 422, body
    r = await client.post("/api/v1/emergencies", json={"reason": "fire", "incident": "X"},
                          headers=folks.h("county_op"))
    assert r.status == 422 and (await r.json())["field"] == "cameras"


async def test_roles_and_confirmation(client: TestClient[Any, Any], folks: Folks) -> None:
    await open_emergency(client, folks, "city_view", 403, cameras=[folks.cameras["other"]])
    em = await open_emergency(client, folks, "city_op", category="tunnel", unit_scope="330200",
                              hours=0.5)
    view = await open_view(client, folks.request("city_op", "other_county"))
    with pytest.raises(AccessDenied):  # a bridge: not in the category
        await open_view(client, folks.request("city_op", "other"))
    with pytest.raises(AccessDenied):  # the opener's sub-unit does not share it
        await open_view(client, folks.request("county_op", "other_county"))
    r = await client.post(f"/api/v1/emergencies/{em['id']}/confirm", json={},
                          headers=folks.h("city_op"))
    assert r.status == 403
    r = await client.post(f"/api/v1/emergencies/{em['id']}/confirm",
                          json={"comment": "核实属实"}, headers=folks.h("approver"))
    assert r.status == 200 and (await r.json())["status"] == "confirmed"
    assert not view.closed
    r = await client.get("/api/v1/emergencies", params={"active": "true"},
                         headers=folks.h("approver"))
    assert [e["id"] for e in await r.json()] == [em["id"]]
    r = await client.get("/api/v1/audit", params={"kind": "admin"}, headers=folks.h("admin"))
    actions = {x["action"] for x in await r.json()}
    assert {"emergency.open", "emergency.confirm"} <= actions
    await view.close()
