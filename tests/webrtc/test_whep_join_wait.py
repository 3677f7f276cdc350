"""A joiner late in a long GOP resumes at the camera's next keyframe (``joinwait.py``).

A 1280x720 25 fps H.264 camera with a 4 s GOP (the camsim_720p fixture's clip, frame
numbers burnt in, a keyframe every 100 frames): a joiner 85 frames into the GOP would
have to decode ~90 P-frames of the cached GOP to reach the live picture (0.5-1 s in a
browser on this machine); the camera's next keyframe is ~0.6 s away.  It gets the cached
keyframe at once (twice: aiortc shows a frame only when the next one starts), then
nothing more of that GOP, then the next keyframe, and is live from there.  A joiner early in the GOP still gets the rest of the GOP (the paced burst).
The structure (which pictures the joiner decoded, what the relay sent) is asserted; the
1 s is the relay's promise.

The fallback, when the predicted keyframe does not come (the camera changed its GOP), is
checked on ``ForwardTrack`` with a fake subscription (our own Protocol), unit by unit.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import NoReturn

import pytest

from camrelay.relay.hub import StreamClosed
from camrelay.relay.keyframes import KeyframeAsk
from camrelay.relay.media import VIDEO_CLOCK, AccessUnit, AudioInfo, VideoInfo
from camrelay.relay.sinks.joinwait import GRACE_SECONDS, plan_join
from camrelay.relay.sinks.webrtc import ForwardTrack, SessionCounters
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.join_viewers import ViewerProcess
from tests.webrtc.conftest import RelayFactory, wait_until
from tests.webrtc.test_whep_join_live import session_note

pytestmark = pytest.mark.netns

CLIP, GOP_FRAMES, PERIOD = "j720g4", 100, 200  # the camsim_720p fixture's clip
EARLY, LATE = 10, 85  # GOP phases (frames) of the two joins
LIVE_WITHIN = 1.0
TICK = VIDEO_CLOCK // 25  # one frame at 25 fps


async def test_a_late_joiner_gets_the_keyframe_then_the_next_one_and_an_early_one_the_gop(
        relay_factory: RelayFactory, camsim_720p: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim_720p.url("/" + CLIP))})
    viewers = await ViewerProcess.start(relay.url, 1, token="tok-alice", running_token="tok-bob",
                                        gop_frames=GOP_FRAMES, period=PERIOD, timeout=3.0)
    results = {}
    try:
        for phase in (EARLY, LATE):
            join = await viewers.join(phase)
            (session,) = [s for s in relay.egress.sessions() if s.owner == 1]
            results[phase] = (join, session.counters.bursts, session.counters.burst_units,
                              session.counters.join_waits, session.counters.replays,
                              session_note(session))
            await viewers.leave()
        gap = await viewers.running_gap()
    finally:
        await viewers.close()
    print(results, f"running viewer's gap {gap:.3f} s")

    early, bursts, burst_units, waits, _, note = results[EARLY]
    numbers = [n for n in early.numbers if n is not None]
    # the cached keyframe, then the rest of its GOP in order (the paced burst)
    assert waits == 0 and bursts >= 1 and burst_units >= 5, (early, note)
    assert numbers[0] % GOP_FRAMES == 0, early
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), early
    assert early.live is not None and early.live <= LIVE_WITHIN, (early, note)

    late, bursts, burst_units, waits, replays, note = results[LATE]
    numbers = [n for n in late.numbers if n is not None]
    # the cached keyframe alone (twice: aiortc shows a frame when the next one starts),
    # then the camera's next keyframe: no picture of the old GOP
    assert (waits, bursts, burst_units, replays) == (1, 1, 2, 0), (late, note)
    assert numbers[0] % GOP_FRAMES == 0 and numbers[1] == numbers[0], late
    assert len(numbers) >= 3 and numbers[2] == (numbers[0] + GOP_FRAMES) % PERIOD, late
    assert late.live is not None and late.live <= LIVE_WITHIN, (late, note)
    assert gap <= LIVE_WITHIN, f"running viewer froze for {gap:.2f} s"


# --------------------------------------------------------------------------- the track alone

INFO = VideoInfo("h264", 1280, 720, 25.0)


class FakeSubscription:
    """The hub subscription's Protocol over a scripted stream: ``push`` is the camera."""

    def __init__(self, interval: int | None) -> None:
        self.keyframe_interval = interval
        self.info = INFO
        self.dropped = 0
        self.audio_info: AudioInfo | None = None
        self._gop: list[AccessUnit] = []
        self._queue: deque[AccessUnit] = deque()
        self._ready = asyncio.Event()
        self._seq = 0
        self.answer: KeyframeAsk | None = None  # what asking the camera for a keyframe gives
        self.asked = 0

    def ask_keyframe(self) -> KeyframeAsk | None:
        self.asked += 1
        return self.answer

    def push(self, pts: int, keyframe: bool = False) -> AccessUnit:
        self._seq += 1
        unit = AccessUnit(data=bytes([self._seq % 256]) * 10, pts=pts, keyframe=keyframe,
                          arrival=0.0, seq=self._seq)
        self._gop = [unit] if keyframe else [*self._gop, unit]
        self._queue.append(unit)
        self._ready.set()
        return unit

    @property
    def initial_gop(self) -> tuple[AccessUnit, ...]:
        return tuple(self._gop)

    def gop(self) -> tuple[AccessUnit, ...]:
        return tuple(self._gop)

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def get(self) -> AccessUnit:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        pass

    def open_audio(self) -> NoReturn:
        raise StreamClosed("no audio")


def late_join(interval: int | None = 100 * TICK, frames: int = 86,
              answer: KeyframeAsk | None = None
              ) -> tuple[FakeSubscription, ForwardTrack, SessionCounters]:
    """A subscription whose cached GOP is ``frames`` old, and a joiner's track on it
    (``answer``: what asking the camera for a keyframe gives)."""
    sub = FakeSubscription(interval)
    sub.answer = answer
    for i in range(frames):
        sub.push(i * TICK, keyframe=i == 0)
    sub._queue.clear()  # what the hub hands a new subscriber: the GOP, no queue
    counters = SessionCounters()
    track = ForwardTrack(sub, counters, "test", pli_min_interval=1.0, join_wait=0.75)
    return sub, track, counters


def asking(wait: float) -> KeyframeAsk:
    """A request for a keyframe that a joiner waits on for ``wait`` seconds."""
    return KeyframeAsk(time.monotonic() + wait)


async def next_unit(track: ForwardTrack) -> tuple[AccessUnit, int]:
    return await asyncio.wait_for(track.next_unit(), 2)


async def test_the_waited_keyframe_follows_the_first_at_its_real_distance() -> None:
    sub, track, counters = late_join()
    key, _ = await next_unit(track)
    again, ts = await next_unit(track)
    assert again is key and key.keyframe and key.pts == 0 and counters.join_waits == 1
    for i in range(86, 100):  # the rest of the GOP, live: not sent
        sub.push(i * TICK)
    sub.push(100 * TICK, keyframe=True)
    sub.push(101 * TICK)
    nxt, nxt_ts = await next_unit(track)
    assert nxt.keyframe and nxt.pts == 100 * TICK
    # stamped at the live time: the next keyframe is as far after it as it really came
    assert nxt_ts - ts == (100 - 85) * TICK
    after, after_ts = await next_unit(track)
    assert after.pts == 101 * TICK and after_ts - nxt_ts == TICK
    assert counters.units_sent == 4 and counters.join_wait_replays == 0


async def test_a_keyframe_that_does_not_come_when_predicted_gets_the_gop_replayed() -> None:
    sub, track, counters = late_join()
    key, _ = await next_unit(track)
    again, ts = await next_unit(track)
    assert again is key and key.keyframe and counters.join_waits == 1
    grace = int(GRACE_SECONDS * VIDEO_CLOCK) // TICK  # frames
    # the camera changed its GOP: no keyframe at frame 100, nor within the grace
    for i in range(86, 101 + grace):
        sub.push(i * TICK)
    replay = asyncio.ensure_future(next_unit(track))
    await wait_until(lambda: sub.queued == 0)  # the track took every unit pushed so far
    assert not replay.done()  # within the grace: still waiting
    sub.push((101 + grace) * TICK)
    unit, replay_ts = await replay
    assert unit is key and replay_ts > ts  # the GOP again, from its keyframe
    assert counters.join_wait_replays == 1 and counters.replays == 1
    rest = [await next_unit(track) for _ in range(101 + grace)]
    assert [u.pts for u, _ in rest] == [i * TICK for i in range(1, 102 + grace)]
    stamps = [replay_ts, *(t for _, t in rest)]
    assert all(b > a for a, b in itertools.pairwise(stamps))


async def test_early_joins_small_pictures_and_unknown_intervals_get_the_burst() -> None:
    def gop(frames: int) -> list[AccessUnit]:
        return [AccessUnit(b"x", i * TICK, i == 0, 0.0, i + 1) for i in range(frames)]

    pixels = 1280 * 720
    assert plan_join(gop(86), 100 * TICK, pixels, 0.75) is not None
    assert plan_join(gop(10), 100 * TICK, pixels, 0.75) is None  # the GOP is nearer
    assert plan_join(gop(86), None, pixels, 0.75) is None  # no interval measured yet
    assert plan_join(gop(86), 100 * TICK, pixels, 0.0) is None  # switched off
    assert plan_join(gop(120), 100 * TICK, pixels, 0.75) is None  # overdue: GOP changed
    assert plan_join(gop(86), 100 * TICK, 320 * 240, 0.75) is None  # decodes in 60 ms
    # a 1 s GOP: 20 frames of 720p catch up in ~0.16 s, sooner than the keyframe in 0.2 s
    assert plan_join(gop(20), 25 * TICK, pixels, 0.75) is None


async def test_a_joiner_mid_gop_asks_the_camera_and_resumes_at_the_asked_keyframe() -> None:
    # 40 frames into a 4 s GOP: ~0.3 s of 720p to decode, the camera's keyframe 2.4 s away
    sub, track, counters = late_join(frames=40, answer=asking(0.8))
    key, _ = await next_unit(track)
    again, ts = await next_unit(track)
    assert again is key and key.keyframe and sub.asked == 1
    assert counters.join_waits == counters.keyframes_asked == 1
    sub.push(40 * TICK)
    sub.push(41 * TICK)
    sub.push(42 * TICK, keyframe=True)  # the asked keyframe, two frames later
    nxt, nxt_ts = await next_unit(track)
    assert nxt.keyframe and nxt.pts == 42 * TICK and nxt_ts - ts == 3 * TICK
    assert counters.units_sent == 3 and counters.bursts == 1 and counters.replays == 0


async def test_an_asked_keyframe_that_does_not_come_gets_the_gop_replayed() -> None:
    sub, track, counters = late_join(frames=40, answer=asking(0.4))
    key, _ = await next_unit(track)
    await next_unit(track)
    for i in range(40, 48):  # within 0.4 s of stream time (the deadline), no keyframe
        sub.push(i * TICK)
    replay = asyncio.ensure_future(next_unit(track))
    await wait_until(lambda: sub.queued == 0)
    assert not replay.done()
    sub.push(50 * TICK)
    unit, _ = await replay
    assert unit is key and counters.join_wait_replays == 1 and counters.replays == 1


async def test_a_camera_that_refuses_the_request_sends_its_joiners_the_gop_at_once() -> None:
    asked = asking(0.8)
    sub, track, counters = late_join(frames=40, answer=asked)
    key, _ = await next_unit(track)
    await next_unit(track)
    sub.push(40 * TICK)
    waiting = asyncio.ensure_future(next_unit(track))
    await wait_until(lambda: sub.queued == 0)
    assert not waiting.done()
    asked.failed = True  # the camera answered with a fault
    sub.push(41 * TICK)  # long before the deadline
    unit, _ = await waiting
    assert unit is key and counters.join_wait_replays == 1 and counters.replays == 1


async def test_the_camera_is_asked_only_when_the_catch_up_is_long_and_its_keyframe_far() -> None:
    def gop(frames: int) -> list[AccessUnit]:
        return [AccessUnit(b"x", i * TICK, i == 0, 0.0, i + 1) for i in range(frames)]

    pixels, asked = 1280 * 720, []

    def ask(answer: float | None) -> Callable[[], KeyframeAsk | None]:
        def ask_now() -> KeyframeAsk | None:
            asked.append(answer)
            return None if answer is None else asking(answer)
        return ask_now

    plan = plan_join(gop(40), 100 * TICK, pixels, 0.75, ask(0.8))
    assert plan is not None and plan.asked and plan.due == pytest.approx(0.8, abs=0.05)
    assert abs(plan.deadline - (39 * TICK + int(0.8 * VIDEO_CLOCK))) < TICK and asked == [0.8]
    # the camera cannot be asked now: the catch-up (the camera's keyframe is 2.4 s away)
    assert plan_join(gop(40), 100 * TICK, pixels, 0.75, ask(None)) is None
    # nor when it cannot be asked, late in the GOP: its own next keyframe
    late = plan_join(gop(86), 100 * TICK, pixels, 0.75, ask(None))
    assert late is not None and not late.asked and late.due == pytest.approx(15 / 25)
    asked.clear()
    assert plan_join(gop(10), 100 * TICK, pixels, 0.75, ask(0.8)) is None  # 80 ms to decode
    near = plan_join(gop(97), 100 * TICK, pixels, 0.75, ask(0.8))  # its keyframe in 0.16 s
    assert near is not None and near.due == pytest.approx(4 / 25)
    assert plan_join(gop(20), 100 * TICK, 320 * 240, 0.75, ask(0.8)) is None  # small picture
    assert asked == []


async def live_track(frames: int = 40) -> tuple[FakeSubscription, ForwardTrack, SessionCounters]:
    """A track that joined ``frames`` into a 4 s GOP (the camera could not be asked:
    the burst) and has sent all of it."""
    sub, track, counters = late_join(frames=frames)
    for _ in range(frames):
        await next_unit(track)
    assert counters.bursts == 1 and counters.keyframes_asked == 0 and sub.asked == 1
    sub.asked = 0
    return sub, track, counters


async def test_a_keyframe_request_asks_the_camera_instead_of_replaying_the_gop() -> None:
    sub, track, counters = await live_track()
    sub.answer = asking(0.8)
    for i in range(40, 60):
        sub.push(i * TICK)
    for _ in range(5):
        await next_unit(track)
    track.request_keyframe()  # the viewer lost packets: PLI
    waiting = asyncio.ensure_future(next_unit(track))
    await wait_until(lambda: sub.queued == 0)  # the live P-frames: not sent
    assert not waiting.done() and sub.asked == 1 and counters.keyframes_asked == 1
    sub.push(60 * TICK, keyframe=True)  # the camera's fresh keyframe
    unit, _ = await waiting
    assert unit.keyframe and unit.pts == 60 * TICK
    assert counters.replays == 0 and counters.bursts == 1


async def test_a_keyframe_request_replays_the_gop_when_the_camera_cannot_be_asked() -> None:
    sub, track, counters = await live_track()
    sub.push(40 * TICK)
    track.request_keyframe()
    unit, _ = await next_unit(track)
    assert unit.keyframe and unit.pts == 0 and counters.replays == 1 and sub.asked == 1


async def test_a_viewer_skipped_to_the_next_keyframe_asks_the_camera_without_a_deadline() -> None:
    sub, track, counters = await live_track()
    asked = asking(0.1)
    sub.answer = asked
    track.skip_to_keyframe()  # the fan-out: this viewer's link fell behind
    assert sub.asked == 1 and counters.keyframes_asked == 1
    asked.failed = True  # the camera did not answer: still no replay, the next keyframe
    for i in range(40, 99):
        sub.push(i * TICK)
    waiting = asyncio.ensure_future(next_unit(track))
    await wait_until(lambda: sub.queued == 0)
    assert not waiting.done()
    sub.push(100 * TICK, keyframe=True)
    unit, _ = await waiting
    assert unit.keyframe and unit.pts == 100 * TICK and counters.replays == 0
