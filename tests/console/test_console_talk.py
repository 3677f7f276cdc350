"""Talk-back from the console's wall in headless Chromium with a fake microphone: an
operator holds the tile's talk button, a real aiortc field device (a WHIP publisher whose
microphone m-line is sendrecv) decodes the operator's voice; releasing ends the talk
(the DELETE, journalled talk.close), the device stops hearing and the microphone is
released; the keyboard and the latched toggle do the same; someone else talking, and a
device that left, show on the tile; a user without the right sees no button (issue 17,
item 6)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from camrelay.access.accounts import Role
from camrelay.access.journal import RecordFilter
from camrelay.catalog.fields import parse_camera
from camrelay.relay.talk import TalkSession
from camrelay.web.keys import JOURNAL_KEY, WHIP_KEY
from tests.console.conftest import CHROMIUM_ARGS, PASSWORD, Hall, sign_in
from tests.console.test_console_wall import place_by_click, wait_playing
from tests.console.test_field_page import FAKE_MEDIA, HOSTILE, _field_camera
from tests.webrtc.test_whep_audio import SILENCE
from tests.webrtc.test_whip import _token
from tests.whip_client import Talker, WhipError, WhipPublisher

pytestmark = pytest.mark.netns

TILE = '.tile[data-index="0"]'
HOLD = f"{TILE} .talk-hold"
LATCH = f"{TILE} .talk-latch"
# every microphone the page opened, to check that each was released
WATCH_MICS = """() => { window.__mics = [];
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await open(c); window.__mics.push(s); return s; }; }"""
MICS_LIVE = "window.__mics.flatMap(s => s.getTracks()).filter(t => t.readyState === 'live').length"


@pytest.fixture
def browser_args() -> list[str]:
    return CHROMIUM_ARGS + FAKE_MEDIA


async def _empty_2x2(page: Any) -> None:
    """A 2x2 wall with no camera (the first sign-in fills it with cameras one may watch)."""
    await page.click('#layouts button[data-layout="2x2"]')
    await page.evaluate("""() => { const w = window.camrelayConsole.wall;
                                   w.tiles.forEach((t) => w.place(t.index, null)); }""")


async def _talk_state(page: Any, state: str) -> str:
    await page.wait_for_selector(f'{TILE} .talk[data-state="{state}"]')
    return str(await page.inner_text(f"{TILE} .talk-state"))


async def _talk_of(hall: Hall, camera: int) -> TalkSession:
    """The device's one talk-back session (the console's), once the server made it."""
    assert hall.client.app is not None
    publisher = hall.client.app[WHIP_KEY].of_camera(camera)
    assert publisher is not None
    (session,) = publisher.talks
    return session


async def _journal(hall: Hall, camera: int, kind: str) -> list[dict[str, Any]]:
    assert hall.client.app is not None
    records = await hall.client.app[JOURNAL_KEY].records(RecordFilter(camera_id=camera),
                                                         limit=100)
    return [r for r in records if r["kind"] == kind]


async def _ended(hall: Hall, camera: int, publisher: WhipPublisher, count: int) -> None:
    """The talk ended by the talker's DELETE (``count`` talk.close so far), and the device
    hears nothing more."""
    closed = await _journal(hall, camera, "talk.close")
    assert len(closed) == count, closed
    # ended by the DELETE, sent before the peer connection closed
    assert {(e["user"], e["reason"]) for e in closed} == {("county_op", "ended by talker")}
    heard = len(publisher.heard_rms)
    await asyncio.sleep(1.0)  # a window in which no further sound may arrive
    assert len(publisher.heard_rms) - heard <= 3, (heard, len(publisher.heard_rms))


async def test_hold_to_talk_reaches_the_field_device_and_ends_on_release(hall: Hall) -> None:
    world, client = hall.world, hall.client
    camera = await _field_camera(world, HOSTILE, "330110")
    device = await _token(world, "bodycam", "330110", Role.OPERATOR)
    publisher = await WhipPublisher.connect(client.session, hall.url, camera, device,
                                            audio="sendrecv")
    try:
        page = await hall.console("county_op")
        await page.evaluate(WATCH_MICS)
        await _empty_2x2(page)
        await place_by_click(page, 0, camera)
        await wait_playing(page, 0)
        assert await page.inner_text(HOLD) == "按住讲话"
        assert await page.inner_text(LATCH) == "持续讲话"
        assert await page.inner_text(f"{TILE} .tile-name") == HOSTILE  # as text

        # press and hold with the mouse: the device hears the fake microphone's beeps
        await page.hover(HOLD)
        pressed = time.monotonic()
        await page.mouse.down()
        await publisher.wait_heard(1, timeout=15)
        print(f"press to the device's first decoded talk-back frame: "
              f"{(time.monotonic() - pressed) * 1000:.0f} ms")
        assert "正在讲话" in await _talk_state(page, "speaking")
        session = await _talk_of(hall, camera)
        await publisher.wait_heard(100, timeout=15)
        assert max(publisher.heard_rms) > SILENCE, publisher.heard_rms[-50:]
        # the elapsed seconds count up
        await page.wait_for_function(f"""() => /^正在讲话 [1-9][0-9]* 秒$/.test(
            document.querySelector('{TILE} .talk-state').textContent)""")
        await page.locator(TILE).screenshot(path=str(hall.shots / "talk-tile-zh.png"))
        print(f"the tile while talking: {hall.shots / 'talk-tile-zh.png'}")
        opened = await _journal(hall, camera, "talk.open")
        assert [(e["user"], e["action"]) for e in opened] == [("county_op", "talk")]
        # release: the DELETE ends it, the microphone is released, the tile is idle
        await page.mouse.up()
        await asyncio.wait_for(session.closed.wait(), 5)
        await _talk_state(page, "idle")
        await _ended(hall, camera, publisher, 1)
        await page.wait_for_function(f"() => {MICS_LIVE} === 0")
        assert await page.evaluate(MICS_LIVE) == 0

        # the keyboard: Space held on the focused button, released
        await page.focus(HOLD)
        await page.keyboard.down(" ")
        await _talk_state(page, "speaking")
        session = await _talk_of(hall, camera)
        heard = len(publisher.heard_rms)
        await publisher.wait_heard(heard + 25, timeout=15)
        await page.keyboard.up(" ")
        await asyncio.wait_for(session.closed.wait(), 5)
        await _ended(hall, camera, publisher, 2)
        assert await page.get_attribute(TILE, "aria-selected") == "false"  # not the wall's Space

        # a finger held on the button (touch events, as a tablet's), then lifted
        cdp = await page.context.new_cdp_session(page)
        box = await page.locator(HOLD).bounding_box()
        finger = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                                    "touchPoints": [finger]})
        await _talk_state(page, "speaking")
        session = await _talk_of(hall, camera)
        heard = len(publisher.heard_rms)
        await publisher.wait_heard(heard + 50, timeout=15)  # a second: no long-press cancel
        assert await page.get_attribute(f"{TILE} .talk", "data-state") == "speaking"
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        await asyncio.wait_for(session.closed.wait(), 5)
        await _ended(hall, camera, publisher, 3)

        # the latched toggle: a click starts it, it goes on, another click ends it
        await page.click(LATCH)
        await _talk_state(page, "speaking")
        assert await page.get_attribute(LATCH, "aria-pressed") == "true"
        assert await page.inner_text(LATCH) == "结束讲话"
        session = await _talk_of(hall, camera)
        heard = len(publisher.heard_rms)
        await publisher.wait_heard(heard + 25, timeout=15)
        await page.click(LATCH)
        await asyncio.wait_for(session.closed.wait(), 5)
        await _ended(hall, camera, publisher, 4)
        assert await page.evaluate(MICS_LIVE) == 0

        # someone else talks (an aiortc operator): the tile says so, in English too
        other = await Talker.connect(client.session, hall.url, camera, world.admin_token)
        try:
            await page.click(LATCH)
            assert "其他人正在对讲" in await _talk_state(page, "busy")
            await page.click("#lang")
            assert await page.inner_text(HOLD) == "Hold to talk"
            assert "Someone else is talking" in await page.inner_text(f"{TILE} .talk-state")
            await page.click("#lang")
            assert await page.evaluate(MICS_LIVE) == 0
        finally:
            await other.close()
        # the device leaves while the operator talks: the tile says so at once
        await page.click(LATCH)
        await _talk_state(page, "speaking")
        left = time.monotonic()
        await publisher.close()
        assert await _talk_state(page, "lost") == "对讲中断：设备已离开或被他人结束"
        print(f"the tile said the talk was cut {time.monotonic() - left:.2f} s after the device left")
        assert time.monotonic() - left < 3  # the DTLS close, not an ICE timeout (~8 s)
        assert await page.get_attribute(LATCH, "aria-pressed") == "false"
        assert await page.evaluate(MICS_LIVE) == 0
    finally:
        await publisher.close()
    # the device left: pressing says it is not connected
    await page.hover(HOLD)
    await page.mouse.down()
    assert "设备未连接" in await _talk_state(page, "nodevice")
    await page.mouse.up()
    assert await page.evaluate("window.__pwned") is None


async def test_only_users_with_the_talk_right_get_the_talk_button(hall: Hall) -> None:
    world, client = hall.world, hall.client
    camera = await _field_camera(world, "执法记录仪 3", "330110")
    device = await _token(world, "bodycam", "330110", Role.OPERATOR)
    await world.accounts.add_user("county_view", unit_code="330110", role=Role.VIEWER,
                                  password=PASSWORD)
    publisher = await WhipPublisher.connect(client.session, hall.url, camera, device,
                                            audio="sendrecv")
    try:
        shown, pages = {}, {}
        for user in ("county_op", "county_view"):  # both watch it; the operator may talk
            page = pages[user] = await hall.console()
            await sign_in(page, user)
            await _empty_2x2(page)
            await place_by_click(page, 0, camera)
            await wait_playing(page, 0)  # the tile is drawn with the camera
            rights = await page.evaluate(
                f"window.camrelayConsole.tree.camera({camera}).rights")
            shown[user] = ("talk" in rights, await page.locator(f"{TILE} .talk").count())
        assert shown == {"county_op": (True, 1), "county_view": (False, 0)}
        # the server refuses the viewer anyway
        token = await page.evaluate("sessionStorage.getItem('camrelay.token')")
        with pytest.raises(WhipError) as denied:
            await Talker.connect(client.session, hall.url, camera, token)
        assert denied.value.status == 403
        # the operator's role changes while the page is open: pressing says not allowed
        await world.accounts.update_user("county_op", role=Role.VIEWER)
        page = pages["county_op"]
        await page.click(LATCH)
        assert await _talk_state(page, "denied") == "无对讲权限"
        assert "talk back" in str(await page.get_attribute(f"{TILE} .talk-state", "title"))
    finally:
        await publisher.close()
    refused = await _journal(hall, camera, "talk.denied")
    assert sorted(e["user"] for e in refused) == ["county_op", "county_view"], refused


AUDIO_IN = """i => new Promise(async (done) => {
  const p = document.querySelector(`.tile[data-index="${i}"] camrelay-player`);
  const v = p.querySelector("video");
  let packets = 0, energy = 0;
  if (p.pc) (await p.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      packets = r.packetsReceived; energy = r.totalAudioEnergy || 0; } });
  done({ muted: v.muted, tracks: v.srcObject ? v.srcObject.getAudioTracks().length : 0,
         packets, energy, sound: p.getAttribute("sound") }); })"""


async def test_one_tile_at_a_time_plays_its_cameras_sound(hall: Hall) -> None:
    world, client = hall.world, hall.client
    camera = await _field_camera(world, "执法记录仪 5", "330110")
    device = await _token(world, "bodycam", "330110", Role.OPERATOR)
    publisher = await WhipPublisher.connect(client.session, hall.url, camera, device,
                                            audio="sendrecv")  # sends a 440 Hz tone
    try:
        page = await hall.console("county_op")
        await _empty_2x2(page)
        await place_by_click(page, 0, camera)
        await place_by_click(page, 1, hall.folks.cameras["county"])  # a demo: no sound
        await wait_playing(page, 0)
        await wait_playing(page, 1)
        sound = f"{TILE} .tile-sound"
        # muted, and video only, by default
        assert await page.inner_text(sound) == "静音"
        assert await page.evaluate(AUDIO_IN, 0) == {
            "muted": True, "tracks": 0, "packets": 0, "energy": 0, "sound": None}
        # unmuted: the tile reconnects asking for audio and plays the device's tone
        await page.click(sound)
        await page.wait_for_function(
            """() => { const p = document.querySelector('.tile[data-index="0"] camrelay-player');
                       return p.getAttribute("sound") === "on" && p.state === "live"; }""")
        await page.evaluate(f"""() => {{ window.__audio = null; window.__poll = setInterval(
            async () => {{ window.__audio = await ({AUDIO_IN})(0); }}, 100); }}""")
        await page.wait_for_function(
            "() => window.__audio && window.__audio.packets > 50 && window.__audio.energy > 0")
        await page.evaluate("clearInterval(window.__poll)")
        heard = await page.evaluate(AUDIO_IN, 0)
        assert heard["muted"] is False and heard["tracks"] == 1 and heard["energy"] > 0, heard
        assert await page.get_attribute(sound, "aria-pressed") == "true"
        assert await page.inner_text(sound) == "声音"
        # M on the second tile: its sound on (a demo camera has none), the first muted
        await page.focus('.tile[data-index="1"]')
        await page.keyboard.press("m")
        await page.wait_for_selector('.tile[data-index="1"] .tile-sound[data-sound="none"]')
        assert await page.inner_text('.tile[data-index="1"] .tile-sound') == "无声音"
        await page.wait_for_function(
            """() => { const p = document.querySelector('.tile[data-index="0"] camrelay-player');
                       return !p.hasAttribute("audio") && p.state === "live"; }""")
        muted = await page.evaluate(AUDIO_IN, 0)
        assert muted["muted"] is True and muted["tracks"] == 0, muted
        assert await page.inner_text(sound) == "静音"
    finally:
        await publisher.close()
    # the view that carried sound is journalled with its codec, the others without
    assert client.app is not None
    views = [r for r in await client.app[JOURNAL_KEY].records(
        RecordFilter(camera_id=camera), limit=100) if r["kind"] == "view"]
    audio = [v["audio"] for v in sorted(views, key=lambda v: v["id"])]
    assert audio[-3:] == [None, "opus", None], audio  # muted, unmuted, muted again


async def test_a_page_talks_to_one_device_at_a_time(hall: Hall) -> None:
    world, client = hall.world, hall.client
    first = await _field_camera(world, "执法记录仪 1", "330110")
    fields = parse_camera({"external_id": "field-2", "name": "车载 2", "unit": "330110",
                           "category": "bridge", "camera_type": "vehicle", "main_url": "whip:"},
                          categories=world.catalog.categories,
                          camera_types=world.catalog.camera_types)
    second = (await world.catalog.add_camera(fields)).id
    device = await _token(world, "bodycam", "330110", Role.OPERATOR)
    devices = [await WhipPublisher.connect(client.session, hall.url, camera, device,
                                           audio="sendrecv") for camera in (first, second)]
    try:
        page = await hall.console("county_op")
        await page.evaluate(WATCH_MICS)
        await _empty_2x2(page)
        await place_by_click(page, 0, first)
        await place_by_click(page, 1, second)
        await page.wait_for_selector('.tile[data-index="1"] .talk-latch')
        await page.click(LATCH)
        await _talk_state(page, "speaking")
        session = await _talk_of(hall, first)
        # the second tile's talk ends the first's (its DELETE), then speaks
        await page.click('.tile[data-index="1"] .talk-latch')
        await page.wait_for_selector('.tile[data-index="1"] .talk[data-state="speaking"]')
        await asyncio.wait_for(session.closed.wait(), 5)
        assert session.close_reason == "ended by talker"
        assert await page.get_attribute(f"{TILE} .talk", "data-state") == "idle"
        assert await page.get_attribute(LATCH, "aria-pressed") == "false"
        await devices[1].wait_heard(25, timeout=15)
        assert await page.evaluate(MICS_LIVE) == 1  # the first tile's microphone released
        await page.click('.tile[data-index="1"] .talk-latch')
        await page.wait_for_function(f"() => {MICS_LIVE} === 0")
    finally:
        for publisher in devices:
            await publisher.close()
