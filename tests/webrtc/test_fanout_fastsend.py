"""The fan-out's C send path (``camrelay.relay.sinks._fastsend``).

It is built in the test environment (so these tests and the C half of
``test_fanout_correctness.py`` cannot silently run only the pure-Python path); it sends
what the Python path sends, byte for byte, with UDP GSO and without (the receiver gets the
same datagrams); where the kernel refuses GSO (a socket with SO_NO_CHECK, UDP-Lite, a path
MTU below the packets) it goes on without it, still byte for byte; bad arguments raise, a
closed socket comes back as a return value with the unit still protected; a real viewer
is served by it, with and without GSO.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pylibsrtp
import pytest

from camrelay.relay.sinks import aiortc_internals, fanout
from camrelay.relay.sinks.webrtc import WebRtcConfig
from camrelay.settings import load_settings
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
FANOUT = WebRtcConfig(host_addresses=HOST_ADDRESSES, connect_timeout=10, join_timeout=5)
SO_NO_CHECK = 11  # asm-generic/socket.h; not in Python's socket module
SO_RCVBUFFORCE = 33
SRTP_TAG = 10  # AES_CM_128_HMAC_SHA1_80, pylibsrtp's default profile
MAX_BATCH = 1024  # packets per sendmmsg() call in _fastsend.c


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


def big_receive_buffer(rx: socket.socket) -> None:
    """Room for a whole 1100-packet unit (root in the test namespace may force it)."""
    rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        tx.bind(("127.0.0.1", 0))
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        big_receive_buffer(rx)
        yield tx, rx


def nal(kind: int, size: int, seed: int) -> bytes:
    """An Annex-B NAL unit of ``size`` bytes without zero bytes (no start code inside)."""
    rnd = random.Random(seed)
    return b"\0\0\0\1" + bytes([kind]) + bytes(rnd.randrange(1, 256) for _ in range(size - 1))


# Units as the camera's packetizer (aiortc's) makes them, and a few it could make
UNITS: dict[str, tuple[bytes, ...]] = {
    # STAP-A (SPS + PPS), the FU-As of a 9 kB IDR slice (aiortc balances them: the first
    # ones are a byte longer), a second slice's FU-As, a NAL unit in one packet
    "keyframe": aiortc_internals.packetize_h264(nal(0x67, 20, 1) + nal(0x68, 6, 2) + nal(0x65, 9000, 3)
                                      + nal(0x65, 3001, 4) + nal(0x41, 1100, 5)),
    "single": aiortc_internals.packetize_h264(nal(0x41, 700, 6)),
    # 100 FU-As: the runs are cut at GSO_MAX_BYTES
    "hundred": aiortc_internals.packetize_h264(nal(0x65, 100 * 1298 - 50, 7)),
    # equal sizes, the last one too; then runs cut at GSO_MAX_SEGMENTS; rising sizes
    "equal": (b"e" * 900,) * 5 + (b"s" * 100,) * 150 + (b"a", b"bb", b"ccc", b"ccc", b"dd"),
}


def gso_runs(lengths: list[int], gso: bool) -> list[int]:
    """The messages (packets in each) the GSO rule makes of packets of these lengths."""
    from camrelay.relay.sinks import _fastsend

    if not gso:
        return [1] * len(lengths)
    runs = []
    for batch in range(0, len(lengths), MAX_BATCH):
        rest = lengths[batch:batch + MAX_BATCH]
        i = 0
        while i < len(rest):
            j, total = i + 1, rest[i]
            while (j < len(rest) and j - i < _fastsend.GSO_MAX_SEGMENTS and rest[j] <= rest[i]
                   and total + rest[j] <= _fastsend.GSO_MAX_BYTES):
                total += rest[j]
                j += 1
                if rest[j - 1] < rest[i]:
                    break
            runs.append(j - i)
            i = j
    return runs


def sender(tx: object, addr: object, owner: pylibsrtp.Session, **overrides: object
           ) -> UnitSender:
    """A UnitSender for ``owner``'s srtp_t; ``overrides`` replace its other arguments."""
    e = ext()
    context = aiortc_internals.srtp_context(owner)
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


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_sends_what_the_python_path_sends(udp_pair: tuple[socket.socket, socket.socket],
                                          gso: bool) -> None:
    tx, rx = udp_pair
    # sequence numbers wrapping, sizes up to the limit, a few runs of two (a size, then a
    # smaller one)
    payloads = tuple(bytes([i]) * (1 + i * 7 % 300) for i in range(100)) + (b"x" * ROOM,)
    srtp = session()
    assert sender(tx, rx.getsockname(), srtp, gso=gso).send_unit(payloads, 65500,
                                                                 0xFEDCBA98) is None
    got = [rx.recv(2048) for _ in payloads]
    assert got == python_packets(payloads, 65500, 0xFEDCBA98)
    # and a receiver's SRTP session takes them: header, marker and payload intact
    receiver = session(inbound=True)
    clear = [receiver.unprotect(p) for p in got]
    assert clear[-1][:4] == bytes([B0, PT | 0x80, 0, 64])  # 65500 + 100, wrapped
    assert [c[8 + len(TAIL):] for c in clear] == list(payloads)


@pytest.mark.parametrize("unit", sorted(UNITS))
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_units_arrive_as_the_python_path_sends_them(
        udp_pair: tuple[socket.socket, socket.socket], unit: str, gso: bool) -> None:
    tx, rx = udp_pair
    payloads = UNITS[unit]
    fast = sender(tx, rx.getsockname(), session(), gso=gso)
    assert fast.gso is gso and fast.gso_error == 0
    assert fast.send_unit(payloads, 65530, 77) is None
    expected = python_packets(payloads, 65530, 77)
    assert [rx.recv(2048) for _ in payloads] == expected  # the same datagrams, in order
    runs = [n for n in gso_runs([len(p) for p in expected], gso) if n > 1]
    assert (fast.gso_messages, fast.gso_packets) == (len(runs), sum(runs))
    if gso and unit != "single":
        assert fast.gso_messages > 0
    assert fast.gso is gso  # nothing refused


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_a_unit_larger_than_one_sendmmsg_batch(udp_pair: tuple[socket.socket, socket.socket],
                                               gso: bool) -> None:
    tx, rx = udp_pair
    payloads = tuple(bytes([i % 256]) * 40 for i in range(MAX_BATCH + 76))
    fast = sender(tx, rx.getsockname(), session(), gso=gso)
    assert fast.send_unit(payloads, 3, 4) is None
    expected = python_packets(payloads, 3, 4)
    assert [rx.recv(2048) for _ in payloads] == expected
    runs = [n for n in gso_runs([len(p) for p in expected], gso) if n > 1]
    assert (fast.gso_messages, fast.gso_packets) == (len(runs), sum(runs))


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_ipv6(gso: bool) -> None:
    assert socket.has_ipv6
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as rx:
        tx.bind(("::1", 0))  # the test namespace's lo has ::1
        rx.bind(("::1", 0))
        rx.settimeout(2)
        big_receive_buffer(rx)
        payloads = (b"a" * 10, b"b" * 20) + UNITS["keyframe"]
        fast = sender(tx, rx.getsockname(), session(), gso=gso)
        assert fast.send_unit(payloads, 7, 9) is None
        assert [rx.recv(2048) for _ in payloads] == python_packets(payloads, 7, 9)
        assert fast.gso is gso and (fast.gso_messages > 0) is gso


# ------------------------------------------------------------- the kernel refuses GSO

def check_fallback(fast: UnitSender, rx: socket.socket, refused: int) -> None:
    """A unit whose first packets go alone, then runs GSO would send: all arrive as the
    Python path sends them, GSO is off for good (``refused``), the next unit is plain."""
    assert fast.gso and fast.gso_error == 0
    payloads = UNITS["keyframe"]
    assert fast.send_unit(payloads, 10, 20) is None
    assert [rx.recv(2048) for _ in payloads] == python_packets(payloads, 10, 20)
    assert not fast.gso and fast.gso_error == refused
    messages = fast.gso_messages
    assert fast.send_unit(payloads, 10 + len(payloads), 21) is None
    assert [rx.recv(2048) for _ in payloads] == python_packets(payloads, 10 + len(payloads), 21)
    assert fast.gso_messages == messages and not fast.gso


def test_a_socket_without_udp_checksums_refuses_gso(
        udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)  # the kernel: EINVAL for UDP_SEGMENT
    fast = sender(tx, rx.getsockname(), session())
    check_fallback(fast, rx, errno.EINVAL)
    assert fast.gso_messages == 0


@pytest.fixture
def small_mtu_address() -> Iterator[str]:
    """A loopback address whose route has a 1000-byte MTU: GSO messages of larger
    packets are refused (EMSGSIZE), the same packets alone are fragmented and delivered."""
    address = "127.9.0.1"
    route = ["ip", "route", "add", "local", f"{address}/32", "dev", "lo", "table", "local",
             "mtu", "lock", "1000"]
    subprocess.run(route, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield address
    finally:
        subprocess.run(["ip", "route", "del", "local", f"{address}/32", "table", "local"],
                       check=False, stderr=subprocess.DEVNULL)


def test_a_path_mtu_below_gso_size_refuses_gso(small_mtu_address: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        tx.bind(("127.0.0.1", 0))
        rx.bind((small_mtu_address, 0))
        rx.settimeout(2)
        big_receive_buffer(rx)
        fast = sender(tx, rx.getsockname(), session())
        # packets below the MTU: GSO works on this path
        small = (b"s" * 500,) * 6 + (b"t" * 100,)
        assert fast.send_unit(small, 1, 2) is None
        assert [rx.recv(2048) for _ in small] == python_packets(small, 1, 2)
        assert (fast.gso_messages, fast.gso_packets) == (1, 7)
        check_fallback(fast, rx, errno.EMSGSIZE)
        assert fast.gso_messages == 1


async def test_the_fan_out_goes_on_without_gso_and_says_so_once(
        udp_pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tx, rx = udp_pair
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    tx.setblocking(False)
    monkeypatch.setattr(fanout, "GSO", True)
    monkeypatch.setattr(fanout, "_gso_refusal_logged", False)
    srtp = session()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, sock=tx)
    try:
        # a FanoutSender wired as start() wires it, without aiortc's peer connection
        viewer = fanout.FanoutSender(source=None, packetizer=None,  # type: ignore[arg-type]
                                     label="viewer 1")
        viewer._b0, viewer._pt, viewer._tail = B0, PT, TAIL
        viewer._protect, viewer._udp, viewer._addr = srtp.protect, transport, rx.getsockname()
        viewer._sendto = transport.sendto
        viewer._fast = viewer._unit_sender(srtp)
        assert viewer._fast is not None and viewer._fast.gso
        payloads = UNITS["keyframe"]
        with caplog.at_level(logging.DEBUG, logger=fanout.__name__):
            for ts in (100, 200):
                seq = viewer._seq
                viewer._send_unit(payloads, ts)
                assert [rx.recv(2048) for _ in payloads] == python_packets(payloads, seq, ts)
        refusals = [r for r in caplog.records if "refused UDP GSO" in r.getMessage()]
        assert len(refusals) == 1 and refusals[0].levelno == logging.INFO
        assert "[viewer 1]" in refusals[0].getMessage()
        assert not viewer._fast.gso and viewer.counters.handed_back == 0
    finally:
        transport.abort()


def test_gso_off() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind(("127.0.0.1", 0))
        fast = sender(tx, ("127.0.0.1", 9), session(), gso=False)
        assert (fast.gso, fast.gso_error, fast.gso_messages, fast.gso_packets) == (False, 0, 0, 0)
        assert sender(tx, ("127.0.0.1", 9), session()).gso is True  # the default
        with pytest.raises(AttributeError):
            fast.gso = True  # type: ignore[misc]
        with pytest.raises(TypeError):
            ext().unit_sender(tx, ("127.0.0.1", 9), 1, 1, B0, PT, TAIL, None,
                              True)  # type: ignore[call-arg]  # gso is keyword-only


def test_the_switch_is_read_at_import_and_is_no_server_setting() -> None:
    code = "from camrelay.relay.sinks import fanout; print(fanout.GSO, fanout._EXTENSION_NOTE)"
    for value, expected in (("1", "False"), ("0", "True"), ("", "True")):
        env = {**os.environ, "CAMRELAY_NO_GSO": value}
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env=env).stdout
        assert out.split()[0] == expected, out
    load_settings(env={"CAMRELAY_NO_GSO": "1"})  # not an unknown setting


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
    payloads = tuple(bytes([i]) * 100 for i in range(70))  # one GSO run, and another
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


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
async def test_a_full_socket_hands_the_rest_to_asyncio(queued_link: tuple[str, str],
                                                       gso: bool) -> None:
    local, remote = queued_link
    loop = asyncio.get_running_loop()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    tx.bind((local, 0))
    tx.setblocking(False)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=tx)
    try:
        unit = sender(transport.get_extra_info("socket"), (remote, 9), session(), gso=gso)
        # with GSO two runs (GSO_MAX_BYTES): the first is taken whole, however small the
        # send buffer, the second not at all
        payloads = tuple(bytes([i]) * 1000 for i in range(100))
        result = unit.send_unit(payloads, 1, 2)
        assert result is not None
        sent, error, status, rest = result
        assert error in (errno.EAGAIN, errno.ENOBUFS) and status == 0
        assert 0 < sent < len(payloads) and sent + len(rest) == len(payloads)
        assert rest == python_packets(payloads, 1, 2)[sent:]  # protected, in order
        if gso:  # counted in packets, a message whole or not at all
            first_run = gso_runs([1000 + 8 + len(TAIL) + SRTP_TAG] * 100, True)[0]
            assert sent == first_run == unit.gso_packets and unit.gso_messages == 1
            assert unit.gso  # a full socket is no refusal
        # what the fan-out does with them: the transport buffers what the socket refuses,
        # and its backlog is what makes a viewer skip to the next keyframe
        for packet in rest:
            transport.sendto(packet, (remote, 9))
        assert transport.get_write_buffer_size() > 0  # type: ignore[attr-defined]
    finally:
        transport.abort()


@pytest.mark.parametrize("path", ["extension-gso", "extension", "python"])
async def test_a_viewer_is_served_by_the_chosen_path(
        path: str, relay_factory: RelayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "python":
        monkeypatch.setattr(fanout, "EXTENSION", None)
    else:
        ext()
        monkeypatch.setattr(fanout, "GSO", path == "extension-gso")
    relay = await relay_factory({1: demo(2)}, config=FANOUT)
    viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        await viewer.wait_frames(20)
        session = next(iter(relay.egress.sessions()))
        assert session.fanout is not None
        assert session.fanout.fast is (path != "python")
        assert session.fanout.counters.handed_back == 0  # loopback takes everything
        fast = session.fanout._fast
        if path == "extension-gso":  # the viewer's ICE socket takes GSO; keyframes use it
            assert fast is not None and fast.gso and fast.gso_packets > 0
        elif path == "extension":
            assert fast is not None and not fast.gso and fast.gso_messages == 0
    finally:
        await viewer.close()
