"""Fixtures for the WebRTC tests: a namespace guard, a fake gate, the WHEP app on loopback.

Every test here runs real aiortc (and Chromium) peers, so each one first checks that it
runs inside the loopback-only network namespace of ``scripts/test`` and fails otherwise.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from camrelay.access.accounts import Principal, Role, TokenKind, User
from camrelay.access.gate import RevokeCallback, ViewRequest
from camrelay.errors import AccessDenied, CameraNotFound
from camrelay.metrics import Metrics
from camrelay.relay.hub import Hub
from camrelay.relay.keyframes import KeyframeAsker
from camrelay.relay.media import AccessUnit, StreamKey
from camrelay.relay.sinks.webrtc import WebRtcConfig, WebRtcEgress
from camrelay.relay.sources.pattern import read_frame_number
from camrelay.relay.sources.registry import default_sources
from camrelay.relay.stream import SourceSpec
from camrelay.web.context import PRINCIPAL_KEY
from camrelay.web.keys import GATE_KEY, WEBRTC_KEY, WHEP_CONFIG_KEY
from camrelay.web.middleware import problems
from camrelay.web.sdp import WhepConfig
from camrelay.web.whep import setup_whep
from tests.camsim_fixture import camsim, camsim_720p, camsim_clips  # noqa: F401  (fixtures)

STATIC_DIR = Path(__file__).resolve().parents[2] / "camrelay" / "web" / "static"
TOKENS = {"tok-alice": 1, "tok-bob": 2}
HOST_ADDRESSES = ("127.0.0.2",)


def in_test_netns() -> bool:
    # if_nameindex() asks the kernel of this namespace (/sys may be the host's)
    return os.environ.get("CAMRELAY_TEST_NETNS") == "1" and \
        [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(autouse=True)
def _require_netns() -> None:
    if not in_test_netns():
        pytest.fail("WebRTC tests must run inside the loopback-only namespace: use scripts/test "
                    "(CAMRELAY_TEST_NETNS=1 and only `lo`)")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Any:
    before = {t.ident for t in threading.enumerate()}
    yield
    # aiortc decodes in the default executor; those worker threads are reused, not leaked;
    # asyncio's child watcher ends its waitpid thread just after a child was reaped
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()
              and not t.name.startswith(("asyncio_", "ThreadPoolExecutor", "asyncio-waitpid"))]
    assert not leaked, f"threads left running: {leaked}"


@dataclass
class FakeView:
    id: str
    request: ViewRequest
    closed: str | None = None
    manages_camera: bool = False
    audio: str | None = None
    callbacks: list[RevokeCallback] = field(default_factory=list)

    def on_revoke(self, callback: RevokeCallback) -> None:
        self.callbacks.append(callback)

    def note_audio(self, codec: str) -> None:
        self.audio = codec

    async def close(self, reason: str = "ended") -> None:
        if self.closed is None:
            self.closed = reason
        self.callbacks.clear()  # a closed view never calls back

    async def revoke(self, reason: str) -> None:
        for cb in self.callbacks:
            await cb(reason)


class FakeGate:
    """A fake of our Gate protocol: camera 13 is denied, unknown cameras are 404."""

    DENIED = 13

    def __init__(self, known: set[int]) -> None:
        self.known = known
        self.views: list[FakeView] = []

    async def open_view(self, request: ViewRequest) -> FakeView:
        if request.camera_id == self.DENIED:
            raise AccessDenied("no grant for this camera")
        if request.camera_id not in self.known:
            raise CameraNotFound(f"no camera {request.camera_id}")
        view = FakeView(f"v{len(self.views)}", request)
        self.views.append(view)
        return view

    def open_views(self) -> list[FakeView]:
        return [v for v in self.views if v.closed is None]

    async def end_view(self, who: Principal, view: FakeView, *, reason: str | None,
                       client_address: str | None) -> str:
        raise AccessDenied("only the viewer or an administrator over it may end this view")


def principal(user_id: int, token: str) -> Principal:
    user = User(user_id, f"user{user_id}", None, 1, "330000", Role.OPERATOR, False, False,
                datetime.now(UTC))
    return Principal(user, user_id, "digest-" + token, TokenKind.API, None)


@web.middleware
async def fake_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip()
    if token in TOKENS:
        request[PRINCIPAL_KEY] = principal(TOKENS[token], token)
    return await handler(request)


@dataclass
class Relay:
    url: str
    hub: Hub
    gate: FakeGate
    egress: WebRtcEgress
    http: aiohttp.ClientSession

    def open_subscriptions(self) -> int:
        return sum(status.consumers for status in self.hub.status())

    def streams(self) -> list[StreamKey]:
        return [status.key for status in self.hub.status()]

    def live_frame_number(self, key: StreamKey) -> int:
        """The number burnt into the stream's newest unit (decodes the cached GOP)."""
        gop = self.hub.latest_gop(key)
        assert gop, f"stream {key} is not live"
        return decode_last_number(gop)


def decode_last_number(gop: Sequence[AccessUnit]) -> int:
    codec = av.CodecContext.create("h264", "r")
    number = -1
    for unit in gop:
        for frame in codec.decode(av.Packet(unit.data)):
            number = read_frame_number(frame.to_ndarray(format="gray"))
    return number


def demo(gop: float, fps: int = 25, width: int = 320, height: int = 240) -> SourceSpec:
    return SourceSpec(f"demo:?width={width}&height={height}&fps={fps}&gop={gop:g}")


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_specs() -> dict[int, SourceSpec]:
    return {
        1: demo(2),
        2: demo(4),
        9: SourceSpec(f"rtsp://127.0.0.1:{closed_port()}/nothing", connect_timeout=1,
                      read_timeout=1),
    }


def resolver_for(specs: dict[int, SourceSpec]) -> Callable[[StreamKey], Awaitable[SourceSpec]]:
    async def resolve(key: StreamKey) -> SourceSpec:
        try:
            return specs[key.camera_id]
        except KeyError:
            raise CameraNotFound(f"camera {key.camera_id} not found") from None

    return resolve


def make_app(hub: Hub, gate: FakeGate, config: WebRtcConfig,
             cors: tuple[str, ...] = ("http://console.test",),
             metrics: Metrics | None = None) -> web.Application:
    app = web.Application(middlewares=[problems, fake_auth])
    egress = WebRtcEgress(hub, config, None if metrics is None else metrics.observe_first_media)
    if metrics is not None:
        metrics.watch_relay(hub, egress)
    app[GATE_KEY] = gate
    app[WEBRTC_KEY] = egress
    app[WHEP_CONFIG_KEY] = WhepConfig(cors_origins=cors)
    setup_whep(app)
    app.router.add_static("/static", STATIC_DIR)

    async def close_egress(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[WEBRTC_KEY].close()

    app.cleanup_ctx.append(close_egress)
    return app


RelayFactory = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def relay_factory() -> AsyncIterator[RelayFactory]:
    started: list[tuple[TestServer, aiohttp.ClientSession, Hub]] = []

    async def start(specs: dict[int, SourceSpec] | None = None,
                    config: WebRtcConfig | None = None, queue_size: int = 120,
                    host: str = "127.0.0.1", metrics: Metrics | None = None,
                    keyframes: KeyframeAsker | None = None) -> Relay:
        specs = default_specs() if specs is None else specs
        hub = Hub(resolver_for(specs), default_sources(), linger=0.2, backoff_initial=0.2,
                  queue_size=queue_size, keyframes=keyframes)
        await hub.start()
        gate = FakeGate(set(specs))
        config = config or WebRtcConfig(host_addresses=HOST_ADDRESSES, connect_timeout=10,
                                        join_timeout=5)
        app = make_app(hub, gate, config, metrics=metrics)
        server = TestServer(app, host=host)
        await server.start_server()
        http = aiohttp.ClientSession()
        started.append((server, http, hub))
        return Relay(str(server.make_url("")).rstrip("/"), hub, gate, app[WEBRTC_KEY], http)

    yield start
    for server, http, hub in started:
        await http.close()
        await server.close()
        await hub.stop()


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0,
                     event: asyncio.Event | None = None) -> None:
    """Wait for ``predicate``; re-checked on ``event`` or every loop tick (a poll, bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            if event is not None:
                event.clear()
                await event.wait()
            else:
                await asyncio.sleep(0.01)
