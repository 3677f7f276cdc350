"""``camrelay federation``: link platforms (province <- city <- county).

On the lower platform: ``issue`` a credential for the upper one, ``credentials``,
``revoke``, ``push`` cameras upward.  On the upper platform: ``link add|list|remove``.
The credential is never an argument (``ps`` and shell history would keep it): it is read
from standard input (``--credential-stdin``), ``CAMRELAY_FEDERATION_CREDENTIAL`` or a
prompt.
"""

from __future__ import annotations

import click

from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, json_option, read_secret
from camrelay.cli.output import emit_json, record, table

LINK_COLUMNS = ("id", "name", "url", "attach_under", "state", "stale", "last_sync_at",
                "units", "cameras", "error")
CREDENTIAL_COLUMNS = ("id", "name", "units", "cameras", "active", "created_at", "revoked_at")


def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.UsageError("--cameras takes camera ids separated by commas") from None


@click.group("federation")
def federation() -> None:
    """Share cameras with an upper platform, or link a lower one."""


@federation.command("issue")
@click.option("--name", required=True, help="the upper platform's name, e.g. province")
@click.option("--units", default=None, help="unit codes to share (with their sub-units), "
                                            "separated by commas")
@click.option("--cameras", default=None, help="camera ids to share, separated by commas")
@json_option
@api_command
def issue(name: str, units: str | None, cameras: str | None, as_json: bool,
          api: ApiClient) -> None:
    """Issue a credential for an upper platform; its token is printed once."""
    codes = [c.strip() for c in (units or "").split(",") if c.strip()]
    ids = _ids(cameras)
    if not codes and not ids:
        raise click.UsageError("share --units and/or --cameras")
    issued = api.request("POST", "/api/v1/federation/credentials",
                         body={"name": name, "units": codes, "cameras": ids})
    if as_json:
        emit_json(issued)
        return
    click.echo(f"credential {issued['id']} for {name}: give this token to the upper "
               "platform's administrator (shown once):", err=True)
    click.echo(issued["token"])


@federation.command("credentials")
@json_option
@api_command
def credentials(as_json: bool, api: ApiClient) -> None:
    """Credentials issued here."""
    rows = api.request("GET", "/api/v1/federation/credentials")
    emit_json(rows) if as_json else table(rows, CREDENTIAL_COLUMNS)


@federation.command("revoke")
@click.argument("credential_id", type=int)
@json_option
@api_command
def revoke(credential_id: int, as_json: bool, api: ApiClient) -> None:
    """Revoke a credential: the upper platform's pulls are cut at once."""
    row = api.request("DELETE", f"/api/v1/federation/credentials/{credential_id}")
    emit_json(row) if as_json else record(row)


@federation.command("push")
@click.option("--cameras", required=True, help="camera ids, separated by commas")
@click.option("--minutes", type=click.FloatRange(1, 1440), required=True,
              help="how long they stay at the upper platform")
@click.option("--reason", required=True, help="why (journalled on both sides)")
@json_option
@api_command
def push(cameras: str, minutes: float, reason: str, as_json: bool, api: ApiClient) -> None:
    """Push cameras to the upper platform(s) for a while."""
    row = api.request("POST", "/api/v1/federation/push", body={
        "cameras": _ids(cameras), "minutes": minutes, "reason": reason})
    emit_json(row) if as_json else record(row)


@federation.group("link")
def link() -> None:
    """Lower platforms linked here."""


@link.command("add")
@click.option("--name", required=True, help="the lower platform's name, e.g. county")
@click.option("--url", required=True, help="its base address, e.g. https://county.example:8443")
@click.option("--attach-under", required=True, help="the unit code its tree hangs under")
@click.option("--credential-stdin", is_flag=True,
              help="read the credential it issued from standard input")
@json_option
@api_command
def link_add(name: str, url: str, attach_under: str, credential_stdin: bool, as_json: bool,
             api: ApiClient) -> None:
    """Link a lower platform with the credential it issued (sealed, never shown)."""
    credential = read_secret(stdin=credential_stdin, env="CAMRELAY_FEDERATION_CREDENTIAL",
                             prompt="Federation credential")
    if not credential:
        raise click.UsageError("give the credential on standard input (--credential-stdin) "
                               "or in CAMRELAY_FEDERATION_CREDENTIAL")
    row = api.request("POST", "/api/v1/federation/links", body={
        "name": name, "url": url, "credential": credential, "attach_under": attach_under})
    emit_json(row) if as_json else record(row)


@link.command("list")
@json_option
@api_command
def link_list(as_json: bool, api: ApiClient) -> None:
    """Links with their state (connected, last sync, error, stale)."""
    rows = api.request("GET", "/api/v1/federation/links")
    emit_json(rows) if as_json else table(rows, LINK_COLUMNS)


@link.command("remove")
@click.argument("link_id", type=int)
@json_option
@api_command
def link_remove(link_id: int, as_json: bool, api: ApiClient) -> None:
    """Remove a link and everything imported over it."""
    row = api.request("DELETE", f"/api/v1/federation/links/{link_id}")
    emit_json(row) if as_json else record(row)


COMMANDS = [federation]
