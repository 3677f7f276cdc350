"""People and cameras in a five-unit tree, and helpers to reach the gate of the real app.

330000 province ── 330100 city ── 330110 county
               └── 330200 city ── 330210 county
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role, TokenKind, digest
from camrelay.access.gate import ViewRequest
from camrelay.access.journal import Journal
from camrelay.access.views import LiveView, Views
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import UnitLevel
from camrelay.web.keys import GATE_KEY, JOURNAL_KEY, VIEWS_KEY
from tests.conftest import World, auth

PEOPLE = {
    # name: (unit, role)
    "prov_op": ("330000", Role.OPERATOR),
    "approver": ("330000", Role.APPROVER),
    "approver2": ("330000", Role.APPROVER),
    "prov_auditor": ("330000", Role.AUDITOR),
    "city_view": ("330100", Role.VIEWER),
    "city_op": ("330100", Role.OPERATOR),
    "city_tech": ("330100", Role.TECHNICIAN),
    "city_admin": ("330100", Role.ADMINISTRATOR),
    "city_auditor": ("330100", Role.AUDITOR),
    "county_op": ("330110", Role.OPERATOR),
    "other_op": ("330200", Role.OPERATOR),
    "other_county_op": ("330210", Role.OPERATOR),
}
CAMERAS = {
    # name: (unit, category, lat, lon)
    "prov": ("330000", "expressway", 30.25, 120.16),
    "city": ("330100", "expressway", 30.27, 120.15),
    "county": ("330110", "bridge", 30.42, 120.30),
    "other": ("330200", "bridge", 29.87, 121.55),
    "other_county": ("330210", "tunnel", 29.88, 121.56),
}


WITH_PASSWORD = {"county_op", "city_op"}


@dataclass
class Folks:
    world: World
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    cameras: dict[str, int] = field(default_factory=dict)

    def h(self, name: str) -> dict[str, str]:
        return auth(self.world.admin_token if name == "admin" else self.tokens[name])

    def request(self, name: str, camera: str | int, action: str = "live",
                purpose: str | None = None) -> ViewRequest:
        camera_id = camera if isinstance(camera, int) else self.cameras[camera]
        token = self.world.admin_token if name == "admin" else self.tokens[name]
        return ViewRequest(token_digest=digest(token), user_id=self.user_ids[name],
                           camera_id=camera_id, action=action,  # type: ignore[arg-type]
                           purpose=purpose, client_address="127.0.0.9",
                           user_agent="test-agent/1.0", via="test")


async def add_camera(world: World, name: str, unit: str, category: str = "expressway",
                     lat: float | None = None, lon: float | None = None) -> int:
    fields = parse_camera(
        {"external_id": f"x-{name}", "name": f"camera {name}", "unit": unit,
         "category": category, "latitude": lat, "longitude": lon,
         "main_url": f"rtsp://10.0.0.1/{name}"},
        categories=world.catalog.categories, camera_types=world.catalog.camera_types)
    return (await world.catalog.add_camera(fields)).id


async def add_person(world: World, folks: Folks, name: str, unit: str, role: Role) -> None:
    # argon2 is slow on purpose: only the people who sign in get a password
    password = "correct horse battery" if name in WITH_PASSWORD else None
    user = await world.accounts.add_user(name, unit_code=unit, role=role, password=password,
                                         service=password is None)
    token, _ = await world.accounts.create_token(user.id, kind=TokenKind.API, name="t")
    folks.tokens[name] = token
    folks.user_ids[name] = user.id


@pytest.fixture
async def folks(world: World) -> Folks:
    await world.catalog.add_unit({"code": "330200", "name": "宁波市交通运输局",
                                  "level": UnitLevel.CITY, "parent": "330000"})
    await world.catalog.add_unit({"code": "330210", "name": "海曙区交通运输局",
                                  "level": UnitLevel.COUNTY, "parent": "330200"})
    folks = Folks(world)
    admin = await world.accounts.get_user("admin")
    folks.user_ids["admin"] = admin.id
    for name, (unit, role) in PEOPLE.items():
        await add_person(world, folks, name, unit, role)
    for name, (unit, category, lat, lon) in CAMERAS.items():
        folks.cameras[name] = await add_camera(world, name, unit, category, lat, lon)
    return folks


def gate(client: TestClient[Any, Any]) -> Views:
    views = client.app[GATE_KEY]
    assert isinstance(views, Views) and views is client.app[VIEWS_KEY]
    return views


def journal(client: TestClient[Any, Any]) -> Journal:
    return client.app[JOURNAL_KEY]


async def open_view(client: TestClient[Any, Any], request: ViewRequest) -> LiveView:
    view = await gate(client).open_view(request)
    assert isinstance(view, LiveView)
    return view
