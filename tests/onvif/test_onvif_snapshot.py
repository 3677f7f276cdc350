"""Snapshot over HTTP digest from the fake camera, and identity helpers."""

from __future__ import annotations

import dataclasses

import pytest

from camrelay.onvif.device import read_device
from camrelay.onvif.errors import OnvifAuthFailed, OnvifError, OnvifUnsupported
from camrelay.onvif.identity import external_id_for, same_stream
from camrelay.onvif.models import Credentials, DeviceTarget
from camrelay.onvif.snapshot import fetch_snapshot
from tests.onvif.fakecam import JPEG, FakeCamera


async def test_snapshot_from_the_report(camera: FakeCamera) -> None:
    creds = Credentials(camera.username, camera.password)
    report = await read_device(DeviceTarget(camera.host, camera.port, creds), timeout=30)
    assert await fetch_snapshot(report, creds) == JPEG
    assert camera.snapshot_fetches == 1
    # the same from the URI string, credentials embedded in it
    uri = f"http://admin:{camera.password}@127.0.0.1:{camera.port}/onvif/snapshot?channel=1"
    assert await fetch_snapshot(uri, None) == JPEG


async def test_snapshot_wrong_password(camera: FakeCamera) -> None:
    report = await read_device(DeviceTarget(camera.host, camera.port,
                                            Credentials(camera.username, camera.password)),
                               timeout=30)
    with pytest.raises(OnvifAuthFailed) as info:
        await fetch_snapshot(report, Credentials("admin", "not-it"))
    assert "not-it" not in str(info.value)


async def test_snapshot_only_from_the_registered_host(camera: FakeCamera) -> None:
    creds = Credentials(camera.username, camera.password)
    report = await read_device(DeviceTarget(camera.host, camera.port, creds), timeout=30)
    elsewhere = dataclasses.replace(report, snapshot_uri="http://192.0.2.10/onvif/snapshot")
    with pytest.raises(OnvifError, match="registered"):
        await fetch_snapshot(elsewhere, creds)
    with pytest.raises(OnvifUnsupported):
        await fetch_snapshot(dataclasses.replace(report, snapshot_uri=None), creds)


async def test_external_id_is_stable(camera: FakeCamera) -> None:
    creds = Credentials(camera.username, camera.password)
    first = await read_device(DeviceTarget(camera.host, camera.port, creds), timeout=30)
    second = await read_device(DeviceTarget("localhost", camera.port, creds), timeout=30)
    assert external_id_for(first) == external_id_for(second) == \
        "onvif:hikvision:DS-2DE4A425IW-DE20200617CCWRE12345678"
    no_serial = dataclasses.replace(
        first, info=dataclasses.replace(first.info, serial_number="00000000"),
        endpoint_reference="urn:uuid:2419D68A-2DD2-21B2-A205-EC8D59A3F0F2")
    assert external_id_for(no_serial) == "onvif:epr:2419d68a-2dd2-21b2-a205-ec8d59a3f0f2"
    assert external_id_for(dataclasses.replace(no_serial, endpoint_reference=None)) == \
        f"onvif:addr:127.0.0.1:{camera.port}"


def test_same_stream() -> None:
    assert same_stream("rtsp://admin:pw@10.0.0.5/Streaming/Channels/101?transportmode=unicast",
                       "rtsp://10.0.0.5:554/Streaming/Channels/101/")
    assert same_stream("rtsp://CAM.example/live", "rtsp://cam.example:554/live")
    assert not same_stream("rtsp://10.0.0.5/Streaming/Channels/101",
                           "rtsp://10.0.0.5/Streaming/Channels/102")
    assert not same_stream("rtsp://10.0.0.5:8554/live", "rtsp://10.0.0.5/live")
    assert not same_stream("rtsp://10.0.0.5/live", "rtsp://10.0.0.6/live")
