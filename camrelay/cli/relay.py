"""``camrelay camera probe``, ``camrelay keep-warm add|list|remove`` and ``camrelay sessions``."""

from __future__ import annotations

from typing import Any

import click

from camrelay.cli.catalog import camera
from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, json_option
from camrelay.cli.output import emit_json, record, table


@camera.command("probe")
@click.argument("camera_id", type=int)
@click.option("--stream", type=click.Choice(["main", "sub"]), default="main", show_default=True)
@json_option
@api_command
def camera_probe(camera_id: int, stream: str, as_json: bool, api: ApiClient) -> None:
    """Test a camera's stream from the server: codec, profile, resolution, fps, bitrate and
    time to the first keyframe, or the reason it cannot be played."""
    result = api.request("POST", f"/api/v1/cameras/{camera_id}/probe", params={"stream": stream})
    if as_json:
        emit_json(result)
        return
    shown: dict[str, Any] = dict(result)
    shown["time_to_first_keyframe"] = f"{result['time_to_first_keyframe']:.3f} s"
    if result.get("bitrate"):
        shown["bitrate"] = f"{result['bitrate'] / 1000:.0f} kbit/s"
    record(shown)


@click.group("keep-warm")
def keep_warm() -> None:
    """Keep cameras live in a time window (important periods), watched or not."""


@keep_warm.command("add")
@click.option("--camera", "cameras", type=int, multiple=True, help="camera id (repeatable)")
@click.option("--unit", default=None, help="every camera of this unit's subtree")
@click.option("--category", default=None, help="every camera of this category")
@click.option("--stream", type=click.Choice(["main", "sub"]), default="main", show_default=True)
@click.option("--from", "starts", default=None, help="ISO time the window opens (default: now)")
@click.option("--until", required=True, help="ISO time, e.g. 2026-10-07T20:00:00+08:00")
@click.option("--reason", default=None, help="e.g. the important period's name")
@json_option
@api_command
def keep_warm_add(cameras: tuple[int, ...], unit: str | None, category: str | None,
                  stream: str, starts: str | None, until: str, reason: str | None,
                  as_json: bool, api: ApiClient) -> None:
    """Open a keep-warm window for cameras, a unit's subtree or a category."""
    body: dict[str, Any] = {"until": until, "stream": stream}
    for key, value in (("cameras", list(cameras)), ("unit", unit), ("category", category),
                       ("from", starts), ("reason", reason)):
        if value:
            body[key] = value
    windows = api.request("POST", "/api/v1/keep-warm", body=body)
    if as_json:
        emit_json(windows)
    else:
        click.echo(f"{len(windows)} window(s), until {windows[0]['until']}")
        table(windows, WINDOW_COLUMNS)


WINDOW_COLUMNS = ("id", "camera_id", "stream", "from", "until", "open", "reason")


@keep_warm.command("list")
@json_option
@api_command
def keep_warm_list(as_json: bool, api: ApiClient) -> None:
    """Windows that are open or still to come."""
    windows = api.request("GET", "/api/v1/keep-warm")
    emit_json(windows) if as_json else table(windows, WINDOW_COLUMNS)


@keep_warm.command("remove")
@click.argument("window_id", type=int)
@api_command
def keep_warm_remove(window_id: int, api: ApiClient) -> None:
    """End a window now (its camera lingers and stops if nobody watches)."""
    api.request("DELETE", f"/api/v1/keep-warm/{window_id}")
    click.echo(f"ended keep-warm window {window_id}")


@click.command("sessions")
@json_option
@api_command
def sessions(as_json: bool, api: ApiClient) -> None:
    """Live viewing sessions of your subtree (administrators and auditors)."""
    rows = api.request("GET", "/api/v1/sessions")
    emit_json(rows) if as_json else table(rows, ("id", "camera_id", "stream", "user_id",
                                                 "state", "dropped", "age_seconds"))


COMMANDS = [keep_warm, sessions]
