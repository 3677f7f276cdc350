"""Camera audio to WHEP viewers: G.711 passed through, AAC as Opus made once per camera.

The simulator's /pcma and /aac mounts carry a 440 Hz tone next to the /h264 clip; the
viewers are real aiortc peers that decode what they receive.
"""

from __future__ import annotations

import asyncio

import pytest

from camrelay.relay.hub import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc.conftest import RelayFactory
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

SILENCE = 100.0  # RMS of s16 samples; the tone is ~8000


def _audio_line(answer: str) -> str:
    """The answer's audio m-line and its direction and codec."""
    section = answer[answer.index("m=audio"):]
    nxt = section.find("m=", 2)
    return section if nxt < 0 else section[:nxt]


async def test_g711_camera_is_heard_as_pcma_passed_through(relay_factory: RelayFactory,
                                                           camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/pcma"))})
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice", audio=True)
    try:
        audio = _audio_line(viewer.answer)
        assert "a=sendonly" in audio and "PCMA/8000" in audio and "opus" not in audio.lower()
        await asyncio.gather(viewer.wait_frames(10, timeout=15), viewer.wait_audio(50, 15))
        assert max(viewer.audio_rms[-25:]) > SILENCE
        assert len(relay.egress.audio) == 0 and relay.egress.audio.created == 0  # no decode
        assert relay.gate.views[0].audio == "PCMA"
    finally:
        await viewer.close()


async def test_aac_camera_is_heard_as_opus_one_transcoder_for_two(
        relay_factory: RelayFactory, camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/aac"))})
    viewers = [await WhepViewer.connect(relay.http, relay.url, 1, token, audio=True)
               for token in ("tok-alice", "tok-bob")]
    try:
        for viewer in viewers:
            audio = _audio_line(viewer.answer)
            assert "a=sendonly" in audio and "opus/48000" in audio.lower()
        await asyncio.gather(*(v.wait_audio(50, 15) for v in viewers))
        for viewer in viewers:
            assert max(viewer.audio_rms[-25:]) > SILENCE
        assert relay.egress.audio.created == 1 and len(relay.egress.audio) == 1
        assert [v.audio for v in relay.gate.views] == ["opus", "opus"]
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    assert len(relay.egress.audio) == 0  # the last listener stopped it


async def test_viewer_without_audio_gets_video_only(relay_factory: RelayFactory,
                                                    camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/pcma"))})
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        assert "m=audio" not in viewer.answer
        await viewer.wait_frames(5, timeout=15)
        assert relay.gate.views[0].audio is None
    finally:
        await viewer.close()


async def test_camera_without_audio_answers_inactive(relay_factory: RelayFactory,
                                                     camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/h264"))})
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice", audio=True)
    try:
        assert "a=inactive" in _audio_line(viewer.answer)
        await viewer.wait_frames(5, timeout=15)
        assert not viewer.audio_rms and relay.gate.views[0].audio is None
    finally:
        await viewer.close()


def _without_g711(sdp: str) -> str:
    """An offer whose audio is Opus only (aiortc offers Opus, PCMU and PCMA)."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("m=audio"):
            head, formats = line.split(" ", 3)[:3], line.split(" ")[3:]
            line = " ".join(head + [f for f in formats if f not in ("0", "8")])
        elif line.startswith(("a=rtpmap:0 ", "a=rtpmap:8 ")):
            continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


async def test_g711_camera_to_an_opus_only_viewer_is_transcoded(
        relay_factory: RelayFactory, camsim: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim.url("/pcma"))})
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice", audio=True,
                                      munge_offer=_without_g711)
    try:
        assert "opus/48000" in _audio_line(viewer.answer).lower()
        await viewer.wait_audio(50, 15)
        assert max(viewer.audio_rms[-25:]) > SILENCE
        assert relay.egress.audio.created == 1
    finally:
        await viewer.close()
