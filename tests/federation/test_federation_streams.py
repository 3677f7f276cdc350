"""Streams across three linked platforms: a county camera (RTSP simulator) watched at the
province through the city, each level pulling it once over WHEP from the level below.

Real camrelay apps (their own SQLite stores) linked with federation credentials, real
aiortc viewers, the RTSP simulator counting its own sessions; run only inside the
loopback-only network namespace of scripts/test."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import pytest

from camrelay.web.keys import WEBRTC_KEY
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.federation.test_federation_links import (
    Platform,
    _by_external,
    _link,
    eventually,
    platforms,  # noqa: F401  (fixture)
)
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
async def _in_netns_and_no_leaked_threads() -> AsyncIterator[None]:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")
    before = {t.ident for t in threading.enumerate()}
    yield
    for thread in threading.enumerate():  # aiosqlite's threads end just after their close
        if thread.ident not in before and "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


def sessions(p: Platform) -> int:
    assert p.app is not None
    return len(p.app[WEBRTC_KEY].sessions())


async def chained(make: Callable[[str], Platform]) -> tuple[Platform, Platform, Platform]:
    """County, city and province camrelays, each linked to the one below (its shared
    unit), relaying on loopback with a short linger."""
    county, city, province = make("county"), make("city"), make("province")
    for p in (county, city, province):
        p.settings = replace(p.settings, relay=replace(
            p.settings.relay, ice_host_addresses=["127.0.0.2"], linger_seconds=0.5))
    await county.open([("330110", "county", None)])
    await city.open([("330100", "city", None)])
    await province.open([("330000", "province", None)])
    await _link(city, county, "city", ["330110"], "330100")
    await _link(province, city, "province", ["330100"], "330000")
    return county, city, province


async def test_province_viewers_of_a_county_camera_one_pull_per_level_and_revocation(
        platforms: Callable[[str], Platform], camsim: CamSim) -> None:  # noqa: F811
    county, city, province = await chained(platforms)
    await county.call("POST", "/api/v1/cameras", {
        "external_id": "yh-0001", "name": "bridge", "unit": "330110", "category": "bridge",
        "main_url": camsim.url("/h264")}, status=201)

    async def at_province() -> bool:
        return _by_external(await province.cameras(), "city:county:yh-0001") is not None

    await eventually(at_province, "the county camera at the province")
    camera = _by_external(await province.cameras(), "city:county:yh-0001")
    assert camera is not None
    plays = camsim.play_count("/h264")
    async with aiohttp.ClientSession() as http:
        viewers = list(await asyncio.gather(*(
            WhepViewer.connect(http, province.url, int(camera["id"]), province.token,
                               purpose="incident G60") for _ in range(3))))
        try:
            await asyncio.gather(*(v.wait_frames(20, timeout=30) for v in viewers))
            for viewer in viewers:
                seen = [f.number for f in viewer.frames if f.number is not None]
                assert len(seen) >= 10 and seen[-1] > seen[0], "frame numbers advance"
            # one pull per level: the county serves the city once, the city the province
            assert sessions(county) == 1 and sessions(city) == 1 and sessions(province) == 3
            assert camsim.play_count("/h264") - plays == 1
            # the county revokes the city's credential: the province's viewers are cut
            (issued,) = await county.call("GET", "/api/v1/federation/credentials")
            t0 = time.monotonic()
            await county.call("DELETE", f"/api/v1/federation/credentials/{issued['id']}")
            async with asyncio.timeout(1.0):  # the issue asks for 1 s
                await asyncio.gather(*(v.ended.wait() for v in viewers))
            print(f"province viewers cut {(time.monotonic() - t0) * 1000:.0f} ms after the "
                  "county revoked the city's credential")
        finally:
            await asyncio.gather(*(v.close(delete=False) for v in viewers))
