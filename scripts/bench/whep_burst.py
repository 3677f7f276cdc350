#!/usr/bin/env python3
"""A wall's burst of WHEP offers, server side only: 16 POSTs at once, against a baseline.

    .venv/bin/python scripts/bench/whep_burst.py [--rounds 10] [--cameras 16]
                                                 [--baseline-cli /work/main/.venv/bin/camrelay]

What a 4x4 wall applied at once asks of camrelay before any media flows: sixteen
``POST /whep/{camera}?stream=sub`` at the same moment, each authenticated, authorised,
journalled (``view.open``) and negotiated (aiortc's answer).  Runs in a fresh
loopback-only network namespace (like scripts/test; needs root) with the camera
simulator and the store of ``camrelay_relay.build_store``.  Per round: sixteen aiortc
offers are made first (not timed), then POSTed at once through one aiohttp session
(at most 6 connections, as a browser holds per host); the figures are the time to the
last answer and camrelay's CPU over the burst (its process tree, from /proc).  The
sessions are then DELETEd (not timed).  The first round (RTSP set-up of the cameras)
is left out.  With ``--baseline-cli`` a second server from another tree (its own copy
of the same store) takes a burst in every round too, the two in ABBA order.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from camrelay_relay import Server, build_store
from procstat import cpu_seconds
from relays import free_port
from startup import in_netns, reexec_in_netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


async def offers(n: int) -> list[Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection

    pcs = []
    for _ in range(n):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        pcs.append(pc)
    return pcs


async def burst(url: str, token: str, ids: list[int], pid: int) -> tuple[float, float]:
    import aiohttp

    pcs = await offers(len(ids))
    auth = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=6)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(camera: int, pc: Any) -> str:
            async with asyncio.timeout(30):
                async with http.post(f"{url}/whep/{camera}?stream=sub",
                                     data=pc.localDescription.sdp,
                                     headers={**auth, "Content-Type": "application/sdp"}) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"POST /whep/{camera}: HTTP {r.status}")
                    return r.headers["Location"]

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        locations = await asyncio.gather(*(post(c, pc) for c, pc in zip(ids, pcs)))
        wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        for location in locations:
            async with asyncio.timeout(10):
                async with http.delete(url + location, headers=auth) as r:
                    await r.read()
    await asyncio.gather(*(pc.close() for pc in pcs))
    return wall, cpu


async def measure(servers: list[tuple[str, Server]], token: str, ids: list[int],
                  rounds: int) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in servers}
    for n in range(rounds + 1):
        # ABBA: the servers swap places every round, so neither is always first
        for name, server in (servers if n % 2 == 0 else servers[::-1]):
            wall, cpu = await burst(server.url, token, ids, server.pid)
            print(f"{name} #{n}: last answer {1000 * wall:.0f} ms, camrelay CPU "
                  f"{1000 * cpu:.0f} ms", flush=True)
            if n:
                out[name].append((wall, cpu))
            await asyncio.sleep(1)  # the closed sessions' journal writes settle
    return out


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip, ensure_variant

    from tests.camsim_fixture import CamSim

    ensure_clip(DEFAULT_OUT)
    ensure_variant(DEFAULT_OUT, "sub360", 640, 360, 2, 600_000)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"whep_burst.py cameras={args.cameras} rounds={args.rounds}; "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load before {load}",
          flush=True)
    sim = CamSim(DEFAULT_OUT)
    log_path = Path(args.log_dir) / "camrelay-whep-burst.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    servers: list[tuple[str, Server]] = []
    try:
        with log_path.open("ab") as log:
            store = build_store(sim.url("/sub360"), args.cameras, free_port(), log,
                                transport="tcp")
            servers.append(("this tree", Server(store.copy(), free_port(), log)))
            if args.baseline_cli:
                servers.append(("baseline", Server(store.copy(), free_port(), log,
                                                   cli=args.baseline_cli)))
            result = asyncio.run(measure(servers, store.viewer_token, store.camera_ids,
                                         args.rounds))
    finally:
        for _, server in servers:
            server.stop()
        sim.close()
    for name, rows in result.items():
        walls = [1000 * w for w, _ in rows]
        cpus = [1000 * c for _, c in rows]
        print(f"{name}: last of {args.cameras} answers median {statistics.median(walls):.0f} "
              f"ms (worst {max(walls):.0f}); camrelay CPU per burst median "
              f"{statistics.median(cpus):.0f} ms ({statistics.median(cpus) / args.cameras:.1f} "
              f"ms per offer)", flush=True)
    print(f"load after {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--baseline-cli", help="another tree's camrelay command")
    parser.add_argument("--log-dir", default="/tmp/camrelay-bench")
    args = parser.parse_args()
    if not in_netns():
        return reexec_in_netns()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
