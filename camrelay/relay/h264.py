"""H.264 (and a little H.265) bitstream helpers: Annex-B, AVCC, SPS/PPS.

Pure functions over bytes; malformed input raises ``ValueError``.  NAL units are handled
without their start codes; :func:`annexb` puts 4-byte start codes back.
"""

from __future__ import annotations

START_CODE = b"\x00\x00\x00\x01"

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

HEVC_IRAP = range(16, 24)
HEVC_VPS, HEVC_SPS, HEVC_PPS = 32, 33, 34


def is_annexb(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x01", START_CODE))


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units (start codes removed)."""
    nals: list[bytes] = []
    n = len(data)
    start = -1
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        if start >= 0:
            end = i - 1 if i > 0 and data[i - 1] == 0 else i
            if end > start:
                nals.append(data[start:end])
        start = i + 3
        i = data.find(b"\x00\x00\x01", start)
    if start >= 0 and start < n:
        nals.append(data[start:])
    return nals


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split AVCC (length-prefixed) data into NAL units."""
    if length_size not in (1, 2, 3, 4):
        raise ValueError(f"bad NAL length size {length_size}")
    nals: list[bytes] = []
    off = 0
    while off < len(data):
        if off + length_size > len(data):
            raise ValueError("truncated NAL length")
        size = int.from_bytes(data[off:off + length_size], "big")
        off += length_size
        if size == 0 or off + size > len(data):
            raise ValueError("NAL unit length out of range")
        nals.append(data[off:off + size])
        off += size
    return nals


def annexb(nals: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def nal_type(nal: bytes) -> int:
    if not nal:
        raise ValueError("NAL unit is too short")
    return nal[0] & 0x1F


def hevc_nal_type(nal: bytes) -> int:
    if len(nal) < 2:
        raise ValueError("NAL unit is too short")
    return (nal[0] >> 1) & 0x3F


def parse_avcc(extradata: bytes) -> tuple[list[bytes], list[bytes], int]:
    """avcC record -> (SPS list, PPS list, NAL length size)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("not an avcC record")
    length_size = (extradata[4] & 0x03) + 1
    off = 5
    sps: list[bytes] = []
    pps: list[bytes] = []
    count = extradata[off] & 0x1F
    off += 1
    for _ in range(count):
        size = int.from_bytes(extradata[off:off + 2], "big")
        sps.append(extradata[off + 2:off + 2 + size])
        off += 2 + size
    if off < len(extradata):
        count = extradata[off]
        off += 1
        for _ in range(count):
            size = int.from_bytes(extradata[off:off + 2], "big")
            pps.append(extradata[off + 2:off + 2 + size])
            off += 2 + size
    if off > len(extradata):
        raise ValueError("truncated avcC record")
    return sps, pps, length_size


def parameter_sets(extradata: bytes | None) -> tuple[bytes | None, bytes | None, int | None]:
    """First SPS and PPS from H.264 extradata in either form; the AVCC length size or None."""
    if not extradata:
        return None, None, None
    if is_annexb(extradata):
        sps = pps = None
        for nal in split_annexb(extradata):
            kind = nal_type(nal)
            if kind == NAL_SPS and sps is None:
                sps = nal
            elif kind == NAL_PPS and pps is None:
                pps = nal
        return sps, pps, None
    sps_list, pps_list, length_size = parse_avcc(extradata)
    return (sps_list[0] if sps_list else None, pps_list[0] if pps_list else None, length_size)


def profile_level_id(sps: bytes) -> str:
    """Six hex digits (profile_idc, constraint flags, level_idc) from an SPS NAL unit."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    return sps[1:4].hex()


def starts_picture(nal: bytes, codec: str = "h264") -> bool:
    """True if this VCL NAL unit is the first slice of a picture (first_mb_in_slice == 0)."""
    if codec == "h264":
        return len(nal) > 1 and bool(nal[1] & 0x80)
    return len(nal) > 2 and bool(nal[2] & 0x80)


def is_vcl(nal: bytes, codec: str = "h264") -> bool:
    if codec == "h264":
        return 1 <= nal_type(nal) <= 5
    return hevc_nal_type(nal) < 32


def is_keyframe_nals(nals: list[bytes], codec: str = "h264") -> bool:
    if codec == "h264":
        return any(nal_type(n) == NAL_IDR for n in nals)
    return any(hevc_nal_type(n) in HEVC_IRAP for n in nals)


class AnnexBWriter:
    """Normalises one H.264 stream's access units: Annex-B, SPS/PPS before every IDR.

    Remembers the newest in-band SPS/PPS; falls back to the ones from extradata (the
    SDP's sprop-parameter-sets) for cameras that send them only out of band.
    """

    def __init__(self, extradata: bytes | None) -> None:
        self.sps, self.pps, self.length_size = parameter_sets(extradata)

    def nals(self, data: bytes) -> list[bytes]:
        if is_annexb(data) or self.length_size is None:
            return split_annexb(data)
        return split_length_prefixed(data, self.length_size)

    def write(self, nals: list[bytes]) -> tuple[bytes, bool]:
        """NAL units of one picture -> (Annex-B access unit, keyframe)."""
        kinds = [nal_type(n) for n in nals]
        for nal, kind in zip(nals, kinds):
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal
        keyframe = NAL_IDR in kinds
        # parameter sets go once, in front, and only before IDR pictures; repeated
        # sets between the slices of one picture (seen from some RTSP depacketisers)
        # would make decoders start a new access unit
        out = [n for n, k in zip(nals, kinds) if k not in (NAL_SPS, NAL_PPS, NAL_AUD)]
        if keyframe:
            front = [p for p in (self.sps, self.pps) if p is not None]
            out = front + out
        return annexb(out), keyframe
