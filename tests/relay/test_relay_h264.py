"""Pure bitstream helpers."""

from __future__ import annotations

import struct

import pytest

from camrelay.relay import h264

SPS = bytes.fromhex("6742c01eda0280bf")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("65888400ff")
P = bytes.fromhex("419a2000")


def avcc(*nals: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(n)) + n for n in nals)


def test_split_annexb_three_and_four_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x01" + IDR
    assert h264.split_annexb(data) == [SPS, PPS, IDR]


def test_avcc_extradata_and_samples_become_annexb_with_parameter_sets() -> None:
    record = bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1]) + struct.pack(">H", len(SPS)) + SPS
    record += bytes([1]) + struct.pack(">H", len(PPS)) + PPS
    writer = h264.AnnexBWriter(record)
    assert writer.length_size == 4
    data, key = writer.write(writer.nals(avcc(IDR)))
    assert key and data == h264.annexb([SPS, PPS, IDR])
    data, key = writer.write(writer.nals(avcc(P)))
    assert not key and data == h264.annexb([P])


def test_repeated_parameter_sets_inside_a_picture_are_collapsed() -> None:
    writer = h264.AnnexBWriter(None)
    data, key = writer.write([SPS, PPS, IDR, SPS, PPS, IDR])
    assert key and h264.split_annexb(data) == [SPS, PPS, IDR, IDR]
    assert h264.profile_level_id(SPS) == "42c01e"


def test_malformed_input_fails_loudly() -> None:
    with pytest.raises(ValueError):
        h264.split_length_prefixed(b"\x00\x00\x00\x09abc")
    with pytest.raises(ValueError):
        h264.parse_avcc(b"\x02\x00")
    with pytest.raises(ValueError):
        h264.profile_level_id(PPS)
