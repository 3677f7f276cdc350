"""``camrelay init``, ``serve``, ``backup`` and ``restore``: the commands that work on the
store directly (on the server's own machine)."""

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

from camrelay.access.anchor import ANCHOR_FILE
from camrelay.access.journal import journal_path
from camrelay.catalog.models import UnitLevel
from camrelay.cli.common import read_secret
from camrelay.errors import CamrelayError, ConfigError, StoreError
from camrelay.settings import Settings, load_settings
from camrelay.store import Store
from camrelay.store.private import private_dir, private_sqlite

config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="CAMRELAY_CONFIG", help="settings file (TOML; env CAMRELAY_CONFIG)")
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="data directory (env CAMRELAY_DATA_DIR; default ./camrelay-data)")


def local_settings(config: Path | None, data_dir: Path | None) -> Settings:
    """The settings of a command that works on the store directly (the server's machine)."""
    settings = load_settings(config)
    if data_dir is not None:
        settings = replace(settings, data_dir=data_dir)
    return settings


@click.command()
@click.option("--unit-code", required=True, help="code of the root unit (e.g. 330000)")
@click.option("--unit-name", required=True, help="name of the root unit")
@click.option("--unit-level", default="province", show_default=True,
              type=click.Choice([lv.value for lv in UnitLevel]))
@click.option("--admin", required=True, help="user name of the first administrator")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@config_option
@data_dir_option
def init(unit_code: str, unit_name: str, unit_level: str, admin: str, password_stdin: bool,
         config: Path | None, data_dir: Path | None) -> None:
    """Create the store, the root unit and the first administrator; print its API token once."""
    settings = local_settings(config, data_dir)
    password = read_secret(stdin=password_stdin, env="CAMRELAY_PASSWORD",
                           prompt="Password for the administrator", confirm=True)
    if not password:
        raise click.UsageError("no password: use --password-stdin, CAMRELAY_PASSWORD or a "
                               "terminal for the prompt")

    async def run() -> str:
        from camrelay.server import initialise

        store = await Store.open(settings)
        try:
            first = await initialise(store, settings, unit_code=unit_code, unit_name=unit_name,
                                     unit_level=UnitLevel(unit_level), admin=admin,
                                     password=password)
            return first.token
        finally:
            await store.close()

    token = asyncio.run(run())
    click.echo(f"initialised the store in {settings.data_dir}")
    click.echo(f"administrator {admin!r} of unit {unit_code}; API token (shown once, keep it):")
    click.echo(token)


async def demo_hint(store: Store, config: Path | None, data_dir: Path | None,
                    base: str) -> list[str]:
    """What ``serve --demo`` says on a store that already has data: how to get in."""
    from camrelay.access.accounts import Accounts
    from camrelay.errors import UserNotFound

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
        from camrelay.access.accounts import Accounts
        from camrelay.access.journal import Journal
        from camrelay.web.api_accounts import user_json

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


@click.command()
@config_option
@data_dir_option
@click.option("--listen", default=None, help="HOST:PORT (default 127.0.0.1:8080)")
@click.option("--demo", is_flag=True, help="on an empty store, add a demo unit tree, user and cameras")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def serve(config: Path | None, data_dir: Path | None, listen: str | None, demo: bool,
          log_level: str | None) -> None:
    """Run the server (with relay.workers >= 2: a front and worker processes)."""
    settings = local_settings(config, data_dir)
    if listen is not None:
        from camrelay.settings import _check

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

    from camrelay.memory import limit_malloc_arenas

    limit_malloc_arenas()

    async def run() -> None:
        from camrelay.server import ensure_demo
        from camrelay.server import serve as run_server

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


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@data_dir_option
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


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace a store that already has data")
@click.option("--without-journal", is_flag=True,
              help="restore a backup that has no access journal copy (FILE.audit)")
@config_option
@data_dir_option
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
        if (settings.data_dir / ANCHOR_FILE).exists():
            # the anchor remembers how far this machine's journal got: a backup ends
            # earlier, and the restore, run knowingly, accepts and journals that loss
            from camrelay.cli.journal import reanchor_store

            if reanchor_store(settings, f"restored from the backup {file.name}"):
                click.echo("the restored journal ends before the journal it replaced; the "
                           "events after the backup are lost and that is recorded in it")
    click.echo(f"restored {file} to {target}")


COMMANDS = [init, serve, backup, restore]
