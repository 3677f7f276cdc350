"""Decode anything PyAV can and encode H.264 constrained baseline, off the event loop.

:class:`Transcoder` is the blocking core (one thread: decode, scale, encode); it is fed
through a bounded queue that drops to the next keyframe when the encoder falls behind.
The FFmpeg source runs one for cameras that do not send H.264; :class:`DerivedTranscodeSource`
runs one on the units of a camera's plain stream for ``StreamKey(transcode=True)``, so the
camera still sees a single RTSP session.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol, cast

import av
from av.video.codeccontext import VideoCodecContext

from camrelay.errors import SourceUnavailable
from camrelay.relay import h264
from camrelay.relay.media import StreamKey, VideoInfo
from camrelay.relay.stream import StreamClosed, Subscription, TranscodeSettings, UnitSink
from camrelay.relay.worker import Worker

log = logging.getLogger(__name__)

InfoCallback = Callable[[VideoInfo], None]
UnitCallback = Callable[[bytes, int, bool, float], None]

_END = None


def new_h264_encoder(width: int, height: int, fps: float,
                     settings: TranscodeSettings) -> VideoCodecContext:
    """A libx264 encoder for constrained baseline, 90 kHz time base, no B-frames."""
    gop = max(1, round(fps * settings.gop_seconds))
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, 90000)
    enc.framerate = Fraction(fps).limit_denominator(1001)
    enc.bit_rate = settings.bitrate or max(200_000, int(width * height * fps * 0.1))
    enc.gop_size = gop
    enc.max_b_frames = 0
    enc.options = {
        "profile": "baseline", "preset": settings.preset, "tune": "zerolatency",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
    }
    return enc


class H264Output:
    """Turns encoder packets into Annex-B units and the VideoInfo describing them."""

    def __init__(self, fps: float | None, on_info: InfoCallback, on_unit: UnitCallback) -> None:
        self._writer = h264.AnnexBWriter(None)
        self._fps = fps
        self._on_info = on_info
        self._on_unit = on_unit
        self._info: VideoInfo | None = None
        self.size = (0, 0)

    def packets(self, packets: list[Any], arrival: float) -> None:
        for packet in packets:
            data, key = self._writer.write(h264.split_annexb(bytes(packet)))
            if self._info is None:
                if not key or self._writer.sps is None:
                    continue
                self._info = VideoInfo(
                    codec="h264", width=self.size[0], height=self.size[1], fps=self._fps,
                    profile_level_id=h264.profile_level_id(self._writer.sps),
                    sps=self._writer.sps, pps=self._writer.pps)
                self._on_info(self._info)
            self._on_unit(data, int(packet.pts or 0), key, arrival)


class Transcoder:
    """Blocking decode -> scale -> H.264 encode loop; feed with :meth:`feed`, end with
    :meth:`finish`, run :meth:`run` in a thread (it returns when finished or stopped)."""

    def __init__(self, codec: str, extradata: bytes | None, settings: TranscodeSettings,
                 fps: float | None, on_info: InfoCallback, on_unit: UnitCallback,
                 queue_size: int = 50) -> None:
        self.codec = codec
        self.extradata = extradata
        self.settings = settings
        self.fps = fps or 25.0
        self._out = H264Output(self.fps, on_info, on_unit)
        self._queue: queue.Queue[tuple[bytes, int, bool, float] | None] = queue.Queue(queue_size)
        self._skip_to_key = False
        self.dropped = 0

    def feed(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None:
        """Non-blocking; when the queue is full, drop until the next keyframe."""
        if self._skip_to_key and not keyframe:
            self.dropped += 1
            return
        self._skip_to_key = False
        try:
            self._queue.put_nowait((data, pts, keyframe, arrival))
        except queue.Full:
            self.dropped += 1
            self._skip_to_key = True

    def finish(self) -> None:
        while True:
            try:
                self._queue.put_nowait(_END)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def run(self, stop: threading.Event) -> None:
        dec = cast(VideoCodecContext, av.CodecContext.create(self.codec, "r"))
        if self.extradata:
            dec.extradata = self.extradata
        enc: VideoCodecContext | None = None
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _END:
                break
            data, pts, _keyframe, arrival = item
            packet = av.Packet(data)
            packet.pts = packet.dts = pts
            try:
                frames = dec.decode(packet)
            except av.error.FFmpegError as exc:
                log.debug("transcode: %s frame not decodable: %s", self.codec, exc)
                continue
            for frame in frames:
                if enc is None:
                    width = self.settings.width or frame.width - frame.width % 2
                    height = self.settings.height or frame.height - frame.height % 2
                    enc = new_h264_encoder(width, height, self.fps, self.settings)
                    self._out.size = (width, height)
                out = frame.reformat(width=enc.width, height=enc.height, format="yuv420p")
                out.pts = frame.pts if frame.pts is not None else pts
                out.time_base = Fraction(1, 90000)
                out.pict_type = av.video.frame.PictureType.NONE
                self._out.packets(enc.encode(out), arrival)
        # the encoder holds no frames (zerolatency); nothing to flush


class BaseStreams(Protocol):
    """What a derived stream needs of the hub: the base stream, and whether it is
    transcoded already."""

    async def subscribe(self, key: StreamKey, timeout: float = ...) -> Subscription: ...

    def is_transcoded(self, key: StreamKey) -> bool: ...


class DerivedTranscodeSource:
    """H.264 made from another stream of the hub (the same camera's plain stream)."""

    def __init__(self, hub: BaseStreams, base: StreamKey, settings: TranscodeSettings, *,
                 timeout: float = 10.0) -> None:
        self._hub = hub
        self._base = base
        self._settings = settings
        self._timeout = timeout

    async def run(self, sink: UnitSink) -> None:
        sub = await self._hub.subscribe(self._base, timeout=self._timeout)
        try:
            if self._hub.is_transcoded(self._base):
                # the camera does not send H.264: its plain stream is transcoded already
                sink.on_info(sub.info, True)
                for unit in sub.initial_gop:
                    sink.on_unit(unit.data, unit.pts, unit.keyframe, unit.arrival)
                while True:
                    unit = await sub.get()
                    sink.on_unit(unit.data, unit.pts, unit.keyframe, unit.arrival)
            info = sub.info
            worker: Worker

            def on_info(vi: VideoInfo) -> None:
                worker.post(sink.on_info, vi, True)

            def on_unit(data: bytes, pts: int, key: bool, arrival: float) -> None:
                worker.post(sink.on_unit, data, pts, key, arrival)

            transcoder = Transcoder(info.codec, None, self._settings, info.fps, on_info, on_unit)
            worker = Worker(f"transcode {self._base}", lambda w: transcoder.run(w.stop))
            task = asyncio.create_task(worker.run())
            try:
                for unit in sub.initial_gop:
                    transcoder.feed(unit.data, unit.pts, unit.keyframe, unit.arrival)
                while not task.done():
                    getter = asyncio.ensure_future(sub.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        break
                    unit = getter.result()
                    transcoder.feed(unit.data, unit.pts, unit.keyframe, time.monotonic())
            except StreamClosed:
                raise SourceUnavailable(f"[stream {self._base}] base stream ended",
                                        reason="unreachable") from None
            finally:
                transcoder.finish()
                if not task.done():
                    task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            raise SourceUnavailable("transcoder stopped", reason="unsupported")
        except StreamClosed:
            raise SourceUnavailable(f"[stream {self._base}] base stream ended",
                                    reason="unreachable") from None
        finally:
            sub.close()
