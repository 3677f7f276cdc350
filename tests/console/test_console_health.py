"""Device health in the console, in headless Chromium against the real app: the alarm
bell and panel (live from alarm.* events, acknowledged from the panel, routed to the
responsible units only), status badges with the reason on tree rows and tiles (a camera
on the RTSP simulator cut and restored), the drills page (run, listed, report), hostile
names, both languages, a 1920×1080 wall with the panel open."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from camrelay.access.journal import RecordFilter
from camrelay.health.history import Verdict
from camrelay.settings import Settings
from camrelay.web.keys import ALARMS_KEY, HUB_KEY, JOURNAL_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import auth
from tests.console.conftest import Hall
from tests.console.test_console_admin import as_user, shot
from tests.relay.camera_link import CameraLink

pytestmark = pytest.mark.netns

HOSTILE = "<img src=x onerror=\"window.pwned=1\">'\"&<script>window.pwned=2</script>"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the simulator's test pattern is colourful on purpose (tests/health/test_monitor.py)
    health = settings.health
    return replace(settings, health=replace(health, diagnosis=replace(
        health.diagnosis, colour_cast=60.0)))


async def connected(page: Any) -> None:
    """The page's live channel has said hello (events from now on reach it)."""
    await page.wait_for_function(
        "() => window.camrelayConsole.channel && window.camrelayConsole.channel.connected")


async def unwatched(hall: Hall, camera_id: int) -> None:
    """Until the hub holds no stream of the camera (its last viewer left, linger over)."""
    hub = hall.client.server.app[HUB_KEY]
    changed = asyncio.Event()
    hub.watch(lambda key, state, reason: changed.set())
    while True:
        changed.clear()
        if camera_id not in hub.camera_ids():
            return
        await asyncio.wait_for(changed.wait(), 15)


async def not_pwned(page: Any) -> None:
    assert await page.evaluate("() => window.pwned === undefined")
    assert await page.locator('img[src="x"], #alarm-list script, .admin script').count() == 0


async def test_an_alarm_rings_the_bell_is_acknowledged_from_the_panel_and_clears(
        hall: Hall) -> None:
    county, other = hall.folks.cameras["county"], hall.folks.cameras["other"]
    await hall.world.catalog.update_camera(county, {"name": HOSTILE})
    page = await hall.console("county_op")
    stranger = await as_user(hall, "other_op", lang="en")  # 330200: not the county's
    await connected(page)
    await connected(stranger)
    assert await page.get_attribute("#alarm-bell", "data-count") == "0"
    await page.click('.tile[data-index="2"]')  # where an alarm's camera goes
    alarms = hall.client.server.app[ALARMS_KEY]
    blur = {"kind": "blur", "value": 12.5, "threshold": 50.0}
    [(_, alarm)] = await alarms.observe(county, Verdict("fault", "blur", (blur,)))
    started = time.monotonic()
    await page.wait_for_selector('#alarm-bell[data-count="1"]', timeout=1000)
    print(f"bell rang {time.monotonic() - started:.3f} s after the alarm was raised")
    await page.click("#alarm-bell")
    row = page.locator(f'#alarm-list .alarm[data-alarm="{alarm.id}"]')
    await row.wait_for(timeout=1000)
    text = await row.inner_text()
    assert HOSTILE in text  # the name as text, not markup
    assert "画面诊断：画面模糊（测得 12.5，阈值 50）" in text and "一般" in text
    assert (await hall.world.catalog.get_unit("330110")).name in text  # the routed unit
    assert await row.get_attribute("data-severity") == "minor"
    # an ONVIF motion alarm of the same camera: newest first, the count rises
    [(_, motion)] = await alarms.update(county, {"onvif.motion": (
        "tns1:VideoSource/MotionAlarm", {"topic": "tns1:VideoSource/MotionAlarm"})},
        prefix="onvif.")
    await page.wait_for_selector('#alarm-bell[data-count="2"]', timeout=1000)
    ids = await page.eval_on_selector_all("#alarm-list .alarm",
                                          "rows => rows.map(r => r.dataset.alarm)")
    assert ids == [str(motion.id), str(alarm.id)]
    assert "移动侦测" in await page.inner_text(f'#alarm-list .alarm[data-alarm="{motion.id}"]')
    # another unit's alarm reaches that unit, never the county
    [(_, theirs)] = await alarms.observe(other, Verdict("offline", "unreachable"))
    await stranger.wait_for_selector('#alarm-bell[data-count="1"]', timeout=1000)
    await stranger.click("#alarm-bell")
    assert await stranger.eval_on_selector_all(
        "#alarm-list .alarm", "rows => rows.map(r => r.dataset.alarm)") == [str(theirs.id)]
    assert "Offline: unreachable" in await stranger.inner_text("#alarm-list")
    assert HOSTILE not in await stranger.inner_text("#alarm-list")
    assert await page.get_attribute("#alarm-bell", "data-count") == "2"
    # the wall, 4×4 at 1920×1080, with the panel open: looked at by a person
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await page.click('#layouts button[data-layout="4x4"]')
    await page.click('.tile[data-index="5"]')
    assert await page.locator("#alarm-panel").is_visible()  # open while the wall is used
    await shot(hall, page, "wall-alarm-panel")
    # a row puts the camera on the selected tile
    await row.locator(".alarm-open").click()
    await page.wait_for_selector(f'.tile[data-index="5"] camrelay-player[camera="{county}"]')
    assert HOSTILE in await page.inner_text('.tile[data-index="5"] .tile-name')
    # acknowledged with a comment, from the keyboard
    comment = row.locator('input[name="comment"]')
    await comment.fill("已通知养护单位清洁镜头")
    await comment.press("Enter")
    await page.wait_for_selector(f'.alarm[data-alarm="{alarm.id}"][data-acked="true"]')
    await page.wait_for_selector('#alarm-bell[data-count="1"]')
    assert "已确认：county_op" in await row.inner_text()
    resp = await hall.client.get(f"/api/v1/alarms?camera={county}",
                                 headers=hall.folks.h("county_op"))
    acked = {a["id"]: a for a in await resp.json()}[alarm.id]["ack"]
    assert (acked["by"], acked["comment"]) == ("county_op", "已通知养护单位清洁镜头")
    records = await hall.client.server.app[JOURNAL_KEY].records(RecordFilter(camera_id=county))
    assert any(r["action"] == "alarm.ack" and r["user"] == "county_op"
               and (r["detail"] or {}).get("alarm") == alarm.id for r in records), records
    # the condition ends: the alarm leaves the active list
    await alarms.observe(county, Verdict("online"))
    await row.wait_for(state="detached", timeout=1000)
    assert await page.get_attribute("#alarm-bell", "data-count") == "1"  # motion stays
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#alarm-panel", state="hidden")
    await not_pwned(page)
    await not_pwned(stranger)


async def test_a_cut_camera_gets_its_offline_badge_with_the_reason_live(
        hall: Hall, camsim: CamSim) -> None:
    link = CameraLink(camsim.port)
    await link.restore()
    try:
        cam = await hall.world.catalog.add_camera({
            "external_id": "tunnel-7", "name": "Tunnel 7", "unit": "330110",
            "category": "tunnel", "main_url": link.url("/h264")})

        async def drill() -> None:
            resp = await hall.client.post("/api/v1/drills?wait=true", json={"unit": "330110"},
                                          headers=auth(hall.world.admin_token))
            assert resp.status == 200, await resp.text()

        await drill()
        page = await hall.console("county_op")
        await connected(page)
        # not watched (the first sign-in fills the wall): judged by its own checks
        tiles = await page.eval_on_selector_all(
            f'.tile:has(camrelay-player[camera="{cam.id}"])', "ts => ts.map(t => t.dataset.index)")
        for index in tiles:  # live first, so that closing it ends its session at once
            await page.wait_for_selector(f'.tile[data-index="{index}"][data-state="live"]')
            await page.click(f'.tile[data-index="{index}"] .tile-close')
        await unwatched(hall, cam.id)
        row = page.locator(f'.tree .camera[data-camera="{cam.id}"]')
        assert await row.locator(".status").get_attribute("data-status") == "online"
        assert await row.locator(".status-badge").is_hidden()
        await page.click("#alarm-bell")  # the panel stays open while the wall is used
        alarm = page.locator("#alarm-list .alarm", has_text="Tunnel 7")
        await link.cut()
        await drill()
        badge = row.locator('.status-badge[data-status="offline"]')
        await badge.wait_for(timeout=1000)
        assert await badge.inner_text() == "无法连接"
        await row.hover()
        title = await row.get_attribute("title")
        assert "离线：无法连接，已持续" in title, title
        await alarm.wait_for(timeout=1000)
        assert await alarm.get_attribute("data-severity") == "critical"
        assert "离线：无法连接" in await alarm.inner_text()
        # the status filter keeps working: offline shows it, online does not
        await page.select_option("#filter-status", "offline")
        await row.wait_for()
        await page.select_option("#filter-status", "online")
        await row.wait_for(state="detached")
        await page.select_option("#filter-status", "")
        # back: the badge goes, the alarm clears
        await link.restore()
        await drill()
        await row.locator(".status-badge").wait_for(state="hidden", timeout=1000)
        await alarm.wait_for(state="detached", timeout=1000)
        # English
        await page.click("#lang")
        await link.cut()
        await drill()
        await badge.wait_for(timeout=1000)
        assert await badge.inner_text() == "unreachable"
        assert "Offline: unreachable" in await alarm.inner_text()
        # on a tile (last: a watched camera is judged from its stream): the catalogue's
        # status and reason next to the player's state
        await page.click('.tile[data-index="2"]')
        await row.click()
        tile_badge = page.locator('.tile[data-index="2"] .tile-health[data-status="offline"]')
        await tile_badge.wait_for()
        assert await tile_badge.inner_text() == "unreachable"
        assert "offline: unreachable, for" in (await tile_badge.get_attribute("title") or "")
    finally:
        await link.cut()


async def test_the_drills_page_runs_a_drill_lists_it_and_opens_its_report(hall: Hall) -> None:
    broken = await hall.world.catalog.add_camera({
        "external_id": "hostile-1", "name": HOSTILE, "unit": "330110", "category": "bridge",
        "main_url": "rtsp://127.0.0.1:9/closed"})
    page = await hall.console("county_op")  # an operator: the drills page only
    await page.click("#nav-admin")
    tabs = await page.eval_on_selector_all("#admin .tabs button", "b => b.map(x => x.dataset.tab)")
    assert tabs == ["drills"]
    await page.wait_for_selector('#admin .admin-body[data-tab="drills"] .drill-run')
    assert await page.input_value('.drill-run select[name="unit"]') == "330110"
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/drills")
                                    and r.request.method == "POST") as started:
        await page.click('.drill-run button[type="submit"]')
    drill = await (await started.value).json()
    assert (await started.value).status == 202
    # listed; when it ends, its report is drawn from the JSON
    report = page.locator(f'.drill-report[data-drill="{drill["id"]}"]')
    await page.wait_for_selector(f'.decide[data-drill="{drill["id"]}"] .drill-view',
                                 timeout=20_000)
    await report.locator(".drill-cards").wait_for()
    row = page.locator("#admin .grid-table tbody tr", has_text=f"#{drill['id']}")
    assert "county_op" in await row.inner_text() and "已完成" in await row.inner_text()
    assert "共 2：在线 1，故障 1，未检查 0" in await row.inner_text()
    text = await report.inner_text()
    assert f"演练报告 #{drill['id']}" in text
    broken_rows = report.locator("table").nth(1).locator("tbody tr")
    assert await broken_rows.count() == 1
    assert HOSTILE in await broken_rows.first.inner_text()
    assert "无法连接" in await broken_rows.first.inner_text()
    assert f"#{broken.id}" in await broken_rows.first.inner_text()
    # the server's HTML page, fetched with the token, saved as a file
    async with page.expect_download() as saving:
        await page.click(f'.decide[data-drill="{drill["id"]}"] .drill-save')
    html = (await (await saving.value).path()).read_text(encoding="utf-8")
    assert "<script>window.pwned" not in html and "&lt;script&gt;" in html
    await shot(hall, page, "drills-report")
    await not_pwned(page)
    # journalled as an administrative action of the operator
    records = await hall.client.server.app[JOURNAL_KEY].records(RecordFilter(user="county_op"))
    assert any(r["action"] == "health.drill" and (r["detail"] or {}).get("drill") == drill["id"]
               for r in records), records
    # English
    await page.click("#lang")
    await page.wait_for_function(
        """() => document.querySelector('#admin .tabs button[data-tab="drills"]')
                         .textContent === 'Drills'""")
