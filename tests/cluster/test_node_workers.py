"""Worker processes under Redis (issue 16): node A runs ``relay.workers = 2`` (a front and
two worker processes), node B one process; both on one PostgreSQL and one redis-server.
Each worker claims, with node A's id, the leases of the cameras it owns, so viewers on
both nodes play each camera from one RTSP session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.cluster.test_nodes import (
    MOUNT,
    Cluster,
    _call,
    owner_of,
    redis_server,
    start_cluster,
)
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns
__all__ = ["redis_server"]  # the module's redis-server fixture


@pytest.fixture(scope="module")
def cluster(camsim: CamSim, postgres_url: str, redis_server: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(camsim, postgres_url, redis_server, tmp_path_factory.mktemp("workers"),
                       names="ab", relay={"a": "workers = 2"}) as started:
        yield started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_the_workers_of_a_node_claim_with_its_id_one_rtsp_session_per_camera(
        cluster: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    second: int = _call(a.url, cluster.token, "POST", "/api/v1/cameras", {
        "external_id": "workers-2", "name": "tunnel 2", "unit": "330000",
        "category": "tunnel", "main_url": camsim.url(MOUNT)})["id"]
    cameras = [cluster.camera, second]
    assert len({c % 2 for c in cameras}) == 2  # one camera for each worker process of A
    plays = camsim.play_count(MOUNT)
    viewers: list[WhepViewer] = []
    try:
        for camera in cameras:  # first at node A: its worker claims the camera
            viewer = await WhepViewer.connect(http, a.url, camera, cluster.token, purpose="A")
            viewers.append(viewer)
            await viewer.wait_frames(3)
        for camera in cameras:  # then at node B: 307 to node A, whose worker serves it
            viewer = await WhepViewer.connect(http, b.url, camera, cluster.token, purpose="B")
            viewers.append(viewer)
            assert viewer.location.startswith(f"{a.url}/whep/{camera}/sessions/")
        for viewer in viewers:
            await viewer.wait_frames(10)
        assert camsim.play_count(MOUNT) - plays == 2  # one RTSP session per camera
        for camera in cameras:
            assert owner_of(cluster, camera) is a  # the lease is held as node A
        status = cluster.status()
        by_id = {n["id"]: n for n in status["nodes"]}
        assert by_id[a.node_id()]["processes"] == ["w0", "w1"]
        assert by_id[a.node_id()]["cameras"] == sorted(cameras)
        assert by_id[b.node_id()]["cameras"] == []
        # the cluster route on either node: A serves all four viewers (its load as of the
        # workers' last heartbeats, cluster.heartbeat_seconds = 1)
        async with asyncio.timeout(3):
            while True:
                census = _call(b.url, cluster.token, "GET", "/api/v1/cluster")
                if {n["id"]: n["viewers"] for n in census["nodes"]}[a.node_id()] == 4:
                    break
                await asyncio.sleep(0.2)  # polling the heartbeats other processes write
        for node in (a, b):
            census = _call(node.url, cluster.token, "GET", "/api/v1/cluster")
            loads = {n["id"]: n for n in census["nodes"]}
            assert census["clustered"] is True
            assert loads[a.node_id()]["viewers"] == 4 and loads[a.node_id()]["processes"] == 2
            assert loads[a.node_id()]["url"] == a.url
            assert loads[a.node_id()]["cameras"] == 2 and loads[b.node_id()]["viewers"] == 0
            assert census["units"] == [{"unit": "330000", "viewers": 4}]
            assert census["cameras"] == [{"camera_id": c, "viewers": 2} for c in sorted(cameras)]
    finally:
        for viewer in viewers:
            await viewer.close()
