"""The stream measures its camera's keyframe interval (joins predict the next keyframe
from it, ``sinks/joinwait.py``): the median of the last intervals, so one irregular GOP
(a scene cut) does not move it, and a keyframe repeated at once (another camrelay sends a
joiner its keyframe twice) is not an interval.  A scripted source (our own ``Source``
Protocol) delivers the units."""

from __future__ import annotations

import asyncio

from camrelay.relay.media import StreamKey, VideoInfo
from camrelay.relay.stream import Source, Stream, UnitSink

TICK = 3600  # 25 fps


class ScriptedSource:
    """Delivers ``units`` ((pts, keyframe), ...) then stays connected until cancelled."""

    def __init__(self, units: list[tuple[int, bool]]) -> None:
        self.units = units
        self.delivered = asyncio.Event()

    async def run(self, sink: UnitSink) -> None:
        sink.on_info(VideoInfo("h264", 1280, 720, 25.0), False)
        for pts, keyframe in self.units:
            sink.on_unit(b"\x00\x00\x00\x01\x65" if keyframe else b"\x00\x00\x00\x01\x41",
                         pts, keyframe, 0.0)
        self.delivered.set()
        await asyncio.Event().wait()


async def interval_after(units: list[tuple[int, bool]]) -> int | None:
    source = ScriptedSource(units)

    async def open_source() -> Source:
        return source

    stream = Stream(StreamKey(1), open_source)
    stream.start()
    try:
        await asyncio.wait_for(source.delivered.wait(), 5)
        return stream.keyframe_interval
    finally:
        await stream.stop()


def gops(*lengths: int, repeat_first_key: bool = False) -> list[tuple[int, bool]]:
    """Units of GOPs of ``lengths`` frames, 25 fps."""
    units: list[tuple[int, bool]] = []
    frame = 0
    for length in lengths:
        for i in range(length):
            units.append((frame * TICK, i == 0))
            if i == 0 and repeat_first_key:
                units.append((frame * TICK + 1, True))
            frame += 1
    return units


async def test_the_keyframe_interval_is_the_median_of_the_last_ones() -> None:
    assert await interval_after(gops(100)) is None  # one keyframe: nothing to predict
    assert await interval_after(gops(100, 1)) == 100 * TICK
    # one short GOP among regular ones (a scene cut) does not move it
    assert await interval_after(gops(100, 100, 30, 100, 1)) == 100 * TICK
    # a camera that changed its GOP is followed within a few GOPs
    assert await interval_after(gops(100, 100, 50, 50, 50, 50, 1)) == 50 * TICK


async def test_a_keyframe_sent_twice_is_no_interval() -> None:
    assert await interval_after(gops(100, 100, 1, repeat_first_key=True)) == 100 * TICK
    assert await interval_after(gops(60, 1, repeat_first_key=True)) == 60 * TICK
