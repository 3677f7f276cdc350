"""The OpenAPI document: every route documented, every documented route served, and a
schemathesis run (``--checks all``) against the live server finds nothing."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from camrelay.web.app import OPENAPI_KEY
from tests.catalog.conftest import Live

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# the catalogue's operations (and the document itself); the other areas run their own
TAGS = ("units", "cameras", "catalog", "meta")


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


async def test_schemathesis_finds_nothing(live: Live, tmp_path: Path) -> None:
    examples = os.environ.get("CAMRELAY_TEST_SCHEMATHESIS_EXAMPLES", "25")
    args = [str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"), "run",
            f"{live.url}/api/v1/openapi.json", "--checks", "all",
            "-H", f"Authorization: Bearer {live.world.admin_token}",
            "--max-examples", examples, "--workers", "2", "--no-color",
            "--seed", os.environ.get("CAMRELAY_TEST_SCHEMATHESIS_SEED", "20261123")]
    for tag in TAGS:
        args += ["--include-tag", tag]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    out, _ = await asyncio.wait_for(proc.communicate(), 110)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-12000:]
