"""Still pictures from the GOP cache: decode the cached units and encode one JPEG.

No second connection to the camera: the hub's cached GOP (``Hub.latest_gop``) starts
with a keyframe, so decoding it from the front reaches the newest picture.  Decoding
and encoding run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from fractions import Fraction
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext

from camrelay.errors import SourceUnavailable
from camrelay.relay.media import AccessUnit


def decode_last_frame(gop: Sequence[AccessUnit], codec: str = "h264") -> av.VideoFrame:
    """Decode ``gop`` from its first unit and return the newest picture (blocking)."""
    if not gop:
        raise SourceUnavailable("no picture cached for this stream yet", reason="no_video")
    dec = cast(VideoCodecContext, av.CodecContext.create(codec, "r"))
    last: av.VideoFrame | None = None
    for unit in gop:
        packet = av.Packet(unit.data)
        packet.pts = unit.pts
        try:
            for frame in dec.decode(packet):
                last = frame
        except av.error.FFmpegError:
            continue
    try:
        for frame in dec.decode(None):
            last = frame
    except av.error.FFmpegError:
        pass
    if last is None:
        raise SourceUnavailable("the cached pictures cannot be decoded", reason="no_video")
    return last


def encode_jpeg(frame: av.VideoFrame, quality: int = 85) -> bytes:
    """One JPEG from a decoded picture (blocking)."""
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = frame.width, frame.height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    # qscale 2 (best) .. 31 (worst), mapped from a 1..100 quality
    qscale = max(2, min(31, round(31 - (quality / 100) * 29)))
    enc.options = {"qmin": str(qscale), "qmax": str(qscale)}
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    data = b"".join(bytes(p) for p in enc.encode(picture))
    data += b"".join(bytes(p) for p in enc.encode(None))
    return data


def _snapshot(gop: tuple[AccessUnit, ...], quality: int) -> bytes:
    return encode_jpeg(decode_last_frame(gop), quality)


async def snapshot_jpeg(gop: Sequence[AccessUnit], quality: int = 85) -> bytes:
    """JPEG of the newest picture in ``gop`` (H.264 Annex-B starting with a keyframe)."""
    return await asyncio.to_thread(_snapshot, tuple(gop), quality)
