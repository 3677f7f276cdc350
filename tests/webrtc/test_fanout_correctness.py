"""The fan-out (``camrelay.relay.sinks.fanout``): one packetization per camera, every
viewer decodes the same pictures, NACK repairs a lost packet, a PLI gets a picture.

Real aiortc viewers against the real WHEP endpoint on loopback, with
``WebRtcConfig(fanout=True)``; every test runs twice: units sent by the C extension
(``_fastsend``) and by the pure-Python path.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aiortc.rtp import is_rtcp

from camrelay.relay.media import StreamKey
from camrelay.relay.sinks import fanout as fanout_module
from camrelay.relay.sinks.fanout import FanoutSender
from camrelay.relay.sinks.webrtc import WebRtcConfig, WebRtcSession
from tests.webrtc.conftest import HOST_ADDRESSES, Relay, RelayFactory, demo, wait_until
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

FANOUT = WebRtcConfig(host_addresses=HOST_ADDRESSES, connect_timeout=10, join_timeout=5)


@pytest.fixture(params=["extension-gso", "extension", "python"])
async def fan_relay(request: pytest.FixtureRequest, relay_factory: RelayFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Relay:
    if request.param == "python":
        monkeypatch.setattr(fanout_module, "EXTENSION", None)
    elif fanout_module.EXTENSION is None:
        pytest.fail("the C send path is not available (is a C compiler installed?)")
    else:
        monkeypatch.setattr(fanout_module, "GSO", request.param == "extension-gso")
    return await relay_factory({1: demo(2), 2: demo(4)}, config=FANOUT)


def numbers(viewer: WhepViewer) -> list[int]:
    return [f.number for f in viewer.frames if f.number is not None]


def gaps(seq: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(seq) if b - a != 1]


def live_numbers(viewer: WhepViewer) -> list[int]:
    """Frame numbers from the end of the join burst on (the burst is a GOP replay)."""
    frames = viewer.frames
    start = next((i + 1 for i, (a, b) in enumerate(itertools.pairwise(frames))
                  if b.pts - a.pts > 900), 0)
    return [f.number for f in frames[start:] if f.number is not None]


def session_of(relay: Relay, viewer: WhepViewer) -> WebRtcSession:
    session = relay.egress.get(viewer.location.rsplit("/", 1)[1])
    assert session is not None and session.fanout is not None
    return session


async def test_all_viewers_decode_the_same_frames_packetized_once(fan_relay: Relay) -> None:
    viewers = [await WhepViewer.connect(fan_relay.http, fan_relay.url, 1, "tok-alice")
               for _ in range(4)]
    try:
        await asyncio.gather(*(v.wait_frames(60, timeout=15) for v in viewers))
        lists = [live_numbers(v) for v in viewers]
        for seq in lists:
            assert len(seq) >= 30 and gaps(seq) == [], seq
        lo = max(seq[0] for seq in lists)
        hi = min(seq[-1] for seq in lists)
        assert hi - lo >= 20
        window = [[n for n in seq if lo <= n <= hi] for seq in lists]
        assert all(w == list(range(lo, hi + 1)) for w in window), window

        sessions = [session_of(fan_relay, v) for v in viewers]
        packetizer = fan_relay.egress.fanout.get(StreamKey(1)) \
            if fan_relay.egress.fanout else None
        assert packetizer is not None and packetizer.users == 4
        sent = sum(s.counters.units_sent for s in sessions)
        # each unit packetized once for the camera, however many viewers sent it
        assert packetizer.packetized <= max(s.counters.units_sent for s in sessions) + 60
        assert packetizer.packetized + packetizer.reused == sent
        for s in sessions:
            assert s.fanout is not None and s.fanout.counters.packets_sent > s.counters.units_sent
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    assert len(fan_relay.egress) == 0
    assert fan_relay.egress.fanout is not None and fan_relay.egress.fanout.get(StreamKey(1)) is None


async def test_nack_repairs_a_dropped_packet(fan_relay: Relay) -> None:
    other = await WhepViewer.connect(fan_relay.http, fan_relay.url, 1, "tok-alice")
    viewer = await WhepViewer.connect(fan_relay.http, fan_relay.url, 1, "tok-alice")
    try:
        await viewer.wait_frames(30)
        fanout = session_of(fan_relay, viewer).fanout
        assert fanout is not None
        dropped: list[bytes] = []
        # lost on the way to this viewer only: its ICE transport never hands it to DTLS
        # (before SRTP, so the viewer's replay window never saw it); wherever the relay
        # sends it from (C or Python path)
        ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
        recv = ice._recv
        ssrc = fanout._ssrc.to_bytes(4, "big")

        async def lossy_recv() -> Any:
            while True:
                data = await recv()
                if not dropped and 127 < data[0] < 192 and not is_rtcp(data) \
                        and data[8:12] == ssrc:
                    dropped.append(data)
                    continue
                return data

        ice._recv = lossy_recv
        await wait_until(lambda: bool(dropped), timeout=5)
        dropped_at = len(viewer.frames)
        await viewer.wait_frames(dropped_at + 25)
        await other.wait_frames(len(other.frames) + 5)
        assert fanout.counters.nack_requests >= 1
        assert fanout.counters.retransmitted >= 1
        seq = live_numbers(viewer)
        assert gaps(seq) == [], seq  # the frame with the lost packet decoded
        assert session_of(fan_relay, viewer).counters.replays == 0  # repaired, no PLI replay
        # and it is the same picture sequence as the viewer that lost nothing
        theirs = live_numbers(other)
        common = [n for n in seq if theirs[0] <= n <= theirs[-1]]
        assert common and common == [n for n in theirs if seq[0] <= n <= seq[-1]][:len(common)]
    finally:
        await viewer.close()
        await other.close()


async def test_pli_gets_a_decodable_picture(fan_relay: Relay) -> None:
    viewer = await WhepViewer.connect(fan_relay.http, fan_relay.url, 2, "tok-alice")
    try:
        await viewer.wait_frames(30)
        session = session_of(fan_relay, viewer)
        fanout = session.fanout
        assert isinstance(fanout, FanoutSender)
        bursts = session.counters.bursts
        # a real RTCP PLI from the viewer's receiver, through the DTLS transport's router
        receiver = viewer.pc.getTransceivers()[0].receiver
        # what was shown before the PLI (the replay may arrive before the counter is seen)
        before = len(viewer.frames)
        at_pli = numbers(viewer)[-1]
        await receiver._send_rtcp_pli(fanout._ssrc)
        await wait_until(lambda: fanout.counters.keyframe_requests == 1, timeout=5)
        # the replay starts at the GOP's keyframe and ends at the live picture
        await wait_until(lambda: any(f.number is not None and f.number > at_pli + 2
                                     for f in viewer.frames[before:]), timeout=5)
        assert session.counters.replays == 1
        assert session.counters.bursts == bursts + 1
        after = [f.number for f in viewer.frames[before:]]
        assert all(n is not None for n in after), after  # every picture decodes
        assert min(after) < at_pli  # the GOP from its keyframe, not just live P-frames
        live = fan_relay.live_frame_number(StreamKey(2))
        assert live - after[-1] <= 3, (live, after)
        assert after[-3:] == sorted(after[-3:])
    finally:
        await viewer.close()
