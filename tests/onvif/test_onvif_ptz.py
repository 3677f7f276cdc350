"""PTZ commands reaching the fake camera through the real client."""

from __future__ import annotations

import pytest

from camrelay.onvif.device import read_device
from camrelay.onvif.errors import OnvifAuthFailed, OnvifUnsupported
from camrelay.onvif.models import Credentials, DeviceTarget, PtzPreset
from camrelay.onvif.ptz import PtzClient, clamp
from tests.onvif.fakecam import FakeCamera, PtzMove


def target_for(cam: FakeCamera, password: str | None = None) -> DeviceTarget:
    return DeviceTarget(cam.host, cam.port, Credentials(cam.username, password or cam.password))


async def test_velocities_are_clamped_and_reach_the_camera(camera: FakeCamera) -> None:
    target = target_for(camera)
    report = await read_device(target, timeout=30)
    async with PtzClient.for_report(report, target, timeout=30) as ptz:
        await ptz.move(0.5, -0.25, 0.0)
        await ptz.move(3.0, -7.5, 1.5, timeout=2)
        await ptz.move(None, None, -0.5)
        await ptz.stop()
        presets = await ptz.presets()
        await ptz.goto_preset(presets[1].token, speed=0.8)
    assert camera.ptz_moves == [
        PtzMove("Profile_1", 0.5, -0.25, 0.0),
        PtzMove("Profile_1", 1.0, -1.0, 1.0),
        PtzMove("Profile_1", None, None, -0.5),
    ]
    assert camera.ptz_stops == ["Profile_1"]
    assert presets == (PtzPreset("1", "Gate"), PtzPreset("2", "Car park"))
    assert camera.gotos == ["2"]
    assert camera.auth_failures == []  # clock skew compensated for PTZ calls too


async def test_camera_without_ptz(camera: FakeCamera) -> None:
    camera.ptz = False
    target = target_for(camera)
    report = await read_device(target, timeout=30)
    assert not report.ptz and report.ptz_profile_token is None
    with pytest.raises(OnvifUnsupported):
        PtzClient.for_report(report, target)
    with pytest.raises(OnvifUnsupported):
        async with PtzClient.open(target, "Profile_1", timeout=30):
            pass


async def test_ptz_with_a_wrong_password(camera: FakeCamera) -> None:
    with pytest.raises(OnvifAuthFailed):
        async with PtzClient.open(target_for(camera, "bad"), "Profile_1", timeout=30) as ptz:
            await ptz.move(0.1, 0, 0)
    assert camera.ptz_moves == []


def test_clamp() -> None:
    assert clamp(None) is None
    assert clamp(float("nan")) == 0.0
    assert clamp(-2) == -1.0 and clamp(2) == 1.0 and clamp(0.3) == 0.3
