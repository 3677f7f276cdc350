"""``camrelay health`` (the problem cameras of a subtree) and ``camrelay drill run|list|show``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, json_option
from camrelay.cli.output import emit_json, record, table
from camrelay.errors import CamrelayError

POLL_SECONDS = 1.0


def duration(seconds: float | None) -> str | None:
    """3725 -> "1h02m" (how long a camera has been down)."""
    if seconds is None:
        return None
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 1:
        return f"{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m"


@click.command("health")
@click.option("--unit", default=None, help="a unit's subtree (default: your own unit)")
@click.option("--problems", is_flag=True, help="only the cameras that are not online")
@json_option
@api_command
def health(unit: str | None, problems: bool, as_json: bool, api: ApiClient) -> None:
    """Cameras of a subtree with status, reason, how long down and last seen (problems
    first, longest down first)."""
    rows = api.request("GET", "/api/v1/health",
                       params={"unit": unit, "problems": True if problems else None})
    if as_json:
        emit_json(rows)
        return
    shown = [{**r, "down": duration(r["seconds"]) if r["status"] != "online" else None}
             for r in rows]
    table(shown, ("camera_id", "name", "unit", "status", "reason", "down", "last_seen"))


@click.group("drill")
def drill() -> None:
    """Drills: every enabled camera of a subtree checked now, with a report."""


@drill.command("run")
@click.option("--unit", default=None, help="a unit's subtree (default: your own unit)")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="also write the report as an HTML page to this file")
@json_option
@api_command
def drill_run(unit: str | None, html_file: Path | None, as_json: bool, api: ApiClient) -> None:
    """Run a drill now and print its report (exit 0 when the report is written, broken
    cameras or not; 1 when the drill itself failed)."""
    started = api.request("POST", "/api/v1/drills", body={"unit": unit} if unit else {})
    result = started
    while result["state"] == "running":
        time.sleep(POLL_SECONDS)
        result = api.request("GET", f"/api/v1/drills/{started['id']}")
    _show(result, as_json, html_file, api)


@drill.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@api_command
def drill_list(limit: int, as_json: bool, api: ApiClient) -> None:
    """The newest drills of your jurisdiction."""
    rows = api.request("GET", "/api/v1/drills", params={"limit": limit})
    if as_json:
        emit_json(rows)
        return
    table([{**r, **{k: (r.get("totals") or {}).get(k) for k in ("total", "online", "faulty")}}
           for r in rows],
          ("id", "unit", "state", "started_at", "started_by", "total", "online", "faulty"))


@drill.command("show")
@click.argument("drill_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="also write the report as an HTML page to this file")
@json_option
@api_command
def drill_show(drill_id: int, html_file: Path | None, as_json: bool, api: ApiClient) -> None:
    """One drill's report."""
    _show(api.request("GET", f"/api/v1/drills/{drill_id}"), as_json, html_file, api)


def _show(result: dict[str, Any], as_json: bool, html_file: Path | None,
          api: ApiClient) -> None:
    if html_file is not None:
        page = api.request("GET", f"/api/v1/drills/{result['id']}.html", raw=True)
        try:
            html_file.write_bytes(page)
        except OSError as err:
            raise CamrelayError(f"cannot write {html_file}: {err.strerror}") from None
    if as_json:
        emit_json(result)
    report = result.get("report") or {}
    if result["state"] != "done":
        raise CamrelayError(f"drill {result['id']} {result['state']}: "
                            f"{report.get('error', 'no report')}")
    if as_json:
        return
    totals = report["totals"]
    record({"drill": result["id"], "unit": f"{report['unit_name']} ({report['unit']})",
            "started": result["started_at"], "finished": result["finished_at"],
            "cameras": totals["total"], "online": totals["online"],
            "faulty": totals["faulty"], "unchecked": totals["unchecked"],
            "availability_week": totals["availability_week"]})
    click.echo()
    table([{**u, "reasons": [f"{k}:{v}" for k, v in u["reasons"].items()],
            "first_median": u["first_frame"]["median"],
            "first_worst": u["first_frame"]["worst"]} for u in report["units"]],
          ("unit", "name", "total", "online", "faulty", "reasons", "first_median",
           "first_worst", "availability_week"))
    click.echo()
    click.echo("broken cameras:")
    table(report["broken"], ("camera_id", "name", "unit", "status", "reason"))


COMMANDS = [health, drill]
