"""The fan-out's C send path (``camrelay.relay.sinks._fastsend``).

It is built in the test environment (so these tests and the C half of
``test_fanout_correctness.py`` cannot silently run only the pure-Python path); it sends
what the Python path sends, byte for byte; bad arguments raise, a closed socket comes
back as a return value with the unit still protected; a real viewer is served by it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pylibsrtp
import pytest

from camrelay.relay.sinks import fanout
from camrelay.relay.sinks.webrtc import WebRtcConfig
from tests.webrtc.conftest import HOST_ADDRESSES, RelayFactory, demo
from tests.whep_client import WhepViewer

if TYPE_CHECKING:
    from camrelay.relay.sinks._fastsend import UnitSender

pytestmark = pytest.mark.netns

KEY = bytes(range(30))  # AES-128 key + salt; real sessions get theirs from DTLS
SSRC = 0x11223344
B0 = 0x90  # version 2, one header extension
PT = 96
TAIL = struct.pack("!I", SSRC) + bytes([0xBE, 0xDE, 0, 1, 0x10, 0x31, 0, 0])  # MID "1"
ROOM = 1500 - pylibsrtp.SRTP_MAX_TRAILER_LEN - 8 - len(TAIL)  # the largest payload
FANOUT = WebRtcConfig(host_addresses=HOST_ADDRESSES, connect_timeout=10, join_timeout=5,
                      fanout=True)


def ext() -> fanout.Extension:
    if fanout.EXTENSION is None:
        pytest.fail(f"the C send path is not in use: {fanout._EXTENSION_NOTE}")
    return fanout.EXTENSION


def session(inbound: bool = False) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
                              else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


def python_packets(payloads: tuple[bytes, ...], seq: int, ts: int) -> list[bytes]:
    """What the pure-Python path sends (same key: AES-CM output is deterministic)."""
    srtp = session()
    out = []
    for i, payload in enumerate(payloads):
        mpt = PT | 0x80 if i == len(payloads) - 1 else PT
        out.append(srtp.protect(struct.pack("!BBHI", B0, mpt, (seq + i) & 0xFFFF, ts)
                                + TAIL + payload))
    return out


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        tx.bind(("127.0.0.1", 0))
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        yield tx, rx


def sender(tx: object, addr: object, owner: pylibsrtp.Session, **overrides: object
           ) -> UnitSender:
    """A UnitSender for ``owner``'s srtp_t; ``overrides`` replace its other arguments."""
    e = ext()
    context = fanout._srtp_context(owner)
    assert context is not None
    args: dict[str, object] = {"sock": tx, "addr": addr, "srtp": context, "protect": e.protect,
                               "b0": B0, "pt": PT, "tail": TAIL, "owner": owner}
    args.update(overrides)
    return e.unit_sender(**args)  # type: ignore[arg-type]


def test_the_extension_is_built() -> None:
    assert not os.environ.get("CAMRELAY_NO_EXTENSIONS"), \
        "CAMRELAY_NO_EXTENSIONS is set: the tests would cover only the pure-Python path"
    from camrelay.relay.sinks import _fastsend  # the .so next to fanout.py

    assert _fastsend.__file__ is not None and _fastsend.__file__.endswith(".so")
    assert ext().unit_sender is _fastsend.UnitSender


def test_sends_what_the_python_path_sends(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    # more packets than one sendmmsg() batch, sequence numbers wrapping, sizes up to the limit
    # (small ones: the receiving socket's buffer holds them all)
    payloads = tuple(bytes([i]) * (1 + i * 7 % 300) for i in range(100)) + (b"x" * ROOM,)
    srtp = session()
    assert sender(tx, rx.getsockname(), srtp).send_unit(payloads, 65500, 0xFEDCBA98) is None
    got = [rx.recv(2048) for _ in payloads]
    assert got == python_packets(payloads, 65500, 0xFEDCBA98)
    # and a receiver's SRTP session takes them: header, marker and payload intact
    receiver = session(inbound=True)
    clear = [receiver.unprotect(p) for p in got]
    assert clear[-1][:4] == bytes([B0, PT | 0x80, 0, 64])  # 65500 + 100, wrapped
    assert [c[8 + len(TAIL):] for c in clear] == list(payloads)


def test_ipv6() -> None:
    assert socket.has_ipv6
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as rx:
        tx.bind(("::1", 0))  # the test namespace's lo has ::1
        rx.bind(("::1", 0))
        rx.settimeout(2)
        payloads = (b"a" * 10, b"b" * 20)
        assert sender(tx, rx.getsockname(), session()).send_unit(payloads, 7, 9) is None
        assert [rx.recv(2048) for _ in payloads] == python_packets(payloads, 7, 9)


def test_bad_constructor_arguments(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    srtp = session()
    addr = rx.getsockname()
    with pytest.raises(TypeError):
        sender(tx, addr, srtp, srtp="not an address")
    with pytest.raises(ValueError, match="NULL"):
        sender(tx, addr, srtp, protect=0)
    with pytest.raises(TypeError):
        sender(tx, addr, srtp, tail="not bytes")
    with pytest.raises(ValueError, match="tail"):
        sender(tx, addr, srtp, tail=b"\0" * 3)
    with pytest.raises(ValueError, match="tail"):
        sender(tx, addr, srtp, tail=b"\0" * 1024)
    with pytest.raises(ValueError, match="b0"):
        sender(tx, addr, srtp, b0=0x40)  # RTP version 1
    with pytest.raises(ValueError, match="b0"):
        sender(tx, addr, srtp, b0=0x81)  # a CSRC count
    with pytest.raises(ValueError, match="pt"):
        sender(tx, addr, srtp, pt=200)
    with pytest.raises(ValueError, match="IPv4"):
        sender(tx, ("::1", 5000), srtp)  # not the socket's family
    with pytest.raises(ValueError, match="port"):
        sender(tx, ("127.0.0.1", 0), srtp)
    with pytest.raises(TypeError):
        sender(tx, "127.0.0.1:5000", srtp)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            pytest.raises(ValueError, match="datagram"):
        sender(tcp, addr, srtp)
    with pytest.raises(AttributeError):
        sender(object(), addr, srtp)

    class NoSuchFd:
        def fileno(self) -> int:
            return 1_000_000  # never open: a closed descriptor

    with pytest.raises(OSError) as info:
        sender(NoSuchFd(), addr, srtp)
    assert info.value.errno == errno.EBADF
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    with pytest.raises(OSError):
        sender(closed, addr, srtp)


def test_bad_unit_arguments(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    unit = sender(tx, rx.getsockname(), session())
    send = unit.send_unit
    with pytest.raises(TypeError):
        send([b"a list"], 0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload 1"):
        send((b"ok", "text"), 0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        send((b"ok",), "0", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        send((b"ok",), 0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="seq"):
        send((b"ok",), 65536, 0)
    with pytest.raises(OverflowError):
        send((b"ok",), -1, 0)
    with pytest.raises(ValueError, match="seq"):
        send((b"ok",), 0, 1 << 32)
    with pytest.raises(ValueError, match="payload 1"):
        send((b"ok", b"x" * (ROOM + 1)), 0, 0)
    with pytest.raises(ValueError, match="packets per unit"):
        send((b"",) * 40_000, 0, 0)
    assert send((), 0, 0) is None
    # nothing of the refused units went out; a good one still does
    assert send((b"after",), 1, 2) is None
    assert rx.recv(2048) == python_packets((b"after",), 1, 2)[0]
    rx.setblocking(False)
    with pytest.raises(BlockingIOError):
        rx.recv(2048)
    with pytest.raises(TypeError):
        ext().unit_sender()  # type: ignore[call-arg]


def test_a_closed_socket_hands_the_unit_back(
        udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    unit = sender(tx, rx.getsockname(), session())
    tx.close()
    payloads = tuple(bytes([i]) * 100 for i in range(70))
    result = unit.send_unit(payloads, 100, 5)
    assert result is not None
    sent, error, status, rest = result
    assert (sent, error, status) == (0, errno.EBADF, 0)
    assert rest == python_packets(payloads, 100, 5)  # protected, in order, for asyncio


@pytest.fixture
def queued_link() -> Iterator[tuple[str, str]]:
    """A veth pair to another namespace whose relay end queues (tbf, 100 kbit/s, 1 MB):
    what is queued stays charged to the sending socket, so a small send buffer fills."""
    ns = f"camrelay-fastsend-{os.getpid()}"
    local, remote = "192.0.2.5", "192.0.2.6"  # TEST-NET-1, only inside the test namespace

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "crfsend0", "type", "veth", "peer", "name", "crfsend1")
        sh("ip", "link", "set", "crfsend1", "netns", ns)
        sh("ip", "addr", "add", f"{local}/30", "dev", "crfsend0")
        sh("ip", "link", "set", "crfsend0", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{remote}/30", "dev", "crfsend1")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "crfsend1", "up")
        sh("tc", "qdisc", "add", "dev", "crfsend0", "root", "tbf", "rate", "100kbit",
           "burst", "2kb", "limit", "1mb")
        yield local, remote
    finally:
        subprocess.run(["ip", "link", "del", "crfsend0"], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


async def test_a_full_socket_hands_the_rest_to_asyncio(queued_link: tuple[str, str]) -> None:
    local, remote = queued_link
    loop = asyncio.get_running_loop()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    tx.bind((local, 0))
    tx.setblocking(False)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=tx)
    try:
        unit = sender(transport.get_extra_info("socket"), (remote, 9), session())
        payloads = tuple(bytes([i]) * 1000 for i in range(40))
        result = unit.send_unit(payloads, 1, 2)
        assert result is not None
        sent, error, status, rest = result
        assert error in (errno.EAGAIN, errno.ENOBUFS) and status == 0
        assert 0 < sent < len(payloads) and sent + len(rest) == len(payloads)
        assert rest == python_packets(payloads, 1, 2)[sent:]  # protected, in order
        # what the fan-out does with them: the transport buffers what the socket refuses,
        # and its backlog is what makes a viewer skip to the next keyframe
        for packet in rest:
            transport.sendto(packet, (remote, 9))
        assert transport.get_write_buffer_size() > 0
    finally:
        transport.abort()


@pytest.mark.parametrize("path", ["extension", "python"])
async def test_a_viewer_is_served_by_the_chosen_path(
        path: str, relay_factory: RelayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "python":
        monkeypatch.setattr(fanout, "EXTENSION", None)
    else:
        ext()
    relay = await relay_factory({1: demo(2)}, config=FANOUT)
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        await viewer.wait_frames(20)
        session = next(iter(relay.egress.sessions()))
        assert session.fanout is not None
        assert session.fanout.fast is (path == "extension")
        assert session.fanout.counters.handed_back == 0  # loopback takes everything
    finally:
        await viewer.close()
