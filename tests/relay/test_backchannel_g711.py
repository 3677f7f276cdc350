"""The pure parts of talk-back to a camera's ONVIF back-channel: finding the back-channel
in a camera's description, and the talker's audio as 20 ms G.711 RTP packets."""

from __future__ import annotations

import fractions
import itertools
import struct

import av
import numpy as np
import pytest

from camrelay.relay.backchannel import PACKET_SAMPLES, G711Packetizer
from camrelay.relay.rtsp.sdp import parse_sdp

# as ONVIF Streaming Spec 5.3.1 shows it: video and audio from the camera, and the
# back-channel, which the description marks sendonly (the client sends)
ONVIF_SDP = (
    "v=0\r\no=- 2890842807 1 IN IP4 192.0.2.1\r\ns=RTSP Session with audiobackchannel\r\n"
    "m=video 0 RTP/AVP 26\r\na=control:rtsp://192.0.2.1/video\r\na=recvonly\r\n"
    "m=audio 0 RTP/AVP 0\r\na=control:rtsp://192.0.2.1/audio\r\na=recvonly\r\n"
    "m=audio 0 RTP/AVP 8 0\r\na=control:rtsp://192.0.2.1/audioback\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
)


def test_the_back_channel_is_the_sendonly_g711_audio() -> None:
    sdp = parse_sdp(ONVIF_SDP)
    back = sdp.backchannel()
    assert back is not None and back.control == "rtsp://192.0.2.1/audioback"
    assert (back.encoding, back.payload_type, back.clock_rate) == ("PCMA", 8, 8000)
    # what the relay pulls is the camera's own audio, never the back-channel
    heard = sdp.first_audio()
    assert heard is not None and heard.control == "rtsp://192.0.2.1/audio"
    assert heard.direction == "recvonly"


def test_no_back_channel() -> None:
    without = ONVIF_SDP.replace("a=sendonly", "a=recvonly")
    assert parse_sdp(without).backchannel() is None
    aac = ("v=0\r\ns=-\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000\r\n"
           "a=sendonly\r\n")
    assert parse_sdp(aac).backchannel() is None  # only G.711 is sent
    # a session-level direction applies to media without their own
    session_level = "v=0\r\ns=-\r\na=sendonly\r\nm=audio 0 RTP/AVP 0\r\na=control:back\r\n"
    back = parse_sdp(session_level).backchannel()
    assert back is not None and back.encoding == "PCMU"


def _tone(frames: int, rate: int = 48_000, samples: int = 960,
          amplitude: int = 10_000) -> list[av.AudioFrame]:
    out = []
    for i in range(frames):
        t = (i * samples + np.arange(samples)) / rate
        mono = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        stereo = np.repeat(mono, 2).reshape(1, -1)  # packed s16: L R L R ...
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = rate
        frame.pts = i * samples
        frame.time_base = fractions.Fraction(1, rate)
        out.append(frame)
    return out


@pytest.mark.parametrize(("encoding", "payload_type", "decoder"),
                         [("PCMU", 0, "pcm_mulaw"), ("PCMA", 8, "pcm_alaw")])
def test_opus_sized_frames_become_20_ms_g711_packets(encoding: str, payload_type: int,
                                                     decoder: str) -> None:
    packetizer = G711Packetizer(encoding, payload_type)
    packets = [p for frame in _tone(50) for p in packetizer.push(frame)]
    # one second in; the resampler keeps a few samples back, never a whole packet more
    assert 48 <= len(packets) <= 50
    headers = [struct.unpack_from("!BBHII", p) for p in packets]
    assert all(len(p) == 12 + PACKET_SAMPLES for p in packets)
    assert all(h[0] == 0x80 and h[1] & 0x7F == payload_type for h in headers)
    assert [bool(h[1] & 0x80) for h in headers] == [True] + [False] * (len(headers) - 1)
    assert all((b[2] - a[2]) & 0xFFFF == 1 for a, b in itertools.pairwise(headers))
    assert all((b[3] - a[3]) & 0xFFFFFFFF == PACKET_SAMPLES
               for a, b in itertools.pairwise(headers))
    assert len({h[4] for h in headers}) == 1  # one SSRC
    # the camera decodes the tone back: peak near the talker's 10000
    codec = av.CodecContext.create(decoder, "r")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = 8000
    codec.layout = "mono"
    pcm = np.concatenate([f.to_ndarray().ravel() for p in packets[5:]
                          for f in codec.decode(av.Packet(p[12:]))])
    assert 9000 < int(np.abs(pcm.astype(np.int32)).max()) < 11000
    assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 6000  # a tone, not clicks


def test_not_g711_is_refused() -> None:
    with pytest.raises(ValueError, match="not G.711"):
        G711Packetizer("OPUS", 111)
