"""Saved layouts and tours (/api/v1/views) and wall screens (/api/v1/screens) over the
API: who sees and changes what, bad input as JSON problems, the journal (issue 14, items
4 and 5)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role
from camrelay.access.journal import RecordFilter
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import Folks, add_person
from tests.conftest import World

pytestmark = pytest.mark.netns


async def call(client: TestClient[Any, Any], folks: Folks, who: str, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    r = await client.request(method, path, headers=folks.h(who),
                             **({} if body is None else {"json": body}))
    if r.status == 204:
        return r.status, None
    assert r.content_type in ("application/json", "application/problem+json"), await r.text()
    return r.status, await r.json()


async def test_views_are_their_owners_or_their_units_and_only_editors_change_them(
        client: TestClient[Any, Any], folks: Folks) -> None:
    cams = folks.cameras
    status, mine = await call(client, folks, "county_op", "POST", "/api/v1/views", {
        "kind": "layout", "name": "G60 事故", "layout": "2x2",
        "cameras": [cams["county"], None, cams["city"]]})
    assert status == 201, mine
    assert mine["owner"] == {"user": "county_op", "unit": None} and mine["editable"]
    assert mine["cameras"] == [cams["county"], None, cams["city"]]
    status, unit_view = await call(client, folks, "city_op", "POST", "/api/v1/views", {
        "kind": "tour", "owner": "unit", "name": "汛期 flood season", "layout": "1+5",
        "cameras": [cams["city"], cams["county"], cams["prov"]], "seconds": 15})
    assert status == 201, unit_view
    assert unit_view["owner"] == {"user": None, "unit": "330100"}
    assert unit_view["seconds"] == 15
    # a viewer of the unit sees the unit's view, cannot change it nor save one for the unit
    status, seen = await call(client, folks, "city_view", "GET", "/api/v1/views")
    assert [(v["id"], v["editable"]) for v in seen] == [(unit_view["id"], False)]
    status, problem = await call(client, folks, "city_view", "DELETE",
                                 f"/api/v1/views/{unit_view['id']}")
    assert status == 403 and problem["status"] == 403
    status, problem = await call(client, folks, "city_view", "POST", "/api/v1/views", {
        "kind": "layout", "owner": "unit", "name": "x", "layout": "1", "cameras": []})
    assert status == 403, problem
    # another unit's users see neither; the user's own view is not its unit's
    for other in ("other_op", "city_op"):
        status, seen = await call(client, folks, other, "GET", "/api/v1/views")
        assert mine["id"] not in [v["id"] for v in seen]
    status, seen = await call(client, folks, "other_op", "GET", "/api/v1/views")
    assert seen == []
    status, problem = await call(client, folks, "other_op", "PUT",
                                 f"/api/v1/views/{mine['id']}",
                                 {"name": "mine now", "layout": "1", "cameras": []})
    assert status == 404, problem  # not even its existence
    # the owner renames and changes it, then deletes it
    status, changed = await call(client, folks, "county_op", "PUT",
                                 f"/api/v1/views/{mine['id']}",
                                 {"name": "G60 事故 2", "layout": "1", "cameras": [cams["county"]]})
    assert status == 200 and (changed["name"], changed["layout"]) == ("G60 事故 2", "1")
    status, _ = await call(client, folks, "county_op", "DELETE", f"/api/v1/views/{mine['id']}")
    assert status == 204
    status, seen = await call(client, folks, "county_op", "GET", "/api/v1/views")
    assert seen == []


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"kind": "layout", "name": "a", "layout": "2x2", "cameras": [1, 2, 3, 4, 5]}, 422,
     "cameras"),
    ({"kind": "layout", "name": "a", "layout": "5x5", "cameras": []}, 422, None),
    ({"kind": "layout", "name": "   ", "layout": "1", "cameras": []}, 422, "name"),
    ({"kind": "tour", "name": "a", "layout": "1", "cameras": [1, None]}, 422, "cameras"),
    ({"kind": "tour", "name": "a", "layout": "1", "cameras": []}, 422, "cameras"),
    ({"kind": "tour", "name": "a", "layout": "1", "cameras": [1], "seconds": 1}, 422, None),
    ({"kind": "layout", "name": "a", "layout": "1", "cameras": ["1"]}, 422, None),
    ({"kind": "layout", "name": "a", "layout": "1", "cameras": [], "owner": "x"}, 422, None),
    ({"kind": "layout", "name": "a", "layout": "1", "cameras": [], "extra": 1}, 422, None),
    ({"kind": "layout", "name": "a" * 101, "layout": "1", "cameras": []}, 422, None),
    ([1, 2], 422, None),
])
async def test_bad_views_are_refused_with_a_problem(
        client: TestClient[Any, Any], folks: Folks, body: Any, status: int,
        field: str | None) -> None:
    got, problem = await call(client, folks, "county_op", "POST", "/api/v1/views", body)
    assert got == status, problem
    assert problem["status"] == status and problem["title"]
    if field is not None:
        assert problem.get("field") == field, problem


async def test_bad_view_requests_not_json_unknown_ids_and_duplicates(
        client: TestClient[Any, Any], folks: Folks) -> None:
    r = await client.post("/api/v1/views", data=b"{not json",
                          headers={**folks.h("county_op"), "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["status"] == 400
    for path in ("/api/v1/views/abc", "/api/v1/views/99999999999", "/api/v1/views/42"):
        status, problem = await call(client, folks, "county_op", "DELETE", path)
        assert status == 404 and problem["status"] == 404
    body = {"kind": "layout", "name": "same", "layout": "1", "cameras": []}
    assert (await call(client, folks, "county_op", "POST", "/api/v1/views", body))[0] == 201
    status, problem = await call(client, folks, "county_op", "POST", "/api/v1/views", body)
    assert status == 409 and "same" in problem["detail"]
    r = await client.get("/api/v1/views")
    assert r.status == 401


async def test_screens_are_registered_driven_listed_and_journalled(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    cams = folks.cameras
    await add_person(world, folks, "hall_screen", "330100", Role.VIEWER)
    await add_person(world, folks, "city_admin2", "330100", Role.ADMINISTRATOR)
    new = {"name": "大屏 1 <hall>", "unit": "330100", "account": "hall_screen"}
    status, problem = await call(client, folks, "city_op", "POST", "/api/v1/screens", new)
    assert status == 403, problem  # administrators register screens
    status, problem = await call(client, folks, "city_admin", "POST", "/api/v1/screens",
                                 {**new, "account": "city_op"})
    assert status == 422 and problem["field"] == "account"  # a person, not a service account
    status, problem = await call(client, folks, "city_admin", "POST", "/api/v1/screens",
                                 {**new, "unit": "330000"})
    assert status == 403, problem  # above the administrator's unit
    status, problem = await call(client, folks, "city_admin", "POST", "/api/v1/screens",
                                 {**new, "unit": "999999"})
    assert status == 404, problem
    status, screen = await call(client, folks, "city_admin", "POST", "/api/v1/screens", new)
    assert status == 201, screen
    assert screen["content"] is None and screen["account"] == "hall_screen"
    status, problem = await call(client, folks, "city_admin", "POST", "/api/v1/screens", new)
    assert status == 409, problem
    show = f"/api/v1/screens/{screen['id']}/show"
    # a desk of another unit neither drives nor sees it
    status, problem = await call(client, folks, "other_op", "POST", show, {
        "kind": "layout", "layout": "1", "cameras": [cams["other"]]})
    assert status == 403 and problem["status"] == 403
    assert (await call(client, folks, "other_op", "GET", "/api/v1/screens"))[1] == []
    assert (await call(client, folks, "city_view", "POST", show, {
        "kind": "layout", "layout": "1", "cameras": []}))[0] == 403  # viewers watch only
    # bad commands
    for body, field in (({}, "kind"), ({"kind": "layout", "layout": "1"}, "cameras"),
                        ({"view": 1, "kind": "layout"}, "view")):
        status, problem = await call(client, folks, "city_op", "POST", show, body)
        assert status == 422 and problem["field"] == field, problem
    status, problem = await call(client, folks, "city_op", "POST", show,
                                 {"kind": "layout", "layout": "9x9", "cameras": []})
    assert status == 422, problem
    status, problem = await call(client, folks, "city_op", "POST", "/api/v1/screens/77/show",
                                 {"kind": "layout", "layout": "1", "cameras": []})
    assert status == 404, problem
    # another user's saved view cannot be sent (nor is its existence told)
    _, private = await call(client, folks, "county_op", "POST", "/api/v1/views", {
        "kind": "layout", "name": "private", "layout": "1", "cameras": [cams["county"]]})
    status, problem = await call(client, folks, "city_op", "POST", show, {"view": private["id"]})
    assert status == 404, problem
    # an operator of the unit sends a saved view; an administrator above sends an ad-hoc one
    _, saved = await call(client, folks, "city_op", "POST", "/api/v1/views", {
        "kind": "layout", "name": "G60", "layout": "2x2",
        "cameras": [cams["city"], cams["county"]]})
    status, shown = await call(client, folks, "city_op", "POST", show, {"view": saved["id"]})
    assert status == 200, shown
    assert shown["content"] == {"kind": "layout", "layout": "2x2", "name": "G60",
                                "cameras": [cams["city"], cams["county"]], "seconds": None,
                                "view": saved["id"]}
    assert shown["changed_by"] == "city_op" and shown["changed_at"]
    status, listed = await call(client, folks, "hall_screen", "GET", "/api/v1/screens")
    assert [s["content"]["name"] for s in listed] == ["G60"]  # the screen sees itself
    status, shown = await call(client, folks, "admin", "POST", show, {
        "kind": "tour", "layout": "1", "cameras": [cams["city"], cams["county"]], "seconds": 5})
    assert status == 200 and shown["changed_by"] == "admin"
    status, listed = await call(client, folks, "city_op", "GET", "/api/v1/screens")
    assert listed[0]["content"]["kind"] == "tour" and listed[0]["changed_by"] == "admin"
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="admin"), limit=100)
    sends = [(r["user"], r["detail"]["screen_name"], r["detail"]["content"]["kind"])
             for r in records
             if r["action"] == "console.screen_show"]
    assert sorted(sends) == [("admin", "大屏 1 <hall>", "tour"),
                             ("city_op", "大屏 1 <hall>", "layout")]
    # only an administrator over its unit removes it
    assert (await call(client, folks, "city_op", "DELETE",
                       f"/api/v1/screens/{screen['id']}"))[0] == 403
    assert (await call(client, folks, "city_admin2", "DELETE",
                       f"/api/v1/screens/{screen['id']}"))[0] == 204
