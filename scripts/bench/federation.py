#!/usr/bin/env python3
"""One extra level: a camera pulled by an upper camrelay from a lower one (whep+http).

    .venv/bin/python scripts/bench/federation.py [--rounds 3] [--window 8] [--joins 5]

Needs root (a fresh loopback-only network namespace, as perf.py: ``lo`` and ``bench0``
with 127.0.0.2, the only ICE address).  The camera simulator serves the 720p25 GOP 2 s
clip of scripts/bench/clip.py at /bench (RTP over UDP); two real ``camrelay serve``
processes on stores set up through the CLI: the **lower** one pulls the camera, the
**upper** one has a camera ``whep+http://…/whep/<lower id>`` whose password is the lower's
viewer token.  Both run with ``relay.linger_seconds = 1``.  Per round:

* **Added latency and CPU** (windows of ``--window`` s, one non-decoding viewer,
  scripts/bench/viewers.py): window A, the viewer on the lower (one level, the baseline);
  window B, the viewer on the upper.  A packet tap (tap.py) records the camera's and the
  relays' RTP headers; each relay→viewer flow is matched to the camera flow
  (``tap.match``), the flows sent from the upper process's sockets being the viewer's of
  window B.  CPU is utime + stime of each server's process tree over the window.
* **Time to first frame** (POST → first decoded frame, tests/whep_client.py), ``--joins``
  times each: a viewer of the lower, cold (nothing running) and warm (another viewer
  watching); a viewer of the upper, cold (neither level running the camera: the RTSP
  PLAY count at the simulator is checked to have grown) and warm.  Between cold joins the
  script waits out both lingers (4 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from camrelay_relay import Server, build_store, cli
from perf import Viewers, in_own_netns
from procstat import cpu_seconds
from relays import free_port
from tap import TapProcess, flows, ip, match, percentile

SERVER_ENV = {"CAMRELAY_HEALTH__ENABLED": "false", "CAMRELAY_RELAY__LINGER_SECONDS": "1"}
COLD_WAIT = 4.0  # both lingers (1 s each) and the session's DELETE, with margin


def udp_ports(pid: int) -> set[int]:
    """Local UDP ports of the sockets of ``pid``'s process tree."""
    from procstat import tree

    inodes: set[str] = set()
    for p in tree(pid):
        fd_dir = Path(f"/proc/{p}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def latency(records: Any, viewer_ports: set[int] | None) -> tuple[list[float], int]:
    """Delays (ms) of the relay→viewer flows (from ``viewer_ports`` when given), and how
    many flows were measured."""
    cams = flows(records, ip("127.0.0.1"))
    if len(cams) != 1:
        raise RuntimeError(f"{len(cams)} camera flows in the capture (needs 1)")
    cam = next(iter(cams.values()))
    delays: list[float] = []
    n = 0
    for key, view in flows(records, ip("127.0.0.2")).items():
        if viewer_ports is not None and key[1] not in viewer_ports:
            continue
        delays += match(cam, view).delays_ms
        n += 1
    return delays, n


def window(name: str, relay: Any, servers: dict[str, int], seconds: float, log_dir: Path,
           upper_pid: int | None) -> dict[str, Any]:
    viewers = Viewers(relay, [1], decode=False, clip_frames=200, log_dir=log_dir)
    try:
        time.sleep(2.0)  # warm-up after the first media (a measurement window, not a signal)
        ports = udp_ports(upper_pid) if upper_pid is not None else None
        tap = TapProcess(Path(tempfile.mkdtemp(prefix="bench-fed-")) / "tap.bin")
        cpu0 = {k: cpu_seconds(pid) for k, pid in servers.items()}
        t0 = time.monotonic()
        time.sleep(seconds)  # the measurement window
        cpu1 = {k: cpu_seconds(pid) for k, pid in servers.items()}
        elapsed = time.monotonic() - t0
        _, records = tap.stop()
    finally:
        viewers.close()
    delays, n = latency(records, ports)
    if not delays:
        raise RuntimeError(f"window {name}: no viewer frame matched a camera frame")
    return {"p50": percentile(delays, 50), "p99": percentile(delays, 99), "flows": n,
            "frames": len(delays),
            "cpu": {k: (cpu1[k] - cpu0[k]) * 1000 / elapsed for k in servers}}


async def first_frame(url: str, camera: int, token: str) -> float:
    import aiohttp

    from tests.whep_client import WhepViewer

    async with aiohttp.ClientSession() as http:
        viewer = await WhepViewer.connect(http, url, camera, token, purpose="bench",
                                          read_numbers=False)
        try:
            async with asyncio.timeout(20):
                await viewer.first_frame.wait()
            return viewer.time_to_first_frame * 1000
        finally:
            await viewer.close()


async def joins(level: Any, n: int, warm: bool, sim: Any, check_cold: bool) -> list[float]:
    import aiohttp

    from tests.whep_client import WhepViewer

    out = []
    for _ in range(n):
        holder = None
        http = aiohttp.ClientSession()
        try:
            if warm:
                holder = await WhepViewer.connect(http, level.url, level.camera, level.token,
                                                  purpose="bench", read_numbers=False)
                async with asyncio.timeout(20):
                    await holder.first_frame.wait()
            else:
                await asyncio.sleep(COLD_WAIT)  # both levels' lingers run out
            plays = sim.play_count("/bench")
            out.append(await first_frame(level.url, level.camera, level.token))
            if check_cold and not warm and sim.play_count("/bench") == plays:
                # the simulator prints PLAY when it starts; give its stdout a moment
                await asyncio.sleep(0.5)
                if sim.play_count("/bench") == plays:
                    raise RuntimeError("a cold join did not open a new RTSP session")
        finally:
            if holder is not None:
                await holder.close()
            await http.close()
    return out


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs):.0f} ms (min {min(xs):.0f}, max {max(xs):.0f})"


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    entry = ensure_clip(DEFAULT_OUT)
    sim = CamSim(DEFAULT_OUT)
    servers: list[Server] = []
    try:
        with (log_dir / "federation.log").open("ab") as log:
            lower_port = free_port()
            lower_store = build_store(sim.url("/bench"), 1, lower_port, log)
            lower = Server(lower_store.copy(), lower_port, log, extra=SERVER_ENV)
            servers.append(lower)
            whep = (f"whep+http://127.0.0.1:{lower_port}/whep/{lower_store.camera_ids[0]}"
                    "?purpose=bench")
            upper_port = free_port()
            upper_store = build_store(whep, 1, upper_port, log, transport="tcp")
            upper = Server(upper_store.copy(), upper_port, log, extra=SERVER_ENV)
            servers.append(upper)
            cli("camera", "update", str(upper_store.camera_ids[0]), "--password-stdin",
                url=upper.url, token=upper_store.admin_token,
                stdin=lower_store.viewer_token + "\n")
        lower_level = SimpleNamespace(
            name="lower", signal="whep", url=lower.url, token=lower_store.viewer_token,
            camera=lower_store.camera_ids[0], camera_id=lambda _: lower_store.camera_ids[0])
        upper_level = SimpleNamespace(
            name="upper", signal="whep", url=upper.url, token=upper_store.viewer_token,
            camera=upper_store.camera_ids[0], camera_id=lambda _: upper_store.camera_ids[0])
        pids = {"lower": lower.pid, "upper": upper.pid}
        print(f"federation.py rounds={args.rounds} window={args.window:g}s joins={args.joins}; "
              f"{os.cpu_count()} CPUs; load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
              f"clip {entry['width']}x{entry['height']}@{entry['fps']} "
              f"{int(entry['bitrate']) / 1e6:.2f} Mbit/s", flush=True)
        a_rounds, b_rounds = [], []
        for n in range(args.rounds):
            time.sleep(COLD_WAIT)
            a = window("A", lower_level, pids, args.window, log_dir, None)
            time.sleep(COLD_WAIT)
            b = window("B", upper_level, pids, args.window, log_dir, upper.pid)
            print(f"round {n + 1}: A {a}\n         B {b}", flush=True)
            a_rounds.append(a)
            b_rounds.append(b)
        ttff = {}
        for name, level in (("lower", lower_level), ("upper", upper_level)):
            for warm in (False, True):
                ttff[(name, warm)] = asyncio.run(joins(level, args.joins, warm, sim, True))
        plays = sim.play_count("/bench")
    finally:
        for server in reversed(servers):
            server.stop()
        sim.close()

    def med(rounds: list[dict[str, Any]], fn: Any) -> float:
        return statistics.median(fn(r) for r in rounds)

    a50, b50 = med(a_rounds, lambda r: r["p50"]), med(b_rounds, lambda r: r["p50"])
    a99, b99 = med(a_rounds, lambda r: r["p99"]), med(b_rounds, lambda r: r["p99"])
    cpu_a = med(a_rounds, lambda r: r["cpu"]["lower"])
    cpu_b_lower = med(b_rounds, lambda r: r["cpu"]["lower"])
    cpu_b_upper = med(b_rounds, lambda r: r["cpu"]["upper"])
    lines = [
        f"added latency, camera → viewer (medians of {args.rounds} rounds):",
        f"  one level (viewer on the lower):   p50 {a50:.1f} ms, p99 {a99:.1f} ms",
        f"  two levels (viewer on the upper):  p50 {b50:.1f} ms, p99 {b99:.1f} ms",
        f"  the extra level adds:              p50 {b50 - a50:+.1f} ms, p99 {b99 - a99:+.1f} ms",
        "CPU, ms per second (one viewer):",
        f"  lower serving the viewer (A):      {cpu_a:.1f}",
        f"  lower serving the upper (B):       {cpu_b_lower:.1f}",
        (f"  upper serving the viewer (B):      {cpu_b_upper:.1f} "
        f"({cpu_b_upper / cpu_a:.2f}× the one-level relay)"),
        f"time to first frame, median of {args.joins} joins:",
        f"  lower viewer, cold:  {ms(ttff[('lower', False)])}",
        f"  lower viewer, warm:  {ms(ttff[('lower', True)])}",
        (f"  upper viewer, cold:  {ms(ttff[('upper', False)])}  "
        f"({statistics.median(ttff[('upper', False)]) / statistics.median(ttff[('lower', False)]):.2f}× lower cold)"),
        (f"  upper viewer, warm:  {ms(ttff[('upper', True)])}  "
        f"({statistics.median(ttff[('upper', True)]) / statistics.median(ttff[('lower', True)]):.2f}× lower warm)"),
        f"RTSP PLAY requests at the simulator: {plays}",
    ]
    print("\n".join(lines), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--joins", type=int, default=5)
    parser.add_argument("--log-dir", default=str(ROOT / "tests" / ".cache" / "bench-logs"))
    args = parser.parse_args()
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
