"""One stream's requests for a keyframe from its camera (``relay/keyframes.py``): prepared
once, one in flight (joiners meanwhile share it), at most one a second, a camera that
does not answer or refuses is left alone for a while, and an asked keyframe is no sample
of the camera's keyframe interval.  The asker is a recording one (our own
``KeyframeAsker`` Protocol); the end-to-end path through ONVIF to the simulated camera is
``tests/webrtc/test_whep_keyframe_request.py``."""

from __future__ import annotations

import asyncio

import pytest

from camrelay.errors import CamrelayError
from camrelay.relay import keyframes as kf
from camrelay.relay.keyframes import KeyframeRequests
from camrelay.relay.media import StreamKey, VideoInfo
from camrelay.relay.stream import Source, Stream
from tests.webrtc.conftest import wait_until

KEY = StreamKey(1)
TICK = 3600  # 25 fps


class RecordingAsker:
    def __init__(self, ready: bool = True, refuse: bool = False) -> None:
        self.ready = ready
        self.refuse = refuse
        self.prepared = 0
        self.asked = 0
        self.released = 0

    async def prepare(self, key: StreamKey) -> bool:
        self.prepared += 1
        return self.ready

    async def ask(self, key: StreamKey) -> None:
        self.asked += 1
        if self.refuse:
            raise CamrelayError("the camera said ActionNotSupported")

    async def release(self, key: StreamKey) -> None:
        self.released += 1


async def prepared(asker: RecordingAsker, wait: float = 0.8) -> KeyframeRequests:
    requests = KeyframeRequests(KEY, asker, wait)
    assert requests.ask() is None  # not prepared yet: nothing is asked
    requests.start()
    await wait_until(lambda: requests.ready or (asker.prepared == 1 and not asker.ready))
    return requests


async def test_one_request_in_flight_is_shared_and_answered_by_the_next_keyframe() -> None:
    asker = RecordingAsker()
    requests = await prepared(asker)
    first = requests.ask()
    assert first is not None and not first.failed
    await wait_until(lambda: asker.asked == 1)
    assert requests.ask() is first  # a second joiner before the keyframe: shared
    assert asker.asked == 1
    assert requests.keyframe_came() is True and not first.failed
    assert requests.outcomes == {"answered": 1} and requests.last_latency is not None
    assert requests.keyframe_came() is False  # the camera's own next keyframe
    assert requests.ask() is None  # within a second of the last request
    await requests.close()
    assert asker.released == 1


async def test_a_camera_that_sends_no_keyframe_is_left_alone(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    asker = RecordingAsker()
    requests = await prepared(asker, wait=0.05)
    first = requests.ask()
    assert first is not None
    await wait_until(lambda: asker.asked == 1)
    await asyncio.sleep(0.06)  # the wait passes with no keyframe
    monkeypatch.setattr(kf, "MIN_INTERVAL", 0.0)
    assert requests.ask() is None and requests.outcomes == {"missed": 1} and first.failed
    assert requests.ask() is None and asker.asked == 1 and asker.prepared == 1
    assert requests._retry_at - requests._last_ask >= kf.RETRY_AFTER
    await requests.close()


async def test_a_camera_that_refuses_is_left_alone_and_one_without_onvif_never_asked() -> None:
    asker = RecordingAsker(refuse=True)
    requests = await prepared(asker)
    first = requests.ask()
    assert first is not None
    await wait_until(lambda: requests.outcomes["failed"] == 1)
    assert first.failed  # its joiners stop waiting
    assert requests.ask() is None and asker.asked == 1
    await requests.close()

    plain = RecordingAsker(ready=False)
    requests = await prepared(plain)
    assert requests.ask() is None and requests.ask() is None
    assert plain.asked == 0 and plain.prepared == 1  # not prepared again either
    await requests.close()


async def test_an_asked_keyframe_is_no_sample_of_the_keyframe_interval() -> None:
    asker = RecordingAsker()

    async def open_source() -> Source:
        await asyncio.Event().wait()  # the test is the source: it calls on_unit itself
        raise AssertionError

    stream = Stream(KEY, open_source, keyframes=KeyframeRequests(KEY, asker, 0.8))
    stream.start()
    try:
        await wait_until(lambda: asker.prepared == 1)
        stream.on_info(VideoInfo("h264", 1280, 720, 25.0), False)

        def frames(first: int, last: int) -> None:
            for n in range(first, last):
                stream.on_unit(b"\x00\x00\x00\x01\x41", n * TICK, n % 100 == 0, 0.0)

        frames(0, 130)  # keyframes at 0 and 100: a 4 s GOP
        assert stream.keyframe_interval == 100 * TICK
        assert stream.keyframes is not None and stream.keyframes.ask() is not None
        stream.on_unit(b"\x00\x00\x00\x01\x65", 130 * TICK, True, 0.0)  # the asked one
        assert [u.pts for u in stream.gop] == [130 * TICK]  # joiners start from it
        frames(131, 201)  # the camera's schedule goes on: 200
        assert stream.keyframe_interval == 100 * TICK
        assert stream.keyframes.outcomes == {"answered": 1}
    finally:
        await stream.stop()
    assert asker.released == 1
