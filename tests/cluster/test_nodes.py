"""Three camrelay nodes on one PostgreSQL and one Redis (``redis_url``): the real
``camrelay serve`` three times on different loopback ports, a real redis-server, the RTSP
simulator, aiortc viewers and headless Chromium.

What issue 16 asks of this slice: viewers arriving at any node play the same camera while
the simulator sees one RTSP session; a WHEP POST to a node that does not pull the camera
gets 307 to the one that does, with a one-use ticket standing for the bearer token (which
clients drop on a cross-origin redirect), and aiortc and Chromium both follow it; SIGKILL
of the owner moves the camera: a new viewer on another node plays within 5 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.conftest import fresh_postgres_database
from tests.test_workers import EXE, ServerLog, _wait_listening, auth
from tests.webrtc.test_whep_chromium import CHROMIUM, CHROMIUM_ARGS
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns
MOUNT = "/h264gop4"  # a keyframe every 4 frames: a new viewer sees a picture at once


@dataclass
class Node:
    name: str
    url: str
    data_dir: Path
    config: Path
    proc: subprocess.Popen[str]
    log: ServerLog

    def node_id(self) -> str:
        return (self.data_dir / "node.id").read_text().strip()


@dataclass
class Cluster:
    nodes: dict[str, Node]
    token: str
    camera: int
    redis_url: str

    def status(self) -> dict[str, Any]:
        done = subprocess.run([EXE, "cluster", "status", "--json", "--config",
                               str(self.nodes["a"].config)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


KEYS = {name: base64.urlsafe_b64encode(os.urandom(32)).decode()
        for name in ("credential_key", "audit_key")}  # one store: the same keys on every node


def _config(path: Path, data_dir: Path, port: int, database: str, redis: str,
            extra: str = "") -> None:
    path.write_text(f"""
data_dir = "{data_dir}"
database_url = "{database}"
redis_url = "{redis}"
credential_key = "{KEYS['credential_key']}"
audit_key = "{KEYS['audit_key']}"
[server]
listen = "127.0.0.1:{port}"
[relay]
ice_host_addresses = ["127.0.0.2"]
linger_seconds = 1.0
{extra}""", encoding="utf-8")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[str]:
    with servers.redis() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(camsim: CamSim, postgres_url: str, redis_server: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(camsim, postgres_url, redis_server,
                       tmp_path_factory.mktemp("cluster")) as started:
        yield started


@contextmanager
def start_cluster(camsim: CamSim, postgres_url: str, redis_url: str,  # noqa: F811
                  base: Path, extra: str = "", names: str = "abc",
                  relay: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Nodes ``names`` (a, b, c) on a fresh PostgreSQL database and ``redis_url``
    (``extra``: more settings for every node; ``relay``: more ``[relay]`` settings for
    some), with one camera of the simulator's ``MOUNT``."""
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")
    database = asyncio.run(fresh_postgres_database(postgres_url))
    first = base / "a"
    done = subprocess.run([EXE, "init", "--unit-code", "330000", "--unit-name", "浙江省交通运输厅",
                           "--admin", "root", "--password-stdin"],
                          input="correct horse battery\n", capture_output=True, text=True,
                          env=dict(os.environ, CAMRELAY_DATA_DIR=str(first),
                                   CAMRELAY_DATABASE_URL=database,
                                   CAMRELAY_CREDENTIAL_KEY=KEYS["credential_key"],
                                   CAMRELAY_AUDIT_KEY=KEYS["audit_key"]), check=True)
    token = done.stdout.strip().splitlines()[-1]
    nodes: dict[str, Node] = {}
    try:
        for name in names:
            data_dir = base / name
            port = servers.free_port()
            config = base / f"{name}.toml"
            _config(config, data_dir, port, database, redis_url,
                    (relay or {}).get(name, "") + "\n" + extra)
            proc = subprocess.Popen([EXE, "serve", "--config", str(config)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            nodes[name] = Node(name, f"http://127.0.0.1:{port}", data_dir, config, proc,
                               ServerLog(proc))
        for node in nodes.values():
            _wait_listening(node.proc, node.log)
        camera = _call(nodes["a"].url, token, "POST", "/api/v1/cameras", {
            "external_id": "cluster-1", "name": "bridge 1", "unit": "330000",
            "category": "bridge", "main_url": camsim.url(MOUNT)})["id"]
        yield Cluster(nodes, token, camera, redis_url)
    finally:
        for node in nodes.values():
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in nodes.values():
            try:
                node.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            node.log.join()
            assert "Traceback" not in node.log.text(), node.log.text()




def _call(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={
        **auth(token), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def owner_of(cluster: Cluster, camera: int) -> Node:
    (lease,) = [x for x in cluster.status()["leases"] if x["camera_id"] == camera]
    return next(n for n in cluster.nodes.values() if n.node_id() == lease["node"])


async def test_viewers_at_every_node_share_one_rtsp_session(
        cluster: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    camera = cluster.camera
    plays = camsim.play_count(MOUNT)
    a, b, c = cluster.nodes["a"], cluster.nodes["b"], cluster.nodes["c"]
    first = await WhepViewer.connect(http, a.url, camera, cluster.token, purpose="hall A")
    viewers = [first]
    try:
        await first.wait_frames(5)
        assert owner_of(cluster, camera) is a  # claimed where the first request arrived
        # a non-owner answers 307 to the owner's WHEP URL, the query kept, with a ticket
        offer = first.pc.localDescription.sdp
        async with http.post(f"{b.url}/whep/{camera}", data=offer, allow_redirects=False,
                             params={"stream": "main", "purpose": "dept B"},
                             headers={**auth(cluster.token),
                                      "Content-Type": "application/sdp"}) as r:
            assert r.status == 307, await r.text()
            target = r.headers["Location"]
        assert target.startswith(f"{a.url}/whep/{camera}?stream=main&purpose=dept+B&ticket=")
        for node in (b, c):  # aiohttp drops Authorization on the hop: the ticket lets it in
            viewer = await WhepViewer.connect(http, node.url, camera, cluster.token,
                                              purpose=f"dept {node.name}")
            viewers.append(viewer)
            assert viewer.location.startswith(f"{a.url}/whep/{camera}/sessions/")
        for viewer in viewers:
            await viewer.wait_frames(10)
            assert viewer.frames[-1].width > 0
        assert camsim.play_count(MOUNT) - plays == 1  # one RTSP session for the cluster
        # the ticket stands for the token, once
        for expected in (201, 401):
            async with http.post(target, data=offer, headers={
                    "Content-Type": "application/sdp"}) as r:
                assert r.status == expected, await r.text()
                if r.status == 201:
                    async with http.delete(r.headers["Location"],
                                           headers=auth(cluster.token)) as gone:
                        assert gone.status == 200
        status = cluster.status()
        by_id = {n["id"]: n for n in status["nodes"]}
        assert sorted(by_id) == sorted(n.node_id() for n in cluster.nodes.values())
        assert by_id[a.node_id()]["cameras"] == [camera]
        assert by_id[a.node_id()]["url"] == a.url
        assert by_id[a.node_id()]["ice_addresses"] == ["127.0.0.2"]
        assert by_id[b.node_id()]["cameras"] == [] and by_id[c.node_id()]["cameras"] == []
        # a snapshot asked of a non-owner is proxied to the owner (same origin for the caller)
        async with http.get(f"{c.url}/api/v1/cameras/{camera}/snapshot.jpg",
                            headers=auth(cluster.token)) as r:
            assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
        # the DELETE goes straight to the owner (absolute Location)
        assert await viewers[2].delete() == 200
    finally:
        for viewer in viewers:
            await viewer.close(delete=False)
    # the journal: one record per view, written by the node that served it, chain whole
    verify = await asyncio.create_subprocess_exec(
        EXE, "audit", "verify", env=dict(os.environ, CAMRELAY_URL=b.url,
                                         CAMRELAY_TOKEN=cluster.token),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0, said.decode()
    records = _call(c.url, cluster.token, "GET",
                    f"/api/v1/audit?camera={camera}&kind=view&limit=100")
    assert sorted(r["purpose"] for r in records) == [  # the snapshot journalled once too
        "dept B", "dept b", "dept c", "hall A", "routine monitoring"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


FRAMES_JS = """
(() => {
  window.__frames = 0;
  function hook() {
    const video = document.getElementById("video");
    if (!video) { requestAnimationFrame(hook); return; }
    const onFrame = () => { window.__frames += 1; video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
  }
  document.addEventListener("DOMContentLoaded", hook);
})();
"""


async def test_chromium_follows_the_307_with_its_bearer_token_and_plays(
        cluster: Cluster, browser: Any, http: aiohttp.ClientSession) -> None:
    camera = cluster.camera
    a = cluster.nodes["a"]
    keeper = await WhepViewer.connect(http, a.url, camera, cluster.token, purpose="hold")
    try:
        await keeper.wait_frames(3)
        owner = owner_of(cluster, camera)
        other = next(n for n in cluster.nodes.values() if n is not owner)
        context = await browser.new_context()
        await context.add_init_script(
            f"sessionStorage.setItem('camrelay.token', {cluster.token!r});" + FRAMES_JS)
        page = await context.new_page()
        redirects: list[int] = []
        page.on("response", lambda r: redirects.append(r.status) if "/whep/" in r.url else None)
        # the page comes from a node that does not pull the camera: its fetch is answered
        # 307 to another origin, which drops Authorization; the ticket lets it in there
        await page.goto(f"{other.url}/static/player.html?camera={camera}&purpose=wall&"
                        "autoplay=1")
        await page.wait_for_function("() => window.__frames >= 10", timeout=15_000)
        assert await page.evaluate("window.camrelayPlayer.state") == "playing"
        session_url = await page.evaluate("window.camrelayPlayer.sessionUrl")
        assert session_url.startswith(f"{owner.url}/whep/{camera}/sessions/")
        assert 307 in redirects and 201 in redirects
        await page.evaluate("window.camrelayPlayer.stop()")
        await context.close()
    finally:
        await keeper.close()


async def test_sigkill_of_the_owner_moves_the_camera_within_5s(
        cluster: Cluster, camsim: CamSim, http: aiohttp.ClientSession) -> None:  # noqa: F811
    camera = cluster.camera
    first = await WhepViewer.connect(http, cluster.nodes["b"].url, camera, cluster.token,
                                     purpose="before")
    await first.wait_frames(3)
    owner = owner_of(cluster, camera)
    survivor = next(n for n in cluster.nodes.values() if n is not owner)
    await first.close(delete=False)
    owner.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    owner.proc.wait(timeout=10)
    viewer = None
    while viewer is None:
        try:
            viewer = await WhepViewer.connect(http, survivor.url, camera, cluster.token,
                                              purpose="after")
        except (WhepError, aiohttp.ClientError):  # 503 or a hop to the dead node: retry
            assert time.monotonic() - killed < 5, "no node took the camera over within 5 s"
            await asyncio.sleep(0.2)  # a player's retry pace, not a signal
    try:
        await viewer.first_frame.wait()
        failover = time.monotonic() - killed
        print(f"failover: SIGKILL to a new viewer's first frame in {failover:.2f} s")
        assert failover < 5
        assert owner_of(cluster, camera) is not owner
    finally:
        await viewer.close()
