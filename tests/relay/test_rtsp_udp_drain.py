"""Draining a camera's UDP socket: the ``recvmmsg`` extension and the Python loop."""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
from collections.abc import Iterator

import pytest

from camrelay.relay.rtsp import client as rtspclient
from camrelay.relay.sources.rtsp import NativeRtspSource
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.relay_helpers import decode_numbers
from tests.relay.test_rtsp_client import Recorder, clean  # noqa: F401  (fixture)

LOCAL = socket.inet_pton(socket.AF_INET, "127.0.0.1")


def test_the_extension_is_built() -> None:
    # the suite runs on an install with a compiler (scripts/setup-test-env.sh): the C
    # drain must be what the tests below exercise, not silently the Python loop
    from camrelay.relay.rtsp import _fastrecv

    assert rtspclient._recv_datagrams is _fastrecv.recv_datagrams


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield rx, tx
    rx.close()
    tx.close()


def test_drain_empty_socket_is_not_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    from camrelay.relay.rtsp._fastrecv import recv_datagrams

    assert recv_datagrams(pair[0].fileno(), LOCAL, 256) == ([], 0, 0)


def test_drain_keeps_order_and_drops_foreign_and_oversize(
        pair: tuple[socket.socket, socket.socket]) -> None:
    from camrelay.relay.rtsp._fastrecv import SLOT, recv_datagrams

    rx, tx = pair
    sent = [bytes([n]) * (n * 11 + 1) for n in range(100)]  # more than one recvmmsg batch
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    try:
        for n, data in enumerate(sent):
            tx.send(data)
            if n % 10 == 0:
                stranger.sendto(b"not the camera", rx.getsockname())
        tx.send(b"x" * (SLOT + 1))
        tx.send(b"last")
        got, foreign, oversize = recv_datagrams(rx.fileno(), LOCAL, 1000)
    finally:
        stranger.close()
    assert got == [*sent, b"last"]
    assert (foreign, oversize) == (10, 1)
    assert recv_datagrams(rx.fileno(), LOCAL, 1000) == ([], 0, 0)


def test_drain_stops_at_the_limit(pair: tuple[socket.socket, socket.socket]) -> None:
    from camrelay.relay.rtsp._fastrecv import recv_datagrams

    rx, tx = pair
    for n in range(70):
        tx.send(n.to_bytes(2, "big"))
    first, _, _ = recv_datagrams(rx.fileno(), LOCAL, 40)
    rest, _, _ = recv_datagrams(rx.fileno(), LOCAL, 40)
    assert [int.from_bytes(d, "big") for d in first + rest] == list(range(70))
    assert len(first) == 40


def test_drain_ipv6_and_mapped_ipv4() -> None:
    from camrelay.relay.rtsp._fastrecv import recv_datagrams

    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    rx.bind(("::", 0))
    port = rx.getsockname()[1]
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        v6.sendto(b"six", ("::1", port))
        v4.sendto(b"four", ("127.0.0.1", port))
        v6.sendto(b"six again", ("::1", port))
        loop6 = socket.inet_pton(socket.AF_INET6, "::1")
        assert recv_datagrams(rx.fileno(), loop6, 10) == ([b"six", b"six again"], 1, 0)
        v4.sendto(b"four again", ("127.0.0.1", port))
        v6.sendto(b"six", ("::1", port))
        assert recv_datagrams(rx.fileno(), LOCAL, 10) == ([b"four again"], 1, 0)
    finally:
        for s in (rx, v6, v4):
            s.close()


def test_drain_bad_arguments(pair: tuple[socket.socket, socket.socket]) -> None:
    from camrelay.relay.rtsp._fastrecv import recv_datagrams

    fd = pair[0].fileno()
    with pytest.raises(ValueError):
        recv_datagrams(fd, b"\x7f\x00\x00", 10)
    with pytest.raises(ValueError):
        recv_datagrams(fd, LOCAL, 0)
    with pytest.raises(ValueError):
        recv_datagrams(-1, LOCAL, 10)
    with pytest.raises(TypeError):
        recv_datagrams(fd, "127.0.0.1", 10)  # type: ignore[arg-type]
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed_fd = closed.fileno()
    closed.close()
    with pytest.raises(OSError) as info:
        recv_datagrams(closed_fd, LOCAL, 10)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("drain", ["c", "python"])
async def test_udp_cameras_through_either_drain(sim: CamSim, drain: str,
                                                monkeypatch: pytest.MonkeyPatch,
                                                clean: None) -> None:  # noqa: F811
    """Five UDP sessions at once: every camera gets every picture, in order, through the C
    drain and through the Python loop (a datagram taken for a stranger's would be lost)."""
    if drain == "python":
        monkeypatch.setattr(rtspclient, "_recv_datagrams", None)
    recorders = [Recorder() for _ in range(5)]
    tasks = [asyncio.create_task(NativeRtspSource(SourceSpec(sim.url("h264"),
                                                             transport="udp")).run(r))
             for r in recorders]
    try:
        for r in recorders:
            await r.wait_units(40, timeout=15)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for r in recorders:
        numbers = decode_numbers(r.units)
        assert len(numbers) == len(r.units) >= 40
        assert all(b == (a + 1) % 200 for a, b in itertools.pairwise(numbers))
