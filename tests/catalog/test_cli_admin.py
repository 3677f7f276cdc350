"""``camrelay init``, ``serve``, ``backup`` and ``restore``: the commands on the store itself."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from camrelay.access.accounts import Accounts
from camrelay.catalog.fields import parse_camera
from camrelay.settings import Settings
from camrelay.store import Store
from tests.catalog.conftest import run_cli
from tests.conftest import World
from tests.servers import free_port

PASSWORD = "correct horse battery"
BIN = Path(sys.executable).parent / "camrelay"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # backup/restore copy the embedded store; PostgreSQL uses pg_dump


def init_args(data: Path) -> list[str]:
    return ["init", "--unit-code", "330000", "--unit-name", "浙江省交通运输厅", "--admin",
            "root", "--password-stdin", "--data-dir", str(data)]


def rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
               for t in tables}
    conn.close()
    return out


def test_init_prints_the_token_once_and_refuses_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = run_cli(init_args(data), input=PASSWORD + "\n")
    assert run.code == 0, run
    token = run.out.strip().splitlines()[-1]
    assert token.startswith("crt_") and run.out.count(token) == 1
    assert PASSWORD not in run.text
    assert stat.S_IMODE((data / "credential.key").stat().st_mode) == 0o600

    async def check() -> None:
        from camrelay.settings import load_settings

        store = await Store.open(load_settings(env={"CAMRELAY_DATA_DIR": str(data)}))
        try:
            who = await Accounts(store).authenticate(token)
            assert (who.user.username, who.user.unit_code, who.role.value) == (
                "root", "330000", "administrator")
        finally:
            await store.close()

    asyncio.run(check())
    before = rows(data / "camrelay.db")
    again = run_cli(init_args(data) + [], input="another password\n")
    assert again.code == 1
    assert again.err.strip() == ("camrelay: error: the store is already initialised; nothing "
                                 "was changed")
    assert rows(data / "camrelay.db") == before


def test_init_needs_a_good_password(tmp_path: Path) -> None:
    run = run_cli(init_args(tmp_path / "d1")[:-3] + ["--data-dir", str(tmp_path / "d1")],
                  input="")
    assert run.code == 2 and "no password" in run.err
    run = run_cli(init_args(tmp_path / "d2"), input="short\n")
    assert run.code == 1 and "password must have at least 8 characters" in run.err
    assert "Traceback" not in run.text
    run = run_cli(init_args(tmp_path / "d2"), input=PASSWORD + "\n")
    assert run.code == 0, run  # the refused attempt left nothing behind


def test_serve_refuses_a_key_that_cannot_decrypt(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli(init_args(data), input=PASSWORD + "\n").code == 0
    run = run_cli(["serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
                  env={"CAMRELAY_CREDENTIAL_KEY": Fernet.generate_key().decode()})
    assert run.code == 1
    assert run.err.startswith("camrelay: error: the credential key cannot decrypt"), run.err
    assert "Traceback" not in run.text
    run = run_cli(["serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
                  env={"CAMRELAY_CREDENTIAL_KEY": "not-a-key"})
    assert run.code == 1 and "credential_key: not a valid key" in run.err


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)  # polling a port of another process, not a signal
    raise AssertionError("camrelay serve did not become healthy")


def test_serve_demo_as_a_process_and_the_cli_binary(tmp_path: Path) -> None:
    """The README's path: `camrelay serve --demo`, then the CLI with the printed token."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    env["CAMRELAY_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen([str(BIN), "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert "demo: created a province → city → county tree" in lines[0]
        token = lines[2].rsplit(" ", 1)[1].strip()
        listing = subprocess.run([str(BIN), "camera", "list", "--json"], capture_output=True,
                                 text=True, env={**env, "CAMRELAY_URL": url,
                                                 "CAMRELAY_TOKEN": token}, timeout=60,
                                 check=False)
        assert listing.returncode == 0, listing.stderr
        assert json.loads(listing.stdout)["items"][0]["external_id"] == "demo-1"
        refused = subprocess.run([str(BIN), "unit", "show", "nope"], capture_output=True,
                                 text=True, env={**env, "CAMRELAY_URL": url,
                                                 "CAMRELAY_TOKEN": token}, timeout=60,
                                 check=False)
        assert refused.returncode == 1
        assert refused.stderr == "camrelay: error: unit 'nope' does not exist\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_serve_demo_on_an_existing_store_says_how_to_get_in(tmp_path: Path) -> None:
    """A second `serve --demo` keeps the demo password; it says so, and how to set a new
    one on the server's machine when it is lost (`user set-password --local`)."""
    data = tmp_path / "data"

    async def make_demo() -> str:
        from camrelay.access.accounts import TokenKind
        from camrelay.server import ensure_demo
        from camrelay.settings import load_settings

        settings = load_settings(env={"CAMRELAY_DATA_DIR": str(data)})
        store = await Store.open(settings)
        try:
            assert await ensure_demo(store, settings) is not None
            demo = await Accounts(store).get_user("demo")
            session, _ = await Accounts(store).create_token(demo.id, kind=TokenKind.LOGIN)
            return session
        finally:
            await store.close()

    session = asyncio.run(make_demo())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    proc = subprocess.Popen([str(BIN), "serve", "--demo", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        assert proc.stdout is not None
        said = proc.stdout.readline() + proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert f"open http://127.0.0.1:{port}/ and sign in as demo" in said
    assert "password printed when the demo was created" in said
    command = f"camrelay user set-password demo --local --data-dir {data}"
    assert command in said

    run = run_cli(command.split()[1:] + ["--password-stdin"], input=PASSWORD + "\n",
                  env={"CAMRELAY_TOKEN": None, "CAMRELAY_DATA_DIR": None})
    assert run.code == 0, run
    assert run.out.strip() == "new password set for demo; other login sessions ended: 1"
    assert PASSWORD not in run.text

    async def check() -> None:
        from camrelay.access.journal import journal_path
        from camrelay.errors import AuthenticationRequired
        from camrelay.settings import load_settings

        settings = load_settings(env={"CAMRELAY_DATA_DIR": str(data)})
        store = await Store.open(settings)
        try:
            assert (await Accounts(store).verify_password("demo", PASSWORD)).username == "demo"
            with pytest.raises(AuthenticationRequired, match="revoked"):
                await Accounts(store).authenticate(session)
        finally:
            await store.close()
        audit = journal_path(settings)
        assert audit is not None
        with sqlite3.connect(audit) as conn:
            rows = conn.execute("SELECT username, detail FROM journal WHERE action = ?",
                                ("user.password",)).fetchall()
        conn.close()
        assert [(user, json.loads(detail)["via"]) for user, detail in rows] == [
            ("demo", "camrelay user set-password --local")]

    asyncio.run(check())


async def test_backup_while_writing_then_restore_on_a_fresh_machine(
        client: TestClient[Any, Any], world: World, settings: Settings, tmp_path: Path) -> None:
    cfg = settings.catalog
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await world.catalog.add_camera(parse_camera(
                {"external_id": f"w-{written}", "name": f"写入 {written}", "unit": "330100",
                 "category": "expressway", "main_url": f"rtsp://u:pw-{written}@10.0.0.1/x"},
                categories=cfg.categories, camera_types=cfg.camera_types))
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        while written < 20:
            await asyncio.sleep(0.01)
        backup = tmp_path / "backup.db"
        run = await asyncio.to_thread(run_cli, ["backup", str(backup), "--data-dir",
                                                str(settings.data_dir)])
        assert run.code == 0, run
        during = written
    finally:
        stop.set()
        await task
    assert "keep the keys" in run.out
    journal_copy = tmp_path / "backup.db.audit"  # the access journal travels with the store
    assert journal_copy.exists()

    # a fresh machine: the backup and the key, nothing else
    fresh = tmp_path / "fresh"
    run = await asyncio.to_thread(run_cli, ["restore", str(backup), "--data-dir", str(fresh)])
    assert run.code == 1 and "no credential key" in run.err
    assert not (fresh / "camrelay.db").exists()
    fresh.mkdir()
    (fresh / "credential.key").write_text(Fernet.generate_key().decode())
    run = await asyncio.to_thread(run_cli, ["restore", str(backup), "--data-dir", str(fresh)])
    assert run.code == 1 and "cannot decrypt" in run.err, run
    assert not (fresh / "camrelay.db").exists()
    shutil.copyfile(settings.data_dir / "credential.key", fresh / "credential.key")
    run = await asyncio.to_thread(run_cli, ["restore", str(backup), "--data-dir", str(fresh)])
    assert run.code == 0, run
    with sqlite3.connect(journal_copy) as a, sqlite3.connect(fresh / "camrelay-audit.db") as b:
        query = "SELECT count(*), max(seq) FROM journal"
        assert a.execute(query).fetchone() == b.execute(query).fetchone()
    a.close()
    b.close()

    restored = await Store.open(replace(settings, data_dir=fresh))
    try:
        from camrelay.catalog.service import CameraFilter, Catalog

        catalog = Catalog(restored, cfg.categories, cfg.camera_types)
        cameras, total = await catalog.list_cameras(CameraFilter(), limit=1000)
        assert 20 <= total <= during + 1
        # consistent: the cameras are a gap-free prefix of what the writer wrote
        assert sorted(int(c.external_id[2:]) for c in cameras) == list(range(total))
        for cam in cameras[:5]:
            _user, password = await catalog.stream_credentials(cam.id)
            assert password == f"pw-{cam.external_id[2:]}"
        assert (await Accounts(restored).authenticate(world.admin_token)).user.username == "admin"
    finally:
        await restored.close()

    run = await asyncio.to_thread(run_cli, ["restore", str(backup), "--data-dir", str(fresh)])
    assert run.code == 1 and "--force" in run.err
    run = await asyncio.to_thread(run_cli, ["restore", str(backup), "--data-dir", str(fresh),
                                            "--force"])
    assert run.code == 0, run
    not_a_backup = tmp_path / "junk.db"
    not_a_backup.write_bytes(b"hello")
    run = await asyncio.to_thread(run_cli, ["restore", str(not_a_backup), "--data-dir",
                                            str(fresh), "--force"])
    assert run.code == 1 and "journal's copy) is missing" in run.err
    run = await asyncio.to_thread(run_cli, ["restore", str(not_a_backup), "--data-dir",
                                            str(fresh), "--force", "--without-journal"])
    assert run.code == 1 and "is not a camrelay backup" in run.err
    run = await asyncio.to_thread(run_cli, ["backup", str(backup), "--data-dir",
                                            str(settings.data_dir)])
    assert run.code == 1 and "exists" in run.err


def _modes(data: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}


async def test_store_journal_and_keys_are_owner_only(tmp_path: Path) -> None:
    """The data directory is 0700 and every file in it 0600 after init, while serving
    (the WAL files too), and in a backup; an older world-readable store is tightened."""
    data = tmp_path / "data"
    run = await asyncio.to_thread(run_cli, init_args(data), input=PASSWORD + "\n")
    assert run.code == 0, run
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = _modes(data)
    assert "camrelay.db" in modes and set(modes.values()) == {0o600}, modes

    from camrelay.app import create_app
    from camrelay.settings import load_settings

    settings = load_settings(env={"CAMRELAY_DATA_DIR": str(data)})
    store = await Store.open(settings)
    try:
        async with TestClient(TestServer(create_app(settings, store), host="127.0.0.1")
                              ) as client:
            resp = await client.post("/api/v1/auth/login",
                                     json={"username": "root", "password": PASSWORD})
            assert resp.status == 200
            modes = _modes(data)
            for name in ("camrelay.db", "camrelay.db-wal", "camrelay.db-shm",
                         "camrelay-audit.db", "camrelay-audit.db-wal", "camrelay-audit.db-shm",
                         "audit.key", "credential.key"):
                assert modes.get(name) == 0o600, (name, modes)
            assert set(modes.values()) == {0o600}, modes
    finally:
        await store.close()
    backup = tmp_path / "backup.db"
    run = await asyncio.to_thread(run_cli, ["backup", str(backup), "--data-dir", str(data)])
    assert run.code == 0, run
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backup.db.audit").stat().st_mode) == 0o600

    os.chmod(data / "camrelay.db", 0o644)  # as an older camrelay made it
    store = await Store.open(settings)
    await store.close()
    assert stat.S_IMODE((data / "camrelay.db").stat().st_mode) == 0o600


def _journal_events(data: Path, n: int) -> None:
    from camrelay.access.journal import Journal, JournalEvent
    from camrelay.settings import load_settings

    async def fill() -> None:
        settings = load_settings(env={"CAMRELAY_DATA_DIR": str(data)})
        store = await Store.open(settings)
        journal = Journal(settings, store)
        try:
            await journal.start()
            for i in range(n):
                await journal.append(JournalEvent(kind="admin", action=f"t.{i}", result="ok"))
        finally:
            await journal.close()
            await store.close()

    asyncio.run(fill())


def test_serve_refuses_a_cut_journal_until_reanchored(tmp_path: Path) -> None:
    """Issue 12: with the server stopped, the journal's tail and head are cut; `serve`
    used to rebuild the head and `audit verify` said ok."""
    data = tmp_path / "data"
    assert run_cli(init_args(data), input=PASSWORD + "\n").code == 0
    _journal_events(data, 8)
    with sqlite3.connect(data / "camrelay-audit.db") as conn:
        conn.executescript("DROP TRIGGER journal_append_only_update; "
                           "DROP TRIGGER journal_append_only_delete; "
                           "DELETE FROM journal WHERE seq >= 5; DELETE FROM journal_head;")
    conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    served = subprocess.run([str(BIN), "serve", "--data-dir", str(data), "--listen",
                             f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert served.returncode == 1, served
    assert "access journal lost events" in served.stderr
    assert "camrelay audit reanchor --accept-loss" in served.stderr
    assert "Traceback" not in served.stderr

    run = run_cli(["audit", "verify", "--local", "--data-dir", str(data)])
    assert run.code == 1 and "fails verification" in run.err, run
    assert "cut off" in run.out, run.out
    run = run_cli(["audit", "reanchor", "--data-dir", str(data)])
    assert run.code == 2 and "--accept-loss" in run.err
    run = run_cli(["audit", "reanchor", "--accept-loss", "--reason", "disk edited, see ticket 7",
                   "--data-dir", str(data)])
    assert run.code == 0 and "re-anchored" in run.out, run
    run = run_cli(["audit", "verify", "--local", "--json", "--data-dir", str(data)])
    assert run.code == 0, run
    with sqlite3.connect(data / "camrelay-audit.db") as conn:
        reason, detail = conn.execute("SELECT reason, detail FROM journal "
                                      "WHERE action = 'anchor.reset'").fetchone()
    conn.close()
    assert reason == "disk edited, see ticket 7" and json.loads(detail)["anchored_seq"] == 8


def test_restore_of_an_older_backup_records_the_lost_events(tmp_path: Path) -> None:
    """Restoring a backup over a journal that went further is accepted, and journalled."""
    data = tmp_path / "data"
    assert run_cli(init_args(data), input=PASSWORD + "\n").code == 0
    _journal_events(data, 3)
    backup = tmp_path / "b.db"
    assert run_cli(["backup", str(backup), "--data-dir", str(data)]).code == 0
    _journal_events(data, 4)  # events 4..7 exist only after the backup
    run = run_cli(["restore", str(backup), "--force", "--data-dir", str(data)])
    assert run.code == 0, run
    assert "events after the backup are lost" in run.out
    run = run_cli(["audit", "verify", "--local", "--data-dir", str(data)])
    assert run.code == 0 and run.out.startswith("ok: 4 event(s)"), run
