#!/usr/bin/env python3
"""Measure how soon a watched camera's video comes back after an outage (issue 12 item 9).

    .venv/bin/python scripts/bench/recovery.py [--outages 3 6 10 20] [--rounds 3]

The camera is the RTSP simulator (scripts/camsim.py, /h264, 640x360 25 fps) behind a
TCP link on a fixed port (tests/relay/camera_link.py): an outage closes the port and
resets its connections, the return opens the same port again.  Two consumers of the
real hub watch throughout.  Per outage: the time from the port accepting again to the
next unit at each consumer (the figure is the later of the two), and the TCP connection
attempts the relay made while the camera was down (the namespace's ``ActiveOpens``),
per second.

Each round runs every outage twice, alternating: ``checks`` (the hub as shipped: a TCP
check every 0.5 s while watched) and ``backoff`` (the same hub with
``probe_interval=None``: only the 0.5 s -> 30 s backoff, camrelay's schedule before
this change, through the same code path).  Runs inside a fresh loopback-only network
namespace (re-executes itself under ``unshare --net``; needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from startup import in_netns, reexec_in_netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


async def outage(sim_port: int, seconds: float, probe: float | None) -> tuple[float, float]:
    """One outage of ``seconds``: (return -> video at both consumers, SYN/s while down)."""
    from camrelay.relay.hub import Hub, SourceSpec
    from camrelay.relay.media import StreamKey
    from camrelay.relay.sources.registry import default_sources
    from tests.relay.camera_link import CameraLink, Watcher, tcp_active_opens
    from tests.relay.conftest import resolver_for
    from tests.relay.relay_helpers import until

    key = StreamKey(1, "main")
    link = CameraLink(sim_port)
    await link.restore()
    hub = Hub(resolver_for({1: SourceSpec(link.url("h264"))}), default_sources(),
              probe_interval=probe)
    await hub.start()
    watchers: list[Watcher] = []
    try:
        watchers = [Watcher(await hub.subscribe(key)) for _ in range(2)]
        await until(lambda: all(w.times for w in watchers), what="video")
        await link.cut()
        await until(lambda: hub.status()[0].state == "retrying", what="the drop")
        down, opens = time.monotonic(), tcp_active_opens()
        await asyncio.sleep(seconds)  # the outage
        rate = (tcp_active_opens() - opens) / (time.monotonic() - down)
        await link.restore()
        await until(lambda: all(w.first_after(link.restored_at) for w in watchers),
                    timeout=60, what="video after the return")
        back = max(w.first_after(link.restored_at) or 0.0 for w in watchers)
        return back - link.restored_at, rate
    finally:
        for w in watchers:
            await w.close()
        await hub.stop()
        await link.cut()


async def run(outages: list[float], rounds: int) -> None:
    from tests.camsim_fixture import CamSim, ensure_clips

    sim = await asyncio.to_thread(CamSim, ensure_clips())
    modes: dict[str, float | None] = {"checks": 0.5, "backoff": None}
    results: dict[tuple[str, float], list[tuple[float, float]]] = {}
    print(f"recovery after an outage, 2 consumers, {rounds} rounds, {os.cpu_count()} CPUs")
    try:
        for r in range(rounds):
            for seconds in outages:
                for mode, probe in modes.items():
                    back, rate = await outage(sim.port, seconds, probe)
                    results.setdefault((mode, seconds), []).append((back, rate))
                    print(f"round {r + 1} outage {seconds:g} s {mode:8s}: video back "
                          f"{back:6.2f} s after the camera; {rate:.2f} SYN/s while down",
                          flush=True)
    finally:
        sim.close()
    print("\n| outage | checks: return -> video, median (min–max) | backoff alone | "
          "ratio of medians | SYN/s while down, checks / backoff |")
    print("|---|---|---|---|---|")
    for seconds in outages:
        row = []
        for mode in modes:
            backs = [b for b, _ in results[(mode, seconds)]]
            row.append((statistics.median(backs), min(backs), max(backs),
                        statistics.median(r for _, r in results[(mode, seconds)])))
        (cm, cl, ch, cr), (bm, bl, bh, br) = row
        print(f"| {seconds:g} s | {cm:.2f} s ({cl:.2f}–{ch:.2f}) | {bm:.2f} s ({bl:.2f}–{bh:.2f}) "
              f"| {cm / bm:.2f}× | {cr:.2f} / {br:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=float, nargs="+", default=[3.0, 6.0, 10.0, 20.0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not in_netns():
        return reexec_in_netns()
    asyncio.run(run(args.outages, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
