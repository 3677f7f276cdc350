"""WebRTC fan-out: packetize each access unit once per camera stream, then per viewer
only rewrite the RTP header, SRTP-protect and send.

aiortc still negotiates (SDP, ICE, DTLS); its ``RTCRtpSender`` keeps its SSRCs, its
place in the SDP and its track, but its media path never starts: :class:`FanoutSender`
replaces the sender's ``send()`` (called by the peer connection once DTLS is up) and
from then on owns the stream.

* **Once per camera.**  :class:`CameraPacketizer` (one per ``StreamKey``, shared by the
  stream's viewers, see :class:`Fanout`) turns an Annex-B access unit into RTP payloads
  (aiortc's own STAP-A/FU-A packetizer, ``H264Encoder._split_bitstream``/``_packetize``)
  and keeps them, keyed by the unit, for the GOP replays and joins that follow.  The
  payload ``bytes`` are the one shared retransmission history: a viewer's ring of 1024
  packets holds only references (payload, timestamp, marker) indexed by its own
  sequence number.
* **Per viewer and packet**: one 8-byte header pack (first byte, marker|PT, sequence,
  timestamp) joined to a per-viewer constant tail (SSRC and the MID header extension),
  ``srtp.protect`` with the DTLS transport's SRTP session and ``sendto`` on the
  nominated ICE pair's socket: no ``RtpPacket`` object, no await.
* **Timing** (join bursts, PLI replays, live offsets) stays the track's
  (``ForwardTrack.next_unit`` in ``webrtc.py``); this module sends what it returns.
* **RTCP.**  The sender registers with the DTLS transport's RTCP router under the
  aiortc sender's SSRC.  NACK: retransmit from the ring (RTX when negotiated, else on
  the media SSRC).  PLI/FIR: the track's keyframe policy (rate-limited GOP replay).
  Receiver reports: loss, jitter and round-trip time.  A sender report (plus SDES
  CNAME) every 0.5–1.5 s, as aiortc does.
* **A viewer that falls behind** (its socket's send backlog above ``max_backlog``
  bytes, or a receiver report with more than ``loss_skip_fraction`` lost) skips to the
  next keyframe; counted in ``FanoutCounters.behind_skips``.

Pinned to aiortc 1.16 and aioice 0.13 internals: ``RTCDtlsTransport._tx_srtp``,
``_register_rtp_sender``/``_unregister_rtp_sender``, ``_send_rtp``,
``RTCIceTransport._connection._nominated`` and ``CandidatePair.protocol.transport``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import struct
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc.codecs import is_rtx
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)

from camrelay.relay.media import AccessUnit, StreamKey

log = logging.getLogger(__name__)

RING_SIZE = 1024  # per viewer: packets that NACKs can still repair (power of two)
_RING_MASK = RING_SIZE - 1
_HEADER = struct.Struct("!BBHI")  # first byte, marker|PT, sequence, timestamp
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970
# Retransmissions may add at most a quarter of what a viewer is sent (a token bucket):
# on a link that cannot carry the stream, NACKs would otherwise multiply its load.
_RTX_SHARE = 0.25
_RTX_BURST = 64.0


def packetize_h264(data: bytes) -> tuple[bytes, ...]:
    """RTP payloads (RFC 6184 STAP-A / FU-A, aiortc's packetizer) of one access unit."""
    return tuple(H264Encoder._packetize(H264Encoder._split_bitstream(data)))


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
    fraction_lost: float = 0.0  # from the last receiver report
    packets_lost: int = 0
    jitter: int = 0
    rtt: float | None = None


class FanoutSender:
    """One viewer's RTP/RTCP on its peer connection's DTLS transport."""

    def __init__(self, aiortc_sender: Any, source: UnitSource, packetizer: CameraPacketizer,
                 label: str, *, max_backlog: int = 512 * 1024,
                 loss_skip_fraction: float = 0.25) -> None:
        self._ssrc = aiortc_sender._ssrc  # the RTCP router looks this up
        self._rtx_ssrc = aiortc_sender._rtx_ssrc
        self._dtls = aiortc_sender.transport
        self._source = source
        self._packetizer = packetizer
        self._label = label
        self._max_backlog = max_backlog
        self._loss_skip = int(loss_skip_fraction * 256)
        self.counters = FanoutCounters()
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._cname: str | None = None
        # header pieces, set in send()
        self._b0 = 0x80
        self._pt = 0
        self._rtx_pt: int | None = None
        self._tail = b""
        self._rtx_tail = b""
        self._seq = random.getrandbits(16) % 32768  # lower half: no early wrap (aiortc)
        self._rtx_seq = random.getrandbits(16) % 32768
        self._ts_origin = random.getrandbits(32)
        self._protect: Any = None
        self._sendto: Any = None
        self._addr: Any = None
        self._udp: Any = None
        self._behind = False
        self._rtx_tokens = _RTX_BURST
        # retransmission ring: references into the camera's shared payloads
        self._ring_seq = [-1] * RING_SIZE
        self._ring_payload: list[bytes] = [b""] * RING_SIZE
        self._ring_ts = [0] * RING_SIZE
        self._ring_mpt = [0] * RING_SIZE
        # sender report state
        self._last_ts = 0
        self._last_wall = 0.0
        self._lsr: int | None = None
        self._lsr_time = 0.0

    # -- aiortc's RTCRtpSender.send() replacement: called once DTLS is connected
    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self.started:
            return
        self.started = True
        codec = parameters.codecs[0]
        if codec.payloadType is None:
            raise ValueError("the negotiated codec has no payload type")
        self._pt = codec.payloadType
        for other in parameters.codecs:
            if is_rtx(other) and str(other.parameters.get("apt")) == str(self._pt):
                self._rtx_pt = other.payloadType
                break
        self._cname = parameters.rtcp.cname
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        template = RtpPacket(payload_type=self._pt, ssrc=self._ssrc)
        template.extensions.mid = parameters.muxId
        header = template.serialize(extensions)
        self._b0 = header[0]
        self._tail = header[8:]
        template.ssrc = self._rtx_ssrc
        self._rtx_tail = template.serialize(extensions)[8:]
        self._dtls._register_rtp_sender(self, parameters)
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None or self._dtls._tx_srtp is None:
            raise ConnectionError("the ICE/DTLS transport is not connected")
        self._protect = self._dtls._tx_srtp.protect
        self._udp = pair.protocol.transport
        self._sendto = self._udp.sendto
        self._addr = pair.remote_addr
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run_media(), name=f"camrelay-fanout-{self._label}"),
                       loop.create_task(self._run_rtcp(), name=f"camrelay-rtcp-{self._label}")]

    async def stop(self) -> None:
        """Cancel and await both tasks; a BYE when the transport is still up."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        self._dtls._unregister_rtp_sender(self)
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
                if self._dtls.state != "connected":
                    return
                if not unit.keyframe and (self._behind or self._backlogged()):
                    self.counters.behind_skips += 1
                    source.skip_to_keyframe()
                    continue
                if unit.keyframe:
                    self._behind = False
                payloads = self._packetizer.payloads(unit)
                if payloads:
                    self._send_unit(payloads, (self._ts_origin + ts) & 0xFFFFFFFF)
                if source.bursting:
                    await asyncio.sleep(0)  # let other viewers and RTCP in between
        except (MediaStreamError, ConnectionError):
            return

    def _backlogged(self) -> bool:
        return bool(self._udp.get_write_buffer_size() > self._max_backlog)

    def _send_unit(self, payloads: tuple[bytes, ...], ts: int) -> None:
        pack = _HEADER.pack
        protect = self._protect
        sendto = self._sendto
        addr = self._addr
        tail = self._tail
        b0 = self._b0
        pt = self._pt
        ring_seq, ring_payload = self._ring_seq, self._ring_payload
        ring_ts, ring_mpt = self._ring_ts, self._ring_mpt
        seq = self._seq
        last = len(payloads) - 1
        octets = 0
        for i, payload in enumerate(payloads):
            mpt = pt | 0x80 if i == last else pt
            sendto(protect(b"".join((pack(b0, mpt, seq, ts), tail, payload))), addr)
            idx = seq & _RING_MASK
            ring_seq[idx] = seq
            ring_payload[idx] = payload
            ring_ts[idx] = ts
            ring_mpt[idx] = mpt
            octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        self._last_ts = ts
        self._last_wall = time.time()
        counters = self.counters
        counters.packets_sent += last + 1
        counters.octets_sent += octets
        self._rtx_tokens = min(_RTX_BURST, self._rtx_tokens + _RTX_SHARE * (last + 1))

    def _retransmit(self, seq: int) -> None:
        idx = seq & _RING_MASK
        if self._ring_seq[idx] != seq:
            self.counters.nack_missed += 1
            return
        if self._rtx_tokens < 1.0:
            self.counters.nack_declined += 1
            return
        self._rtx_tokens -= 1.0
        payload, ts, mpt = self._ring_payload[idx], self._ring_ts[idx], self._ring_mpt[idx]
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
    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        """Called by the DTLS transport's RTCP router (as for an aiortc sender)."""
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
                    self._behind = True
                    log.debug("[%s] receiver reports %.0f%% loss: skipping to a keyframe",
                              self._label, 100 * report.fraction_lost / 256)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if self._protect is None or self._dtls.state != "connected":
                return
            counters.nack_requests += 1
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
        if self._dtls.state != "connected":
            return
        try:
            await self._dtls._send_rtp(b"".join(bytes(p) for p in packets))
        except ConnectionError:
            pass
