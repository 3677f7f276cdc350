"""Per-camera transcoding settings from the catalogue reach the relay.

An H.265 camera (the simulator's /h265 mount, 640x360) registered with
``transcode_width``/``transcode_height`` is played by the app's hub as H.264 of that
size, once for all its viewers; bad values are refused naming the field.
"""

from __future__ import annotations

from typing import Any

import av
from aiohttp.test_utils import TestClient

from camrelay.relay.media import StreamKey
from camrelay.web.keys import HUB_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import World, auth


async def test_transcode_size_from_the_catalogue(client: TestClient[Any, Any], world: World,
                                                 camsim: CamSim) -> None:
    h = auth(world.admin_token)
    r = await client.post("/api/v1/cameras", json={
        "external_id": "h265-small", "name": "H.265 tunnel camera", "unit": "330110",
        "category": "tunnel", "main_url": camsim.url("/h265"), "transcode_width": 320,
        "transcode_height": 180, "transcode_bitrate": 300_000}, headers=h)
    assert r.status == 201, await r.text()
    camera = await r.json()
    assert (camera["transcode_width"], camera["transcode_height"]) == (320, 180)

    hub = client.app[HUB_KEY]
    sub = await hub.subscribe(StreamKey(camera["id"]), timeout=10)
    try:
        assert sub.info.codec == "h264" and (sub.info.width, sub.info.height) == (320, 180)
        units = list(sub.initial_gop) or [await sub.get()]
        decoder = av.CodecContext.create("h264", "r")
        frames = [f for u in units for f in decoder.decode(av.Packet(u.data))]
        assert frames and (frames[-1].width, frames[-1].height) == (320, 180)
    finally:
        sub.close()

    for field, value in (("transcode_width", 321), ("transcode_height", 8),
                         ("transcode_bitrate", 5)):
        r = await client.patch(f"/api/v1/cameras/{camera['id']}", json={field: value},
                               headers=h)
        assert r.status == 422, (field, await r.text())
        assert (await r.json())["field"] == field
