"""Camera audio over RTP: G.711 (RFC 3551) and AAC (RFC 3640 ``MPEG4-GENERIC``).

:func:`audio_info` says whether a described audio media is one camrelay relays and
how (an :class:`~camrelay.relay.media.AudioInfo`); :class:`AudioDepacketizer` takes whole
RTP packets and hands coded audio units to a callback with a continuous (unwrapped)
timestamp on the track's clock:

* G.711 A-law/µ-law: each RTP payload is one unit, passed on untouched;
* AAC (``mode=AAC-hbr``/``AAC-lbr``): the AU-headers section is read
  (``sizelength``/``indexlength``/``indexdeltalength`` from the fmtp) and every complete
  access unit is one unit, ``1024`` samples after the one before it.  AUs fragmented
  over several packets are dropped (counted as malformed): camera AAC frames are a few
  hundred bytes.

Late and duplicate packets are dropped, as for video; a lost audio packet is simply a
missing unit (nothing to resynchronise).  Pure: no sockets, no decoding.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable

from camrelay.relay.media import AudioInfo
from camrelay.relay.rtsp.sdp import MediaDescription

_HEADER = struct.Struct("!BBHI")
AAC_FRAME = 1024  # samples per AAC access unit

AudioCallback = Callable[[bytes, int, float], None]
"""(coded unit, pts on the track's clock, arrival)"""


def audio_info(media: MediaDescription) -> AudioInfo | None:
    """How camrelay relays ``media``; None for a codec it does not (it is not SETUP)."""
    encoding = media.encoding
    if encoding in ("PCMA", "PCMU") and media.clock_rate == 8000:
        return AudioInfo(encoding, 8000)
    if encoding == "MPEG4-GENERIC" and media.fmtp.get("mode", "").lower() in (
            "aac-hbr", "aac-lbr"):
        try:
            config = binascii.unhexlify(media.fmtp.get("config", ""))
        except (binascii.Error, ValueError):
            return None
        if len(config) < 2:
            return None
        channels = (config[1] >> 3) & 0x0F or 1
        return AudioInfo("AAC", media.clock_rate, channels, config)
    return None


def _int(fmtp: dict[str, str], name: str, default: int) -> int:
    value = fmtp.get(name, "")
    return int(value) if value.isdigit() else default


class AudioDepacketizer:
    """One RTP stream of one audio media; see the module doc.  Not thread-safe."""

    def __init__(self, media: MediaDescription, info: AudioInfo, on_unit: AudioCallback
                 ) -> None:
        self.payload_type = media.payload_type
        self._aac = info.codec == "AAC"
        fmtp = dict(media.fmtp)
        self._size_bits = _int(fmtp, "sizelength", 13)
        self._index_bits = _int(fmtp, "indexlength", 3)
        self._header_bits = self._size_bits + self._index_bits
        if self._aac and not 0 < self._size_bits <= 16:
            raise ValueError("unsupported AAC sizelength")
        self._on_unit = on_unit
        self._seq = -1
        self._ext: int | None = None  # unwrapped timestamp of the last packet
        self._last_ts = 0
        self.packets = 0
        self.units = 0
        self.late = 0
        self.malformed = 0
        self.foreign = 0

    def push(self, packet: bytes, arrival: float) -> None:
        size = len(packet)
        if size < 13:
            self.malformed += 1
            return
        b0, b1, seq, ts = _HEADER.unpack_from(packet)
        if b0 & 0xC0 != 0x80 or b1 & 0x7F != self.payload_type:
            self.foreign += 1
            return
        start = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if start + 4 > size:
                self.malformed += 1
                return
            start += 4 + (((packet[start + 2] << 8) | packet[start + 3]) << 2)
        end = size - packet[-1] if b0 & 0x20 else size
        if end <= start:
            self.malformed += 1
            return
        if self._seq >= 0:
            gap = (seq - self._seq) & 0xFFFF
            if gap == 0 or gap & 0x8000:
                self.late += 1
                return
        self._seq = seq
        self.packets += 1
        if self._ext is None:
            pts = self._ext = ts
        else:
            pts = self._ext = self._ext + (((ts - self._last_ts) + 0x80000000) & 0xFFFFFFFF) \
                - 0x80000000
        self._last_ts = ts
        if not self._aac:
            self.units += 1
            self._on_unit(packet[start:end], pts, arrival)
            return
        self._aac_units(packet, start, end, pts, arrival)

    def _aac_units(self, packet: bytes, start: int, end: int, pts: int, arrival: float
                   ) -> None:
        if end - start < 2:
            self.malformed += 1
            return
        header_bits = (packet[start] << 8) | packet[start + 1]
        header_bytes = (header_bits + 7) // 8
        data = start + 2 + header_bytes
        if data > end or not header_bits or header_bits % self._header_bits:
            self.malformed += 1
            return
        headers = int.from_bytes(packet[start + 2:start + 2 + header_bytes], "big")
        count = header_bits // self._header_bits
        spare = header_bytes * 8 - header_bits
        units: list[bytes] = []
        for i in range(count):
            shift = spare + (count - 1 - i) * self._header_bits + self._index_bits
            length = (headers >> shift) & ((1 << self._size_bits) - 1)
            if data + length > end:  # a fragment of a larger AU: not relayed
                self.malformed += 1
                return
            units.append(packet[data:data + length])
            data += length
        for i, unit in enumerate(units):
            self.units += 1
            self._on_unit(unit, pts + i * AAC_FRAME, arrival)
