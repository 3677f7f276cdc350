"""The console's wall in headless Chromium: sign in, tiles that play, switch, revoke,
escape, two languages, the page's headers and correct endings (issue 14, slice A)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

import pytest

from camrelay.access.accounts import TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.catalog.models import UnitLevel
from camrelay.fields import utcnow
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import add_camera
from tests.camsim_fixture import CamSim
from tests.console.conftest import HD, SD, Hall

pytestmark = pytest.mark.netns


async def tile(page: Any, index: int) -> Any:
    return page.locator(f'.tile[data-index="{index}"]')


async def place_by_click(page: Any, index: int, camera_id: int) -> None:
    # select the tile near its bottom-left corner: its middle may hold the "apply"
    # button of a camera the user may not watch, which opens the grant form instead
    tile = page.locator(f'.tile[data-index="{index}"]')
    box = await tile.bounding_box()
    await tile.click(position={"x": 8, "y": box["height"] - 8})
    await page.click(f'.tree .camera[data-camera="{camera_id}"]')


async def wait_playing(page: Any, index: int, timeout: float = 15.0) -> dict[str, Any]:
    """Until the tile's <video> has decoded frames; its size and state."""
    await page.wait_for_function(
        """i => { const v = document.querySelector(`.tile[data-index="${i}"] video`);
                  return v && v.getVideoPlaybackQuality().totalVideoFrames > 0
                         && v.videoWidth > 0; }""", arg=index, timeout=timeout * 1000)
    return dict(await page.evaluate(
        """i => { const t = document.querySelector(`.tile[data-index="${i}"]`);
                  const v = t.querySelector("video");
                  return { width: v.videoWidth, height: v.videoHeight,
                           frames: v.getVideoPlaybackQuality().totalVideoFrames,
                           state: t.dataset.state,
                           camera: t.querySelector("camrelay-player").getAttribute("camera"),
                           stream: t.querySelector("camrelay-player").getAttribute("stream") }; }""",
        index))


async def test_sign_in_two_cameras_on_a_2x2_wall_then_switch_within_a_second(
        hall: Hall) -> None:
    folks, world = hall.folks, hall.world
    own = folks.cameras["county"]  # 640x360 main
    second = await add_camera(world, "county2", "330110")
    await world.catalog.update_camera(second, {"main_url": "demo:?width=480&height=360&fps=15&gop=1",
                                               "sub_url": SD})
    third = await add_camera(world, "county3", "330110")
    await world.catalog.update_camera(third, {"main_url": "demo:?width=352&height=288&fps=15&gop=1",
                                              "sub_url": SD})
    page = await hall.console("county_op")
    await page.click('#layouts button[data-layout="2x2"]')
    await place_by_click(page, 0, own)
    # drag and drop puts the second camera on tile 1
    await page.drag_and_drop(f'.tree .camera[data-camera="{second}"]', '.tile[data-index="1"]')
    first = await wait_playing(page, 0)
    other = await wait_playing(page, 1)
    assert (first["camera"], first["width"], first["height"]) == (str(own), 640, 360)
    assert (other["camera"], other["width"], other["height"]) == (str(second), 480, 360)
    assert first["stream"] == other["stream"] == "main"  # a 2x2 wall plays main streams
    await page.wait_for_function(
        "document.querySelector('.tile[data-index=\"0\"]').dataset.state === 'live'")
    # the keyboard switches tile 0 to the third camera: focus the tile, Enter, then the row
    await page.focus('.tile[data-index="0"]')
    await page.keyboard.press("Enter")
    await page.focus(f'.tree .camera[data-camera="{third}"]')
    t0 = await page.evaluate("performance.now()")
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        """c => { const t = document.querySelector('.tile[data-index="0"]');
                  const p = t.querySelector("camrelay-player");
                  return p.getAttribute("camera") === c && p.firstFrameAt > 0; }""",
        arg=str(third), timeout=5000)
    switched = await page.evaluate(
        "document.querySelector('.tile[data-index=\"0\"] camrelay-player').firstFrameAt")
    now = await wait_playing(page, 0)
    assert (now["camera"], now["width"], now["height"]) == (str(third), 352, 288)
    print(f"tile switched to a new camera: first frame {switched - t0:.0f} ms after the pick")
    assert switched - t0 <= 1000
    texts = await page.inner_text('.tile[data-index="0"] .tile-bar')
    assert "camera county3" in texts and "余杭区交通运输局" in texts
    watermark = await page.inner_text('.tile[data-index="0"] .watermark')
    assert "county_op · 330110 · " in watermark  # user, unit and time over the picture


async def test_revoked_grant_darkens_the_tile_with_the_reason_within_a_second(
        hall: Hall) -> None:
    folks, client = hall.folks, hall.client
    city = folks.cameras["city"]
    page = await hall.console("county_op")
    await page.click('#layouts button[data-layout="2x2"]')
    # without a grant: "not allowed" and how to apply, never a blank tile
    await place_by_click(page, 1, city)
    await page.wait_for_selector('.tile[data-index="1"][data-state="denied"]')
    denied = await page.inner_text('.tile[data-index="1"] .tile-message')
    assert "您无权观看此摄像机" in denied and "camrelay grant request" in denied
    r = await client.post("/api/v1/grants", headers=folks.h("county_op"), json={
        "grantee_user": "county_op", "cameras": [city], "actions": ["live"],
        "purpose": "G60 事故", "valid_until": (utcnow() + timedelta(hours=8)).isoformat()})
    assert r.status == 201, await r.text()
    grant = (await r.json())["id"]
    r = await client.post(f"/api/v1/grants/{grant}/approve", json={}, headers=folks.h("approver"))
    assert r.status == 200, await r.text()
    await place_by_click(page, 1, city)
    await wait_playing(page, 1)
    await page.wait_for_selector('.tile[data-index="1"][data-state="live"]')
    t0 = time.monotonic()
    r = await client.post(f"/api/v1/grants/{grant}/revoke", json={"comment": "incident closed"},
                          headers=folks.h("approver"))
    assert r.status == 200, await r.text()
    await page.wait_for_selector('.tile[data-index="1"][data-state="revoked"]', timeout=1000)
    print(f"tile dark {1000 * (time.monotonic() - t0):.0f} ms after the revocation")
    message = await page.inner_text('.tile[data-index="1"] .tile-message')
    assert "观看已被中断：授权已撤销" in message
    assert not await page.evaluate(
        "!!document.querySelector('.tile[data-index=\"1\"] video').srcObject")


async def test_hostile_names_are_shown_literally_and_never_run(hall: Hall) -> None:
    world = hall.world
    hostile_unit = "<img src=x onerror=\"window.__pwned='unit'\">'\"&amp;"
    hostile_camera = "<script>window.__pwned='camera'</script>\"'<b>"
    await world.catalog.add_unit({"code": "330120", "name": hostile_unit, "level": UnitLevel.COUNTY,
                                  "parent": "330100"})
    camera = await add_camera(world, "evil", "330120")
    await world.catalog.update_camera(camera, {"name": hostile_camera, "main_url": SD})
    page = await hall.console("admin")
    row = page.locator(f'.tree .camera[data-camera="{camera}"] .camera-name')
    assert await row.inner_text() == hostile_camera
    assert hostile_unit in await page.inner_text(".tree")
    await place_by_click(page, 0, camera)
    await wait_playing(page, 0)
    assert await page.inner_text('.tile[data-index="0"] .tile-name') == hostile_camera
    assert await page.inner_text('.tile[data-index="0"] .tile-unit') == hostile_unit
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.locator(".tile script, .tree script, .tile b, .tree img").count() == 0


async def test_chinese_by_default_english_by_the_switch_and_the_page_headers(
        hall: Hall) -> None:
    r = await hall.client.get("/")
    assert r.status == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    r = await hall.client.get("/static/console/main.js")
    assert r.headers["Content-Security-Policy"] == csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = await hall.console()
    assert await page.inner_text("#signin h1") == "登录"
    assert await page.inner_text("label:has(#username) span") == "用户名"
    await page.click("#lang")
    assert await page.inner_text("#signin h1") == "Sign in"
    await sign_in_as(page, "county_op")
    assert await page.inner_text(".toolbar > span") == "Layout"
    assert await page.inner_text("#signout") == "Sign out"
    assert "operator" in await page.inner_text("#who")
    await page.click("#lang")
    assert await page.inner_text(".toolbar > span") == "布局"
    assert await page.inner_text("#signout") == "退出"
    assert "值班员" in await page.inner_text("#who")
    await page.reload()  # the choice is kept (localStorage); the token is (sessionStorage)
    await page.wait_for_selector("#console:not([hidden])")
    assert await page.inner_text(".side h2") == "资源目录"


async def sign_in_as(page: Any, user: str) -> None:
    from tests.console.conftest import sign_in

    await sign_in(page, user)


async def test_leaving_a_tile_or_the_page_ends_the_session_as_the_viewer(
        hall: Hall) -> None:
    folks = hall.folks
    own = folks.cameras["county"]
    page = await hall.console("county_op")
    await page.click('#layouts button[data-layout="1"]')
    await place_by_click(page, 0, own)
    await wait_playing(page, 0)
    await page.click('.tile[data-index="0"] .tile-close')
    await page.wait_for_selector('.tile[data-index="0"][data-state="idle"]')
    await place_by_click(page, 0, own)
    await wait_playing(page, 0)
    await page.goto("about:blank")  # pagehide: DELETE with keepalive, then close
    journal = hall.client.app[JOURNAL_KEY]

    async def views() -> list[dict[str, Any]]:
        records = await journal.records(RecordFilter(kind="view", user="county_op"), limit=50)
        # live views only: a pointer resting on the tree's row fetches its thumbnail, a
        # snapshot view of its own (closed "failed" while the camera has none)
        return [r for r in records if r["camera_id"] == own and r["action"] == "live"]

    async with asyncio.timeout(5):
        while not all(r.get("end") for r in await views()):
            await asyncio.sleep(0.05)  # polling the journal, bounded by the timeout
    reasons = [r["close_reason"] for r in await views()]
    assert len(reasons) >= 2  # the tile's own close, the page's leaving (and any start-up view)
    assert set(reasons) == {"ended by viewer"}, reasons


async def test_a_4x4_wall_plays_sub_streams_and_an_enlarged_tile_plays_main(
        hall: Hall) -> None:
    folks, world = hall.folks, hall.world
    ids = [folks.cameras[n] for n in ("prov", "city", "county", "other")]
    for n in range(4):
        extra = await add_camera(world, f"wall{n}", "330000" if n % 2 else "330100")
        await world.catalog.update_camera(extra, {"main_url": HD, "sub_url": SD})
        ids.append(extra)
    ids.append(folks.cameras["other_county"])  # offline: shows its reason
    langs = ["zh", "en"] if os.environ.get("CAMRELAY_CONSOLE_SHOTS") else ["zh"]
    for lang in langs:
        page = await hall.console("admin", lang=lang)
        await page.click('#layouts button[data-layout="4x4"]')
        for index in range(16):
            await place_by_click(page, index, ids[index % len(ids)])
        for index in (0, 5, 15):
            info = await wait_playing(page, index)
            assert info["stream"] == "sub" and (info["width"], info["height"]) == (320, 180)
        await page.wait_for_selector('.tile[data-index="8"][data-state="offline"]')
        await page.wait_for_function(
            "[...document.querySelectorAll('.tile')].filter(t => t.dataset.state === 'live')"
            ".length >= 12", timeout=20_000)
        shots = os.environ.get("CAMRELAY_CONSOLE_SHOTS")
        if shots:
            await page.screenshot(path=f"{shots}/wall-4x4-{lang}.png")
        await page.dblclick('.tile[data-index="0"]')
        await page.wait_for_function(
            """() => { const v = document.querySelector('.tile[data-index="0"] video');
                       return v.videoWidth === 640; }""", timeout=5000)
        assert await page.get_attribute('.tile[data-index="0"] camrelay-player',
                                        "stream") == "main"
        if shots:
            await page.screenshot(path=f"{shots}/wall-enlarged-{lang}.png")
        await page.keyboard.press("Escape")
        # 1+7: the large tile plays main, the small ones sub (the cameras stay put)
        await page.click('#layouts button[data-layout="1+7"]')
        big, small = await wait_playing(page, 0), await wait_playing(page, 7)
        assert (big["stream"], big["width"]) == ("main", 640)
        assert (small["stream"], small["width"]) == ("sub", 320)
        if shots:
            await page.screenshot(path=f"{shots}/wall-1+7-{lang}.png")
        await page.context.close()


async def test_a_revoked_token_returns_to_sign_in_with_the_reason_and_sign_out_revokes(
        hall: Hall) -> None:
    folks, world = hall.folks, hall.world
    page = await hall.console("county_op")
    await wait_playing(page, 0)  # the first sign-in fills the wall with what it may watch
    user = folks.user_ids["county_op"]
    (login,) = [t for t in await world.accounts.list_tokens(user) if t.kind is TokenKind.LOGIN]
    r = await hall.client.delete(f"/api/v1/tokens/{login.id}", headers=folks.h("admin"))
    assert r.status == 200
    await page.wait_for_selector("#signin:not([hidden])", timeout=2000)
    assert "登录凭证已撤销" in await page.inner_text("#signin-message")
    assert await page.evaluate("sessionStorage.getItem('camrelay.token')") is None
    # signing out ends the new login token on the server and journals it
    await sign_in_as(page, "county_op")
    await page.click("#signout")
    await page.wait_for_selector("#signin:not([hidden])")
    tokens = [t for t in await world.accounts.list_tokens(user) if t.kind is TokenKind.LOGIN]
    assert len(tokens) == 2 and all(t.revoked_at is not None for t in tokens)
    records = await hall.client.app[JOURNAL_KEY].records(RecordFilter(kind="auth"), limit=20)
    assert [r["user"] for r in records if r["action"] == "logout"] == ["county_op"]


async def test_a_tile_whose_camera_drops_says_so_and_comes_back_by_itself(
        hall: Hall, camsim: CamSim) -> None:
    """The simulator's /flaky mount cuts every client 2 s after PLAY: the relay
    reconnects, the live channel says so, the tile shows it and then plays again."""
    world = hall.world
    flaky = await add_camera(world, "flaky", "330110")
    await world.catalog.update_camera(flaky, {"main_url": camsim.url("/flaky")})
    page = await hall.console("county_op")
    await page.click('#layouts button[data-layout="1"]')
    await place_by_click(page, 0, flaky)
    await wait_playing(page, 0)
    await page.wait_for_selector('.tile[data-index="0"][data-state="reconnecting"]',
                                 timeout=10_000)
    message = await page.inner_text('.tile[data-index="0"] .tile-message')
    assert "摄像机信号中断，正在重连" in message
    await page.wait_for_selector('.tile[data-index="0"][data-state="live"]', timeout=10_000)


async def test_a_tile_shows_its_receiving_track_before_the_answer_comes(hall: Hall) -> None:
    """The tile's <video> holds the connection's receiving track from the moment the
    offer goes out: a frame decoded before the element's player was set up is never
    shown, and on a busy 4x4 page that was the join burst's keyframe (the tile then
    waited for the camera's next one, up to a GOP)."""
    page = await hall.console("county_op")
    held: asyncio.Queue[Any] = asyncio.Queue()

    async def hold(route: Any) -> None:
        await held.put(route)

    await page.route("**/whep/**", hold)
    await place_by_click(page, 0, hall.folks.cameras["county"])
    route = await asyncio.wait_for(held.get(), 10)
    # the POST is out and not answered: the track is already on the element, playing
    shown = await page.evaluate(
        """() => { const v = document.querySelector('.tile[data-index="0"] video');
                   const s = v.srcObject;
                   return s ? [s.getVideoTracks().length, s.getVideoTracks()[0].muted,
                               v.paused] : null; }""")
    assert shown == [1, True, False]  # the track waits for its first frame
    await route.continue_()
    await page.unroute("**/whep/**")
    info = await wait_playing(page, 0)
    assert info["camera"] == str(hall.folks.cameras["county"]) and info["width"] == 640
