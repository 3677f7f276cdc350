"""``camrelay discover`` and ``camrelay camera refresh``: ONVIF from the technician's machine.

Discovery and reading run here (the camera network is where the technician is); with
``--register`` the devices read are added to the catalogue through the REST API, keyed
by ``external_id_for`` so a second run finds them again instead of duplicating them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from urllib.parse import urlsplit

import click

from camrelay.cli import catalog as catalog_cli
from camrelay.cli.client import ApiClient
from camrelay.cli.common import DEFAULT_URL, api_command, json_option, read_secret
from camrelay.cli.output import emit_json, record, table
from camrelay.errors import CamrelayError
from camrelay.onvif.device import read_device
from camrelay.onvif.discovery import DEFAULT_PROBE_PORT
from camrelay.onvif.identity import external_id_for
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget, FoundDevice
from camrelay.onvif.scan import scan

COLUMNS = ("address", "vendor", "model", "name", "main", "sub", "ptz", "external_id", "status")


def _row(found: FoundDevice) -> dict[str, Any]:
    report = found.report
    scopes = found.discovery.scopes if found.discovery else None

    def res(stream: Any) -> str | None:
        return f"{stream.profile.width}x{stream.profile.height}" if stream else None

    return {
        "address": f"{found.host}:{found.port}",
        "vendor": report.info.manufacturer if report else None,
        "model": report.info.model if report else (scopes.hardware if scopes else None),
        "name": scopes.name if scopes else None,
        "main": res(report.main) if report else None,
        "sub": res(report.sub) if report else None,
        "ptz": report.ptz if report else None,
        "external_id": external_id_for(report) if report else None,
        "status": "ok" if report else f"{found.error_reason}: {found.error}",
    }


def _json(found: FoundDevice) -> dict[str, Any]:
    out = dataclasses.asdict(found)
    out["external_id"] = external_id_for(found.report) if found.report else None
    return out


def _camera_fields(report: DeviceReport, name: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "external_id": external_id_for(report),
        "name": name or f"{report.info.manufacturer} {report.info.model}".strip() or
        report.address,
        "vendor": report.info.manufacturer or None,
        "model": report.info.model or None,
        "onvif_url": f"http://{report.address}/onvif/device_service",
        "main_url": report.main.uri if report.main else None,
        "sub_url": report.sub.uri if report.sub else None,
    }
    if report.ptz:
        fields["camera_type"] = "ptz"
    return {k: v for k, v in fields.items() if v is not None}


@click.command("discover")
@click.option("--cidr", "cidrs", multiple=True, help="probe every address of this range")
@click.option("--host", "hosts", multiple=True, metavar="HOST[:PORT]",
              help="probe and read this device (PORT: its ONVIF HTTP port, default 80)")
@click.option("--multicast", is_flag=True, help="multicast probe on the local network")
@click.option("--interface", default=None, metavar="ADDR",
              help="local IPv4 address of the interface to multicast from")
@click.option("--probe-port", type=click.IntRange(1, 65535), default=DEFAULT_PROBE_PORT,
              show_default=True, help="WS-Discovery port")
@click.option("--user", default=None, help="camera user name (to read the devices)")
@click.option("--password-stdin", is_flag=True, help="read the camera password from stdin")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="seconds to wait for discovery answers")
@click.option("--concurrency", type=click.IntRange(1, 256), default=32, show_default=True,
              help="devices read at once")
@click.option("--unit", default=None, help="with --register: unit code for new cameras")
@click.option("--category", default=None, help="with --register: category for new cameras")
@click.option("--register", is_flag=True, help="add the devices read to the catalogue")
@click.option("--url", envvar="CAMRELAY_URL", default=DEFAULT_URL, show_default=True,
              help="camrelay server for --register (env CAMRELAY_URL)")
@click.option("--token", envvar="CAMRELAY_TOKEN", default=None,
              help="API token for --register (env CAMRELAY_TOKEN)")
@json_option
def discover(cidrs: tuple[str, ...], hosts: tuple[str, ...], multicast: bool,
             interface: str | None, probe_port: int, user: str | None, password_stdin: bool,
             timeout: float, concurrency: int, unit: str | None, category: str | None,
             register: bool, url: str, token: str | None, as_json: bool) -> None:
    """Find ONVIF cameras (WS-Discovery) and read them; optionally register them."""
    if not (cidrs or hosts or multicast):
        raise click.UsageError("say where to look: --cidr, --host or --multicast")
    if register and not (unit and category and token):
        raise click.UsageError("--register needs --unit, --category and an API token "
                               "(CAMRELAY_TOKEN)")
    credentials = None
    password = None
    if user:
        password = read_secret(stdin=password_stdin, env="CAMRELAY_CAMERA_PASSWORD",
                               prompt="Camera password")
        credentials = Credentials(user, password or "")
    try:
        found = asyncio.run(scan(cidrs, hosts, multicast, probe_port, credentials, concurrency,
                                 timeout, interface=interface))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    registered: dict[str, Any] = {}
    if register:
        api = ApiClient(url, token)
        for item in found:
            if item.report is None:
                continue
            name = item.discovery.scopes.name if item.discovery else None
            fields = _camera_fields(item.report, name)
            existing = api.request("GET", "/api/v1/cameras",
                                   params={"external_id": fields["external_id"], "limit": 1})
            if existing["items"]:
                camera_id = existing["items"][0]["id"]
                registered[fields["external_id"]] = f"already camera {camera_id}"
                continue
            body = {**fields, "unit": unit, "category": category}
            if credentials is not None:
                body["username"] = credentials.username
                if password:
                    body["password"] = password
            created = api.request("POST", "/api/v1/cameras", body=body)
            registered[fields["external_id"]] = f"added as camera {created['id']}"
    if as_json:
        emit_json([{**_json(f), "registered": registered.get(_json(f)["external_id"] or "")}
                   for f in found])
    else:
        rows = [_row(f) for f in found]
        for row in rows:
            if row["external_id"] in registered:
                row["status"] = registered[row["external_id"]]
        table(rows, COLUMNS)
    if found and not any(f.ok for f in found):
        raise CamrelayError("no device could be read (see the status column)")


@click.command("refresh")
@click.argument("camera_id", type=int)
@click.option("--password-stdin", is_flag=True, help="read the camera password from stdin")
@click.option("--update", is_flag=True, help="write vendor, model and stream URLs back")
@json_option
@api_command
def camera_refresh(camera_id: int, password_stdin: bool, update: bool, as_json: bool,
                   api: ApiClient) -> None:
    """Read a registered camera over ONVIF again (at its registered address)."""
    cam = api.request("GET", f"/api/v1/cameras/{camera_id}")
    onvif_url = cam.get("onvif_url")
    if not onvif_url:
        raise CamrelayError(f"camera {camera_id} has no ONVIF address (set --onvif-url)")
    parts = urlsplit(onvif_url)
    if not parts.hostname:
        raise CamrelayError(f"camera {camera_id}: the ONVIF address is not a URL")
    credentials = None
    if cam.get("username"):
        password = read_secret(stdin=password_stdin, env="CAMRELAY_CAMERA_PASSWORD",
                               prompt="Camera password")
        credentials = Credentials(cam["username"], password or "")
    target = DeviceTarget(parts.hostname, parts.port or 80, credentials)
    report = asyncio.run(read_device(target))
    fields = _camera_fields(report, None)
    fields.pop("name", None)
    fields.pop("onvif_url", None)
    if fields.get("external_id") == cam.get("external_id"):
        fields.pop("external_id")
    elif update:
        click.echo(f"note: the device identifies as {fields['external_id']}, the catalogue "
                   f"says {cam.get('external_id')}; keeping the catalogue's id", err=True)
        fields.pop("external_id")
    if update:
        cam = api.request("PATCH", f"/api/v1/cameras/{camera_id}", body=fields)
    out = {"camera": camera_id, **_json(FoundDevice(target.host, target.port, None, report)),
           "updated": update}
    if as_json:
        emit_json(out)
    else:
        record({**_row(FoundDevice(target.host, target.port, None, report)),
                "clock_skew_s": round(report.clock_skew), "updated": update})


catalog_cli.camera.add_command(camera_refresh)

COMMANDS = [discover]
