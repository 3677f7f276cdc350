#!/usr/bin/env python3
"""Make the committed stores of the FIRST schema version (tests/data/store-v1.*).

The migration tests upgrade these files with the current code and check that every
row survived, so they must be written by camrelay *at schema version 1*.  The script
refuses to run on a newer schema.  To remake them (you should never need to):

    git worktree add /tmp/camrelay-v1 8e15545      # the last commit at schema version 1
    cd /tmp/camrelay-v1
    /work/main/.venv/bin/python scripts/make_v1_fixture.py --out /work/main/tests/data

It writes:

* ``store-v1.sqlite``          the SQLite store (WAL folded back, one file);
* ``store-v1.postgres.sql``    ``pg_dump --no-owner --no-privileges`` of the same rows
                               written by camrelay into a private PostgreSQL (loaded by
                               the tests with ``psql -v ON_ERROR_STOP=1 -f``);
* ``store-v1.credential.key``  the fixed Fernet key both stores' camera passwords are
                               sealed with (a test key, nothing else uses it);
* ``store-v1.json``            the secrets the tests need to check the rows semantically
                               (user passwords, API tokens, camera passwords).

The rows: a unit tree with Chinese names (province → city → county, a department, a
second city), five cameras (one with a sealed password taken from its RTSP URL, one
temporary with a validity window, one disabled, one demo pattern, one with every field),
five users (administrator, technician, viewer, a service account, a disabled user) and
four tokens (API, expiring, revoked, expired login).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A test key: it seals the fixture's camera passwords and nothing else.
CREDENTIAL_KEY = "djFmaXh0dXJlLWtleS1mb3ItY2FtcmVsYXktdGVzdHM="

SECRETS = {
    "user_passwords": {
        "admin": "v1-admin-password",
        "tech-hz": "v1-technician-password",
        "viewer-yh": "v1-viewer-password",
        "former": "v1-former-password",
    },
    "tokens": {
        # secret -> (owner, kind, name, expires (days from creation), revoked)
        "crt_v1fixture-admin-api-token-000000000000000": ["admin", "api", "ops console", None,
                                                          False],
        "crt_v1fixture-tech-api-token-11111111111111111": ["tech-hz", "api", "laptop", 36500,
                                                           False],
        "crt_v1fixture-revoked-token-22222222222222222": ["viewer-yh", "api", "old", None,
                                                          True],
        "crt_v1fixture-expired-login-3333333333333333": ["viewer-yh", "login", None, -1,
                                                         False],
    },
    "camera_passwords": {"zj-hz-0001": "V1-Canary-Cam-Pass!", "zj-yh-0003": "海康@2024"},
}

UNITS = [
    {"code": "330000", "name": "浙江省交通运输厅", "level": "province", "parent": None},
    {"code": "330100", "name": "杭州市交通运输局", "level": "city", "parent": "330000"},
    {"code": "330110", "name": "余杭区交通运输局", "level": "county", "parent": "330100"},
    {"code": "330100.jj", "name": "杭州市公安局交通警察支队", "level": "department",
     "parent": "330100"},
    {"code": "330200", "name": "宁波市交通运输局", "level": "city", "parent": "330000"},
]

CAMERAS = [
    {"external_id": "zj-hz-0001", "name": "G60 杭金衢高速 K12+300", "unit": "330100",
     "maintenance_unit": "330110", "contact_name": "王工", "contact_phone": "0571-8888 0000",
     "category": "expressway", "location": "杭州市余杭区 G60 K12+300", "latitude": 30.27,
     "longitude": 120.15, "camera_type": "ptz", "vendor": "海康威视", "model": "DS-2DE4425IW",
     "status": "online",
     "main_url": "rtsp://admin:V1-Canary-Cam-Pass!@10.1.2.3:554/Streaming/Channels/101",
     "sub_url": "rtsp://10.1.2.3:554/Streaming/Channels/102",
     "onvif_url": "http://10.1.2.3/onvif/device_service", "transport": "tcp",
     "tags": ["g60", "桥头"], "enabled": True},
    {"external_id": "zj-hz-0002", "name": "钱塘江大桥 北岸", "unit": "330100",
     "category": "bridge", "location": "钱塘江大桥北岸", "latitude": 30.2,
     "longitude": 120.14, "camera_type": "fixed", "status": "offline",
     "main_url": "rtsp://10.1.2.4/live", "transport": "udp", "tags": ["flood"],
     "valid_from": "2024-06-01T00:00:00+08:00", "valid_until": "2024-10-08T00:00:00+08:00"},
    {"external_id": "zj-yh-0003", "name": "余杭 临平隧道 入口", "unit": "330110",
     "category": "tunnel", "camera_type": "dome", "status": "fault", "vendor": "大华",
     "main_url": "rtsp://10.9.0.7:554/cam/realmonitor?channel=1&subtype=0",
     "username": "operator", "password": "海康@2024", "enabled": False},
    {"external_id": "zj-jj-0004", "name": "西湖 断桥 路口", "unit": "330100.jj",
     "category": "public_security", "camera_type": "thermal", "status": "unknown",
     "main_url": "demo:"},
    {"external_id": "zj-nb-0005", "name": "宁波舟山港 北仑 3 号泊位", "unit": "330200",
     "maintenance_unit": "330200", "category": "port", "camera_type": "fixed",
     "status": "online", "location": "北仑港区", "latitude": 29.93, "longitude": 121.86,
     "main_url": "rtsps://10.20.0.5:322/stream1", "transport": "tcp"},
]


async def populate(settings: object) -> None:
    from sqlalchemy import update

    from camrelay.access.accounts import Accounts, Role, digest
    from camrelay.catalog.fields import parse_camera
    from camrelay.catalog.models import parse_unit
    from camrelay.catalog.service import Catalog
    from camrelay.store import Store, schema
    from camrelay.store.migrations import SCHEMA_VERSION

    if SCHEMA_VERSION != 1:
        raise SystemExit(f"this tree is at schema version {SCHEMA_VERSION}; run the script "
                         "from a checkout at schema version 1 (see its docstring)")
    store = await Store.open(settings)  # type: ignore[arg-type]
    try:
        cfg = settings.catalog  # type: ignore[attr-defined]
        catalog = Catalog(store, cfg.categories, cfg.camera_types)
        for unit in UNITS:
            await catalog.add_unit(parse_unit(unit))
        for raw in CAMERAS:
            await catalog.add_camera(parse_camera(raw, categories=cfg.categories,
                                                  camera_types=cfg.camera_types))
        accounts = Accounts(store)
        pw = SECRETS["user_passwords"]
        users = {
            "admin": await accounts.add_user("admin", unit_code="330000",
                                             role=Role.ADMINISTRATOR, password=pw["admin"],
                                             display_name="省厅管理员"),
            "tech-hz": await accounts.add_user("tech-hz", unit_code="330100",
                                               role=Role.TECHNICIAN, password=pw["tech-hz"],
                                               display_name="杭州 运维"),
            "viewer-yh": await accounts.add_user("viewer-yh", unit_code="330110",
                                                 role=Role.VIEWER, password=pw["viewer-yh"],
                                                 display_name="张三"),
            "svc-wall": await accounts.add_user("svc-wall", unit_code="330000",
                                                role=Role.VIEWER, password=None, service=True,
                                                display_name="大屏"),
            "former": await accounts.add_user("former", unit_code="330200",
                                              role=Role.OPERATOR, password=pw["former"]),
        }
        await accounts.set_disabled("former", True)
        now = datetime.now(UTC).replace(microsecond=0)
        async with store.begin() as conn:
            for secret, (owner, kind, name, days, revoked) in SECRETS["tokens"].items():
                await conn.execute(schema.tokens.insert().values(
                    user_id=users[owner].id, digest=digest(secret), name=name, kind=kind,
                    created_at=now - timedelta(days=2),
                    expires_at=None if days is None else now + timedelta(days=days),
                    revoked_at=now - timedelta(days=1) if revoked else None,
                    last_used_at=now - timedelta(hours=3)))
            # one camera seen recently (last_seen_at is set by the status probe)
            await conn.execute(update(schema.cameras).where(
                schema.cameras.c.external_id == "zj-hz-0001").values(
                    last_seen_at=now - timedelta(minutes=5)))
    finally:
        await store.close()


def make_sqlite(out: Path) -> None:
    from camrelay.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(load_settings(env={"CAMRELAY_DATA_DIR": tmp}),
                           credential_key=CREDENTIAL_KEY)
        asyncio.run(populate(settings))
        src = sqlite3.connect(Path(tmp) / "camrelay.db")
        target = out / "store-v1.sqlite"
        target.unlink(missing_ok=True)
        dst = sqlite3.connect(target)
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.execute("VACUUM")
        dst.close()
        src.close()


def make_postgres(out: Path) -> None:
    from camrelay.settings import load_settings
    from tests import servers

    with servers.postgres() as admin_url, tempfile.TemporaryDirectory() as tmp:
        port = admin_url.split("@127.0.0.1:", 1)[1].split("/", 1)[0]
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", port, "-U", "camrelay", "v1"],
                       check=True)
        url = admin_url.rsplit("/", 1)[0] + "/v1"
        settings = replace(load_settings(env={"CAMRELAY_DATA_DIR": tmp}), database_url=url,
                           credential_key=CREDENTIAL_KEY)
        asyncio.run(populate(settings))
        dump = subprocess.run(
            [servers._pg_bin("pg_dump"), "-h", "127.0.0.1", "-p", port, "-U", "camrelay",
             "--no-owner", "--no-privileges", "--encoding=UTF8", "v1"],
            check=True, capture_output=True).stdout
        (out / "store-v1.postgres.sql").write_bytes(dump)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store-v1.credential.key").write_text(CREDENTIAL_KEY + "\n", encoding="ascii")
    (args.out / "store-v1.json").write_text(
        json.dumps(SECRETS, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    make_sqlite(args.out)
    if not args.skip_postgres:
        if shutil.which("createdb") is None:
            raise SystemExit("PostgreSQL client tools are missing; run scripts/setup-test-env.sh")
        make_postgres(args.out)
    print(f"wrote the v1 fixtures into {args.out}")


if __name__ == "__main__":
    main()
