"""Property: for random unit trees, users and grants, the real API answers as a small
reference model of the rules says -- listing rights, camera show, WHEP, snapshot and the
gate's PTZ decision -- for every (user, camera, action).

The model below is written from the issue's rules, not from ``camrelay.access.policy``.
The server runs in a thread with its own event loop; hypothesis drives it over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from camrelay.access.accounts import Accounts, Role, TokenKind, digest
from camrelay.access.gate import ViewRequest
from camrelay.app import create_app
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.errors import AccessDenied
from camrelay.fields import utcnow
from camrelay.settings import load_settings
from camrelay.store import Store, schema
from camrelay.web.keys import GATE_KEY

T = TypeVar("T")
ACTIONS = ("live", "snapshot", "ptz")
ROLE_CAN = {  # the issue: viewers watch; operators, technicians, admins also steer
    "administrator": {"live", "snapshot", "ptz"}, "operator": {"live", "snapshot", "ptz"},
    "technician": {"live", "snapshot", "ptz"}, "viewer": {"live", "snapshot"},
    "approver": {"live", "snapshot"}, "auditor": set(),
}


class LiveServer:
    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = load_settings(env={"CAMRELAY_DATA_DIR": str(data_dir)})
        self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> None:
        self.store = await Store.open(self.settings)
        self.catalog = Catalog(self.store, self.settings.catalog.categories,
                               self.settings.catalog.camera_types)
        self.accounts = Accounts(self.store)
        self.app = create_app(self.settings, self.store)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.store.close()

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def http(self, method: str, path: str, token: str, body: bytes | None = None,
             ctype: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if ctype:
            headers["Content-Type"] = ctype
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw[:1] == b"{" else raw


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("prop") / "data")
    yield live
    live.close()


@dataclass(frozen=True)
class GrantSpec:
    to_unit: int | None
    to_user: int | None
    subunits: bool
    cameras: tuple[int, ...]
    category: str | None
    unit_scope: int | None
    actions: frozenset[str]
    state: str  # active, expired, pending, revoked


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_units = draw(st.integers(2, 5))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, n_units)]
    users = draw(st.lists(st.tuples(st.integers(0, n_units - 1),
                                    st.sampled_from(sorted(ROLE_CAN))), min_size=1, max_size=4))
    cameras = draw(st.lists(st.tuples(st.integers(0, n_units - 1),
                                      st.sampled_from(["bridge", "tunnel"])),
                            min_size=1, max_size=5))
    grants = []
    for _ in range(draw(st.integers(0, 3))):
        to_user = draw(st.none() | st.integers(0, len(users) - 1))
        to_unit = None if to_user is not None else draw(st.integers(0, n_units - 1))
        listed = tuple(sorted(draw(st.sets(st.integers(0, len(cameras) - 1), max_size=2))))
        category = draw(st.none() | st.sampled_from(["bridge", "tunnel"]))
        unit_scope = draw(st.none() | st.integers(0, n_units - 1))
        if not listed and category is None and unit_scope is None:
            unit_scope = 0
        grants.append(GrantSpec(
            to_unit=to_unit, to_user=to_user,
            subunits=to_unit is not None and draw(st.booleans()), cameras=listed,
            category=category, unit_scope=unit_scope,
            actions=frozenset(draw(st.sets(st.sampled_from(ACTIONS), min_size=1))),
            state=draw(st.sampled_from(["active", "active", "expired", "pending", "revoked"]))))
    return {"parents": parents, "users": users, "cameras": cameras, "grants": grants}


# ---- the reference model ---------------------------------------------------------------------

def below(parents: list[int | None], unit: int) -> set[int]:
    """unit and everything under it"""
    out = {unit}
    changed = True
    while changed:
        changed = False
        for child, parent in enumerate(parents):
            if parent in out and child not in out:
                out.add(child)
                changed = True
    return out


def model_allows(sc: dict[str, Any], user: int, camera: int, action: str) -> bool:
    unit, role = sc["users"][user]
    cam_unit, category = sc["cameras"][camera]
    if action not in ROLE_CAN[role]:
        return False
    if cam_unit in below(sc["parents"], unit):
        return True
    for g in sc["grants"]:
        if g.state != "active" or action not in g.actions:
            continue
        if g.to_user is not None:
            holds = g.to_user == user
        else:
            holds = unit == g.to_unit or (g.subunits and unit in below(sc["parents"], g.to_unit))
        if not holds:
            continue
        if camera in g.cameras:
            return True
        described = g.category is not None or g.unit_scope is not None
        if described and (g.category is None or g.category == category) and (
                g.unit_scope is None or cam_unit in below(sc["parents"], g.unit_scope)):
            return True
    return False


def model_rights(sc: dict[str, Any], user: int, camera: int) -> list[str]:
    unit, role = sc["users"][user]
    out = [a for a in ACTIONS if model_allows(sc, user, camera, a)]
    if role in ("administrator", "technician") and \
            sc["cameras"][camera][0] in below(sc["parents"], unit):
        out.append("manage")
    if ROLE_CAN[role] and not ROLE_CAN[role] <= set(out):
        out.append("request")
    return out


# ---- building a scenario in the real server --------------------------------------------------

_examples = itertools.count()


async def build(server: LiveServer, sc: dict[str, Any]) -> dict[str, Any]:
    n = next(_examples)
    codes = [f"p{n}u{i}" for i in range(len(sc["parents"]))]
    for i, parent in enumerate(sc["parents"]):
        await server.catalog.add_unit({"code": codes[i], "name": codes[i],
                                       "level": UnitLevel.DEPARTMENT,
                                       "parent": None if parent is None else codes[parent]})
    users = []
    for i, (unit, role) in enumerate(sc["users"]):
        user = await server.accounts.add_user(f"p{n}user{i}", unit_code=codes[unit],
                                              role=Role(role), password=None, service=True)
        token, _ = await server.accounts.create_token(user.id, kind=TokenKind.API)
        users.append((user.id, token))
    cameras = []
    for i, (unit, category) in enumerate(sc["cameras"]):
        cameras.append((await server.catalog.add_camera(parse_camera(
            {"external_id": f"p{n}cam{i}", "name": f"p{n}cam{i}", "unit": codes[unit],
             "category": category}, categories=server.catalog.categories,
            camera_types=server.catalog.camera_types))).id)
    now = utcnow()
    windows = {"active": (now - timedelta(hours=1), now + timedelta(hours=1)),
               "expired": (now - timedelta(hours=2), now - timedelta(hours=1))}
    async with server.store.begin() as conn:
        admin_id = users[0][0]
        for g in sc["grants"]:
            start, end = windows.get(g.state, windows["active"])
            unit_ids = {}
            for idx in {g.to_unit, g.unit_scope} - {None}:
                unit_ids[idx] = (await server.catalog.unit_by_code(conn, codes[idx])).id
            await conn.execute(schema.grants.insert().values(
                grantee_unit_id=None if g.to_unit is None else unit_ids[g.to_unit],
                grantee_user_id=None if g.to_user is None else users[g.to_user][0],
                include_subunits=g.subunits, camera_ids=[cameras[c] for c in g.cameras],
                category=g.category,
                scope_unit_id=None if g.unit_scope is None else unit_ids[g.unit_scope],
                actions=sorted(g.actions), purpose="property", valid_from=start,
                valid_until=end, requested_by=admin_id, requested_at=now,
                state={"active": "approved", "expired": "approved"}.get(g.state, g.state)))
    return {"root": codes[0], "users": users, "cameras": cameras}


async def gate_allows(server: LiveServer, user_id: int, token: str, camera_id: int,
                      action: str) -> bool:
    try:
        view = await server.app[GATE_KEY].open_view(ViewRequest(
            token_digest=digest(token), user_id=user_id, camera_id=camera_id,
            action=action, purpose=None, client_address=None,  # type: ignore[arg-type]
            user_agent=None, via="property"))
    except AccessDenied:
        return False
    await view.close()
    return True


@hsettings(max_examples=12, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sc=scenarios())
def test_api_answers_match_the_model(server: LiveServer, sc: dict[str, Any]) -> None:
    built = server.run(build(server, sc))
    cameras = built["cameras"]
    for u, (user_id, token) in enumerate(built["users"]):
        status, page = server.http("GET", f"/api/v1/cameras?limit=1000&unit={built['root']}",
                                   token)
        assert status == 200 and page["total"] == len(cameras)
        listed = {c["id"]: c for c in page["items"]}
        for c, camera_id in enumerate(cameras):
            expected = model_rights(sc, u, c)
            assert listed[camera_id]["rights"] == expected, (sc, u, c)
            status, shown = server.http("GET", f"/api/v1/cameras/{camera_id}", token)
            assert status == 200 and shown["rights"] == expected
            assert ("main_url" in shown) == ("manage" in expected)
            # WHEP: the gate answers before the content type is even looked at
            status, _ = server.http("POST", f"/whep/{camera_id}", token, b"x", "text/plain")
            assert status == (415 if model_allows(sc, u, c, "live") else 403), (sc, u, c)
            # snapshot: allowed → 409, the camera has no stream address; refused → 403
            status, _ = server.http("GET", f"/api/v1/cameras/{camera_id}/snapshot.jpg", token)
            assert status == (409 if model_allows(sc, u, c, "snapshot") else 403), (sc, u, c)
            allowed = server.run(gate_allows(server, user_id, token, camera_id, "ptz"))
            assert allowed == model_allows(sc, u, c, "ptz"), (sc, u, c)
