"""Worker processes (``relay.workers = 2``): the real ``camrelay serve`` as a subprocess, a
front and two workers, two RTSP cameras of the simulator, real aiortc WHEP viewers.

What the issue asks: each camera is pulled by its owner's process (seen in /proc), a
viewer through the front decodes frames, DELETE on its Location works, a revoked token
cuts a viewer served by the other worker within a second, the journal records the
viewer's own address and verifies after both workers wrote, /metrics and
/api/v1/sessions merge both workers, and a worker killed with SIGKILL is restarted (its
requests meanwhile get 503 with Retry-After) and its dangling view is closed by recovery.

The WebRTC tests run only inside scripts/test's loopback-only network namespace.  The
viewers connect from 127.0.0.3 (not the 127.0.0.1 a worker would fall back to), so the
address in the journal is the one the front saw.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy

from camrelay.cluster.front import request_headers, response_headers
from camrelay.cluster.merge import merge_metrics, with_worker_label
from camrelay.cluster.routing import Ownership, route_for
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.web.middleware import PEER_HEADER, front_peer
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.conftest import World
from tests.servers import free_port
from tests.whep_client import WhepViewer

EXE = str(Path(sys.executable).parent / "camrelay")
VIEWER_ADDRESS = "127.0.0.3"
RECOVERED = "server stopped unexpectedly; closed at its last heartbeat"
MAX_BODY = 65536


def _require_netns() -> None:
    if os.environ.get("CAMRELAY_TEST_NETNS") != "1":
        pytest.fail("WebRTC tests run only inside scripts/test's network namespace")


# ---- the server under test -------------------------------------------------------------------

class ServerLog:
    """The server's merged stdout/stderr, read by a thread; ``wait_for`` is an event."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[re.Pattern[str], asyncio.AbstractEventLoop,
                                  asyncio.Future[str]]] = []
        self._thread = threading.Thread(target=self._read, name="camrelay-serve-log",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line)
                for waiter in list(self._waiters):
                    pattern, loop, future = waiter
                    if pattern.search(line):
                        self._waiters.remove(waiter)
                        loop.call_soon_threadsafe(_resolve, future, line)

    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def expect(self, pattern: str, *, after: int = 0) -> asyncio.Future[str]:
        """A future resolved by the first line matching ``pattern`` from line ``after`` on."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        compiled = re.compile(pattern)
        with self._lock:
            seen = next((x for x in self.lines[after:] if compiled.search(x)), None)
            if seen is None:
                self._waiters.append((compiled, loop, future))
        if seen is not None:
            future.set_result(seen)
        return future

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=10)


def _resolve(future: asyncio.Future[str], line: str) -> None:
    if not future.done():
        future.set_result(line)


@dataclass
class Cluster:
    url: str
    token: str
    proc: subprocess.Popen[str]
    log: ServerLog
    data_dir: Path
    cameras: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return dict(os.environ, CAMRELAY_URL=self.url, CAMRELAY_TOKEN=self.token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read() or b"null")


def _wait_listening(proc: subprocess.Popen[str], log: ServerLog, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "camrelay listening on" not in log.text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("camrelay serve did not start:\n" + log.text())
        time.sleep(0.05)  # polling the log a reader thread fills


def _init_store(data_dir: Path) -> str:
    env = dict(os.environ, CAMRELAY_DATA_DIR=str(data_dir))
    done = subprocess.run([EXE, "init", "--unit-code", "330000", "--unit-name",
                           "浙江省交通运输厅", "--admin", "root", "--password-stdin"],
                          input="correct horse battery\n", capture_output=True, text=True,
                          env=env, check=True)
    return done.stdout.strip().splitlines()[-1]


def _write_config(path: Path, data_dir: Path, port: int) -> None:
    path.write_text(f"""
data_dir = "{data_dir}"
[server]
listen = "127.0.0.1:{port}"
max_body_bytes = {MAX_BODY}
[relay]
workers = 2
ice_host_addresses = ["127.0.0.2"]
linger_seconds = 1.0
""", encoding="utf-8")


@pytest.fixture(scope="module")
def cluster(camsim: CamSim,  # noqa: F811 - the fixture imported above
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_netns()
    base = tmp_path_factory.mktemp("workers")
    data_dir = base / "data"
    token = _init_store(data_dir)
    port = free_port()
    config = base / "camrelay.toml"
    _write_config(config, data_dir, port)
    proc = subprocess.Popen([EXE, "serve", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    log = ServerLog(proc)
    try:
        _wait_listening(proc, log)
        server = Cluster(f"http://127.0.0.1:{port}", token, proc, log, data_dir)
        for name, mount in (("a", "/h264"), ("b", "/h264gop4")):
            camera = server.call("POST", "/api/v1/cameras", {
                "external_id": f"workers-{name}", "name": f"camera {name}", "unit": "330000",
                "category": "expressway", "main_url": camsim.url(mount)})
            server.cameras[name] = camera["id"]
        yield server
    finally:
        workers = set(worker_pids(proc.pid).values()) if proc.poll() is None else set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.join()
        output = log.text()
        assert proc.returncode == 0, output
        assert "Traceback" not in output, output
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers), "workers left running"


@asynccontextmanager
async def viewer_http() -> AsyncIterator[aiohttp.ClientSession]:
    """HTTP from the viewers' own address, as a hall's PC would connect."""
    connector = aiohttp.TCPConnector(local_addr=(VIEWER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- what /proc says about the processes -------------------------------------------------------

def worker_pids(supervisor: int) -> dict[int, int]:
    """worker index -> pid, from the supervisor's children and their command lines."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"camrelay.cluster.worker" in argv:
                out[int(argv[argv.index(b"--index") + 1])] = int(child)
    return out


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _net_table(pid: int, name: str) -> list[tuple[int, int, int]]:
    """(local port, remote port, inode) of /proc/<pid>/net/<name> (tcp, udp)."""
    rows = []
    for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], int(parts[9])
        rows.append((int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), inode))
    return rows


def tcp_remote_ports(pid: int) -> set[int]:
    mine = _socket_inodes(pid)
    return {remote for _, remote, inode in _net_table(pid, "tcp") if inode in mine}


def udp_local_ports(pid: int) -> set[int]:
    mine = _socket_inodes(pid)
    return {local for local, _, inode in _net_table(pid, "udp") if inode in mine}


def candidate_ports(answer: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ",
                                                 answer, re.IGNORECASE)}


async def api(http: aiohttp.ClientSession, cluster: Cluster, method: str, path: str,
              body: Any = None) -> Any:
    async with http.request(method, cluster.url + path, json=body,
                            headers=auth(cluster.token)) as r:
        assert r.status < 300, await r.text()
        return await r.json()


async def audit(http: aiohttp.ClientSession, cluster: Cluster, camera: int
                ) -> list[dict[str, Any]]:
    async with http.get(cluster.url + "/api/v1/audit", headers=auth(cluster.token),
                        params={"camera": str(camera), "kind": "view", "limit": "1000"}) as r:
        assert r.status == 200, await r.text()
        records: list[dict[str, Any]] = await r.json()
        return records


# ---- the tests with the real server ------------------------------------------------------------

async def test_each_camera_is_pulled_and_served_by_its_owner(cluster: Cluster,
                                                             camsim: CamSim) -> None:  # noqa: F811
    a, b = cluster.cameras["a"], cluster.cameras["b"]
    owners = Ownership(0, 2)
    assert owners.owner_of(a) != owners.owner_of(b)
    async with viewer_http() as http:
        va = await WhepViewer.connect(http, cluster.url, a, cluster.token, purpose="wall A")
        vb = await WhepViewer.connect(http, cluster.url, b, cluster.token, purpose="wall B")
        try:
            await va.wait_frames(10)
            await vb.wait_frames(10)
            assert va.frames[-1].width > 0 and vb.frames[-1].width > 0  # decoded pictures
            assert va.location.startswith(f"/whep/{a}/sessions/") and va.etag
            pids = worker_pids(cluster.proc.pid)
            assert sorted(pids) == [0, 1]
            # the RTSP pulls: each owner holds a connection to the simulator, the front none
            for camera in (a, b):
                assert camsim.port in tcp_remote_ports(pids[owners.owner_of(camera)])
            assert camsim.port not in tcp_remote_ports(cluster.proc.pid)
            # media never passes through the front: the SDP answer's candidates are UDP
            # sockets of the owner; the front holds no UDP socket at all
            assert candidate_ports(va.answer) <= udp_local_ports(pids[owners.owner_of(a)])
            assert candidate_ports(vb.answer) <= udp_local_ports(pids[owners.owner_of(b)])
            assert candidate_ports(va.answer) and not udp_local_ports(cluster.proc.pid)

            async with http.get(cluster.url + "/api/v1/sessions",
                                headers=auth(cluster.token)) as r:
                assert r.status == 200
                sessions = await r.json()
            assert sorted((s["camera_id"], s["worker"]) for s in sessions) == sorted(
                [(a, owners.owner_of(a)), (b, owners.owner_of(b))])
            async with http.get(cluster.url + "/metrics", headers=auth(cluster.token)) as r:
                assert r.status == 200
                text = await r.text()
            for worker in (0, 1):
                assert f'camrelay_webrtc_sessions{{worker="{worker}"}} 1' in text, text
                assert f'camrelay_worker_up{{worker="{worker}"}} 1' in text, text
            assert f'camrelay_viewers{{worker="{owners.owner_of(a)}",camera="{a}",stream="main"}}' \
                in text, text
            assert text.count("# HELP camrelay_webrtc_sessions ") == 1
            assert text.count("# TYPE camrelay_viewers ") == 1

            assert await va.delete() == 200  # DELETE on the Location, through the front
            await asyncio.wait_for(va.ended.wait(), 5)
            async with http.get(cluster.url + "/api/v1/sessions",
                                headers=auth(cluster.token)) as r:
                assert [s["camera_id"] for s in await r.json()] == [b]
        finally:
            await va.close(delete=False)
            await vb.close()
        (record,) = [r for r in await audit(http, cluster, a) if r["purpose"] == "wall A"]
        assert record["client_address"] == VIEWER_ADDRESS
        assert record["end"] and record["close_reason"] == "ended by viewer"
        # a client's own X-Camrelay-Peer is dropped: the front says who it saw
        async with http.post(f"{cluster.url}/whep/{b}", data="v=0\r\n", params={
                "purpose": "forged"}, headers={**auth(cluster.token), PEER_HEADER: "10.9.9.9",
                                               "Content-Type": "application/sdp"}) as r:
            assert r.status == 400
        (forged,) = [r for r in await audit(http, cluster, b) if r["purpose"] == "forged"]
        assert forged["client_address"] == VIEWER_ADDRESS
    # both workers wrote the journal (views on both cameras): the chain is whole
    verify = await asyncio.create_subprocess_exec(
        EXE, "audit", "verify", env=cluster.env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    said, _ = await asyncio.wait_for(verify.communicate(), 30)
    assert verify.returncode == 0, said.decode()


async def test_revoking_a_token_on_worker_0_cuts_a_viewer_of_worker_1(cluster: Cluster) -> None:
    camera = next(c for c in cluster.cameras.values() if c % 2 == 1)  # owned by worker 1
    async with viewer_http() as http:
        created = await api(http, cluster, "POST", "/api/v1/tokens",
                            {"user": "root", "name": "wall"})
        viewer = await WhepViewer.connect(http, cluster.url, camera, created["token"],
                                          purpose="revocation")
        try:
            await viewer.wait_frames(10)
            t0 = time.monotonic()
            await api(http, cluster, "DELETE", f"/api/v1/tokens/{created['id']}")  # worker 0
            async with asyncio.timeout(1.0):
                await viewer.ended.wait()
            await asyncio.sleep(1.0)  # a window in which no further picture may arrive
            assert not [f for f in viewer.frames if f.at > t0 + 1.0]
        finally:
            await viewer.close(delete=False)
        (record,) = [r for r in await audit(http, cluster, camera)
                     if r["purpose"] == "revocation"]
        assert record["end"] and "token revoked" in record["close_reason"]


async def test_bodies_are_capped_at_max_body_bytes(cluster: Cluster) -> None:
    big = b"[" + b" " * MAX_BODY + b"]"

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    async with aiohttp.ClientSession() as http:
        headers = {**auth(cluster.token), "Content-Type": "application/json"}
        for body in (big, chunked()):
            async with http.post(cluster.url + "/api/v1/catalog/import", data=body,
                                 headers=headers) as r:
                assert r.status == 413, await r.text()
                assert r.content_type == "application/problem+json"
                assert (await r.json())["status"] == 413
        async with http.get(cluster.url + "/api/v1/auth/me", headers={
                **auth(cluster.token), "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "1"}) as r:
            assert r.status == 200 and (await r.json())["username"] == "root"


async def test_a_killed_worker_is_restarted_and_its_dangling_view_closed(
        cluster: Cluster) -> None:
    odd = next(c for c in cluster.cameras.values() if c % 2 == 1)  # worker 1: killed
    even = next(c for c in cluster.cameras.values() if c % 2 == 0)  # worker 0: untouched
    before = worker_pids(cluster.proc.pid)
    async with viewer_http() as http:
        doomed = await WhepViewer.connect(http, cluster.url, odd, cluster.token,
                                          purpose="doomed")
        survivor = await WhepViewer.connect(http, cluster.url, even, cluster.token,
                                            purpose="survivor")
        try:
            await doomed.wait_frames(5)
            await survivor.wait_frames(5)
            mark = cluster.log.mark()
            restarted = cluster.log.expect(r"worker 1 restarted", after=mark)
            os.kill(before[1], signal.SIGKILL)
            await cluster.log.expect(r"worker 1 \(pid \d+\) exited \(killed by SIGKILL\)",
                                     after=mark)
            async with http.post(f"{cluster.url}/whep/{odd}", data="v=0\r\n", headers={
                    **auth(cluster.token), "Content-Type": "application/sdp"}) as r:
                assert r.status == 503
                assert r.content_type == "application/problem+json"
                assert int(r.headers["Retry-After"]) >= 1
                assert (await r.json())["worker"] == 1
            await asyncio.wait_for(restarted, 30)
            after = worker_pids(cluster.proc.pid)
            assert after[1] != before[1] and after[0] == before[0]
            again = await WhepViewer.connect(http, cluster.url, odd, cluster.token,
                                             purpose="after restart")
            try:
                await again.wait_frames(5)
            finally:
                await again.close()
            seen = len(survivor.frames)
            await survivor.wait_frames(seen + 5)  # worker 0's viewer never noticed
        finally:
            await doomed.close(delete=False)
            await survivor.close()
        (dangling,) = [r for r in await audit(http, cluster, odd) if r["purpose"] == "doomed"]
        assert dangling["end"] and dangling["close_reason"] == RECOVERED
        (kept,) = [r for r in await audit(http, cluster, even) if r["purpose"] == "survivor"]
        assert kept["close_reason"] == "ended by viewer"  # closed by its DELETE, not by recovery
    async with aiohttp.ClientSession() as http, http.get(cluster.url + "/metrics") as r:
        assert 'camrelay_worker_restarts_total{worker="1"} 1' in await r.text()


# ---- start-up failure, without WebRTC ----------------------------------------------------------

def test_serve_exits_1_when_a_worker_cannot_start(tmp_path: Path) -> None:
    base = tmp_path
    data_dir = base / "data"
    _init_store(data_dir)
    (data_dir / "run").mkdir(mode=0o700)
    (data_dir / "run" / "worker-1.sock").mkdir()  # something else holds worker 1's path
    config = base / "camrelay.toml"
    _write_config(config, data_dir, free_port())
    done = subprocess.run([EXE, "serve", "--config", str(config)], capture_output=True,
                          text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "worker 1" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "camrelay listening on" not in done.stderr


# ---- pieces, in process --------------------------------------------------------------------

@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_every_per_camera_route_of_the_app_has_an_owner(settings: Settings,
                                                        store: Store) -> None:
    """A new route about one camera must be routed on purpose: its owner, or listed here
    as a catalogue route that only touches the store."""
    from camrelay.app import create_app

    app = create_app(settings, store)
    # show, update, remove: the store only (its health carries the device status that
    # the worker checking the camera keeps: owned)
    shared = {"/api/v1/cameras/{camera_id}"}
    seen = set()
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if "{camera_id}" not in canonical:
            continue
        path = canonical.replace("{camera_id}", "7").replace("{session_id}", "s1") \
            .replace("{token}", "p1")
        seen.add(canonical)
        decided = route_for(route.method, path)
        if canonical in shared:
            assert decided.kind == "first", canonical
        else:
            assert decided.kind == "owner" and decided.camera_id == 7, canonical
    assert {"/whep/{camera_id}", "/api/v1/cameras/{camera_id}/snapshot.jpg",
            "/api/v1/cameras/{camera_id}/ptz/move", "/api/v1/cameras/{camera_id}/health"
            } <= seen
    assert route_for("GET", "/api/v1/sessions").merge == "sessions"
    assert route_for("GET", "/metrics").merge == "metrics"
    assert route_for("GET", "/whep/0").kind == "first"  # no camera has it: worker 0's 404
    assert route_for("POST", "/api/v1/auth/login").kind == "first"


def test_every_camera_route_is_declared_with_its_owner_or_said_to_have_none() -> None:
    """The front routes by the routes' declarations: a new route about one camera must
    name its owner (the hub, the egress, snapshots, PTZ and the device cache live in the
    worker process of that camera) or be listed here as touching only the store."""
    from camrelay.web.routes import APIS

    store_only = {("GET", "/api/v1/cameras/{camera_id}"),
                  ("PATCH", "/api/v1/cameras/{camera_id}"),
                  ("DELETE", "/api/v1/cameras/{camera_id}")}
    about_a_camera = {(op.method, op.path): op for api in APIS for op in api.operations
                      if "{camera_id}" in op.path}
    assert store_only <= set(about_a_camera)
    for (method, path), op in about_a_camera.items():
        expected = None if (method, path) in store_only else "camera_id"
        assert op.owner == expected, (method, path)
        concrete = path.replace("{camera_id}", "9").replace("{session_id}", "s1") \
            .replace("{token}", "p1")
        decided = route_for(method, concrete)
        assert (decided.kind, decided.camera_id) == (
            ("owner", 9) if expected else ("first", None)), (method, path)
    fanned = {(op.method, op.path): op.fan_out for api in APIS for op in api.operations
              if op.fan_out is not None}
    assert fanned == {("GET", "/api/v1/sessions"): "sessions", ("GET", "/metrics"): "metrics"}


async def test_a_worker_warms_and_serves_only_the_cameras_it_owns(settings: Settings,
                                                                  world: World) -> None:
    from camrelay.app import create_app
    from camrelay.catalog.fields import parse_camera
    from camrelay.catalog.keepwarm import KeepWarmWindows
    from camrelay.fields import utcnow
    from camrelay.relay.media import StreamKey
    from camrelay.web.keys import SCHEDULER_KEY

    cameras = []
    for name in ("kw-1", "kw-2"):
        fields = parse_camera({"external_id": name, "name": name, "unit": "330000",
                               "category": "bridge", "main_url": "demo:?width=160&height=120"},
                              categories=world.catalog.categories,
                              camera_types=world.catalog.camera_types)
        cameras.append((await world.catalog.add_camera(fields)).id)
    now = utcnow()
    await KeepWarmWindows(world.store).add(cameras, variant="main", starts_at=now,
                                           ends_at=now + timedelta(hours=1), reason="test",
                                           created_by=None)
    for index in (0, 1):
        app = create_app(settings, world.store, worker=Ownership(index, 2))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            mine = {c for c in cameras if c % 2 == index}
            assert await client.app[SCHEDULER_KEY].tick() == {StreamKey(c) for c in mine}
            for camera in cameras:
                r = await client.get(f"/api/v1/cameras/{camera}/snapshot.jpg")
                assert r.status == (401 if camera in mine else 421), await r.text()


async def test_journal_appends_from_two_processes_keep_one_chain(settings: Settings,
                                                                 store: Store) -> None:
    """The claim worker processes rely on: an append takes the head row first (the SQLite
    write lock), so it reads the previous mac inside its own transaction."""
    from camrelay.access.journal import Journal, RecordFilter

    journal = Journal(settings, store)
    await journal.start()  # created once, as the supervisor does
    before = (await journal.verify()).events
    env = dict(os.environ, CAMRELAY_DATA_DIR=str(settings.data_dir))
    writers = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", APPENDER, "300", str(k), env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for k in range(2)]
    for w in writers:  # both have opened the journal; then both start at once
        assert w.stdout is not None and w.stdin is not None
        assert await asyncio.wait_for(w.stdout.readline(), 30) == b"ready\n"
    for w in writers:
        assert w.stdin is not None
        w.stdin.write(b"go\n")
        await w.stdin.drain()
    said = [await asyncio.wait_for(w.communicate(), 60) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err.decode()[-2000:] for _, err in said]
    report = await journal.verify()
    records = await journal.records(RecordFilter(kind="admin"), limit=1000)
    await journal.close()
    assert report.ok, report.problems
    assert report.events == before + 600
    order = [r["detail"]["writer"] for r in reversed(records)
             if r["action"] == "test.append"]
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    assert switches >= 3, f"the writers did not interleave ({switches} switches)"


APPENDER = """
import asyncio, sys
from camrelay.access.journal import Journal, JournalEvent
from camrelay.store import Store
from camrelay.settings import load_settings

async def main(count: int, writer: str) -> None:
    settings = load_settings()
    store = await Store.open(settings)
    journal = Journal(settings, store)
    await journal.start()
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        await journal.append(JournalEvent(kind="admin", action="test.append", result="ok",
                                          detail={"writer": writer, "i": i}))
        # a gap between appends, as between real requests: back to back, one process can
        # win SQLite's write lock 300 times while the other sleeps in its busy handler
        await asyncio.sleep(0.002)
    await journal.close()
    await store.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def test_metrics_merge_labels_every_sample_and_keeps_families_whole() -> None:
    one = ('# HELP camrelay_viewers Consumers\n# TYPE camrelay_viewers gauge\n'
           'camrelay_viewers{camera="1",stream="main"} 2\n'
           '# HELP camrelay_ttff WHEP\n# TYPE camrelay_ttff histogram\n'
           'camrelay_ttff_bucket{le="0.1"} 1\ncamrelay_ttff_sum 0.05\ncamrelay_ttff_count 1\n')
    two = one.replace('camera="1"', 'camera="2"')
    merged = merge_metrics([(0, one), (1, two)]).splitlines()
    assert merged == [
        "# HELP camrelay_viewers Consumers", "# TYPE camrelay_viewers gauge",
        'camrelay_viewers{worker="0",camera="1",stream="main"} 2',
        'camrelay_viewers{worker="1",camera="2",stream="main"} 2',
        "# HELP camrelay_ttff WHEP", "# TYPE camrelay_ttff histogram",
        'camrelay_ttff_bucket{worker="0",le="0.1"} 1', 'camrelay_ttff_sum{worker="0"} 0.05',
        'camrelay_ttff_count{worker="0"} 1',
        'camrelay_ttff_bucket{worker="1",le="0.1"} 1', 'camrelay_ttff_sum{worker="1"} 0.05',
        'camrelay_ttff_count{worker="1"} 1',
    ]
    assert with_worker_label("x{} 1", 3) == 'x{worker="3"} 1'


async def test_the_peer_header_is_trusted_only_over_a_unix_socket(tmp_path: Path) -> None:
    async def remote(request: web.Request) -> web.Response:
        return web.Response(text=request.remote or "")

    app = web.Application(middlewares=[front_peer])
    app.router.add_get("/", remote)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "w.sock"
    port = free_port()
    await web.UnixSite(runner, str(path)).start()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        header = {PEER_HEADER: "10.1.2.3"}
        async with aiohttp.ClientSession() as tcp, \
                tcp.get(f"http://127.0.0.1:{port}/", headers=header) as r:
            assert await r.text() == "127.0.0.1"  # anyone on TCP could send it
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(str(path))) as unix:
            async with unix.get("http://worker/", headers=header) as r:
                assert await r.text() == "10.1.2.3"
            async with unix.get("http://worker/", headers={PEER_HEADER: "not-an-ip"}) as r:
                assert await r.text() != "not-an-ip"
    finally:
        await runner.cleanup()


def test_hop_by_hop_headers_are_dropped_both_ways_and_the_rest_passes() -> None:
    transport = Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: {
        "peername": ("127.0.0.9", 50000)}.get(name, default)
    request = make_mocked_request("POST", "/whep/1", transport=transport, headers=CIMultiDict([
        ("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("TE", "trailers"),
        ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"), (PEER_HEADER, "10.9.9.9"),
        ("Authorization", "Bearer t"), ("Content-Type", "application/sdp"),
        ("If-Match", '"e1"')]))
    sent = request_headers(request)
    assert sorted(sent) == sorted(["Authorization", "Content-Type", "If-Match", PEER_HEADER])
    assert sent[PEER_HEADER] == "127.0.0.9"  # what the front saw, not what the client said
    back = response_headers(CIMultiDictProxy(CIMultiDict([
        ("Location", "/whep/1/sessions/abc"), ("ETag", '"e1"'),
        ("Link", '<stun:a>; rel="ice-server"'), ("Link", '<turn:b>; rel="ice-server"'),
        ("Keep-Alive", "timeout=5"), ("Connection", "close, X-Internal"), ("X-Internal", "1"),
        ("Transfer-Encoding", "chunked"), ("Content-Type", "application/sdp")])))
    assert back.getall("Link") == ['<stun:a>; rel="ice-server"', '<turn:b>; rel="ice-server"']
    assert back["Location"] == "/whep/1/sessions/abc" and back["ETag"] == '"e1"'
    assert sorted(set(back)) == ["Content-Type", "ETag", "Link", "Location"]
