"""One node of a cluster (``redis_url``): membership, camera leases, tickets, the hop to
another node.  Implements :class:`camrelay.placement.Placement`.

Redis holds, under ``camrelay:``:

* ``member:<node>:<proc>`` -- each process's heartbeat (JSON: node, proc, url, ICE
  addresses, viewers, cameras, max_cameras), kept three heartbeats;
* ``lease:camera:<id>`` -- the node id that pulls the camera, with a TTL
  (``cluster.lease_seconds``).  Claimed with SET NX PX before the hub opens the camera's
  upstream; renewed every third of the TTL by one compare-or-claim script over all the
  node's leases; released with compare-and-delete when no stream of the camera is left.
  A lease another node holds stops the camera's streams at once (fencing).  While Redis
  does not answer the node keeps its streams (no other node can take a lease either) and
  takes no new camera; when Redis answers again the script re-asserts each lease and only
  those another node took meanwhile are fenced;
* ``seats:camera:<id>``, ``seats:unit:<code>`` -- live views, cluster-wide, for
  ``[limits]`` and the viewer counts (:mod:`camrelay.cluster.seats`), refreshed with
  the heartbeat;
* ``ticket:<random>`` -- a one-use ticket of a 307 (camera id and token digest), with a
  TTL of ``cluster.ticket_seconds``; redeemed with GETDEL;
* the ``camrelay:events`` channel (:mod:`camrelay.cluster.live`) and the sign-in lockout
  counters (:mod:`camrelay.cluster.lockout`).

Worker processes of one node (``relay.workers`` >= 2) each claim and renew, with the
node's id, the leases of the cameras they own (``c % N``): the lease is the node's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from camrelay.cluster.front import request_headers, response_headers
from camrelay.cluster.live import LiveLink
from camrelay.cluster.lockout import RedisCounters
from camrelay.cluster.redis_link import REDIS_ERRORS, connect
from camrelay.cluster.seats import RedisSeats, read_occupancy
from camrelay.errors import PayloadTooLarge, SourceUnavailable
from camrelay.placement import Census, NodeLoad
from camrelay.redact import strip_credentials
from camrelay.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from camrelay.access.views import Views
    from camrelay.events import EventBus
    from camrelay.relay.hub import Hub

log = logging.getLogger(__name__)


PREFIX = "camrelay:"
LEASE = PREFIX + "lease:camera:"
MEMBER = PREFIX + "member:"
TICKET = PREFIX + "ticket:"

# KEYS: the leases; ARGV[1]: the node id, ARGV[2]: the TTL (ms).  Extends ours, claims
# again those that lapsed (Redis was unreachable, or restarted empty: no other node took
# them), and returns the 1-based indexes of those another node holds (not touched).
REASSERT = """
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(slots=True)
class NodeInfo:
    """A node as its processes' heartbeats describe it."""

    id: str
    url: str
    procs: list[str] = field(default_factory=list)
    ice: list[str] = field(default_factory=list)
    viewers: int = 0
    cameras: list[int] = field(default_factory=list)
    max_cameras: int = 0

    def has_room(self) -> bool:
        return not self.max_cameras or len(self.cameras) < self.max_cameras

    def load(self) -> NodeLoad:
        return NodeLoad(self.id, self.url, self.viewers, len(self.cameras), self.max_cameras,
                        len(self.procs))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "processes": sorted(self.procs),
                "ice_addresses": self.ice, "viewers": self.viewers,
                "cameras": sorted(self.cameras), "max_cameras": self.max_cameras}


def merge_members(raw: list[str | None]) -> dict[str, NodeInfo]:
    """The member keys' JSON values, one :class:`NodeInfo` per node."""
    nodes: dict[str, NodeInfo] = {}
    for value in raw:
        if value is None:
            continue  # expired between SCAN and MGET
        try:
            one = json.loads(value)
            node = nodes.setdefault(one["node"], NodeInfo(one["node"], one["url"]))
            node.procs.append(str(one["proc"]))
            node.ice = list(one.get("ice") or node.ice)
            node.viewers += int(one.get("viewers", 0))
            node.cameras.extend(int(c) for c in one.get("cameras", ()))
            node.max_cameras = int(one.get("max_cameras", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignoring a malformed member heartbeat in Redis")
    return nodes


async def read_members(redis: Redis) -> dict[str, NodeInfo]:
    keys = [k async for k in redis.scan_iter(match=MEMBER + "*", count=500)]
    values: list[Any] = await redis.mget(keys) if keys else []
    return merge_members([v if isinstance(v, str) or v is None else v.decode() for v in values])


async def read_leases(redis: Redis) -> dict[int, tuple[str, int]]:
    """camera id -> (holder node, milliseconds left)."""
    keys = [k async for k in redis.scan_iter(match=LEASE + "*", count=1000)]
    out: dict[int, tuple[str, int]] = {}
    if not keys:
        return out
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.pttl(key)
    values = await pipe.execute()
    for i, key in enumerate(keys):
        holder, ttl = values[2 * i], values[2 * i + 1]
        if holder is not None:
            out[int(key[len(LEASE):])] = (holder, int(ttl))
    return out


async def cluster_status(settings: Settings) -> dict[str, Any]:
    """Nodes, their cameras and viewers, and each leased camera's holder (the CLI's
    ``camrelay cluster status``, read from Redis)."""
    if not settings.redis_url:
        raise SourceUnavailable("redis_url is not set: this node runs alone",
                                reason="no_cluster")
    redis = connect(settings.redis_url, timeout=5.0)
    try:
        nodes = await read_members(redis)
        leases = await read_leases(redis)
        seats = await read_occupancy(redis)
    except REDIS_ERRORS as err:
        raise SourceUnavailable(f"Redis at {strip_credentials(settings.redis_url)} cannot be "
                                f"read: {type(err).__name__}", reason="redis") from None
    finally:
        await redis.aclose()
    return {"nodes": [n.as_json() for _, n in sorted(nodes.items())],
            "leases": [{"camera_id": c, "node": holder, "expires_in_ms": ttl}
                       for c, (holder, ttl) in sorted(leases.items())],
            "viewers": {"cameras": [{"camera_id": c, "viewers": n}
                                    for c, n in sorted(seats.cameras.items())],
                        "units": [{"unit": u, "viewers": n}
                                  for u, n in sorted(seats.units.items())]}}


class ClusterNode:
    """This process as a member of the cluster; see the module's doc."""

    def __init__(self, settings: Settings, node_id: str, proc: str,
                 viewers: Callable[[], int]) -> None:
        assert settings.redis_url
        self.settings = settings
        self.config = settings.cluster
        self.node_id = node_id
        self.proc = proc
        self._viewers = viewers
        self._public_url = settings.public_url
        self.lease_ms = int(self.config.lease_seconds * 1000)
        self.tick = self.config.lease_seconds / 3
        self.redis: Redis = connect(settings.redis_url, timeout=self.tick)
        self.seats = RedisSeats(self.redis, settings.limits, owner=f"{node_id}:{proc}",
                                ttl_ms=int(self.config.heartbeat_seconds * 3000))
        self.hub: Hub | None = None
        self.held: dict[int, float] = {}  # camera -> monotonic time claimed
        self.nodes: dict[str, NodeInfo] = {}
        self._origins = frozenset({origin_of(self._public_url)})
        self.redis_down_since: float | None = None  # monotonic, while Redis does not answer
        self.live: LiveLink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    def attach(self, hub: Hub, bus: EventBus | None = None, views: Views | None = None
               ) -> None:
        """The hub whose streams the leases fence; the bus and the views whose events and
        revocations go to (and come from) the other nodes."""
        self.hub = hub
        if bus is not None:
            self.live = LiveLink(self.redis, f"{self.node_id}:{self.proc}", bus, views,
                                 timeout=self.tick)

    def lockout_counters(self) -> RedisCounters:
        """Sign-in lockout counters shared by every node."""
        return RedisCounters(self.redis, timeout=self.tick)

    # ---- Placement -----------------------------------------------------------------

    @property
    def public_url(self) -> str:
        return self._public_url

    def origins(self) -> frozenset[str]:
        return self._origins

    async def place(self, camera_id: int) -> str | None:
        if camera_id in self.held:
            return None
        try:
            holder = await self.holder(camera_id)
            if holder is None:
                elsewhere = self._roomier_node()
                if elsewhere is not None:
                    log.info("[camera %d] over cluster.max_cameras (%d): sent to node %s",
                             camera_id, self.config.max_cameras, elsewhere.id)
                    return elsewhere.url
                if await self.claim(camera_id):
                    return None
                holder = await self.holder(camera_id)
                if holder is None:  # lapsed between the two reads
                    raise SourceUnavailable(f"camera {camera_id} is changing nodes; try again",
                                            reason="lease_race", retry_after=1)
            if holder == self.node_id:  # ours (this node before a restart)
                await self.claim(camera_id)
                return None
            node = self.nodes.get(holder)
            if node is None:
                self.nodes = await read_members(self.redis)
                node = self.nodes.get(holder)
        except REDIS_ERRORS as err:
            raise self._redis_down(err) from None
        if node is None:
            raise SourceUnavailable(
                f"camera {camera_id} is held by node {holder}, which no longer answers; its "
                "lease runs out within cluster.lease_seconds", reason="owner_gone",
                retry_after=max(1, round(self.config.lease_seconds)))
        return node.url

    async def mint_ticket(self, camera_id: int, token_digest: str) -> str:
        ticket = secrets.token_urlsafe(24)
        try:
            await self.redis.set(TICKET + ticket, f"{camera_id}:{token_digest}",
                                 px=int(self.config.ticket_seconds * 1000))
        except REDIS_ERRORS as err:
            raise self._redis_down(err) from None
        return ticket

    async def redeem_ticket(self, ticket: str, camera_id: int) -> str | None:
        if len(ticket) > 64:
            return None
        try:
            value = await self.redis.getdel(TICKET + ticket)
        except REDIS_ERRORS as err:
            raise self._redis_down(err) from None
        if not isinstance(value, str):
            return None
        camera, _, token_digest = value.partition(":")
        return token_digest if camera == str(camera_id) and token_digest else None

    async def forward(self, request: web.Request, base_url: str) -> web.StreamResponse:
        assert self._http is not None, "forward() before start()"
        limit = self.settings.server.max_body_bytes
        body = await request.content.read(limit + 1) if request.body_exists else None
        if body is not None and len(body) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        headers = request_headers(request)
        try:
            async with self._http.request(request.method, base_url + request.path_qs,
                                          headers=headers, data=body,
                                          allow_redirects=False) as upstream:
                answer = await upstream.read()
                passed = response_headers(upstream.headers)
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("cluster: node %s unreachable for %s %s: %s", base_url,
                        request.method, request.path, type(err).__name__)
            raise SourceUnavailable(f"the node that serves this camera ({base_url}) cannot "
                                    "be reached", reason="owner_unreachable",
                                    retry_after=1) from None
        passed.popall("Content-Length", None)
        return web.Response(status=upstream.status, headers=passed, body=answer)

    async def census(self) -> Census:
        try:
            nodes = await read_members(self.redis)
            seats = await read_occupancy(self.redis)
        except REDIS_ERRORS as err:
            log.warning("cluster: Redis unreachable for the census: %s", type(err).__name__)
            raise SourceUnavailable("the cluster's Redis cannot be reached: no cluster-wide "
                                    "counts until it answers", reason="redis",
                                    retry_after=2) from None
        return Census(tuple(n.load() for _, n in sorted(nodes.items())), seats)

    # ---- leases -----------------------------------------------------------------------

    async def holder(self, camera_id: int) -> str | None:
        value = await self.redis.get(LEASE + str(camera_id))
        return value.decode() if isinstance(value, bytes) else value

    async def claim(self, camera_id: int) -> bool:
        """Hold ``camera_id``'s lease (claimed now, or already ours); False: another node's."""
        key = LEASE + str(camera_id)
        now = time.monotonic()
        if await self.redis.set(key, self.node_id, nx=True, px=self.lease_ms):
            self.held[camera_id] = now
            log.info("[camera %d] lease claimed by node %s", camera_id, self.node_id)
            return True
        if await self.redis.get(key) == self.node_id:  # ours: this node before a restart
            await self.redis.pexpire(key, self.lease_ms)
            self.held.setdefault(camera_id, now)
            return True
        return False

    async def admit(self, camera_id: int) -> None:
        """The hub's admission: the upstream of a camera opens only under its lease."""
        try:
            ours = await self.claim(camera_id)
        except REDIS_ERRORS as err:
            if camera_id in self.held:  # ours when Redis went away: no one can take it
                return
            raise self._redis_down(err) from None
        if not ours:
            raise SourceUnavailable(f"camera {camera_id} is pulled by another node",
                                    reason="elsewhere", retry_after=1)

    async def may_warm(self, camera_id: int) -> bool:
        """Keep-warm: only the lease holder keeps a camera warm (once per cluster)."""
        try:
            return await self.claim(camera_id)
        except REDIS_ERRORS as err:
            log.warning("[camera %d] keep-warm: no lease (%s)", camera_id, type(err).__name__)
            return False

    def fence(self, camera_id: int, why: str) -> None:
        self.held.pop(camera_id, None)
        if self.hub is not None:
            self.hub.drop_camera(camera_id, f"cluster lease {why}")

    async def renew(self) -> None:
        """One renewal pass: extend (or claim again) every held lease, fence those another
        node holds, release the idle.  Redis unreachable: the streams go on."""
        sent = time.monotonic()
        cameras = list(self.held)
        try:
            lost = await self.redis.eval(REASSERT, len(cameras),
                                         *[LEASE + str(c) for c in cameras],
                                         self.node_id, self.lease_ms) if cameras else []
        except REDIS_ERRORS as err:
            if self.redis_down_since is None:
                self.redis_down_since = sent
                log.warning("cluster: Redis unreachable (%s): keeping the %d camera(s) this "
                            "node pulls; no new camera until it answers", type(err).__name__,
                            len(cameras))
            return
        for index in lost:
            self.fence(cameras[int(index) - 1], "taken by another node")
        if self.redis_down_since is not None:
            log.info("cluster: Redis answers again after %.1f s: %d lease(s) re-asserted, "
                     "%d lost to another node", sent - self.redis_down_since,
                     len(cameras) - len(lost), len(lost))
            self.redis_down_since = None
        running = self.hub.camera_ids() if self.hub is not None else set()
        for camera, since in list(self.held.items()):
            if camera not in running and sent - since > self.config.lease_seconds:
                self.held.pop(camera, None)
                await self.redis.eval(RELEASE, 1, LEASE + str(camera), self.node_id)
                log.info("[camera %d] lease released: no stream left", camera)

    async def release_all(self) -> None:
        for camera in list(self.held):
            self.held.pop(camera, None)
            await self.redis.eval(RELEASE, 1, LEASE + str(camera), self.node_id)

    # ---- membership -------------------------------------------------------------------

    def heartbeat_value(self) -> str:
        return json.dumps({"node": self.node_id, "proc": self.proc, "url": self._public_url,
                           "ice": list(self.settings.relay.ice_host_addresses),
                           "viewers": self._viewers(), "cameras": sorted(self.held),
                           "max_cameras": self.config.max_cameras})

    async def heartbeat(self) -> None:
        await self.redis.set(f"{MEMBER}{self.node_id}:{self.proc}", self.heartbeat_value(),
                             px=int(self.config.heartbeat_seconds * 3000))
        await self.seats.refresh()
        self.nodes = await read_members(self.redis)
        self._origins = frozenset({origin_of(self._public_url)}
                                  | {origin_of(n.url) for n in self.nodes.values()})

    def _roomier_node(self) -> NodeInfo | None:
        limit = self.config.max_cameras
        if not limit or len(self.held) < limit:
            return None
        others = [n for n in self.nodes.values() if n.id != self.node_id and n.has_room()]
        return min(others, key=lambda n: len(n.cameras), default=None)

    def _redis_down(self, err: BaseException) -> SourceUnavailable:
        log.warning("cluster: Redis unreachable: %s", type(err).__name__)
        return SourceUnavailable("the cluster's Redis cannot be reached: this node takes no "
                                 "new camera until it can", reason="redis", retry_after=2)

    # ---- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=4 * self.settings.relay.connect_timeout + 10),
            auto_decompress=False)
        try:
            await self.heartbeat()
        except REDIS_ERRORS as err:  # the node still starts; the loops retry
            log.warning("cluster: Redis at %s unreachable at start: %s",
                        strip_credentials(self.settings.redis_url or ""), type(err).__name__)
        log.info("cluster: node %s (%s) at %s", self.node_id, self.proc, self._public_url)
        if self.live is not None:
            self.live.start()
        self._tasks = [asyncio.create_task(self._every(self.tick, self.renew), name="leases"),
                       asyncio.create_task(self._every(self.config.heartbeat_seconds,
                                                       self.heartbeat), name="heartbeat")]

    async def _every(self, period: float, step: Callable[[], Any]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as err:
                log.warning("cluster: %s failed: %s", step.__name__, type(err).__name__)
            except Exception:  # a bug must not end the node's membership for good
                log.exception("cluster: %s failed", step.__name__)
            await asyncio.sleep(period)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.live is not None:
            await self.live.stop()
        try:
            await self.release_all()
            await self.redis.delete(f"{MEMBER}{self.node_id}:{self.proc}")
        except REDIS_ERRORS as err:
            log.warning("cluster: leases not released at stop (%s); they run out by "
                        "themselves", type(err).__name__)
        await self.redis.aclose()
        if self._http is not None:
            await self._http.close()
