"""Migrations: the committed stores of schema version 1 upgrade without losing a row, and
every version built from its own steps upgrades to exactly the schema of a fresh store.

``tests/data/store-v1.sqlite`` and ``store-v1.postgres.sql`` were written by camrelay at
schema version 1 (``scripts/make_v1_fixture.py``).  Each test upgrades a copy with the
current code, then checks every v1 row and column is still there unchanged, the rows
still mean what they meant (passwords, tokens, sealed camera credentials), and the
upgraded schema equals the one a fresh store is created with.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Connection, inspect, text

from camrelay.access.accounts import Accounts
from camrelay.catalog.service import CameraFilter, Catalog
from camrelay.errors import AuthenticationRequired, CredentialKeyError
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.store.db import create_async_engine
from camrelay.store.migrations import SCHEMA_VERSION, upgrade, write_version
from tests.conftest import fresh_postgres_database

DATA = Path(__file__).resolve().parent.parent / "data"
KEY = (DATA / "store-v1.credential.key").read_text(encoding="ascii").strip()
SECRETS = json.loads((DATA / "store-v1.json").read_text(encoding="utf-8"))
V1_TABLES = ("meta", "units", "cameras", "users", "tokens")

Rows = dict[str, dict[Any, dict[str, Any]]]


async def load_v1(settings: Settings, backend: str) -> Settings:
    """Put the v1 store where ``settings`` points; returns settings with the fixture key."""
    settings = replace(settings, credential_key=KEY)
    if backend == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / "store-v1.sqlite", settings.data_dir / "camrelay.db")
        return settings
    assert settings.database_url is not None
    rest = settings.database_url.split("@", 1)[1]  # 127.0.0.1:PORT/DB
    hostport, db = rest.split("/", 1)
    host, port = hostport.split(":")
    psql = await asyncio.create_subprocess_exec(
        "psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "camrelay",
        "-d", db, "-f", str(DATA / "store-v1.postgres.sql"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await psql.communicate()
    assert psql.returncode == 0, out.decode()
    return settings


async def snapshot(url: str, tables: tuple[str, ...] = V1_TABLES) -> Rows:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            out: Rows = {}
            for table in tables:
                key = "key" if table == "meta" else "id"
                result = await conn.execute(text(f'SELECT * FROM "{table}"'))
                out[table] = {row[key]: dict(row) for row in result.mappings()}
            return out
    finally:
        await engine.dispose()


def _triggers(conn: Connection) -> list[tuple[str, str]]:
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text(
            "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"))
    else:
        rows = conn.execute(text(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"))
    return sorted((str(table), str(name)) for table, name in rows)


def shape(conn: Connection) -> dict[str, Any]:
    """Tables, columns (in order, with type, nullability, default), keys, indexes, checks
    and triggers, as the database reports them."""
    insp = inspect(conn)
    out: dict[str, Any] = {"triggers": _triggers(conn)}
    if conn.dialect.name == "postgresql":
        out["sequences"] = sorted(insp.get_sequence_names())
    for table in sorted(insp.get_table_names()):
        pk = insp.get_pk_constraint(table)
        out[table] = {
            "columns": [(c["name"], c["type"].compile(dialect=conn.dialect), c["nullable"],
                         c["default"], c.get("autoincrement")) for c in insp.get_columns(table)],
            "pk": (pk.get("name"), pk["constrained_columns"]),
            "fks": sorted((f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"],
                           tuple(f["referred_columns"]), (f.get("options") or {}).get("ondelete"))
                          for f in insp.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(str(c) for c in i["column_names"]),
                               bool(i["unique"])) for i in insp.get_indexes(table)
                              if not (i["name"] or "").startswith("sqlite_autoindex")),
            "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                             for u in insp.get_unique_constraints(table)),
            "checks": sorted((c["name"] or "", c["sqltext"])
                             for c in insp.get_check_constraints(table)),
        }
    return out


async def schema_of(url: str) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(shape)
    finally:
        await engine.dispose()


async def test_v1_store_upgrades_keeping_every_row(settings: Settings, backend: str) -> None:
    settings = await load_v1(settings, backend)
    url = settings.effective_database_url
    before = await snapshot(url)
    assert before["meta"]["schema_version"]["value"] == "1"
    assert len(before["units"]) == 5 and len(before["cameras"]) == 5
    assert len(before["users"]) == 5 and len(before["tokens"]) == 4

    store = await Store.open(settings)
    try:
        after = await snapshot(url)
        for table, rows in before.items():
            for key, row in rows.items():
                if table == "meta" and key == "schema_version":
                    continue
                assert key in after[table], f"{table} row {key} was lost"
                kept = {column: after[table][key].get(column) for column in row}
                assert kept == row, f"{table} row {key} changed"
        assert after["meta"]["schema_version"]["value"] == str(SCHEMA_VERSION)

        # the rows still mean what they meant
        cfg = settings.catalog
        catalog = Catalog(store, cfg.categories, cfg.camera_types)
        names = {u.code: u.name for u in await catalog.list_units()}
        assert names["330110"] == "余杭区交通运输局"
        assert names["330100.jj"] == "杭州市公安局交通警察支队"
        cameras, total = await catalog.list_cameras(CameraFilter(unit="330000"))
        assert total == 5
        by_ext = {c.external_id: c for c in cameras}
        first = by_ext["zj-hz-0001"]
        assert first.main_url == "rtsp://10.1.2.3:554/Streaming/Channels/101"
        assert first.tags == ("g60", "桥头") and first.maintenance_unit_code == "330110"
        for ext, password in SECRETS["camera_passwords"].items():
            assert await catalog.stream_credentials(by_ext[ext].id) == (
                by_ext[ext].username, password)
        assert not by_ext["zj-yh-0003"].enabled
        temporary = by_ext["zj-hz-0002"]
        assert temporary.valid_until is not None and not temporary.active_at(
            temporary.valid_until)

        accounts = Accounts(store)
        for username, password in SECRETS["user_passwords"].items():
            if username == "former":
                with pytest.raises(AuthenticationRequired):
                    await accounts.verify_password(username, password)
            else:
                assert (await accounts.verify_password(username, password)).username == username
        tokens = SECRETS["tokens"]
        for secret, (owner, _kind, _name, days, revoked) in tokens.items():
            if revoked or (days is not None and days < 0):
                with pytest.raises(AuthenticationRequired):
                    await accounts.authenticate(secret)
            else:
                assert (await accounts.authenticate(secret)).user.username == owner
    finally:
        await store.close()


async def fresh_schema(settings: Settings, backend: str, tmp_path: Path,
                       request: pytest.FixtureRequest) -> dict[str, Any]:
    """The schema of a store created fresh (from ``schema.metadata``) beside ``settings``."""
    fresh = replace(settings, data_dir=tmp_path / "fresh")
    if backend == "postgres":
        fresh = replace(fresh, database_url=await fresh_postgres_database(
            request.getfixturevalue("postgres_url")))
    await (await Store.open(fresh)).close()
    return await schema_of(fresh.effective_database_url)


async def test_upgraded_schema_equals_fresh_schema(settings: Settings, backend: str,
                                                   tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    upgraded = await load_v1(settings, backend)
    await (await Store.open(upgraded)).close()
    assert await schema_of(upgraded.effective_database_url) == await fresh_schema(
        settings, backend, tmp_path, request)


def build_old(conn: Connection, version: int) -> None:
    """Schema ``version`` the long way: step 1 and each later step up to it, stamped."""
    upgrade(conn, 0, version)
    write_version(conn, version)


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
async def test_every_version_built_from_its_steps_upgrades_to_the_fresh_schema(
        settings: Settings, backend: str, version: int, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """Each step builds from its own frozen DDL: an old store of any version, upgraded by
    the remaining steps, has exactly the tables a fresh store is created with (a table
    edited in ``schema`` without a step of its own fails here)."""
    url = settings.effective_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(build_old, version)
    finally:
        await engine.dispose()
    before = await schema_of(url)
    assert set(before) >= {"meta", "units", "cameras", "users", "tokens"}

    await (await Store.open(settings)).close()
    meta = (await snapshot(url, ("meta",)))["meta"]
    assert meta["schema_version"]["value"] == str(SCHEMA_VERSION)
    assert await schema_of(url) == await fresh_schema(settings, backend, tmp_path, request)


async def test_v1_store_with_the_wrong_key_is_refused(settings: Settings, backend: str) -> None:
    v1 = await load_v1(settings, backend)
    wrong = replace(v1, credential_key=Fernet.generate_key().decode())
    with pytest.raises(CredentialKeyError, match="credential key"):
        await Store.open(wrong)
