"""ONVIF events as alarms: the fake camera's PullPoint notifications, through the real
onvif-zeep-async client and the supervisor, reach the responsible units' live channels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.app import create_app
from camrelay.events import Event
from camrelay.health.alarms import Alarm, AlarmFilter, Alarms
from camrelay.health.onvif_events import OnvifEventSupervisor, SubscriptionState
from camrelay.onvif.events import OnvifEvent, classify
from camrelay.onvif.models import DeviceTarget
from camrelay.settings import Settings
from camrelay.tasks import stop_task
from camrelay.web.devices import device_target
from camrelay.web.keys import EVENTS_KEY, ONVIF_EVENTS_KEY
from tests.conftest import World, auth
from tests.health.test_alarms import _units_and_users, _until
from tests.onvif.fakecam import FakeCamera
from tests.test_live_channel import read_event

MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
RULE = {"VideoSourceConfigurationToken": "VSC_1", "Rule": "MyMotionDetectorRule"}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, health=replace(
        settings.health, onvif_events=True, onvif_termination_seconds=4.0,
        onvif_pull_timeout=1.0, onvif_retry_min_seconds=0.2, onvif_retry_max_seconds=1.0))


@pytest.fixture
async def fake() -> AsyncIterator[FakeCamera]:
    cam = await FakeCamera().start()
    try:
        yield cam
    finally:
        await cam.close()


async def _camera(world: World, cam: FakeCamera, name: str) -> int:
    camera = await world.catalog.add_camera({
        "external_id": name, "name": name, "unit": "330110", "maintenance_unit": "330900",
        "category": "bridge", "onvif_url": f"http://127.0.0.1:{cam.port}/onvif/device_service",
        "username": cam.username, "password": cam.password})
    return camera.id


def test_topics_map_to_alarm_kinds() -> None:
    def event(topic: str, **data: str) -> OnvifEvent:
        return OnvifEvent(topic, "Changed", None, (), tuple(data.items()))

    alarm = classify(event("tns1:VideoSource/MotionAlarm", State="true"))
    assert alarm is not None and (alarm.kind, alarm.active) == ("onvif.motion", True)
    ended = classify(event(MOTION, IsMotion="false"))
    assert ended is not None and (ended.kind, ended.active) == ("onvif.motion", False)
    tamper = classify(event("tns1:VideoSource/GlobalSceneChange/ImagingService", State="1"))
    assert tamper is not None and (tamper.kind, tamper.active) == ("onvif.tamper", True)
    dark = classify(event("tns1:VideoSource/ImageTooDark/AnalyticsService", State="true"))
    assert dark is not None and dark.kind == "onvif.tamper"
    loss = classify(event("tns1:VideoSource/SignalLoss", State="true"))
    assert loss is not None and loss.kind == "onvif.video_loss"
    assert classify(event("tns1:Device/Trigger/DigitalInput", LogicalState="true")) is None
    assert classify(event(MOTION, IsMotion="maybe")) is None


async def test_motion_reaches_the_maintenance_unit_clears_and_survives_a_restart(
        world: World, settings: Settings, fake: FakeCamera) -> None:
    tokens = await _units_and_users(world)
    camera_id = await _camera(world, fake, "bridge-onvif")
    app = create_app(settings, world.store)
    supervisor = app[ONVIF_EVENTS_KEY]
    states: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    supervisor.listeners.append(lambda cam, s: states.put_nowait((s.state, s.subscriptions)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client, \
            client.get("/api/v1/events", headers=auth(tokens["maint"])) as maint, \
            client.get("/api/v1/events", headers=auth(tokens["other"])) as other:
        assert (await read_event(maint))[0] == "hello"
        assert (await read_event(other))[0] == "hello"
        assert await asyncio.wait_for(states.get(), 20) == ("subscribed", 1)
        fake.push_event(MOTION, {"IsMotion": "true"}, source=RULE)
        seen, raised = await _until(maint, "alarm.")
        assert seen[-1] == "alarm.raised"
        assert (raised["camera_id"], raised["kind"], raised["active"]) == (
            camera_id, "onvif.motion", True)
        assert raised["units"] == ["330110", "330900"]
        assert raised["value"]["topic"] == MOTION
        assert raised["value"]["data"] == {"IsMotion": "true"}
        assert raised["value"]["source"] == RULE
        r = await client.get("/api/v1/alarms?active=true", headers=auth(tokens["maint"]))
        assert [(a["id"], a["kind"]) for a in await r.json()] == [
            (raised["id"], "onvif.motion")]
        fake.push_event(MOTION, {"IsMotion": "false"}, source=RULE)
        seen, cleared = await _until(maint, "alarm.")
        assert seen[-1] == "alarm.cleared" and cleared["id"] == raised["id"]
        # the camera restarts: its subscriptions are gone; a new one is made
        fake.drop_subscriptions()
        assert await asyncio.wait_for(states.get(), 20) == ("retrying", 1)
        assert supervisor.states[camera_id].reason == "protocol"
        assert await asyncio.wait_for(states.get(), 20) == ("subscribed", 2)
        r = await client.get(f"/api/v1/cameras/{camera_id}/health",
                             headers=auth(tokens["maint"]))
        follow = (await r.json())["events"]
        assert (follow["state"], follow["subscriptions"], follow["faults"],
                follow["reason"], follow["events"]) == ("subscribed", 2, 1, "protocol", 2)
        fake.push_event("tns1:VideoSource/GlobalSceneChange/ImagingService",
                        {"State": "true"})
        seen, tamper = await _until(maint, "alarm.")
        assert seen[-1] == "alarm.raised" and tamper["kind"] == "onvif.tamper"
        # renewed in time: 4 s granted, renewed after 80 %, never expired
        await fake.wait_for(lambda: len(fake.renewals) >= 2, timeout=20)
        assert all(when < termination for when, termination in fake.renewals)
        assert fake.expired == [] and fake.subscribed == 2
        # the unrelated unit's user: nothing on the channel, nothing over the API
        app[EVENTS_KEY].publish(Event("test.marker", {}))
        seen, _ = await _until(other, "test.marker")
        assert not [s for s in seen if s.startswith("alarm.")]
        r = await client.get("/api/v1/alarms", headers=auth(tokens["other"]))
        assert r.status == 200 and await r.json() == []
    # the app stopped: the subscription was ended
    assert fake.unsubscribed == [2] and fake.subscriptions == {}


async def test_garbage_is_a_recorded_fault_and_cameras_come_and_go(
        world: World, settings: Settings, fake: FakeCamera) -> None:
    await _units_and_users(world)
    broken = await FakeCamera(garbage=True).start()
    later = await FakeCamera().start()
    try:
        good_id = await _camera(world, fake, "good")
        broken_id = await _camera(world, broken, "broken")
        alarms = Alarms(world.store)
        raised: asyncio.Queue[Alarm] = asyncio.Queue()
        alarms.listeners.append(lambda action, alarm: raised.put_nowait(alarm))

        async def target_for(camera_id: int) -> DeviceTarget:
            return await device_target(world.catalog, await world.catalog.get_camera(
                camera_id))

        supervisor = OnvifEventSupervisor(world.store, alarms, target_for, settings.health)
        states: asyncio.Queue[tuple[int, SubscriptionState]] = asyncio.Queue()
        supervisor.listeners.append(lambda cam, s: states.put_nowait((cam, s)))

        async def until(camera_id: int, what: str, count: int = 1) -> SubscriptionState:
            while True:
                cam, state = await asyncio.wait_for(states.get(), 20)
                if cam == camera_id and state.state == what and (
                        state.faults if what == "retrying" else state.subscriptions) >= count:
                    return state

        task = asyncio.create_task(supervisor.run())
        try:
            await until(good_id, "subscribed")
            state = await until(broken_id, "retrying", 2)  # retried, still running
            assert state.reason == "not_onvif" and "not an ONVIF" in (state.detail or "")
            assert broken.password not in (state.detail or "")
            fake.push_event("tns1:VideoSource/SignalLoss", {"State": "true"})
            alarm = await asyncio.wait_for(raised.get(), 20)
            assert (alarm.camera_id, alarm.kind) == (good_id, "onvif.video_loss")
            assert not task.done()
            # a camera added is picked up; a camera disabled is unsubscribed
            later_id = await _camera(world, later, "later")
            supervisor.wake()
            await until(later_id, "subscribed")
            await world.catalog.update_camera(good_id, {"enabled": False})
            supervisor.wake()
            await fake.wait_for(lambda: fake.unsubscribed == [1])
            assert set(supervisor.states) == {broken_id, later_id}
        finally:
            await stop_task(task)
        assert later.unsubscribed == [1] and later.subscriptions == {}
        # the video loss alarm stays until the camera says otherwise
        [still] = await alarms.list(None, AlarmFilter(active=True))
        assert still.kind == "onvif.video_loss"
    finally:
        await broken.close()
        await later.close()
