"""Field video over WHIP (RFC 9725): a real aiortc publisher feeds a ``whip:`` camera and
real WHEP viewers watch it through the hub, without re-encoding; the feed is journalled."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role, TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.relay.media import StreamKey
from camrelay.web.keys import HUB_KEY, JOURNAL_KEY, WEBRTC_KEY
from tests.conftest import World, auth
from tests.whep_client import WhepError, WhepViewer
from tests.whip_client import WhipError, WhipPublisher

pytestmark = pytest.mark.netns


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _token(world: World, name: str, unit: str, role: Role) -> str:
    user = await world.accounts.add_user(name, unit_code=unit, role=role,
                                         password="correct horse battery")
    token, _ = await world.accounts.create_token(user.id, kind=TokenKind.API, name="device")
    return token


async def _field_camera(client: TestClient[Any, Any], world: World) -> int:
    r = await client.post("/api/v1/cameras", headers=auth(world.admin_token), json={
        "external_id": "bodycam-7", "name": "执法记录仪 7", "unit": "330100",
        "category": "bridge", "camera_type": "body_worn", "main_url": "whip:"})
    camera = await r.json()
    assert r.status == 201, camera
    assert camera["main_url"] == "whip:" and camera["camera_type"] == "body_worn"
    return int(camera["id"])


async def _journal(client: TestClient[Any, Any], camera: int) -> list[dict[str, Any]]:
    assert client.app is not None
    return await client.app[JOURNAL_KEY].records(RecordFilter(camera_id=camera), limit=100)


async def test_publisher_reaches_viewers_without_reencoding_and_is_journalled(
        client: TestClient[Any, Any], world: World) -> None:
    assert client.app is not None
    camera = await _field_camera(client, world)
    device = await _token(world, "bodycam7", "330100", Role.OPERATOR)
    base = str(client.make_url("")).rstrip("/")
    http = client.session

    # no publisher: the camera is offline with the reason "no publisher"
    with pytest.raises(WhepError) as refused:
        await WhepViewer.connect(http, base, camera, world.admin_token)
    assert refused.value.status == 503 and "no_publisher" in refused.value.body

    publisher = await WhipPublisher.connect(http, base, camera, device)
    viewer = None
    try:
        assert publisher.location.startswith(f"/whip/{camera}/sessions/")
        # a second publisher to the same camera: 409
        with pytest.raises(WhipError) as second:
            await WhipPublisher.connect(http, base, camera, device)
        assert second.value.status == 409 and "publisher_connected" in second.value.body
        # PATCH (trickle ICE): not supported, 405 as RFC 9725 allows
        r = await http.patch(base + publisher.location, headers=auth(device))
        assert r.status == 405 and "DELETE" in r.headers["Allow"]

        viewer = await WhepViewer.connect(http, base, camera, world.admin_token)
        await viewer.wait_frames(30, timeout=15)
        numbers = [f.number for f in viewer.frames if f.number is not None]
        assert len(numbers) >= 20 and numbers[-1] > numbers[0], numbers
        assert all(b > a for a, b in itertools.pairwise(numbers)), numbers
        assert (viewer.frames[-1].width, viewer.frames[-1].height) == (320, 240)

        # the publisher's H.264 as it came: one plain stream, nothing transcoded
        hub = client.app[HUB_KEY]
        assert [s.key for s in hub.status()] == [StreamKey(camera)]
        assert not hub.is_transcoded(StreamKey(camera))
        (session,) = client.app[WEBRTC_KEY].sessions()
        assert not session.info().transcoded

        # the device's position, shown with the camera while it publishes
        r = await http.post(f"{base}/whip/{camera}/position", headers=auth(device),
                            json={"latitude": 30.27, "longitude": 120.15,
                                  "time": "2026-05-01T08:00:00+08:00"})
        assert r.status == 200, await r.text()
        r = await http.post(f"{base}/whip/{camera}/position", headers=auth(device),
                            json={"latitude": 91, "longitude": 120.15,
                                  "time": "2026-05-01T08:00:00+08:00"})
        problem = await r.json(content_type=None)
        assert r.status == 422 and r.content_type == "application/problem+json", problem
        r = await http.get(f"{base}/api/v1/cameras/{camera}", headers=auth(world.admin_token))
        shown = await r.json()
        assert shown["status"] == "online"
        assert shown["live_position"]["latitude"] == 30.27
        assert shown["live_position"]["time"] == "2026-05-01T00:00:00Z"

        # DELETE ends the feed: the viewer's session ends, the camera is offline
        assert await publisher.delete() == 200
        await asyncio.wait_for(viewer.ended.wait(), 10)
    finally:
        if viewer is not None:
            await viewer.close(delete=False)
        await publisher.close(delete=False)
    r = await http.get(f"{base}/api/v1/cameras/{camera}", headers=auth(world.admin_token))
    shown = await r.json()
    assert shown["status"] == "offline" and shown["live_position"] is None
    with pytest.raises(WhepError) as after:
        await WhepViewer.connect(http, base, camera, world.admin_token)
    assert after.value.status == 503 and "no_publisher" in after.value.body

    records = await _journal(client, camera)
    opened = [e for e in records if e["kind"] == "feed.open"]
    closed = [e for e in records if e["kind"] == "feed.close"]
    assert len(opened) == 1 and len(closed) == 1, records
    assert opened[0]["user"] == "bodycam7" and opened[0]["client_address"] == "127.0.0.1"
    assert closed[0]["reason"] == "ended by publisher"
    assert closed[0]["detail"]["seconds"] > 0 and closed[0]["detail"]["units"] > 0


async def test_publishing_needs_a_token_with_the_right(
        client: TestClient[Any, Any], world: World) -> None:
    camera = await _field_camera(client, world)
    base = str(client.make_url("")).rstrip("/")
    with pytest.raises(WhipError) as unknown:
        await WhipPublisher.connect(client.session, base, camera, "not-a-token")
    assert unknown.value.status == 401
    # a viewer may watch but not publish; an operator of another county may not either
    for token in (await _token(world, "watcher", "330100", Role.VIEWER),
                  await _token(world, "elsewhere", "330110", Role.OPERATOR)):
        with pytest.raises(WhipError) as denied:
            await WhipPublisher.connect(client.session, base, camera, token)
        assert denied.value.status == 403, denied.value.body
    denied_events = [e for e in await _journal(client, camera) if e["kind"] == "feed.denied"]
    assert sorted(e["user"] for e in denied_events) == ["elsewhere", "watcher"]
    assert all(e["result"] == "denied" and e["reason"] for e in denied_events)
