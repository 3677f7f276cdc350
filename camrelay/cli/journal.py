"""``camrelay audit verify --local`` and ``camrelay audit reanchor``: the access journal
checked and re-anchored on the store itself (on the server's machine; they work while
the server refuses to start on a journal that lost events)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from camrelay.cli.admin import config_option, data_dir_option, local_settings
from camrelay.store import Store

if TYPE_CHECKING:
    from camrelay.settings import Settings


def verify_local(config: Path | None, data_dir: Path | None) -> dict[str, Any]:
    """``audit verify`` without a server: the store's journal against the anchor."""
    from camrelay.access.journal import Journal

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
    if reanchor_store(local_settings(config, data_dir), reason[:2000]):
        click.echo("re-anchored the access journal; the loss is recorded in it "
                   "(camrelay audit list --kind journal)")
    else:
        click.echo("the journal holds the event its anchor names: nothing to do")


def reanchor_store(settings: Settings, reason: str) -> bool:
    """Start the journal; if it lost events, go on knowingly (journalled).  True if it
    had to be re-anchored."""
    from camrelay.access.anchor import JournalCut
    from camrelay.access.journal import Journal

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
