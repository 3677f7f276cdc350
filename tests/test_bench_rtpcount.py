"""The scaling bench's in-kernel RTP counter (scripts/bench/rtpcount.py): the capacity
figures in BENCHMARKS.md rest on it, so it is checked here against known datagrams."""

from __future__ import annotations

import importlib.util
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "rtpcount", Path(__file__).resolve().parents[1] / "scripts" / "bench" / "rtpcount.py")
assert _spec is not None and _spec.loader is not None
rtpcount = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rtpcount)
RtpCounter = rtpcount.RtpCounter


def rtp(seq: int, marker: bool = False, size: int = 100) -> bytes:
    return bytes([0x80, (0x80 if marker else 0) | 96]) + struct.pack("!H", seq) + b"x" * size


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield receiver, sender
    receiver.close()
    sender.close()


def test_rtp_is_counted_and_dropped_stun_and_dtls_pass(
        pair: tuple[socket.socket, socket.socket]) -> None:
    receiver, sender = pair
    counter = RtpCounter()
    try:
        key = counter.attach(receiver)
        # across the wrap: 65532 -> 65535 loses 2; a repeat and a late packet lose none;
        # 0 -> 5 loses 4 (the late 0 is the last seen, as in a reader taking them in order)
        sequence = [65530, 65531, 65532, 65535, 0, 1, 1, 0, 5]
        for seq in sequence:
            sender.sendto(rtp(seq, marker=seq in (1, 5)), receiver.getsockname())
        sender.sendto(bytes([0x80, 200]) + b"sender report", receiver.getsockname())  # RTCP
        stun = b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"t" * 12
        dtls = b"\x16\xfe\xfd" + b"d" * 30
        sender.sendto(stun, receiver.getsockname())
        sender.sendto(dtls, receiver.getsockname())
        assert receiver.recv(2048) == stun
        assert receiver.recv(2048) == dtls
        with pytest.raises(TimeoutError):
            receiver.recv(2048)  # nothing else reached userland
        deadline = time.monotonic() + 2
        while counter.read(key)[0] < len(sequence) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counter.read(key) == (9, 3, 6, 9 * 104)  # packets, frames, lost, bytes
        counter.forget(key)
        with pytest.raises(OSError):
            counter.read(key)
    finally:
        counter.close()


def test_two_sockets_are_counted_apart(pair: tuple[socket.socket, socket.socket]) -> None:
    receiver, sender = pair
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    counter = RtpCounter()
    try:
        a, b = counter.attach(receiver), counter.attach(other)
        assert a != b
        for seq in range(10):
            sender.sendto(rtp(seq, marker=True), receiver.getsockname())
        sender.sendto(rtp(7), other.getsockname())
        time.sleep(0.1)
        assert counter.read(a)[:3] == (10, 10, 0)
        assert counter.read(b)[:3] == (1, 0, 0)
    finally:
        other.close()
        counter.close()
