"""Hostile input on every route: JSON nested past the stack, lone surrogates, integers past
Python's conversion limit, NaN/Infinity, and header bytes that are not UTF-8, are each a
4xx problem (never a 500), and a hostile sign-in still counts for the lockout."""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camrelay import jsonsafe
from camrelay.catalog.service import CameraFilter
from camrelay.web.keys import LOCKOUT_KEY, OPENAPI_KEY
from tests.conftest import World, auth

PASSWORD = "correct horse battery"  # the admin's, in tests/conftest.py
CAMERA: dict[str, Any] = {"external_id": "h-1", "name": "hostile", "unit": "330100",
                          "category": "bridge", "main_url": "rtsp://127.0.0.1:9/live"}

HOSTILE: dict[str, bytes] = {
    "nested 5000 deep": b"[" * 5000 + b"]" * 5000,
    "objects nested 2000 deep": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "nested 100 deep": b'{"a":' * 100 + b"1" + b"}" * 100,
    "lone surrogate": b'{"name": "\\ud800"}',
    "lone low surrogate in a list": b'{"tags": ["ok", "\\udfff"]}',
    "lone surrogate in a field name": b'{"\\ud800": 1}',
    "5000-digit integer": b'{"limit": ' + b"9" * 5000 + b"}",
    "NaN": b'{"latitude": NaN}',
    "Infinity": b'{"latitude": -Infinity}',
    "a float past the range": b'{"latitude": 1e999}',
}
# schema-valid bodies with one hostile string: these reached the store on main
VALID_BUT_HOSTILE: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/auth/login", {"username": "\ud800", "password": "x"}),
    ("POST", "/api/v1/auth/login", {"username": "admin", "password": "\ud800"}),
    ("POST", "/api/v1/cameras", {**CAMERA, "name": "桥\ud800"}),
    ("PATCH", "/api/v1/cameras/{camera_id}", {"location": "\udc80"}),
    ("POST", "/api/v1/units", {"code": "330120", "name": "\ud800", "level": "county",
                               "parent": "330100"}),
    ("POST", "/api/v1/catalog/import", {"rows": [{"line": 1, "fields": {
        **CAMERA, "external_id": "h-2", "name": "\ud800"}}]}),
]


@pytest.fixture
def backend() -> str:
    return "sqlite"  # refused before any store is touched


async def refused(r: Any, status: int = 400) -> dict[str, Any]:
    body = await r.json()
    assert r.status == status, body
    assert r.content_type == "application/problem+json"
    assert body["status"] == status and body["title"] and body["detail"]
    return dict(body)


def json_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method, op in item.items()
            if "application/json" in op.get("requestBody", {}).get("content", {})]


async def test_hostile_json_is_a_400_on_every_route(client: TestClient[Any, Any],
                                                    world: World) -> None:
    h = {**auth(world.admin_token), "Content-Type": "application/json"}
    r = await client.post("/api/v1/cameras", json=CAMERA, headers=auth(world.admin_token))
    assert r.status == 201
    camera_id = (await r.json())["id"]
    assert client.app is not None
    operations = json_operations(client.app[OPENAPI_KEY])
    assert len(operations) >= 18  # every JSON body of the API, the login among them
    assert ("POST", "/api/v1/auth/login") in operations
    for method, path in operations:
        url = re.sub(r"\{[^}]+\}", "1", path.replace("{camera_id}", str(camera_id)))
        for name, data in HOSTILE.items():
            r = await client.request(method, url, data=data, headers=h)
            got = await refused(r)
            assert "not valid JSON" in got["detail"], (method, path, name, got)
    for method, path, body in VALID_BUT_HOSTILE:
        url = path.replace("{camera_id}", str(camera_id))
        data = json.dumps(body).encode()  # ensure_ascii: the surrogate as \\ud800
        got = await refused(await client.request(method, url, data=data, headers=h))
        assert "surrogate" in got["detail"], (method, path, got)
    r = await client.get(f"/api/v1/cameras/{camera_id}", headers=auth(world.admin_token))
    assert (await r.json())["name"] == "hostile"  # nothing was written
    assert [c.external_id for c in (await world.catalog.list_cameras(CameraFilter()))[0]] == ["h-1"]


async def test_times_past_the_calendar_are_refused(client: TestClient[Any, Any],
                                                   world: World) -> None:
    """A time whose UTC form leaves years 1-9999 (OverflowError) names its field."""
    h = auth(world.admin_token)
    for when in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        r = await client.post("/api/v1/cameras", headers=h,
                              json={**CAMERA, "valid_until": when})
        assert (await refused(r, 422))["field"] == "valid_until"
        r = await client.post("/api/v1/tokens", headers=h,
                              json={"user": "admin", "expires_at": when})
        assert (await refused(r, 422))["field"] == "expires_at"
        r = await client.get("/api/v1/audit", params={"since": when}, headers=h)
        assert "since" in (await refused(r, 400))["detail"]


async def test_a_hostile_sign_in_counts_for_the_lockout(client: TestClient[Any, Any],
                                                        world: World) -> None:
    assert client.app is not None
    lockout = client.app[LOCKOUT_KEY]
    lockout.config = replace(lockout.config, slow_after=100, lock_after=3,
                             lock_address_after=100, lock_seconds=60)
    json_type = {"Content-Type": "application/json"}
    # three refused attempts that name the admin: its account is locked
    for body in ({"username": "admin", "password": ""},  # schema: 422
                 {"username": "admin", "password": "x", "otp": 1},  # schema: 422
                 {"username": "admin", "password": "x" * 257}):  # schema: 422
        await refused(await client.post("/api/v1/auth/login", json=body), 422)
    r = await client.post("/api/v1/auth/login", json={"username": "admin",
                                                      "password": PASSWORD})
    await refused(r, 429)

    # refused attempts that name no account (not JSON, hostile) count for the address
    lockout.config = replace(lockout.config, lock_address_after=len(HOSTILE) + 4)
    lockout.succeeded("admin", "127.0.0.1")
    lockout._counters.clear()
    for data in [*HOSTILE.values(), b'{"username": "\\ud800", "password": "x"}',
                 b'{"username": "admin", "password": "\\ud800"}', b"{not json"]:
        await refused(await client.post("/api/v1/auth/login", data=data, headers=json_type))
    assert (await client.post("/api/v1/auth/login", json={"username": "admin",
                                                          "password": PASSWORD})).status == 200
    await refused(await client.post("/api/v1/auth/login", data=b"[", headers=json_type))
    r = await client.post("/api/v1/auth/login", json={"username": "admin",
                                                      "password": PASSWORD})
    await refused(r, 429)  # the address is locked now
    r = await client.get("/api/v1/audit", params={"kind": "auth"},
                         headers=auth(world.admin_token))
    actions = [e["action"] for e in await r.json()]
    # each failure is journalled too (aggregated: tests/access/test_access_authlog.py)
    assert [a for a in actions if a == "login.locked"] == ["login.locked", "login.locked"]
    assert "auth.failed" in actions


async def raw_request(client: TestClient[Any, Any], head: bytes,
                      body: bytes = b"") -> tuple[int, bytes]:
    """A request written byte for byte (no client would send these headers)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + b"Host: x\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_header_bytes_that_are_not_utf8_are_a_400(client: TestClient[Any, Any],
                                                        world: World) -> None:
    token = world.admin_token.encode()
    cases = [
        (b"GET /api/v1/cameras HTTP/1.1\r\nAuthorization: Bearer crt_\xed\xa0\x80\r\n", b""),
        (b"GET /api/v1/cameras HTTP/1.1\r\nAuthorization: Bearer " + token + b"\xff\r\n", b""),
        (b"GET /api/v1/cameras HTTP/1.1\r\nAuthorization: Bearer " + token
         + b"\r\nUser-Agent: \xed\xa0\x80\r\n", b""),
        (b"POST /api/v1/auth/login HTTP/1.1\r\nUser-Agent: \xff\r\n"
         + b"Content-Type: application/json\r\n",
         json.dumps({"username": "admin", "password": "wrong"}).encode()),
    ]
    for head, body in cases:
        status, answer = await raw_request(client, head, body)
        problem = json.loads(answer)
        assert status == 400 and problem["status"] == 400, (head, problem)
        assert "is not UTF-8 text" in problem["detail"], problem
    # percent-encoded bytes that are not UTF-8 in a query or a path: refused or no match
    h = auth(world.admin_token)
    r = await client.get("/api/v1/cameras?q=%ED%A0%80", headers=h)
    assert r.status == 200 and (await r.json())["items"] == []
    await refused(await client.get("/api/v1/units/%ED%A0%80", headers=h), 422)
    r = await client.post("/whep/1", data=b"v=0\r\ns=\xed\xa0\x80\r\n",
                          headers={**h, "Content-Type": "application/sdp"})
    assert r.status in (400, 404) and r.content_type == "application/problem+json"


_text = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udbff", "\udc80"])),
                max_size=4)
_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_trees = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)), max_leaves=20)


def unsafe(tree: Any) -> bool:
    """The reference: too deep, a non-finite number, or a string that is not text."""
    def levels(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((levels(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((levels(v) for v in value), default=0)
        return 0

    def bad(value: Any) -> bool:
        if isinstance(value, float):
            return not math.isfinite(value)
        if isinstance(value, str):
            return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        if isinstance(value, dict):
            return any(bad(k) or bad(v) for k, v in value.items())
        if isinstance(value, list):
            return any(bad(v) for v in value)
        return False

    return levels(tree) > jsonsafe.MAX_DEPTH or bad(tree)


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(_trees, st.integers(0, 80))
def test_the_safe_parser_takes_json_or_refuses_it(tree: Any, extra_depth: int) -> None:
    """Any tree, wrapped a little or a lot deeper: the same value back, or UnsafeJson
    exactly when the reference says it is unsafe."""
    for _ in range(extra_depth):
        tree = [tree]
    text = json.dumps(tree)  # NaN, Infinity and \ud800 come out as such
    try:
        value = jsonsafe.loads(text)
    except jsonsafe.UnsafeJson:
        assert unsafe(tree), text
        return
    assert not unsafe(tree), text
    assert json.dumps(value) == text
