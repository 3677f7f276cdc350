"""Camera audio across three linked platforms: a county camera's sound heard at the
province through the city, one WHEP pull per camera per level.

The simulator's /pcma mount sends a G.711 A-law tone (passed through at every level) and
its /aac mount an AAC tone (made Opus once, at the county; passed through above).  Real
camrelay apps on loopback, real aiortc viewers that decode what they hear; run only
inside the loopback-only network namespace of scripts/test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from camrelay.web.keys import WEBRTC_KEY
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.federation.test_federation_links import (
    Platform,
    _by_external,
    eventually,
    platforms,  # noqa: F401  (fixture)
)
from tests.federation.test_federation_streams import (
    _in_netns_and_no_leaked_threads,  # noqa: F401  (autouse fixture)
    chained,
    sessions,
)
from tests.webrtc.test_whep_audio import SILENCE, _audio_line
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns


async def _views(p: Platform, camera: int) -> list[dict[str, Any]]:
    rows = await p.call("GET", f"/api/v1/audit?camera={camera}")
    return [r for r in (rows["items"] if isinstance(rows, dict) else rows)
            if r["kind"] == "view"]


async def _closed_audio(p: Platform, camera: int) -> list[str | None]:
    """The audio codec of each closed view of ``camera`` in ``p``'s journal, once all
    of its views are closed."""
    async def closed() -> bool:
        rows = await _views(p, camera)
        return bool(rows) and all(r["end"] is not None for r in rows)

    await eventually(closed, f"{p.name}'s views of camera {camera} closed")
    return [r["audio"] for r in await _views(p, camera)]


async def test_county_camera_audio_is_heard_at_the_province_one_pull_per_level(
        platforms: Callable[[str], Platform], camsim: CamSim) -> None:  # noqa: F811
    county, city, province = await chained(platforms)
    local: dict[str, int] = {}
    for mount in ("pcma", "aac"):
        cam = await county.call("POST", "/api/v1/cameras", {
            "external_id": f"yh-{mount}", "name": f"{mount} bridge", "unit": "330110",
            "category": "bridge", "main_url": camsim.url(f"/{mount}")}, status=201)
        local[mount] = int(cam["id"])

    async def at_province() -> bool:
        cams = await province.cameras()
        return all(_by_external(cams, f"city:county:yh-{m}") is not None for m in local)

    await eventually(at_province, "the county cameras at the province")
    cams = await province.cameras()
    top = {m: int(_by_external(cams, f"city:county:yh-{m}")["id"])  # type: ignore[index]
           for m in local}
    plays = {m: camsim.play_count(f"/{m}") for m in local}
    async with aiohttp.ClientSession() as http:
        viewers = {m: [await WhepViewer.connect(http, province.url, top[m], province.token,
                                                purpose="incident G60", audio=True)
                       for _ in range(2)] for m in local}
        everyone = [v for vs in viewers.values() for v in vs]
        try:
            for viewer in viewers["pcma"]:  # passed through at every level
                audio = _audio_line(viewer.answer)
                assert "a=sendonly" in audio and "PCMA/8000" in audio
            for viewer in viewers["aac"]:
                audio = _audio_line(viewer.answer)
                assert "a=sendonly" in audio and "opus/48000" in audio.lower()
            await asyncio.gather(*(v.wait_audio(50, 30) for v in everyone),
                                 *(v.wait_frames(10, timeout=30) for v in everyone))
            for viewer in everyone:
                assert max(viewer.audio_rms[-25:]) > SILENCE, "the tone, not silence"
            # one pull per camera per level, one RTSP session per camera
            assert sessions(county) == 2 and sessions(city) == 2 and sessions(province) == 4
            assert all(camsim.play_count(f"/{m}") - plays[m] == 1 for m in local)
            # AAC made Opus once, at the county; nothing decoded above it
            assert county.app is not None and city.app is not None and province.app
            assert county.app[WEBRTC_KEY].audio.created == 1
            assert city.app[WEBRTC_KEY].audio.created == 0
            assert province.app[WEBRTC_KEY].audio.created == 0
        finally:
            await asyncio.gather(*(v.close() for v in everyone))
    # every level's journal says audio was delivered: the viewers here, the pulls below
    assert await _closed_audio(province, top["pcma"]) == ["PCMA", "PCMA"]
    assert await _closed_audio(province, top["aac"]) == ["opus", "opus"]
    # the city's record: the province's pull and its two viewers; the county's: the
    # city's pull, and the province's pull and viewers passed on down by the city
    middle = await city.cameras()
    for mount, codec in (("pcma", "PCMA"), ("aac", "opus")):
        at_city = _by_external(middle, f"county:yh-{mount}")
        assert at_city is not None
        assert await _closed_audio(city, int(at_city["id"])) == [codec] * 3
        assert await _closed_audio(county, local[mount]) == [codec] * 4
