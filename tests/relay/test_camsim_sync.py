"""The camera simulator inserts a keyframe on request (what a camera does for ONVIF
``SetSynchronizationPoint``): ``/h264gop4`` (GOP 4 s, sync branches every 4 frames) pulled
by camrelay's own RTSP client, decoded with PyAV."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from camrelay.relay.media import AccessUnit, VideoInfo
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import decode_numbers, nal_types

FPS, GOP, EVERY, FRAMES = 25, 100, 4, 200  # /h264gop4 (scripts/make_clips.py)


class TimedRecorder:
    """A UnitSink that keeps every unit with the monotonic time it arrived."""

    def __init__(self) -> None:
        self.units: list[AccessUnit] = []
        self.times: list[float] = []
        self._changed = asyncio.Event()

    def on_info(self, info: VideoInfo, transcoded: bool) -> None:
        pass

    def on_unit(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None:
        self.units.append(AccessUnit(data, pts, keyframe, arrival, len(self.units)))
        self.times.append(time.monotonic())
        self._changed.set()

    async def wait_units(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.units) < count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_keyframe(self, after: int, timeout: float = 10.0) -> int:
        """Index of the first keyframe at or after unit ``after``."""
        async with asyncio.timeout(timeout):
            while True:
                found = next((i for i in range(after, len(self.units))
                              if self.units[i].keyframe), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def playing(sim: CamSim) -> AsyncIterator[TimedRecorder]:
    """A client playing ``/h264gop4`` from its first frame."""
    recorder = TimedRecorder()
    task = asyncio.create_task(NativeRtspSource(SourceSpec(sim.url("h264gop4"))).run(recorder))
    try:
        yield recorder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_forced_keyframe_comes_at_once_and_the_gop_stays_on_schedule(
        sim: CamSim, playing: TimedRecorder) -> None:
    rec = playing
    await rec.wait_units(FPS + 1)  # about 1 s into the first 4 s GOP
    asked_at, asked_after = time.monotonic(), len(rec.units)
    keyed_before = len(sim.keyed("h264gop4"))
    sim.force_keyframe("h264gop4")
    sim.force_keyframe("h264gop4")  # merged into the first one
    forced = await rec.wait_keyframe(asked_after)
    latency = rec.times[forced] - asked_at
    regular_due = (GOP - asked_after) / FPS  # seconds until the regular keyframe
    assert latency < 0.5 < regular_due - 2, (latency, regular_due)
    kinds = nal_types(rec.units[forced])
    assert kinds[:2] == [7, 8] and 5 in kinds  # an IDR with SPS/PPS in band
    (keyed,) = (await sim.wait_keyed("h264gop4", keyed_before + 1))[keyed_before:]

    # past the regular keyframe that ends the branch
    await rec.wait_units(GOP + 10, timeout=10)
    units = rec.units
    numbers = decode_numbers(units)
    assert numbers == list(range(len(units)))  # every picture decoded, numbering continuous
    keyframes = [i for i, unit in enumerate(units) if unit.keyframe]
    assert keyframes == [0, forced, GOP]  # the regular keyframe still on schedule
    assert forced == keyed and forced % EVERY == 0
    assert forced - asked_after <= EVERY + FPS // 2  # the next branch start, plus what was
    # already in flight
    assert [b.pts - a.pts for a, b in itertools.pairwise(units)] == [3600] * (len(units) - 1)
    # a viewer that joins at the forced keyframe decodes every picture from there
    assert decode_numbers(units[forced:]) == list(range(forced, len(units)))
    assert len(sim.keyed("h264gop4")) == keyed_before + 1  # the second request was merged


async def test_every_client_of_the_mount_gets_its_keyframe(
        sim: CamSim, playing: TimedRecorder) -> None:
    second = TimedRecorder()
    task = asyncio.create_task(NativeRtspSource(SourceSpec(sim.url("h264gop4"))).run(second))
    try:
        await second.wait_units(FPS // 2)
        await playing.wait_units(FPS)
        keyed_before = len(sim.keyed("h264gop4"))
        asked_at = time.monotonic()
        after = [len(playing.units), len(second.units)]
        sim.force_keyframe("h264gop4")
        for rec, since in zip((playing, second), after, strict=True):
            forced = await rec.wait_keyframe(since)
            assert rec.times[forced] - asked_at < 0.5 and forced < GOP
        keyed = (await sim.wait_keyed("h264gop4", keyed_before + 2))[keyed_before:]
        assert len(keyed) == 2 and all(m % EVERY == 0 for m in keyed)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_mount_without_sync_branches_says_so(sim: CamSim) -> None:
    before = sim.nokey_count("h264")
    sim.force_keyframe("h264")
    async with asyncio.timeout(5):
        while sim.nokey_count("h264") == before:
            await asyncio.sleep(0.02)  # polling a counter fed by another process
    assert sim.keyed("h264") == []
