"""The PTZ REST API on the real app: velocities reach the fake camera, the gate decides
and journals control sessions, the lock is visible and taken over without sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Role, TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.settings import Settings
from camrelay.web.api_ptz import setup_ptz
from camrelay.web.keys import POLICY_KEY, PTZ_KEY
from tests.conftest import World, auth
from tests.onvif.fakecam import FakeCamera, PtzMove

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Hall:
    client: TestClient[Any, Any]
    camera_id: int
    tokens: dict[str, str]
    clock: Clock
    world: World


async def _user(world: World, name: str, unit: str, role: Role) -> str:
    user = await world.accounts.add_user(name, unit_code=unit, role=role,
                                         password="correct horse battery")
    token, _ = await world.accounts.create_token(user.id, kind=TokenKind.API, name="t")
    return token


@pytest.fixture
async def hall(world: World, settings: Settings, camera: FakeCamera) -> AsyncIterator[Hall]:
    from camrelay.app import create_app

    app = create_app(settings, world.store)
    if PTZ_KEY not in app:  # until the app factory wires the PTZ routes itself
        setup_ptz(app)
    clock = Clock()
    app[PTZ_KEY].clock = clock
    cam = await world.catalog.add_camera({
        "name": "Gate PTZ", "unit": "330100", "category": "expressway", "camera_type": "ptz",
        "onvif_url": f"http://127.0.0.1:{camera.port}/onvif/device_service",
        "username": camera.username, "password": camera.password})
    tokens = {
        "anna": await _user(world, "anna", "330100", Role.OPERATOR),
        "bert": await _user(world, "bert", "330100", Role.OPERATOR),
        "vera": await _user(world, "vera", "330100", Role.VIEWER),
        "otto": await _user(world, "otto", "330110", Role.OPERATOR),  # the county below
    }
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Hall(client, cam.id, tokens, clock, world)


def _url(hall: Hall, tail: str) -> str:
    return f"/api/v1/cameras/{hall.camera_id}/ptz/{tail}"


async def _records(hall: Hall) -> list[dict[str, Any]]:
    from camrelay.web.keys import JOURNAL_KEY

    journal = hall.client.app[JOURNAL_KEY]
    return list(reversed(await journal.records(RecordFilter(camera_id=hall.camera_id))))


async def test_moves_reach_the_camera_and_one_session_is_logged(hall: Hall,
                                                                camera: FakeCamera) -> None:
    c, anna = hall.client, auth(hall.tokens["anna"])
    for pan in (0.5, 0.25, 0.0):
        r = await c.post(_url(hall, "move"), json={"pan": pan, "tilt": -0.5, "zoom": 0.1},
                         headers=anna)
        assert r.status == 200, await r.text()
        hall.clock.now += 1
    r = await c.post(_url(hall, "move"), json={"zoom": -1, "timeout": 2}, headers=anna)
    assert r.status == 200
    r = await c.post(_url(hall, "stop"), headers=anna)
    lock = await r.json()
    assert lock["holder"]["user"] == "anna" and lock["holder"]["commands"] == 5
    assert lock["holder"]["emergency"] is False
    presets = await (await c.get(_url(hall, "presets"), headers=anna)).json()
    assert presets == [{"token": "1", "name": "Gate"}, {"token": "2", "name": "Car park"}]
    r = await c.post(_url(hall, "presets/2/goto"), headers=anna)
    assert r.status == 200
    assert camera.ptz_moves == [PtzMove("Profile_1", 0.5, -0.5, 0.1),
                                PtzMove("Profile_1", 0.25, -0.5, 0.1),
                                PtzMove("Profile_1", 0.0, -0.5, 0.1),
                                PtzMove("Profile_1", 0.0, 0.0, -1.0)]
    assert camera.ptz_stops == ["Profile_1"] and camera.gotos == ["2"]
    assert camera.auth_failures == []
    # one connection for the whole session: the device is read once, not per tick
    assert camera.operations.count("GetDeviceInformation") == 1
    r = await c.delete(_url(hall, "lock"), headers=anna)
    assert r.status == 204
    [session] = [r for r in await _records(hall) if r["kind"] == "view"]
    assert session["action"] == "ptz" and session["user"] == "anna"
    assert session["end"] is not None
    assert session["close_reason"] == "ptz control ended (release): 6 command(s)"
    assert (await (await c.get(_url(hall, "lock"), headers=anna)).json())["holder"] is None


async def test_ptz_without_the_right_is_refused_and_logged(hall: Hall,
                                                           camera: FakeCamera) -> None:
    c = hall.client
    for who in ("vera", "otto"):  # a viewer's role; an operator outside the jurisdiction
        r = await c.post(_url(hall, "move"), json={"pan": 1}, headers=auth(hall.tokens[who]))
        assert r.status == 403, await r.text()
        r = await c.get(_url(hall, "presets"), headers=auth(hall.tokens[who]))
        assert r.status == 403
    assert camera.ptz_moves == [] and "GetPresets" not in camera.operations
    denied = [r for r in await _records(hall) if r["kind"] == "denied"]
    assert [(r["user"], r["action"]) for r in denied] == [("vera", "ptz")] * 2 + \
        [("otto", "ptz")] * 2
    r = await c.post("/api/v1/cameras/999999/ptz/move", json={"pan": 1},
                     headers=auth(hall.tokens["anna"]))
    assert r.status == 404


async def test_the_lock_passes_after_idle_and_at_once_in_an_emergency(
        hall: Hall, camera: FakeCamera) -> None:
    c = hall.client
    anna, bert, otto = (auth(hall.tokens[n]) for n in ("anna", "bert", "otto"))
    assert (await c.post(_url(hall, "move"), json={"pan": 0.3}, headers=anna)).status == 200
    hall.clock.now += 4.9
    r = await c.post(_url(hall, "move"), json={"pan": -0.3}, headers=bert)
    assert r.status == 409
    problem = await r.json()
    assert problem["holder"] == "anna" and problem["retry_after"] == pytest.approx(0.1)
    assert r.headers["Retry-After"]
    lock = await (await c.get(_url(hall, "lock"), headers=bert)).json()
    assert lock["holder"]["user"] == "anna" and lock["holder"]["idle_seconds"] == 4.9
    assert (await c.delete(_url(hall, "lock"), headers=bert)).status == 403
    hall.clock.now += 0.1  # anna has been idle for 5 s: bert takes over
    assert (await c.post(_url(hall, "move"), json={"pan": -0.3}, headers=bert)).status == 200
    assert (await c.post(_url(hall, "move"), json={"pan": 0.9}, headers=anna)).status == 409
    # an emergency user takes control at once
    otto_user = await hall.world.accounts.get_user("otto")
    await c.app[POLICY_KEY].emergencies.open(otto_user, {
        "reason": "lorry fire at the gate", "incident": "INC-7", "cameras": [hall.camera_id]})
    r = await c.post(_url(hall, "move"), json={"tilt": 0.7}, headers=otto)
    assert r.status == 200, await r.text()
    lock = await r.json()
    assert lock["holder"]["user"] == "otto" and lock["holder"]["emergency"] is True
    assert (await c.post(_url(hall, "stop"), headers=bert)).status == 409
    assert [m.pan for m in camera.ptz_moves] == [0.3, -0.3, 0.0]
    records = [r for r in await _records(hall) if r["kind"] == "view"]
    views = [r for r in records if not (r["close_reason"] or "ptz control").startswith(
        ("refused", "ptz lock"))]  # the sessions, without the refused and lock-status calls
    assert ("bert", "refused: ptz control held by anna") in \
        [(v["user"], v["close_reason"]) for v in records]
    assert [(v["user"], v["close_reason"]) for v in views] == [
        ("anna", "ptz control ended (takeover by bert): 1 command(s)"),
        ("bert", "ptz control ended (takeover by otto): 1 command(s)"),
        ("otto", None)]
    assert views[2]["emergency"] is True and views[2]["incident"] == "INC-7"


async def test_a_revoked_token_ends_the_session_and_stops_the_camera(
        hall: Hall, camera: FakeCamera) -> None:
    from camrelay.web.keys import VIEWS_KEY

    c = hall.client
    rita = await hall.world.accounts.add_user("rita", unit_code="330100", role=Role.OPERATOR,
                                              password="correct horse battery")
    token, info = await hall.world.accounts.create_token(rita.id, kind=TokenKind.API, name="t")
    assert (await c.post(_url(hall, "move"), json={"pan": 0.5}, headers=auth(token))).status \
        == 200
    await hall.world.accounts.revoke_token(info.id)
    assert await c.app[VIEWS_KEY].sweep() == 1  # what the gate's watcher does within 1 s
    await c.app[PTZ_KEY].flush()
    lock = await (await c.get(_url(hall, "lock"), headers=auth(hall.tokens["anna"]))).json()
    assert lock["holder"] is None
    assert camera.ptz_stops == ["Profile_1"]
    [session] = [r for r in await _records(hall) if r["user"] == "rita"]
    assert session["close_reason"] == "token revoked"
