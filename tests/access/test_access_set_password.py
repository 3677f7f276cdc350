"""A new password: your own with the old one, or an administrator's for the subtree's users;
journalled, the user's other login sessions ended, wrong old passwords counted."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from camrelay.access.accounts import Role
from camrelay.web.keys import LOCKOUT_KEY
from tests.access.conftest import Folks
from tests.conftest import auth

GOOD = "correct horse battery"
NEW = "a new and longer passphrase"


async def login(client: TestClient[Any, Any], user: str, password: str) -> tuple[int, str]:
    r = await client.post("/api/v1/auth/login", json={"username": user, "password": password})
    return r.status, (await r.json()).get("token", "")


async def me(client: TestClient[Any, Any], token: str) -> int:
    return (await client.get("/api/v1/auth/me", headers=auth(token))).status


async def set_password(client: TestClient[Any, Any], token: str, user: str,
                       **body: str) -> tuple[int, dict[str, Any]]:
    r = await client.put(f"/api/v1/users/{user}/password", json=body, headers=auth(token))
    return r.status, await r.json()


async def test_own_password_with_the_old_one_ends_the_other_sessions(
        client: TestClient[Any, Any], folks: Folks) -> None:
    _, other_session = await login(client, "county_op", GOOD)
    _, this_session = await login(client, "county_op", GOOD)
    api_key = folks.tokens["county_op"]
    status, body = await set_password(client, this_session, "county_op", old_password=GOOD,
                                      password=NEW)
    assert status == 200, body
    assert body["user"]["username"] == "county_op" and body["sessions_ended"] == 1
    assert await me(client, other_session) == 401  # the other sign-in is over
    assert await me(client, this_session) == 200  # the caller's own stays
    assert await me(client, api_key) == 200  # API tokens are issued keys: kept
    assert (await login(client, "county_op", GOOD))[0] == 401
    assert (await login(client, "county_op", NEW))[0] == 200

    r = await client.get("/api/v1/audit", params={"kind": "admin"}, headers=folks.h("admin"))
    events = [e for e in await r.json() if e["action"] == "user.password"]
    assert [(e["user"], e["detail"]) for e in events] == [
        ("county_op", {"user": "county_op", "sessions_ended": 1})]
    assert GOOD not in str(events) and NEW not in str(events)


async def test_own_password_needs_the_right_old_one_and_wrong_ones_count(
        client: TestClient[Any, Any], folks: Folks, backend: str) -> None:
    if backend != "sqlite":
        return  # the lockout counters live in the process; one backend is enough
    lockout = client.app[LOCKOUT_KEY]
    lockout.config = replace(lockout.config, slow_after=100, lock_after=3,
                             lock_address_after=100, lock_seconds=60)
    _, session = await login(client, "county_op", GOOD)
    status, body = await set_password(client, session, "county_op", password=NEW)
    assert status == 422 and body["field"] == "old_password"
    for _ in range(2):
        status, body = await set_password(client, session, "county_op",
                                          old_password="not it", password=NEW)
        assert status == 403 and "current password is wrong" in body["detail"]
    assert (await login(client, "county_op", "still not it"))[0] == 401  # the third: locked
    status, body = await set_password(client, session, "county_op", old_password=GOOD,
                                      password=NEW)
    assert status == 429, body  # even with the right one, while locked
    assert (await login(client, "county_op", GOOD))[0] == 429
    r = await client.get("/api/v1/audit", params={"kind": "auth"}, headers=folks.h("admin"))
    actions = [e["action"] for e in await r.json()]
    assert [a for a in actions if a == "login.locked"] == ["login.locked"]
    assert "auth.failed" in actions  # the wrong current passwords are journalled too


async def test_an_administrator_sets_passwords_in_the_subtree_only(
        client: TestClient[Any, Any], folks: Folks) -> None:
    county_admin = await folks.world.accounts.add_user(
        "county_admin", unit_code="330110", role=Role.ADMINISTRATOR, password=GOOD)
    assert county_admin.unit_code == "330110"
    _, county_admin_token = await login(client, "county_admin", GOOD)
    _, city_op_session = await login(client, "city_op", GOOD)
    _, county_op_session = await login(client, "county_op", GOOD)

    # the city's administrator sets the county operator's (no old password needed)
    status, body = await set_password(client, folks.tokens["city_admin"], "county_op",
                                      password=NEW)
    assert status == 200 and body["sessions_ended"] == 1, body
    assert await me(client, county_op_session) == 401
    assert (await login(client, "county_op", NEW))[0] == 200

    # a county administrator cannot touch a city or province user's
    status, body = await set_password(client, county_admin_token, "city_op", password=NEW)
    assert status == 403 and "outside your subtree" in body["detail"]
    assert await me(client, city_op_session) == 200
    assert (await login(client, "city_op", GOOD))[0] == 200
    # nor may a non-administrator set someone else's
    status, _ = await set_password(client, folks.tokens["city_op"], "county_op", password=NEW)
    assert status == 403
    # the rules of a new account hold; service accounts have no password
    status, body = await set_password(client, folks.world.admin_token, "county_op",
                                      password="short")
    assert status == 422
    status, body = await set_password(client, folks.world.admin_token, "city_view",
                                      password=NEW)
    assert status == 409 and "service account" in body["detail"]
    status, _ = await set_password(client, folks.world.admin_token, "nobody", password=NEW)
    assert status == 404

    r = await client.get("/api/v1/audit", params={"kind": "admin"}, headers=folks.h("admin"))
    events = [(e["user"], e["detail"]["user"]) for e in await r.json()
              if e["action"] == "user.password"]
    assert events == [("city_admin", "county_op")]
