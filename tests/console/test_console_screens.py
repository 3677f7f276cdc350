"""Saved layouts and wall screens (上墙) in headless Chromium: save a layout, reload,
restore it in one click; a desk sends its wall to a screen page which plays it; hostile
names stay text (issue 14, items 4 and 5)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from camrelay.access.accounts import Role
from camrelay.access.journal import RecordFilter
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import add_camera, add_person
from tests.console.conftest import SD, Hall
from tests.console.test_console_wall import place_by_click, wait_playing

pytestmark = pytest.mark.netns

HOSTILE = """<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1"> '"q"""
SCREEN = """<img src=x onerror="window.__pwned=1"> 大屏 '1'"""  # 64 characters at most


async def test_a_saved_layout_is_restored_in_one_click_after_a_reload(hall: Hall) -> None:
    folks, world = hall.folks, hall.world
    own, city = folks.cameras["county"], folks.cameras["city"]
    second = await add_camera(world, "county2", "330110")
    await world.catalog.update_camera(second, {"main_url": "demo:?width=480&height=360&fps=15&gop=1",
                                               "sub_url": SD})
    page = await hall.console("county_op")
    await page.click('#layouts button[data-layout="2x2"]')
    await place_by_click(page, 0, own)
    await place_by_click(page, 1, city)  # not the user's: "not allowed"
    await place_by_click(page, 2, second)
    await page.click("#view-save")
    await page.fill("#save-name", HOSTILE)
    await page.click("#save-submit")
    item = page.locator(".saved-item .saved-open")
    await item.wait_for()
    assert await item.inner_text() == HOSTILE  # text, not markup
    # the wall changes, the page reloads (the tab's token stays), one click restores it
    await page.click('#layouts button[data-layout="1"]')
    await place_by_click(page, 0, second)
    await page.reload()
    await page.wait_for_selector("#console:not([hidden]) .tree .camera")
    await page.wait_for_selector(".saved-item")
    assert await page.evaluate("document.getElementById('wall').dataset.layout") == "1"
    await page.click(".saved-item .saved-open")
    assert await page.evaluate("document.getElementById('wall').dataset.layout") == "2x2"
    first = await wait_playing(page, 0)
    third = await wait_playing(page, 2)
    assert (first["camera"], first["width"]) == (str(own), 640)
    assert (third["camera"], third["width"]) == (str(second), 480)
    await page.wait_for_selector('.tile[data-index="1"][data-state="denied"]')
    assert "您无权观看此摄像机" in await page.inner_text('.tile[data-index="1"] .tile-message')
    assert await page.evaluate("window.__pwned") is None
    assert await page.evaluate("document.querySelectorAll('script, .saved-list img').length") == 1


async def test_a_desk_sends_its_wall_to_a_screen_which_plays_it(hall: Hall) -> None:
    folks, world, client = hall.folks, hall.world, hall.client
    county, city = folks.cameras["county"], folks.cameras["city"]
    await add_person(world, folks, "hall_screen", "330100", Role.VIEWER)
    r = await client.post("/api/v1/screens", headers=folks.h("city_admin"), json={
        "name": SCREEN, "unit": "330100", "account": "hall_screen"})
    assert r.status == 201, await r.text()
    screen_id = (await r.json())["id"]
    context = await hall.browser.new_context(viewport={"width": 1280, "height": 720})
    screen = await context.new_page()
    hall.pages.append(screen)
    screen.on("console", lambda m: print(f"[screen {m.type}] {m.text}"))
    await screen.goto(f"{hall.url}/screen?screen={quote(SCREEN)}"
                      f"#token={folks.tokens['hall_screen']}")
    await screen.wait_for_function("() => document.body.dataset.applied === '1'")
    assert "token" not in screen.url  # the fragment is gone from the address at once
    assert await screen.inner_text("#screen-name") == f"大屏：{SCREEN}"
    desk = await hall.console("city_op")
    await desk.click('#layouts button[data-layout="2x2"]')
    await place_by_click(desk, 0, county)
    await place_by_click(desk, 1, city)
    await desk.wait_for_selector("#screen-box:not([hidden])")
    await desk.select_option("#screen-target", str(screen_id))
    await desk.click("#screen-send")
    await screen.wait_for_function("() => document.body.dataset.applied === '2'", timeout=2000)
    first = await wait_playing(screen, 0)
    second = await wait_playing(screen, 1)
    assert (first["camera"], first["width"], first["height"]) == (str(county), 640, 360)
    assert second["camera"] == str(city)
    assert "city_op" in await screen.inner_text("#screen-content")
    watermark = await screen.inner_text('.tile[data-index="0"] .watermark')
    assert "hall_screen · 330100" in watermark  # the screen watches as its own account
    r = await client.get("/api/v1/screens", headers=folks.h("city_op"))
    listed = await r.json()
    assert listed[0]["changed_by"] == "city_op" and listed[0]["changed_at"]
    assert listed[0]["content"]["kind"] == "layout"
    assert listed[0]["content"]["cameras"] == [county, city, None, None]
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="admin"), limit=50)
    assert [r["user"] for r in records if r["action"] == "console.screen_show"] == ["city_op"]
    for page in (screen, desk):
        assert await page.evaluate("window.__pwned") is None
