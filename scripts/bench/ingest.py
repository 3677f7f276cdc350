#!/usr/bin/env python3
"""Issue 6 ingest benchmark: CPU per watched camera, native RTSP client against PyAV/FFmpeg.

    .venv/bin/python scripts/bench/ingest.py [--rounds 3] [--cameras 16] [--window 10]
        [--warmup 3] [--transports tcp udp] [--clients ffmpeg native]
        [--json out.json]

Needs root: it re-executes itself under ``unshare --net`` in a fresh network namespace
where only ``lo`` (127.0.0.1) is up, so no packet leaves the machine.  There, one camera
simulator (scripts/camsim.py) serves the benchmark clip of scripts/bench/clip.py (720p25
~3 Mbit/s, GOP 2 s) at ``/bench``.  Each round, for each transport, each client in turn
(the order alternates from round to round) gets a fresh Hub process (``--hub``, this
script) that pulls ``--cameras`` RTSP sessions of /bench, one per camera, with one
subscriber each that only drains units.  After ``--warmup`` seconds the harness reads
utime + stime of that process from /proc over ``--window`` seconds and reports
milliseconds of CPU per camera-second, and the ratio of each client to the first (``--clients``) in the same round
and transport.  A window in which any camera delivered fewer than 24 units/s is marked
INVALID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from procstat import cpu_seconds, end_child

NETNS_ENV = "CAMRELAY_INGEST_NETNS"
CLIENTS = ("ffmpeg", "native")
MIN_FPS = 24.0


# --------------------------------------------------------------------------- the Hub process

async def hub_main(args: argparse.Namespace) -> None:
    """Pull ``args.cameras`` sessions; answer ``MARK`` on stdin with the units drained."""
    from camrelay.relay.hub import Hub
    from camrelay.relay.media import StreamKey
    from camrelay.relay.sources.registry import default_sources
    from camrelay.relay.stream import SourceSpec

    spec = SourceSpec(args.url, transport=args.transport, client=args.client)

    async def resolve(key: StreamKey) -> SourceSpec:
        return spec

    counts = [0] * args.cameras

    async def drain(n: int, sub: object) -> None:
        while True:
            await sub.get()  # type: ignore[attr-defined]
            counts[n] += 1

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with Hub(resolve, default_sources(), linger=60) as hub:
        subs = await asyncio.gather(*(hub.subscribe(StreamKey(n + 1), timeout=30)
                                      for n in range(args.cameras)))
        drains = [asyncio.create_task(drain(n, sub)) for n, sub in enumerate(subs)]
        print("READY", flush=True)
        try:
            while line := await reader.readline():
                if line.strip() == b"MARK":
                    dropped = sum(s.dropped for s in hub.status())
                    print(json.dumps({"t": time.monotonic(), "units": counts,
                                      "dropped": dropped}), flush=True)
        finally:
            for task in drains:
                task.cancel()
            await asyncio.gather(*drains, return_exceptions=True)


class HubProcess:
    def __init__(self, url: str, client: str, transport: str, cameras: int) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--hub", "--url", url,
               "--client", client, "--transport", transport, "--cameras", str(cameras)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.close()
            raise RuntimeError(f"hub ({client}, {transport}) did not start: {line!r}")

    def mark(self) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("MARK\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        end_child(self.proc, 15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --------------------------------------------------------------------------- measuring

@dataclass
class Window:
    round: int
    transport: str
    client: str
    cpu_ms_per_camera_s: float
    min_fps: float
    mean_fps: float
    dropped: int
    valid: bool


def measure(url: str, client: str, transport: str, rnd: int,
            args: argparse.Namespace) -> Window:
    hub = HubProcess(url, client, transport, args.cameras)
    try:
        time.sleep(args.warmup)
        a, cpu0 = hub.mark(), cpu_seconds(hub.proc.pid)
        t0 = time.monotonic()
        time.sleep(args.window)
        b, cpu1 = hub.mark(), cpu_seconds(hub.proc.pid)
        elapsed = time.monotonic() - t0
    finally:
        hub.close()
    span = float(b["t"]) - float(a["t"])  # type: ignore[arg-type]
    fps = [(y - x) / span for x, y in zip(a["units"], b["units"])]  # type: ignore[call-overload]
    dropped = int(b["dropped"]) - int(a["dropped"])  # type: ignore[call-overload]
    ms = (cpu1 - cpu0) * 1000 / elapsed / args.cameras
    return Window(rnd, transport, client, ms, min(fps), statistics.mean(fps), dropped,
                  min(fps) >= MIN_FPS)


def report(windows: list[Window], transports: list[str], clients: list[str]) -> str:
    base = clients[0]
    others = clients[1:]
    lines = ["| transport | round | " + " | ".join(f"{c} ms/camera-s" for c in clients)
             + "".join(f" | {c} ÷ {base}" for c in others) + " |",
             "|---" * (2 + len(clients) + len(others)) + "|"]
    for transport in transports:
        ratios: dict[str, list[float]] = {c: [] for c in others}
        for rnd in sorted({w.round for w in windows}):
            row = {w.client: w for w in windows if w.round == rnd and w.transport == transport}
            if set(row) != set(clients):
                continue
            cells = [f"{row[c].cpu_ms_per_camera_s:.2f}" + ("" if row[c].valid else " INVALID")
                     for c in clients]
            for c in others:
                ratios[c].append(row[c].cpu_ms_per_camera_s / row[base].cpu_ms_per_camera_s)
            lines.append(f"| {transport} | {rnd} | " + " | ".join(cells)
                         + "".join(f" | {ratios[c][-1]:.2f}" for c in others) + " |")
        med = {c: statistics.median(w.cpu_ms_per_camera_s for w in windows
                                    if w.transport == transport and w.client == c)
               for c in clients if any(w.transport == transport and w.client == c
                                       for w in windows)}
        if len(med) == len(clients) and all(ratios.values()):
            lines.append(f"| {transport} | median | " + " | ".join(f"{med[c]:.2f}" for c in clients)
                         + "".join(f" | {statistics.median(ratios[c]):.2f}" for c in others)
                         + " |")
    lines.append("")
    lines.append("Per window: units/s per camera (min / mean), units dropped by the hub:")
    for w in windows:
        lines.append(f"- round {w.round} {w.transport} {w.client}: {w.min_fps:.1f} / "
                     f"{w.mean_fps:.1f} fps, dropped {w.dropped}"
                     + ("" if w.valid else " INVALID(<24 fps)"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip

    from tests.camsim_fixture import CamSim

    entry = ensure_clip(DEFAULT_OUT)
    load = Path("/proc/loadavg").read_text().split()[:3]
    command = " ".join([".venv/bin/python scripts/bench/ingest.py", *sys.argv[1:]])
    header = (f"{command}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.node()} "
              f"{os.cpu_count()} CPUs {platform.processor() or platform.machine()}; "
              f"load before {' '.join(load)}; {args.cameras} cameras × 1 draining subscriber; "
              f"clip {entry['width']}x{entry['height']}@{entry['fps']} "
              f"{int(entry['bitrate']) / 1e6:.2f} Mbit/s GOP {int(entry['gop']) / 25:g}s; "
              f"window {args.window:g}s after {args.warmup:g}s warm-up")
    print(header, flush=True)
    sim = CamSim(DEFAULT_OUT)
    windows: list[Window] = []
    try:
        url = sim.url("/bench")
        for rnd in range(1, args.rounds + 1):
            for transport in args.transports:
                order = args.clients if rnd % 2 else list(reversed(args.clients))
                for client in order:
                    w = measure(url, client, transport, rnd, args)
                    windows.append(w)
                    print(f"round {rnd} {transport} {client}: {w.cpu_ms_per_camera_s:.2f} "
                          f"ms/camera-s, {w.min_fps:.1f}-{w.mean_fps:.1f} fps"
                          + ("" if w.valid else " INVALID"), flush=True)
    finally:
        sim.close()
    text = header + "\n\n" + report(windows, args.transports, args.clients)
    print("\n" + text, flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"header": header, "windows": [asdict(w) for w in windows], "report": text},
            indent=2))
    return 0 if all(w.valid for w in windows) else 1


# --------------------------------------------------------------------------- main

def in_netns() -> bool:
    return (os.environ.get(NETNS_ENV) == "1"
            and [name for _, name in socket.if_nameindex()] == ["lo"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--transports", nargs="+", choices=("tcp", "udp"),
                        default=["tcp", "udp"])
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS),
                        help="the first is the baseline of the ratios")
    parser.add_argument("--json", default=str(ROOT / "tests/.cache/bench/ingest.json"))
    # the Hub process
    parser.add_argument("--hub", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=("tcp", "udp"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hub:
        asyncio.run(hub_main(args))
        return 0
    if in_netns():
        return run(args)
    if os.geteuid() != 0:
        print("ingest.py needs root for its network namespace (unshare --net)", file=sys.stderr)
        return 2
    script = f"set -e; ip link set lo up; export {NETNS_ENV}=1; exec \"$@\""
    return subprocess.call(["unshare", "--net", "--fork", "--", "bash", "-c", script,
                            "ingest", sys.executable, *sys.argv])


if __name__ == "__main__":
    sys.exit(main())
