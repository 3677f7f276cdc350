"""``camrelay camera probe``, ``camrelay keep-warm`` and ``camrelay sessions``."""

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


@click.command("keep-warm")
@click.option("--camera", "cameras", type=int, multiple=True, help="camera id (repeatable)")
@click.option("--unit", default=None, help="every camera of this unit's subtree")
@click.option("--category", default=None, help="every camera of this category")
@click.option("--stream", type=click.Choice(["main", "sub"]), default="main", show_default=True)
@click.option("--until", required=True, help="ISO time, e.g. 2026-10-07T20:00:00+08:00")
@json_option
@api_command
def keep_warm(cameras: tuple[int, ...], unit: str | None, category: str | None, stream: str,
              until: str, as_json: bool, api: ApiClient) -> None:
    """Keep cameras live until a time (important periods), so the hall opens them at once."""
    body: dict[str, Any] = {"until": until, "stream": stream}
    if cameras:
        body["cameras"] = list(cameras)
    if unit:
        body["unit"] = unit
    if category:
        body["category"] = category
    result = api.request("POST", "/api/v1/relay/keep-warm", body=body)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"keeping {len(result['cameras'])} camera(s) warm until {result['until']}")


@click.command("sessions")
@json_option
@api_command
def sessions(as_json: bool, api: ApiClient) -> None:
    """Live viewing sessions (administrators and auditors)."""
    rows = api.request("GET", "/api/v1/sessions")
    emit_json(rows) if as_json else table(rows, ("id", "camera_id", "stream", "user_id",
                                                 "state", "dropped", "age_seconds"))


COMMANDS = [keep_warm, sessions]
