"""The console in Firefox (Debian's firefox-esr, headless, driven over its Marionette
protocol with marionette-driver; no geckodriver): sign in, two cameras on a 2x2 wall
(issue 14 item 1: current Chromium *and* Firefox).  Where Firefox's WebRTC has H.264
both tiles must decode frames of the right size; where it has none (no OpenH264 plugin:
Firefox downloads it from Cisco, which an offline network and this namespace never
reach) each tile must say why in the page's language, without sending an offer.
Inside the loopback-only namespace of scripts/test, like the Chromium tests.

Marionette's client is synchronous: every call to it runs in a thread, so the app under
test (served by this test's own event loop) keeps answering."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from camrelay.access.journal import RecordFilter
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import add_camera
from tests.console.conftest import PASSWORD, SD, Hall

pytestmark = pytest.mark.netns

FIREFOX = "/usr/bin/firefox-esr"
T = TypeVar("T")

# What a loopback-only namespace needs of Firefox's WebRTC, and nothing that phones home:
# host candidates on loopback, not hidden behind mDNS names (there is no resolver here).
PREFS = {
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "marionette.port": 0,  # any free port, written to MarionettePort in the profile
    "network.proxy.type": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "network.dns.disablePrefetch": True,
}


def _user_js(prefs: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else f'"{v}"'
    return "".join(f'user_pref("{k}", {value(v)});\n' for k, v in prefs.items())


class Firefox:
    """A headless firefox-esr with Marionette on, and a client session to it."""

    def __init__(self, profile: Path, log: Path) -> None:
        self.profile = profile
        (profile / "user.js").write_text(_user_js(PREFS))
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile),
             "--window-size", "1600,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.client: Any = None

    def connect(self, timeout: float = 60) -> None:
        with warnings.catch_warnings():  # mozinfo calls distro's deprecated shim at import
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette

        port_file = self.profile / "MarionetteActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise RuntimeError(f"firefox-esr exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("firefox-esr did not open its Marionette port")
            time.sleep(0.05)  # polling a child process's readiness (the port file)
        self.client = Marionette(host="127.0.0.1", port=int(port_file.read_text()))
        self.client.start_session()

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.delete_session()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """A blocking Marionette call, in a thread: the app under test runs on this loop."""
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def firefox(tmp_path: Path) -> AsyncIterator[Firefox]:
    profile = Path(tempfile.mkdtemp(prefix="camrelay-firefox-", dir=tmp_path))
    fox = Firefox(profile, tmp_path / "firefox.log")
    try:
        await off_loop(fox.connect)
        yield fox
    finally:
        await off_loop(fox.close)
        print((tmp_path / "firefox.log").read_text(errors="replace")[-3000:])
        shutil.rmtree(profile, ignore_errors=True)


# Resolves when the tiles' <video> have decoded frames (checked every animation frame),
# or after ms with what the tiles show then.
PLAYING = """
const [indexes, ms] = arguments;
const done = arguments[arguments.length - 1];
const state = () => indexes.map((i) => {
  const t = document.querySelector(`.tile[data-index="${i}"]`);
  const v = t && t.querySelector("video");
  return { state: t ? t.dataset.state : null, reason: t ? t.querySelector(".tile-message").textContent : "",
           camera: t ? t.querySelector("camrelay-player").getAttribute("camera") : null,
           width: v ? v.videoWidth : 0, height: v ? v.videoHeight : 0,
           frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : 0 };
});
const ok = () => state().every((s) => s.frames > 0 && s.width > 0);
const timer = setTimeout(() => done(state()), ms);
const check = () => { if (ok()) { clearTimeout(timer); done(state()); } else requestAnimationFrame(check); };
check();
"""


async def test_firefox_signs_in_and_plays_two_cameras_on_a_2x2_wall(
        hall: Hall, firefox: Firefox) -> None:
    own = hall.folks.cameras["county"]  # 640x360 main
    second = await add_camera(hall.world, "county2", "330110")
    await hall.world.catalog.update_camera(second, {
        "main_url": "demo:?width=480&height=360&fps=15&gop=1", "sub_url": SD})
    fox = firefox.client
    await off_loop(fox.navigate, hall.url + "/")
    await off_loop(fox.execute_script, """
      document.querySelector("#username").value = arguments[0];
      document.querySelector("#password").value = arguments[1];
      document.querySelector("#signin-submit").click();""", ["county_op", PASSWORD])
    # the catalogue listed, the 2x2 layout picked, a camera placed on tiles 0 and 1
    placed = await off_loop(lambda: fox.execute_async_script("""
      const [cams] = arguments; const done = arguments[arguments.length - 1];
      const listed = () => document.querySelector(`.tree .camera[data-camera="${cams[1]}"]`)
                           && !document.querySelector("#console").hidden;
      const place = () => {
        document.querySelector('#layouts button[data-layout="2x2"]').click();
        for (const [i, cam] of cams.entries()) {
          document.querySelector(`.tile[data-index="${i}"]`).click();
          document.querySelector(`.tree .camera[data-camera="${cam}"]`).click();
        }
        done(true);
      };
      const wait = () => (listed() ? place() : requestAnimationFrame(wait));
      wait();""", [[own, second]], script_timeout=15_000))
    assert placed
    h264 = await off_loop(fox.execute_script, """
      return RTCRtpReceiver.getCapabilities("video").codecs
        .some((c) => c.mimeType.toLowerCase() === "video/h264");""")
    shown = await off_loop(lambda: fox.execute_async_script(
        PLAYING, [[0, 1], 15_000 if h264 else 1_000], script_timeout=20_000))
    print(f"Firefox's WebRTC decodes H.264: {h264}; its tiles: {shown}")
    assert [s["camera"] for s in shown] == [str(own), str(second)], shown
    if h264:  # the OpenH264 plugin (or a hardware decoder) is there: both tiles play
        assert [(s["width"], s["height"]) for s in shown] == [(640, 360), (480, 360)], shown
        assert all(s["frames"] > 0 and s["state"] == "live" for s in shown), shown
        return
    # Without it (Debian's firefox-esr offline: the plugin is downloaded from Cisco on
    # first use) camrelay, which sends H.264 only, cannot serve it: each tile says so in
    # the page's language, and no offer the server would refuse is sent.
    for s in shown:
        assert s["state"] == "error" and "OpenH264" in s["reason"], s
        assert s["reason"].startswith("无法播放：本浏览器的 WebRTC 不能解码 H.264"), s
    records = await hall.client.app[JOURNAL_KEY].records(
        RecordFilter(kind="view", user="county_op"), limit=10)
    assert [r for r in records if r["camera_id"] in (own, second)] == []
