"""Values that flow through the relay: stream keys, video parameters, access units.

These are the seam between sources, the hub and sinks.  They are frozen so one
instance can be shared by every consumer of a stream without copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Variant = Literal["main", "sub"]
WHIP_SCHEME = "whip:"  # a field camera's stream address (catalog.models.FIELD_URL)


@dataclass(frozen=True, slots=True)
class StreamKey:
    """One upstream stream of one camera.

    ``transcode`` asks for H.264 made by camrelay (once per camera, shared) for viewers
    that cannot play what the camera sends as is.  A non-H.264 camera is always
    transcoded, whatever this flag says.
    """

    camera_id: int
    variant: Variant = "main"
    transcode: bool = False

    def __str__(self) -> str:
        suffix = "+h264" if self.transcode else ""
        return f"{self.camera_id}/{self.variant}{suffix}"


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a stream carries, as far as a sink needs to know to negotiate it."""

    codec: str  # "h264" after any transcoding; "hevc", "mjpeg", "mpeg4" upstream
    width: int
    height: int
    fps: float | None
    profile_level_id: str | None = None  # H.264: six hex digits from the SPS, e.g. "42e01f"
    sps: bytes | None = None
    pps: bytes | None = None


VIDEO_CLOCK = 90_000  # an access unit's ``pts`` runs at this rate (Hz)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One coded picture.

    H.264 is Annex-B with SPS and PPS in front of every keyframe.  ``pts`` is on a
    90 kHz clock and is continuous and increasing across source reconnects (the
    stream rebases each new upstream timeline), so sinks never renegotiate.
    ``arrival`` is ``time.monotonic()`` when the unit came from the camera; ``seq``
    counts units of the stream.
    """

    data: bytes
    pts: int
    keyframe: bool
    arrival: float
    seq: int


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """A camera's audio track, as its RTSP description states it.

    ``codec`` is ``"PCMA"``, ``"PCMU"`` (G.711, passed through as is), ``"AAC"``
    (MPEG-4 AAC, RFC 3640 AU units; ``config`` is its AudioSpecificConfig) or ``"OPUS"``
    (a WHIP publisher's or a lower camrelay's, 48 kHz, passed through as is).
    """

    codec: str
    clock_rate: int
    channels: int = 1
    config: bytes | None = None


@dataclass(frozen=True, slots=True)
class AudioUnit:
    """One coded audio frame (G.711: one RTP payload; AAC: one access unit).

    ``pts`` is on the track's own clock (``AudioInfo.clock_rate``) and continuous across
    source reconnects, like video's."""

    data: bytes
    pts: int
    arrival: float


@dataclass(frozen=True, slots=True)
class Position:
    """Where a publishing field device says it is (WGS 84), and when it was there."""

    latitude: float
    longitude: float
    at: datetime  # the device's time
    received: datetime  # ours
