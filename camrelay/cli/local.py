"""What the store-side commands do (``init``, ``serve``, ``backup``, ``restore``, ``user
set-password --local``, ``audit verify --local``, ``audit reanchor``): on the store itself,
on the server's machine.

The command declarations (``camrelay.cli.admin``, ``camrelay.cli.journal``) import this
module only when one of them runs: it loads SQLAlchemy, the store and the journal, about
0.5 s that ``camrelay --help`` and every command talking HTTP must not pay
(``scripts/bench/cli_start.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from camrelay.access.accounts import Accounts
from camrelay.access.anchor import ANCHOR_FILE, JournalCut
from camrelay.access.journal import Journal, journal_path
from camrelay.catalog.models import UnitLevel
from camrelay.errors import CamrelayError, ConfigError, StoreError, UserNotFound
from camrelay.memory import limit_malloc_arenas
from camrelay.server import ensure_demo, initialise
from camrelay.server import serve as run_server
from camrelay.settings import Settings, _check, load_settings
from camrelay.store import Store
from camrelay.store.private import private_dir, private_sqlite
from camrelay.web.present import user_json


def local_settings(config: Path | None, data_dir: Path | None) -> Settings:
    """The settings of a command that works on the store directly (the server's machine)."""
    settings = load_settings(config)
    if data_dir is not None:
        settings = replace(settings, data_dir=data_dir)
    return settings


def init(settings: Settings, *, unit_code: str, unit_name: str, unit_level: str, admin: str,
         password: str) -> str:
    """Create the store, the root unit and the first administrator; its API token."""

    async def run() -> str:
        store = await Store.open(settings)
        try:
            first = await initialise(store, settings, unit_code=unit_code, unit_name=unit_name,
                                     unit_level=UnitLevel(unit_level), admin=admin,
                                     password=password)
            return first.token
        finally:
            await store.close()

    return asyncio.run(run())


async def demo_hint(store: Store, config: Path | None, data_dir: Path | None,
                    base: str) -> list[str]:
    """What ``serve --demo`` says on a store that already has data: how to get in."""
    local = "camrelay user set-password {} --local" + (f" --config {config}" if config else "")
    local += f" --data-dir {data_dir}" if data_dir else ""
    try:
        await Accounts(store).get_user("demo")
    except UserNotFound:
        return [(f"the store already has data (no demo user); open {base} and sign in with "
                "one of its accounts"),
                f"a forgotten password: run `{local.format('NAME')}` on this machine"]
    return [(f"the store already has data; open {base} and sign in as demo with the "
            "password printed when the demo was created (it is kept)"),
            f"forgot it? run `{local.format('demo')}` on this machine"]


def set_password_locally(config: Path | None, data_dir: Path | None, name: str,
                         password: str) -> dict[str, Any]:
    """``user set-password --local``: in the store itself, journalled; every login session
    of the user ends (nobody signed in asked for it)."""
    settings = local_settings(config, data_dir)

    async def run() -> dict[str, Any]:
        store = await Store.open(settings)
        journal = Journal(settings, store)
        try:
            user, ended = await Accounts(store).set_password(name, password)
            await journal.start()
            await journal.record_admin(user, "user.password", detail={
                "user": user.username, "sessions_ended": ended,
                "via": "camrelay user set-password --local"})
            return {"user": user_json(user), "sessions_ended": ended}
        finally:
            await journal.close()
            await store.close()

    return asyncio.run(run())


def serve(config: Path | None, data_dir: Path | None, listen: str | None, demo: bool,
          log_level: str | None) -> None:
    """Run the server until it is stopped."""
    settings = local_settings(config, data_dir)
    if listen is not None:
        settings = replace(settings, server=replace(settings.server, listen=listen))
        _check(settings)
    level = (log_level or settings.log.level).upper()
    if level != settings.log.level:  # worker processes get the settings, so the level too
        settings = replace(settings, log=replace(
            settings.log, level=level))  # type: ignore[arg-type]
    logging.getLogger().setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("camrelay").setLevel(level)
    if level != "DEBUG":
        # aioice/aiortc are chatty at INFO about every candidate pair
        for noisy in ("aioice", "aiortc", "libav"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    limit_malloc_arenas()

    async def run() -> None:
        store = await Store.open(settings)
        try:
            if demo:
                login = await ensure_demo(store, settings)
                scheme = "https" if settings.server.tls_cert else "http"
                host = settings.server.host
                shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
                base = f"{scheme}://{shown}:{settings.server.port}/"
                if login is not None:
                    click.echo("demo: created a province → city → county tree, user 'demo' and "
                               "five demo cameras")
                    click.echo(f"demo: open {base} and sign in as demo / {login.password}")
                    click.echo(f"demo: API token for the CLI: {login.token}")
                else:
                    for line in await demo_hint(store, config, data_dir, base):
                        click.echo(f"demo: {line}")
            await run_server(settings, store)
        finally:
            await store.close()

    asyncio.run(run())


def _sqlite_path(settings: Settings) -> Path:
    url = settings.effective_database_url
    if not url.startswith("sqlite"):
        raise ConfigError(
            "backup/restore copy the embedded SQLite store; for PostgreSQL use pg_dump / "
            "pg_restore (or a streaming replica), as the README describes")
    return Path(url.split("///", 1)[1])


def backup(file: Path, config: Path | None, data_dir: Path | None) -> None:
    """Write a consistent copy of the store to FILE (safe while the server runs)."""
    settings = local_settings(config, data_dir)
    source = _sqlite_path(settings)
    if not source.exists():
        raise StoreError(f"there is no store at {source}")
    if file.exists():
        raise CamrelayError(f"{file} exists; choose a new file name")
    journal = journal_path(settings)
    journal_copy = _journal_backup(file)
    if journal_copy.exists():
        raise CamrelayError(f"{journal_copy} exists; choose a new file name")
    # the journal first: every view it records is then also in the store's copy or later
    if journal is not None and journal.exists():
        _online_copy(journal, journal_copy)
    _online_copy(source, file)
    click.echo(f"backed up {source} to {file}")
    if journal is not None and journal.exists():
        click.echo(f"backed up the access journal {journal} to {journal_copy}")
    click.echo("keep the keys (credential.key and audit.key in the data directory, or the "
               "credential_key and audit_key settings) apart from the backup: restoring "
               "needs them")


def _journal_backup(file: Path) -> Path:
    """The access journal's copy, beside the store's (SQLite keeps it in its own file)."""
    return file.with_name(file.name + ".audit")


def _online_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    private_sqlite(tmp)  # the copy holds password hashes and the journal: owner-only
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)  # SQLite's online backup: a consistent snapshot under WAL
    finally:
        dst.close()
        src.close()
    tmp.replace(target)


def restore(file: Path, force: bool, without_journal: bool, config: Path | None,
            data_dir: Path | None) -> None:
    """Restore the store (and its access journal, FILE.audit) from a backup FILE (stop the
    server first)."""
    settings = local_settings(config, data_dir)
    target = _sqlite_path(settings)
    journal_copy = _journal_backup(file)
    if not journal_copy.exists() and not without_journal:
        raise CamrelayError(f"{journal_copy} (the access journal's copy) is missing; restoring "
                            "without it starts a new journal: use --without-journal for that")
    try:
        probe = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            version = probe.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            probe.close()
    except sqlite3.DatabaseError:
        version = None
    if version is None:
        raise StoreError(f"{file} is not a camrelay backup")
    if target.exists() and not force:
        raise CamrelayError(f"a store already exists at {target}; use --force to replace it")
    if not settings.credential_key and not (settings.data_dir / "credential.key").exists():
        raise ConfigError(
            f"no credential key: copy credential.key from the machine the backup was made on "
            f"into {settings.data_dir}, or set credential_key (CAMRELAY_CREDENTIAL_KEY); the "
            "camera passwords in the backup are sealed with it")
    private_dir(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmpdir:
        staged = Path(tmpdir) / "restore.db"
        private_sqlite(staged)
        src = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        dst = sqlite3.connect(staged)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

        async def check() -> None:
            # migrate an older backup and check the key on the staged copy, so a failure
            # leaves the current store as it was
            staged_settings = replace(
                settings, database_url=f"sqlite+aiosqlite:///{staged.resolve()}")
            store = await Store.open(staged_settings)
            await store.close()

        asyncio.run(check())
        with sqlite3.connect(staged) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(staged) + suffix).unlink(missing_ok=True)
            Path(str(target) + suffix).unlink(missing_ok=True)
        shutil.move(str(staged), target)
    journal = journal_path(settings)
    if journal is not None and journal_copy.exists():
        for suffix in ("-wal", "-shm"):
            Path(str(journal) + suffix).unlink(missing_ok=True)
        _online_copy(journal_copy, journal)
        click.echo(f"restored the access journal to {journal}; check it with "
                   "`camrelay audit verify` once the server runs")
        # the anchor remembers how far this machine's journal got: a backup ends earlier,
        # and the restore, run knowingly, accepts and journals that loss
        if ((settings.data_dir / ANCHOR_FILE).exists()
                and reanchor_store(settings, f"restored from the backup {file.name}")):
            click.echo("the restored journal ends before the journal it replaced; the "
                       "events after the backup are lost and that is recorded in it")
    click.echo(f"restored {file} to {target}")


def verify_local(config: Path | None, data_dir: Path | None) -> dict[str, Any]:
    """``audit verify`` without a server: the store's journal against the anchor."""
    settings = local_settings(config, data_dir)

    async def run() -> dict[str, Any]:
        store = await Store.open(settings)
        journal = Journal(settings, store)
        try:
            report = await journal.verify()
        finally:
            await journal.close()
            await store.close()
        return {"ok": report.ok, "events": report.events, "head_seq": report.head_seq,
                "problems": report.problems}

    return asyncio.run(run())


def reanchor_store(settings: Settings, reason: str) -> bool:
    """Start the journal; if it lost events, go on knowingly (journalled).  True if it
    had to be re-anchored."""
    async def run() -> bool:
        store = await Store.open(settings)
        try:
            journal = Journal(settings, store)
            try:
                await journal.start()
                return False
            except JournalCut as err:
                click.echo(f"the journal lost events: {err.detail}", err=True)
            finally:
                await journal.close()
            journal = Journal(settings, store)
            try:
                await journal.start(accept_loss=reason)
            finally:
                await journal.close()
            return True
        finally:
            await store.close()

    return asyncio.run(run())
