"""WHEP viewers of real RTSP cameras (GStreamer's RTSP server as the simulator).

The simulator counts RTSP sessions itself, so "one upstream per camera" is checked
where a camera would see it, not inside camrelay.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from camrelay.relay.hub import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc.conftest import RelayFactory
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns


async def test_many_viewers_one_rtsp_session_at_the_camera(relay_factory: RelayFactory,
                                                           camsim: CamSim) -> None:
    before = camsim.play_count("/h264")
    relay = await relay_factory({1: SourceSpec(camsim.url("/h264"))})
    viewers = await asyncio.gather(*(WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
                                     for _ in range(4)))
    try:
        await asyncio.gather(*(v.wait_frames(15, timeout=15) for v in viewers))
        for viewer in viewers:
            numbers = [f.number for f in viewer.frames if f.number is not None]
            assert len(numbers) >= 10, "the burnt-in frame numbers must be readable"
        assert camsim.play_count("/h264") - before == 1
    finally:
        await asyncio.gather(*(v.close() for v in viewers))


async def test_flaky_camera_viewers_resume_in_the_same_session(relay_factory: RelayFactory,
                                                               camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/flaky"), read_timeout=2)})
    cuts = camsim.cut_count("/flaky")
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        location = viewer.location
        await viewer.wait_frames(10, timeout=10)
        # the simulator cuts its client 2 s after PLAY; the relay reconnects by itself
        async with asyncio.timeout(20):
            while camsim.cut_count("/flaky") <= cuts or camsim.play_count("/flaky") < 2:
                await asyncio.sleep(0.05)  # counters fed by the simulator's stdout
        seen = len(viewer.frames)
        await viewer.wait_frames(seen + 25, timeout=15)
        after = [f.number for f in viewer.frames[seen:] if f.number is not None]
        assert after, "frames after the reconnect must carry the source's frame numbers"
        # same WebRTC session: no renegotiation, the session resource is unchanged
        assert [s.id for s in relay.egress.sessions()] == [location.rsplit("/", 1)[1]]
        pts = [f.pts for f in viewer.frames]
        assert all(b >= a for a, b in itertools.pairwise(pts)), "RTP time must not go backwards"
    finally:
        await viewer.close()


async def test_auth_camera_plays_with_credentials_and_says_why_without(
        relay_factory: RelayFactory, camsim: CamSim) -> None:
    relay = await relay_factory({
        1: SourceSpec(camsim.url("/auth"), username=CamSim.USER, password=CamSim.PASSWORD),
        2: SourceSpec(camsim.url("/auth"), username=CamSim.USER, password="wrong-password",
                      connect_timeout=3, read_timeout=3),
    })
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        await viewer.wait_frames(5, timeout=10)
    finally:
        await viewer.close()
    with pytest.raises(WhepError) as refused:
        await WhepViewer.connect(relay.http, relay.url, 2, "tok-alice")
    status, body, headers = refused.value.status, refused.value.body, refused.value.headers
    assert status == 503 and "Retry-After" in headers
    assert '"reason": "auth"' in body
    assert CamSim.PASSWORD not in body and "wrong-password" not in body


async def test_h265_camera_plays_as_h264(relay_factory: RelayFactory, camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/h265"))})
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        assert "H264/90000" in viewer.answer and "H265" not in viewer.answer
        await viewer.wait_frames(15, timeout=15)
        numbers = [f.number for f in viewer.frames if f.number is not None]
        assert len(numbers) >= 10
        assert all(b > a for a, b in itertools.pairwise(numbers) if b > 5), numbers
    finally:
        await viewer.close()
