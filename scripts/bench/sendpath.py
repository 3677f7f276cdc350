#!/usr/bin/env python3
"""Micro-benchmark of the fan-out's per-viewer send path: pure Python against the C
extension (``camrelay.relay.sinks._fastsend``) with and without UDP GSO, one viewer, on
loopback.

    .venv/bin/python scripts/bench/sendpath.py [--rounds 5] [--units 400]
        [--unit-bytes 15600] [--profile aead_aes_256_gcm] [--json out.json]

Each sample times ``FanoutSender._send_unit`` (the real method: header, SRTP, send,
NACK ring and counters) for ``--units`` access units of ``--unit-bytes`` bytes each
(default: one 15.6 kB slice, ~13 RTP packets of ~1.2 kB, like the 720p25 3 Mbit/s
benchmark stream), once with each path -- pure Python, C with one plain ``sendmmsg``
(``gso=False``), C with UDP GSO -- the order rotating from round to round.  SRTP: a
pylibsrtp Session with a fixed key and
``--profile`` (default AEAD_AES_256_GCM, what two aiortc peers negotiate, as in the relay
benchmark; aes128_cm_sha1_80 costs more per byte); no DTLS.  The packets go to a UDP socket
on 127.0.0.1, drained every ``BATCH`` units outside the timing, so the kernel's loopback
delivery is in the figure (as it is in the relay's CPU time) and nothing is dropped.  Nothing leaves 127.0.0.0/8.

Printed per round: CPU µs per packet (process time: user + system, the figure the relay
benchmark's "marginal CPU per added viewer" is made of) and wall µs per packet of each
path and the ratios to Python and C+GSO ÷ C; then medians with min–max over the rounds,
and how many packets went inside GSO messages (on loopback the kernel delivers a GSO
message to the receiver as one unit and cuts it there, so the figure includes the
receive side's segmentation; a NIC without UDP segmentation offload cuts it before the
driver instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pylibsrtp
from aiortc.rtcrtpparameters import (
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from procstat import med

from camrelay.relay.sinks import aiortc_internals, fanout

SSRC = 0x5EED5EED
PT = 96
BATCH = 10  # units per timed batch (~130 packets, ~0.4 MB for the receiver to hold)
PROFILES = {
    "aead_aes_256_gcm": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    "aead_aes_128_gcm": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "aes128_cm_sha1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}


PATHS = ("python", "c", "c-gso")  # "c": one sendmmsg, no GSO
LABELS = {"python": "python", "c": "C", "c-gso": "C+GSO"}


@dataclass
class Sample:
    path: str
    packets: int
    cpu_us: float  # per packet
    wall_us: float  # per packet


def make_tail() -> tuple[int, bytes]:
    """First byte and tail of the header a viewer gets (SSRC + the MID extension)."""
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]))
    template = RtpPacket(payload_type=PT, ssrc=SSRC)
    template.extensions.mid = "0"
    header = template.serialize(extensions)
    return header[0], header[8:]


def srtp_session(profile: int) -> pylibsrtp.Session:
    key = bytes(range(44))  # the longest master key + salt; each profile takes its part
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=profile)
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


def make_sender(transport: asyncio.DatagramTransport, addr: tuple[str, int], profile: int,
                path: str) -> fanout.FanoutSender:
    """A FanoutSender wired by hand as ``start()`` would wire it, without aiortc's peer."""
    sender = fanout.FanoutSender(source=None, packetizer=None,  # type: ignore[arg-type]
                                 label="bench")
    b0, tail = make_tail()
    session = srtp_session(profile)
    sender._b0, sender._pt, sender._tail = b0, PT, tail
    sender._protect = session.protect
    sender._udp = transport
    sender._sendto = transport.sendto
    sender._addr = addr
    if path != "python":
        extension = fanout.EXTENSION
        context = aiortc_internals.srtp_context(session)
        if extension is None or context is None:
            raise SystemExit(f"the C path is not available: {fanout._EXTENSION_NOTE}")
        sender._fast = extension.unit_sender(transport.get_extra_info("socket"), addr, context,
                                             extension.protect, b0, PT, tail, session,
                                             gso=path == "c-gso")
        if path == "c-gso" and not sender._fast.gso:
            raise SystemExit(f"the kernel refuses UDP GSO here (errno {sender._fast.gso_error})")
    return sender


def drain(rx: socket.socket) -> int:
    n = 0
    while True:
        try:
            rx.recv(4096)
        except BlockingIOError:
            return n
        n += 1


def run_sample(sender: fanout.FanoutSender, path: str, payloads: tuple[bytes, ...],
               units: int, rx: socket.socket) -> Sample:
    """``units`` sends, timed in batches of ``BATCH`` units; the receiver is drained
    between batches, untimed (a receive queue that only grows would make the kernel
    allocate slabs on every send, which a relay's viewers do not cause)."""
    send = sender._send_unit
    ts = 0
    before = sender.counters.packets_sent
    cpu = wall = 0.0
    received = 0
    for start in range(0, units, BATCH):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(min(BATCH, units - start)):
            send(payloads, ts)
            ts = (ts + 3600) & 0xFFFFFFFF
        c1, w1 = time.process_time(), time.perf_counter()
        cpu += c1 - c0
        wall += w1 - w0
        received += drain(rx)
    packets = sender.counters.packets_sent - before
    if received != packets:
        raise SystemExit(f"{path}: sent {packets} packets, the receiver got {received}")
    if sender.counters.handed_back:
        raise SystemExit(f"{path}: the kernel refused packets; the figure would be wrong")
    if path == "c-gso" and (sender._fast is None or not sender._fast.gso):
        raise SystemExit(f"{path}: the kernel turned GSO off; the figure would be wrong")
    return Sample(path, packets, cpu / packets * 1e6, wall / packets * 1e6)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    try:  # a batch fits (root may exceed net.core.rmem_max)
        rx.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.setblocking(False)
    addr = rx.getsockname()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        payloads = aiortc_internals.packetize_h264(b"\x00\x00\x00\x01\x41" + os.urandom(args.unit_bytes))
        profile = PROFILES[args.profile]
        senders = {path: make_sender(transport, addr, profile, path) for path in PATHS}
        for name, sender in senders.items():  # warm-up: caches, SRTP streams, allocations
            run_sample(sender, name, payloads, max(10, args.units // 10), rx)
        print(f"unit: {len(payloads)} RTP packets, payload {min(map(len, payloads))}–"
              f"{max(map(len, payloads))} bytes; SRTP {args.profile}; "
              f"{args.units} units per sample; "
              f"load average {os.getloadavg()[0]:.2f}")
        rounds: list[dict[str, Sample]] = []
        for r in range(args.rounds):
            order = PATHS[r % len(PATHS):] + PATHS[:r % len(PATHS)]
            got = {name: run_sample(senders[name], name, payloads, args.units, rx)
                   for name in order}
            rounds.append(got)
            py, c, gso = got["python"], got["c"], got["c-gso"]
            print(f"round {r + 1} ({' then '.join(LABELS[n] for n in order)}): CPU µs/packet "
                  f"python {py.cpu_us:.2f}, C {c.cpu_us:.2f}, C+GSO {gso.cpu_us:.2f}; "
                  f"C+GSO ÷ C {gso.cpu_us / c.cpu_us:.2f}; wall µs/packet python "
                  f"{py.wall_us:.2f}, C {c.wall_us:.2f}, C+GSO {gso.wall_us:.2f}")
        cpu = {p: [g[p].cpu_us for g in rounds] for p in PATHS}
        wall = {p: [g[p].wall_us for g in rounds] for p in PATHS}
        ratios = {"c/python": ("c", "python"), "c-gso/python": ("c-gso", "python"),
                  "c-gso/c": ("c-gso", "c")}
        cpu_ratio = {k: [g[a].cpu_us / g[b].cpu_us for g in rounds] for k, (a, b) in ratios.items()}
        wall_ratio = {k: [g[a].wall_us / g[b].wall_us for g in rounds]
                      for k, (a, b) in ratios.items()}
        print(f"median (min–max) of {args.rounds} rounds:")
        for name, values, ratio in (("CPU ", cpu, cpu_ratio), ("wall", wall, wall_ratio)):
            print(f"  {name} µs/packet: python {med(values['python'])}, C {med(values['c'])}, "
                  f"C+GSO {med(values['c-gso'])}")
            print(f"  {name} ratios: C ÷ python {med(ratio['c/python'])}, C+GSO ÷ python "
                  f"{med(ratio['c-gso/python'])}, C+GSO ÷ C {med(ratio['c-gso/c'])}")
        fast = senders["c-gso"]._fast
        assert fast is not None
        print(f"C+GSO: {fast.gso_packets} of {senders['c-gso'].counters.packets_sent} packets "
              f"in {fast.gso_messages} GSO messages (sizes per unit: "
              f"{[len(p) for p in payloads]})")
        return {"packets_per_unit": len(payloads), "units": args.units,
                "profile": args.profile,
                "rounds": [{k: vars(v) for k, v in g.items()} for g in rounds],
                "cpu_us": {**cpu, **cpu_ratio}, "wall_us": {**wall, **wall_ratio},
                "gso_messages": fast.gso_messages, "gso_packets": fast.gso_packets}
    finally:
        transport.close()
        rx.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--units", type=int, default=400)
    parser.add_argument("--unit-bytes", type=int, default=15600)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="aead_aes_256_gcm")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    result = asyncio.run(main(options))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2))
