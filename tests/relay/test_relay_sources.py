"""Demo source, thread hygiene, snapshots and probing."""

from __future__ import annotations

import asyncio
import io
import threading

import av
import pytest

from camrelay.errors import SourceUnavailable
from camrelay.relay.hub import StreamClosed
from camrelay.relay.media import StreamKey
from camrelay.relay.probe import probe
from camrelay.relay.sinks.snapshot import snapshot_jpeg
from camrelay.relay.sources.pattern import make_frame, read_frame_number
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import HubFactory, decode_numbers, nal_types, until

DEMO = SourceSpec(url="demo:?width=320&height=180&fps=25&gop=1")


def test_frame_number_survives_downscaling() -> None:
    frame = av.VideoFrame.from_ndarray(make_frame(123456, 640, 360, clock=0.0), format="rgb24")
    assert read_frame_number(frame.to_ndarray(format="gray")) == 123456
    small = frame.reformat(width=160, height=90, format="gray")
    assert read_frame_number(small.to_ndarray()) == 123456
    with pytest.raises(ValueError):
        read_frame_number(frame.to_ndarray(format="gray") * 0)


async def test_demo_source_counts_frames(make_hub: HubFactory) -> None:
    hub = await make_hub({1: DEMO})
    sub = await hub.subscribe(StreamKey(1))
    assert sub.info.codec == "h264" and sub.info.width == 320
    assert sub.info.profile_level_id and sub.info.profile_level_id.startswith("42")
    units = list(sub.initial_gop) + [await asyncio.wait_for(sub.get(), 2) for _ in range(30)]
    assert nal_types(units[0])[:2] == [7, 8]
    numbers = decode_numbers(units)
    assert numbers == list(range(numbers[0], numbers[0] + len(units)))
    keys = [u for u in units if u.keyframe]
    assert len(keys) >= 2  # one a second


async def test_no_thread_leak_after_many_cycles(make_hub: HubFactory, sim: CamSim) -> None:
    hub = await make_hub({1: DEMO, 2: SourceSpec(url=sim.url("h264"))}, linger=0.0)
    baseline = threading.active_count()
    for i in range(50):
        sub = await hub.subscribe(StreamKey(1))
        await asyncio.wait_for(sub.get(), 2)
        sub.close()
        if i % 10 == 0:  # a few real RTSP sessions too
            rtsp = await hub.subscribe(StreamKey(2))
            await asyncio.wait_for(rtsp.get(), 5)
            rtsp.close()
    await until(lambda: not hub.status(), 10, "all streams stopped")
    await until(lambda: threading.active_count() <= baseline, 10,
                f"threads back to {baseline}: {threading.enumerate()}")
    await hub.stop()
    assert threading.active_count() <= baseline
    with pytest.raises(StreamClosed):
        await hub.subscribe(StreamKey(1))


async def test_hub_stop_ends_consumers(make_hub: HubFactory) -> None:
    hub = await make_hub({1: DEMO})
    sub = await hub.subscribe(StreamKey(1))
    getter = asyncio.ensure_future(_drain(sub))
    await hub.stop()
    with pytest.raises(StreamClosed):
        await asyncio.wait_for(getter, 5)


async def _drain(sub: object) -> None:
    while True:
        await sub.get()  # type: ignore[attr-defined]


async def test_snapshot_from_cached_gop(make_hub: HubFactory, sim: CamSim) -> None:
    hub = await make_hub({1: SourceSpec(url=sim.url("h264"))})
    sub = await hub.subscribe(StreamKey(1))
    for _ in range(5):
        await sub.get()
    gop = hub.latest_gop(StreamKey(1))
    assert gop
    jpeg = await snapshot_jpeg(gop)
    assert jpeg[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (640, 360)
    number = read_frame_number(frame.to_ndarray(format="gray"))
    assert number == decode_numbers(gop)[-1]
    with pytest.raises(SourceUnavailable):
        await snapshot_jpeg(())


async def test_probe_reports_stream(sim: CamSim) -> None:
    result = await probe(SourceSpec(url=sim.url("h265")), sample_seconds=1.0)
    assert (result.codec, result.width, result.height) == ("hevc", 640, 360)
    assert result.needs_transcode and result.profile == "Main"
    assert result.fps is not None and 24 <= result.fps <= 26
    assert result.bitrate and result.bitrate > 100_000
    assert 0 <= result.time_to_first_keyframe < 5
    main = await probe(SourceSpec(url=sim.url("main")), sample_seconds=0.5)
    assert main.codec == "h264" and main.profile == "Main" and not main.needs_transcode


async def test_probe_failures_have_reasons(sim: CamSim) -> None:
    with pytest.raises(SourceUnavailable) as info:
        await probe(SourceSpec(url=sim.url("auth"), username="x", password="wrong-canary"))
    assert info.value.reason == "auth" and "wrong-canary" not in str(info.value)
    with pytest.raises(SourceUnavailable) as info:
        await probe(SourceSpec(url="demo:"))
    assert info.value.reason == "unsupported"


def test_a_port_that_holds_401_is_not_an_auth_failure() -> None:
    """FFmpeg quotes the URL in its errors; a port like :54013 once made a cut link "auth"
    (a camera judged as refusing credentials when it had gone away)."""
    from camrelay.relay.sources.ffmpeg import map_error

    for port in (54013, 40301, 14040):
        spec = SourceSpec(url=f"rtsp://127.0.0.1:{port}/cam")
        reset = ConnectionResetError(104, f"Connection reset by peer: 'rtsp://127.0.0.1:{port}/cam'")
        assert map_error(reset, spec).reason == "unreachable"
        said = OSError(f"rtsp://127.0.0.1:{port}/cam: Server returned 401 Unauthorized")
        assert map_error(said, spec).reason == "auth"
        missing = OSError(f"rtsp://127.0.0.1:{port}/cam: Server returned 404 Not Found")
        assert map_error(missing, spec).reason == "unreachable"
        assert "no stream at this path" in map_error(missing, spec).detail
