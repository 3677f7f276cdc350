"""Media ``SetSynchronizationPoint`` (the camera inserts a keyframe) reaching the fake
camera through the real client (onvif-zeep-async via ``OnvifConnection``), and from there
the camera simulator's stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from camrelay.onvif.device import NS_MEDIA, OnvifConnection
from camrelay.onvif.errors import OnvifUnsupported
from camrelay.onvif.models import Credentials, DeviceTarget
from camrelay.relay.media import VideoInfo
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.onvif.fakecam import FakeCamera


def target_for(cam: FakeCamera) -> DeviceTarget:
    return DeviceTarget(cam.host, cam.port, Credentials(cam.username, cam.password))


async def set_sync_point(cam: FakeCamera, token: str) -> None:
    async with OnvifConnection.open(target_for(cam), timeout=30) as conn:
        request = await conn.create_type(NS_MEDIA, "SetSynchronizationPoint")
        request.ProfileToken = token
        await conn.call("SetSynchronizationPoint", "SetSynchronizationPoint", NS_MEDIA,
                        request)


async def test_sync_point_reaches_the_hook(camera: FakeCamera) -> None:
    hooked: list[str] = []
    camera.on_sync_point = hooked.append
    await set_sync_point(camera, "Profile_1")
    await set_sync_point(camera, "Profile_2")
    assert camera.sync_points == hooked == ["Profile_1", "Profile_2"]
    assert camera.auth_failures == []


async def test_camera_without_sync_points(camera: FakeCamera) -> None:
    camera.sync_point_supported = False
    hooked: list[str] = []
    camera.on_sync_point = hooked.append
    with pytest.raises(OnvifUnsupported):
        await set_sync_point(camera, "Profile_1")
    assert camera.sync_points == hooked == []
    assert camera.operations[-1] == "SetSynchronizationPoint"


class KeyframeTimes:
    """A UnitSink that notes when units and keyframes arrive (monotonic)."""

    def __init__(self) -> None:
        self.count = 0
        self.keyframes: list[tuple[int, float]] = []  # (unit number, arrival)
        self.changed = asyncio.Event()

    def on_info(self, info: VideoInfo, transcoded: bool) -> None:
        pass

    def on_unit(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None:
        if keyframe:
            self.keyframes.append((self.count, time.monotonic()))
        self.count += 1
        self.changed.set()

    async def wait(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def test_sync_point_forwarded_to_the_simulator_brings_a_keyframe(
        camera: FakeCamera, camsim: CamSim) -> None:  # noqa: F811
    hooked: list[float] = []

    def forward(token: str) -> None:
        hooked.append(time.monotonic())
        camsim.force_keyframe("h264gop4")

    camera.on_sync_point = forward
    sink = KeyframeTimes()
    task = asyncio.create_task(
        NativeRtspSource(SourceSpec(camsim.url("h264gop4"))).run(sink))
    try:
        await sink.wait(lambda: sink.count > 25)  # 1 s into a GOP of 4 s
        keyed = len(camsim.keyed("h264gop4"))
        await set_sync_point(camera, "Profile_1")
        await sink.wait(lambda: len(sink.keyframes) > 1)
        (unit, arrived), = sink.keyframes[1:]
        (asked_at,) = hooked
        assert arrived - asked_at < 0.5 and unit < 100  # not the regular keyframe (unit 100)
        assert len(await camsim.wait_keyed("h264gop4", keyed + 1)) == keyed + 1
        assert camera.sync_points == ["Profile_1"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
