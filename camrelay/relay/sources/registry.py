"""Which adapter pulls which camera: a table by URL scheme and RTSP client.

The app builds the table once (:func:`default_sources`) and hands it to the
:class:`~camrelay.relay.hub.Hub`, which imports no source: it asks the table for the
:class:`~camrelay.relay.stream.Source` of a :class:`~camrelay.relay.stream.SourceSpec`,
or for a transcoded stream made from another of its streams.

The first row whose URL prefix and ``client`` match wins.  ``relay.rtsp_client``
(``SourceSpec.client``) picks our own client for ``rtsp://``; it takes H.264 and hands
any other codec, which it learns from the DESCRIBE answer, on to the FFmpeg source.
``rtsps://`` (TLS) always goes through FFmpeg.  ``whep+http://`` / ``whep+https://`` (a
camera of another camrelay, :mod:`.whep`) needs the egress's ICE settings, so its row is
added when the table is given a :class:`~camrelay.relay.sinks.webrtc.WebRtcConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from camrelay.errors import SourceUnavailable
from camrelay.redact import redact_text
from camrelay.relay.media import StreamKey
from camrelay.relay.sinks.webrtc import WebRtcConfig
from camrelay.relay.sources.ffmpeg import FfmpegSource
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.sources.transcode import BaseStreams, DerivedTranscodeSource
from camrelay.relay.sources.whep import SCHEMES as WHEP_SCHEMES
from camrelay.relay.sources.whep import WhepSources
from camrelay.relay.sources.whip import SCHEME as WHIP_SCHEME
from camrelay.relay.sources.whip import Feeds
from camrelay.relay.stream import Source, SourceSpec, TranscodeSettings

SourceFactory = Callable[[SourceSpec], Source]


@dataclass(frozen=True, slots=True)
class Adapter:
    """One row: the URL prefixes it takes and, for RTSP, the client setting it serves."""

    prefixes: tuple[str, ...]
    make: SourceFactory
    client: Literal["native", "ffmpeg"] | None = None  # None: whichever client is set


class SourceTable:
    """The adapters in order; see the module doc."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = tuple(adapters)

    def source(self, spec: SourceSpec) -> Source:
        for adapter in self.adapters:
            if spec.url.startswith(adapter.prefixes) and adapter.client in (None, spec.client):
                return adapter.make(spec)
        raise SourceUnavailable(f"unsupported source URL scheme: {redact_text(spec.url)}",
                                reason="unsupported")

    def transcoded(self, hub: BaseStreams, base: StreamKey, spec: SourceSpec) -> Source:
        """H.264 made by camrelay from ``base``, the same camera's plain stream of ``hub``
        (so the camera still sees one RTSP session)."""
        return DerivedTranscodeSource(hub, base, spec.transcode or TranscodeSettings(),
                                      timeout=spec.connect_timeout + spec.read_timeout)


def _demo(spec: SourceSpec) -> Source:
    # imported on first use: the test pattern needs numpy, +12.7 MB resident and ~150 ms
    # at start-up (measured after the app's other imports) in a relay that serves cameras
    from camrelay.relay.sources.demo import DemoSource

    return DemoSource.from_spec(spec)


ADAPTERS = (
    Adapter(("demo:",), _demo),
    Adapter(("rtsp://",), NativeRtspSource, client="native"),
    Adapter(("rtsp://", "rtsps://"), FfmpegSource),
)


def default_sources(feeds: Feeds | None = None, webrtc: WebRtcConfig | None = None
                    ) -> SourceTable:
    """The table; with ``feeds``, ``whip:`` cameras take their publishers' video; with
    ``webrtc``, ``whep+http(s)://`` cameras are pulled from another camrelay."""
    adapters: list[Adapter] = []
    if feeds is not None:
        adapters.append(Adapter((WHIP_SCHEME,), feeds.source))
    if webrtc is not None:
        adapters.append(Adapter(WHEP_SCHEMES, WhepSources(webrtc).source))
    return SourceTable((*adapters, *ADAPTERS))
