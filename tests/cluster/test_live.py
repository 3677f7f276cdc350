"""Live state across three real nodes (issue 16, items 5 and 6): events and revocations
over Redis pub/sub, sign-in lockout counters in Redis, and a node that loses Redis.

The nodes re-read the store for revoked views only every 5 s here (``access.watch_seconds``,
the fallback when Redis is down), so a cut within 1 s on another node can come only from
the revocation published through Redis; with Redis stopped the same cut still comes, from
that store poll.  ``cluster.lease_seconds`` is 2 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.cluster.test_nodes import MOUNT, Cluster, _call, owner_of, start_cluster
from tests.test_live_channel import read_event
from tests.test_workers import auth
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns
PASSWORD = "correct horse battery"
WATCH_SECONDS = 5.0  # the store poll: the fallback
LEASE_SECONDS = 2.0
EXTRA = f"""
[access]
watch_seconds = {WATCH_SECONDS}
[access.lockout]
slow_after = 100
lock_after = 3
lock_address_after = 100
lock_seconds = 600
[cluster]
lease_seconds = {LEASE_SECONDS}
"""


@pytest.fixture(scope="module")
def redis() -> Iterator[servers.RedisServer]:
    with servers.redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(camsim: CamSim, postgres_url: str, redis: servers.RedisServer,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(camsim, postgres_url, redis.url, tmp_path_factory.mktemp("live"),
                       EXTRA) as started:
        yield started


@dataclass
class People:
    approver: str  # tokens
    city_op: str


@pytest.fixture(scope="module")
def people(cluster: Cluster) -> People:
    a = cluster.nodes["a"].url
    _call(a, cluster.token, "POST", "/api/v1/units", {
        "code": "330200", "name": "宁波市交通运输局", "level": "city", "parent": "330000"})
    for name, unit, role in (("appr", "330000", "approver"), ("cityop", "330200", "operator"),
                             ("lockee", "330200", "operator")):
        _call(a, cluster.token, "POST", "/api/v1/users", {
            "username": name, "unit": unit, "role": role, "password": PASSWORD})
    return People(*(_call(a, "", "POST", "/api/v1/auth/login", {
        "username": name, "password": PASSWORD})["token"] for name in ("appr", "cityop")))


def add_camera(cluster: Cluster, camsim: CamSim, name: str) -> int:  # noqa: F811
    camera: int = _call(cluster.nodes["a"].url, cluster.token, "POST", "/api/v1/cameras", {
        "external_id": name, "name": name, "unit": "330000", "category": "bridge",
        "main_url": camsim.url(MOUNT)})["id"]
    return camera


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_grant_revoked_on_a_cuts_a_viewer_on_c_within_1s(
        cluster: Cluster, people: People, camsim: CamSim,  # noqa: F811
        http: aiohttp.ClientSession) -> None:
    a, c = cluster.nodes["a"], cluster.nodes["c"]
    camera = add_camera(cluster, camsim, "live-grant")
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    grant = _call(a.url, people.city_op, "POST", "/api/v1/grants", {
        "grantee_user": "cityop", "cameras": [camera], "actions": ["live"],
        "purpose": "G60 事故", "valid_until": until})["id"]
    _call(a.url, people.approver, "POST", f"/api/v1/grants/{grant}/approve",
          {"comment": "ok"})
    viewer = await WhepViewer.connect(http, c.url, camera, people.city_op, purpose="G60 事故")
    try:
        await viewer.wait_frames(5)
        assert owner_of(cluster, camera) is c  # the view plays on node C
        async with http.post(f"{a.url}/api/v1/grants/{grant}/revoke",
                             json={"reason": "incident over"},
                             headers=auth(people.approver)) as r:
            assert r.status == 200, await r.text()
            revoked = time.monotonic()
        async with asyncio.timeout(1.0):
            await viewer.ended.wait()  # node C closed the peer connection
        cut = time.monotonic() - revoked
        print(f"viewer on node C cut {cut * 1000:.0f} ms after the revoke on node A")
    finally:
        await viewer.close(delete=False)
    async with asyncio.timeout(5):  # node C writes the close right after the cut
        while True:
            records = _call(a.url, cluster.token, "GET",
                            f"/api/v1/audit?camera={camera}&kind=view")
            (record,) = [x for x in records if x["user"] == "cityop"]
            if record.get("end"):
                break
            await asyncio.sleep(0.1)  # polling the journal another process writes
    assert record["close_reason"] == "revoked: grant revoked"


async def test_the_live_channel_on_b_hears_events_caused_on_a(
        cluster: Cluster, people: People, http: aiohttp.ClientSession) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    async with http.get(f"{b.url}/api/v1/events", headers=auth(people.approver)) as stream:
        assert (await read_event(stream))[0] == "hello"
        async with http.patch(f"{a.url}/api/v1/cameras/{cluster.camera}",
                              json={"status": "fault"}, headers=auth(cluster.token)) as r:
            assert r.status == 200, await r.text()
        until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        grant = _call(a.url, people.city_op, "POST", "/api/v1/grants", {
            "grantee_user": "cityop", "cameras": [cluster.camera], "actions": ["live"],
            "purpose": "巡查", "valid_until": until})["id"]
        seen: list[tuple[str, Any]] = []
        while not any(kind == "grant.requested" for kind, _ in seen):
            seen.append(await read_event(stream, timeout=3.0))
    assert ("camera.status", {"camera_id": cluster.camera, "status": "fault"}) in seen
    (requested,) = [data for kind, data in seen if kind == "grant.requested"]
    assert requested["id"] == grant and requested["status"] == "pending"


async def test_failed_sign_ins_on_different_nodes_lock_the_account_everywhere(
        cluster: Cluster, people: People, http: aiohttp.ClientSession) -> None:
    nodes = list(cluster.nodes.values())
    for node in nodes:  # lock_after = 3: one failure on each node
        async with http.post(f"{node.url}/api/v1/auth/login",
                             json={"username": "lockee", "password": "wrong password"}) as r:
            assert r.status == 401, await r.text()
    for node in nodes:  # locked on every node, even with the right password
        async with http.post(f"{node.url}/api/v1/auth/login",
                             json={"username": "lockee", "password": PASSWORD}) as r:
            assert r.status == 429, await r.text()
            assert int(r.headers["Retry-After"]) > 500
    records = _call(nodes[0].url, cluster.token, "GET", "/api/v1/audit?kind=auth&limit=100")
    assert [x["action"] for x in records if x["action"] == "login.locked"] == ["login.locked"]


async def test_a_node_that_loses_redis_keeps_its_views_and_recovers(
        cluster: Cluster, people: People, redis: servers.RedisServer,
        camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    a, b, c = cluster.nodes["a"], cluster.nodes["b"], cluster.nodes["c"]
    kept_camera, cut_camera, new_camera = (add_camera(cluster, camsim, f"live-{name}")
                                           for name in ("kept", "cut", "new"))
    doomed = _call(a.url, cluster.token, "POST", "/api/v1/tokens", {"user": "root"})
    kept = await WhepViewer.connect(http, a.url, kept_camera, cluster.token, purpose="kept")
    cut = await WhepViewer.connect(http, c.url, cut_camera, doomed["token"], purpose="cut")
    late = None
    try:
        await kept.wait_frames(5)
        await cut.wait_frames(5)
        assert owner_of(cluster, kept_camera) is a and owner_of(cluster, cut_camera) is c
        redis.stop()
        stopped = time.monotonic()
        # a camera nobody pulls yet: the node cannot lease it, so it refuses, saying why
        offer = kept.pc.localDescription.sdp
        async with http.post(f"{b.url}/whep/{new_camera}", data=offer,
                             headers={**auth(cluster.token),
                                      "Content-Type": "application/sdp"}) as r:
            assert r.status == 503, await r.text()
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["Content-Type"].startswith("application/problem+json")
            problem = await r.json()
            assert problem["reason"] == "redis" and "Redis" in problem["detail"]
        # a camera the node already pulls takes new viewers still
        second = await WhepViewer.connect(http, a.url, kept_camera, cluster.token,
                                          purpose="joins without Redis")
        try:
            await second.wait_frames(5)
        finally:
            await second.close()
        # revocation without Redis: node C's store poll cuts the view
        async with http.delete(f"{a.url}/api/v1/tokens/{doomed['id']}",
                               headers=auth(cluster.token)) as r:
            assert r.status == 200, await r.text()
            revoked = time.monotonic()
        async with asyncio.timeout(WATCH_SECONDS + 2):
            await cut.ended.wait()
        print(f"without Redis, the store poll cut the viewer on node C "
              f"{time.monotonic() - revoked:.1f} s after the revoke on node A")
        # the view of a camera node A pulls goes on for more than two lease periods
        await asyncio.sleep(max(0.0, stopped + 2 * LEASE_SECONDS + 1 - time.monotonic()))
        before = len(kept.frames)
        await kept.wait_frames(before + 10, timeout=5)
        assert not kept.ended.is_set()
        assert kept.frames[-1].at - stopped > 2 * LEASE_SECONDS
        # Redis comes back (empty) on the same port: new views work again within seconds
        redis.start()
        started = time.monotonic()
        while late is None:
            try:
                late = await WhepViewer.connect(http, b.url, new_camera, cluster.token,
                                                purpose="after")
            except (WhepError, aiohttp.ClientError) as err:
                assert time.monotonic() - started < 5, f"no new view within 5 s: {err}"
                await asyncio.sleep(0.2)  # a player's retry pace, not a signal
        await late.first_frame.wait()
        print(f"Redis back: a new view's first frame {time.monotonic() - started:.2f} s "
              "after redis-server started again")
        # node A re-asserted its lease and kept the stream it had
        before = len(kept.frames)
        await kept.wait_frames(before + 10, timeout=5)
        assert owner_of(cluster, kept_camera) is a
        # and node B subscribed to the events channel again by itself
        await hears_again(cluster, people, http, new_camera, started)
    finally:
        for viewer in (kept, cut, late):
            if viewer is not None:
                await viewer.close(delete=False)


async def hears_again(cluster: Cluster, people: People, http: aiohttp.ClientSession,
                      camera: int, since: float) -> None:
    """Node B's live channel hears a change made on node A again (the subscriber's
    backoff is at most 2 s, so within a few seconds of Redis coming back)."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    async with http.get(f"{b.url}/api/v1/events", headers=auth(people.approver)) as stream:
        assert (await read_event(stream))[0] == "hello"
        statuses = iter(["fault", "online"] * 50)
        while True:
            async with http.patch(f"{a.url}/api/v1/cameras/{camera}",
                                  json={"status": next(statuses)},
                                  headers=auth(cluster.token)) as r:
                assert r.status == 200, await r.text()
            try:
                kind, data = await read_event(stream, timeout=0.5)
            except TimeoutError:  # not subscribed yet: change it again
                assert time.monotonic() - since < 10, "node B hears nothing from node A"
                continue
            if kind == "camera.status" and data["camera_id"] == camera:
                print(f"events cross nodes again {time.monotonic() - since:.1f} s after "
                      "redis-server started again")
                return
