"""What our RTSP client needs from an H.264 sequence parameter set: size and rate.

FFmpeg tells the PyAV source the picture size; without it we read the SPS ourselves
(ITU-T H.264 7.3.2.1.1 and E.1.1, as far as ``timing_info``).  Pure and small:
malformed input raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

# profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


@dataclass(frozen=True, slots=True)
class SpsInfo:
    width: int
    height: int
    fps: float | None  # from the VUI timing information, when the encoder wrote it


def _rbsp(nal: bytes) -> bytes:
    """Drop the emulation prevention bytes (00 00 03 -> 00 00)."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self._left:
            raise ValueError("SPS is truncated")
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Picture size (after cropping) and frame rate of an SPS NAL unit (header included)."""
    if len(nal) < 4 or nal[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    bits = _Bits(_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    separate_planes = 0
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma > 3:
            raise ValueError("bad chroma_format_idc in SPS")
        if chroma == 3:
            separate_planes = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if bits.u(1):
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    if chroma == 0 or separate_planes:
        unit_x, unit_y = 1, 2 - frame_mbs_only
    else:
        unit_x = 2 if chroma in (1, 2) else 1
        unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise ValueError("SPS cropping leaves no picture")
    return SpsInfo(width, height, _vui_fps(bits))


def _vui_fps(bits: _Bits) -> float | None:
    try:
        if not bits.u(1):  # vui_parameters_present_flag
            return None
        if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_info, Extended_SAR
            bits.u(32)
        if bits.u(1):  # overscan_info_present_flag
            bits.u(1)
        if bits.u(1):  # video_signal_type_present_flag
            bits.u(4)
            if bits.u(1):
                bits.u(24)
        if bits.u(1):  # chroma_loc_info_present_flag
            bits.ue()
            bits.ue()
        if not bits.u(1):  # timing_info_present_flag
            return None
        units, scale = bits.u(32), bits.u(32)
    except ValueError:  # a truncated VUI still gave us the size
        return None
    if not units or not scale:
        return None
    fps = scale / (2 * units)
    return fps if 0 < fps <= 1000 else None
