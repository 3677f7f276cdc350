"""Real aiortc WHEP viewers against the WHEP endpoint on loopback."""

from __future__ import annotations

import asyncio
import re

import pytest

from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc.conftest import Relay, RelayFactory, wait_until
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns


async def test_several_viewers_of_one_camera_all_decode(relay: Relay) -> None:
    viewers = await asyncio.gather(*(WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
                                      for _ in range(3)))
    try:
        await asyncio.gather(*(v.wait_frames(10, timeout=10) for v in viewers))
        for v in viewers:
            numbers = [f.number for f in v.frames if f.number is not None]
            assert len(numbers) >= 9, "frame numbers must be readable"
            assert numbers == sorted(numbers)
            assert (v.frames[0].width, v.frames[0].height) == (320, 240)
        assert len(relay.egress) == 3
        assert len(relay.streams()) == 1  # one upstream for all viewers
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    assert len(relay.egress) == 0


async def test_answer_and_headers(relay: Relay) -> None:
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        session_id = viewer.location.rsplit("/", 1)[1]
        assert viewer.location == f"/whep/1/sessions/{session_id}"
        assert len(session_id) == 32
        assert viewer.etag and viewer.etag.startswith('"') and viewer.etag.endswith('"')
        assert viewer.headers["Content-Type"] == "application/sdp"
        assert "Link" not in viewer.headers  # no ICE servers configured
        sdp = viewer.answer
        assert "a=sendonly" in sdp
        assert "H264/90000" in sdp
        assert "VP8" not in sdp
        # the camera's real profile-level-id, not aiortc's defaults
        plid = relay.egress.sessions()[0].sub.info.profile_level_id
        assert plid
        assert f"profile-level-id={plid}" in sdp
        assert "packetization-mode=1" in sdp
        # only the configured host address is offered, no STUN
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" 127.0.0.2 " in c for c in candidates)
        assert all(" typ host" in c for c in candidates)
        await viewer.wait_frames(3)
        ttfm = relay.egress.sessions()[0].time_to_first_media
        assert ttfm is not None and 0 < ttfm < 1
    finally:
        await viewer.close()


async def test_delete_releases_session_subscription_and_view(relay: Relay) -> None:
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    await viewer.wait_frames(2)
    assert relay.open_subscriptions() == 1
    assert len(relay.gate.open_views()) == 1
    assert await viewer.delete() == 200
    assert len(relay.egress) == 0
    assert relay.open_subscriptions() == 0
    assert relay.gate.open_views() == []
    assert relay.gate.views[0].closed == "ended by viewer"
    assert await viewer.delete() == 404  # gone
    await viewer.close(delete=False)


async def test_only_owner_may_delete(relay: Relay) -> None:
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        async with relay.http.delete(relay.url + viewer.location,
                                     headers={"Authorization": "Bearer tok-bob"}) as r:
            assert r.status == 403
        assert len(relay.egress) == 1
    finally:
        await viewer.close()


async def test_revocation_closes_session_at_once(relay: Relay) -> None:
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    await viewer.wait_frames(2)
    view = relay.gate.views[0]
    await view.revoke("grant withdrawn")
    assert len(relay.egress) == 0
    assert relay.open_subscriptions() == 0
    assert view.closed == "revoked: grant withdrawn"
    # the viewer's peer connection notices the end (DTLS close / ICE consent)
    await viewer.close(delete=False)


async def test_viewer_that_never_connects_is_closed(relay_factory: RelayFactory) -> None:
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from tests.webrtc.conftest import HOST_ADDRESSES

    relay = await relay_factory(
        config=WebRtcConfig(host_addresses=HOST_ADDRESSES, connect_timeout=0.5))
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with relay.http.post(f"{relay.url}/whep/1", data=pc.localDescription.sdp,
                               headers={"Content-Type": "application/sdp",
                                        "Authorization": "Bearer tok-alice"}) as r:
        assert r.status == 201
    await pc.close()  # never applies the answer
    session = relay.egress.sessions()[0]
    await asyncio.wait_for(session.closed.wait(), 5)
    assert len(relay.egress) == 0
    assert relay.open_subscriptions() == 0


async def test_pli_is_answered_by_replaying_the_current_gop(relay: Relay) -> None:
    viewer = await WhepViewer.connect(relay.http, relay.url, 2, "tok-alice")
    try:
        await viewer.wait_frames(5)
        session = relay.egress.sessions()[0]
        bursts = session.counters.bursts
        # what aiortc's RTCRtpSender does on an incoming PLI/FIR
        sender = session.pc.getTransceivers()[0].sender
        sender._send_keyframe()
        before = len(viewer.frames)
        await viewer.wait_frames(before + 5)
        assert session.counters.keyframe_requests == 1
        assert session.counters.bursts == bursts + 1
        assert session.counters.replays == 1
        numbers = [f.number for f in viewer.frames if f.number is not None]
        # the replayed GOP decodes, but nothing goes backwards at the end: the last
        # numbers are live and increasing
        assert numbers[-3:] == sorted(numbers[-3:])
        await wait_until(lambda: relay.live_frame_number(session.key)
                         - (viewer.frames[-1].number or 0) <= 3, timeout=3)
    finally:
        await viewer.close()


@pytest.fixture
async def main_profile_relay(relay_factory: RelayFactory, camsim: CamSim) -> Relay:
    """Camera 3 is the RTSP camera simulator's Main-profile clip."""
    return await relay_factory({3: SourceSpec(camsim.url("main"))})


async def test_main_profile_camera_keeps_its_profile_when_offered(
        main_profile_relay: Relay) -> None:
    relay = main_profile_relay
    viewer = await WhepViewer.connect(relay.http, relay.url, 3, "tok-alice")
    try:
        session = relay.egress.sessions()[0]
        plid = session.sub.info.profile_level_id
        assert plid and plid.startswith("4d"), plid
        assert f"profile-level-id={plid}" in viewer.answer
        assert session.key.transcode is False
        await viewer.wait_frames(3)
        assert (viewer.frames[0].width, viewer.frames[0].height) == (640, 360)
    finally:
        await viewer.close()


def baseline_only(sdp: str) -> str:
    """Drop the High/Main H.264 payload types (and their RTX) from an offer."""
    drop = set(re.findall(r"a=fmtp:(\d+) .*profile-level-id=(?:64|4d)", sdp))
    drop |= {pt for pt, apt in re.findall(r"a=fmtp:(\d+) apt=(\d+)", sdp) if apt in drop}
    out = []
    for line in sdp.splitlines():
        m = re.match(r"a=(?:rtpmap|fmtp|rtcp-fb):(\d+)", line)
        if m and m.group(1) in drop:
            continue
        if line.startswith("m=video"):
            parts = line.split()
            line = " ".join(parts[:3] + [p for p in parts[3:] if p not in drop])
        out.append(line)
    return "\r\n".join(out) + "\r\n"


async def test_offer_without_the_camera_profile_gets_the_transcoded_stream(
        main_profile_relay: Relay) -> None:
    relay = main_profile_relay
    viewer = await WhepViewer.connect(relay.http, relay.url, 3, "tok-alice",
                                      munge_offer=baseline_only)
    try:
        session = relay.egress.sessions()[0]
        assert session.key.transcode is True
        assert "profile-level-id=42" in viewer.answer
        await viewer.wait_frames(3)
        keys = {status.key: status.consumers for status in relay.hub.status()}
        assert keys[session.key] == 1
    finally:
        await viewer.close()
