"""Catalogue cameras asked for a keyframe (``camrelay.web.devices.CameraKeyframes`` with
``catalogue_streams``): the stored ONVIF address and credentials, the media profile
whose stream URI is the stream's address (else the main or sub profile by variant),
and no request at all for a camera without an ONVIF address.  Real SQLite store, the
fake ONVIF camera through onvif-zeep-async."""

from __future__ import annotations

import pytest

from camrelay.relay.media import StreamKey
from camrelay.web.devices import CameraKeyframes, catalogue_streams
from tests.conftest import World
from tests.onvif.fakecam import FakeCamera

# the fake camera's stream URIs (tests/onvif/fakecam.py), as the catalogue would hold them
SUB_URI = ("rtsp://127.0.0.1:554/Streaming/Channels/102"
           "?transportmode=unicast&profile=Profile_2")


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def add(world: World, name: str, cam: FakeCamera | None, **fields: str) -> int:
    onvif = {} if cam is None else {
        "onvif_url": f"http://127.0.0.1:{cam.port}/onvif/device_service",
        "username": cam.username, "password": cam.password}
    camera = await world.catalog.add_camera({
        "external_id": name, "name": name, "unit": "330110", "category": "bridge",
        **onvif, **fields})
    return camera.id


async def test_the_profile_serving_the_stream_is_asked_with_the_stored_credentials(
        world: World, camera: FakeCamera) -> None:
    # the catalogue's main address is the device's sub profile (a technician's choice)
    by_url = await add(world, "by-url", camera, main_url=SUB_URI)
    by_variant = await add(world, "by-variant", camera,
                           main_url="rtsp://127.0.0.1:554/live/main",
                           sub_url="rtsp://127.0.0.1:554/live/sub")
    keyframes = CameraKeyframes(catalogue_streams(world.catalog), timeout=10)
    try:
        for key in (StreamKey(by_url), StreamKey(by_variant),
                    StreamKey(by_variant, "sub")):
            assert await keyframes.prepare(key) is True
            await keyframes.ask(key)
    finally:
        for key in (StreamKey(by_url), StreamKey(by_variant), StreamKey(by_variant, "sub")):
            await keyframes.release(key)
    assert camera.sync_points == ["Profile_2", "Profile_1", "Profile_2"]
    assert camera.auth_failures == []


async def test_a_camera_without_onvif_is_never_asked(world: World, camera: FakeCamera) -> None:
    plain = await add(world, "plain", None, main_url="rtsp://127.0.0.1:554/live/main")
    keyframes = CameraKeyframes(catalogue_streams(world.catalog), timeout=10)
    assert await keyframes.prepare(StreamKey(plain)) is False
    assert camera.operations == []


async def test_a_stream_started_again_does_not_read_the_device_again(
        world: World, camera: FakeCamera) -> None:
    toured = await add(world, "toured", camera, main_url="rtsp://127.0.0.1:554/live/main",
                       sub_url="rtsp://127.0.0.1:554/live/sub")
    keyframes = CameraKeyframes(catalogue_streams(world.catalog), timeout=10)
    for key in (StreamKey(toured), StreamKey(toured, "sub"), StreamKey(toured)):
        assert await keyframes.prepare(key) is True  # a stream (re)starts, as in a tour
        await keyframes.ask(key)
        await keyframes.release(key)
    # one reading of the device's profiles for the three starts; one request each
    assert camera.operations.count("GetProfiles") == 1
    assert camera.sync_points == ["Profile_1", "Profile_2", "Profile_1"]
