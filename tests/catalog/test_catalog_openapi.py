"""The OpenAPI document: every route documented, every documented route served, and a
schemathesis run (``--checks all``) over every operation of the live server's document
finds no 5xx and no schema violation."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from camrelay.access.accounts import Role, TokenKind
from camrelay.catalog.fields import parse_camera
from camrelay.catalog.models import parse_unit_code
from camrelay.errors import ValidationError
from camrelay.web.keys import OPENAPI_KEY
from tests.catalog.conftest import Live
from tests.conftest import World, auth

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = os.environ.get("CAMRELAY_TEST_SCHEMATHESIS_SEED", "20261123")
EXAMPLES = os.environ.get("CAMRELAY_TEST_SCHEMATHESIS_EXAMPLES", "25")
# Operations that can take the run's own credentials away: revoking a token (the run's
# is token 1, the first id every generator tries) and changing a user (disable, role,
# unit: the run's administrator is the only user it could find by name) and signing out
# (it revokes the calling token).  The main run leaves them out; a second run, last,
# gives them a token of their own, so whatever they revoke or disable, no other
# operation is starved of its token.
SELF_HARM = ("delete_api_v1_tokens__token_id", "patch_api_v1_users__username",
             "post_api_v1_auth_logout")
# The live channel is a stream that does not end while the token is good: a generator
# can only wait for its request timeout.  tests/test_live_channel.py reads it instead.
STREAMS = ("get_api_v1_events",)
DEAD_PORT = "127.0.0.1:9"  # discard: nothing listens on it in the test namespace


@pytest.fixture
def backend() -> str:
    return "sqlite"


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        if route.method in ("HEAD", "*"):
            continue
        out.add((route.method, resource.canonical))
    return out


async def test_every_route_is_documented_and_every_documented_route_served(
        client: TestClient[Any, Any]) -> None:
    app = client.server.app
    assert app is not None
    document = app[OPENAPI_KEY]
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item}
    served = served_routes(app)
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented routes that are not served"
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    r = await client.get("/api/v1/openapi.json")
    assert r.status == 200 and (await r.json())["paths"].keys() == document["paths"].keys()


async def test_rules_the_server_enforces_are_stated_in_the_document(
        client: TestClient[Any, Any], world: World) -> None:
    """What JSON Schema can say is in the schema (the server and the document agree at
    the bounds); what it cannot (one time after another) is in the field's description."""
    app = client.app
    assert app is not None
    schemas = app[OPENAPI_KEY]["components"]["schemas"]
    h = auth(world.admin_token)
    radius = schemas["EmergencyNew"]["properties"]["near"]["properties"]["radius_km"]
    assert Draft202012Validator(radius).is_valid(0.01)
    for value, accepted in [(0.005, False), (0.01, True), (500, True), (500.5, False)]:
        assert Draft202012Validator(radius).is_valid(value) is accepted, value
        r = await client.post("/api/v1/emergencies", headers=h, json={
            "reason": "collapse", "incident": f"bridge {value}",
            "near": {"latitude": 30.2, "longitude": 120.1, "radius_km": value}})
        if accepted:  # no camera near: refused for that, not for the radius
            assert (await r.json()).get("field") != "near.radius_km", value
        else:
            assert r.status == 422 and (await r.json())["field"] == "near.radius_km"
    for name, field in [("CameraNew", "valid_until"), ("CameraPatch", "valid_until"),
                        ("GrantNew", "valid_until"), ("KeepWarmNew", "until")]:
        described = schemas[name]["properties"][field].get("description", "")
        assert "later than" in described, name

    # the audit's unit filter: the pattern of a unit code, stated and kept
    unit = next(p["schema"] for p in app[OPENAPI_KEY]["paths"]["/api/v1/audit"]["get"][
        "parameters"] if p["name"] == "unit")
    for code, accepted in [("__main__", False), ("330100", True), ("a_b.c-d", True)]:
        assert Draft202012Validator(unit).is_valid(code) is accepted, code
        r = await client.get("/api/v1/audit", params={"unit": code}, headers=h)
        assert (r.status == 200) is accepted, (code, await r.text())
        if not accepted:
            assert "query parameter unit" in (await r.json())["detail"]
    with pytest.raises(ValidationError, match="starting with a letter or digit"):
        parse_unit_code("__main__")  # the message says which codes are allowed


async def add_unreachable_cameras(live: Live) -> None:
    """Cameras for the relay, PTZ and ONVIF operations, whose devices never answer."""
    catalog = live.world.catalog
    for n, ctype in enumerate(("ptz", "fixed", "dome"), 1):
        await catalog.add_camera(parse_camera(
            {"external_id": f"st-{n}", "name": f"schemathesis {n}", "unit": "330100",
             "category": catalog.categories[0], "camera_type": ctype,
             "main_url": f"rtsp://{DEAD_PORT}/main", "sub_url": f"rtsp://{DEAD_PORT}/sub",
             "onvif_url": f"http://{DEAD_PORT}/onvif/device_service"},
            categories=catalog.categories, camera_types=catalog.camera_types))


async def schemathesis(live: Live, tmp_path: Path, token: str, *filters: str) -> str:
    args = [str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"), "run",
            f"{live.url}/api/v1/openapi.json", "--checks", "all",
            "-H", f"Authorization: Bearer {token}", "--max-examples", EXAMPLES,
            "--workers", "2", "--no-color", "--seed", SEED, "--request-timeout", "20",
            *filters]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false",
                           "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py")})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-12000:]
    return text


@pytest.mark.timeout(240)
async def test_schemathesis_finds_nothing(live: Live, tmp_path: Path) -> None:
    """Every operation of the document (auth, users, tokens, grants, emergencies,
    notifications, audit, catalogue, relay, PTZ, ONVIF, WHEP, metrics) with an
    administrator's token; the whole test stays under three minutes on two cores."""
    started = time.monotonic()
    await add_unreachable_cameras(live)
    accounts = live.world.accounts
    spare = await accounts.add_user("st-admin", unit_code="330000", role=Role.ADMINISTRATOR,
                                    password="another correct horse")
    spare_token, _ = await accounts.create_token(spare.id, kind=TokenKind.API, name="st")
    main = [arg for op in SELF_HARM + STREAMS for arg in ("--exclude-operation-id", op)]
    text = await schemathesis(live, tmp_path, live.world.admin_token, *main)
    selected = re.search(r"Selected: (\d+)/(\d+)\n.*Tested: (\d+)\n", text, re.DOTALL)
    assert selected is not None, text[-3000:]
    chosen, total, tested = map(int, selected.groups())
    assert chosen == tested == total - len(SELF_HARM) - len(STREAMS), text[-3000:]
    own = [arg for op in SELF_HARM for arg in ("--include-operation-id", op)]
    await schemathesis(live, tmp_path, spare_token, *own)
    assert time.monotonic() - started < 180
