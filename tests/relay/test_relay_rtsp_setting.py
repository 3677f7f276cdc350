"""``relay.rtsp_client`` decides which RTSP client pulls a catalogued H.264 camera."""

from __future__ import annotations

from dataclasses import replace

import pytest

from camrelay.relay.hub import make_source
from camrelay.relay.media import StreamKey
from camrelay.relay.sources.ffmpeg import FfmpegSource
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.settings import Settings
from camrelay.web.api_relay import make_resolver
from tests.conftest import World


@pytest.mark.parametrize(("client", "source"), [("native", NativeRtspSource),
                                                ("ffmpeg", FfmpegSource)])
async def test_the_setting_picks_the_client(world: World, settings: Settings, client: str,
                                            source: type) -> None:
    camera = await world.catalog.add_camera({
        "external_id": "gate-1", "name": "Toll gate 1", "unit": "330110",
        "category": "toll", "main_url": "rtsp://127.0.0.1:8554/main"})
    settings = replace(settings, relay=replace(settings.relay, rtsp_client=client))
    spec = await make_resolver(world.catalog, settings)(StreamKey(camera.id))
    assert spec.client == client
    assert type(make_source(spec)) is source
    # rtsps:// always goes through FFmpeg (TLS)
    assert type(make_source(replace(spec, url="rtsps://127.0.0.1/main"))) is FfmpegSource

