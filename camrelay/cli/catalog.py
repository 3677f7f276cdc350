"""``camrelay unit …``, ``camrelay camera …`` and ``camrelay catalog import|export``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from camrelay.catalog.fields import CAMERA, Field
from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, json_option, read_secret
from camrelay.cli.output import emit_json, record, table
from camrelay.errors import CamrelayError, ValidationError

UNIT_COLUMNS = ("code", "name", "level", "parent")
CAMERA_COLUMNS = ("id", "external_id", "name", "unit", "category", "status", "location",
                  "enabled")


@click.group()
def unit() -> None:
    """Units of the province → city → county tree."""


@unit.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--level", required=True,
              type=click.Choice(["province", "city", "county", "department"]))
@click.option("--parent", default=None, help="code of the parent unit")
@json_option
@api_command
def unit_add(code: str, name: str, level: str, parent: str | None, as_json: bool,
             api: ApiClient) -> None:
    """Add a unit."""
    body = {"code": code, "name": name, "level": level, "parent": parent}
    _show(api.request("POST", "/api/v1/units", body=body), as_json)


@unit.command("list")
@json_option
@api_command
def unit_list(as_json: bool, api: ApiClient) -> None:
    """List every unit."""
    units = api.request("GET", "/api/v1/units")
    emit_json(units) if as_json else table(units, UNIT_COLUMNS)


@unit.command("show")
@click.argument("code")
@json_option
@api_command
def unit_show(code: str, as_json: bool, api: ApiClient) -> None:
    """Show one unit."""
    _show(api.request("GET", f"/api/v1/units/{_seg(code)}"), as_json)


@unit.command("update")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--level", default=None,
              type=click.Choice(["province", "city", "county", "department"]))
@click.option("--parent", default=None, help="move under this unit")
@json_option
@api_command
def unit_update(code: str, name: str | None, level: str | None, parent: str | None,
                as_json: bool, api: ApiClient) -> None:
    """Change a unit's name, level or parent."""
    body = {k: v for k, v in {"name": name, "level": level, "parent": parent}.items()
            if v is not None}
    if not body:
        raise click.UsageError("nothing to change: give --name, --level or --parent")
    _show(api.request("PATCH", f"/api/v1/units/{_seg(code)}", body=body), as_json)


@unit.command("remove")
@click.argument("code")
@click.option("--cascade", is_flag=True, help="also remove its sub-units and their cameras")
@api_command
def unit_remove(code: str, cascade: bool, api: ApiClient) -> None:
    """Remove a unit (refused while it has sub-units or cameras, unless --cascade)."""
    result = api.request("DELETE", f"/api/v1/units/{_seg(code)}",
                         params={"cascade": cascade})
    click.echo(f"removed {result['units']} unit(s) and {result['cameras']} camera(s)")


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _show(value: dict[str, Any], as_json: bool) -> None:
    emit_json(value) if as_json else record(value)


# ---- cameras -------------------------------------------------------------------------------

def camera_options(fn: Any) -> Any:
    """The options of ``camera add|update``, one per field of the camera's table (the
    password only by --password-stdin, a prompt or CAMRELAY_CAMERA_PASSWORD)."""
    options = [option for f in CAMERA for option in _field_options(f)]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _field_options(f: Field) -> list[Any]:
    if f.kind == "secret":
        return [click.option("--password-stdin", is_flag=True,
                             help="read the camera password from standard input"),
                click.option("--ask-password", is_flag=True,
                             help="prompt for the camera password")]
    extra: dict[str, Any] = {"default": None, "help": f.help}
    if f.kind == "number":
        extra["type"] = float
    elif f.kind == "whole":
        extra["type"] = int
    elif f.kind == "choice":
        extra["type"] = click.Choice(f.choices)
    elif f.kind == "tags":
        extra = {"multiple": True, "help": f.help}
    return [click.option(f.cli_option, f.name, **extra)]


_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/@\s]*:[^/@\s]*@")


def _camera_body(values: dict[str, Any]) -> dict[str, Any]:
    stdin = values.pop("password_stdin")
    ask = values.pop("ask_password")
    tags = values.pop("tags")
    body = {k: v for k, v in values.items() if v is not None}
    for name in (f.name for f in CAMERA if f.kind == "url"):
        url = body.get(name)
        if isinstance(url, str) and _URL_PASSWORD.match(url):
            click.echo(f"camrelay: warning: the password in --{name.replace('_', '-')} is "
                       "visible to ps and kept in shell history; prefer --username with "
                       "--password-stdin or CAMRELAY_CAMERA_PASSWORD", err=True)
    if tags:
        body["tags"] = list(tags)
    if stdin or ask or __import__("os").environ.get("CAMRELAY_CAMERA_PASSWORD"):
        password = read_secret(stdin=stdin, env="CAMRELAY_CAMERA_PASSWORD",
                               prompt="Camera password")
        if password:
            body["password"] = password
    return body


@click.group()
def camera() -> None:
    """Cameras of the video resource catalogue."""


@camera.command("add")
@camera_options
@json_option
@api_command
def camera_add(as_json: bool, api: ApiClient, **values: Any) -> None:
    """Register a camera (passwords only via --password-stdin, a prompt or
    CAMRELAY_CAMERA_PASSWORD, never as an argument)."""
    body = _camera_body(values)
    for f in CAMERA:
        if f.required and f.name not in body:
            raise click.UsageError(f"{f.cli_option} is required")
    _show(api.request("POST", "/api/v1/cameras", body=body), as_json)


@camera.command("list")
@click.option("--unit", default=None, help="this unit and its subtree")
@click.option("--category", default=None)
@click.option("--status", default=None,
              type=click.Choice(["online", "offline", "fault", "unknown"]))
@click.option("--search", "text", default=None, help="text in name, location, id, vendor")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@api_command
def camera_list(unit: str | None, category: str | None, status: str | None, text: str | None,
                limit: int, offset: int, as_json: bool, api: ApiClient) -> None:
    """List cameras."""
    page = api.request("GET", "/api/v1/cameras", params={
        "unit": unit, "category": category, "status": status, "q": text, "limit": limit,
        "offset": offset})
    if as_json:
        emit_json(page)
        return
    table(page["items"], CAMERA_COLUMNS)
    shown = len(page["items"])
    if page["total"] > shown:
        click.echo(f"({shown} of {page['total']}; use --offset {offset + shown} for more)")


@camera.command("show")
@click.argument("camera_id", type=int)
@json_option
@api_command
def camera_show(camera_id: int, as_json: bool, api: ApiClient) -> None:
    """Show one camera."""
    _show(api.request("GET", f"/api/v1/cameras/{camera_id}"), as_json)


@camera.command("update")
@click.argument("camera_id", type=int)
@camera_options
@json_option
@api_command
def camera_update(camera_id: int, as_json: bool, api: ApiClient, **values: Any) -> None:
    """Change fields of a camera (only those given)."""
    body = _camera_body(values)
    if not body:
        raise click.UsageError("nothing to change")
    _show(api.request("PATCH", f"/api/v1/cameras/{camera_id}", body=body), as_json)


@camera.command("remove")
@click.argument("camera_id", type=int)
@api_command
def camera_remove(camera_id: int, api: ApiClient) -> None:
    """Remove a camera from the catalogue."""
    api.request("DELETE", f"/api/v1/cameras/{camera_id}")
    click.echo(f"removed camera {camera_id}")


# ---- import / export -----------------------------------------------------------------------

@click.group("catalog")
def catalog_group() -> None:
    """Import and export the video resource directory."""


@catalog_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "json"]), default="auto")
@click.option("--encoding", default=None, help="file encoding (default: UTF-8, else GB18030)")
@click.option("--skip-invalid", is_flag=True, help="import the valid rows even if some are bad")
@json_option
@api_command
def catalog_import(file: Path, fmt: str, encoding: str | None, skip_invalid: bool,
                   as_json: bool, api: ApiClient) -> None:
    """Import cameras; with any bad row nothing is imported unless --skip-invalid."""
    try:
        # csv and the catalogue's field rules load only for an import
        from camrelay.catalog.files import read_rows

        rows = read_rows(file.read_bytes(), fmt=fmt, encoding=encoding)
    except ValidationError as err:
        raise CamrelayError(f"{file}: {err.detail}") from None
    local = [{"line": line, "field": None, "error": f["__error__"]}
             for line, f in rows if "__error__" in f]
    send = [{"line": line, "fields": f} for line, f in rows if "__error__" not in f]
    if local and not skip_invalid:
        report: dict[str, Any] = {"imported": False, "added": 0, "updated": 0, "unchanged": 0,
                                  "errors": local}
    else:
        report = api.request("POST", "/api/v1/catalog/import",
                             body={"rows": send, "skip_invalid": skip_invalid})
        report["errors"] = sorted(report["errors"] + local, key=lambda e: e["line"])
    if as_json:
        emit_json(report)
    else:
        for error in report["errors"]:
            where = f" [{error['field']}]" if error.get("field") else ""
            click.echo(f"{file}:{error['line']}{where}: {error['error']}", err=True)
        if report["imported"]:
            click.echo(f"imported: {report['added']} added, {report['updated']} updated, "
                       f"{report['unchanged']} unchanged, {len(report['errors'])} skipped")
    if report["errors"] and not report["imported"]:
        raise CamrelayError(f"{len(report['errors'])} invalid row(s); nothing was imported "
                            "(fix them, or use --skip-invalid)")


@catalog_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write here instead of standard output")
@api_command
def catalog_export(fmt: str, output: Path | None, api: ApiClient) -> None:
    """Export the catalogue (UTF-8; stream addresses only where you manage the camera)."""
    data = api.request("GET", "/api/v1/catalog/export", params={"format": fmt}, raw=True)
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        output.write_bytes(data)
        click.echo(f"wrote {output}", err=True)


COMMANDS = [unit, camera, catalog_group]
