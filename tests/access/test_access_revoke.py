"""Enforcement at once: live views are cut within 1 s, and their records say why."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from camrelay.access.journal import RecordFilter
from camrelay.access.views import LiveView
from camrelay.fields import utcnow
from camrelay.store import schema
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import Folks, open_view
from tests.access.test_access_grants import decide, request_grant
from tests.conftest import World


class Cut:
    """Records when the gate calls a view's revoke callback."""

    def __init__(self, view: LiveView) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.at = 0.0
        view.on_revoke(self)

    async def __call__(self, reason: str) -> None:
        self.reason = reason
        self.at = time.monotonic()
        self.event.set()

    async def wait(self, within: float = 1.0) -> str:
        async with asyncio.timeout(within):
            await self.event.wait()
        assert self.reason is not None
        return self.reason


async def closed_reason(client: TestClient[Any, Any], view: LiveView) -> str | None:
    async with asyncio.timeout(1):
        await view.wait_closed()
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="view"), limit=1000)
    (record,) = [r for r in records if r["view_id"] == view.view_id]
    return record["close_reason"]


async def test_token_revoked_through_api(client: TestClient[Any, Any], folks: Folks,
                                         world: World) -> None:
    view = await open_view(client, folks.request("county_op", "county"))
    other = await open_view(client, folks.request("prov_op", "county"))
    cut = Cut(view)
    (token,) = await world.accounts.list_tokens(folks.user_ids["county_op"])
    t0 = time.monotonic()
    r = await client.delete(f"/api/v1/tokens/{token.id}", headers=folks.h("admin"))
    assert r.status == 200
    assert await cut.wait() == "token revoked" and cut.at - t0 < 1.0
    assert view.closed and not other.closed
    assert await closed_reason(client, view) == "token revoked"
    await other.close()


async def test_grant_revoked_through_api(client: TestClient[Any, Any], folks: Folks) -> None:
    g = await request_grant(client, folks, "county_op", grantee_user="county_op",
                            cameras=[folks.cameras["other"]])
    await decide(client, folks, "approver", g["id"], "approve")
    view = await open_view(client, folks.request("county_op", "other"))
    own = await open_view(client, folks.request("county_op", "county"))
    cut = Cut(view)
    await decide(client, folks, "approver", g["id"], "revoke")
    assert await cut.wait() == "grant revoked"
    assert await closed_reason(client, view) == "grant revoked"
    assert not own.closed  # the own-jurisdiction view is untouched
    await own.close()


async def test_user_disabled_through_api(client: TestClient[Any, Any], folks: Folks) -> None:
    view = await open_view(client, folks.request("city_op", "county"))
    cut = Cut(view)
    r = await client.patch("/api/v1/users/city_op", json={"disabled": True},
                           headers=folks.h("city_admin"))
    assert r.status == 200, await r.text()
    assert await cut.wait() == "user disabled"
    r = await client.patch("/api/v1/users/city_op", json={"disabled": False},
                           headers=folks.h("other_op"))
    assert r.status == 403  # not an administrator
    r = await client.patch("/api/v1/users/other_op", json={"disabled": True},
                           headers=folks.h("city_admin"))
    assert r.status == 403  # outside the administrator's subtree


async def test_role_change_cuts_what_the_role_no_longer_allows(
        client: TestClient[Any, Any], folks: Folks) -> None:
    view = await open_view(client, folks.request("city_op", "county", "ptz"))
    live = await open_view(client, folks.request("city_op", "county", "live"))
    cut = Cut(view)
    r = await client.patch("/api/v1/users/city_op", json={"role": "viewer"},
                           headers=folks.h("city_admin"))
    assert r.status == 200
    reason = await cut.wait()
    assert reason.startswith("no longer allowed") and "viewer" in reason
    await asyncio.sleep(0.6)
    assert not live.closed  # a viewer still watches
    await live.close()


async def test_grant_expiry_cuts_within_a_second(client: TestClient[Any, Any], folks: Folks,
                                                 world: World) -> None:
    g = await request_grant(client, folks, "county_op", grantee_user="county_op",
                            cameras=[folks.cameras["other"]])
    await decide(client, folks, "approver", g["id"], "approve")
    view = await open_view(client, folks.request("county_op", "other"))
    cut = Cut(view)
    async with world.store.begin() as conn:
        await conn.execute(update(schema.grants).where(schema.grants.c.id == g["id"]).values(
            valid_until=utcnow() + timedelta(seconds=0.2)))
    t0 = time.monotonic()
    assert await cut.wait(1.5) == "grant expired"
    assert cut.at - t0 < 1.2  # 0.2 s of validity + at most one check interval
    assert await closed_reason(client, view) == "grant expired"


async def test_api_token_expiry_cuts_but_login_expiry_does_not(
        client: TestClient[Any, Any], folks: Folks, world: World) -> None:
    api_view = await open_view(client, folks.request("county_op", "county"))
    cut = Cut(api_view)
    r = await client.post("/api/v1/auth/login", json={"username": "city_op",
                                                      "password": "correct horse battery"})
    folks.tokens["city_op"] = (await r.json())["token"]
    login_view = await open_view(client, folks.request("city_op", "county"))
    async with world.store.begin() as conn:
        await conn.execute(update(schema.tokens).values(
            expires_at=utcnow() + timedelta(seconds=0.1)).where(
            schema.tokens.c.user_id.in_([folks.user_ids["county_op"],
                                         folks.user_ids["city_op"]])))
    assert await cut.wait(1.5) == "token expired"
    await asyncio.sleep(0.7)
    assert not login_view.closed  # the video wall keeps running past its token's expiry
    await login_view.close()


async def test_emergency_revoked_cuts(client: TestClient[Any, Any], folks: Folks) -> None:
    r = await client.post("/api/v1/emergencies", json={
        "reason": "隧道火灾", "incident": "INC-1", "cameras": [folks.cameras["other"]]},
        headers=folks.h("county_op"))
    assert r.status == 201, await r.text()
    em = await r.json()
    view = await open_view(client, folks.request("county_op", "other"))
    assert view.emergency
    cut = Cut(view)
    r = await client.post(f"/api/v1/emergencies/{em['id']}/revoke", json={"comment": "no"},
                          headers=folks.h("approver"))
    assert r.status == 200
    assert await cut.wait() == "emergency access revoked"


async def test_callback_failure_still_closes(client: TestClient[Any, Any], folks: Folks,
                                             world: World) -> None:
    view = await open_view(client, folks.request("county_op", "county"))

    async def broken(reason: str) -> None:
        raise RuntimeError("peer already gone")

    async def stuck(reason: str) -> None:
        await asyncio.sleep(30)

    view.on_revoke(broken)
    view.on_revoke(stuck)
    (token,) = await world.accounts.list_tokens(folks.user_ids["county_op"])
    t0 = time.monotonic()
    r = await client.delete(f"/api/v1/tokens/{token.id}", headers=folks.h("county_op"))
    assert r.status == 200  # anyone may revoke their own token
    assert view.closed and time.monotonic() - t0 < 1.0
    assert await closed_reason(client, view) == "token revoked"
