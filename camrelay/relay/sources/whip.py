"""The ``whip:`` source: a field camera's video as its publisher pushes it (RFC 9725).

A field device (body-worn, vehicle, phone) publishes over WHIP
(:mod:`camrelay.relay.ingest`); its coded H.264 arrives here as a :class:`Feed`, one per
camera, registered in :class:`Feeds`.  The camera's stream in the hub pulls it like any
other source: :class:`WhipSource` binds the stream to the feed and returns when the feed
ends.  Without a feed the source fails at once with reason ``no_publisher``.

Nothing is decoded or re-encoded: the publisher's access units are made Annex-B with
SPS/PPS in front of every IDR (:class:`camrelay.relay.h264.AnnexBWriter`), and its Opus
packets go to the stream's audio as they came (``AudioInfo`` codec ``OPUS``), so Opus
viewers get the publisher's own packets.  Browsers send
keyframes only when asked, so the feed asks (a PLI) when a stream binds to it, and again
whenever the last keyframe is older than ``keyframe_interval`` seconds: that keeps the
stream's GOP cache short, and so the viewers' instant start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from camrelay.errors import Conflict, SourceUnavailable
from camrelay.relay import h264
from camrelay.relay.media import WHIP_SCHEME, AudioInfo
from camrelay.relay.sources.rtsp import h264_video_info
from camrelay.relay.stream import SourceSpec, UnitSink

log = logging.getLogger(__name__)

SCHEME = WHIP_SCHEME
KEYFRAME_INTERVAL = 2.0  # seconds: the longest GOP the feed lets the publisher send
PLI_MIN_INTERVAL = 0.5  # seconds between two keyframe requests
OPUS = AudioInfo("OPUS", 48_000, 2)  # a publisher's audio: Opus, passed through


class FeedBusy(Conflict):
    """The camera already has a publisher (409)."""

    title = "Camera already has a publisher"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, reason="publisher_connected")


def no_publisher(camera_id: int) -> SourceUnavailable:
    return SourceUnavailable(f"camera {camera_id}: no publisher", reason="no_publisher")


class Feed:
    """One publisher's video for one camera (everything on the loop).

    ``request_keyframe`` asks the publisher for a keyframe (an RTCP PLI)."""

    def __init__(self, camera_id: int, request_keyframe: Callable[[], None], *,
                 keyframe_interval: float | None = KEYFRAME_INTERVAL,
                 keyframe_on_bind: bool = True,
                 audio: AudioInfo | None = None) -> None:
        self.camera_id = camera_id
        self.audio = audio  # the publisher's Opus (a lower camrelay's audio), if any
        self._request_keyframe = request_keyframe
        self._keyframe_interval = keyframe_interval  # None: never asked for on a timer
        self._keyframe_on_bind = keyframe_on_bind
        self._writer = h264.AnnexBWriter(None)
        self._sink: UnitSink | None = None
        self._started = False
        self._last_key = 0.0
        self._last_pli = 0.0
        self.ended = asyncio.Event()
        self.units = 0
        self.bytes = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.foreign = 0  # frames of another codec than H.264
        self.audio_units = 0

    def bind(self, sink: UnitSink) -> None:
        self._sink = sink
        self._started = False
        if self.audio is not None:
            sink.on_audio_info(self.audio)
        if self._keyframe_on_bind:
            self._ask_keyframe(time.monotonic(), force=True)

    def unbind(self, sink: UnitSink) -> None:
        if self._sink is sink:
            self._sink = None

    def end(self) -> None:
        self.ended.set()
        self._sink = None

    def _ask_keyframe(self, now: float, *, force: bool = False) -> None:
        if not force and now - self._last_pli < PLI_MIN_INTERVAL:
            return
        self._last_pli = now
        self.keyframe_requests += 1
        self._request_keyframe()

    def push_audio(self, codec: str, data: bytes, timestamp: int) -> None:
        """One audio packet of the codec :attr:`audio` names, passed on as it came (on its
        RTP clock): a publisher's Opus, or what a lower camrelay sends (G.711, Opus)."""
        audio = self.audio
        if self.ended.is_set() or audio is None or codec.lower() != audio.codec.lower():
            return
        self.audio_units += 1
        self.bytes += len(data)
        sink = self._sink
        if sink is not None:
            sink.on_audio(data, timestamp, time.monotonic())

    def push(self, codec: str, data: bytes, timestamp: int) -> None:
        """One coded frame from the publisher: Annex-B, ``timestamp`` on the RTP clock."""
        if self.ended.is_set():
            return
        if codec != "H264":
            self.foreign += 1
            return
        try:
            nals = h264.split_annexb(data)
            if not nals:
                return
            unit, keyframe = self._writer.write(nals)
        except ValueError as exc:
            log.debug("[camera %d] unusable frame from the publisher: %s", self.camera_id, exc)
            return
        now = time.monotonic()
        self.units += 1
        self.bytes += len(unit)
        if keyframe:
            self.keyframes += 1
            self._last_key = now
        elif self._keyframe_interval is not None and \
                now - self._last_key > self._keyframe_interval:
            self._ask_keyframe(now)
        sink = self._sink
        if sink is None:
            return
        if not self._started:
            if not keyframe:
                self._ask_keyframe(now)  # the stream cannot start without one
                return
            self._started = True
            sink.on_info(h264_video_info(self._writer, unit, None), False)
        sink.on_unit(unit, timestamp, keyframe, now)


class Feeds:
    """The live feeds by camera id: at most one publisher per camera."""

    def __init__(self) -> None:
        self._feeds: dict[int, Feed] = {}

    def attach(self, feed: Feed) -> None:
        if feed.camera_id in self._feeds:
            raise FeedBusy(f"camera {feed.camera_id} already has a publisher; it must end "
                           "its session (DELETE) first")
        self._feeds[feed.camera_id] = feed

    def detach(self, feed: Feed) -> None:
        if self._feeds.get(feed.camera_id) is feed:
            del self._feeds[feed.camera_id]

    def get(self, camera_id: int) -> Feed | None:
        return self._feeds.get(camera_id)

    def source(self, spec: SourceSpec) -> WhipSource:
        """The hub's source for ``whip:<camera id>`` (the resolver adds the id)."""
        try:
            camera_id = int(spec.url[len(SCHEME):])
        except ValueError:
            raise SourceUnavailable("whip: source without a camera id",
                                    reason="unsupported") from None
        return WhipSource(camera_id, self)


class WhipSource:
    """Binds a stream to its camera's feed until the publisher leaves."""

    def __init__(self, camera_id: int, feeds: Feeds) -> None:
        self.camera_id = camera_id
        self._feeds = feeds

    async def run(self, sink: UnitSink) -> None:
        feed = self._feeds.get(self.camera_id)
        if feed is None or feed.ended.is_set():
            raise no_publisher(self.camera_id)
        feed.bind(sink)
        try:
            await feed.ended.wait()
        finally:
            feed.unbind(sink)
        raise no_publisher(self.camera_id)
