"""Probe a camera stream: what it sends and how fast it starts (``camrelay camera probe``).

Opens its own RTSP session (a technician's check, not a viewer), reads until the first
keyframe and then ``sample_seconds`` of video, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from camrelay.errors import SourceUnavailable
from camrelay.redact import strip_credentials
from camrelay.relay.sources.ffmpeg import ffmpeg_options, map_error, url_with_credentials
from camrelay.relay.stream import SourceSpec


@dataclass(frozen=True, slots=True)
class ProbeResult:
    url: str  # without credentials
    codec: str  # FFmpeg's name: "h264", "hevc", "mjpeg", ...
    profile: str | None  # e.g. "Constrained Baseline", "Main"
    width: int
    height: int
    fps: float | None  # measured from timestamps, else what the stream declares
    bitrate: int | None  # bits per second over the sample
    time_to_first_keyframe: float  # seconds from connecting to the first keyframe
    keyframe_interval: float | None  # seconds between the first two keyframes seen
    transport: str
    needs_transcode: bool  # not H.264: camrelay will transcode it for WebRTC


def _open(spec: SourceSpec, started: float) -> Any:
    try:
        container: Any = av.open(url_with_credentials(spec), options=ffmpeg_options(spec),
                                 timeout=(spec.connect_timeout, spec.read_timeout))
    except (av.error.FFmpegError, OSError) as exc:
        raise map_error(exc, spec, elapsed=time.monotonic() - started) from None
    if not container.streams.video:
        container.close()
        raise SourceUnavailable(f"{strip_credentials(spec.url)}: the stream has no video track",
                                reason="no_video")
    return container


def _probe(spec: SourceSpec, sample_seconds: float) -> ProbeResult:
    url = strip_credentials(spec.url)
    started = time.monotonic()
    container = _open(spec, started)
    try:
        stream = container.streams.video[0]
        cc = stream.codec_context
        tb: Fraction = stream.time_base or Fraction(1, 90000)
        first_key: float | None = None
        key_pts: list[int] = []
        pts_seen: list[int] = []
        size = 0
        try:
            for packet in container.demux(stream):
                now = time.monotonic()
                if packet.size == 0:
                    continue
                if first_key is None:
                    if not packet.is_keyframe:
                        if now - started > spec.connect_timeout + sample_seconds:
                            break
                        continue
                    first_key = now - started
                if packet.pts is not None:
                    if packet.is_keyframe and (not key_pts or packet.pts != key_pts[-1]):
                        key_pts.append(packet.pts)
                    if not pts_seen or packet.pts != pts_seen[-1]:
                        pts_seen.append(packet.pts)
                size += packet.size
                if now - started - first_key >= sample_seconds and len(pts_seen) > 2:
                    break
        except (av.error.FFmpegError, OSError) as exc:
            raise map_error(exc, spec, "reading") from None
        if first_key is None:
            raise SourceUnavailable(f"{url}: no keyframe within the probe time",
                                    reason="timeout")
        fps: float | None = None
        bitrate: int | None = None
        if len(pts_seen) > 2:
            span = float((max(pts_seen) - min(pts_seen)) * tb)
            if span > 0:
                fps = round((len(pts_seen) - 1) / span, 2)
                bitrate = int(size * 8 / (span * len(pts_seen) / (len(pts_seen) - 1)))
        if fps is None and stream.average_rate:
            fps = float(stream.average_rate)
        interval = float((key_pts[1] - key_pts[0]) * tb) if len(key_pts) > 1 else None
        return ProbeResult(
            url=url, codec=cc.name, profile=cc.profile, width=cc.width, height=cc.height,
            fps=fps, bitrate=bitrate, time_to_first_keyframe=round(first_key, 3),
            keyframe_interval=interval, transport=spec.transport,
            needs_transcode=cc.name != "h264",
        )
    finally:
        container.close()


def first_keyframe(spec: SourceSpec, timeout: float) -> Any:
    """Open ``spec``, decode its first keyframe (an ``av.VideoFrame``) and close; blocking.

    The health check of a camera nobody watches: RTSP reachable, credentials accepted, a
    keyframe within ``timeout`` seconds, else :class:`SourceUnavailable` with the reason."""
    url = strip_credentials(spec.url)
    started = time.monotonic()
    container = _open(spec, started)
    try:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if time.monotonic() - started > timeout:
                    break
                if packet.size == 0 or not packet.is_keyframe:
                    continue
                for frame in stream.codec_context.decode(packet):
                    return frame
        except (av.error.FFmpegError, OSError) as exc:
            raise map_error(exc, spec, "reading") from None
        raise SourceUnavailable(f"{url}: no keyframe within {timeout:g} s", reason="timeout")
    finally:
        container.close()


async def probe(spec: SourceSpec, sample_seconds: float = 2.0) -> ProbeResult:
    """Connect to ``spec``, describe its video, or raise :class:`SourceUnavailable`."""
    if not spec.url.startswith(("rtsp://", "rtsps://")):
        raise SourceUnavailable("only RTSP sources can be probed", reason="unsupported")
    return await asyncio.to_thread(_probe, spec, sample_seconds)
