"""Status probing on the real RTSP simulator behind a link that can be cut and restored."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from camrelay.app import make_resolver
from camrelay.health.history import HealthHistory, Verdict
from camrelay.health.monitor import HealthMonitor
from camrelay.relay.hub import Hub
from camrelay.relay.media import StreamKey
from camrelay.relay.sources.registry import default_sources
from camrelay.settings import DiagnosisSettings, HealthSettings, Settings
from camrelay.store import schema
from tests.camsim_fixture import CamSim
from tests.conftest import World
from tests.relay.camera_link import CameraLink

PERIOD = 1.0
# The simulator's looping test pattern is green at its keyframes (mean RGB about 54, 120,
# 47): a real colour cast by the grey-world measure, so these status tests raise that one
# threshold; tests/health/test_diagnosis.py judges pictures at the defaults.
HEALTH = HealthSettings(period_seconds=PERIOD, probe_timeout=3.0,
                        diagnosis=DiagnosisSettings(colour_cast=60.0))


@pytest.fixture
async def link(camsim: CamSim) -> CameraLink:
    link = CameraLink(camsim.port)
    await link.restore()
    yield link
    await link.cut()


async def camera_on(world: World, link: CameraLink) -> int:
    camera = await world.catalog.add_camera({
        "external_id": "bridge-1", "name": "Bridge 1", "unit": "330110",
        "category": "bridge", "main_url": link.url("/h264")})
    return camera.id


@asynccontextmanager
async def monitored(world: World, settings: Settings, health: HealthSettings = HEALTH
                    ) -> AsyncIterator[tuple[Hub, HealthMonitor]]:
    """A started hub and a monitor on it; the monitor's probe process and the hub ended
    after."""
    resolve = make_resolver(world.catalog, settings)
    hub = Hub(resolve, default_sources(), linger=0.2)
    await hub.start()
    monitor = HealthMonitor(world.store, hub, resolve, health)
    try:
        yield hub, monitor
    finally:
        await monitor.close()
        await hub.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_camera_that_goes_away_is_offline_within_a_period_and_back(
        world: World, settings: Settings, link: CameraLink) -> None:
    settings = replace(settings, relay=replace(settings.relay, connect_timeout=1.0,
                                               read_timeout=1.0))
    camera_id = await camera_on(world, link)
    hub = Hub(make_resolver(world.catalog, settings), default_sources(), linger=0.2)
    await hub.start()
    monitor = HealthMonitor(world.store, hub, make_resolver(world.catalog, settings), HEALTH)
    changes: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    monitor.listeners.append(lambda cam, v: changes.put_nowait((v.status, time.monotonic())))
    task = asyncio.create_task(monitor.run())
    try:
        status, _ = await asyncio.wait_for(changes.get(), 10)
        camera = await world.catalog.get_camera(camera_id)
        assert status == "online", await HealthHistory(world.store).down_since([camera_id])
        cut = time.monotonic()
        await link.cut()
        status, at = await asyncio.wait_for(changes.get(), 10)
        assert status == "offline"
        assert at - cut < PERIOD + settings.relay.connect_timeout + 1.0
        camera = await world.catalog.get_camera(camera_id)
        assert camera.status.value == "offline"
        back = time.monotonic()
        await link.restore()
        status, at = await asyncio.wait_for(changes.get(), 10)
        assert status == "online"
        assert at - back < PERIOD + HEALTH.probe_timeout + 1.0
        assert changes.empty()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await monitor.close()
        await hub.stop()
    intervals = await HealthHistory(world.store).intervals(camera_id, since=(
        await world.catalog.get_camera(camera_id)).created_at)
    assert [(i.status, i.reason) for i in intervals] == [
        ("online", None), ("offline", "unreachable"), ("online", None)]
    assert intervals[0].ended_at == intervals[1].started_at and intervals[2].ended_at is None
    camera = await world.catalog.get_camera(camera_id)
    assert camera.status.value == "online" and camera.last_seen_at is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_watched_camera_is_judged_from_its_stream_not_opened_twice(
        world: World, settings: Settings, link: CameraLink) -> None:
    camera_id = await camera_on(world, link)
    async with monitored(world, settings) as (hub, monitor):
        sub = await hub.subscribe(StreamKey(camera_id), timeout=10)
        await sub.get()
        sessions = link.requests
        verdicts = [await monitor.check_and_record(camera_id, "bridge") for _ in range(3)]
        assert verdicts == [Verdict("online")] * 3
        assert link.requests == sessions  # judged on the hub's keyframe
        sub.close()
        # nobody watches any more: the check opens its own short session
        while hub.live_keyframe(StreamKey(camera_id))[0] != "stopped":
            await asyncio.sleep(0.05)
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        assert link.requests == sessions + 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_stream_still_connecting_is_judged_by_its_first_keyframe_not_skipped(
        world: World, settings: Settings, link: CameraLink) -> None:
    """A drill (or a period) that comes while a viewer's stream is connecting judges that
    stream's first keyframe: not "unchecked", and no second session to the camera."""
    camera_id = await camera_on(world, link)
    async with monitored(world, settings) as (hub, monitor):
        sessions = link.requests
        hub.keep_warm(StreamKey(camera_id), datetime.now(UTC) + timedelta(seconds=30))
        assert hub.live_keyframe(StreamKey(camera_id))[0] == "connecting"
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        assert link.requests == sessions + 1  # the hub's session only
        hub.cool(StreamKey(camera_id))


def _proc_stat(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()  # from field 3 (state) on


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_probe_decodes_and_diagnoses_in_a_lowered_child_process_not_the_server(
        world: World, settings: Settings, link: CameraLink) -> None:
    camera_id = await camera_on(world, link)
    async with monitored(world, settings, replace(HEALTH, probe_nice=7)) as (_, monitor):
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        assert link.requests == 1  # the probe opened the camera once, from the child
        pid = monitor.probes.pid
        assert pid is not None and pid != os.getpid()
        fields = _proc_stat(pid)
        assert int(fields[1]) == os.getpid()  # our child
        assert int(fields[16]) - int(_proc_stat(os.getpid())[16]) == 7  # nice, field 19
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "numpy" in maps and "libavcodec" in maps  # the picture checks ran there
        assert "camrelay.health.judge" not in sys.modules  # and never in this process
        thumb = monitor.thumbnails.get(camera_id)
        assert thumb is not None and thumb.jpeg.startswith(b"\xff\xd8")
    assert not Path(f"/proc/{pid}").exists() or _proc_stat(pid)[0] == "Z"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_probe_process_that_dies_costs_one_check_at_most(
        world: World, settings: Settings, link: CameraLink) -> None:
    camera_id = await camera_on(world, link)
    # every session to the simulator starts its clip at the same frame: two probes by one
    # process would find the picture frozen, which is not what this test is about
    health = replace(HEALTH, diagnosis=replace(HEALTH.diagnosis, frozen_samples=10))
    async with monitored(world, settings, health) as (_, monitor):
        assert await monitor.check_and_record(camera_id, "bridge") == Verdict("online")
        first = monitor.probes.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # our own child
        verdicts = [await monitor.check_and_record(camera_id, "bridge") for _ in range(2)]
        assert verdicts[-1] == Verdict("online"), verdicts
        assert verdicts[0] in (Verdict("online"), Verdict("fault", "error")), verdicts
        assert monitor.probes.pid not in (None, first)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_field_and_imported_cameras_keep_the_status_their_own_source_gives(
        world: World, settings: Settings, link: CameraLink) -> None:
    """A field camera's status is its publisher's presence, an imported camera's its own
    platform's: a period probes neither (an imported camera would be pulled from below)."""
    probed = await camera_on(world, link)
    field = await world.catalog.add_camera({
        "external_id": "phone-1", "name": "Phone 1", "unit": "330110", "category": "bridge",
        "camera_type": "phone", "main_url": "whip:"})
    imported = await world.catalog.add_camera({
        "external_id": "county-1", "name": "County 1", "unit": "330110",
        "category": "bridge", "main_url": link.url("/h264")})
    async with world.store.begin() as conn:  # as federation sync marks what it imports
        await conn.execute(schema.cameras.update().where(
            schema.cameras.c.id == imported.id).values(link_id=1))
    sessions = link.requests
    async with monitored(world, settings) as (_, monitor):
        await asyncio.wait_for(monitor.run_period(), 20)
        assert monitor.checks == 1
    assert link.requests == sessions + 1  # the probed camera's session only
    assert (await world.catalog.get_camera(probed)).status.value == "online"
    for camera in (field, imported):
        assert (await world.catalog.get_camera(camera.id)).status.value == "unknown"
