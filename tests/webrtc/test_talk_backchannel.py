"""Talk-back to an RTSP camera's ONVIF audio back-channel: a real aiortc talker sends a
440 Hz tone as Opus to ``POST /talk/{camera_id}``; camrelay decodes it, encodes G.711
and sends it on a back-channel RTSP session to the simulator's ``/backchannel`` mount,
which reports the level it decodes.  The app is the real one on SQLite."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role
from camrelay.web.keys import WHIP_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import World, auth
from tests.webrtc.test_whip import _journal, _token
from tests.whip_client import Talker, WhipError

pytestmark = pytest.mark.netns

HEARD_DB = -30.0  # dBFS; the talker's tone peaks near -10, silence is -inf


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _rtsp_camera(client: TestClient[Any, Any], world: World, name: str, url: str,
                       **extra: str) -> int:
    r = await client.post("/api/v1/cameras", headers=auth(world.admin_token), json={
        "external_id": name, "name": name, "unit": "330100", "category": "bridge",
        "main_url": url, **extra})
    camera = await r.json()
    assert r.status == 201, camera
    return int(camera["id"])


async def _camera_json(client: TestClient[Any, Any], camera: int, token: str
                       ) -> dict[str, Any]:
    r = await client.get(f"/api/v1/cameras/{camera}", headers=auth(token))
    assert r.status == 200, await r.text()
    shown: dict[str, Any] = await r.json()
    return shown


async def test_talk_back_reaches_the_camera_back_channel_and_is_journalled(
        client: TestClient[Any, Any], world: World, camsim: CamSim) -> None:
    camera = await _rtsp_camera(client, world, "bc-1", camsim.url("/backchannel"))
    duty = await _token(world, "duty", "330100", Role.OPERATOR)
    watcher = await _token(world, "watcher", "330100", Role.VIEWER)
    base = str(client.make_url("")).rstrip("/")
    http = client.session

    # the rights the camera shows: the duty operator may talk, a viewer may not; whether
    # the camera has a back-channel is not known before anyone asked
    for token, expected in ((duty, True), (watcher, False)):
        shown = await _camera_json(client, camera, token)
        assert ("talk" in shown["rights"]) is expected and shown["backchannel"] is None

    plays = camsim.play_count("/backchannel")
    talker = await Talker.connect(http, base, camera, duty)
    try:
        assert talker.location.startswith(f"/talk/{camera}/sessions/")
        assert "a=recvonly" in talker.answer and "opus/48000" in talker.answer.lower()
        # one talker at a time
        with pytest.raises(WhipError) as busy:
            await Talker.connect(http, base, camera, world.admin_token)
        assert busy.value.status == 409 and "talk_busy" in busy.value.body
        # the camera hears the tone: a peak well above silence
        await camsim.wait_heard("/backchannel", HEARD_DB, timeout=15)
        assert camsim.play_count("/backchannel") == plays + 1
        assert await talker.close() == 200
        talker = None
    finally:
        if talker is not None:
            await talker.close()
    await camsim.wait_live("/backchannel", 0)  # the back-channel session was torn down
    assert (await _camera_json(client, camera, duty))["backchannel"] is True

    # no right: a viewer of the unit; journalled
    with pytest.raises(WhipError) as denied:
        await Talker.connect(http, base, camera, watcher)
    assert denied.value.status == 403, denied.value.body

    records = await _journal(client, camera)
    opened = [e for e in records if e["kind"] == "talk.open"]
    closed = [e for e in records if e["kind"] == "talk.close"]
    assert [e["user"] for e in opened] == ["duty"] and opened[0]["action"] == "talk"
    assert len(closed) == 1 and closed[0]["reason"] == "ended by talker", closed
    detail = closed[0]["detail"]
    assert detail["codec"] == "PCMU" and detail["seconds"] > 0 and detail["packets"] > 25
    assert [e["user"] for e in records if e["kind"] == "talk.denied"] == ["watcher"]


async def test_the_camera_ending_the_back_channel_ends_the_talk(
        client: TestClient[Any, Any], world: World, camsim: CamSim) -> None:
    assert client.app is not None
    camera = await _rtsp_camera(client, world, "bc-2", camsim.url("/flakyback"))
    cuts = camsim.cut_count("/flakyback")
    base = str(client.make_url("")).rstrip("/")
    talker = await Talker.connect(client.session, base, camera, world.admin_token)
    try:
        session = client.app[WHIP_KEY].talk(talker.location.rsplit("/", 1)[1])
        assert session is not None
        async with asyncio.timeout(CamSim.FLAKY_SECONDS + 10):
            await session.closed.wait()  # the simulator cut the back-channel's connection
        assert camsim.cut_count("/flakyback") == cuts + 1
        assert client.app[WHIP_KEY].talk(session.id) is None
    finally:
        await talker.close(delete=False)
    closed = [e for e in await _journal(client, camera) if e["kind"] == "talk.close"]
    assert len(closed) == 1 and closed[0]["reason"] == "the camera ended the back-channel"
    assert closed[0]["detail"]["packets"] > 0, closed
    # a talk is allowed again at once
    again = await Talker.connect(client.session, base, camera, world.admin_token)
    assert await again.close() == 200


async def test_a_camera_without_back_channel_is_409_no_talkback(
        client: TestClient[Any, Any], world: World, camsim: CamSim) -> None:
    plain = await _rtsp_camera(client, world, "plain-1", camsim.url("/h264"))
    guarded = await _rtsp_camera(client, world, "auth-1", camsim.url("/auth"),
                                 username=CamSim.USER, password=CamSim.PASSWORD)
    base = str(client.make_url("")).rstrip("/")
    for camera in (plain, guarded):
        assert "talk" in (await _camera_json(client, camera, world.admin_token))["rights"]
        with pytest.raises(WhipError) as refused:
            await Talker.connect(client.session, base, camera, world.admin_token)
        assert refused.value.status == 409 and "no_talkback" in refused.value.body
        assert CamSim.PASSWORD not in refused.value.body
        assert not [e for e in await _journal(client, camera) if e["kind"] == "talk.open"]
        # found without one: the right talk is no longer shown (asking again still asks)
        shown = await _camera_json(client, camera, world.admin_token)
        assert shown["backchannel"] is False and "talk" not in shown["rights"], shown
    # a new stream address forgets what was found
    r = await client.patch(f"/api/v1/cameras/{plain}", headers=auth(world.admin_token),
                           json={"main_url": camsim.url("/backchannel")})
    assert r.status == 200, await r.text()
    shown = await _camera_json(client, plain, world.admin_token)
    assert shown["backchannel"] is None and "talk" in shown["rights"]
    # a camera that cannot be talked to at all: not rtsp:// (no address): 409 at once
    nothing = await _rtsp_camera(client, world, "demo-1", "demo:")
    assert "talk" not in (await _camera_json(client, nothing, world.admin_token))["rights"]
    with pytest.raises(WhipError) as refused:
        await Talker.connect(client.session, base, nothing, world.admin_token)
    assert refused.value.status == 409 and "no_talkback" in refused.value.body
