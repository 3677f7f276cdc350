"""Refused authentication is journalled (issue 12, item 3), aggregated against floods."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from camrelay.access.accounts import TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.web.keys import AUTH_FAILURES_KEY
from tests.access.conftest import Folks, journal
from tests.conftest import auth


async def auth_events(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    return [r for r in await journal(client).records(RecordFilter(kind="auth"), limit=1000)
            if r["action"].startswith("auth.failed")]


async def test_refused_credentials_are_journalled(client: TestClient[Any, Any],
                                                  folks: Folks) -> None:
    accounts = folks.world.accounts
    revoked, info = await accounts.create_token(folks.user_ids["city_op"], kind=TokenKind.API)
    await accounts.revoke_token(info.id)
    expired, _ = await accounts.create_token(folks.user_ids["county_op"], kind=TokenKind.LOGIN,
                                             lifetime=timedelta(seconds=-1))
    headers = {"User-Agent": "probe/1.0"}
    # no credential at all, and public routes: answered, not journalled
    assert (await client.get("/api/v1/cameras")).status == 401
    assert (await client.get("/healthz")).status == 200
    for token in ("not-a-token", "crt_" + "x" * 43, revoked, expired):
        r = await client.get("/api/v1/cameras", headers={**auth(token), **headers})
        assert r.status == 401
    r = await client.post("/api/v1/auth/login", headers=headers,
                          json={"username": "county_op", "password": "wrong password"})
    assert r.status == 401
    seen = {(e["user"], e["reason"]) for e in await auth_events(client)}
    assert seen == {
        (None, "token malformed"), (None, "token unknown"), ("city_op", "token revoked"),
        ("county_op", "token expired"),
        ("county_op", "wrong password, or unknown or disabled user"),
    }, seen
    for event in await auth_events(client):
        assert event["action"] == "auth.failed" and event["result"] == "denied"
        assert event["client_address"] == "127.0.0.1" and event["user_agent"] == "probe/1.0"
    assert (await journal(client).verify()).ok


async def test_a_flood_is_counted_not_itemised(client: TestClient[Any, Any],
                                               folks: Folks) -> None:
    unknown = "crt_" + "y" * 43
    for _ in range(40):
        assert (await client.get("/api/v1/cameras", headers=auth(unknown))).status == 401
    events = await auth_events(client)
    assert [e["action"] for e in events] == ["auth.failed"]  # the first one, at once
    failures = client.app[AUTH_FAILURES_KEY]
    await failures.flush()  # the window closes
    (summary,) = [e for e in await auth_events(client) if e["action"] != "auth.failed"]
    assert summary["action"] == "auth.failed.repeated" and summary["detail"]["count"] == 39
    assert summary["reason"] == "token unknown" and summary["client_address"] == "127.0.0.1"

    # more distinct (user, address, reason) than are itemised: counted per reason
    failures.max_itemised = 3
    before = await journal(client).count()
    for i in range(50):
        await failures.record(username=f"guess{i}", address="127.0.0.7", reason="r")
    assert await journal(client).count() == before + 3
    await failures.stop()  # shutdown: the window's counts are written
    other = [e for e in await auth_events(client) if e["action"] == "auth.failed.other"]
    assert len(other) == 1 and other[0]["detail"]["count"] == 47
    assert await journal(client).count() == before + 4
