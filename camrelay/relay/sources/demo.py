"""The demo source: a moving test pattern with a clock and a burnt-in frame number.

``demo:`` or ``demo:?width=640&height=360&fps=25&gop=1`` (gop in seconds).  Encoded with
libx264 constrained baseline in a worker thread, paced in real time; used by
``serve --demo`` and tests.  Frame numbers count from 0 for each session, see
:mod:`camrelay.relay.sources.pattern`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import av

from camrelay.errors import SourceUnavailable
from camrelay.relay.sources.pattern import make_frame
from camrelay.relay.sources.transcode import H264Output, new_h264_encoder
from camrelay.relay.stream import SourceSpec, TranscodeSettings, UnitSink
from camrelay.relay.worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoSource:
    width: int = 640
    height: int = 360
    fps: float = 25.0
    gop_seconds: float = 1.0
    bitrate: int | None = None

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> DemoSource:
        query = parse_qs(urlsplit(spec.url).query)

        def number(name: str, default: float) -> float:
            try:
                return float(query[name][0]) if name in query else default
            except ValueError:
                raise SourceUnavailable(f"demo source: {name} must be a number",
                                        reason="unsupported") from None

        width = int(number("width", 640))
        height = int(number("height", 360))
        fps = number("fps", 25.0)
        if width < 64 or height < 48 or width % 2 or height % 2 or not 0 < fps <= 60:
            raise SourceUnavailable("demo source: bad width/height/fps", reason="unsupported")
        bitrate = spec.transcode.bitrate if spec.transcode else None
        return cls(width, height, fps, number("gop", 1.0), bitrate)

    async def run(self, sink: UnitSink) -> None:
        worker = Worker("demo source", lambda w: self._produce(w, sink))
        await worker.run()

    def _produce(self, worker: Worker, sink: UnitSink) -> None:
        settings = TranscodeSettings(bitrate=self.bitrate, gop_seconds=self.gop_seconds,
                                     preset="ultrafast")
        enc = new_h264_encoder(self.width, self.height, self.fps, settings)
        out = H264Output(
            self.fps,
            lambda info: worker.post(sink.on_info, info, False),
            lambda data, pts, key, arrival: worker.post(sink.on_unit, data, pts, key, arrival),
        )
        out.size = (self.width, self.height)
        start = time.monotonic()
        n = 0
        while not worker.stop.is_set():
            due = start + n / self.fps
            delay = due - time.monotonic()
            if delay > 0 and worker.stop.wait(delay):  # pacing, and an instant stop
                break
            rgb = make_frame(n, self.width, self.height, clock=time.time())
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = round(n * 90000 / self.fps)
            out.packets(enc.encode(frame), time.monotonic())
            n += 1
