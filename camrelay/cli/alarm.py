"""``camrelay alarm list|ack``: alarms routed to the units of your subtree."""

from __future__ import annotations

from typing import Any

import click

from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, json_option
from camrelay.cli.output import emit_json, record, table

COLUMNS = ("id", "camera_id", "kind", "severity", "reason", "count", "raised_at",
           "last_seen_at", "cleared_at", "acked_by", "units")


@click.group("alarm")
def alarm() -> None:
    """Alarms raised by device health for the owner and maintenance units."""


def _row(alarm: dict[str, Any]) -> dict[str, Any]:
    return {**alarm, "acked_by": (alarm.get("ack") or {}).get("by")}


@alarm.command("list")
@click.option("--unit", default=None, help="only alarms routed to this unit's subtree")
@click.option("--active", is_flag=True, help="only alarms not cleared")
@click.option("--camera", type=int, default=None, help="only this camera's alarms")
@click.option("--kind", default=None, help="e.g. offline, fault.auth, finding.black")
@click.option("--since", default=None, help="ISO time: only alarms seen since then")
@json_option
@api_command
def alarm_list(unit: str | None, active: bool, camera: int | None, kind: str | None,
               since: str | None, as_json: bool, api: ApiClient) -> None:
    """Alarms of your subtree, newest first."""
    params: dict[str, str] = {}
    for key, value in (("unit", unit), ("camera", camera), ("kind", kind), ("since", since)):
        if value:
            params[key] = str(value)
    if active:
        params["active"] = "true"
    rows = api.request("GET", "/api/v1/alarms", params=params)
    emit_json(rows) if as_json else table([_row(a) for a in rows], COLUMNS)


@alarm.command("ack")
@click.argument("alarm_id", type=int)
@click.option("--comment", required=True, help="what is being done about it (journalled)")
@json_option
@api_command
def alarm_ack(alarm_id: int, comment: str, as_json: bool, api: ApiClient) -> None:
    """Acknowledge an alarm with a comment."""
    if not comment.strip():
        raise click.UsageError("--comment must say what is being done")
    acked = api.request("POST", f"/api/v1/alarms/{alarm_id}/ack", body={"comment": comment})
    emit_json(acked) if as_json else record(_row(acked))


COMMANDS = [alarm]
