"""The part of an SDP session description (RFC 8866) an RTSP client needs to pull video.

Only what SETUP and the depacketiser use: each media's type, payload type, encoding,
clock rate, control attribute, format parameters, frame rate and direction (an ONVIF
back-channel is the audio media the camera describes ``sendonly``).  Pure and lenient:
lines that cannot be read are skipped (a description with no usable media has none).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_SDP_LINES = 2000


@dataclass(frozen=True, slots=True)
class MediaDescription:
    media: str  # "video", "audio", "application", ...
    payload_type: int
    encoding: str  # upper case from a=rtpmap ("H264"); "" when the payload type has no rtpmap
    clock_rate: int
    control: str | None
    fmtp: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    framerate: float | None = None
    direction: str = "sendrecv"  # "sendonly": the camera receives it (a back-channel)

    def parameter_sets(self) -> tuple[bytes | None, bytes | None]:
        """H.264: the first SPS and PPS of ``sprop-parameter-sets``, if any."""
        sps = pps = None
        for item in self.fmtp.get("sprop-parameter-sets", "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                nal = base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            if not nal:
                continue
            kind = nal[0] & 0x1F
            if kind == 7 and sps is None:
                sps = nal
            elif kind == 8 and pps is None:
                pps = nal
        return sps, pps


@dataclass(frozen=True, slots=True)
class SessionDescription:
    control: str | None  # session-level (aggregate) control attribute
    media: tuple[MediaDescription, ...]

    def first_video(self) -> MediaDescription | None:
        return next((m for m in self.media if m.media == "video"), None)

    def first_audio(self) -> MediaDescription | None:
        return next((m for m in self.media if m.media == "audio" and m.direction != "sendonly"),
                    None)

    def backchannel(self) -> MediaDescription | None:
        """The ONVIF audio back-channel in G.711 (8 kHz), if the camera describes one: an
        audio media that is ``sendonly`` from the client's side of the description."""
        return next((m for m in self.media if m.media == "audio" and m.direction == "sendonly"
                     and m.encoding in ("PCMU", "PCMA") and m.clock_rate == 8000), None)


@dataclass
class _Media:
    media: str
    formats: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)
    control: str | None = None
    framerate: float | None = None
    direction: str | None = None

    def build(self, direction: str) -> MediaDescription:
        # the first format we understand (H.264, an audio codec we relay), else the first
        pt = next((f for f in self.formats
                   if self.rtpmap.get(f, _STATIC.get(f, ("",)))[0] in _PREFERRED),
                  self.formats[0])
        encoding, rate = self.rtpmap.get(pt, _STATIC.get(pt, ("", 90000)))
        return MediaDescription(self.media, pt, encoding, rate, self.control,
                                self.fmtp.get(pt, {}), self.framerate,
                                self.direction or direction)


# RFC 3551 static payload types that cameras send without an rtpmap
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
_PREFERRED = frozenset({"H264", "PCMA", "PCMU", "MPEG4-GENERIC"})
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})


def _fmtp(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in value.split(";"):
        name, sep, val = item.strip().partition("=")
        if name and sep:
            params[name.strip().lower()] = val.strip()
    return params


def parse_sdp(text: str) -> SessionDescription:
    lines = text.splitlines()[:MAX_SDP_LINES]
    session_control: str | None = None
    session_direction = "sendrecv"
    medias: list[_Media] = []
    for raw in lines:
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue  # cameras write sloppy SDP: what cannot be read is skipped
        kind, value = line[0], line[2:]
        current = medias[-1] if medias else None
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                medias.append(_Media(parts[0].lower() if parts else "", [-1]))
                continue
            formats = [int(f) for f in parts[3:] if f.isdigit() and int(f) < 128]
            if formats:
                medias.append(_Media(parts[0].lower(), formats))
            else:  # e.g. a non-RTP media: keep a placeholder so its attributes go nowhere
                medias.append(_Media(parts[0].lower(), [-1]))
        elif kind == "a":
            name, _, attr = value.partition(":")
            name = name.strip().lower()
            if name in _DIRECTIONS:
                if current is None:
                    session_direction = name
                else:
                    current.direction = name
            elif name == "control":
                if current is None:
                    session_control = attr.strip()
                else:
                    current.control = attr.strip()
            elif current is None:
                continue
            elif name == "rtpmap":
                pt_text, _, spec = attr.strip().partition(" ")
                encoding, _, rest = spec.strip().partition("/")
                rate = rest.partition("/")[0]
                if pt_text.isdigit() and rate.isdigit() and int(rate) > 0:
                    current.rtpmap[int(pt_text)] = (encoding.upper(), int(rate))
            elif name == "fmtp":
                pt_text, _, params = attr.strip().partition(" ")
                if pt_text.isdigit():
                    current.fmtp[int(pt_text)] = _fmtp(params)
            elif name in ("framerate", "x-framerate"):
                try:
                    rate_value = float(attr.strip())
                except ValueError:
                    continue
                if 0 < rate_value <= 1000:
                    current.framerate = rate_value
    media = tuple(m.build(session_direction) for m in medias if m.formats != [-1])
    return SessionDescription(session_control, media)
