"""``camrelay.relay.sinks.aiortc_internals``: the pinned aiortc version is checked at
import, and the fan-out is attached as an aiortc sender's media path through our
``RTCRtpSender`` subclass (not by replacing a method on the instance)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiortc import RTCRtpSender

from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.sinks.aiortc_internals import ExternalMediaSender, SendLink
from camrelay.relay.sinks.fanout import FanoutSender
from tests.webrtc.conftest import HOST_ADDRESSES, RelayFactory, demo
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("module", ["camrelay.relay.sinks.aiortc_internals",
                                    "camrelay.relay.sinks.webrtc"])
def test_another_aiortc_minor_is_refused_at_import_naming_it(module: str) -> None:
    # our own check, fed another version string: the installed aiortc is not touched
    code = f"import aiortc; aiortc.__version__ = '1.17.0'; import {module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("camrelay.relay.sinks.aiortc_internals.UnsupportedAiortc: "), last
    assert "aiortc 1.17.0 is installed" in last and "needs aiortc 1.16.x" in last, last


def test_the_pinned_minor_passes_and_others_fail() -> None:
    for ok in ("1.16.0", "1.16.7"):
        aiortc_internals.check_aiortc_version(ok)
    for bad in ("1.15.2", "1.17.0", "2.16.0", "1.1"):
        with pytest.raises(ImportError, match=f"aiortc {bad} is installed"):
            aiortc_internals.check_aiortc_version(bad)


@asynccontextmanager
async def one_session(relay_factory: RelayFactory) -> AsyncIterator[Any]:
    """A relay of one demo camera, a viewer decoding it, and its egress session; the
    viewer leaves at the end."""
    from camrelay.relay.sinks.webrtc import WebRtcConfig

    relay = await relay_factory({1: demo(1)}, config=WebRtcConfig(
        host_addresses=HOST_ADDRESSES, connect_timeout=10, join_timeout=5))
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        await viewer.wait_frames(10, timeout=15)
        session = relay.egress.get(viewer.location.rsplit("/", 1)[1])
        assert session is not None
        yield session
    finally:
        await viewer.close()


async def test_the_fan_out_is_the_senders_media_path(relay_factory: RelayFactory) -> None:
    async with one_session(relay_factory) as session:
        assert isinstance(session.fanout, FanoutSender)
        sender = next(t.sender for t in session.pc.getTransceivers() if t.kind == "video")
        assert type(sender) is ExternalMediaSender and isinstance(sender, RTCRtpSender)
        assert "send" not in vars(sender)  # no method replaced on the object
        link = session.fanout._link
        assert isinstance(link, SendLink) and link.connected()
        assert link.ssrc == sender._ssrc and link.rtx_ssrc == sender._rtx_ssrc
        assert session.fanout.counters.packets_sent > 0
    await asyncio.wait_for(session.closed.wait(), 10)


def _packet(seq: int, ts: int, marker: bool) -> Any:
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=ts)
    packet._data = bytes([seq])  # type: ignore[attr-defined]  # as the receiver depayloads
    return packet


def test_the_tapped_jitter_buffer_hands_a_frame_over_on_its_marker_packet() -> None:
    from aiortc.jitterbuffer import JitterBuffer

    ours = aiortc_internals.MarkerJitterBuffer(capacity=512, is_video=True)
    theirs = JitterBuffer(capacity=512, is_video=True)
    frame = [_packet(10, 3000, False), _packet(11, 3000, False), _packet(12, 3000, True)]
    assert [theirs.add(p)[1] for p in frame] == [None, None, None]  # aiortc: a frame late
    out = [ours.add(p)[1] for p in frame]
    assert out[:2] == [None, None] and out[2] is not None
    assert (out[2].data, out[2].timestamp) == (b"\x0a\x0b\x0c", 3000)
    # a gap waits for the missing packet (a NACK's retransmission)
    assert ours.add(_packet(14, 6600, True))[1] is None
    got = ours.add(_packet(13, 6600, False))[1]
    assert got is not None and (got.data, got.timestamp) == (b"\x0d\x0e", 6600)
    # a frame whose marker packet is lost ends where the next frame starts
    assert ours.add(_packet(15, 10200, False))[1] is None
    got = ours.add(_packet(17, 13800, True))[1]
    assert got is None  # 16 is missing: it may end 10200 or belong to it
    late = ours.add(_packet(16, 13800, False))[1]  # the next frame's start ends 10200
    assert late is not None and late.timestamp == 10200 and late.data == b"\x0f"


async def test_a_viewers_receiver_builds_no_bitrate_estimator(
        relay_factory: RelayFactory) -> None:
    """Each offer's video transceiver gets a receiver that never receives: its 1000-bucket
    bitrate window is not built (it was, once per offer)."""
    async with one_session(relay_factory) as session:
        receiver = next(t.receiver for t in session.pc.getTransceivers() if t.kind == "video")
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        assert isinstance(estimator, aiortc_internals.LazyBitrateEstimator)
        assert estimator.estimator is None


def test_the_lazy_bitrate_estimator_answers_as_aiortcs() -> None:
    from aiortc.rate import RemoteBitrateEstimator

    lazy, real = aiortc_internals.LazyBitrateEstimator(), RemoteBitrateEstimator()
    assert lazy.estimator is None
    lazy_out, real_out = [], []
    for i in range(3000):  # 1 kB every 2 ms, arriving with a growing delay
        packet = {"arrival_time_ms": 10_000 + 2 * i + i // 50, "payload_size": 1000,
                  "abs_send_time": ((i * 2 * (1 << 18)) // 1000) & 0xFFFFFF, "ssrc": 1234}
        lazy_out.append(lazy.add(**packet))
        real_out.append(real.add(**packet))
    assert lazy_out == real_out
    assert any(r is not None for r in real_out)  # REMB was computed, not only None
