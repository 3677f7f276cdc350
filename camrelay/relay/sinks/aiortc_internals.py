"""Every touch of aiortc's, aioice's and pylibsrtp's private parts, in one module.

camrelay lets aiortc negotiate (SDP, ICE, DTLS) and sends the media itself
(:mod:`camrelay.relay.sinks.fanout`).  That needs a few of aiortc's internals; they are
all here, written against aiortc 1.16 (pinned ``>=1.16,<1.17`` in pyproject.toml and
checked at import: another version raises :class:`UnsupportedAiortc`, naming it).

* **Negotiation.**  :func:`register_h264_profiles` adds H.264 Main and High to aiortc's
  codec table (``aiortc.codecs.CODECS``); :func:`set_answer_codecs` sets the answer's
  codecs on the transceiver (``RTCRtpTransceiver._codecs``: the camera's
  ``profile-level-id``, not aiortc's); :func:`parse_offer` and :func:`h264_profile` use
  ``aiortc.sdp``.  :func:`answer_playout_delay` adds libwebrtc's playout-delay header
  extension to the answer when the offer has it (``RTCRtpTransceiver._headerExtensions``:
  aiortc answers only the extensions it knows itself).
* **The media path.**  :func:`attach_media_path` makes the transceiver's sender an
  :class:`ExternalMediaSender`, our subclass of ``RTCRtpSender`` (the object's class is
  set to it: same object, so its SSRCs, its place in the SDP and its track stay as the
  peer connection made them; aiortc offers no way to choose the sender class of a
  transceiver that ``setRemoteDescription`` creates).  Its ``send()``, called by the
  peer connection once DTLS is up, starts none of aiortc's RTP/RTCP tasks: it hands the
  :class:`MediaPath` a :class:`SendLink` with the DTLS transport's SRTP session
  (``RTCDtlsTransport._tx_srtp``), the nominated ICE pair's socket
  (``RTCIceTransport._connection._nominated``, ``CandidatePair.protocol.transport``) and
  SRTCP sending (``_send_rtp``), and registers with the DTLS transport's RTCP router
  (``_register_rtp_sender``) so that RTCP for its SSRC reaches ``MediaPath.handle_rtcp``.
* **Packetization.**  :func:`packetize_h264`: aiortc's STAP-A/FU-A packetizer
  (``H264Encoder._split_bitstream``/``_packetize``).
* **SRTP for the C send path.**  :func:`srtp_protect_address` and :func:`srtp_context`:
  pylibsrtp 1.x's cffi binding (``pylibsrtp._binding``, ``Session._srtp``), each checked
  against the layout we know before use.
* **Receiving coded media (WHIP ingest).**  :func:`tap_encoded_frames` swaps the
  receiver's decoder queue (``RTCRtpReceiver.__decoder_queue``, before ``receive()``
  starts its decoder thread) for an :class:`EncodedTap`: the frames aiortc has
  reassembled from RTP (its jitter buffer) and depayloaded (H.264: Annex-B) reach our
  callback on the loop, with their unwrapped RTP timestamp, and nothing is decoded; the
  idle decoder thread still ends as aiortc stops it.  The receiver's jitter buffer
  (``RTCRtpReceiver.__jitter_buffer``) becomes a :class:`MarkerJitterBuffer`: aiortc's
  hands a frame over only when the next frame's first packet arrives (one frame
  interval late, 40 ms at 25 fps); ours as soon as the packet with the marker bit
  completes it.  :func:`request_picture` sends a PLI
  for the receiver's media SSRC (``_send_rtcp_pli``; the SSRCs from
  ``__remote_streams`` less the RTX ones).
* **Receivers that never receive.**  :func:`install_lazy_bitrate_estimator` makes
  ``aiortc.rtcrtpreceiver.RemoteBitrateEstimator`` a :class:`LazyBitrateEstimator`: every
  video transceiver aiortc creates for an offer gets a receiver, and its estimator built
  a 1000-bucket rate window at once (allocations that set off the collector in a large
  process) though a WHEP viewer's receiver never gets a packet; now it is built on the
  first packet that feeds it (``add``, the receiver's only use of it), for every receiver
  of the process.
* **ICE.**  :func:`install_ice_patches` wraps ``aioice.ice.get_host_addresses`` once so
  that inside :func:`offering_host_addresses` (a context variable) only the configured
  host addresses are offered; other users of aioice in the process are not affected.
  The same one-time patch ends aioice's consent task of a connection closed during ICE
  set-up (an aioice 0.13 race that otherwise leaves the task running for ~30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiortc
import pylibsrtp
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import RemoteBitrateEstimator as _RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, HeaderExtensionsMap, RtpPacket

from camrelay.errors import BadRequest, CamrelayError

PINNED_AIORTC = "1.16"


class UnsupportedAiortc(CamrelayError, ImportError):
    """The installed aiortc is not the version whose internals this module knows."""


def check_aiortc_version(version: str) -> None:
    if version.split(".")[:2] != PINNED_AIORTC.split("."):
        raise UnsupportedAiortc(
            f"camrelay needs aiortc {PINNED_AIORTC}.x (it reaches into aiortc's RTP/SRTP "
            f"transport; pinned in pyproject.toml), but aiortc {version} is installed")


check_aiortc_version(aiortc.__version__)

VIDEO_CLOCK = 90_000
# libwebrtc's RTP header extension by which a sender bounds the receiver's playout delay
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"


# --------------------------------------------------------------------------- negotiation

def register_h264_profiles() -> None:
    """Let aiortc accept offers whose H.264 is only Main or High (idempotent)."""
    from aiortc.codecs import CODECS
    from aiortc.rtcrtpparameters import RTCRtcpFeedback

    video = CODECS["video"]
    known = {str(c.parameters.get("profile-level-id", "")).lower() for c in video}
    pt = max((c.payloadType or 0 for c in video), default=96) + 1
    for plid in ("4d001f", "64001f", "640c1f"):
        if plid in known:
            continue
        video.append(RTCRtpCodecParameters(
            mimeType="video/H264", clockRate=VIDEO_CLOCK, payloadType=pt,
            rtcpFeedback=[RTCRtcpFeedback(type="nack"),
                          RTCRtcpFeedback(type="nack", parameter="pli"),
                          RTCRtcpFeedback(type="goog-remb")],
            parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1",
                        "profile-level-id": plid}))
        video.append(RTCRtpCodecParameters(mimeType="video/rtx", clockRate=VIDEO_CLOCK,
                                           payloadType=pt + 1, parameters={"apt": pt}))
        pt += 2


def h264_profile(plid: str) -> tuple[int, int]:
    """(profile, level) of an H.264 ``profile-level-id``; ``ValueError`` if invalid."""
    from aiortc import sdp as aiortc_sdp

    return cast(tuple[int, int], aiortc_sdp.parse_h264_profile_level_id(plid))


@dataclass(frozen=True, slots=True)
class Offer:
    """What the egress needs of a parsed SDP offer."""

    video_codecs: tuple[RTCRtpCodecParameters, ...]
    has_audio: bool
    audio_codecs: tuple[RTCRtpCodecParameters, ...] = ()  # the first audio m-line's
    audio_direction: str | None = None  # the offerer's view: sendonly, sendrecv, ...
    video_extensions: tuple[RTCRtpHeaderExtensionParameters, ...] = ()  # the video m-line's


def parse_offer(sdp_text: str, *, video_required: bool = True) -> Offer:
    """The offer's first video (and audio) m-line's codecs; ``BadRequest`` if unusable
    (or without video, unless ``video_required`` is False: a talk-back offer)."""
    from aiortc import sdp as aiortc_sdp

    try:
        description = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as err:  # aiortc raises anything (AssertionError, ValueError, ...)
        raise BadRequest(f"the SDP offer cannot be parsed: {type(err).__name__}") from err
    video = next((m for m in description.media if m.kind == "video"), None)
    if video is None and video_required:
        raise BadRequest("the SDP offer has no video m-line")
    video_codecs = () if video is None else tuple(video.rtp.codecs)
    extensions = () if video is None else tuple(video.rtp.headerExtensions)
    audio = next((m for m in description.media if m.kind == "audio"), None)
    if audio is None:
        return Offer(video_codecs, False, video_extensions=extensions)
    return Offer(video_codecs, True, tuple(audio.rtp.codecs),
                 audio.direction or "sendrecv", extensions)


def set_answer_codecs(transceiver: RTCRtpTransceiver,
                      codecs: Sequence[RTCRtpCodecParameters]) -> None:
    """The codecs the answer carries for ``transceiver`` (after setRemoteDescription)."""
    transceiver._codecs = list(codecs)


def answer_playout_delay(transceiver: RTCRtpTransceiver, offer: Offer) -> bool:
    """Answer the offer's playout-delay header extension on ``transceiver`` (after
    setRemoteDescription); False when the offer has none (aiortc viewers, Firefox)."""
    offered = next((e for e in offer.video_extensions if e.uri == PLAYOUT_DELAY_URI), None)
    if offered is None:
        return False
    if all(e.uri != PLAYOUT_DELAY_URI for e in transceiver._headerExtensions):
        transceiver._headerExtensions.append(
            RTCRtpHeaderExtensionParameters(id=offered.id, uri=offered.uri))
    return True


# --------------------------------------------------------------------------- the media path

@dataclass(frozen=True, slots=True)
class SendLink:
    """One viewer's negotiated RTP stream and the transports to send it on (DTLS is up)."""

    ssrc: int
    rtx_ssrc: int
    payload_type: int
    rtx_payload_type: int | None  # None: no RTX negotiated
    mid: str | None
    cname: str | None
    extensions: HeaderExtensionsMap  # the negotiated RTP header extension ids
    srtp: pylibsrtp.Session  # the DTLS transport's outbound SRTP session
    udp: asyncio.DatagramTransport  # the nominated ICE pair's socket
    remote_addr: tuple[Any, ...]
    send_rtcp: Callable[[bytes], Awaitable[None]]  # SRTCP-protected, through DTLS
    connected: Callable[[], bool]  # the DTLS transport is still connected
    detach: Callable[[], None]  # RTCP for ``ssrc`` no longer reaches the media path
    playout_delay_id: int | None = None  # the playout-delay extension's id, if negotiated


class MediaPath(Protocol):
    """What sends a viewer's media instead of aiortc's ``RTCRtpSender`` (the fan-out)."""

    async def start(self, link: SendLink) -> None:
        """Called once, when DTLS is up; ``link`` stays valid until ``link.detach()``."""

    async def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """RTCP from the viewer about ``link.ssrc`` (reports, NACK, PLI/FIR)."""


class ExternalMediaSender(RTCRtpSender):
    """An aiortc sender whose media a :class:`MediaPath` sends (see the module doc)."""

    _media_path: MediaPath
    _keyframe_hook: Callable[[], None]
    _link: SendLink | None

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self._link is not None:
            return
        codec = parameters.codecs[0]
        if codec.payloadType is None:
            raise ValueError("the negotiated codec has no payload type")
        rtx = next((c.payloadType for c in parameters.codecs
                    if is_rtx(c) and str(c.parameters.get("apt")) == str(codec.payloadType)),
                   None)
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        playout_delay = next((e.id for e in parameters.headerExtensions
                              if e.uri == PLAYOUT_DELAY_URI), None)
        dtls = self.transport
        dtls._register_rtp_sender(self, parameters)
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or dtls._tx_srtp is None:
            raise ConnectionError("the ICE/DTLS transport is not connected")
        self._link = SendLink(
            ssrc=self._ssrc, rtx_ssrc=self._rtx_ssrc, payload_type=codec.payloadType,
            rtx_payload_type=rtx, mid=parameters.muxId, cname=parameters.rtcp.cname,
            extensions=extensions, srtp=dtls._tx_srtp, udp=pair.protocol.transport,
            remote_addr=pair.remote_addr, send_rtcp=dtls._send_rtp,
            connected=lambda: dtls.state == "connected",
            detach=lambda: dtls._unregister_rtp_sender(self), playout_delay_id=playout_delay)
        await self._media_path.start(self._link)

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        await self._media_path.handle_rtcp(packet)  # called by the DTLS RTCP router

    def _send_keyframe(self) -> None:
        """aiortc's "the viewer wants a keyframe" (its RTCP handling calls it on PLI/FIR)."""
        self._keyframe_hook()


def attach_media_path(transceiver: RTCRtpTransceiver, path: MediaPath,
                      request_keyframe: Callable[[], None]) -> None:
    """From now on ``path`` sends ``transceiver``'s media (before the answer is made);
    ``request_keyframe`` answers the sender's keyframe requests."""
    sender = transceiver.sender
    if type(sender) is not RTCRtpSender:
        raise TypeError(f"expected aiortc's own RTCRtpSender, got {type(sender).__name__}")
    sender.__class__ = ExternalMediaSender  # same layout: a subclass without state of its own
    external = cast(ExternalMediaSender, sender)
    external._media_path = path
    external._keyframe_hook = request_keyframe
    external._link = None


# --------------------------------------------------------------------------- receiving

EncodedFrameHandler = Callable[[str, bytes, int], None]  # (codec name, data, RTP timestamp)


class EncodedTap:
    """Stands in for an ``RTCRtpReceiver``'s decoder queue (see the module doc).

    ``put`` is called by the receiver on the loop with ``(codec, JitterFrame)``; the
    decoder thread blocks in ``get`` until aiortc stops it with ``put(None)``."""

    def __init__(self, handler: EncodedFrameHandler) -> None:
        self._handler = handler
        self._end: queue.Queue[None] = queue.Queue()

    def put(self, item: tuple[RTCRtpCodecParameters, Any] | None) -> None:
        if item is None:
            self._end.put(None)
            return
        codec, frame = item
        self._handler(codec.name, bytes(frame.data), int(frame.timestamp))

    def get(self) -> None:
        return self._end.get()


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer that hands a frame over when its marker packet completes it
    (all its packets present from the buffer's origin), not when the next frame starts.
    A frame whose marker packet was lost still ends at the next frame's first packet."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None  # a gap: wait for the packet (NACK) or the buffer's overflow
            if timestamp is not None and packet.timestamp != timestamp:
                return self._take(packets, timestamp, count)
            timestamp = packet.timestamp
            packets.append(packet)
            if packet.marker:
                return self._take(packets, timestamp, count + 1)
        return None

    def _take(self, packets: list[RtpPacket], timestamp: int, count: int) -> JitterFrame:
        frame = JitterFrame(data=b"".join(getattr(p, "_data", b"") for p in packets),
                            timestamp=timestamp)
        self.remove(count)
        return frame


def tap_encoded_frames(receiver: RTCRtpReceiver, handler: EncodedFrameHandler) -> None:
    """From now on ``receiver`` hands ``handler`` its coded frames instead of decoding
    them, each as soon as its marker packet arrives; call after ``setRemoteDescription``
    (or ``addTransceiver``), before the connection starts receiving."""
    attribute = "_RTCRtpReceiver__decoder_queue"
    current = getattr(receiver, attribute, None)
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if not isinstance(current, queue.Queue) or type(buffer) is not JitterBuffer or \
            getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None:
        raise TypeError("the receiver is not an unstarted aiortc 1.16 RTCRtpReceiver")
    setattr(receiver, attribute, EncodedTap(handler))
    if buffer._is_video:
        buffer.__class__ = MarkerJitterBuffer  # same layout: a subclass without state


async def request_picture(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the publisher of ``receiver``'s media; False if none is known yet."""
    remote: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    media = [ssrc for ssrc in remote if ssrc not in rtx]
    for ssrc in media:
        await receiver._send_rtcp_pli(ssrc)
    return bool(media)


# --------------------------------------------------------------------------- packetization

def packetize_h264(data: bytes) -> tuple[bytes, ...]:
    """RTP payloads (RFC 6184 STAP-A / FU-A, aiortc's packetizer) of one access unit."""
    from aiortc.codecs.h264 import H264Encoder

    return tuple(H264Encoder._packetize(H264Encoder._split_bitstream(data)))


# --------------------------------------------------------------------------- pylibsrtp

# libsrtp 2.x, as pylibsrtp 1.x declares it (libsrtp 3 changed the signature)
_SRTP_PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
_SRTP_T = "struct srtp_ctx_t_ * *"


def srtp_protect_address() -> tuple[int | None, str]:
    """The address of ``srtp_protect()`` in pylibsrtp's libsrtp, or None and why not."""
    try:
        from pylibsrtp._binding import ffi, lib
        function = ffi.addressof(lib, "srtp_protect")
        declared = ffi.getctype(ffi.typeof(function))
    except (ImportError, AttributeError) as exc:
        return None, f"pylibsrtp {pylibsrtp.__version__} internals differ: {exc}"
    if declared != _SRTP_PROTECT_TYPE:
        return None, f"pylibsrtp {pylibsrtp.__version__} declares {declared}"
    return int(ffi.cast("uintptr_t", function)), ""


def srtp_context(session: pylibsrtp.Session) -> int | None:
    """The address of a pylibsrtp ``Session``'s ``srtp_t``, if it is the layout we know."""
    from pylibsrtp._binding import ffi
    cdata = getattr(session, "_srtp", None)
    if not isinstance(cdata, ffi.CData) or ffi.getctype(ffi.typeof(cdata)) != _SRTP_T:
        return None
    return int(ffi.cast("uintptr_t", cdata[0])) or None


# --------------------------------------------------------------------------- aioice

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "camrelay_ice_host_addresses", default=None)
_ice_patched = False


@contextlib.contextmanager
def offering_host_addresses(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """Inside: ICE gathering in this context offers only ``addresses`` (None: aioice's
    default).  Needs :func:`install_ice_patches`."""
    token = _HOST_ADDRESSES.set(addresses)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def install_ice_patches() -> None:
    """The host-address filter and the consent-task fix, once per process."""
    global _ice_patched
    if _ice_patched:
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _HOST_ADDRESSES.get()
        if chosen is None:
            return list(original(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses

    # aioice 0.13 race: when close() runs while connect() is between "check list
    # completed" and starting consent checks, connect() starts query_consent() on a
    # closed connection and that task lives ~30 s.  A consent task of a closing
    # connection now ends at once.
    connection_cls: Any = aioice.ice.Connection
    original_consent = connection_cls.query_consent

    async def query_consent(self: Any) -> None:
        if self._closing or self._closed:
            return
        await original_consent(self)

    connection_cls.query_consent = query_consent
    _ice_patched = True


class LazyBitrateEstimator:
    """aiortc's ``RemoteBitrateEstimator``, built when the first packet feeds it."""

    __slots__ = ("estimator",)

    def __init__(self) -> None:
        self.estimator: Any = None

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
            ) -> tuple[int, list[int]] | None:
        if self.estimator is None:
            self.estimator = _RemoteBitrateEstimator()
        result: tuple[int, list[int]] | None = self.estimator.add(
            arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
            payload_size=payload_size, ssrc=ssrc)
        return result


def install_lazy_bitrate_estimator() -> None:
    """Receivers made from now on build their bitrate estimator lazily (process-wide)."""
    import aiortc.rtcrtpreceiver

    receiver_module: Any = aiortc.rtcrtpreceiver
    receiver_module.RemoteBitrateEstimator = LazyBitrateEstimator
