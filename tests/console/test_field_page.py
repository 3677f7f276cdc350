"""The field page (/field) in headless Chromium with a fake camera and microphone: an
operator signs in, publishes to a field camera over WHIP, a real aiortc WHEP viewer
decodes the picture and hears the microphone, the phone's position reaches the camera;
a refusal shows the server's problem text (issue 17, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.catalog.fields import parse_camera
from tests.access.conftest import Folks
from tests.conftest import World, auth
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD
from tests.webrtc.test_whep_audio import SILENCE
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
HOSTILE = """<img src=x onerror="window.__pwned=1"> 执法记录仪 '7'"""
WHERE = {"latitude": 30.42, "longitude": 120.3}


@pytest.fixture
async def phone() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM,
                                          args=CHROMIUM_ARGS + FAKE_MEDIA)
        context = await browser.new_context(
            permissions=["camera", "microphone", "geolocation"], geolocation=WHERE)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: print(f"[browser {m.type}] {m.text}"))
        page.on("pageerror", lambda e: print(f"[browser error] {e}"))
        try:
            yield page
        finally:
            await browser.close()


async def _field_camera(world: World, name: str, unit: str) -> int:
    fields = parse_camera({"external_id": f"field-{unit}", "name": name, "unit": unit,
                           "category": "bridge", "camera_type": "phone", "main_url": "whip:"},
                          categories=world.catalog.categories,
                          camera_types=world.catalog.camera_types)
    return (await world.catalog.add_camera(fields)).id


async def test_a_phone_publishes_from_the_field_page(
        client: TestClient[Any, Any], world: World, folks: Folks, phone: Any) -> None:
    own = await _field_camera(world, HOSTILE, "330110")
    elsewhere = await _field_camera(world, "车载 9", "330200")
    base = str(client.make_url("")).rstrip("/")
    page = phone
    await page.goto(base + "/field")
    await page.fill("#username", "county_op")
    await page.fill("#password", PASSWORD)
    await page.click("#field-signin-submit")
    await page.wait_for_selector("#field-stage:not([hidden])")
    # only the field camera the operator may publish to, its name as text
    options = await page.eval_on_selector_all(
        "#field-camera option", "os => os.map(o => [o.value, o.textContent])")
    assert options == [[str(own), f"{HOSTILE} (field-330110)"]]
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    assert await page.inner_text("#field-start") == "开始回传"

    await page.click("#field-start")
    await page.wait_for_selector('#field-state[data-state="publishing"]')
    assert "正在回传" in await page.inner_text("#field-state")
    viewer = await WhepViewer.connect(client.session, base, own, world.admin_token,
                                      read_numbers=False, audio=True)
    try:
        audio = viewer.answer[viewer.answer.index("m=audio"):]
        assert "opus/48000" in audio.lower() and "a=sendonly" in audio
        await asyncio.gather(viewer.wait_frames(20, timeout=20), viewer.wait_audio(150, 20))
        assert viewer.frames[-1].width > 0
        assert max(viewer.audio_rms) > SILENCE  # Chromium's fake microphone beeps
        # the phone's position, shown with the camera
        await page.wait_for_function("window.camrelayField.positions >= 1")
        r = await client.get(f"/api/v1/cameras/{own}", headers=auth(world.admin_token))
        shown = await r.json()
        assert shown["status"] == "online"
        assert (shown["live_position"]["latitude"],
                shown["live_position"]["longitude"]) == (30.42, 120.3)
        # stop: the DELETE ends the feed and the viewer with it
        await page.click("#field-stop")
        await asyncio.wait_for(viewer.ended.wait(), 10)
        assert await page.get_attribute("#field-state", "data-state") == "stopped"
    finally:
        await viewer.close(delete=False)
    r = await client.get(f"/api/v1/cameras/{own}", headers=auth(world.admin_token))
    assert (await r.json())["live_position"] is None

    # a camera outside the operator's subtree: refused, the server's reason on the page
    await page.evaluate(f"""() => {{ const o = document.createElement('option');
        o.value = '{elsewhere}'; o.textContent = 'x';
        document.getElementById('field-camera').append(o);
        document.getElementById('field-camera').value = '{elsewhere}'; }}""")
    await page.click("#field-start")
    await page.wait_for_selector('#field-state[data-state="error"]')
    text = await page.inner_text("#field-state")
    assert "无法回传" in text and "outside your jurisdiction" in text, text
    assert await page.evaluate("window.__pwned") is None
