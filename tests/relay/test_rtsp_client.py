"""Our RTSP client (sources/rtsp.py on camrelay.relay.rtsp) against the GStreamer camera
simulator and a scripted camera."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Literal

import av
import pytest

from camrelay.errors import SourceUnavailable
from camrelay.relay.media import AccessUnit, VideoInfo
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import decode_numbers, nal_types
from tests.relay.rtsp_fake import FakeCamera, encode_clip

Transport = Literal["tcp", "udp"]


class Recorder:
    """A UnitSink that keeps everything and wakes waiters."""

    def __init__(self) -> None:
        self.infos: list[tuple[VideoInfo, bool]] = []
        self.units: list[AccessUnit] = []
        self._changed = asyncio.Event()

    def on_info(self, info: VideoInfo, transcoded: bool) -> None:
        self.infos.append((info, transcoded))

    def on_unit(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None:
        self.units.append(AccessUnit(data, pts, keyframe, arrival, len(self.units)))
        self._changed.set()

    async def wait_units(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.units) < count:
                self._changed.clear()
                await self._changed.wait()


def open_sockets() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                out.add(target)
    return out


@pytest.fixture
async def clean() -> AsyncIterator[None]:
    """The test leaves no task and no socket behind."""
    sockets = open_sockets()
    tasks = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let transports that were closed call connection_lost
    assert asyncio.all_tasks() - {asyncio.current_task()} <= tasks
    assert not open_sockets() - sockets


def decoded(units: list[AccessUnit]) -> int:
    """How many pictures PyAV decodes from ``units``."""
    dec = av.CodecContext.create("h264", "r")
    return sum(len(dec.decode(av.Packet(u.data))) for u in units)


async def pull(spec: SourceSpec, count: int, timeout: float = 10.0) -> Recorder:
    """Run the native source until ``count`` units arrived, then cancel it."""
    recorder = Recorder()
    task = asyncio.create_task(NativeRtspSource(spec).run(recorder))
    try:
        waiting = asyncio.ensure_future(recorder.wait_units(count, timeout))
        done, _ = await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            task.result()
            raise AssertionError(f"the source ended after {len(recorder.units)} units")
        waiting.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return recorder


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_frames_arrive_decodable_and_in_order(sim: CamSim, transport: Transport,
                                                    clean: None) -> None:
    rec = await pull(SourceSpec(sim.url("h264"), transport=transport), 60)
    ((info, transcoded),) = rec.infos
    assert not transcoded
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 640, 360, 25.0)
    assert info.profile_level_id == "42c01e" and info.sps and info.pps
    units = rec.units
    assert units[0].keyframe and nal_types(units[0])[:2] == [7, 8]
    assert all(nal_types(u)[:2] == [7, 8] for u in units if u.keyframe)
    assert sum(u.keyframe for u in units) >= 2  # a keyframe every 2 s, 60 units
    assert [b.pts - a.pts for a, b in itertools.pairwise(units)] == [3600] * (len(units) - 1)
    assert all(a.arrival <= b.arrival for a, b in itertools.pairwise(units))
    numbers = decode_numbers(units)
    assert len(numbers) == len(units)
    assert all(b == (a + 1) % 200 for a, b in itertools.pairwise(numbers))


async def test_out_of_band_parameter_sets(sim: CamSim, clean: None) -> None:
    rec = await pull(SourceSpec(sim.url("oob")), 30)
    assert all(nal_types(u)[:2] == [7, 8] for u in rec.units if u.keyframe)
    assert not any(t in (7, 8) for u in rec.units if not u.keyframe for t in nal_types(u))
    info = rec.infos[0][0]
    assert info.profile_level_id == "42c01e" and (info.width, info.height) == (640, 360)
    assert len(decode_numbers(rec.units)) == len(rec.units)


async def test_digest_auth(sim: CamSim, caplog: pytest.LogCaptureFixture, clean: None) -> None:
    caplog.set_level(logging.DEBUG)
    good = SourceSpec(sim.url("auth"), username=sim.USER, password=sim.PASSWORD)
    rec = await pull(good, 5)
    assert rec.units[0].keyframe
    for spec in (SourceSpec(sim.url("auth"), username=sim.USER, password=sim.PASSWORD + "x"),
                 SourceSpec(sim.url("auth"))):
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(spec).run(Recorder())
        assert info.value.reason == "auth", info.value.detail
        assert sim.PASSWORD not in str(info.value) and "@" not in str(info.value)
    assert sim.PASSWORD not in caplog.text


async def test_flaky_camera_ends_the_session(sim: CamSim, clean: None) -> None:
    rec = Recorder()
    t0 = time.monotonic()
    spec = SourceSpec(sim.url("flaky"), read_timeout=3)
    try:
        await asyncio.wait_for(NativeRtspSource(spec).run(rec), 10)
    except SourceUnavailable as exc:  # a cut may also show as a reset connection
        assert exc.reason == "unreachable"
    assert sim.FLAKY_SECONDS - 0.5 < time.monotonic() - t0 < sim.FLAKY_SECONDS + 3
    assert len(rec.units) > 20 and rec.units[0].keyframe


async def test_h265_is_handed_to_pyav_and_transcoded(sim: CamSim, clean: None) -> None:
    plays = sim.play_count("h265")
    rec = await pull(SourceSpec(sim.url("h265")), 15, timeout=15)
    ((info, transcoded),) = rec.infos
    assert transcoded and info.codec == "h264"
    assert info.profile_level_id is not None and info.profile_level_id.startswith("42")
    numbers = decode_numbers(rec.units)
    assert len(numbers) == len(rec.units)
    assert sim.play_count("h265") == plays + 1  # the native client never played it


async def test_silent_camera_times_out(clean: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        spec = SourceSpec(f"rtsp://127.0.0.1:{port}/x", connect_timeout=0.5, read_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(spec).run(Recorder())
        assert info.value.reason == "timeout", info.value.detail
        assert time.monotonic() - t0 < 1.5


async def test_unreachable_camera(clean: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceUnavailable) as info:
        await NativeRtspSource(SourceSpec(f"rtsp://127.0.0.1:{port}/x")).run(Recorder())
    assert info.value.reason == "unreachable"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_cancel_cleans_up(sim: CamSim, transport: Transport, clean: None) -> None:
    rec = Recorder()
    task = asyncio.create_task(
        NativeRtspSource(SourceSpec(sim.url("h264"), transport=transport)).run(rec))
    await rec.wait_units(3)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t0 < 0.5
    # the clean fixture checks that no task and no socket is left


# --- the scripted camera --------------------------------------------------------------

@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    return encode_clip()


@pytest.mark.parametrize("challenge", ["basic", "digest"])
async def test_auth_schemes_and_redirect(sim: CamSim, challenge: str, clean: None) -> None:
    """Basic or Digest with qop=auth at a front door that redirects to the simulator."""
    front = FakeCamera(challenge=challenge, redirect_to=sim.url("h264"))
    async with front.serving() as url:
        spec = SourceSpec(url, username=front.user, password=front.password)
        rec = await pull(spec, 5)
        assert rec.units[0].keyframe and len(decode_numbers(rec.units)) == 5
        assert front.methods() == ["OPTIONS", "OPTIONS", "DESCRIBE"]
        assert "authorization" in front.requests[-1].headers
        wrong = SourceSpec(url, username=front.user, password="wrong-Pw-canary")
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(wrong).run(Recorder())
        assert info.value.reason == "auth" and "wrong-Pw-canary" not in str(info.value)


async def test_redirect_loop_is_bounded(clean: None) -> None:
    camera = FakeCamera()
    async with camera.serving() as url:
        camera.redirect_to = url
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(SourceSpec(url)).run(Recorder())
        assert info.value.reason == "unreachable" and "redirects" in info.value.detail
        assert camera.methods().count("DESCRIBE") == 6


@pytest.mark.parametrize("get_parameter", [True, False])
async def test_keepalive_and_teardown(clip: list[bytes], get_parameter: bool,
                                      clean: None) -> None:
    camera = FakeCamera(session_timeout=2, get_parameter=get_parameter, clip=clip)
    async with camera.serving() as url:
        rec = Recorder()
        task = asyncio.create_task(NativeRtspSource(SourceSpec(url)).run(rec))
        await rec.wait_units(60)  # 2.4 s: one keep-alive a second
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # the camera reads TEARDOWN after the source has gone
        async with asyncio.timeout(2):
            while "TEARDOWN" not in camera.methods():
                await asyncio.sleep(0.01)  # polling a list fed by the camera's task
    methods = camera.methods()
    assert methods[:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    alive = [r for r in camera.requests[4:] if r.method != "TEARDOWN"]
    assert len(alive) >= 2
    assert {r.method for r in alive} == {"GET_PARAMETER" if get_parameter else "OPTIONS"}
    assert all(r.headers.get("session") == "fa4e" for r in alive)
    assert camera.requests[2].url.endswith("/fake/track1")
    assert rec.units[0].keyframe and (rec.infos[0][0].width, rec.infos[0][0].height) == (160, 96)
    assert decoded(rec.units) == len(rec.units)


async def test_camera_that_plays_but_sends_nothing_times_out(clean: None) -> None:
    camera = FakeCamera(media=False)
    async with camera.serving() as url:
        t0 = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(SourceSpec(url, read_timeout=0.5)).run(Recorder())
        assert info.value.reason == "timeout" and "no video" in info.value.detail
        assert time.monotonic() - t0 < 1.5
    assert camera.methods()[-1] == "TEARDOWN"


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"\x00\xff" * 100,
    b"RTSP/1.0 2x0 OK\r\nCSeq: 2\r\n\r\n",
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 99999999\r\n\r\n",
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nX: " + b"a" * 20000,
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nno colon here\r\n\r\n",
    b"RTSP/1.0 302 Moved\r\nCSeq: 2\r\nLocation: rtsp://[bad/x\r\n\r\n",
])
async def test_garbage_from_the_camera(reply: bytes, clean: None) -> None:
    camera = FakeCamera(raw={"DESCRIBE": reply})
    async with camera.serving() as url:
        t0 = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(SourceSpec(url, read_timeout=3)).run(Recorder())
        assert info.value.reason == "unreachable", info.value.detail
        assert time.monotonic() - t0 < 1


async def test_describe_without_video(clean: None) -> None:
    sdp = b"v=0\r\nm=audio 0 RTP/AVP 0\r\n"
    camera = FakeCamera(raw={"DESCRIBE": b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: "
                                          + str(len(sdp)).encode() + b"\r\n\r\n" + sdp})
    async with camera.serving() as url:
        with pytest.raises(SourceUnavailable) as info:
            await NativeRtspSource(SourceSpec(url)).run(Recorder())
        assert info.value.reason == "no_video"


async def test_not_found(sim: CamSim, clean: None) -> None:
    with pytest.raises(SourceUnavailable) as info:
        await NativeRtspSource(SourceSpec(sim.url("nothing-here"))).run(Recorder())
    assert info.value.reason == "unreachable" and "no stream" in info.value.detail
