"""Check an SDP offer before aiortc sees it.

aiortc parses almost anything and fails late (``AssertionError`` on a truncated offer,
``ValueError`` on a bad number), so the WHEP endpoint refuses what it cannot use here
with a ``BadRequest`` that names the problem.  This is a structural check of what a
WHEP offer must carry (RFC 8866 session lines, RFC 8839 ICE credentials, RFC 8122
fingerprint, RFC 4145 setup, H.264 per RFC 6184), not a full SDP grammar; the sink
still guards its aiortc calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from camrelay.errors import BadRequest, UnsupportedMediaType
from camrelay.settings import Settings

SDP_TYPE = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024
MAX_LINES = 2000

_LINE = re.compile(r"^[a-z]=[\x20-\x7e\t]*$")
_MLINE = re.compile(r"^m=(?P<kind>[a-z]+) (?P<port>\d+)(?:/\d+)? (?P<proto>\S+)(?P<fmts>( \S+)+)$")
_RTPMAP = re.compile(r"^a=rtpmap:(?P<pt>\d{1,3}) (?P<name>[A-Za-z0-9\-_.]+)/(?P<rate>\d+)")
_FINGERPRINT = re.compile(r"^a=fingerprint:(sha-1|sha-2\d\d|sha-384|sha-512) [0-9A-Fa-f:]+$",
                          re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class OfferSummary:
    video_mlines: int
    audio_mlines: int
    h264_payload_types: tuple[int, ...]


async def read_offer(request: web.Request, config: WhepConfig, *, kind: str = "video"
                     ) -> str:
    """The request's SDP offer as text: 415 unless ``application/sdp``, 400 unless usable
    (``kind``: the m-line it must carry, ``"audio"`` for a talk-back offer)."""
    if request.content_type != SDP_TYPE:
        raise UnsupportedMediaType(f"send the offer as {SDP_TYPE}, "
                                   f"not {request.content_type or 'nothing'}")
    if request.content_length is not None and request.content_length > config.max_offer_bytes:
        raise BadRequest(f"the SDP offer is larger than {config.max_offer_bytes} bytes")
    body = await request.content.read(config.max_offer_bytes + 1)
    return check_offer(body, max_bytes=config.max_offer_bytes, kind=kind)


def check_offer(body: bytes | str, *, max_bytes: int = MAX_OFFER_BYTES, kind: str = "video"
                ) -> str:
    """Return the offer as text if it is usable, else raise ``BadRequest``."""
    if isinstance(body, bytes):
        if len(body) > max_bytes:
            raise BadRequest(f"the SDP offer is larger than {max_bytes} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the SDP offer is not UTF-8 text") from None
    else:
        text = body
        if len(text.encode("utf-8")) > max_bytes:
            raise BadRequest(f"the SDP offer is larger than {max_bytes} bytes")
    summarize_offer(text, kind=kind)
    return text


def summarize_offer(text: str, *, kind: str = "video") -> OfferSummary:
    """Check the offer's session lines and every m-line of ``kind`` (which it must have;
    a video offer must carry H.264)."""
    wanted = kind
    if not text.strip():
        raise BadRequest("the SDP offer is empty")
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if len(lines) > MAX_LINES:
        raise BadRequest(f"the SDP offer has more than {MAX_LINES} lines")
    for number, line in enumerate(lines, 1):
        if not _LINE.match(line):
            raise BadRequest(f"SDP line {number} is not of the form x=value: {line[:40]!r}")
    if lines[0] != "v=0":
        raise BadRequest("the SDP offer must start with v=0")

    session: list[str] = []
    media: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)

    for prefix, name in (("o=", "origin (o=)"), ("s=", "session name (s=)"),
                         ("t=", "timing (t=)")):
        if not any(line.startswith(prefix) for line in session):
            raise BadRequest(f"the SDP offer has no {name} line")
    origin = next(line for line in session if line.startswith("o="))
    if len(origin[2:].split()) != 6:
        raise BadRequest("the SDP origin (o=) line must have six fields")

    def session_has(prefix: str) -> bool:
        return any(line.startswith(prefix) for line in session)

    video = audio = 0
    h264: list[int] = []
    for block in media:
        m = _MLINE.match(block[0])
        if m is None:
            raise BadRequest(f"malformed m= line: {block[0][:60]!r}")
        kind = m.group("kind")
        if kind == "audio":
            audio += 1
        elif kind == "video":
            video += 1
        if kind != wanted:
            continue
        fmts = m.group("fmts").split()
        if not all(f.isdigit() and int(f) < 128 for f in fmts):
            raise BadRequest(f"the {kind} m= line lists payload types that are not numbers "
                             "< 128")
        if "RTP/" not in m.group("proto") or "SAVPF" not in m.group("proto"):
            raise BadRequest(f"{kind} transport {m.group('proto')} is not UDP/TLS/RTP/SAVPF")

        def has(prefix: str, block: list[str] = block) -> bool:
            return any(line.startswith(prefix) for line in block) or session_has(prefix)

        for prefix, what in (("a=ice-ufrag:", "a=ice-ufrag"), ("a=ice-pwd:", "a=ice-pwd"),
                             ("a=fingerprint:", "a=fingerprint"), ("a=setup:", "a=setup")):
            if not has(prefix):
                raise BadRequest(f"the {kind} m-line has no {what} (media or session level)")
        fingerprints = [line for line in block + session if line.startswith("a=fingerprint:")]
        if not all(_FINGERPRINT.match(f) for f in fingerprints):
            raise BadRequest("malformed a=fingerprint line")
        setup = next(line for line in block + session if line.startswith("a=setup:"))
        if setup[len("a=setup:"):] not in ("actpass", "active", "passive"):
            raise BadRequest(f"unsupported {setup}")
        for line in block:
            r = _RTPMAP.match(line)
            if line.startswith("a=rtpmap:") and r is None:
                raise BadRequest(f"malformed {line[:60]!r}")
            if line.startswith("a=candidate:") and not _candidate_ok(line):
                raise BadRequest(f"malformed {line[:60]!r}")
            if r is not None and r.group("name").upper() == "H264":
                if r.group("rate") != "90000":
                    raise BadRequest("H.264 must use a 90000 Hz clock")
                if r.group("pt") in fmts:
                    h264.append(int(r.group("pt")))
    if (video if wanted == "video" else audio) == 0:
        raise BadRequest(f"the SDP offer has no {wanted} m-line")
    if wanted == "video" and not h264:
        raise BadRequest("the SDP offer has no H.264 (a=rtpmap:<pt> H264/90000) for video")
    return OfferSummary(video, audio, tuple(h264))


def _candidate_ok(line: str) -> bool:
    """RFC 8839: foundation component transport priority address port typ type ..."""
    fields = line[len("a=candidate:"):].split()
    return (len(fields) >= 8 and fields[1].isdigit() and fields[3].isdigit()
            and fields[5].isdigit() and int(fields[5]) < 65536 and fields[6] == "typ")


@dataclass(frozen=True, slots=True)
class WhepConfig:
    """The WHEP endpoint's limits: CORS origins, the largest offer."""

    cors_origins: tuple[str, ...] = ()  # "*" allows any origin
    max_offer_bytes: int = MAX_OFFER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> WhepConfig:
        return cls(cors_origins=tuple(settings.server.cors_origins))
