"""The source table, and ``relay.rtsp_client`` deciding which RTSP client pulls a
catalogued H.264 camera."""

from __future__ import annotations

from dataclasses import replace

import pytest

from camrelay.app import make_resolver
from camrelay.errors import SourceUnavailable
from camrelay.relay.media import StreamKey
from camrelay.relay.sources.demo import DemoSource
from camrelay.relay.sources.ffmpeg import FfmpegSource
from camrelay.relay.sources.registry import default_sources
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.stream import SourceSpec
from camrelay.settings import Settings
from tests.conftest import World

make_source = default_sources().source


def test_make_source_picks_the_client() -> None:
    assert isinstance(make_source(SourceSpec("rtsp://127.0.0.1/x")), NativeRtspSource)
    assert isinstance(make_source(SourceSpec("rtsp://127.0.0.1/x", client="ffmpeg")), FfmpegSource)
    assert isinstance(make_source(SourceSpec("rtsps://127.0.0.1/x")), FfmpegSource)
    assert isinstance(make_source(SourceSpec("demo:?fps=5")), DemoSource)
    with pytest.raises(SourceUnavailable) as caught:
        make_source(SourceSpec("http://admin:secret@127.0.0.1/x"))
    assert caught.value.reason == "unsupported" and "secret" not in caught.value.detail
    with pytest.raises(ValueError):
        SourceSpec("rtsp://127.0.0.1/x", client="gstreamer")  # type: ignore[arg-type]


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

