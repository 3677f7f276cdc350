"""A camera with no stream address: WHEP, snapshot and probe answer 409 ``no_stream``
(nothing is unavailable, nothing is configured: no Retry-After), as documented."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection

from camrelay.web.keys import OPENAPI_KEY
from tests.conftest import World, auth

pytestmark = pytest.mark.netns


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_no_stream_address_is_409_on_whep_snapshot_and_probe(
        client: TestClient[Any, Any], world: World) -> None:
    h = auth(world.admin_token)
    r = await client.post("/api/v1/cameras", headers=h, json={
        "external_id": "no-url", "name": "planned", "unit": "330100", "category": "bridge"})
    camera = await r.json()
    assert r.status == 201 and camera["main_url"] in (None, ""), camera
    offer = await real_offer()
    for method, path, kwargs in [
            ("POST", f"/whep/{camera['id']}", {"data": offer, "headers": {
                **h, "Content-Type": "application/sdp"}}),
            ("POST", f"/whep/{camera['id']}?stream=sub", {"data": offer, "headers": {
                **h, "Content-Type": "application/sdp"}}),
            ("GET", f"/api/v1/cameras/{camera['id']}/snapshot.jpg", {"headers": h}),
            ("GET", f"/api/v1/cameras/{camera['id']}/snapshot.jpg?stream=sub", {"headers": h}),
            ("POST", f"/api/v1/cameras/{camera['id']}/probe", {"headers": h})]:
        r = await client.request(method, path, **kwargs)
        problem = await r.json(content_type=None)
        assert r.status == 409, (path, problem)
        assert r.content_type == "application/problem+json"
        assert problem["reason"] == "no_stream" and "Retry-After" not in r.headers
        assert "no stream address" in problem["detail"]
    assert client.app is not None
    paths = client.app[OPENAPI_KEY]["paths"]
    for path, method in [("/whep/{camera_id}", "post"),
                         ("/api/v1/cameras/{camera_id}/snapshot.jpg", "get"),
                         ("/api/v1/cameras/{camera_id}/probe", "post")]:
        assert "409" in paths[path][method]["responses"], path
