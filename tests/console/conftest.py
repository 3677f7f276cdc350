"""The console in headless Chromium against the real app (create_app on a real SQLite
store, demo cameras, the access rules of tests/access), inside the loopback-only
namespace of scripts/test.  A failing test leaves a screenshot under its tmp dir."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.catalog.models import DeviceStatus
from camrelay.settings import Settings
from tests.access.conftest import Folks, folks  # noqa: F401  (fixture)
from tests.camsim_fixture import camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.conftest import World

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "correct horse battery"  # tests/access/conftest.py: admin, county_op, city_op
HD = "demo:?width=640&height=360&fps=15&gop=1"
SD = "demo:?width=320&height=180&fps=15&gop=1"


@pytest.fixture(autouse=True)
def _require_netns() -> None:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("browser tests run only inside scripts/test's network namespace")


@pytest.fixture
def browser_args() -> list[str]:
    """Chromium's command line (a module adds its own, e.g. a fake microphone)."""
    return CHROMIUM_ARGS


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # aioice never offers 127.0.0.1: the namespace's lo carries 127.0.0.2 for WebRTC
    return replace(settings, relay=replace(settings.relay, ice_host_addresses=["127.0.0.2"],
                                           linger_seconds=0.5))


@dataclass
class Hall:
    """The running app, its people and cameras, and a browser to open consoles in."""

    url: str
    client: TestClient[Any, Any]
    folks: Folks
    world: World
    browser: Any
    shots: Path
    pages: list[Any]

    async def console(self, user: str | None = None, *, lang: str | None = None) -> Any:
        context = await self.browser.new_context(viewport={"width": 1600, "height": 900})
        if lang is not None:
            await context.add_init_script(f"localStorage.setItem('camrelay.lang', '{lang}')")
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: print(f"[browser {m.type}] {m.text}"))
        page.on("pageerror", lambda e: print(f"[browser error] {e}"))
        self.pages.append(page)
        await page.goto(self.url + "/")
        if user is not None:
            await sign_in(page, user)
        return page


async def sign_in(page: Any, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#signin-submit")
    await page.wait_for_selector("#console:not([hidden]) .tree .camera")


@pytest.fixture
async def hall(client: TestClient[Any, Any], folks: Folks, world: World,  # noqa: F811
               tmp_path: Path, request: pytest.FixtureRequest,
               browser_args: list[str]) -> AsyncIterator[Hall]:
    from playwright.async_api import async_playwright

    for name, url in (("county", HD), ("city", HD), ("prov", HD), ("other", SD)):
        await world.catalog.update_camera(folks.cameras[name], {"main_url": url, "sub_url": SD})
    # nothing may leave loopback: the one camera left is unreachable on a closed port
    await world.catalog.update_camera(folks.cameras["other_county"], {
        "main_url": "rtsp://127.0.0.1:9/closed", "status": DeviceStatus.OFFLINE})
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=browser_args)
        hall = Hall(str(client.make_url("")).rstrip("/"), client, folks, world, browser,
                    tmp_path, [])
        try:
            yield hall
        finally:
            failed = getattr(request.node, "failed_call", False)
            for n, page in enumerate(hall.pages):
                if failed and not page.is_closed():
                    shot = tmp_path / f"failure-{n}.png"
                    await page.screenshot(path=str(shot))
                    print(f"screenshot of the failed console: {shot}")
            await browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True  # type: ignore[attr-defined]
    return report
