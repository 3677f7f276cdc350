"""Headless Chromium plays through the WHEP player page; a joiner is live at once.

Chromium is Debian's (/usr/bin/chromium), driven by playwright, inside the test's
loopback-only namespace: loopback candidates allowed, mDNS candidates off, no QUIC, no
background networking.  Each page reads the burnt-in frame number of every presented
picture from a canvas (the JS twin of ``pattern.read_frame_number``) with a
``Date.now()`` timestamp, so two pages can be compared on one clock.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.webrtc.conftest import Relay, RelayFactory, demo

pytestmark = pytest.mark.netns

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

# Reads the frame-number band (see camrelay/relay/sources/pattern.py) of each picture.
SAMPLER_JS = """
(() => {
  const CELLS = 22;
  window.__t0 = Date.now();
  window.__samples = [];
  const canvas = document.createElement("canvas");
  function readNumber(video) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    const band = Math.max(2, Math.floor(h / 10));
    const values = [];
    for (let i = 0; i < CELLS; i++) {
      const x0 = Math.floor(i * w / CELLS), x1 = Math.floor((i + 1) * w / CELLS);
      const cx0 = x0 + Math.floor((x1 - x0) / 4), cx1 = x1 - Math.floor((x1 - x0) / 4);
      const cy0 = Math.floor(band / 4), cy1 = Math.max(cy0 + 1, band - Math.floor(band / 4));
      const d = ctx.getImageData(cx0, cy0, Math.max(1, cx1 - cx0), cy1 - cy0).data;
      let sum = 0;
      for (let p = 0; p < d.length; p += 4) sum += 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2];
      values.push(sum / (d.length / 4));
    }
    if (values[0] - values[1] < 64) return null;
    const threshold = (values[0] + values[1]) / 2;
    let n = 0;
    for (const v of values.slice(2)) n = n * 2 + (v > threshold ? 1 : 0);
    return n;
  }
  function hook() {
    const video = document.getElementById("video");
    if (!video) { requestAnimationFrame(hook); return; }
    const onFrame = () => {
      const n = readNumber(video);
      if (n !== null) window.__samples.push({ t: Date.now(), n });
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  document.addEventListener("DOMContentLoaded", hook);
})();
"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-test-env.sh")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_player(browser: Any, relay: Relay, camera: int, token: str) -> Any:
    context = await browser.new_context()
    await context.add_init_script(
        f"sessionStorage.setItem('camrelay.token', {token!r});" + SAMPLER_JS)
    page = await context.new_page()
    await page.goto(f"{relay.url}/static/player.html?camera={camera}&purpose=test&autoplay=1")
    return page


async def samples(page: Any) -> tuple[float, list[dict[str, float]]]:
    """(when the player POSTed its offer, the pictures it presented)."""
    t0, s = await page.evaluate("[window.camrelayPlayer.postedAt, window.__samples]")
    return float(t0), list(s)


async def wait_samples(page: Any, n: int, timeout: float = 10.0) -> None:
    await page.wait_for_function(f"window.__samples && window.__samples.length >= {n}",
                                 timeout=timeout * 1000)


async def test_chromium_joiner_shows_the_running_viewers_frame_within_1s(
        relay_factory: RelayFactory, browser: Any) -> None:
    relay = await relay_factory({1: demo(4, fps=25, width=640, height=360)})
    running = await open_player(browser, relay, 1, "tok-bob")
    await wait_samples(running, 30)  # well into a 4 s GOP
    assert await running.evaluate("window.camrelayPlayer.state") == "playing"
    joiner = await open_player(browser, relay, 1, "tok-alice")
    await wait_samples(joiner, 10)
    _, run_samples = await samples(running)
    t0, join_samples = await samples(joiner)

    def running_at(t: float) -> float | None:
        seen = [s["n"] for s in run_samples if s["t"] <= t]
        return seen[-1] if seen else None

    # caught up: the joiner shows the running viewer's picture or a newer one (the running
    # player's own jitter buffer may hold it a few frames behind the live picture)
    matched = [s for s in join_samples
               if (ref := running_at(s["t"])) is not None and s["n"] >= ref - 2]
    assert matched, (join_samples[:10], run_samples[-10:])
    first_live = matched[0]["t"] - t0
    first_any = join_samples[0]["t"] - t0
    print(f"chromium joiner: first picture {first_any:.0f} ms after the POST, "
          f"same picture as the running viewer after {first_live:.0f} ms")
    assert first_live <= 1000
    # leaving DELETEs the session
    session = next(s for s in relay.egress.sessions() if s.owner == 1)  # tok-alice
    print(f"joiner session counters: {session.counters}")
    await joiner.evaluate("window.camrelayPlayer.stop()")
    await asyncio.wait_for(session.closed.wait(), 5)
    assert len(relay.egress) == 1
    await running.evaluate("window.camrelayPlayer.stop()")
    await running.context.close()
    await joiner.context.close()


async def test_chromium_player_shows_problem_for_refused_camera(
        relay: Relay, browser: Any) -> None:
    page = await open_player(browser, relay, 13, "tok-alice")
    await page.wait_for_function("window.camrelayPlayer.state === 'error'", timeout=10_000)
    text = await page.text_content("#status")
    assert text is not None and "403" in text
    await page.context.close()
