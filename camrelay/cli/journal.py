"""``camrelay audit verify --local`` and ``camrelay audit reanchor``: the access journal
checked and re-anchored on the store itself (on the server's machine; they work while
the server refuses to start on a journal that lost events)."""

from __future__ import annotations

from pathlib import Path

import click

from camrelay.cli.admin import config_option, data_dir_option


@click.command("reanchor")
@click.option("--accept-loss", is_flag=True,
              help="go on with what is left of the journal; the loss is journalled")
@click.option("--reason", default="the operator accepted the loss of journal events",
              show_default=True, help="why (recorded in the journal)")
@config_option
@data_dir_option
def reanchor(accept_loss: bool, reason: str, config: Path | None,
             data_dir: Path | None) -> None:
    """Let camrelay start again on an access journal that lost events (stop the server
    first; check `camrelay audit verify --local` and your backups before)."""
    if not accept_loss:
        raise click.UsageError("re-anchoring accepts that the journal's lost events are gone "
                               "for good: pass --accept-loss to do it")
    from camrelay.cli import local  # the store and the journal: see camrelay.cli.admin

    if local.reanchor_store(local.local_settings(config, data_dir), reason[:2000]):
        click.echo("re-anchored the access journal; the loss is recorded in it "
                   "(camrelay audit list --kind journal)")
    else:
        click.echo("the journal holds the event its anchor names: nothing to do")
