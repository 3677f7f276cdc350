#!/usr/bin/env python3
"""Measure WHEP start-up: time from POST to first decoded frame and to the live picture.

    .venv/bin/python scripts/bench/startup.py [--joins 20] [--gops 2 4] [--size 640x360]
                                              [--camsim] [--cold N]

Runs the real hub with the demo source, the WHEP endpoint and real aiortc viewers, all
in this process, inside a fresh loopback-only network namespace (the script re-executes
itself under ``unshare --net`` like scripts/test; it needs root).  For each GOP length
one viewer keeps playing while ``--joins`` viewers join one after another; prints the
median and worst time to first frame and to the running viewer's picture.

``--camsim`` does the same with the RTSP camera simulator (its 640x360 H.264 clips with
GOP 2 s and 4 s) instead of the demo source.  ``--cold N`` measures N cold starts per
GOP: a viewer of an unwatched camera (RTSP set-up inside the WHEP POST), next to the
camera's own RTSP set-up and first-keyframe time measured with PyAV (``camera probe``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def in_netns() -> bool:
    return os.environ.get("CAMRELAY_TEST_NETNS") == "1" and \
        [name for _, name in socket.if_nameindex()] == ["lo"]


def reexec_in_netns() -> int:
    script = ("set -e; ip link set lo up; ip addr add 127.0.0.2/8 dev lo; "
              "export CAMRELAY_TEST_NETNS=1; exec \"$@\"")
    cmd = ["unshare", "--net", "--fork", "--", "bash", "-c", script, "bench",
           sys.executable, *sys.argv]
    return subprocess.call(cmd)


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:4.0f} ms, worst {max(xs) * 1000:4.0f} ms"


async def run(joins: int, gops: list[float], width: int, height: int, fps: int) -> None:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from camrelay.relay.hub import Hub
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from tests.webrtc.conftest import FakeGate, demo, make_app, resolver_for
    from tests.whep_client import measure_joins

    print(f"WHEP start-up, {joins} joins per GOP, demo {width}x{height} @ {fps} fps, "
          f"{os.cpu_count()} CPUs")
    for gop in gops:
        specs = {1: demo(gop, fps=fps, width=width, height=height)}
        hub = Hub(resolver_for(specs), default_sources(), linger=0.2)
        await hub.start()
        app = make_app(hub, FakeGate({1}), WebRtcConfig(host_addresses=("127.0.0.2",)))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                url = str(server.make_url("")).rstrip("/")
                first, live, lags = await measure_joins(
                    http, url, 1, joins, token="tok-alice", running_token="tok-bob",
                    warm_frames=fps)
        finally:
            await server.close()
            await hub.stop()
        print(f"GOP {gop:g} s: first frame {ms(first)}; live picture {ms(live)}; "
              f"lag at live (frames) max {max(lags)}")


async def run_camsim(joins: int, gops: list[float], cold: int) -> None:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from camrelay.relay.hub import Hub, SourceSpec
    from camrelay.relay.probe import probe
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from tests.camsim_fixture import CamSim, ensure_clips
    from tests.webrtc.conftest import FakeGate, make_app, resolver_for
    from tests.whep_client import WhepViewer, measure_joins

    mounts = {2.0: "/h264", 4.0: "/h264gop4"}
    sim = CamSim(ensure_clips())
    print(f"WHEP start-up, RTSP camera simulator (640x360 25 fps H.264), {os.cpu_count()} CPUs")
    try:
        for gop in gops:
            url = sim.url(mounts[gop])
            hub = Hub(resolver_for({1: SourceSpec(url)}), default_sources(), linger=0.0)
            await hub.start()
            app = make_app(hub, FakeGate({1}), WebRtcConfig(host_addresses=("127.0.0.2",)))
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            try:
                async with aiohttp.ClientSession() as http:
                    base = str(server.make_url("")).rstrip("/")
                    if joins:
                        first, live, lags = await measure_joins(
                            http, base, 1, joins, token="tok-alice", running_token="tok-bob")
                        print(f"GOP {gop:g} s joiner: first frame {ms(first)}; live picture "
                              f"{ms(live)}; lag at live (frames) max {max(lags)}")
                    cold_times: list[float] = []
                    camera_times: list[float] = []
                    for _ in range(cold):
                        result = await probe(SourceSpec(url), sample_seconds=0.1)
                        camera_times.append(result.time_to_first_keyframe)
                        while hub.status():  # the previous upstream must be gone
                            await asyncio.sleep(0.05)
                        viewer = await WhepViewer.connect(http, base, 1, "tok-alice")
                        try:
                            await viewer.wait_frames(1, timeout=10)
                            cold_times.append(viewer.time_to_first_frame)
                        finally:
                            await viewer.close()
                    if cold:
                        print(f"GOP {gop:g} s cold start: first frame {ms(cold_times)}; "
                              f"the camera's own RTSP set-up to first keyframe "
                              f"{ms(camera_times)}")
            finally:
                await server.close()
                await hub.stop()
    finally:
        sim.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--gops", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--camsim", action="store_true",
                        help="the RTSP camera simulator instead of the demo source")
    parser.add_argument("--cold", type=int, default=0, help="cold starts per GOP (--camsim)")
    args = parser.parse_args()
    if not in_netns():
        return reexec_in_netns()
    width, height = (int(v) for v in args.size.split("x"))
    if args.camsim:
        asyncio.run(run_camsim(args.joins, args.gops, args.cold))
    else:
        asyncio.run(run(args.joins, args.gops, width, height, args.fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
