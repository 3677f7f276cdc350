"""A joiner mid-GOP asks the camera for a keyframe (``relay/keyframes.py``) and is live
from the camera's fresh IDR, whatever the GOP.

The camera is the RTSP simulator's ``/h264gop4`` (640x360 25 fps, GOP 4 s, frame numbers
burnt in, sync branches every 4 frames) with an ONVIF side (``tests/onvif/fakecam.py``)
whose ``SetSynchronizationPoint`` makes the simulator insert an IDR, as a camera's encoder
does (``scripts/camsim.py``, ``KEY``).  The relay reaches it through the real ONVIF client
(``camrelay.web.devices.CameraKeyframes`` over onvif-zeep-async).  The joiners are aiortc
viewers in a process of their own that decode every frame (``tests/join_viewers.py``).

A 640x360 catch-up is short enough that the relay would not ask for it (the rule, on
picture size and phase, is tested in ``test_whep_join_wait.py``); here the threshold is
set to 0 so that the whole path is exercised on the small clip (encoding sync branches
of a 720p clip would cost CI a minute).  At 720p and 1080p with aiortc and Chromium,
``scripts/bench/startup.py --real`` (BENCHMARKS.md).

40 frames into the GOP the joiner gets the cached keyframe at once and then the camera's
fresh keyframe, nothing of the old GOP.  A camera that refuses the request
(``ActionNotSupported``) costs its joiner nothing: the GOP at once, and the next joiner
does not ask.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from camrelay.onvif.models import Credentials, DeviceTarget
from camrelay.relay.media import StreamKey
from camrelay.relay.sinks import joinwait
from camrelay.relay.stream import SourceSpec
from camrelay.web.devices import CameraKeyframes
from tests.camsim_fixture import CamSim
from tests.join_viewers import ViewerProcess
from tests.onvif.fakecam import FakeCamera
from tests.webrtc.conftest import Relay, RelayFactory, wait_until
from tests.webrtc.test_whep_join_live import session_note

pytestmark = pytest.mark.netns

MOUNT, GOP_FRAMES, PERIOD = "/h264gop4", 100, 200  # the camsim fixture's clip
PHASE = 40  # frames into the GOP: the camera's own keyframe is 2.4 s away
SYNC_EVERY = 4  # the clip's sync branches: an asked IDR within this many frames
LIVE_WITHIN = 1.0


@dataclass
class Camera:
    relay: Relay
    onvif: FakeCamera


@pytest.fixture
async def camera(relay_factory: RelayFactory, camsim: CamSim, request: pytest.FixtureRequest
                 ) -> AsyncIterator[Camera]:
    """Camera 1: the simulator's /h264gop4 with its ONVIF side; the indirect parameter
    (default True): whether it answers SetSynchronizationPoint."""
    url = camsim.url(MOUNT)
    onvif = FakeCamera(stream_uris={"Profile_1": url, "Profile_2": url},
                       sync_point_supported=getattr(request, "param", True),
                       on_sync_point=lambda _token: camsim.force_keyframe(MOUNT))
    await onvif.start()
    target = DeviceTarget(onvif.host, onvif.port, Credentials(onvif.username, onvif.password))

    async def locate(_key: StreamKey) -> tuple[DeviceTarget, str, None]:
        return target, url, None

    try:
        relay = await relay_factory({1: SourceSpec(url)}, keyframes=CameraKeyframes(locate))
        yield Camera(relay, onvif)
    finally:
        await onvif.close()


async def viewers_of(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> ViewerProcess:
    """The running viewer, with the stream's keyframe requests prepared; from then on
    every joiner asks (whatever its catch-up)."""
    viewers = await ViewerProcess.start(relay.url, 1, token="tok-alice",
                                        running_token="tok-bob", gop_frames=GOP_FRAMES,
                                        period=PERIOD, timeout=3.0)
    stream = relay.hub._streams[StreamKey(1)]
    await wait_until(lambda: stream.keyframes is not None and stream.keyframes.ready,
                     timeout=10)
    monkeypatch.setattr(joinwait, "ASK_AFTER_SECONDS", 0.0)
    return viewers


async def test_a_joiner_mid_gop_is_live_from_the_keyframe_it_asked_the_camera_for(
        camera: Camera, camsim: CamSim, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = camera.relay
    viewers = await viewers_of(relay, monkeypatch)
    before = len(camsim.keyed(MOUNT))  # the simulator is shared by the session's tests
    try:
        join = await viewers.join(PHASE)
        (session,) = [s for s in relay.egress.sessions() if s.owner == 1]
        counters, note = session.counters, session_note(session)
        await viewers.leave()
        gap = await viewers.running_gap()
    finally:
        await viewers.close()
    print(join, note, f"running viewer's gap {gap:.3f} s")

    assert camera.onvif.sync_points == ["Profile_1"]  # the profile serving the stream
    (forced,) = camsim.keyed(MOUNT)[before:]  # the clip frame the simulator made an IDR
    numbers = [n for n in join.numbers if n is not None]
    # the cached keyframe (twice: aiortc shows a frame when the next one starts), then
    # the camera's fresh keyframe a few frames after the join: no picture of the old GOP
    assert counters.keyframes_asked == 1 and counters.burst_units == 2, note
    assert counters.replays == counters.join_wait_replays == 0, note
    assert numbers[0] % GOP_FRAMES == 0 and numbers[1] == numbers[0], join
    assert numbers[2] == forced, join
    assert 0 <= forced % GOP_FRAMES - PHASE <= 3 * SYNC_EVERY, join
    assert numbers[2:] == list(range(forced, forced + len(numbers) - 2)), join
    assert join.live is not None and join.live <= LIVE_WITHIN, (join, note)
    assert gap <= LIVE_WITHIN, f"the running viewer froze for {gap:.2f} s"


@pytest.mark.parametrize("camera", [False], indirect=True)
async def test_a_camera_that_refuses_costs_its_joiner_nothing_and_is_not_asked_again(
        camera: Camera, camsim: CamSim, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = camera.relay
    viewers = await viewers_of(relay, monkeypatch)
    before = len(camsim.keyed(MOUNT))
    joins = []
    try:
        for _ in range(2):
            join = await viewers.join(PHASE)
            (session,) = [s for s in relay.egress.sessions() if s.owner == 1]
            joins.append((join, session.counters.keyframes_asked,
                          session.counters.join_wait_replays, session_note(session)))
            await viewers.leave()
    finally:
        await viewers.close()
    print(joins)

    assert camera.onvif.operations.count("SetSynchronizationPoint") == 1
    assert camera.onvif.sync_points == [] and camsim.keyed(MOUNT)[before:] == []
    (first, asked, replays, note), (second, asked2, replays2, note2) = joins
    # the first joiner asked, was refused, and got the GOP at once
    assert (asked, replays) == (1, 1), note
    assert first.live is not None and first.live <= LIVE_WITHIN, (first, note)
    # the second did not ask: the rest of the GOP, as for a camera without ONVIF
    assert (asked2, replays2) == (0, 0), note2
    assert second.live is not None and second.live <= LIVE_WITHIN, (second, note2)
    numbers = [n for n in second.numbers if n is not None]
    assert numbers[0] % GOP_FRAMES == 0 and numbers == list(
        range(numbers[0], numbers[0] + len(numbers))), second
