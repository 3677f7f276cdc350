"""Losing the database: requests get a 503 problem (never a 500 "bug"), and the server
answers again by itself when the database is back.

PostgreSQL is reached through a TCP link that the test cuts and restores (the database
server itself keeps running for the other tests).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Accounts, Role, TokenKind
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.settings import Settings
from camrelay.store import Store
from tests.conftest import auth
from tests.relay.camera_link import CameraLink


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_lost_database_is_a_503_and_the_server_recovers(settings: Settings) -> None:
    assert settings.database_url is not None
    head, _, tail = settings.database_url.rpartition("@")
    host_port, _, database = tail.partition("/")
    link = CameraLink(int(host_port.rsplit(":", 1)[1]))
    await link.restore()
    proxied = replace(settings, database_url=f"{head}@127.0.0.1:{link.port}/{database}")
    store = await Store.open(proxied)
    try:
        catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
        await catalog.add_unit({"code": "330000", "name": "浙江省交通运输厅",
                                "level": UnitLevel.PROVINCE, "parent": None})
        accounts = Accounts(store)
        admin = await accounts.add_user("admin", unit_code="330000", role=Role.ADMINISTRATOR,
                                        password="correct horse battery")
        token, _ = await accounts.create_token(admin.id, kind=TokenKind.API, name="test")
        from camrelay.app import create_app

        app = create_app(proxied, store)
        client: TestClient[Any, Any]
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.get("/api/v1/units", headers=auth(token))
            assert r.status == 200, await r.text()
            await link.cut()
            for method, path, body in (("GET", "/api/v1/units", None),
                                       ("POST", "/api/v1/auth/login",
                                        {"username": "admin", "password": "correct horse battery"})):
                r = await client.request(method, path, headers=auth(token), json=body)
                problem = await r.json()
                assert r.status == 503, problem
                assert problem["reason"] == "store_unavailable"
                assert r.headers["Retry-After"] == "5"
                assert "bug" not in problem["detail"]
            await link.restore()
            r = await client.get("/api/v1/units", headers=auth(token))
            assert r.status == 200, await r.text()
    finally:
        await store.close()
        await link.cut()
