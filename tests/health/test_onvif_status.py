"""ONVIF device status in the health checks: the fake camera answers over real SOAP
(through onvif-zeep-async), its stream is the real RTSP simulator behind a link that can
be cut; the monitor is the app's own, checked by hand (the scheduler is off)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.app import create_app
from camrelay.health.history import Verdict
from camrelay.health.monitor import HealthMonitor
from camrelay.settings import Settings
from camrelay.web.keys import MONITOR_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import World, auth
from tests.health.test_monitor import HEALTH
from tests.onvif.fakecam import FakeCamera
from tests.relay.camera_link import CameraLink

MODEL, FIRMWARE = "DS-2DE4A425IW-DE", "V5.6.15 build 200326"  # data/GetDeviceInformation.xml


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the picture is not judged here (the simulator's first keyframe is the same at every
    # check: "frozen"); tests/health/test_monitor.py judges it
    return replace(settings, health=replace(
        HEALTH, enabled=False, onvif_events=False, onvif_status_timeout=2.0,
        diagnosis=replace(HEALTH.diagnosis, enabled=False)),
                   relay=replace(settings.relay, connect_timeout=1.0, read_timeout=1.0))


@pytest.fixture
async def fake() -> AsyncIterator[FakeCamera]:
    cam = await FakeCamera(clock_offset=dt.timedelta(0)).start()
    try:
        yield cam
    finally:
        await cam.close()


@pytest.fixture
async def link(camsim: CamSim) -> AsyncIterator[CameraLink]:
    link = CameraLink(camsim.port)
    await link.restore()
    yield link
    await link.cut()


async def _camera(world: World, link: CameraLink, fake: FakeCamera | None) -> int:
    fields: dict[str, Any] = {
        "external_id": "bridge-1", "name": "Bridge 1", "unit": "330110",
        "category": "bridge", "main_url": link.url("/h264")}
    if fake is not None:
        fields.update(onvif_url=f"http://127.0.0.1:{fake.port}/onvif/device_service",
                      username=fake.username, password=fake.password)
    return (await world.catalog.add_camera(fields)).id


async def _device(client: TestClient[Any, Any], world: World, camera_id: int) -> Any:
    resp = await client.get(f"/api/v1/cameras/{camera_id}/health",
                            headers=auth(world.admin_token))
    assert resp.status == 200
    return (await resp.json())["device"]


async def test_stream_cut_while_the_device_answers_is_a_stream_fault_both_down_offline(
        world: World, settings: Settings, link: CameraLink, fake: FakeCamera) -> None:
    camera_id = await _camera(world, link, fake)
    app = create_app(settings, world.store)
    monitor: HealthMonitor = app[MONITOR_KEY]
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        device = await _device(client, world, camera_id)
        assert (device["answered"], device["reason"]) == (True, None)
        assert (device["manufacturer"], device["model"], device["firmware"]) == (
            "HIKVISION", MODEL, FIRMWARE)
        assert abs(device["clock_drift_seconds"]) < 2
        assert fake.operations[-2:] == ["GetSystemDateAndTime", "GetDeviceInformation"]
        assert "GetServices" not in fake.operations  # the cheap calls only
        await link.cut()
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict(
            "fault", "stream")
        fake.stop_answering()  # the device hangs too
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict(
            "offline", "unreachable")
        device = await _device(client, world, camera_id)
        assert (device["answered"], device["reason"], device["model"]) == (
            False, "timeout", None)
        await fake.close()  # nothing listens any more: refused, the same verdict
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict(
            "offline", "unreachable")
        assert (await _device(client, world, camera_id))["reason"] == "unreachable"
        resp = await client.get(f"/api/v1/cameras/{camera_id}/health",
                                headers=auth(world.admin_token))
        assert [(i["status"], i["reason"]) for i in (await resp.json())["intervals"]] == [
            ("online", None), ("fault", "stream"), ("offline", "unreachable")]
        resp = await client.get("/api/v1/alarms", headers=auth(world.admin_token))
        assert sorted((a["kind"], a["active"]) for a in await resp.json()) == [
            ("fault.stream", False), ("offline", True)]


async def test_a_device_clock_ten_minutes_ahead_is_the_finding_clock_drift(
        world: World, settings: Settings, link: CameraLink, fake: FakeCamera) -> None:
    camera_id = await _camera(world, link, fake)
    fake.clock_offset = dt.timedelta(minutes=10)
    app = create_app(settings, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        verdict = await app[MONITOR_KEY].check_and_record(camera_id, "bridge")
        assert verdict is not None and (verdict.status, verdict.reason) == (
            "fault", "clock_drift")
        [finding] = verdict.findings
        assert finding["threshold"] == 300.0 and abs(finding["value"] - 600) < 2
        device = await _device(client, world, camera_id)
        assert abs(device["clock_drift_seconds"] - 600) < 2
        # the identity was still read: WS-Security was timed on the camera's clock
        assert device["model"] == MODEL and fake.auth_failures == []
        resp = await client.get("/api/v1/alarms?active=true", headers=auth(world.admin_token))
        [alarm] = await resp.json()
        assert alarm["kind"] == "finding.clock_drift"
        assert abs(alarm["value"]["value"] - 600) < 2
        fake.clock_offset = dt.timedelta(seconds=-20)  # set right (within the limit)
        assert await app[MONITOR_KEY].check_and_record(camera_id, "bridge") == Verdict(
            "online")


async def test_credentials_refused_by_the_device_are_an_auth_fault(
        world: World, settings: Settings, link: CameraLink, fake: FakeCamera) -> None:
    camera_id = await _camera(world, link, fake)
    fake.refuse_auth = True
    app = create_app(settings, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        monitor = app[MONITOR_KEY]
        # the stream plays, but PTZ, events and snapshots need the refused credentials
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("fault", "auth")
        await link.cut()
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("fault", "auth")
        device = await _device(client, world, camera_id)
        assert (device["answered"], device["reason"]) == (True, "auth")
        assert abs(device["clock_drift_seconds"]) < 2  # the clock needs no credentials
        assert fake.password not in str(device["detail"])


async def test_a_camera_without_onvif_or_with_the_status_off_is_judged_on_its_stream(
        world: World, settings: Settings, link: CameraLink, fake: FakeCamera) -> None:
    plain = await _camera(world, link, None)
    app = create_app(settings, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        monitor = app[MONITOR_KEY]
        assert await monitor.check_and_record(plain, "bridge") == Verdict("online")
        await link.cut()
        assert await monitor.check_and_record(plain, "bridge") == Verdict(
            "offline", "unreachable")
        assert await _device(client, world, plain) is None
    await link.restore()
    other = await world.catalog.add_camera({
        "external_id": "bridge-2", "name": "Bridge 2", "unit": "330110",
        "category": "bridge", "main_url": link.url("/h264"),
        "onvif_url": f"http://127.0.0.1:{fake.port}/onvif/device_service",
        "username": fake.username, "password": fake.password})
    off = replace(settings, health=replace(settings.health, onvif_status=False))
    app = create_app(off, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await link.cut()
        assert await app[MONITOR_KEY].check_and_record(other.id, "bridge") == Verdict(
            "offline", "unreachable")
        assert fake.operations == [] and await _device(client, world, other.id) is None


async def test_a_device_that_answers_garbage_never_fails_the_check(
        world: World, settings: Settings, link: CameraLink, fake: FakeCamera) -> None:
    camera_id = await _camera(world, link, fake)
    fake.garbage = True  # an HTML page on the ONVIF port
    app = create_app(settings, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        monitor = app[MONITOR_KEY]
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        device = await _device(client, world, camera_id)
        assert (device["answered"], device["reason"]) == (True, "not_onvif")
        await link.cut()  # something answers at the device: its stream is what fails
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict(
            "fault", "stream")
