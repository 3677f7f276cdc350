"""Pull one RTSP stream with PyAV (FFmpeg's client and demuxer) in a worker thread.

Credentials go into the URL only here, and every FFmpeg message passes through
``redact_text`` where the source opens (FFmpeg puts the whole URL, password included,
into its errors).  Timeouts are enforced twice: FFmpeg's socket ``timeout`` /
``rw_timeout`` (microseconds) and PyAV's interrupt deadline (``av.open(timeout=...)``),
so a silent camera ends a blocked read by itself and stopping never leaks a thread.

H.264 leaves as Annex-B access units with SPS/PPS before every IDR picture (taken
in band, or from the SDP when the camera sends them only out of band); packets the
depacketiser split out of one picture are merged back.  Anything else is decoded and
re-encoded to H.264 once (:class:`~camrelay.relay.sources.transcode.Transcoder`).
"""

from __future__ import annotations

import errno
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import av

from camrelay.errors import SourceUnavailable
from camrelay.redact import redact_text, strip_credentials
from camrelay.relay import h264
from camrelay.relay.media import VideoInfo
from camrelay.relay.sources.transcode import Transcoder
from camrelay.relay.stream import SourceSpec, TranscodeSettings, UnitSink
from camrelay.relay.worker import Worker

log = logging.getLogger(__name__)

SUPPORTED = {"h264", "hevc", "mjpeg", "mpeg4"}


class _RedactLibav(logging.Filter):
    """FFmpeg log lines (when PyAV forwards them) can carry URLs with user-info."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  a broken record is logging's business
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logging.getLogger("libav").addFilter(_RedactLibav())


def url_with_credentials(spec: SourceSpec) -> str:
    if spec.username is None and spec.password is None:
        return spec.url
    parts = urlsplit(spec.url)
    user = quote(spec.username or "", safe="")
    password = quote(spec.password or "", safe="")
    userinfo = f"{user}:{password}" if spec.password is not None else user
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def ffmpeg_options(spec: SourceSpec) -> dict[str, str]:
    micros = str(int(spec.read_timeout * 1_000_000))
    return {
        "rtsp_transport": spec.transport,
        "timeout": micros,  # RTSP socket I/O timeout
        "rw_timeout": micros,
        "allowed_media_types": "video",
        # start on the first packet: the SDP's parameter sets describe the stream (and
        # the first keyframe is decoded for its size when they do not)
        "analyzeduration": "0",
        "probesize": "32",
    }


_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_STATUS_AUTH = re.compile(r"\b40[13]\b")
_STATUS_404 = re.compile(r"\b404\b")


def map_error(exc: BaseException, spec: SourceSpec, during: str = "connecting",
              elapsed: float = 0.0) -> SourceUnavailable:
    """An FFmpeg/OS error -> SourceUnavailable with a reason and a redacted message.

    FFmpeg reports a camera that accepts the connection and never answers as "invalid
    data"; ``elapsed`` (seconds spent) tells that apart from a real protocol error."""
    text = redact_text(str(exc), spec.password)
    url = strip_credentials(spec.url)
    # what FFmpeg said, without the URL it may quote: a port such as :54013 holds "401"
    low = _URL.sub("<url>", text).lower()
    code = getattr(exc, "errno", None)
    # check the exception's kind before its text: FFmpeg's message may quote the URL, and
    # with it options such as "?timeout=…" that must not decide the reason
    refused = isinstance(exc, ConnectionError) or code in (
        errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET,
        errno.EPIPE) or "refused" in low or "no route" in low or "unreachable" in low
    if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)) or (
            _STATUS_AUTH.search(low) or "unauthorized" in low):
        reason, what = "auth", "the camera refused the credentials"
    elif refused:
        reason, what = "unreachable", "cannot connect to the camera"
    elif isinstance(exc, (av.error.ExitError, TimeoutError)) or code == errno.ETIMEDOUT or (
            "timed out" in low) or (
            isinstance(exc, av.error.InvalidDataError)
            and elapsed >= 0.9 * min(spec.connect_timeout, spec.read_timeout)):
        reason, what = "timeout", f"no answer within the timeout while {during}"
    elif isinstance(exc, av.error.HTTPNotFoundError) or _STATUS_404.search(low):
        reason, what = "unreachable", "the camera has no stream at this path"
    else:
        reason, what = "unreachable", f"error while {during}"
    return SourceUnavailable(f"{url}: {what} ({text})", reason=reason)


def picture_size(keyframe: bytes) -> tuple[int, int]:
    """Width and height of an H.264 keyframe, by decoding it; (0, 0) when it does not decode."""
    dec = av.CodecContext.create("h264", "r")
    try:
        frames = dec.decode(av.Packet(keyframe)) + dec.decode(None)
    except av.error.FFmpegError:
        return 0, 0
    return (frames[0].width, frames[0].height) if frames else (0, 0)


@dataclass
class _Pending:
    nals: list[bytes] = field(default_factory=list)
    pts: int | None = None
    arrival: float = 0.0
    packet_key: bool = False


class FfmpegSource:
    """One RTSP session per :meth:`run`; see the module doc."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    async def run(self, sink: UnitSink) -> None:
        worker = Worker(f"rtsp {strip_credentials(self.spec.url)}",
                        lambda w: self._session(w, sink))
        await worker.run()

    # --- in the worker thread -------------------------------------------------
    def _open(self) -> Any:
        spec = self.spec
        started = time.monotonic()
        try:
            return av.open(url_with_credentials(spec), options=ffmpeg_options(spec),
                           timeout=(spec.connect_timeout, spec.read_timeout))
        except (av.error.FFmpegError, OSError) as exc:
            raise map_error(exc, spec, elapsed=time.monotonic() - started) from None

    def _session(self, worker: Worker, sink: UnitSink) -> None:
        spec = self.spec
        url = strip_credentials(spec.url)
        log.debug("connecting to %s over %s", url, spec.transport)
        container = self._open()
        try:
            if worker.stop.is_set():
                return
            if not container.streams.video:
                raise SourceUnavailable(f"{url}: the stream has no video track", reason="no_video")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in SUPPORTED:
                raise SourceUnavailable(f"{url}: video codec {codec!r} is not supported",
                                        reason="unsupported")
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            tb = stream.time_base or Fraction(1, 90000)
            extradata = stream.codec_context.extradata
            if codec == "h264":
                self._pump_h264(worker, sink, container, stream, tb, fps, extradata)
            else:
                self._pump_transcode(worker, sink, container, stream, tb, fps, extradata, codec)
        except (av.error.FFmpegError, OSError) as exc:
            if worker.stop.is_set():
                return
            raise map_error(exc, spec, "reading") from None
        finally:
            container.close()

    def _packets(self, worker: Worker, container: Any, stream: Any,
                 tb: Fraction, codec: str) -> Any:
        """Yield (nals or raw bytes, pts90k or None, packet keyframe, arrival), merged
        into whole pictures."""
        pending: _Pending | None = None
        step = 3600
        last_pts: int | None = None
        splittable = codec in ("h264", "hevc")
        writer = h264.AnnexBWriter(stream.codec_context.extradata) if codec == "h264" else None
        for packet in container.demux(stream):
            if worker.stop.is_set():
                return
            if packet.size == 0:
                continue
            arrival = time.monotonic()
            raw = bytes(packet)
            ts = packet.pts if packet.pts is not None else packet.dts
            pts = int(ts * tb * 90000) if ts is not None else None
            if not splittable:
                yield [raw], pts if pts is not None else (last_pts or 0) + step, packet.is_keyframe, arrival
                last_pts = pts
                continue
            nals = writer.nals(raw) if writer is not None else h264.split_annexb(raw)
            vcl = [n for n in nals if h264.is_vcl(n, codec)]
            if pending is not None and (
                    (pts is not None and pts == pending.pts)
                    or (vcl and not h264.starts_picture(vcl[0], codec))
                    or not vcl):
                pending.nals += nals
                pending.packet_key |= packet.is_keyframe
                if pending.pts is None:
                    pending.pts = pts
                continue
            if pending is not None:
                if pending.pts is None:
                    pending.pts = (pts - step) if pts is not None else (last_pts or 0) + step
                if last_pts is not None and pending.pts > last_pts:
                    step = min(max(pending.pts - last_pts, 900), 18000)
                last_pts = pending.pts
                yield pending.nals, pending.pts, pending.packet_key, pending.arrival
            pending = _Pending(nals, pts, arrival, packet.is_keyframe)

    def _pump_h264(self, worker: Worker, sink: UnitSink, container: Any, stream: Any,
                   tb: Fraction, fps: float | None, extradata: bytes | None) -> None:
        writer = h264.AnnexBWriter(extradata)
        started = False
        width, height = stream.codec_context.width, stream.codec_context.height
        for nals, pts, _pkey, arrival in self._packets(worker, container, stream, tb, "h264"):
            data, key = writer.write(nals)
            if not started:
                if not key:
                    continue
                started = True
                sps = writer.sps
                if not width or not height:
                    width, height = picture_size(data)
                worker.post(sink.on_info, VideoInfo(
                    codec="h264", width=width, height=height, fps=fps,
                    profile_level_id=h264.profile_level_id(sps) if sps else None,
                    sps=sps, pps=writer.pps), False)
            worker.post(sink.on_unit, data, pts, key, arrival)

    def _pump_transcode(self, worker: Worker, sink: UnitSink, container: Any, stream: Any,
                        tb: Fraction, fps: float | None, extradata: bytes | None,
                        codec: str) -> None:
        settings = self.spec.transcode or TranscodeSettings()

        def on_info(info: VideoInfo) -> None:
            worker.post(sink.on_info, info, True)

        def on_unit(data: bytes, pts: int, key: bool, arrival: float) -> None:
            worker.post(sink.on_unit, data, pts, key, arrival)

        transcoder = Transcoder(codec, extradata, settings, fps, on_info, on_unit)
        thread = threading.Thread(target=transcoder.run, args=(worker.stop,),
                                  name=f"{worker.name} transcode")
        thread.start()
        started = False
        try:
            for nals, pts, pkey, arrival in self._packets(worker, container, stream, tb, codec):
                if codec in ("h264", "hevc"):
                    key = h264.is_keyframe_nals(nals, codec)
                    data = h264.annexb(nals)
                else:
                    key, data = pkey, nals[0]
                if not started:
                    if not key:
                        continue
                    started = True
                transcoder.feed(data, pts, key, arrival)
        finally:
            transcoder.finish()
            thread.join()
