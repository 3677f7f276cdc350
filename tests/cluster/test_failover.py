"""What a cluster promises when a lease changes hands or a node dies (issue 16): three real
``camrelay serve`` nodes, redis-server, PostgreSQL, the RTSP simulator and aiortc viewers.

* **Fencing**: a node whose camera lease another node took stops its upstream (and its
  viewers) within a lease period; two upstreams of one camera never overlap longer.
* **Keep-warm once per cluster**: a window warms one RTSP session, on the lease holder;
  when that node dies another takes the warm stream within a few lease periods.
* **A dead node's seats lapse** (``[limits]``): within about three heartbeats a new view
  of the same unit is admitted elsewhere.

The tests run in this order: the second kills one node, the third another.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.cluster.test_nodes import (
    EXE,
    MOUNT,
    Cluster,
    Node,
    _call,
    owner_of,
    redis_server,
    start_cluster,
)
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns
__all__ = ["redis_server"]  # the module's redis-server fixture

LEASE_SECONDS = 2.0
HEARTBEAT_SECONDS = 1.0
WARM_MOUNT = "/main"  # only the keep-warm test pulls it
PASSWORD = "correct horse battery"
EXTRA = f"""
[cluster]
lease_seconds = {LEASE_SECONDS}
heartbeat_seconds = {HEARTBEAT_SECONDS}
[limits]
units = {{ "330200" = 1 }}
"""


@pytest.fixture(scope="module")
def cluster(camsim: CamSim, postgres_url: str, redis_server: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(camsim, postgres_url, redis_server, tmp_path_factory.mktemp("failover"),
                       EXTRA) as started:
        yield started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def add_camera(cluster: Cluster, camsim: CamSim, name: str, unit: str = "330000",  # noqa: F811
               mount: str = MOUNT) -> int:
    camera: int = _call(cluster.nodes["a"].url, cluster.token, "POST", "/api/v1/cameras", {
        "external_id": name, "name": name, "unit": unit, "category": "bridge",
        "main_url": camsim.url(mount)})["id"]
    return camera


def alive(cluster: Cluster) -> list[Node]:
    return [n for n in cluster.nodes.values() if n.proc.poll() is None]


def kill(node: Node) -> float:
    node.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    node.proc.wait(timeout=10)
    return killed


async def test_a_node_whose_lease_was_taken_stops_its_upstream_within_a_lease_period(
        cluster: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    a, b, c = (cluster.nodes[n] for n in "abc")
    camera = add_camera(cluster, camsim, "fenced")
    before = camsim.live_count(MOUNT)
    first = await WhepViewer.connect(http, a.url, camera, cluster.token, purpose="on A")
    second = None
    try:
        await first.wait_frames(5)
        assert owner_of(cluster, camera) is a
        assert camsim.live_count(MOUNT) == before + 1
        # node B takes the lease behind node A's back (as after a partition)
        redis = Redis.from_url(cluster.redis_url, decode_responses=True)
        try:
            await redis.set(f"camrelay:lease:camera:{camera}", b.node_id(),
                            px=int(60_000 * LEASE_SECONDS))
        finally:
            await redis.aclose()
        taken = time.monotonic()
        # at once a viewer arrives at node C: 307 to node B, which opens its own upstream
        second = await WhepViewer.connect(http, c.url, camera, cluster.token, purpose="on B")
        assert second.location.startswith(f"{b.url}/whep/{camera}/sessions/")
        async with asyncio.timeout(LEASE_SECONDS):
            await first.ended.wait()  # node A fenced: its viewer's session ends
        print(f"node A fenced {time.monotonic() - taken:.2f} s after its lease was taken")
        await second.wait_frames(5)
        async with asyncio.timeout(LEASE_SECONDS):
            while camsim.live_count(MOUNT) != before + 1:  # node A's RTSP session closed
                await asyncio.sleep(0.02)  # polling the simulator's counters
        doubled = camsim.overlaps(MOUNT, taken)
        print(f"two upstreams of camera {camera} for {doubled:.2f} s")
        assert doubled < LEASE_SECONDS
        assert owner_of(cluster, camera) is b
        assert not second.ended.is_set()
    finally:
        for viewer in (first, second):
            if viewer is not None:
                await viewer.close()


def keep_warm(cluster: Cluster, camera: int, minutes: int) -> None:
    until = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
    done = subprocess.run([EXE, "keep-warm", "add", "--camera", str(camera), "--until", until,
                           "--reason", "G20"], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, CAMRELAY_URL=cluster.nodes["b"].url,
                                   CAMRELAY_TOKEN=cluster.token), check=False)
    assert done.returncode == 0, done.stderr


async def test_a_keep_warm_window_is_one_rtsp_session_for_the_cluster_and_moves_on_death(
        cluster: Cluster, camsim: CamSim) -> None:  # noqa: F811
    camera = add_camera(cluster, camsim, "warm", mount=WARM_MOUNT)
    plays = camsim.play_count(WARM_MOUNT)
    keep_warm(cluster, camera, minutes=30)
    await camsim.wait_plays(WARM_MOUNT, plays + 1, timeout=15)
    # every node re-reads the windows within its scheduler's period (5 s) and tries the
    # lease every lease period: watch that long; still one session, on the lease holder
    await asyncio.sleep(5.0 + LEASE_SECONDS)  # observing that nothing more happens
    assert camsim.play_count(WARM_MOUNT) == plays + 1
    assert camsim.live_count(WARM_MOUNT) == 1
    holder = owner_of(cluster, camera)
    by_id = {n["id"]: n for n in cluster.status()["nodes"]}
    assert by_id[holder.node_id()]["cameras"] == [camera]
    killed = kill(holder)
    await camsim.wait_plays(WARM_MOUNT, plays + 2, timeout=6 * LEASE_SECONDS)
    moved = time.monotonic() - killed
    print(f"keep-warm stream taken over {moved:.2f} s after SIGKILL of its holder")
    assert moved < 3 * LEASE_SECONDS
    successor = owner_of(cluster, camera)
    assert successor is not holder and successor.proc.poll() is None
    async with asyncio.timeout(LEASE_SECONDS):
        while camsim.live_count(WARM_MOUNT) != 1:  # the dead node's connection is gone
            await asyncio.sleep(0.02)  # polling the simulator's counters
    await asyncio.sleep(LEASE_SECONDS)  # observing: the survivors do not both warm it
    assert camsim.play_count(WARM_MOUNT) == plays + 2


async def test_the_seats_of_a_dead_node_lapse_within_three_heartbeats(
        cluster: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    x, y = alive(cluster)
    first = cluster.nodes["a"].url if cluster.nodes["a"] in (x, y) else x.url
    _call(first, cluster.token, "POST", "/api/v1/units", {
        "code": "330200", "name": "宁波市交通运输局", "level": "city", "parent": "330000"})
    _call(first, cluster.token, "POST", "/api/v1/users", {
        "username": "cityop", "unit": "330200", "role": "operator", "password": PASSWORD})
    token = _call(first, "", "POST", "/api/v1/auth/login", {
        "username": "cityop", "password": PASSWORD})["token"]
    cameras = [add_camera(cluster, camsim, f"seat-{i}", unit="330200") for i in (1, 2)]
    held = await WhepViewer.connect(http, x.url, cameras[0], token, purpose="on X")
    late = None
    try:
        await held.wait_frames(3)
        with pytest.raises(WhepError) as refused:  # limits.units 330200 = 1, held on X
            await WhepViewer.connect(http, y.url, cameras[1], token, purpose="on Y")
        assert refused.value.status == 429
        killed = kill(x)
        while late is None:
            try:
                late = await WhepViewer.connect(http, y.url, cameras[1], token,
                                                purpose="on Y")
            except WhepError as err:
                assert err.status == 429, err.body
                assert time.monotonic() - killed < 3 * HEARTBEAT_SECONDS + 1.5, \
                    "the dead node's seat did not lapse"
                await asyncio.sleep(0.2)  # a player's retry pace, not a signal
        lapsed = time.monotonic() - killed
        print(f"a dead node's seat lapsed: new view admitted {lapsed:.2f} s after SIGKILL")
        await late.wait_frames(3)
    finally:
        await held.close(delete=False)
        if late is not None:
            await late.close()
