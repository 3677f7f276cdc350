"""A packet tap for the benchmark's network namespace, and the added-latency analysis.

    .venv/bin/python scripts/bench/tap.py --out FILE [--syn-port PORT]

One ``AF_PACKET`` socket (``SOCK_RAW``, every protocol, not bound to an interface, so it
sees ``lo`` and ``bench0``: the only interfaces in the namespace; both have a 14-byte
Ethernet header) with a classic BPF filter, so the kernel hands over only what is needed
and only its headers:

* RTP mode (default): IPv4 UDP packets whose payload starts like RTP (version 2) and is
  not RTCP (second byte outside 192..223), and only the **outgoing** copy of each packet
  (``PACKET_OUTGOING``: on ``lo`` every packet is seen twice, once leaving and once
  arriving).  STUN, DTLS and (S)RTCP are dropped in the kernel; at most 78 bytes of each
  packet are copied (Ethernet + IP + UDP + the 12-byte RTP header, which SRTP leaves in
  clear).
* ``--syn-port PORT``: TCP SYNs (without ACK) to PORT: every connection opened to the
  camera simulator's RTSP port, whatever RTSP methods follow.

UDP GSO: a sender may hand the kernel several equal-sized datagrams as one message
(``UDP_SEGMENT``; camrelay's C send path does); on loopback that message stays one packet
all the way to the receiving socket, so the tap sees it once, with the first datagram's
RTP header.  ``PACKET_VNET_HDR`` puts the kernel's virtio-net header in front of each
packet: its ``gso_size`` and the IP length give the number of datagrams in it, which the
record keeps (their sequence numbers follow the first's; a GSO message never spans two
frames, so they share its timestamp).

The time of each packet is the kernel's (``SO_TIMESTAMPNS``: where the packet is handed to
the device; on loopback its receive timestamp is within microseconds of it).  The tap
prints ``READY``; on SIGTERM it writes one fixed-size record per packet to FILE and prints
one JSON line: packets, kernel drops, packets per interface, its own CPU seconds.

The analysis (:func:`added_latency`) pairs each relay→viewer RTP flow with the camera→relay
flow: see its docstring.  :class:`TapProcess` runs the tap from the harness.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_VNET_HDR = 15
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, _offset
ETH = 14  # link-layer header on lo and on bench0 (Ethernet)
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: a 64-bit struct timespec on x86-64
SO_RCVBUFFORCE = 33
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
PACKET_OUTGOING = 4
SNAP = ETH + 64

# one record per packet: kernel time (ns), IPv4 source, destination, ports, RTP byte 1
# (marker | payload type), sequence number, timestamp, SSRC, IP total length, interface,
# GSO segment size (0: none), datagrams in the packet
RECORD = struct.Struct("<qIIHHBHIIHBHB")


def dtype() -> Any:
    """The records as a numpy structured type (numpy is imported by the analysis only: the
    tap process stays small)."""
    import numpy as np

    dt = np.dtype([("t", "<i8"), ("src", "<u4"), ("dst", "<u4"), ("sport", "<u2"),
                   ("dport", "<u2"), ("b1", "u1"), ("seq", "<u2"), ("ts", "<u4"),
                   ("ssrc", "<u4"), ("iplen", "<u2"), ("ifindex", "u1"), ("gso", "<u2"),
                   ("segs", "u1")])
    assert dt.itemsize == RECORD.size
    return dt


def ip(address: str) -> int:
    """Dotted IPv4 -> the integer stored in records (host order)."""
    return int.from_bytes(socket.inet_aton(address), "big")


# --------------------------------------------------------------------------- classic BPF

def _bpf(program: list[tuple[int, str | int, str | int, int] | str]) -> bytes:
    """Assemble (code, jt, jf, k) with labels (strings) as jump targets."""
    labels, pos = {}, 0
    for item in program:
        if isinstance(item, str):
            labels[item] = pos
        else:
            pos += 1
    out, pos = [], 0
    for item in program:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        jt = labels[jt] - pos - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pos - 1 if isinstance(jf, str) else jf
        out.append(struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF))
        pos += 1
    return b"".join(out)


LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_B_IND, LDX_MSH = 0x20, 0x28, 0x30, 0x50, 0xB1
JEQ, JGT, JGE, JSET, AND, RET = 0x15, 0x25, 0x35, 0x45, 0x54, 0x06


def rtp_filter() -> bytes:
    return _bpf([
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        (JEQ, 0, "drop", PACKET_OUTGOING),
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL),
        (JEQ, 0, "drop", 0x0800),
        (LD_B_ABS, 0, 0, ETH + 9),  # IP protocol
        (JEQ, 0, "drop", 17),
        (LD_H_ABS, 0, 0, ETH + 6),  # fragment offset
        (JSET, "drop", 0, 0x1FFF),
        (LDX_MSH, 0, 0, ETH),  # X = IP header length
        (LD_B_IND, 0, 0, ETH + 8),  # first byte of the UDP payload
        (AND, 0, 0, 0xC0),
        (JEQ, 0, "drop", 0x80),  # RTP/RTCP version 2
        (LD_B_IND, 0, 0, ETH + 9),
        (JGE, 0, "accept", 192),
        (JGT, "accept", "drop", 223),  # 192..223: RTCP
        "accept",
        (RET, 0, 0, SNAP),
        "drop",
        (RET, 0, 0, 0),
    ])


def syn_filter(port: int) -> bytes:
    return _bpf([
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        (JEQ, 0, "drop", PACKET_OUTGOING),
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL),
        (JEQ, 0, "drop", 0x0800),
        (LD_B_ABS, 0, 0, ETH + 9),
        (JEQ, 0, "drop", 6),  # TCP
        (LDX_MSH, 0, 0, ETH),
        (0x48, 0, 0, ETH + 2),  # ldh [x+2]: destination port
        (JEQ, 0, "drop", port),
        (LD_B_IND, 0, 0, ETH + 13),  # TCP flags
        (AND, 0, 0, 0x12),
        (JEQ, "accept", "drop", 0x02),  # SYN without ACK
        "accept",
        (RET, 0, 0, SNAP),
        "drop",
        (RET, 0, 0, 0),
    ])


def open_socket(program: bytes) -> tuple[socket.socket, Any]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    code = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 * 2**20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.setblocking(False)
    try:  # what arrived before the filter was attached
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass
    sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)  # reset the counters
    sock.settimeout(0.2)
    return sock, code  # the filter's buffer must outlive the socket's set-up only


# IPv4 header (no options) + ports + the 12-byte RTP header (for TCP: whatever follows)
HEADERS = struct.Struct("!BBHHHBBHIIHHHHBBHII")


def record_loop(sock: socket.socket, stop: list[bool]) -> tuple[bytearray, Counter[str]]:
    out = bytearray()
    per_if: Counter[str] = Counter()
    at = VNET_HDR.size + ETH  # the IP header, after the virtio-net and link headers
    buf = bytearray(at + HEADERS.size + 16)
    anc = socket.CMSG_SPACE(16)
    pack, headers, vnet = RECORD.pack, HEADERS.unpack_from, VNET_HDR.unpack_from
    timespec = struct.Struct("qq").unpack_from
    index = {name: i for i, name in socket.if_nameindex()}
    while not stop:
        try:
            n, ancdata, _flags, addr = sock.recvmsg_into([buf], anc)
        except (TimeoutError, InterruptedError):
            continue
        if n < at + HEADERS.size or not ancdata:
            continue
        sec, nsec = timespec(ancdata[0][2])
        _vflags, gso_type, _hlen, gso_size, _cs, _co = vnet(buf)
        (vihl, _tos, iplen, _id, _frag, _ttl, _proto, _sum, src, dst, sport, dport, _len,
         _csum, _b0, b1, seq, rtpts, ssrc) = headers(buf, at)
        if vihl != 0x45:  # IP options: not in the bench
            continue
        segs = 1
        if gso_type and gso_size:
            segs = min(255, -(-(iplen - 28) // gso_size))
        else:
            gso_size = 0
        per_if[addr[0]] += 1
        out += pack(sec * 1_000_000_000 + nsec, src, dst, sport, dport, b1, seq, rtpts,
                    ssrc, iplen, index.get(addr[0], 0) & 0xFF, gso_size, segs)
    return out, per_if


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--syn-port", type=int, default=None)
    args = parser.parse_args()
    program = rtp_filter() if args.syn_port is None else syn_filter(args.syn_port)
    sock, _code = open_socket(program)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    start, cpu0 = time.monotonic(), _cpu()
    print("READY", flush=True)
    data, per_if = record_loop(sock, stop)
    packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    sock.close()
    args.out.write_bytes(bytes(data))
    print(json.dumps({"records": len(data) // RECORD.size, "kernel_packets": packets,
                      "drops": drops, "interfaces": dict(per_if), "cpu_s": _cpu() - cpu0,
                      "wall_s": time.monotonic() - start}), flush=True)
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- harness side

class TapProcess:
    """``tap.py`` as a child process: ``stop()`` returns its summary and its records."""

    def __init__(self, out: Path, *, syn_port: int | None = None) -> None:
        self.out = out
        cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out)]
        if syn_port is not None:
            cmd += ["--syn-port", str(syn_port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the packet tap did not start (needs root in the namespace)")

    def kill(self) -> None:
        """End the tap without its records (the measurement failed)."""
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.out.unlink(missing_ok=True)

    def stop(self, keep: Path | None = None) -> tuple[dict[str, Any], Any]:
        """Stop the tap; its records (and, with ``keep``, the file moved there)."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        summary: dict[str, Any] = json.loads(line)
        import numpy as np

        records = np.fromfile(self.out, dtype=dtype())
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            self.out.replace(keep)
        else:
            self.out.unlink(missing_ok=True)
        return summary, records


# --------------------------------------------------------------------------- analysis

@dataclass
class Frames:
    """One RTP flow's frames: RTP timestamp -> time of its last packet (ns), bytes."""

    at: dict[int, int] = field(default_factory=dict)
    size: dict[int, int] = field(default_factory=dict)
    packets: int = 0  # datagrams (a GSO packet counts all of its own)
    gso: int = 0  # GSO packets among them

    def keyframes(self) -> list[int]:
        if len(self.size) < 5:
            return []
        limit = 4 * statistics.median(self.size.values())
        return [ts for ts, s in self.size.items() if s > limit and ts in self.at]


def frames_of(rows: np.ndarray) -> Frames:
    """Rows of one flow in time order.  A frame's time is that of the last packet with its
    timestamp (its marker packet, unless it sits inside a GSO packet: then that packet);
    a sequence number seen before (a retransmission on the same SSRC) is skipped, and so
    is the flow's last frame, which may have been cut off by the end of the capture."""
    f = Frames()
    seen: set[int] = set()
    for t, seq, ts, iplen, segs in zip(rows["t"].tolist(), rows["seq"].tolist(),
                                       rows["ts"].tolist(), rows["iplen"].tolist(),
                                       rows["segs"].tolist()):
        if seq in seen:
            continue
        seen.update((seq + i) & 0xFFFF for i in range(segs))
        f.packets += segs
        f.gso += segs > 1
        f.size[ts] = f.size.get(ts, 0) + iplen
        f.at[ts] = t
    if f.at:
        last = max(f.at, key=f.at.__getitem__)
        del f.at[last]
    return f


def flows(records: np.ndarray, src: int) -> dict[tuple[int, ...], Frames]:
    """Flows from ``src`` (an IPv4 address as an int), one per 5-tuple: the SSRC with the
    most packets (the media; RTX has its own SSRC and payload type)."""
    import numpy as np

    sel = records[records["src"] == src]
    out: dict[tuple[int, ...], Frames] = {}
    if not len(sel):
        return out
    keys = np.stack([sel["sport"], sel["dst"], sel["dport"]], axis=1)
    for key in {tuple(k) for k in keys.tolist()}:
        rows = sel[(sel["sport"] == key[0]) & (sel["dst"] == key[1]) & (sel["dport"] == key[2])]
        ssrcs = Counter(rows["ssrc"].tolist())
        ssrc = ssrcs.most_common(1)[0][0]
        rows = rows[rows["ssrc"] == ssrc]
        out[(src, *key)] = frames_of(np.sort(rows, order="t"))
    return out


@dataclass
class FlowMatch:
    delays_ms: list[float]
    frames: int  # viewer frames in the capture
    offset: int | None  # viewer RTP timestamp - camera RTP timestamp (mod 2**32)
    method: str  # "keyframe" or "min-nonneg"
    agrees: bool  # both methods found the same offset
    negative: int  # delays < 0 (a wrong offset would give many)
    keys: int  # viewer keyframes paired with a camera frame
    keys_ok: int  # ... that is a keyframe too (a wrong offset pairs them with P frames)


def _apply(cam: Frames, view: Frames, k: int) -> tuple[list[float], int, int, int]:
    delays, neg = [], 0
    for ts, t in view.at.items():
        tc = cam.at.get((ts - k) & 0xFFFFFFFF)
        if tc is None:
            continue
        d = (t - tc) / 1e6
        delays.append(d)
        neg += d < 0
    cam_keys = set(cam.keyframes())
    paired = [(ts - k) & 0xFFFFFFFF for ts in view.keyframes()
              if (ts - k) & 0xFFFFFFFF in cam.at]
    return delays, neg, len(paired), sum(c in cam_keys for c in paired)


def _keyframe_offset(cam: Frames, view: Frames) -> int | None:
    """Each viewer keyframe goes with the camera's latest keyframe that arrived before it
    (the relays add far less than one GOP); the offset most keyframes agree on."""
    cam_keys = sorted((cam.at[ts], ts) for ts in cam.keyframes())
    votes: Counter[int] = Counter()
    for ts in view.keyframes():
        t = view.at[ts]
        before = [c for c in cam_keys if c[0] <= t]
        if before and t - before[-1][0] < 1.5e9:
            votes[(ts - before[-1][1]) & 0xFFFFFFFF] += 1
    return votes.most_common(1)[0][0] if votes else None


def _min_nonneg_offset(cam: Frames, view: Frames) -> int | None:
    """The offset that maps the most frames with no negative delay, the smallest delays
    first (candidates: the viewer's first frame against every camera frame that arrived
    up to 1 s before it)."""
    if not view.at:
        return None
    ts0, t0 = min(view.at.items(), key=lambda kv: kv[1])
    best: tuple[float, float, int] | None = None
    for cts, ct in cam.at.items():
        if not 0 <= t0 - ct <= 1e9:
            continue
        k = (ts0 - cts) & 0xFFFFFFFF
        delays, neg, _, _ = _apply(cam, view, k)
        if not delays or neg > 0.005 * len(delays) or len(delays) < 0.5 * len(view.at):
            continue
        score = (-len(delays), statistics.median(delays), k)
        if best is None or score < best:
            best = score
    return None if best is None else int(best[2])


def match(cam: Frames, view: Frames) -> FlowMatch:
    by_key = _keyframe_offset(cam, view)
    by_min = _min_nonneg_offset(cam, view)
    k, method = (by_key, "keyframe") if by_key is not None else (by_min, "min-nonneg")
    if k is None:
        return FlowMatch([], len(view.at), None, "none", False, 0, 0, 0)
    delays, neg, keys, keys_ok = _apply(cam, view, k)
    return FlowMatch(delays, len(view.at), k, method, by_key == by_min, neg, keys, keys_ok)


@dataclass
class Latency:
    viewers: int
    frames: int  # viewer frames captured
    matched: int  # of which paired with a camera frame
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    negative: int
    disagree: int  # viewer flows whose two offset methods disagree
    keys: int  # viewer keyframes paired with a camera frame
    keys_ok: int  # ... with a camera keyframe
    camera_flows: int
    camera_gap_ms: float | None = None  # longest time between two camera frames on the wire
    datagrams: int = 0  # RTP datagrams the relay sent to the viewers ...
    gso_packets: int = 0  # ... of which went in this many GSO packets (with the others)
    note: str = ""


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs), q, method="higher"))


def added_latency(records: np.ndarray, *, camera_src: str = "127.0.0.1",
                  relay_src: str = "127.0.0.2", busiest_camera: bool = False) -> Latency:
    """Added latency per frame and viewer, pooled over the viewers of the capture.

    Camera flows are the RTP packets sent from ``camera_src`` (the simulator on
    127.0.0.1), viewer flows those sent from ``relay_src`` (every relay offers only
    127.0.0.2 for ICE, and viewers send no RTP).  A frame is an RTP timestamp; its time is
    that of its last packet (see :func:`frames_of`).  Every relay rewrites timestamps with
    a constant offset per viewer: each viewer keyframe (a frame > 4× the median size) is
    paired with the camera keyframe that arrived last before it, and the offset most
    keyframes agree on is taken; then every viewer frame whose timestamp minus the offset
    is a camera frame gives one delay.  The other method (the offset that makes the delays
    non-negative and smallest) is computed as a check: it agrees while the added latency
    stays below one frame interval, and picks a frame too late beyond that (40 ms at 25
    fps: a constant frame offset cannot be seen in timestamps, only in frame sizes).
    Needs exactly one camera flow (the 1-camera windows); with ``busiest_camera`` the
    camera flow with the most frames is the watched one and the others are ignored (the
    short sessions of health probes, health_load.py).  ``camera_gap_ms`` (the longest
    pause between two camera frames, 40 ms at 25 fps) shows when the camera simulator
    itself was starved of CPU: the machine, not the relay, was stalled then.
    """
    cams = flows(records, ip(camera_src))
    views = flows(records, ip(relay_src))
    if busiest_camera and len(cams) > 1:
        busiest = max(cams, key=lambda key: len(cams[key].at))
        cams = {busiest: cams[busiest]}
    if len(cams) != 1:
        return Latency(len(views), 0, 0, None, None, None, 0, 0, 0, 0, len(cams),
                       note=f"{len(cams)} camera flows (needs 1)")
    cam = next(iter(cams.values()))
    arrivals = sorted(cam.at.values())
    gap = max((b - a for a, b in pairwise(arrivals)), default=0) / 1e6
    delays: list[float] = []
    frames = neg = disagree = keys = keys_ok = 0
    datagrams = sum(v.packets for v in views.values())
    gso = sum(v.gso for v in views.values())
    for view in views.values():
        m = match(cam, view)
        frames += m.frames
        neg += m.negative
        disagree += not m.agrees
        delays += m.delays_ms
        keys += m.keys
        keys_ok += m.keys_ok
    if not delays:
        return Latency(len(views), frames, 0, None, None, None, neg, disagree, keys, keys_ok,
                       1, gap, datagrams, gso, note="no frame matched")
    return Latency(len(views), frames, len(delays), percentile(delays, 50),
                   percentile(delays, 99), max(delays), neg, disagree, keys, keys_ok, 1, gap,
                   datagrams, gso)


if __name__ == "__main__":
    sys.exit(main())
