"""The RTSP stack's pure parts (camrelay.relay.rtsp): depacketiser, SDP, SPS, authentication."""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from camrelay.relay import h264
from camrelay.relay.rtsp.auth import Authorizer, choose_challenge, parse_challenge
from camrelay.relay.rtsp.client import resolve_control
from camrelay.relay.rtsp.rtp import H264Depacketizer
from camrelay.relay.rtsp.sdp import parse_sdp
from camrelay.relay.rtsp.sps import parse_sps

SPS = bytes.fromhex("6742c01eda0280bf")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("65888400ff") + bytes(range(200))  # first_mb_in_slice == 0
P = bytes.fromhex("419a2000") + bytes(range(50))
P_SLICE2 = bytes.fromhex("41202000") + bytes(10)  # a second slice (first_mb_in_slice != 0)


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, pt: int = 96,
        padding: int = 0, extension: bytes = b"") -> bytes:
    b0 = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                      ts & 0xFFFFFFFF, 0x1234)
    if extension:
        out += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


def stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal: bytes, pieces: int) -> list[bytes]:
    body = nal[1:]
    step = -(-len(body) // pieces)
    chunks = [body[i:i + step] for i in range(0, len(body), step)]
    out = []
    for i, chunk in enumerate(chunks):
        header = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | nal[0] & 0x1F
        out.append(bytes([(nal[0] & 0xE0) | 28, header]) + chunk)
    return out


class Units:
    def __init__(self) -> None:
        self.got: list[tuple[list[bytes], int, bool, float]] = []

    def __call__(self, nals: list[bytes], pts: int, key: bool, arrival: float) -> None:
        self.got.append((nals, pts, key, arrival))


class Camera:
    """Packets of a stream: keyframes as STAP-A(SPS, PPS) + FU-A(IDR), P as one packet."""

    def __init__(self, seq: int = 0, ts: int = 0) -> None:
        self.seq = seq
        self.ts = ts

    def key(self, marker: bool = True) -> list[bytes]:
        payloads = [stap_a(SPS, PPS), *fu_a(IDR, 3)]
        return self._packets(payloads, marker)

    def p(self, marker: bool = True, slices: int = 1) -> list[bytes]:
        payloads = [P] + [P_SLICE2] * (slices - 1)
        return self._packets(payloads, marker)

    def p_fragmented(self) -> list[bytes]:
        return self._packets(fu_a(P, 3), True)

    def _packets(self, payloads: list[bytes], marker: bool) -> list[bytes]:
        out = [rtp(self.seq + i, self.ts, p, marker=marker and i == len(payloads) - 1)
               for i, p in enumerate(payloads)]
        self.seq += len(payloads)
        self.ts += 3600
        return out


def feed(d: H264Depacketizer, packets: list[bytes], arrival: float = 1.0) -> None:
    for packet in packets:
        d.push(packet, arrival)


def test_stap_a_and_fu_a_make_one_keyframe_then_single_nal_pictures() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera(ts=1000)
    feed(d, cam.key(), 1.0)
    feed(d, cam.p(), 2.0)
    feed(d, cam.p(slices=2), 3.0)
    assert [(u[0], u[1], u[2], u[3]) for u in units.got] == [
        ([SPS, PPS, IDR], 1000, True, 1.0),
        ([P], 4600, False, 2.0),
        ([P, P_SLICE2], 8200, False, 3.0),
    ]
    assert d.lost == d.dropped == d.malformed == 0
    data, key = h264.AnnexBWriter(None).write(units.got[0][0])
    assert key and h264.split_annexb(data) == [SPS, PPS, IDR]


def test_unit_ends_at_timestamp_change_without_marker() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera()
    feed(d, cam.key(marker=False), 1.0)
    feed(d, cam.p(marker=False), 2.0)
    assert [u[0] for u in units.got] == [[SPS, PPS, IDR]]
    assert units.got[0][3] == 2.0  # completed when the next picture began
    feed(d, cam.p(marker=False), 3.0)
    assert [u[0] for u in units.got] == [[SPS, PPS, IDR], [P]]


def test_loss_drops_the_damaged_picture_and_skips_to_the_next_keyframe(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", "camrelay.relay.rtsp.rtp")
    units = Units()
    d = H264Depacketizer(96, units, name="[test]")
    cam = Camera()
    feed(d, cam.key())
    feed(d, cam.p())
    damaged = cam.p_fragmented()
    feed(d, [damaged[0], damaged[2]])  # the middle fragment is lost
    feed(d, cam.p())  # complete, but refers to the damaged picture
    feed(d, cam.p())
    feed(d, cam.key())
    feed(d, cam.p())
    assert [u[2] for u in units.got] == [True, False, True, False]
    assert [u[1] for u in units.got] == [0, 3600, 5 * 3600, 6 * 3600]
    assert d.lost == 1 and d.dropped == 3
    assert sum("lost" in r.getMessage() for r in caplog.records) == 1


def test_picture_after_a_gap_is_kept_only_when_its_start_arrived() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera()
    feed(d, cam.key())
    cam.p()  # a whole picture lost, between two pictures
    key = cam.key()
    feed(d, key)
    assert [u[2] for u in units.got] == [True, True]
    # the start of a keyframe lost: its remaining fragments are not a picture
    key = cam.key()
    feed(d, key[2:])
    feed(d, cam.p())
    assert len(units.got) == 2 and d.lost == 3
    feed(d, cam.key())
    assert len(units.got) == 3 and units.got[-1][2]


def test_late_and_duplicate_packets_are_dropped_and_sequence_wraps() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera(seq=65533)
    key = cam.key()  # 65533 .. 0
    feed(d, key[:3])
    d.push(key[1], 1.0)  # duplicate
    feed(d, key[3:])
    p1 = cam.p()
    feed(d, p1)
    d.push(key[0], 1.0)  # old
    feed(d, cam.p())
    assert [u[2] for u in units.got] == [True, False, False]
    assert d.late == 2 and d.lost == 0


def test_timestamp_wrap_gives_continuous_pts() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera(ts=(1 << 32) - 2 * 3600)
    feed(d, cam.key())
    for _ in range(4):
        feed(d, cam.p())
    pts = [u[1] for u in units.got]
    assert [b - a for a, b in itertools.pairwise(pts)] == [3600] * 4
    assert pts[0] == (1 << 32) - 2 * 3600


def test_clock_rate_other_than_90k_is_scaled() -> None:
    units = Units()
    d = H264Depacketizer(96, units, clock_rate=45000)
    cam = Camera()
    feed(d, cam.key())
    feed(d, cam.p())  # +3600 at 45 kHz = +7200 at 90 kHz
    assert [u[1] for u in units.got] == [0, 7200]


def test_stream_joined_mid_picture_starts_at_a_keyframe() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera()
    first = cam.p_fragmented()
    feed(d, first[1:])  # joined in the middle of a picture
    feed(d, cam.p())
    feed(d, cam.key())
    feed(d, cam.p())
    assert [u[2] for u in units.got] == [True, False]


def test_padding_extension_other_payload_types_and_garbage() -> None:
    units = Units()
    d = H264Depacketizer(96, units)
    d.push(rtp(0, 0, stap_a(SPS, PPS), padding=5, extension=b"\x01\x02\x03\x04"), 1.0)
    d.push(rtp(1, 0, IDR, marker=True, padding=1), 1.0)
    assert units.got and units.got[0][0] == [SPS, PPS, IDR]
    d.push(rtp(2, 3600, P, pt=97, marker=True), 1.0)  # another payload type
    d.push(b"\x00" * 20, 1.0)  # not RTP version 2
    d.push(b"\x80\x60", 1.0)  # too short
    d.push(rtp(2, 3600, b"", marker=True), 1.0)  # no payload
    d.push(rtp(3, 3600, b"\x18\x00\x50\x67", marker=True), 1.0)  # STAP-A overrunning
    assert d.foreign == 2 and d.malformed == 3
    assert len(units.got) == 1


def test_interleaved_mode_packets_are_dropped_with_the_picture(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", "camrelay.relay.rtsp.rtp")
    units = Units()
    d = H264Depacketizer(96, units)
    cam = Camera()
    feed(d, cam.key())
    fu_b = bytes([0x7D, 0x81, 0, 1]) + P[1:]  # FU-B start (type 29)
    d.push(rtp(cam.seq, cam.ts, fu_b, marker=True), 1.0)
    cam.seq += 1
    cam.ts += 3600
    feed(d, cam.p())
    feed(d, cam.key())
    assert [u[2] for u in units.got] == [True, True]
    assert "FU-B" in caplog.text


# --- SDP, control URLs -------------------------------------------------------------

CAMSIM_SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=Session streamed with GStreamer
t=0 0
a=control:*
m=audio 0 RTP/AVP 0
a=control:stream=1
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
a=rtpmap:96 H264/90000
a=framerate:25
a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgL/lhAAAAwAEAAADAMg8WLqA,aM48gA==;\
profile-level-id=42c01e
a=control:stream=0
this line is garbage
"""


def test_sdp_first_video_media() -> None:
    sdp = parse_sdp(CAMSIM_SDP.replace("\n", "\r\n"))
    assert sdp.control == "*" and [m.media for m in sdp.media] == ["audio", "video"]
    video = sdp.first_video()
    assert video is not None
    assert (video.payload_type, video.encoding, video.clock_rate) == (96, "H264", 90000)
    assert video.control == "stream=0" and video.framerate == 25
    sps, pps = video.parameter_sets()
    assert sps is not None and sps[0] & 0x1F == 7 and pps is not None and pps[0] & 0x1F == 8
    assert parse_sdp("<html>not sdp</html>").first_video() is None
    h265 = parse_sdp("m=video 0 RTP/AVP 96\na=rtpmap:96 H265/90000\n").first_video()
    assert h265 is not None and h265.encoding == "H265"
    jpeg = parse_sdp("m=video 0 RTP/AVP 26\n").first_video()
    assert jpeg is not None and jpeg.encoding == "" and jpeg.payload_type == 26


@pytest.mark.parametrize(("base", "control", "url"), [
    ("rtsp://cam/h264/", "stream=0", "rtsp://cam/h264/stream=0"),
    ("rtsp://cam/live.sdp", "trackID=1", "rtsp://cam/live.sdp/trackID=1"),
    ("rtsp://cam/live", "*", "rtsp://cam/live"),
    ("rtsp://cam/live", None, "rtsp://cam/live"),
    ("rtsp://cam/live", "rtsp://other:8554/x/track1", "rtsp://other:8554/x/track1"),
    ("rtsp://cam:554/a/b", "/c/track1", "rtsp://cam:554/c/track1"),
    ("rtsp://cam/live", "?ch=1", "rtsp://cam/live?ch=1"),
])
def test_control_urls(base: str, control: str | None, url: str) -> None:
    assert resolve_control(base, control) == url


# --- SPS ---------------------------------------------------------------------------

def test_sps_of_the_simulator_clip() -> None:
    sps, _ = parse_sdp(CAMSIM_SDP).media[1].parameter_sets()
    assert sps is not None
    info = parse_sps(sps)
    assert (info.width, info.height, info.fps) == (640, 360, 25.0)
    with pytest.raises(ValueError):
        parse_sps(PPS)
    with pytest.raises(ValueError):
        parse_sps(sps[:5])


@pytest.mark.parametrize(("width", "height", "profile"), [
    (1920, 1080, "high"), (1280, 720, "baseline"), (642, 362, "main"), (176, 144, "high444"),
])
def test_sps_sizes_from_libx264(width: int, height: int, profile: str) -> None:
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height = width, height
    cc.pix_fmt = "yuv444p" if profile == "high444" else "yuv420p"
    cc.time_base = Fraction(1, 30)
    cc.framerate = Fraction(30, 1)
    cc.options = {"profile": profile, "preset": "ultrafast"}
    frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
    packets = cc.encode(frame.reformat(format=cc.pix_fmt)) + cc.encode(None)
    nals = h264.split_annexb(bytes(packets[0]))
    sps = next(n for n in nals if n[0] & 0x1F == 7)
    info = parse_sps(sps)
    assert (info.width, info.height) == (width, height)
    assert info.fps in (None, 30.0)


# --- authentication ----------------------------------------------------------------

def test_digest_rfc2617_example() -> None:
    challenge = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert challenge is not None
    auth = Authorizer(challenge, "Mufasa", "Circle Of Life")
    auth._cnonce = "0a4f113b"
    header = auth.header("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and "qop=auth" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "nc=00000002" in auth.header("GET", "/dir/index.html")
    assert "Circle Of Life" not in header and "Circle Of Life" not in repr(auth)


def test_digest_without_qop_and_basic() -> None:
    challenge = parse_challenge('Digest realm="GStreamer RTSP Server", nonce="110971bf64525def"')
    assert challenge is not None and challenge.qop == ()
    header = Authorizer(challenge, "u", "p").header("DESCRIBE", "rtsp://h/x")
    assert "qop" not in header and "nc=" not in header
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    expected = md5(f"{md5('u:GStreamer RTSP Server:p')}:110971bf64525def:"
                   f"{md5('DESCRIBE:rtsp://h/x')}")
    assert f'response="{expected}"' in header
    basic = choose_challenge(['Basic realm="cam"'])
    assert basic is not None
    assert Authorizer(basic, "u", "p").header("DESCRIBE", "x") == "Basic dTpw"
    both = choose_challenge(['Basic realm="cam"', 'Digest realm="cam", nonce="n"'])
    assert both is not None and both.scheme == "digest"
    sha = choose_challenge(['Digest realm="cam", nonce="n", algorithm=SHA-256', 'Basic realm="c"'])
    assert sha is not None and sha.scheme == "basic"
    assert choose_challenge(["Bearer x", "Digest realm=x"]) is None
