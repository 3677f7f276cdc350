"""``camrelay init``, ``serve``, ``backup`` and ``restore``: the commands that work on the
store directly (on the server's own machine).

Only the declarations live here; each command imports ``camrelay.cli.local`` (the store,
the journal, SQLAlchemy: ~0.5 s) when it runs, so ``camrelay --help`` and the commands
that talk HTTP start like a small tool (``scripts/bench/cli_start.py``).
"""

from __future__ import annotations

from pathlib import Path

import click

from camrelay.catalog.models import UnitLevel
from camrelay.cli.common import read_secret

config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="CAMRELAY_CONFIG", help="settings file (TOML; env CAMRELAY_CONFIG)")
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="data directory (env CAMRELAY_DATA_DIR; default ./camrelay-data)")


@click.command()
@click.option("--unit-code", required=True, help="code of the root unit (e.g. 330000)")
@click.option("--unit-name", required=True, help="name of the root unit")
@click.option("--unit-level", default="province", show_default=True,
              type=click.Choice([level.value for level in UnitLevel]))
@click.option("--admin", required=True, help="user name of the first administrator")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@config_option
@data_dir_option
def init(unit_code: str, unit_name: str, unit_level: str, admin: str, password_stdin: bool,
         config: Path | None, data_dir: Path | None) -> None:
    """Create the store, the root unit and the first administrator; print its API token once."""
    from camrelay.cli import local

    settings = local.local_settings(config, data_dir)
    password = read_secret(stdin=password_stdin, env="CAMRELAY_PASSWORD",
                           prompt="Password for the administrator", confirm=True)
    if not password:
        raise click.UsageError("no password: use --password-stdin, CAMRELAY_PASSWORD or a "
                               "terminal for the prompt")
    token = local.init(settings, unit_code=unit_code, unit_name=unit_name,
                       unit_level=unit_level, admin=admin, password=password)
    click.echo(f"initialised the store in {settings.data_dir}")
    click.echo(f"administrator {admin!r} of unit {unit_code}; API token (shown once, keep it):")
    click.echo(token)


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
    from camrelay.cli import local

    local.serve(config, data_dir, listen, demo, log_level)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@data_dir_option
def backup(file: Path, config: Path | None, data_dir: Path | None) -> None:
    """Write a consistent copy of the store to FILE (safe while the server runs)."""
    from camrelay.cli import local

    local.backup(file, config, data_dir)


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
    from camrelay.cli import local

    local.restore(file, force, without_journal, config, data_dir)


COMMANDS = [init, serve, backup, restore]
