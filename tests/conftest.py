"""Shared fixtures: real stores (SQLite and PostgreSQL), a real app on a loopback port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Accounts, Role, TokenKind
from camrelay.catalog.models import UnitLevel
from camrelay.catalog.service import Catalog
from camrelay.settings import Settings, load_settings
from camrelay.store import Store
from camrelay.store.db import create_async_engine
from tests import servers


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with servers.postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with servers.redis() as url:
        yield url


async def fresh_postgres_database(admin_url: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        from sqlalchemy import text

        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    # the health scheduler probes cameras and ONVIF events are subscribed to by
    # themselves: off unless a test turns them on
    base = load_settings(env={"CAMRELAY_DATA_DIR": str(tmp_path / "data"),
                              "CAMRELAY_HEALTH__ENABLED": "false",
                              "CAMRELAY_HEALTH__ONVIF_EVENTS": "false"})
    if backend == "postgres":
        url = await fresh_postgres_database(request.getfixturevalue("postgres_url"))
        return replace(base, database_url=url)
    return base


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = await Store.open(settings)
    yield store
    await store.close()


@dataclass
class World:
    """A small province → city → county tree with one admin."""

    store: Store
    catalog: Catalog
    accounts: Accounts
    admin_token: str


@pytest.fixture
async def world(store: Store, settings: Settings) -> World:
    catalog = Catalog(store, settings.catalog.categories, settings.catalog.camera_types)
    await catalog.add_unit({"code": "330000", "name": "浙江省交通运输厅",
                            "level": UnitLevel.PROVINCE, "parent": None})
    await catalog.add_unit({"code": "330100", "name": "杭州市交通运输局",
                            "level": UnitLevel.CITY, "parent": "330000"})
    await catalog.add_unit({"code": "330110", "name": "余杭区交通运输局",
                            "level": UnitLevel.COUNTY, "parent": "330100"})
    accounts = Accounts(store)
    admin = await accounts.add_user("admin", unit_code="330000", role=Role.ADMINISTRATOR,
                                    password="correct horse battery")
    token, _ = await accounts.create_token(admin.id, kind=TokenKind.API, name="test")
    return World(store, catalog, accounts, token)


@pytest.fixture
async def client(world: World, settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    from camrelay.app import create_app

    app = create_app(settings, world.store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

