"""The hub against the real RTSP camera simulator, with each RTSP client (native, PyAV)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from camrelay.errors import CameraNotFound, SourceUnavailable
from camrelay.relay.hub import StreamClosed
from camrelay.relay.media import StreamKey
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import HubFactory, decode_numbers, nal_types, state_of, until

KEY = StreamKey(1)


@pytest.fixture(params=["native", "ffmpeg"])
def rtsp_client(request: pytest.FixtureRequest) -> Literal["native", "ffmpeg"]:
    """Every test here runs against both RTSP clients (see conftest ``make_hub``)."""
    client: Literal["native", "ffmpeg"] = request.param
    return client


def spec(sim: CamSim, mount: str, **kw: object) -> SourceSpec:
    return SourceSpec(url=sim.url(mount), **kw)  # type: ignore[arg-type]


async def test_consumers_share_one_upstream_session(sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "h264")})
    before = sim.play_count("h264")
    subs = [await hub.subscribe(KEY) for _ in range(3)]
    for sub in subs:
        units = [await asyncio.wait_for(sub.get(), 5) for _ in range(10)]
        assert [u.seq for u in units] == sorted(u.seq for u in units)
    assert sim.play_count("h264") - before == 1
    (status,) = hub.status()
    assert status.state == "live" and status.consumers == 3 and status.upstream_connects == 1
    assert subs[0].info.codec == "h264" and subs[0].info.width == 640
    assert subs[0].info.profile_level_id == "42c01e"
    for sub in subs:
        sub.close()
        sub.close()  # idempotent
    with pytest.raises(StreamClosed):
        await subs[0].get()


async def test_joiner_gets_cached_gop_at_once(sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "h264")})
    first = await hub.subscribe(KEY)
    for _ in range(15):
        await first.get()
    t0 = time.monotonic()
    joiner = await hub.subscribe(KEY)
    assert time.monotonic() - t0 < 0.1
    gop = joiner.initial_gop
    assert len(gop) >= 10 and gop[0].keyframe
    assert nal_types(gop[0])[:2] == [7, 8]  # SPS, PPS in front of the IDR
    assert all(a.pts < b.pts for a, b in itertools.pairwise(gop))
    nxt = await joiner.get()
    assert nxt.seq == gop[-1].seq + 1  # live units continue right after the GOP
    numbers = decode_numbers(gop)
    assert numbers == list(range(numbers[0], numbers[0] + len(gop)))
    assert hub.latest_gop(KEY) is not None and hub.latest_gop(KEY)[0].keyframe  # type: ignore[index]
    assert joiner.gop()[0].keyframe


async def test_slow_consumer_is_bounded_and_others_unaffected(
        sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "h264")}, queue_size=8)
    slow = await hub.subscribe(KEY)
    fast = await hub.subscribe(KEY)
    seqs = [(await asyncio.wait_for(fast.get(), 5)).seq for _ in range(60)]
    assert seqs == list(range(seqs[0], seqs[0] + 60))  # no gap for the fast one
    assert fast.dropped == 0
    assert slow.dropped > 0
    assert len(slow._queue) <= 8  # bounded
    resumed = await asyncio.wait_for(slow.get(), 5)
    assert resumed.keyframe  # after dropping, a consumer resumes at a keyframe
    (status,) = hub.status()
    assert status.dropped == slow.dropped + fast.dropped


async def test_flaky_camera_reconnects_with_continuous_pts(
        sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "flaky")})
    plays = sim.play_count("flaky")
    sub = await hub.subscribe(KEY)
    units = list(sub.initial_gop)
    deadline = time.monotonic() + 15
    while sim.play_count("flaky") < plays + 2 or len(units) < 20 + len(sub.initial_gop):
        assert time.monotonic() < deadline, "no reconnect seen"
        units.append(await asyncio.wait_for(sub.get(), 10))
    # a few more after the reconnect
    for _ in range(10):
        units.append(await asyncio.wait_for(sub.get(), 10))
    assert all(a.pts < b.pts for a, b in itertools.pairwise(units)), "pts must keep increasing"
    gaps = [b.pts - a.pts for a, b in itertools.pairwise(units)]
    assert max(gaps) <= 90000 * 1, "the timeline is rebased, not reset or jumping"
    keys = [u for u in units[1:] if u.keyframe]
    assert keys and all(nal_types(u)[:2] == [7, 8] for u in keys)
    status = next(s for s in hub.status() if s.key == KEY)
    assert status.reconnects >= 1 and status.upstream_connects >= 2


async def test_auth_with_credentials_and_without(
        sim: CamSim, make_hub: HubFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = SourceSpec(url=sim.url("auth"), username=sim.USER, password=sim.PASSWORD)
    wrong = SourceSpec(url=sim.url("auth"), username=sim.USER, password=sim.PASSWORD + "x")
    none = SourceSpec(url=sim.url("auth"))
    hub = await make_hub({1: good, 2: wrong, 3: none})
    sub = await hub.subscribe(KEY)
    assert (await sub.get()).data
    for camera in (2, 3):
        with pytest.raises(SourceUnavailable) as info:
            await hub.subscribe(StreamKey(camera))
        assert info.value.reason == "auth"
        assert sim.PASSWORD not in str(info.value)
        assert sim.PASSWORD not in repr(info.value.problem())
    assert all(s.last_error is None or sim.PASSWORD not in s.last_error for s in hub.status())
    assert sim.PASSWORD not in caplog.text
    assert sim.PASSWORD not in repr(good)


async def test_unreachable_fails_fast(make_hub: HubFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = await make_hub({1: SourceSpec(url=f"rtsp://127.0.0.1:{port}/x")})
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable) as info:
        await hub.subscribe(KEY)
    assert info.value.reason == "unreachable"
    assert time.monotonic() - t0 < 2
    await until(lambda: not hub.status(), 5, "failed stream removed")


async def test_unknown_camera_and_timeout(sim: CamSim, make_hub: HubFactory) -> None:
    # a listener that accepts and never answers: the connect timeout ends it
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        hub = await make_hub({1: SourceSpec(url=f"rtsp://127.0.0.1:{port}/x", connect_timeout=0.5,
                                            read_timeout=0.5)})
        with pytest.raises(CameraNotFound):
            await hub.subscribe(StreamKey(99))
        with pytest.raises(SourceUnavailable) as info:
            await hub.subscribe(KEY, timeout=5)
        assert info.value.reason == "timeout", info.value.detail


async def test_linger_stops_upstream_and_keep_warm_keeps_it(
        sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "h264gop4"), 2: spec(sim, "h264gop4")}, linger=0.3)
    plays = sim.play_count("h264gop4")
    sub = await hub.subscribe(KEY)
    sub.close()
    assert state_of(hub, KEY) == "live"  # lingering
    again = await hub.subscribe(KEY)  # within linger: same session
    assert sim.play_count("h264gop4") == plays + 1
    again.close()
    await until(lambda: state_of(hub, KEY) is None, 5, "linger expiry")
    assert hub.latest_gop(KEY) is None
    sub = await hub.subscribe(KEY)
    assert sim.play_count("h264gop4") == plays + 2
    sub.close()

    warm = StreamKey(2)
    hub.keep_warm(warm, datetime.now(UTC) + timedelta(seconds=1.5))
    await until(lambda: state_of(hub, warm) == "live", 5, "warm stream live")
    assert hub.latest_gop(warm) is not None
    await asyncio.sleep(0.8)  # longer than linger: must still be up
    assert state_of(hub, warm) == "live"
    await until(lambda: state_of(hub, warm) is None, 5, "warm period over")


async def test_main_profile_passes_through(sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "main")})
    sub = await hub.subscribe(KEY)
    assert sub.info.codec == "h264" and sub.info.profile_level_id == "4d401e"
    assert not hub.is_transcoded(KEY)
    units = list(sub.initial_gop) + [await sub.get() for _ in range(10)]
    numbers = decode_numbers(units)
    assert len(numbers) == len(units)


async def test_out_of_band_parameter_sets_are_inserted(sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "oob")})
    sub = await hub.subscribe(KEY)
    assert nal_types(sub.initial_gop[0])[:2] == [7, 8]
    assert sub.info.sps is not None and sub.info.profile_level_id == "42c01e"
    units = list(sub.initial_gop) + [await sub.get() for _ in range(5)]
    assert len(decode_numbers(units)) == len(units)


async def test_h265_comes_out_as_h264(sim: CamSim, make_hub: HubFactory) -> None:
    hub = await make_hub({1: spec(sim, "h265")})
    plays = sim.play_count("h265")
    sub = await hub.subscribe(KEY, timeout=10)
    assert sub.info.codec == "h264" and sub.info.profile_level_id is not None
    assert sub.info.profile_level_id.startswith("42")  # constrained baseline
    assert hub.is_transcoded(KEY)
    units = list(sub.initial_gop) + [await asyncio.wait_for(sub.get(), 5) for _ in range(20)]
    numbers = decode_numbers(units)
    assert len(numbers) == len(units)
    assert all(b == (a + 1) % 200 for a, b in itertools.pairwise(numbers))
    # transcode=True on an already-transcoded camera: no second session, no second encode
    other = await hub.subscribe(StreamKey(1, transcode=True), timeout=10)
    assert (await asyncio.wait_for(other.get(), 5)).data
    assert sim.play_count("h265") == plays + 1


async def test_transcode_flag_derives_from_the_same_session(
        sim: CamSim, make_hub: HubFactory) -> None:
    from camrelay.relay.stream import TranscodeSettings

    hub = await make_hub({1: SourceSpec(url=sim.url("h264"),
                                        transcode=TranscodeSettings(width=320, height=180))})
    plays = sim.play_count("h264")
    plain = await hub.subscribe(KEY)
    small = await hub.subscribe(StreamKey(1, transcode=True), timeout=10)
    assert small.info.width == 320 and small.info.height == 180
    units = list(small.initial_gop) + [await asyncio.wait_for(small.get(), 5) for _ in range(10)]
    assert units[0].keyframe
    numbers = decode_numbers(units)
    assert len(numbers) >= 8
    assert plain.info.width == 640
    assert sim.play_count("h264") == plays + 1
