"""A watched camera is back on its viewers' screens within 2 s of returning, whatever the
outage; a camera that is down, or accepts TCP but fails RTSP, is not hammered.

The camera is the RTSP simulator behind :class:`CameraLink`, whose port is closed for
the outage and opened again (the same port) for the return.  The hub runs the production
backoff (0.5 s doubling to 30 s, ±20 % jitter).
"""

from __future__ import annotations

import asyncio
import socket
import time

from camrelay.relay.hub import Hub
from camrelay.relay.media import StreamKey
from camrelay.relay.reconnect import upstream_address
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.relay.camera_link import CameraLink, Watcher, tcp_active_opens
from tests.relay.relay_helpers import HubFactory, state_of, until

KEY = StreamKey(1, "main")
# With the old backoff alone the attempts after a drop fall in [0.4, 0.6], [1.2, 1.8],
# [2.8, 4.2], [6.0, 9.0] and [12.4, 18.6] s: a camera back at 9.5 s waited >= 2.9 s.
OUTAGE = 9.5


def test_upstream_address() -> None:
    assert upstream_address("rtsp://10.0.0.5/stream1") == ("10.0.0.5", 554)
    assert upstream_address("rtsps://cam.example/s") == ("cam.example", 322)
    assert upstream_address("rtsp://10.0.0.5:8554/s?x=1") == ("10.0.0.5", 8554)
    assert upstream_address("rtsp://[fd00::7]:10554/s") == ("fd00::7", 10554)
    assert upstream_address("demo:?fps=25") is None
    assert upstream_address("rtsp://host:notaport/s") is None


async def test_watched_camera_is_back_within_two_seconds(
        sim: CamSim, make_hub: HubFactory) -> None:
    link = CameraLink(sim.port)
    await link.restore()
    hub = await make_hub({1: SourceSpec(url=link.url("h264"))}, backoff_initial=0.5)
    watchers = [Watcher(await hub.subscribe(KEY)) for _ in range(2)]
    try:
        await until(lambda: all(w.times for w in watchers), what="video before the outage")
        await link.cut()
        await until(lambda: state_of(hub, KEY) == "retrying", what="the drop noticed")
        down_at, opens = time.monotonic(), tcp_active_opens()
        await asyncio.sleep(OUTAGE)  # the outage itself, not a signal
        syn_rate = (tcp_active_opens() - opens) / (time.monotonic() - down_at)
        await link.restore()
        await until(lambda: all(w.first_after(link.restored_at) for w in watchers),
                    timeout=10, what="video after the camera's return")
        waits = [w.first_after(link.restored_at) - link.restored_at  # type: ignore[operator]
                 for w in watchers]
        assert max(waits) < 2.0, f"video back {max(waits):.2f} s after the camera"
        # checked every 0.5 s while down: at most 2 connection attempts per second
        assert syn_rate <= 2.2, f"{syn_rate:.2f} SYN/s against a camera that is down"
        assert state_of(hub, KEY) == "live"
    finally:
        for w in watchers:
            await w.close()
        await link.cut()


async def test_camera_accepting_tcp_but_failing_rtsp_is_not_hammered(
        sim: CamSim, make_hub: HubFactory) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: its port refuses
    link = CameraLink(sim.port)
    await link.restore()
    hub: Hub = await make_hub({1: SourceSpec(url=link.url("h264"))}, backoff_initial=0.5)
    watcher = Watcher(await hub.subscribe(KEY))
    try:
        await until(lambda: bool(watcher.times), what="video")
        link.target_port = dead.getsockname()[1]  # the camera's RTSP server breaks
        await link.cut()
        await link.restore()
        accepted, requests, start = link.accepted, link.requests, time.monotonic()
        await asyncio.sleep(6.0)  # the window we count over, not a signal
        window = time.monotonic() - start
        sessions = link.requests - requests
        checks = link.accepted - accepted - sessions
        # RTSP attempts on the backoff (after 0.5, 1, 2 s ±20 %), checks every 0.5 s
        assert sessions <= 4, f"{sessions} RTSP attempts in {window:.1f} s"
        assert checks <= window / 0.5 + 1, f"{checks} TCP checks in {window:.1f} s"
        assert state_of(hub, KEY) == "retrying"
    finally:
        await watcher.close()
        await link.cut()
        dead.close()



async def test_a_viewer_arriving_at_a_stream_without_address_gets_an_attempt_at_once(
        ) -> None:
    from camrelay.relay.reconnect import Retry

    retry = Retry(30.0, 30.0, 0.5)  # a 30 s backoff step: the viewer must not wait it out
    waiting = asyncio.ensure_future(retry.wait("whep", None, lambda: True))
    await asyncio.sleep(0)  # let the wait begin before the viewer arrives
    t0 = time.monotonic()
    retry.watcher_arrived()
    async with asyncio.timeout(1.0):
        await waiting
    assert time.monotonic() - t0 < 0.5
    # nobody arriving: the backoff holds (no loop)
    retry = Retry(0.2, 0.2, 0.5)
    t0 = time.monotonic()
    await retry.wait("whep", None, lambda: True)
    assert time.monotonic() - t0 >= 0.15
