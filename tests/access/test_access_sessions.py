"""Who sees and ends live views, and what a failed view tells whom (camrelay issue 12).

* Administrators and auditors list only the sessions of cameras or viewers in their
  subtree; a county administrator neither sees a province viewer's session nor ends it
  (403, journalled as a refusal).
* An administrator over the camera ends a county viewer's view with a reason: an
  administrative action in the journal (who, why) and a close reason that names it.
* A 503 names the stream address only to a caller who manages the camera.

The full app (gate, journal, hub, WebRTC egress) serves demo cameras to real aiortc
viewers inside the suite's loopback-only network namespace.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role
from camrelay.access.journal import RecordFilter
from camrelay.settings import Settings
from camrelay.web.keys import JOURNAL_KEY, SETTINGS_KEY, WEBRTC_KEY
from tests.access.conftest import Folks, add_person
from tests.access.test_access_grants import decide, request_grant
from tests.conftest import World
from tests.webrtc.conftest import closed_port
from tests.webrtc.test_whep_errors import real_offer
from tests.whep_client import WhepViewer

DEMO = "demo:?width=320&height=240&fps=25&gop=1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # aioice never offers 127.0.0.1: the namespace's lo carries 127.0.0.2 for WebRTC
    return replace(settings, relay=replace(settings.relay, ice_host_addresses=["127.0.0.2"],
                                           linger_seconds=0.5))


@pytest.fixture(autouse=True)
def _netns() -> None:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")


async def watch(client: TestClient[Any, Any], folks: Folks, world: World, who: str,
                camera: str) -> WhepViewer:
    camera_id = folks.cameras[camera]
    await world.catalog.update_camera(camera_id, {"main_url": DEMO})
    viewer = await WhepViewer.connect(client.session, str(client.make_url("")).rstrip("/"),
                                      camera_id, folks.tokens[who], purpose="duty")
    await viewer.wait_frames(3, timeout=10)
    return viewer


def session_id(viewer: WhepViewer) -> str:
    return viewer.location.rsplit("/", 1)[1]


async def listed(client: TestClient[Any, Any], folks: Folks, who: str) -> set[str]:
    r = await client.get("/api/v1/sessions", headers=folks.h(who))
    assert r.status == 200, await r.text()
    return {s["id"] for s in await r.json()}


async def end(client: TestClient[Any, Any], folks: Folks, who: str, viewer: WhepViewer,
              reason: str | None = "privacy complaint") -> tuple[int, str]:
    params = {} if reason is None else {"reason": reason}
    r = await client.delete(viewer.location, params=params, headers=folks.h(who))
    return r.status, await r.text()


async def admin_events(client: TestClient[Any, Any], result: str) -> list[dict[str, Any]]:
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="admin", result=result),
                                                    limit=100)
    return [r for r in records if r["action"] == "view.end"]


async def test_county_admin_neither_lists_nor_ends_a_province_view(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    await add_person(world, folks, "county_admin", "330110", Role.ADMINISTRATOR)
    prov = await watch(client, folks, world, "prov_op", "prov")
    county = await watch(client, folks, world, "county_op", "county")
    try:
        assert await listed(client, folks, "county_admin") == {session_id(county)}
        assert await listed(client, folks, "admin") == {session_id(prov), session_id(county)}
        status, body = await end(client, folks, "county_admin", prov)
        assert status == 403, body
        assert "jurisdiction" in body
        # the province viewer still plays
        assert len(client.app[WEBRTC_KEY]) == 2
        seen = len(prov.frames)
        await prov.wait_frames(seen + 5, timeout=5)
        (refusal,) = await admin_events(client, "denied")
        assert refusal["user"] == "county_admin" and refusal["camera_id"] == folks.cameras["prov"]
        assert refusal["detail"]["viewer"] == "prov_op"
        assert refusal["detail"]["reason_given"] == "privacy complaint"
        assert await admin_events(client, "ok") == []
    finally:
        await asyncio.gather(prov.close(), county.close())
    (record,) = await client.app[JOURNAL_KEY].records(
        RecordFilter(kind="view", user="prov_op"), limit=10)
    assert record["close_reason"] == "ended by viewer"  # the viewer's own DELETE


async def test_province_admin_ends_a_county_view_with_a_reason(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    viewer = await watch(client, folks, world, "county_op", "county")
    try:
        status, body = await end(client, folks, "admin", viewer, reason=None)
        assert status == 400 and "reason" in body  # ending someone's view needs a why
        assert len(client.app[WEBRTC_KEY]) == 1
        status, body = await end(client, folks, "admin", viewer)
        assert status == 200, body
        async with asyncio.timeout(2):
            await viewer.ended.wait()  # the server closed the viewer's peer connection
        assert len(client.app[WEBRTC_KEY]) == 0
        assert await viewer.delete() == 404
    finally:
        await viewer.close(delete=False)
    (record,) = await client.app[JOURNAL_KEY].records(
        RecordFilter(kind="view", user="county_op"), limit=10)
    assert record["close_reason"] == "ended by administrator admin: privacy complaint"
    (action,) = await admin_events(client, "ok")
    assert action["user"] == "admin" and action["reason"] == "privacy complaint"
    assert action["camera_id"] == folks.cameras["county"] and action["camera_unit"] == "330110"
    assert action["detail"]["viewer"] == "county_op"
    assert action["view_id"] == record["view_id"]
    assert await admin_events(client, "denied") == []


async def test_auditors_see_their_subtree_and_end_nothing(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    # the county's operator watches a camera of another city under a grant: the city
    # above the viewer oversees that view, though the camera is not theirs
    grant = await request_grant(client, folks, "county_op", grantee_user="county_op",
                                cameras=[folks.cameras["other"]])
    await decide(client, folks, "approver", grant["id"], "approve")
    prov = await watch(client, folks, world, "prov_op", "prov")
    granted = await watch(client, folks, world, "county_op", "other")
    try:
        assert await listed(client, folks, "prov_auditor") == {session_id(prov),
                                                               session_id(granted)}
        assert await listed(client, folks, "city_auditor") == {session_id(granted)}
        assert await listed(client, folks, "city_admin") == {session_id(granted)}
        r = await client.get("/api/v1/sessions", headers=folks.h("city_view"))
        assert r.status == 403
        status, body = await end(client, folks, "city_auditor", granted)
        assert status == 403, body
        (refusal,) = await admin_events(client, "denied")
        assert refusal["user"] == "city_auditor" and refusal["detail"]["viewer"] == "county_op"
        # the city's administrator oversees the viewer, so may end the view
        status, body = await end(client, folks, "city_admin", granted, reason="not on duty")
        assert status == 200, body
        assert await listed(client, folks, "prov_auditor") == {session_id(prov)}
    finally:
        await asyncio.gather(prov.close(), granted.close(delete=False))
    (record,) = await client.app[JOURNAL_KEY].records(
        RecordFilter(kind="view", user="county_op"), limit=10)
    assert record["close_reason"] == "ended by administrator city_admin: not on duty"


async def test_a_503_names_the_stream_address_only_to_who_manages_the_camera(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    port = closed_port()
    address = f"127.0.0.1:{port}"
    for camera in ("other", "county"):
        await world.catalog.update_camera(folks.cameras[camera],
                                          {"main_url": f"rtsp://{address}/h264"})
    other = folks.cameras["other"]
    grant = await request_grant(client, folks, "county_op", grantee_user="county_op",
                                cameras=[other], actions=["live"])
    await decide(client, folks, "approver", grant["id"], "approve")
    r = await client.get(f"/api/v1/cameras/{other}", headers=folks.h("county_op"))
    assert (await r.json()).get("main_url") is None  # the API does not show it to them
    offer = await real_offer()

    async def whep(who: str) -> dict[str, Any]:
        r = await client.post(f"/whep/{other}", data=offer, headers={
            **folks.h(who), "Content-Type": "application/sdp"})
        assert r.status == 503, await r.text()
        assert int(r.headers["Retry-After"]) > 0
        return dict(await r.json())

    async def snapshot(who: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/cameras/{folks.cameras['county']}/snapshot.jpg",
                             headers=folks.h(who))
        assert r.status == 503, await r.text()
        return dict(await r.json())

    # a live-only grantee and a viewer of the own city: the reason, no address
    for problem in (await whep("county_op"), await snapshot("city_view")):
        assert problem["reason"] == "unreachable"
        assert str(port) not in str(problem) and "rtsp" not in str(problem), problem
    # who manages the camera still reads the whole failure
    assert address in (await whep("admin"))["detail"]
    assert address in (await snapshot("city_tech"))["detail"]


async def test_the_cluster_route_alone_counts_this_node_filtered_to_the_subtree(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    prov = await watch(client, folks, world, "prov_op", "prov")
    county = await watch(client, folks, world, "county_op", "county")
    try:
        r = await client.get("/api/v1/cluster", headers=folks.h("prov_auditor"))
        assert r.status == 200, await r.text()
        body = await r.json()
        assert body["clustered"] is False  # no redis_url: this node alone
        (node,) = body["nodes"]
        assert node["viewers"] == 2 and node["cameras"] == 2 and node["processes"] == 1
        assert node["url"] == client.app[SETTINGS_KEY].public_url
        assert body["cameras"] == sorted([{"camera_id": folks.cameras["prov"], "viewers": 1},
                                          {"camera_id": folks.cameras["county"], "viewers": 1}],
                                         key=lambda x: x["camera_id"])
        assert body["units"] == [{"unit": "330000", "viewers": 1},
                                 {"unit": "330110", "viewers": 1}]
        # the city's auditor: the county's camera and unit only, the node's load as totals
        r = await client.get("/api/v1/cluster", headers=folks.h("city_auditor"))
        body = await r.json()
        assert body["cameras"] == [{"camera_id": folks.cameras["county"], "viewers": 1}]
        assert body["units"] == [{"unit": "330110", "viewers": 1}]
        assert body["nodes"][0]["viewers"] == 2
        for who in ("city_view", "prov_op"):
            r = await client.get("/api/v1/cluster", headers=folks.h(who))
            assert r.status == 403, await r.text()
            assert r.headers["Content-Type"].startswith("application/problem+json")
        r = await client.get("/api/v1/cluster")
        assert r.status == 401
    finally:
        await asyncio.gather(prov.close(), county.close())
    r = await client.get("/api/v1/cluster", headers=folks.h("admin"))
    assert (await r.json())["cameras"] == []  # the views ended: their seats are given back
