"""Revocation cuts a real WebRTC viewer: no media reaches it after 1 s, and its record in
the access journal is closed with the reason (the issue's end-to-end check).

The full app (gate, journal, hub, WebRTC egress) serves a demo camera; the viewer is a
real aiortc peer; both run in the suite's loopback-only network namespace.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.journal import RecordFilter
from camrelay.settings import Settings
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import Folks
from tests.conftest import World
from tests.whep_client import WhepViewer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # aioice never offers 127.0.0.1: the namespace's lo carries 127.0.0.2 for WebRTC
    return replace(settings, relay=replace(settings.relay, ice_host_addresses=["127.0.0.2"],
                                           linger_seconds=0.5))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_revoked_token_cuts_a_live_webrtc_viewer_within_a_second(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")
    camera = (await world.catalog.update_camera(folks.cameras["county"], {
        "main_url": "demo:?width=320&height=240&fps=25&gop=1"})).id
    base = str(client.make_url("")).rstrip("/")
    token = folks.tokens["county_op"]
    viewer = await WhepViewer.connect(client.session, base, camera, token,
                                      purpose="bridge inspection")
    try:
        await viewer.wait_frames(10, timeout=10)
        (info,) = await world.accounts.list_tokens(folks.user_ids["county_op"])
        t0 = time.monotonic()
        r = await client.delete(f"/api/v1/tokens/{info.id}", headers=folks.h("admin"))
        assert r.status == 200
        async with asyncio.timeout(1.0):
            await viewer.ended.wait()  # the server closed the peer connection
        cut_after = time.monotonic() - t0
        await asyncio.sleep(1.0)  # a window in which no further picture may arrive
        late = [f for f in viewer.frames if f.at > t0 + 1.0]
        assert not late, f"{len(late)} frames arrived more than 1 s after the revocation"
        print(f"viewer cut {cut_after * 1000:.0f} ms after the revocation")
    finally:
        await viewer.close(delete=False)
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="view"), limit=100)
    (record,) = [r for r in records if r["camera_id"] == camera and r.get("end")]
    assert "token revoked" in record["close_reason"]
    assert record["purpose"] == "bridge inspection"
    assert record["user"] == "county_op" and record["approver"] == "own jurisdiction"
    assert record["start"] and record["end"] and record["result"] == "allowed"
    # and the session is gone from the relay
    r = await client.get("/api/v1/sessions", headers=folks.h("admin"))
    assert await r.json() == []
