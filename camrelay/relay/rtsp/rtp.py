"""H.264 over RTP (RFC 3550 headers, RFC 6184 payloads): packets in, access units out.

:class:`H264Depacketizer` takes whole RTP packets and hands complete access units (the
NAL units of one picture, without start codes) to a callback.  Single NAL unit packets,
STAP-A and FU-A are understood; STAP-B, MTAP and FU-B (interleaved mode) are dropped.
An access unit ends at the marker bit or when the timestamp changes.

Loss: a sequence gap damages the picture in progress, which is dropped, and from then
on only a keyframe is delivered until one arrives complete; a picture after the gap is
kept only if its first packet shows the start of an access unit.  Late and duplicate
packets are dropped.  The RTP timestamp is unwrapped to a continuous 90 kHz pts.

This is the relay's hot path (hundreds of packets per second per camera): per packet
one header unpack and a few slices; fragments are joined once per NAL unit.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHI")
MAX_UNIT_BYTES = 8 * 1024 * 1024
MAX_UNIT_NALS = 1024

# NAL unit types (H.264 7.4.1.2.3; RFC 6184 5.2)
_IDR = 5
_STAP_A = 24
_FU_A = 28
_UNSUPPORTED = {25: "STAP-B", 26: "MTAP16", 27: "MTAP24", 29: "FU-B", 30: "reserved",
                31: "reserved", 0: "reserved"}

UnitCallback = Callable[[list[bytes], int, bool, float], None]
"""(NAL units, pts on 90 kHz, contains an IDR picture, arrival) of one access unit."""


def starts_access_unit(payload: bytes, start: int, end: int) -> bool:
    """True if the RTP payload ``payload[start:end]`` begins an access unit: an access
    unit delimiter, SEI or parameter set, or the first slice of a picture."""
    if end - start < 2:
        return False
    kind = payload[start] & 0x1F
    body = start + 1
    if kind == _FU_A:
        if not payload[start + 1] & 0x80 or end - start < 3:
            return False
        kind = payload[start + 1] & 0x1F
        body = start + 2
    elif kind == _STAP_A:
        if end - start < 5:
            return False
        kind = payload[start + 3] & 0x1F
        body = start + 4
    if kind in (6, 7, 8, 9):
        return True
    # a slice whose first_mb_in_slice is 0: its ue(v) code is the single bit "1"
    return 1 <= kind <= 5 and body < end and bool(payload[body] & 0x80)


class H264Depacketizer:
    """One RTP stream of one H.264 media; see the module doc.  Not thread-safe."""

    __slots__ = (
        "_carry",
        "_clock",
        "_damaged",
        "_ext",
        "_frag",
        "_key",
        "_last_ts",
        "_nals",
        "_need_key",
        "_on_unit",
        "_recovering",
        "_seq",
        "_size",
        "_synced",
        "_ts",
        "_vcl",
        "_warned",
        "dropped",
        "foreign",
        "late",
        "lost",
        "malformed",
        "name",
        "packets",
        "payload_type",
        "units",
    )

    def __init__(self, payload_type: int, on_unit: UnitCallback, *, clock_rate: int = 90000,
                 name: str = "rtp") -> None:
        if not 0 <= payload_type < 128 or clock_rate <= 0:
            raise ValueError("bad payload type or clock rate")
        self.payload_type = payload_type
        self.name = name
        self._clock = clock_rate
        self._on_unit = on_unit
        self._seq = -1  # last sequence number accepted
        self._ext: int | None = None  # unwrapped timestamp of the last unit delivered
        self._last_ts = 0
        self._need_key = True  # deliver nothing but a keyframe (at start and after loss)
        self._recovering = False  # ... because of loss
        self._synced = False  # the next unit must show its own start
        # the access unit in progress
        self._nals: list[bytes] = []
        self._ts = -1  # its RTP timestamp; -1: none in progress
        self._damaged = False
        self._key = False
        self._vcl = False
        self._size = 0
        self._frag: list[bytes] | None = None  # FU-A fragments of one NAL unit
        self._carry: list[bytes] = []  # parameter sets sent with a timestamp of their own
        self._warned: set[int] = set()
        # counters
        self.packets = 0
        self.lost = 0  # packets missing from the sequence
        self.late = 0  # duplicate or out-of-order packets (dropped)
        self.dropped = 0  # pictures dropped because of loss (damaged or not a keyframe)
        self.malformed = 0
        self.foreign = 0  # another payload type, or not RTP version 2
        self.units = 0

    def push(self, packet: bytes, arrival: float) -> None:
        """One RTP packet; ``arrival`` is its ``time.monotonic()``."""
        size = len(packet)
        if size < 13:
            self.malformed += 1
            return
        b0, b1, seq, ts = _HEADER.unpack_from(packet)
        if b0 & 0xC0 != 0x80 or b1 & 0x7F != self.payload_type:
            self.foreign += 1
            return
        start = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:  # header extension
            if start + 4 > size:
                self.malformed += 1
                return
            start += 4 + (((packet[start + 2] << 8) | packet[start + 3]) << 2)
        end = size - packet[-1] if b0 & 0x20 else size
        if end <= start:
            self.malformed += 1
            return
        self.packets += 1

        last = self._seq
        if last >= 0:
            gap = (seq - last) & 0xFFFF
            if gap != 1:
                if gap == 0 or gap & 0x8000:
                    self.late += 1
                    return
                self._lose(gap - 1)
        self._seq = seq

        if ts != self._ts:
            if self._ts >= 0:
                self._finish(arrival)
            self._ts = ts
            if not self._synced:
                self._synced = True
                self._damaged = not starts_access_unit(packet, start, end)

        kind = packet[start] & 0x1F
        if kind < _STAP_A and kind:  # single NAL unit packet
            if self._frag is not None:
                self._frag = None
                self._damaged = True
            self._nals.append(packet[start:end])
            self._size += end - start
            if kind <= _IDR:
                self._vcl = True
                if kind == _IDR:
                    self._key = True
        elif kind == _FU_A:
            self._fu_a(packet, start, end)
        elif kind == _STAP_A:
            self._stap_a(packet, start, end)
        else:
            self._damaged = True
            if kind not in self._warned:
                self._warned.add(kind)
                log.debug("%s: dropping %s packets (type %d)", self.name,
                          _UNSUPPORTED.get(kind, "unknown"), kind)
        if self._size > MAX_UNIT_BYTES or len(self._nals) > MAX_UNIT_NALS:
            self._damaged = True
            self._nals = []
            self._frag = None
            self._size = 0
        if b1 & 0x80:  # marker: the last packet of the access unit
            self._finish(arrival)

    def _fu_a(self, packet: bytes, start: int, end: int) -> None:
        if end - start < 3:
            self.malformed += 1
            self._damaged = True
            return
        fu = packet[start + 1]
        frag = self._frag
        if fu & 0x80:  # start
            if frag is not None:
                self._damaged = True
            kind = fu & 0x1F
            frag = self._frag = [bytes(((packet[start] & 0xE0) | kind,)), packet[start + 2:end]]
            if 1 <= kind <= _IDR:
                self._vcl = True
                if kind == _IDR:
                    self._key = True
        elif frag is None:  # a continuation without its start
            self._damaged = True
            return
        else:
            frag.append(packet[start + 2:end])
        self._size += end - start - 1
        if fu & 0x40:  # end
            self._nals.append(b"".join(frag))
            self._frag = None

    def _stap_a(self, packet: bytes, start: int, end: int) -> None:
        if self._frag is not None:
            self._frag = None
            self._damaged = True
        off = start + 1
        while off < end:
            if off + 2 > end:
                self.malformed += 1
                self._damaged = True
                return
            n = (packet[off] << 8) | packet[off + 1]
            off += 2
            if n == 0 or off + n > end:
                self.malformed += 1
                self._damaged = True
                return
            kind = packet[off] & 0x1F
            self._nals.append(packet[off:off + n])
            self._size += n
            if 1 <= kind <= _IDR:
                self._vcl = True
                if kind == _IDR:
                    self._key = True
            off += n

    def _lose(self, count: int) -> None:
        self.lost += count
        if not self._recovering:
            log.info("%s: %d RTP packet(s) lost; skipping to the next keyframe",
                     self.name, count)
        self._recovering = True
        self._need_key = True
        if self._ts >= 0:
            self._damaged = True  # the picture in progress lost its middle or its tail
        self._synced = False  # the next picture may have lost its start

    def _finish(self, arrival: float) -> None:
        nals, ts = self._nals, self._ts
        damaged = self._damaged or self._frag is not None
        key, vcl = self._key, self._vcl
        self._nals = []
        self._ts = -1
        self._frag = None
        self._damaged = self._key = self._vcl = False
        self._size = 0
        if damaged:
            if self.units:  # pictures after this one may refer to it: wait for a keyframe
                self._need_key = self._recovering = True
                self.dropped += 1
            return
        if not nals:
            return
        if not vcl:  # parameter sets or SEI with a timestamp of their own: keep for the next
            self._carry = nals[-8:]
            return
        if self._need_key:
            if not key:
                if self._recovering:
                    self.dropped += 1
                return
            if self._recovering:
                log.debug("%s: resumed at a keyframe (%d packets lost, %d pictures dropped "
                          "so far)", self.name, self.lost, self.dropped)
            self._need_key = self._recovering = False
        if self._carry:
            nals = self._carry + nals
            self._carry = []
        self.units += 1
        self._on_unit(nals, self._pts(ts), key, arrival)

    def _pts(self, ts: int) -> int:
        if self._ext is None:
            ext = ts
        else:
            delta = (ts - self._last_ts) & 0xFFFFFFFF
            if delta & 0x80000000:
                delta -= 0x100000000
            ext = self._ext + delta
        self._ext = ext
        self._last_ts = ts
        return ext if self._clock == 90000 else ext * 90000 // self._clock
