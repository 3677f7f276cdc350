"""One camrelay pulling a camera from another over WHEP (``whep+http://``).

Two full camrelay apps on loopback, each on its own SQLite store: the *lower* one serves
an RTSP simulator camera; the *upper* one has a catalogue camera whose ``main_url`` is the
lower's WHEP URL and whose password is the token of a lower service account.  Viewers of
the upper are real aiortc peers; the simulator counts its RTSP sessions itself and the
lower's egress its WHEP sessions.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from camrelay.access.accounts import Accounts, Role, TokenKind
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.relay.media import StreamKey
from camrelay.settings import Settings, load_settings
from camrelay.store import Store
from camrelay.web.keys import HUB_KEY, WEBRTC_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import auth
from tests.webrtc.conftest import HOST_ADDRESSES, wait_until
from tests.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.netns

UNIT = "330110"


@dataclass
class Level:
    """One camrelay: its store, services and (re)startable server on a fixed port."""

    settings: Settings
    store: Store
    catalog: Catalog
    accounts: Accounts
    admin_token: str
    server: TestServer | None = None
    port: int = 0
    apps: list[web.Application] = field(default_factory=list)

    @property
    def app(self) -> web.Application:
        return self.apps[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from camrelay.app import create_app

        app = create_app(self.settings, self.store)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.port = self.server.port or 0
        self.apps.append(app)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def add_camera(self, main_url: str, password: str | None = None) -> int:
        data: dict[str, Any] = {"external_id": f"x{time.monotonic_ns()}", "name": "bridge",
                                "unit": UNIT, "category": "bridge", "main_url": main_url}
        if password is not None:
            data["password"] = password
        fields = parse_camera(data, categories=self.catalog.categories,
                              camera_types=self.catalog.camera_types)
        return (await self.catalog.add_camera(fields)).id

    async def service_token(self, name: str) -> tuple[str, int]:
        user = await self.accounts.add_user(name, unit_code=UNIT, role=Role.OPERATOR,
                                            password=None, service=True)
        token, info = await self.accounts.create_token(user.id, kind=TokenKind.API, name=name)
        return token, info.id


async def make_level(root: Path) -> Level:
    settings = load_settings(env={"CAMRELAY_DATA_DIR": str(root / "data"),
                                  "CAMRELAY_HEALTH__ENABLED": "false"})
    settings = replace(settings, relay=replace(
        settings.relay, ice_host_addresses=list(HOST_ADDRESSES), linger_seconds=0.5))
    store = await Store.open(settings)
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    await catalog.add_unit({"code": "330000", "name": "省厅", "level": UnitLevel.PROVINCE,
                            "parent": None})
    await catalog.add_unit({"code": "330100", "name": "市局", "level": UnitLevel.CITY,
                            "parent": "330000"})
    await catalog.add_unit({"code": UNIT, "name": "区局", "level": UnitLevel.COUNTY,
                            "parent": "330100"})
    accounts = Accounts(store)
    admin = await accounts.add_user("admin", unit_code="330000", role=Role.ADMINISTRATOR,
                                    password=None, service=True)
    token, _ = await accounts.create_token(admin.id, kind=TokenKind.API, name="admin")
    level = Level(settings, store, catalog, accounts, token)
    await level.start()
    return level


@dataclass
class Pair:
    lower: Level
    upper: Level
    http: aiohttp.ClientSession
    lower_camera: int
    upper_camera: int
    link_token: str
    link_token_id: int

    def lower_sessions(self) -> int:
        return len(self.lower.app[WEBRTC_KEY].sessions())

    async def viewers(self, n: int) -> list[WhepViewer]:
        return list(await asyncio.gather(*(
            WhepViewer.connect(self.http, self.upper.url, self.upper_camera,
                               self.upper.admin_token) for _ in range(n))))


PairFactory = Callable[..., Awaitable[Pair]]


@pytest.fixture
async def pair_factory(tmp_path: Path, camsim: CamSim) -> AsyncIterator[PairFactory]:
    levels: list[Level] = []
    sessions: list[aiohttp.ClientSession] = []
    before = {t.ident for t in threading.enumerate()}

    async def make(via: Callable[[str], str] | None = None, mount: str = "/h264") -> Pair:
        lower = await make_level(tmp_path / f"lower{len(levels)}")
        levels.append(lower)
        upper = await make_level(tmp_path / f"upper{len(levels)}")
        levels.append(upper)
        lower_camera = await lower.add_camera(camsim.url(mount))
        token, token_id = await lower.service_token("city_link")
        whep = f"{lower.url}/whep/{lower_camera}"
        if via is not None:
            whep = via(whep)
        upper_camera = await upper.add_camera(
            "whep+" + whep + "?purpose=federation", password=token)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Pair(lower, upper, http, lower_camera, upper_camera, token, token_id)

    yield make
    for http in sessions:
        await http.close()
    for level in reversed(levels):
        await level.stop()
        await level.store.close()
    # aiosqlite resolves a connection's close from inside its thread, which ends a moment
    # later: wait for those threads (bounded) before the suite's leaked-thread check
    for thread in threading.enumerate():
        if thread.ident not in before and "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


def numbers(viewer: WhepViewer) -> list[int]:
    return [f.number for f in viewer.frames if f.number is not None]


async def test_three_upper_viewers_one_whep_pull_one_rtsp_session(
        pair_factory: PairFactory, camsim: CamSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="camrelay")
    plays = camsim.play_count("/h264")
    pair = await pair_factory()
    viewers = await pair.viewers(3)
    try:
        await asyncio.gather(*(v.wait_frames(25, timeout=20) for v in viewers))
        for viewer in viewers:
            seen = numbers(viewer)
            assert len(seen) >= 15, "the camera's burnt-in frame numbers must be readable"
            assert seen[-1] > seen[0], "frame numbers must advance"
        assert pair.lower_sessions() == 1, "one pull per camera, whatever the viewers above"
        assert camsim.play_count("/h264") - plays == 1
        # no re-encoding: one plain stream above, the camera's profile all the way
        upper_hub, lower_hub = pair.upper.app[HUB_KEY], pair.lower.app[HUB_KEY]
        key = StreamKey(pair.upper_camera)
        assert [s.key for s in upper_hub.status()] == [key]
        assert not upper_hub.is_transcoded(key)
        up = await upper_hub.subscribe(key)
        low = await lower_hub.subscribe(StreamKey(pair.lower_camera))
        try:
            assert up.info.profile_level_id == low.info.profile_level_id is not None
            assert (up.info.width, up.info.height) == (low.info.width, low.info.height)
            assert up.info.sps == low.info.sps
        finally:
            up.close()
            low.close()
        for viewer in viewers:
            assert f"profile-level-id={low.info.profile_level_id}" in viewer.answer
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    # the last viewer gone, the upper stops its pull and DELETEs the lower's session
    await wait_until(lambda: pair.lower_sessions() == 0, timeout=10)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"whep {pair.lower.url}/whep/{pair.lower_camera}" in logged  # no query, no token
    assert pair.link_token not in logged


async def test_revoking_the_lower_token_cuts_the_upper_viewers(
        pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    viewers = await pair.viewers(3)
    try:
        await asyncio.gather(*(v.wait_frames(10, timeout=20) for v in viewers))
        t0 = time.monotonic()
        r = await pair.http.delete(f"{pair.lower.url}/api/v1/tokens/{pair.link_token_id}",
                                   headers=auth(pair.lower.admin_token))
        assert r.status == 200
        async with asyncio.timeout(1.0):  # the issue asks for 1 s
            await asyncio.gather(*(v.ended.wait() for v in viewers))
        cut = time.monotonic() - t0
        print(f"upper viewers cut {cut * 1000:.0f} ms after the revocation at the lower")
        await asyncio.sleep(1.0)  # a window in which no further picture may arrive
        late = [f for v in viewers for f in v.frames if f.at > t0 + cut + 0.5]
        assert not late
        # a new viewer above is refused, with the reason, and the token never shown
        with pytest.raises(WhepError) as refused:
            await WhepViewer.connect(pair.http, pair.upper.url, pair.upper_camera,
                                     pair.upper.admin_token)
        assert refused.value.status == 503 and '"reason": "auth"' in refused.value.body
        assert pair.link_token not in refused.value.body
        assert pair.lower_sessions() == 0
    finally:
        await asyncio.gather(*(v.close(delete=False) for v in viewers))


async def test_the_lower_restarting_the_upper_reconnects(pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    viewer = (await pair.viewers(1))[0]
    try:
        await viewer.wait_frames(10, timeout=20)
        await pair.lower.stop()
        await pair.lower.start()  # same port, same store: the token still valid
        seen = len(viewer.frames)
        # the waiting viewer plays again in its own session, the stream reconnected
        await viewer.wait_frames(seen + 25, timeout=30)
        assert not viewer.ended.is_set()
        assert numbers(viewer)[-1] > 0
        await wait_until(lambda: pair.lower_sessions() == 1, timeout=5)
        newcomer = (await pair.viewers(1))[0]
        try:
            await newcomer.wait_frames(10, timeout=10)
        finally:
            await newcomer.close()
        assert pair.lower_sessions() == 1
    finally:
        await viewer.close()


async def test_a_307_from_a_lower_node_is_followed_with_the_token(
        pair_factory: PairFactory) -> None:
    seen: list[str | None] = []
    target: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        location = f"{target[0]}?{request.query_string}&ticket=not-a-real-ticket"
        raise web.HTTPTemporaryRedirect(location)

    app = web.Application()
    app.router.add_post("/whep/{camera_id}", redirect)
    front = TestServer(app, host="127.0.0.1")
    await front.start_server()
    try:
        front_url = str(front.make_url("")).rstrip("/")

        def via(whep: str) -> str:
            target.append(whep)
            return front_url + "/whep/" + whep.rsplit("/", 1)[1]

        pair = await pair_factory(via=via)
        viewer = (await pair.viewers(1))[0]
        try:
            await viewer.wait_frames(10, timeout=20)
        finally:
            await viewer.close()
        assert seen == [f"Bearer {pair.link_token}"]
        assert pair.lower_sessions() <= 1
    finally:
        await front.close()


async def test_the_lower_refusals_reach_the_upper_viewer_as_reasons(
        pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    no_stream = await pair.lower.add_camera("")
    cases = {
        f"{pair.lower.url}/whep/999999": "not_found",  # unknown (or no longer shared)
        f"{pair.lower.url}/whep/{no_stream}": "no_stream",  # the lower's 409
    }
    for url, reason in cases.items():
        camera = await pair.upper.add_camera("whep+" + url, password=pair.link_token)
        with pytest.raises(WhepError) as refused:
            await WhepViewer.connect(pair.http, pair.upper.url, camera,
                                     pair.upper.admin_token)
        assert refused.value.status == 503
        assert f'"reason": "{reason}"' in refused.value.body
        assert pair.link_token not in refused.value.body
    wrong = await pair.upper.add_camera(f"whep+{pair.lower.url}/whep/{pair.lower_camera}",
                                        password="not-a-token")
    with pytest.raises(WhepError) as refused:
        await WhepViewer.connect(pair.http, pair.upper.url, wrong, pair.upper.admin_token)
    assert '"reason": "auth"' in refused.value.body and "not-a-token" not in refused.value.body
