"""Sound from and to field devices: a WHIP publisher's Opus reaches WHEP viewers as it
came, and an operator's talk-back reaches a device that offered to receive audio.

Every peer is a real aiortc peer connection that encodes a 440 Hz tone and decodes what
it receives; the app is the real one on SQLite."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role
from camrelay.web.keys import WEBRTC_KEY, WHIP_KEY
from tests.conftest import World, auth
from tests.webrtc.test_whep_audio import SILENCE, _audio_line
from tests.webrtc.test_whip import _field_camera, _journal, _token
from tests.whep_client import WhepViewer
from tests.whip_client import Talker, WhipError, WhipPublisher

pytestmark = pytest.mark.netns


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_publisher_opus_reaches_a_viewer_as_it_came(
        client: TestClient[Any, Any], world: World) -> None:
    assert client.app is not None
    camera = await _field_camera(client, world)
    device = await _token(world, "bodycam7", "330100", Role.OPERATOR)
    base = str(client.make_url("")).rstrip("/")
    publisher = await WhipPublisher.connect(client.session, base, camera, device,
                                            audio="sendonly")
    viewer = None
    try:
        # the device's audio is received (not answered inactive), in Opus
        audio = _audio_line(publisher.answer)
        assert "a=recvonly" in audio and "opus/48000" in audio.lower(), audio
        viewer = await WhepViewer.connect(client.session, base, camera, world.admin_token,
                                          audio=True)
        audio = _audio_line(viewer.answer)
        assert "a=sendonly" in audio and "opus/48000" in audio.lower(), audio
        await asyncio.gather(viewer.wait_frames(10, timeout=15), viewer.wait_audio(50, 15))
        assert max(viewer.audio_rms[-25:]) > SILENCE, viewer.audio_rms[-25:]
        # passed through: no Opus encoder was started for it
        egress = client.app[WEBRTC_KEY]
        assert egress.audio.created == 0 and len(egress.audio) == 0
        feed = client.app[WHIP_KEY].of_camera(camera)
        assert feed is not None and feed.feed.audio_units > 50
    finally:
        if viewer is not None:
            await viewer.close()
        await publisher.close()
    views = [e for e in await _journal(client, camera) if e["kind"] == "view"]
    assert views and views[-1]["audio"] == "opus", views


async def test_talk_back_reaches_the_field_device_and_is_journalled(
        client: TestClient[Any, Any], world: World) -> None:
    assert client.app is not None
    camera = await _field_camera(client, world)
    device = await _token(world, "bodycam7", "330100", Role.OPERATOR)
    duty = await _token(world, "duty", "330100", Role.OPERATOR)
    base = str(client.make_url("")).rstrip("/")
    http = client.session

    # the rights the camera shows: a duty operator publishes and talks, a viewer neither
    watcher = await _token(world, "watcher", "330100", Role.VIEWER)
    for token, expected in ((duty, {"publish", "talk"}), (watcher, set())):
        r = await http.get(f"{base}/api/v1/cameras/{camera}", headers=auth(token))
        assert {"publish", "talk"} & set((await r.json())["rights"]) == expected
    # no publisher yet: 409 no_publisher
    with pytest.raises(WhipError) as none:
        await Talker.connect(http, base, camera, duty)
    assert none.value.status == 409 and "no_publisher" in none.value.body
    publisher = await WhipPublisher.connect(http, base, camera, device, audio="sendrecv")
    talker = None
    try:
        audio = _audio_line(publisher.answer)
        assert "a=sendrecv" in audio and "opus/48000" in audio.lower(), audio
        talker = await Talker.connect(http, base, camera, duty)
        assert talker.location.startswith(f"/talk/{camera}/sessions/")
        # one talker at a time
        with pytest.raises(WhipError) as busy:
            await Talker.connect(http, base, camera, world.admin_token)
        assert busy.value.status == 409 and "talk_busy" in busy.value.body
        await publisher.wait_heard(50, timeout=15)
        assert max(publisher.heard_rms[-25:]) > SILENCE, publisher.heard_rms[-25:]
        assert await talker.close() == 200
        talker = None
    finally:
        if talker is not None:
            await talker.close()
        await publisher.close()

    # no right: a viewer of the unit, an operator of another county; journalled
    for token in (watcher, await _token(world, "elsewhere", "330110", Role.OPERATOR)):
        with pytest.raises(WhipError) as denied:
            await Talker.connect(http, base, camera, token)
        assert denied.value.status == 403, denied.value.body

    records = await _journal(client, camera)
    opened = [e for e in records if e["kind"] == "talk.open"]
    closed = [e for e in records if e["kind"] == "talk.close"]
    assert [e["user"] for e in opened] == ["duty"] and opened[0]["action"] == "talk"
    assert len(closed) == 1 and closed[0]["reason"] == "ended by talker", closed
    assert closed[0]["detail"]["seconds"] > 0 and closed[0]["detail"]["packets"] > 50
    denied_events = [e for e in records if e["kind"] == "talk.denied"]
    assert sorted(e["user"] for e in denied_events) == ["elsewhere", "watcher"]


async def test_talk_back_needs_a_device_that_receives_audio(
        client: TestClient[Any, Any], world: World) -> None:
    camera = await _field_camera(client, world)
    device = await _token(world, "bodycam7", "330100", Role.OPERATOR)
    base = str(client.make_url("")).rstrip("/")
    publisher = await WhipPublisher.connect(client.session, base, camera, device,
                                            audio="sendonly")
    try:
        with pytest.raises(WhipError) as refused:
            await Talker.connect(client.session, base, camera, world.admin_token)
        assert refused.value.status == 409 and "no_talkback" in refused.value.body
    finally:
        await publisher.close()
