"""Concurrency limits across three nodes ([limits] with redis_url): the real
``camrelay serve`` three times, redis-server, PostgreSQL, the RTSP simulator and aiortc
viewers.  Each node pulls one of three cameras, so the views of one unit are spread over
the nodes and only Redis can count them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.cluster.test_nodes import MOUNT, Cluster, _call, owner_of, redis_server, start_cluster
from tests.test_workers import auth
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns
__all__ = ["redis_server"]  # the module's redis-server fixture

LIMITS = """
[limits]
per_unit = 2
"""


@pytest.fixture(scope="module")
def limited(camsim: CamSim, postgres_url: str, redis_server: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")
    with start_cluster(camsim, postgres_url, redis_server, tmp_path_factory.mktemp("limits"),
                     LIMITS) as cluster:
        yield cluster


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_per_unit_limit_holds_across_nodes_and_emergency_goes_over(
        limited: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    cluster, token = limited, limited.token
    a, b, c = (cluster.nodes[n] for n in "abc")
    cameras = [cluster.camera] + [_call(a.url, token, "POST", "/api/v1/cameras", {
        "external_id": f"limits-{i}", "name": f"tunnel {i}", "unit": "330000",
        "category": "tunnel", "main_url": camsim.url(MOUNT)})["id"] for i in (2, 3)]
    viewers: list[WhepViewer] = []
    try:
        for node, camera in zip((a, b), cameras, strict=False):  # unit 330000: two views
            viewer = await WhepViewer.connect(http, node.url, camera, token, purpose="hall")
            viewers.append(viewer)
            await viewer.wait_frames(3)
        assert owner_of(cluster, cameras[0]) is a and owner_of(cluster, cameras[1]) is b
        with pytest.raises(WhepError) as refused:  # the third, on node C: over per_unit
            await WhepViewer.connect(http, c.url, cameras[2], token, purpose="third")
        assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "5"
        problem = refused.value.body
        assert '"limit": "per_unit"' in problem and '"unit": "330000"' in problem
        assert '"allowed": 2' in problem
        status = cluster.status()["viewers"]
        assert status["units"] == [{"unit": "330000", "viewers": 2}]
        assert status["cameras"] == [{"camera_id": cameras[0], "viewers": 1},
                                     {"camera_id": cameras[1], "viewers": 1}]
        # one leaves: a new one is admitted on node C
        assert await viewers.pop(0).delete() == 200
        third = await WhepViewer.connect(http, c.url, cameras[2], token, purpose="third")
        viewers.append(third)
        await third.wait_frames(3)
        # an operator of the same unit opens emergency access: over the limit, admitted
        _call(a.url, token, "POST", "/api/v1/users", {
            "username": "duty", "unit": "330000", "role": "operator",
            "password": "correct horse battery"})
        async with http.post(f"{b.url}/api/v1/auth/login", json={
                "username": "duty", "password": "correct horse battery"}) as r:
            duty = (await r.json())["token"]
        async with http.post(f"{a.url}/api/v1/emergencies", headers=auth(duty), json={
                "reason": "G60 多车追尾", "incident": "ZJ-2026-0816",
                "cameras": [cameras[0]]}) as r:
            assert r.status == 201, await r.text()
        urgent = await WhepViewer.connect(http, c.url, cameras[0], duty, purpose="incident")
        viewers.append(urgent)
        await urgent.wait_frames(3)
        assert cluster.status()["viewers"]["units"] == [{"unit": "330000", "viewers": 3}]
        with pytest.raises(WhepError) as refused:  # counted: ordinary views still wait
            await WhepViewer.connect(http, b.url, cameras[1], token, purpose="fourth")
        assert refused.value.status == 429
        records = _call(b.url, token, "GET", f"/api/v1/audit?camera={cameras[0]}&kind=view")
        (emergency,) = [x for x in records if x["user"] == "duty"]
        assert emergency["emergency"] and emergency["detail"]["over_limit"] == "per_unit"
        denied = _call(b.url, token, "GET", "/api/v1/audit?kind=denied")
        assert len([x for x in denied if "limits.per_unit" in (x["reason"] or "")]) == 2
    finally:
        for viewer in viewers:
            await viewer.close()
