"""WebRTC fan-out: packetize each access unit once per camera stream, then per viewer
only rewrite the RTP header, SRTP-protect and send.

aiortc still negotiates (SDP, ICE, DTLS); its ``RTCRtpSender`` keeps its SSRCs, its
place in the SDP and its track, but its media path never starts: a :class:`FanoutSender`
is the sender's :class:`~camrelay.relay.sinks.aiortc_internals.MediaPath`, started with a
typed :class:`~camrelay.relay.sinks.aiortc_internals.SendLink` (SSRCs, payload types,
the DTLS transport's SRTP session, the ICE socket, SRTCP sending) once DTLS is up, and
from then on owns the stream.  This module touches none of aiortc's private parts;
:mod:`~camrelay.relay.sinks.aiortc_internals` does.

* **Once per camera.**  :class:`CameraPacketizer` (one per ``StreamKey``, shared by the
  stream's viewers, see :class:`Fanout`) turns an Annex-B access unit into RTP payloads
  (aiortc's own STAP-A/FU-A packetizer, ``aiortc_internals.packetize_h264``)
  and keeps them, keyed by the unit, for the GOP replays and joins that follow.  The
  payload ``bytes`` are the one shared retransmission history: a viewer's ring of 1024
  packets holds only references to its units (first sequence number, payloads,
  timestamp), indexed by its own sequence number.
* **Per viewer and packet**: one 8-byte header (first byte, marker|PT, sequence,
  timestamp) + a per-viewer constant tail (SSRC and the MID header extension) + the
  payload, SRTP-protected with the DTLS transport's SRTP session and sent on the
  nominated ICE pair's socket: no ``RtpPacket`` object, no await.  Two implementations:

  - the C extension ``_fastsend`` (built by ``setup.py`` when a compiler exists): one
    call per unit and viewer builds every packet, protects it with pylibsrtp's own
    libsrtp (``srtp_protect`` by address, on the session's ``srtp_t``) and sends them
    all with one ``sendmmsg`` (GIL released).  What the kernel does not take at once
    (EAGAIN, ENOBUFS, any error) comes back protected and goes through the asyncio
    transport, which buffers it, so ``max_backlog`` works as before; while that
    transport still holds data a whole unit goes through it (ordering).  With UDP GSO
    (Linux >= 4.18; off with ``CAMRELAY_NO_GSO=1``, read once at import, for
    measurement) each run of same-size packets (a NAL unit's FU-A fragments) is one
    message the kernel cuts into the same datagrams; where the kernel refuses it, that
    viewer's sender goes on without GSO (logged once).
  - pure Python: per packet a header ``struct`` pack joined to tail and payload,
    ``Session.protect`` and the transport's ``sendto``.  Used when the extension is not
    built, does not fit the installed pylibsrtp, or ``CAMRELAY_NO_EXTENSIONS=1`` is set
    (read once at import).

  Retransmissions and RTCP always take the Python path.  The NACK ring records one
  entry per unit (first sequence number, the shared payloads, timestamp).
* **Timing** (join bursts, PLI replays, live offsets) stays the track's
  (``ForwardTrack.next_unit`` in ``webrtc.py``); this module sends what it returns,
  pacing bursts per viewer (see ``BURST_SECONDS``): sent at once, a 720p/1080p GOP
  overflows the viewer's buffers and the loss leaves a joiner seconds behind.
* **Playout delay.**  When the viewer offered libwebrtc's playout-delay header extension
  (Chromium does; ``aiortc_internals.answer_playout_delay``), the units of a catch-up
  (a join burst or replay and the live units queued behind it) carry min = 0,
  max = 10 ms: Chromium then decodes them as they complete and renders each at once
  (its low-latency path) instead of scheduling them by RTP timestamp through its jitter
  buffer, which held a late joiner 0.5-1 s behind live.  Every other unit carries
  min = 0, max = 10 s, libwebrtc's defaults: the receiver keeps the last value it saw,
  so this returns the viewer to ordinary playout once it is live.  The two headers
  differ only in that element (``_set_catch_up``).
* **RTCP.**  The DTLS transport's RTCP router hands the sender what concerns its
  SSRC (``handle_rtcp``).  NACK: retransmit from the ring (RTX when negotiated, else on
  the media SSRC).  PLI/FIR: the track's keyframe policy (rate-limited GOP replay).
  Receiver reports: loss, jitter and round-trip time.  A sender report (plus SDES
  CNAME) every 0.5–1.5 s, as aiortc does.
* **A viewer that falls behind** (its socket's send backlog above ``max_backlog``
  bytes, or a receiver report with more than ``loss_skip_fraction`` lost) skips to the
  next keyframe; counted in ``FanoutCounters.behind_skips``.

The C path also depends on pylibsrtp 1.x (libsrtp 2.x): the ``srtp_t`` of the SRTP
session and the declared type of ``srtp_protect``, both checked before use
(``aiortc_internals.srtp_context``/``srtp_protect_address``).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import math
import os
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pylibsrtp
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_header_extensions,
    unpack_header_extensions,
)

from camrelay.relay.media import AccessUnit, StreamKey
from camrelay.relay.sinks.aiortc_internals import (
    SendLink,
    packetize_h264,
    srtp_context,
    srtp_protect_address,
)

if TYPE_CHECKING:
    from camrelay.relay.sinks._fastsend import UnitSender

log = logging.getLogger(__name__)

RING_SIZE = 1024  # per viewer: packets that NACKs can still repair (power of two)
_RING_MASK = RING_SIZE - 1
_HEADER = struct.Struct("!BBHI")  # first byte, marker|PT, sequence, timestamp
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970
# Retransmissions may add at most a quarter of what a viewer is sent (a token bucket):
# on a link that cannot carry the stream, NACKs would otherwise multiply its load.
_RTX_SHARE = 0.25
_RTX_BURST = 64.0
# While catching up (a paced join burst or replay, and CATCH_UP_GRACE after) the bucket
# holds more: loss there is a receiver that was not scheduled for a few tens of ms and
# whose socket buffer (~90 loopback packets) overflowed, and a repair that NACKs cannot
# make costs a keyframe request and a replay of the whole GOP.
_RTX_BURST_CATCH_UP = 256.0
# the kernel's "not now": the rest of the unit waits in the asyncio transport's buffer
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})
# Pacing (a per-viewer token bucket in bytes).  A join burst or GOP replay is sent at
# the rate that delivers it within BURST_SECONDS while live units keep coming, at most
# CATCH_UP times the camera's own rate (at least PACE_FLOOR bytes/s), instead of all at
# once: at once, a 720p/1080p GOP overflows the viewer's socket and jitter buffer, and
# the loss costs NACKs, PLIs, replays and a skip to the next keyframe.  Live units pass
# untouched (the bucket refills at CATCH_UP times the camera's rate and holds
# PACE_DEPTH seconds of it, several keyframes).  A viewer that asks for a keyframe
# while catching up gets its next replays slower (down to CATCH_UP_MIN); one that
# reports loss (NACK) during a burst gets the rest of it slower (SLOW_DOWN, down to
# twice the camera's rate) rather than a spiral of loss, PLI and replays.
BURST_SECONDS = 0.3
CATCH_UP = 16.0
CATCH_UP_MIN = 4.0
PACE_FLOOR = 2_000_000.0
SLOW_DOWN = 0.7
PACE_DEPTH = 0.25
# while a burst is paced the bucket holds at most this much: a sender that wakes late
# (a busy loop or CPU) must not make up for the lost time with one big burst
BURST_DEPTH = 64 * 1024
# Loss reported while catching up (and CATCH_UP_GRACE seconds after) is the burst's own,
# not a link that cannot carry the stream: no skip to the next keyframe for it.
CATCH_UP_GRACE = 1.5
# The playout-delay header extension's (min, max), in its 10 ms units (12 bits each):
# a catch-up's units render as soon as decoded (max <= 500 ms and min = 0 is libwebrtc's
# low-latency path; max > 0 keeps its decode pacing, max = 0 would drop the P-frames it
# finds late); other units restore libwebrtc's defaults (0, 10 s).
PLAYOUT_CATCH_UP = (0, 1)
PLAYOUT_LIVE = (0, 1000)


def playout_delay_element(limits: tuple[int, int]) -> bytes:
    """The 3-byte playout-delay extension value: 12-bit min, 12-bit max."""
    low, high = limits
    return ((low << 12) | high).to_bytes(3, "big")


def with_header_extension(tail: bytes, ext_id: int, value: bytes) -> bytes:
    """``tail`` (an RTP header after its first 8 bytes: SSRC and header extensions,
    no CSRCs) with one more extension element."""
    ssrc, rest = tail[:4], tail[4:]
    elements: list[tuple[int, bytes]] = []
    if rest:
        profile, words = struct.unpack("!HH", rest[:4])
        elements = unpack_header_extensions(profile, rest[4:4 + 4 * words])
    profile, block = pack_header_extensions([*elements, (ext_id, value)])
    return ssrc + struct.pack("!HH", profile, len(block) // 4) + block


@dataclass(frozen=True, slots=True)
class Extension:
    """The C send path, once it is known to fit the installed pylibsrtp."""

    unit_sender: type[UnitSender]
    protect: int  # address of srtp_protect() in pylibsrtp's libsrtp


def _load_extension() -> tuple[Extension | None, str]:
    if os.environ.get("CAMRELAY_NO_EXTENSIONS", "") not in ("", "0"):
        return None, "pure Python (CAMRELAY_NO_EXTENSIONS is set)"
    try:
        from camrelay.relay.sinks import _fastsend
    except ImportError as exc:
        return None, f"pure Python (the C extension is not built: {exc})"
    protect, why = srtp_protect_address()
    if protect is None:
        return None, f"pure Python ({why})"
    if pylibsrtp.SRTP_MAX_TRAILER_LEN != _fastsend.SRTP_MAX_TRAILER_LEN:
        return None, "pure Python (pylibsrtp's SRTP_MAX_TRAILER_LEN differs)"
    return (Extension(_fastsend.UnitSender, protect),
            "C extension (one sendmmsg per unit and viewer, "
            + ("UDP GSO)" if GSO else "no UDP GSO: CAMRELAY_NO_GSO is set)"))


#: UDP GSO on the C path (``CAMRELAY_NO_GSO=1``: plain ``sendmmsg``).  Read once, at import.
GSO = os.environ.get("CAMRELAY_NO_GSO", "") in ("", "0")
#: The C send path; None: pure Python.  Decided once, at import.
EXTENSION, _EXTENSION_NOTE = _load_extension()
_path_logged = False
_gso_refusal_logged = False


def _srtp_error(status: int) -> pylibsrtp.Error:
    if 0 < status < len(pylibsrtp.ERRORS):
        return pylibsrtp.Error(pylibsrtp.ERRORS[status])
    return pylibsrtp.Error(f"srtp_protect failed ({status})")


# --------------------------------------------------------------------------- per camera

class CameraPacketizer:
    """One camera stream's payloads, made once per unit and kept for joins and replays."""

    def __init__(self, key: StreamKey, max_units: int = 300,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.key = key
        self.users = 0
        self.packetized = 0  # units packetized (once each)
        self.reused = 0  # units served from the cache
        self._max_units = max_units
        self._max_bytes = max_bytes
        self._bytes = 0
        self._cache: collections.OrderedDict[tuple[int, int, int], tuple[bytes, ...]] = \
            collections.OrderedDict()
        self._keyframes: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=2)
        self._recent: collections.deque[tuple[int, int]] = collections.deque(maxlen=64)

    @property
    def byte_rate(self) -> float:
        """The camera's bytes per second of stream time over its last units (0: unknown)."""
        recent = self._recent
        if len(recent) < 2:
            return 0.0
        span = recent[-1][0] - recent[0][0]
        if span <= 0:
            return 0.0
        return (sum(size for _, size in recent) - recent[0][1]) * 90_000 / span

    def payloads(self, unit: AccessUnit) -> tuple[bytes, ...]:
        # seq, pts and size: unique within a stream and across a restarted stream's
        # overlap with its predecessor (seq alone restarts)
        key = (unit.seq, unit.pts, len(unit.data))
        found = self._cache.get(key)
        if found is not None:
            self.reused += 1
            return found
        payloads = packetize_h264(unit.data)
        self.packetized += 1
        if not self._recent or unit.pts > self._recent[-1][0]:
            self._recent.append((unit.pts, key[2]))
        self._cache[key] = payloads
        self._bytes += key[2]
        if unit.keyframe:
            self._keyframes.append(key)
            # joins and replays start at the current GOP; keep the one before it for
            # viewers still finishing it, nothing older (each viewer's NACK ring holds
            # its own references to what it sent)
            oldest = self._keyframes[0]
            while oldest in self._cache and next(iter(self._cache)) != oldest:
                old, _ = self._cache.popitem(last=False)
                self._bytes -= old[2]
        while len(self._cache) > self._max_units or self._bytes > self._max_bytes:
            old, _ = self._cache.popitem(last=False)
            self._bytes -= old[2]
        return payloads


class Fanout:
    """The per-camera packetizers of one egress, shared by that camera's viewers."""

    def __init__(self) -> None:
        self._packetizers: dict[StreamKey, CameraPacketizer] = {}

    def acquire(self, key: StreamKey) -> CameraPacketizer:
        packetizer = self._packetizers.get(key)
        if packetizer is None:
            packetizer = self._packetizers[key] = CameraPacketizer(key)
        packetizer.users += 1
        return packetizer

    def release(self, packetizer: CameraPacketizer) -> None:
        packetizer.users -= 1
        if packetizer.users <= 0 and self._packetizers.get(packetizer.key) is packetizer:
            del self._packetizers[packetizer.key]

    def get(self, key: StreamKey) -> CameraPacketizer | None:
        return self._packetizers.get(key)


# --------------------------------------------------------------------------- per viewer

class UnitSource(Protocol):
    """What the fan-out needs of a viewer's track (``webrtc.ForwardTrack``)."""

    async def next_unit(self) -> tuple[AccessUnit, int]:
        """The next unit and its RTP timestamp; raises ``MediaStreamError`` at the end."""

    def request_keyframe(self) -> None: ...

    def skip_to_keyframe(self) -> None: ...

    @property
    def bursting(self) -> bool:
        """True while units of a join burst or replay are still queued."""

    @property
    def pending_bytes(self) -> int:
        """Bytes of the join burst or replay still queued."""

    @property
    def queued(self) -> int:
        """Units (of a burst, or live ones that came meanwhile) waiting to be sent."""


@dataclass(slots=True)
class FanoutCounters:
    packets_sent: int = 0
    octets_sent: int = 0  # payload bytes, as in the sender report
    nack_requests: int = 0
    retransmitted: int = 0
    nack_missed: int = 0  # asked for a packet no longer in the ring
    nack_declined: int = 0  # not resent: the viewer is behind, the next keyframe repairs
    keyframe_requests: int = 0
    sender_reports: int = 0
    behind_skips: int = 0
    handed_back: int = 0  # C path: packets the kernel did not take at once, sent by asyncio
    fraction_lost: float = 0.0  # from the last receiver report
    packets_lost: int = 0
    jitter: int = 0
    rtt: float | None = None


class FanoutSender:
    """One viewer's RTP/RTCP on its peer connection's DTLS transport (a ``MediaPath``)."""

    def __init__(self, source: UnitSource, packetizer: CameraPacketizer,
                 label: str, *, max_backlog: int = 512 * 1024,
                 loss_skip_fraction: float = 0.25, pace: bool = True,
                 retime: bool = True) -> None:
        self._link: SendLink | None = None  # set by start(), once DTLS is up
        self._ssrc = 0
        self._source = source
        self._packetizer = packetizer
        self._label = label
        self._max_backlog = max_backlog
        self._loss_skip = int(loss_skip_fraction * 256)
        self.counters = FanoutCounters()
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._cname: str | None = None
        # header pieces, set in start()
        self._b0 = 0x80
        self._pt = 0
        self._rtx_pt: int | None = None
        self._tail = b""
        self._rtx_tail = b""
        # (live, catch-up) headers and C senders; equal without the playout-delay extension
        self._tails = (b"", b"")
        self._rtx_tails = (b"", b"")
        self._fasts: tuple[UnitSender | None, UnitSender | None] = (None, None)
        self._catching = False  # the units now sent are a catch-up's
        self._seq = random.getrandbits(16) % 32768  # lower half: no early wrap (aiortc)
        self._rtx_seq = random.getrandbits(16) % 32768
        self._ts_origin = random.getrandbits(32)
        self._ts_shift = 0  # added to the track's timestamps since the last burst
        self._retime = retime
        self._retiming = False  # a burst is being stamped with its send times
        self._retime_base = 0
        self._retime_at = 0.0
        self._out_ts: int | None = None  # the last timestamp sent, unwrapped
        self._out_at = 0.0
        self._protect: Any = None
        self._sendto: Any = None
        self._addr: Any = None
        self._udp: Any = None
        self._fast: UnitSender | None = None  # the C path, when it is in use
        self._gso = False  # the C path sends with UDP GSO (until the kernel refuses it)
        self._behind = False
        self._rtx_tokens = _RTX_BURST
        self._pace = pace
        self._pace_tokens = 0.0  # bytes; a join starts with an empty bucket
        self._pace_at = time.monotonic()
        self._burst_rate = 0.0  # bytes/s of the burst being sent (0: live)
        self._catch_up = CATCH_UP
        self._catching_up_until = 0.0
        # retransmission ring: per packet slot, the unit it belongs to (first sequence
        # number, the camera's shared payloads, timestamp); one entry per unit
        self._ring: list[tuple[int, tuple[bytes, ...], int] | None] = [None] * RING_SIZE
        # sender report state
        self._last_ts = 0
        self._last_wall = 0.0
        self._lsr: int | None = None
        self._lsr_time = 0.0

    # -- the MediaPath: started by the aiortc sender once DTLS is connected
    async def start(self, link: SendLink) -> None:
        if self.started:
            return
        self.started = True
        self._link = link
        self._ssrc = link.ssrc
        self._pt = link.payload_type
        self._rtx_pt = link.rtx_payload_type
        self._cname = link.cname
        template = RtpPacket(payload_type=self._pt, ssrc=self._ssrc)
        template.extensions.mid = link.mid
        header = template.serialize(link.extensions)
        self._b0 = header[0]
        tail = header[8:]
        template.ssrc = link.rtx_ssrc
        rtx_tail = template.serialize(link.extensions)[8:]
        self._tails, self._rtx_tails = (tail, tail), (rtx_tail, rtx_tail)
        if link.playout_delay_id is not None:
            self._b0 |= 0x10  # the extension bit
            ext = link.playout_delay_id
            live, catch_up = (playout_delay_element(PLAYOUT_LIVE),
                              playout_delay_element(PLAYOUT_CATCH_UP))
            self._tails = (with_header_extension(tail, ext, live),
                           with_header_extension(tail, ext, catch_up))
            self._rtx_tails = (with_header_extension(rtx_tail, ext, live),
                               with_header_extension(rtx_tail, ext, catch_up))
        self._tail, self._rtx_tail = self._tails[0], self._rtx_tails[0]
        self._protect = link.srtp.protect
        self._udp = link.udp
        self._sendto = self._udp.sendto
        self._addr = link.remote_addr
        self._fast = self._unit_sender(link.srtp, self._tails[0])
        self._fasts = (self._fast, self._fast if self._tails[1] == self._tails[0]
                       else self._unit_sender(link.srtp, self._tails[1]))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run_media(), name=f"camrelay-fanout-{self._label}"),
                       loop.create_task(self._run_rtcp(), name=f"camrelay-rtcp-{self._label}")]

    @property
    def fast(self) -> bool:
        """True when units go out through the C extension."""
        return self._fast is not None

    def _unit_sender(self, session: pylibsrtp.Session, tail: bytes | None = None
                     ) -> UnitSender | None:
        """The C sender of units with ``tail`` (default: the current one), or None."""
        global _path_logged
        if not _path_logged:
            _path_logged = True
            log.info("WebRTC fan-out send path: %s", _EXTENSION_NOTE)
        if EXTENSION is None:
            return None
        context = srtp_context(session)
        sock = self._udp.get_extra_info("socket")
        if context is None or sock is None:
            log.warning("[%s] fan-out: no SRTP context or socket for the C path; pure Python",
                        self._label)
            return None
        try:
            host, port = self._addr[0], self._addr[1]
            addr = socket.getaddrinfo(host, port, sock.family, socket.SOCK_DGRAM, 0,
                                      socket.AI_NUMERICHOST)[0][4]
            fast = EXTENSION.unit_sender(sock, addr, context, EXTENSION.protect, self._b0,
                                         self._pt, self._tail if tail is None else tail,
                                         session, gso=GSO)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("[%s] fan-out: the C path refused %s (%s); pure Python",
                        self._label, self._addr, exc)
            return None
        self._gso = GSO
        if GSO and not fast.gso:
            self._gso_refused(fast)
        return fast

    def _gso_refused(self, fast: UnitSender) -> None:
        """The kernel refused UDP GSO on this viewer's socket or path: plain sendmmsg."""
        global _gso_refusal_logged
        self._gso = False
        level = logging.DEBUG if _gso_refusal_logged else logging.INFO
        _gso_refusal_logged = True
        log.log(level, "[%s] fan-out: the kernel refused UDP GSO (%s); sendmmsg without it",
                self._label, os.strerror(fast.gso_error))

    async def stop(self) -> None:
        """Cancel and await both tasks; a BYE when the transport is still up."""
        tasks, self._tasks = self._tasks, []
        if not tasks or self._link is None:
            return
        self._link.detach()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._send_rtcp([RtcpByePacket(sources=[self._ssrc])])

    # -- media
    async def _run_media(self) -> None:
        source = self._source
        try:
            while True:
                unit, ts = await source.next_unit()
                if not self._connected():
                    return
                if not unit.keyframe and (self._behind or self._backlogged()):
                    self.counters.behind_skips += 1
                    source.skip_to_keyframe()
                    continue
                if unit.keyframe:
                    self._behind = False
                if self._pace:
                    if unit.keyframe and source.bursting:
                        self._start_burst(len(unit.data) + source.pending_bytes)
                    elif self._burst_rate and not source.bursting:
                        self._burst_rate = 0.0  # the burst's last unit goes now
                        self._catching_up_until = time.monotonic() + CATCH_UP_GRACE
                    while (wait := self._pace_wait()) > 0:
                        await asyncio.sleep(wait)  # pacing a burst, not a signal
                    if not self._connected():
                        return
                    self._pace_tokens -= len(unit.data)
                payloads = self._packetizer.payloads(unit)
                if unit.keyframe and source.bursting:
                    self._set_catch_up(True)
                if payloads:
                    self._send_unit(payloads, self._stamp(ts, unit.keyframe, source.bursting,
                                                          source.queued > 0))
                if not source.bursting and not source.queued:
                    self._set_catch_up(False)  # caught up: the next unit is live
                if source.bursting:
                    await asyncio.sleep(0)  # let other viewers and RTCP in between
        except (MediaStreamError, ConnectionError):
            return

    def _set_catch_up(self, on: bool) -> None:
        """Send the next units with the catch-up's header (see the module doc) or not."""
        if on != self._catching:
            self._catching = on
            self._tail, self._rtx_tail = self._tails[on], self._rtx_tails[on]
            self._fast = self._fasts[on]

    def _stamp(self, ts: int, keyframe: bool, bursting: bool, behind: bool) -> int:
        """The RTP timestamp a unit goes out with: the track's, except in a burst.

        The track stamps a join burst or replay 1 tick apart (it cannot know when the
        fan-out will send each unit).  A browser schedules playout by RTP timestamp
        against arrival: units that arrive over the paced burst's few hundred ms while
        stamped as one instant look like heavy jitter, so Chromium grew its playout delay
        and dropped frames, and joiners showed live 1-2 s late.  So units of a burst,
        from its keyframe until nothing waits any more (the live units that came while
        it was sent included), are stamped with the time they are sent (90 kHz from the
        burst's start, never backwards); the units after that keep their own spacing."""
        now = time.monotonic()
        if not self._retiming and not (keyframe and bursting and self._retime):
            out = self._ts_origin + ts + self._ts_shift
            self._out_ts, self._out_at = out, now
            return out & 0xFFFFFFFF
        if not self._retiming:  # the burst's keyframe
            self._retiming = True
            if self._out_ts is None:
                out = self._ts_origin + ts + self._ts_shift
            else:
                out = self._out_ts + max(1, int((now - self._out_at) * 90_000))
            self._retime_base, self._retime_at = out, now
        else:
            out = max(self._out_ts + 1 if self._out_ts is not None else 0,
                      self._retime_base + int((now - self._retime_at) * 90_000))
        if not behind:  # caught up: live units follow at their own spacing
            self._retiming = False
        self._ts_shift = out - self._ts_origin - ts
        self._out_ts, self._out_at = out, now
        return out & 0xFFFFFFFF

    def _start_burst(self, size: int) -> None:
        live = self._packetizer.byte_rate
        self._burst_rate = max(PACE_FLOOR, min(size / BURST_SECONDS + live,
                                               self._catch_up * live))
        self._catching_up_until = math.inf

    def _pace_wait(self) -> float:
        """Seconds until the bucket allows the next unit (it may then go into debt)."""
        now = time.monotonic()
        rate = self._burst_rate or max(PACE_FLOOR, CATCH_UP * self._packetizer.byte_rate)
        depth = min(BURST_DEPTH, rate * PACE_DEPTH) if self._burst_rate else rate * PACE_DEPTH
        self._pace_tokens = min(depth, self._pace_tokens + (now - self._pace_at) * rate)
        self._pace_at = now
        return 0.0 if self._pace_tokens >= 0 else -self._pace_tokens / rate

    def _backlogged(self) -> bool:
        return bool(self._udp.get_write_buffer_size() > self._max_backlog)

    def _send_unit(self, payloads: tuple[bytes, ...], ts: int) -> None:
        seq = self._seq
        fast = self._fast
        if fast is None or self._udp.get_write_buffer_size():
            self._send_python(payloads, seq, ts)
        else:
            try:
                result = fast.send_unit(payloads, seq, ts)
            except (TypeError, ValueError):
                # refused before anything was sent (a payload too long, ...): the Python
                # path sends what it can and raises as it always did
                self._send_python(payloads, seq, ts)
                result = None
            if self._gso and not fast.gso:
                self._gso_refused(fast)
            if result is not None:
                self._hand_back(*result)
        count = len(payloads)
        self._seq = (seq + count) & 0xFFFF
        self._record(seq, payloads, ts)
        self._last_ts = ts
        self._last_wall = time.time()
        counters = self.counters
        counters.packets_sent += count
        counters.octets_sent += sum(map(len, payloads))
        cap = _RTX_BURST_CATCH_UP if time.monotonic() < self._catching_up_until else _RTX_BURST
        self._rtx_tokens = min(cap, self._rtx_tokens + _RTX_SHARE * count)

    def _send_python(self, payloads: tuple[bytes, ...], seq: int, ts: int) -> None:
        pack = _HEADER.pack
        protect = self._protect
        sendto = self._sendto
        addr = self._addr
        tail = self._tail
        b0 = self._b0
        pt = self._pt
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            mpt = pt | 0x80 if i == last else pt
            sendto(protect(b"".join((pack(b0, mpt, seq, ts), tail, payload))), addr)
            seq = (seq + 1) & 0xFFFF

    def _hand_back(self, sent: int, error: int, status: int, rest: list[bytes]) -> None:
        """The C path stopped early: the asyncio transport sends (or buffers) the rest."""
        if error and error not in _TRANSIENT_ERRNOS:
            log.debug("[%s] fan-out: sendmmsg: %s after %d packets", self._label,
                      os.strerror(error), sent)
        sendto = self._sendto
        addr = self._addr
        for packet in rest:
            sendto(packet, addr)
        self.counters.handed_back += len(rest)
        if status:
            raise _srtp_error(status)

    def _record(self, seq: int, payloads: tuple[bytes, ...], ts: int) -> None:
        entry = (seq, payloads, ts)
        ring = self._ring
        count = len(payloads)
        start = seq & _RING_MASK
        end = start + count
        if count >= RING_SIZE:
            ring[:] = [entry] * RING_SIZE
        elif end <= RING_SIZE:
            ring[start:end] = [entry] * count
        else:
            ring[start:] = [entry] * (RING_SIZE - start)
            ring[:end - RING_SIZE] = [entry] * (end - RING_SIZE)

    def _lookup(self, seq: int) -> tuple[bytes, int, bool] | None:
        """Payload, timestamp and marker of a packet among the last ``RING_SIZE`` sent."""
        if not 0 < (self._seq - seq) & 0xFFFF <= RING_SIZE:
            return None
        entry = self._ring[seq & _RING_MASK]
        if entry is None:
            return None
        first, payloads, ts = entry
        offset = (seq - first) & 0xFFFF
        if offset >= len(payloads):
            return None
        return payloads[offset], ts, offset == len(payloads) - 1

    def _retransmit(self, seq: int) -> None:
        found = self._lookup(seq)
        if found is None:
            self.counters.nack_missed += 1
            return
        if self._rtx_tokens < 1.0:
            self.counters.nack_declined += 1
            return
        self._rtx_tokens -= 1.0
        payload, ts, marker = found
        mpt = self._pt | 0x80 if marker else self._pt
        if self._rtx_pt is not None:
            packet = b"".join((_HEADER.pack(self._b0, (mpt & 0x80) | self._rtx_pt,
                                            self._rtx_seq, ts),
                               self._rtx_tail, struct.pack("!H", seq), payload))
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            packet = b"".join((_HEADER.pack(self._b0, mpt, seq, ts), self._tail, payload))
        self._sendto(self._protect(packet), self._addr)
        self.counters.retransmitted += 1

    # -- RTCP
    def _connected(self) -> bool:
        return self._link is not None and self._link.connected()

    async def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """RTCP about this viewer's stream, from the DTLS transport's RTCP router."""
        counters = self.counters
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc != self._ssrc:
                    continue
                counters.fraction_lost = report.fraction_lost / 256
                counters.packets_lost = report.packets_lost
                counters.jitter = report.jitter
                if self._lsr is not None and report.lsr == self._lsr and report.dlsr:
                    counters.rtt = time.time() - self._lsr_time - report.dlsr / 65536
                if report.fraction_lost > self._loss_skip and not self._behind:
                    if time.monotonic() < self._catching_up_until:
                        log.debug("[%s] receiver reports %.0f%% loss while catching up",
                                  self._label, 100 * report.fraction_lost / 256)
                        continue
                    self._behind = True
                    log.debug("[%s] receiver reports %.0f%% loss: skipping to a keyframe",
                              self._label, 100 * report.fraction_lost / 256)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if self._protect is None or not self._connected():
                return
            counters.nack_requests += 1
            if self._burst_rate:
                self._burst_rate = max(2 * self._packetizer.byte_rate,
                                       self._burst_rate * SLOW_DOWN)
            if self._behind or self._backlogged():
                # its link cannot carry the stream: resending would only add to the
                # congestion; it skips to the next keyframe instead
                counters.nack_declined += len(packet.lost)
                return
            for seq in packet.lost:
                self._retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR,
                                                                   RTCP_PSFB_PLI):
            counters.keyframe_requests += 1
            if time.monotonic() < self._catching_up_until:
                self._catch_up = max(CATCH_UP_MIN, self._catch_up * SLOW_DOWN)
            self._source.request_keyframe()

    async def _run_rtcp(self) -> None:
        while True:
            await asyncio.sleep(0.5 + random.random())
            if not self.counters.packets_sent:
                continue
            wall = self._last_wall
            ntp = (int(wall) + _NTP_EPOCH) << 32 | int((wall % 1) * (1 << 32))
            packets: list[AnyRtcpPacket] = [RtcpSrPacket(
                ssrc=self._ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp, rtp_timestamp=self._last_ts,
                    packet_count=self.counters.packets_sent & 0xFFFFFFFF,
                    octet_count=self.counters.octets_sent & 0xFFFFFFFF))]
            if self._cname is not None:
                packets.append(RtcpSdesPacket(chunks=[RtcpSourceInfo(
                    ssrc=self._ssrc, items=[(1, self._cname.encode("utf8"))])]))
            self._lsr = (ntp >> 16) & 0xFFFFFFFF
            self._lsr_time = time.time()
            await self._send_rtcp(packets)
            self.counters.sender_reports += 1

    async def _send_rtcp(self, packets: list[AnyRtcpPacket]) -> None:
        link = self._link
        if link is None or not link.connected():
            return
        try:
            await link.send_rtcp(b"".join(bytes(p) for p in packets))
        except ConnectionError:
            pass
