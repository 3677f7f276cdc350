"""The README's first command, end to end: ``camrelay serve --demo`` as a real process,
then a browser signs in and sees the demo cameras on the console's wall, and an aiortc
viewer decodes one.

Runs inside the suite's loopback-only network namespace (see scripts/test); the server
offers 127.0.0.2 as its ICE host address because aioice never offers 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.servers import free_port
from tests.whep_client import WhepViewer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@dataclass
class DemoServer:
    url: str
    password: str
    token: str
    proc: subprocess.Popen[str]


def _require_netns() -> None:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC and browser tests run only inside scripts/test's network namespace")


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[DemoServer]:
    _require_netns()
    port = free_port()
    env = dict(os.environ, CAMRELAY_DATA_DIR=str(tmp_path / "data"),
               CAMRELAY_RELAY__ICE_HOST_ADDRESSES="127.0.0.2",
               CAMRELAY_RELAY__LINGER_SECONDS="1")
    exe = str(Path(sys.executable).parent / "camrelay")
    proc = subprocess.Popen([exe, "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    password = token = None
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if m := re.search(r"sign in as demo / (\S+)", line):
            password = m.group(1)
        if m := re.search(r"API token for the CLI: (\S+)", line):
            token = m.group(1)
        if "listening on" in line:
            break
    assert password and token, "".join(seen)
    try:
        yield DemoServer(f"http://127.0.0.1:{port}", password, token, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        assert proc.returncode == 0, "".join(seen) + rest
        assert "Traceback" not in rest, rest


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_newcomer_signs_in_and_sees_the_demo_cameras_on_a_wall(
        demo_server: DemoServer, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 1600, "height": 900})
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.on("response", lambda r: console.append(f"{r.request.method} {r.url} {r.status}"))
    await page.goto(demo_server.url + "/")
    await page.fill("#username", "demo")
    await page.fill("#password", demo_server.password)
    await page.click("#signin-submit")
    # the first sign-in fills a 2x2 wall with the cameras that are not offline
    try:
        await page.wait_for_function(
            """() => [...document.querySelectorAll('.tile video')].filter(
                   v => v.getVideoPlaybackQuality().totalVideoFrames > 10).length === 4""",
            timeout=15_000)
    except Exception:  # noqa: BLE001  playwright's timeout: say what the wall showed
        states = await page.eval_on_selector_all(".tile", "ts => ts.map(t => t.dataset.state)")
        raise AssertionError(f"tile states {states}; console {console}") from None
    names = await page.eval_on_selector_all(".tile .tile-name",
                                            "ns => ns.map(n => n.textContent)")
    assert names == ["G60沪昆高速 K12+300 (G60 Expressway)",
                     "钱塘江大桥北岸 (Qiantang River Bridge, north)",
                     "良渚收费站 (Liangzhu toll station)", "余杭塘河航道 (Yuhang canal)"]
    overlay = await page.inner_text('.tile[data-index="0"] .watermark')
    assert "demo · 330000 · " in overlay  # the watermark names the viewer and unit
    assert await page.evaluate("document.querySelector('.tile video').videoWidth") == 640
    # the unreachable camera is in the tree, marked offline
    offline = page.locator('.tree .camera:has-text("文一西路隧道") .status')
    assert await offline.get_attribute("data-status") == "offline"
    if os.environ.get("CAMRELAY_TEST_SCREENSHOT"):
        await page.screenshot(path=os.environ["CAMRELAY_TEST_SCREENSHOT"])
    await page.click("#signout")
    await page.wait_for_selector("#signin:not([hidden])")


async def test_demo_over_api_whep_snapshot_and_metrics(demo_server: DemoServer) -> None:
    headers = {"Authorization": f"Bearer {demo_server.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(demo_server.url + "/api/v1/cameras", headers=headers) as r:
            cameras = (await r.json())["items"]
        assert len(cameras) == 5 and cameras[0]["name"].startswith("G60")
        camera = cameras[0]["id"]
        viewer = await WhepViewer.connect(http, demo_server.url, camera, demo_server.token)
        try:
            await viewer.wait_frames(10)
            assert viewer.frames[-1].width > 0
            async with http.get(f"{demo_server.url}/api/v1/cameras/{camera}/snapshot.jpg",
                                headers=headers) as r:
                assert r.status == 200 and r.content_type == "image/jpeg"
                assert (await r.read())[:2] == b"\xff\xd8"
            async with http.get(demo_server.url + "/metrics") as r:
                text = await r.text()
            assert "camrelay_webrtc_sessions 1" in text
            assert re.search(rf'camrelay_viewers\{{camera="{camera}",stream="main"\}} [12]',
                             text), text
            async with http.get(demo_server.url + "/api/v1/sessions", headers=headers) as r:
                sessions = await r.json()
            assert [s["camera_id"] for s in sessions] == [camera]
        finally:
            await viewer.close()
        await asyncio.sleep(0)
