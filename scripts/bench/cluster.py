#!/usr/bin/env python3
"""Three camrelay nodes on PostgreSQL and Redis: the 307 hop, failover, Redis traffic.

    .venv/bin/python scripts/bench/cluster.py [--rounds 10] [--window 10] [--json out.json]

Re-executes itself in a fresh loopback-only network namespace (like startup.py; needs
root), starts a private PostgreSQL and redis-server (tests/servers.py), the RTSP camera
simulator and three real ``camrelay serve`` nodes (tests/cluster/test_nodes.py
``run_cluster``), and measures with aiortc viewers:

(a) time from the WHEP POST to the first decoded frame, a POST to a node that does not
    pull the camera (307, then the owner) against a POST straight to the owner,
    alternating, the camera kept hot by one viewer;
(b) failover: SIGKILL of the owner to a new viewer's first frame on another node (the
    killed node is started again between rounds);
(c) Redis commands per second at steady state, from ``INFO commandstats`` deltas over
    ``--window`` seconds, with 0, 1, 4 and 16 cameras watched by one viewer each and one
    camera watched by 8.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench.startup import in_netns, reexec_in_netns


def commandstats(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def ttff(http: Any, base: str, camera: int, token: str) -> float:
    from tests.whep_client import WhepViewer

    viewer = await WhepViewer.connect(http, base, camera, token, purpose="bench",
                                      read_numbers=False)
    try:
        await asyncio.wait_for(viewer.first_frame.wait(), 10)
        return float(viewer.time_to_first_frame)
    finally:
        await viewer.close()


async def hop_vs_direct(cluster: Any, rounds: int) -> dict[str, list[float]]:
    import aiohttp

    from tests.cluster.test_nodes import owner_of
    from tests.whep_client import WhepViewer

    out: dict[str, list[float]] = {"direct": [], "hop": []}
    async with aiohttp.ClientSession() as http:
        keeper = await WhepViewer.connect(http, cluster.nodes["a"].url, cluster.camera,
                                          cluster.token, purpose="keep", read_numbers=False)
        await keeper.first_frame.wait()
        owner = owner_of(cluster, cluster.camera)
        other = next(n for n in cluster.nodes.values() if n is not owner)
        for i in range(rounds):
            order = ("direct", "hop") if i % 2 == 0 else ("hop", "direct")
            for kind in order:
                base = owner.url if kind == "direct" else other.url
                out[kind].append(await ttff(http, base, cluster.camera, cluster.token))
        await keeper.close()
    return out


async def failover(cluster: Any, rounds: int) -> list[float]:
    import aiohttp

    from tests.cluster.test_nodes import owner_of
    from tests.whep_client import WhepError, WhepViewer

    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(rounds):
            first = await WhepViewer.connect(http, cluster.nodes["b"].url, cluster.camera,
                                             cluster.token, purpose="before",
                                             read_numbers=False)
            await first.first_frame.wait()
            owner = owner_of(cluster, cluster.camera)
            survivor = next(n for n in cluster.nodes.values() if n is not owner)
            await first.close(delete=False)
            owner.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            owner.proc.wait(timeout=10)
            viewer = None
            while viewer is None:
                try:
                    viewer = await WhepViewer.connect(http, survivor.url, cluster.camera,
                                                      cluster.token, purpose="after",
                                                      read_numbers=False)
                except (WhepError, aiohttp.ClientError):
                    await asyncio.sleep(0.1)  # a player's retry pace
            await asyncio.wait_for(viewer.first_frame.wait(), 10)
            times.append(time.monotonic() - killed)
            print(f"failover {times[-1]:.2f} s", flush=True)
            await viewer.close()
            await asyncio.to_thread(restart, owner)
    return times


def restart(node: Any) -> None:
    from tests.test_workers import EXE, ServerLog, _wait_listening

    node.log.join()
    node.proc = subprocess.Popen([EXE, "serve", "--config", str(node.config)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node.log = ServerLog(node.proc)
    _wait_listening(node.proc, node.log)


async def redis_load(cluster: Any, cameras: list[int], window: float
                     ) -> list[dict[str, Any]]:
    import aiohttp

    from tests.whep_client import WhepViewer

    nodes = list(cluster.nodes.values())
    results = []
    async with aiohttp.ClientSession() as http:
        for n_cameras, per_camera in ((0, 0), (1, 1), (4, 1), (16, 1), (1, 8)):
            viewers = []
            for i in range(n_cameras):  # the first request claims: spread over the nodes
                for _ in range(per_camera):
                    viewers.append(await WhepViewer.connect(
                        http, nodes[i % 3].url, cameras[i], cluster.token, purpose="load",
                        read_numbers=False))
            for viewer in viewers:
                await asyncio.wait_for(viewer.first_frame.wait(), 15)
            await asyncio.sleep(2 * 1.0)  # two heartbeats: past the joins' own commands
            before = commandstats(cluster.redis_url)
            t0 = time.monotonic()
            await asyncio.sleep(window)
            after = commandstats(cluster.redis_url)
            span = time.monotonic() - t0
            rates = {k: (after[k] - before.get(k, 0)) / span for k in after
                     if after[k] != before.get(k, 0) and k != "info"}
            scripts = sum(v for k, v in rates.items() if k in ("eval", "evalsha"))
            results.append({"cameras": n_cameras, "viewers": n_cameras * per_camera,
                            "commands_per_s": round(sum(rates.values()), 1),
                            "scripts_per_s": round(scripts, 1),
                            "by_command": {k: round(v, 1) for k, v in sorted(rates.items())}})
            print(json.dumps(results[-1]), flush=True)
            for viewer in viewers:
                await viewer.close()
            await asyncio.sleep(6)  # linger and lease release before the next level
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.json = args.json and args.json.resolve()
    if not in_netns():
        sys.exit(reexec_in_netns())
    from tests import servers
    from tests.camsim_fixture import CamSim, ensure_clips
    from tests.cluster.test_nodes import MOUNT, _call, run_cluster

    report: dict[str, Any] = {"rounds": args.rounds, "window_s": args.window}
    camsim = CamSim(ensure_clips())
    try:
        with servers.postgres() as pg, servers.redis() as redis_url, \
                tempfile.TemporaryDirectory(prefix="camrelay-bench-") as tmp, \
                run_cluster(camsim, pg, redis_url, Path(tmp)) as cluster:
            hop = asyncio.run(hop_vs_direct(cluster, args.rounds))
            for kind, xs in hop.items():
                report[f"ttff_{kind}_ms"] = {"median": round(statistics.median(xs) * 1000),
                                             "worst": round(max(xs) * 1000),
                                             "all": [round(x * 1000) for x in xs]}
            print(json.dumps({k: v for k, v in report.items() if k.startswith("ttff")}),
                  flush=True)
            cameras = [cluster.camera] + [_call(
                cluster.nodes["a"].url, cluster.token, "POST", "/api/v1/cameras", {
                    "external_id": f"bench-{i}", "name": f"bench {i}", "unit": "330000",
                    "category": "bridge", "main_url": camsim.url(MOUNT)})["id"]
                for i in range(15)]
            report["redis"] = asyncio.run(redis_load(cluster, cameras, args.window))
            times = asyncio.run(failover(cluster, args.rounds))
            report["failover_s"] = {"median": round(statistics.median(times), 2),
                                    "worst": round(max(times), 2),
                                    "all": [round(t, 2) for t in times]}
    finally:
        camsim.close()
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
