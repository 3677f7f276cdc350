"""A viewer behind a slow link does not slow the others; its queue stays bounded.

The slow viewer runs in its own network namespace, joined to the test namespace by a
veth pair whose relay-side end is shaped with ``tc tbf`` (the link towards the viewer).
Addresses are from TEST-NET-1 (192.0.2.0/30) and exist only inside the test namespace.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camrelay.relay.sinks.webrtc import WebRtcConfig
from tests.webrtc.conftest import RelayFactory, demo
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
RELAY_IP, VIEWER_IP = "192.0.2.1", "192.0.2.2"
RATE = "300kbit"  # far below the stream's bitrate
SECONDS = 6.0


def sh(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def slow_link() -> Iterator[str]:
    ns = f"camrelay-slow-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "crslow0", "type", "veth", "peer", "name", "crslow1")
        sh("ip", "link", "set", "crslow1", "netns", ns)
        sh("ip", "addr", "add", f"{RELAY_IP}/30", "dev", "crslow0")
        sh("ip", "link", "set", "crslow0", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{VIEWER_IP}/30", "dev", "crslow1")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "crslow1", "up")
        sh("tc", "qdisc", "add", "dev", "crslow0", "root", "tbf", "rate", RATE,
           "burst", "8kb", "latency", "50ms")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", "crslow0"], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


def gaps(numbers: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(numbers) if b - a != 1)


async def test_slow_viewer_does_not_slow_the_others(relay_factory: RelayFactory,
                                                    slow_link: str) -> None:
    relay = await relay_factory(
        {1: demo(2, fps=25, width=640, height=360)},
        config=WebRtcConfig(host_addresses=("127.0.0.2", RELAY_IP), connect_timeout=10),
        host="0.0.0.0", queue_size=30)
    port = relay.url.rsplit(":", 1)[1]
    local = f"http://127.0.0.1:{port}"
    fast = [await WhepViewer.connect(relay.http, local, 1, "tok-alice") for _ in range(2)]
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", slow_link, sys.executable, "-m", "tests.webrtc.slow_viewer",
        f"http://{RELAY_IP}:{port}", "1", "tok-bob", str(SECONDS),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line.strip() == b"READY", (line, await proc.stderr.read() if proc.stderr else b"")
        slow = next(s for s in relay.egress.sessions() if s.owner == 2)
        start = [len(v.frames) for v in fast]
        max_queue = 0
        deadline = asyncio.get_running_loop().time() + SECONDS - 1
        while asyncio.get_running_loop().time() < deadline:
            max_queue = max(max_queue, len(slow.sub._queue))
            await fast[0].wait_frames(len(fast[0].frames) + 1, timeout=2)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        report = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    info = slow.info()
    for viewer, before in zip(fast, start):
        window = viewer.frames[before:]
        numbers = [f.number for f in window if f.number is not None]
        # the fast viewers keep the full 25 fps without gaps while the slow one struggles
        assert len(numbers) >= 25 * (SECONDS - 1.5), len(numbers)
        assert gaps(numbers) == 0, numbers
    print(f"slow viewer: decoded {report['frames']} frames in {SECONDS:g} s; "
          f"session counters {info.counters}; fan-out {info.fanout}; hub queue max {max_queue}, "
          f"dropped {info.dropped}")
    assert report["frames"] < 25 * SECONDS * 0.8  # the link really was too slow
    assert max_queue <= 30  # bounded by the hub's per-consumer queue
    # its receiver reports show the loss: it skips to the next keyframe (counted) and is
    # not flooded with retransmissions its link cannot carry either
    assert info.fanout is not None and info.fanout.behind_skips >= 1
    assert info.fanout.retransmitted <= info.fanout.packets_sent
    for viewer in fast:
        await viewer.close()
