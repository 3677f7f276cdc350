"""Brute force: slowed, then locked per account and per address, and journalled."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from camrelay.web.keys import LOCKOUT_KEY
from tests.access.conftest import Folks

GOOD = "correct horse battery"


async def login(client: TestClient[Any, Any], user: str, password: str) -> int:
    r = await client.post("/api/v1/auth/login", json={"username": user, "password": password})
    return r.status


async def test_slowed_then_locked_then_logged(client: TestClient[Any, Any], folks: Folks,
                                              backend: str) -> None:
    if backend != "sqlite":
        return  # the counters live in the process; one backend is enough
    lockout = client.app[LOCKOUT_KEY]
    lockout.config = replace(lockout.config, slow_after=2, slow_seconds=0.2, lock_after=4,
                             lock_address_after=100, lock_seconds=60)
    times = []
    for _ in range(4):
        t0 = time.monotonic()
        assert await login(client, "county_op", "wrong password") == 401
        times.append(time.monotonic() - t0)
    assert times[2] >= 0.2 and times[3] >= 0.2  # slowed after two failures
    r = await client.post("/api/v1/auth/login", json={"username": "county_op",
                                                      "password": GOOD})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even the right password
    assert await login(client, "city_op", GOOD) == 200  # another account is unaffected
    r = await client.get("/api/v1/audit", params={"kind": "auth"}, headers=folks.h("admin"))
    # the failures themselves are journalled too (test_access_authlog.py)
    (event,) = [e for e in await r.json() if e["action"] == "login.locked"]
    assert event["result"] == "denied"
    assert event["client_address"] == "127.0.0.1"


async def test_address_lock_and_success_resets(client: TestClient[Any, Any], folks: Folks,
                                               backend: str) -> None:
    if backend != "sqlite":
        return
    lockout = client.app[LOCKOUT_KEY]
    lockout.config = replace(lockout.config, slow_after=100, lock_after=3,
                             lock_address_after=5, lock_seconds=60)
    assert await login(client, "county_op", "wrong") == 401
    assert await login(client, "county_op", "wrong") == 401
    assert await login(client, "county_op", GOOD) == 200  # clears the account's count
    assert await login(client, "county_op", "wrong") == 401
    assert await login(client, "county_op", "wrong") == 401
    assert await login(client, "nobody", "x") == 401  # 5th failure from this address
    assert await login(client, "city_op", GOOD) == 429  # the address is locked
