"""Keyframes to small pictures for :mod:`camrelay.health.diagnosis` (PyAV; blocking).

Only keyframes are decoded (they need no other picture) and each is scaled down
before any analysis: the checks cost a few milliseconds whatever the camera's size.
Call these off the event loop.
"""

from __future__ import annotations

from typing import Any

import av

from camrelay.errors import SourceUnavailable
from camrelay.health.diagnosis import Picture

ANALYSIS_WIDTH = 320


def downscale(frame: Any, width: int = ANALYSIS_WIDTH) -> Picture:
    """``frame`` (an ``av.VideoFrame``) as RGB, ``width`` wide, aspect kept (even height)."""
    height = max(16, round(frame.height * width / max(frame.width, 1) / 2) * 2)
    picture: Picture = frame.to_ndarray(width=width, height=height, format="rgb24",
                                        interpolation="AREA")
    return picture


def decode_keyframe(data: bytes, codec: str = "h264") -> Any:
    """Decode one keyframe access unit (Annex-B with its parameter sets) to a frame."""
    try:
        ctx: Any = av.CodecContext.create(codec, "r")
        frames = list(ctx.decode(av.Packet(data)))
        frames += list(ctx.decode(None))
    except (av.error.FFmpegError, ValueError) as exc:
        raise SourceUnavailable(f"the keyframe does not decode: {exc}", reason="decode") from None
    if not frames:
        raise SourceUnavailable("the keyframe decodes to no picture", reason="decode")
    return frames[0]
