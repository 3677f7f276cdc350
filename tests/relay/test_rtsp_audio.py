"""Camera audio through camrelay's own RTSP client: SETUP, depacketising, the hub."""

from __future__ import annotations

import asyncio
import itertools

import av
import numpy as np
import pytest

from camrelay.relay.media import AudioUnit, StreamKey
from camrelay.relay.rtsp.audio import AudioDepacketizer
from camrelay.relay.rtsp.sdp import parse_sdp
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import HubFactory


async def _units(make_hub: HubFactory, url: str, transport: str, n: int
                 ) -> tuple[str, bytes | None, list[AudioUnit]]:
    hub = await make_hub({1: SourceSpec(url, transport=transport)})  # type: ignore[arg-type]
    sub = await hub.subscribe(StreamKey(1))
    audio = sub.open_audio()
    try:
        info = sub.audio_info
        assert info is not None, "the camera's audio must be SETUP"
        units = [await asyncio.wait_for(audio.get(), 5) for _ in range(n)]
        await asyncio.wait_for(sub.get(), 5)  # and video still flows
        return info.codec, info.config, units
    finally:
        audio.close()
        sub.close()


def _level(codec: str, config: bytes | None, units: list[AudioUnit]) -> float:
    decoder = av.CodecContext.create({"PCMA": "pcm_alaw", "AAC": "aac"}[codec], "r")
    if config:
        decoder.extradata = config
    else:
        decoder.sample_rate = 8000
        decoder.layout = "mono"
    samples = [frame.to_ndarray().astype(np.float64).ravel()
               for unit in units for frame in decoder.decode(av.Packet(unit.data))]
    pcm = np.concatenate(samples)
    if pcm.dtype.kind == "f" or np.abs(pcm).max() <= 1.0:
        pcm = pcm * 32768
    return float(np.sqrt(np.mean(pcm[len(pcm) // 2:] ** 2)))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_g711_camera_audio_reaches_the_hub(make_hub: HubFactory, camsim: CamSim,
                                                 transport: str) -> None:
    codec, config, units = await _units(make_hub, camsim.url("/pcma"), transport, 25)
    assert codec == "PCMA" and config is None
    pts = [u.pts for u in units]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert _level(codec, config, units) > 1000  # the tone, far above silence


async def test_aac_camera_audio_reaches_the_hub(make_hub: HubFactory, camsim: CamSim) -> None:
    codec, config, units = await _units(make_hub, camsim.url("/aac"), "tcp", 40)
    assert codec == "AAC" and config
    assert all(b.pts - a.pts == 1024 for a, b in itertools.pairwise(units))
    assert _level(codec, config, units) > 1000


async def test_camera_without_audio_has_none(make_hub: HubFactory, camsim: CamSim) -> None:
    hub = await make_hub({1: SourceSpec(camsim.url("/h264"))})
    sub = await hub.subscribe(StreamKey(1))
    try:
        assert sub.audio_info is None
    finally:
        sub.close()


def test_aac_au_headers_give_one_unit_each() -> None:
    sdp = parse_sdp("v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
                    "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;"
                    "sizelength=13;indexlength=3;indexdeltalength=3\r\n")
    media = sdp.first_audio()
    assert media is not None and media.encoding == "MPEG4-GENERIC"
    from camrelay.relay.rtsp.audio import audio_info
    info = audio_info(media)
    assert info is not None and info.codec == "AAC" and info.clock_rate == 16000
    got: list[tuple[bytes, int]] = []
    depacketizer = AudioDepacketizer(media, info, lambda d, p, a: got.append((d, p)))
    first, second = b"\x11" * 5, b"\x22" * 300
    headers = (len(first) << 3).to_bytes(2, "big") + (len(second) << 3).to_bytes(2, "big")
    rtp = bytes([0x80, 97]) + (7).to_bytes(2, "big") + (1000).to_bytes(4, "big") + b"\0" * 4
    depacketizer.push(rtp + (32).to_bytes(2, "big") + headers + first + second, 0.0)
    assert got == [(first, 1000), (second, 2024)]
    assert depacketizer.malformed == 0
