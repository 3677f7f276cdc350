"""``camrelay discover`` and ``camrelay camera refresh``: ONVIF from the technician's machine.

Discovery and reading run here (the camera network is where the technician is); with
``--register`` the devices read are added to the catalogue through the REST API, keyed
by ``external_id_for`` so a second run finds them again instead of duplicating them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from camrelay.cli import catalog as catalog_cli
from camrelay.cli.client import ApiClient
from camrelay.cli.common import DEFAULT_URL, api_command, json_option, read_secret
from camrelay.cli.output import emit_json, record, table
from camrelay.errors import CamrelayError
from camrelay.onvif.identity import external_id_for, same_stream
from camrelay.onvif.models import DEFAULT_PROBE_PORT, Credentials, DeviceReport, FoundDevice

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
@click.option("--password-stdin", is_flag=True, help="read the camera password from stdin "
              "(else env CAMRELAY_CAMERA_PASSWORD, else a prompt)")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="seconds to wait for discovery answers")
@click.option("--concurrency", type=click.IntRange(1, 256), default=32, show_default=True,
              help="devices read at once")
@click.option("--unit", default=None, help="with --register: unit code for new cameras")
@click.option("--category", default="other", show_default=True,
              help="with --register: category for new cameras")
@click.option("--register", is_flag=True, help="add the devices read to the catalogue "
              "(or update the cameras they already are)")
@click.option("--url", envvar="CAMRELAY_URL", default=DEFAULT_URL, show_default=True,
              help="camrelay server for --register (env CAMRELAY_URL)")
@click.option("--token", envvar="CAMRELAY_TOKEN", default=None,
              help="API token for --register (env CAMRELAY_TOKEN)")
@json_option
def discover(cidrs: tuple[str, ...], hosts: tuple[str, ...], multicast: bool,
             interface: str | None, probe_port: int, user: str | None, password_stdin: bool,
             timeout: float, concurrency: int, unit: str | None, category: str,
             register: bool, url: str, token: str | None, as_json: bool) -> None:
    """Find ONVIF cameras (WS-Discovery) and read them; optionally register them."""
    if not (cidrs or hosts or multicast):
        raise click.UsageError("say where to look: --cidr, --host or --multicast")
    if register and not (unit and token):
        raise click.UsageError("--register needs --unit and an API token (CAMRELAY_TOKEN)")
    credentials = None
    password = None
    if user:
        password = read_secret(stdin=password_stdin, env="CAMRELAY_CAMERA_PASSWORD",
                               prompt="Camera password")
        credentials = Credentials(user, password or "")
    # asyncio and the ONVIF client (aiohttp; zeep on first use): ~0.1 s that `--help` and
    # the other commands must not pay (scripts/bench/cli_start.py)
    import asyncio

    from camrelay.onvif.scan import scan

    try:
        found = asyncio.run(scan(cidrs, hosts, multicast, probe_port, credentials, concurrency,
                                 timeout, interface=interface))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    registered: dict[str, str] = {}
    if register:
        assert unit is not None
        registrar = Registrar(ApiClient(url, token), unit, category, credentials)
        for item in found:
            if item.report is not None:
                name = item.discovery.scopes.name if item.discovery else None
                registered[external_id_for(item.report)] = registrar.register(item.report,
                                                                             name)
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


class Registrar:
    """Adds devices to the catalogue, or updates the camera each one already is.

    A device is the same camera as a catalogue entry with its ONVIF external id, else as
    one (imported from CSV, typed in) whose main or sub stream has the same host, port
    and path -- among the cameras this token manages.  Matched cameras keep their id,
    external id, name, unit and category.
    """

    UPDATED = ("vendor", "model", "onvif_url", "main_url", "sub_url")

    def __init__(self, api: ApiClient, unit: str, category: str,
                 credentials: Credentials | None) -> None:
        self.api = api
        self.unit = unit
        self.category = category
        self.credentials = credentials
        self._managed: list[dict[str, Any]] | None = None

    def _by_stream(self, fields: dict[str, Any]) -> dict[str, Any] | None:
        if self._managed is None:
            self._managed = []
            offset = 0
            while True:
                page = self.api.request("GET", "/api/v1/cameras",
                                        params={"limit": 1000, "offset": offset})
                self._managed += [c for c in page["items"] if "manage" in c.get("rights", [])]
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    break
        ours = [fields[k] for k in ("main_url", "sub_url") if fields.get(k)]
        for camera in self._managed:
            theirs = [camera[k] for k in ("main_url", "sub_url") if camera.get(k)]
            if any(same_stream(a, b) for a in ours for b in theirs):
                return camera
        return None

    def register(self, report: DeviceReport, name: str | None) -> str:
        fields = _camera_fields(report, name)
        found = self.api.request("GET", "/api/v1/cameras",
                                 params={"external_id": fields["external_id"], "limit": 1})
        how = "by ONVIF identity"
        camera = found["items"][0] if found["items"] else None
        if camera is None:
            camera = self._by_stream(fields)
            how = f"by stream address (external id {camera['external_id']})" if camera else ""
        creds: dict[str, Any] = {}
        if self.credentials is not None:
            creds["username"] = self.credentials.username
            if self.credentials.password:
                creds["password"] = self.credentials.password
        if camera is None:
            body = {**fields, **creds, "unit": self.unit, "category": self.category}
            created = self.api.request("POST", "/api/v1/cameras", body=body)
            if self._managed is not None:
                self._managed.append(created)
            return f"added as camera {created['id']}"
        changes = {k: fields[k] for k in self.UPDATED
                   if k in fields and camera.get(k) != fields[k]}
        if creds.get("username") is not None and camera.get("username") != creds["username"]:
            changes["username"] = creds["username"]
        if "password" in creds and ("username" in changes or not camera.get("has_password")):
            changes["password"] = creds["password"]
        if not changes:
            return f"unchanged: camera {camera['id']} (matched {how})"
        self.api.request("PATCH", f"/api/v1/cameras/{camera['id']}", body=changes)
        shown = ", ".join(sorted(changes))
        return f"updated camera {camera['id']} (matched {how}): {shown}"


@click.command("refresh")
@click.argument("camera_id", type=int)
@json_option
@api_command
def camera_refresh(camera_id: int, as_json: bool, api: ApiClient) -> None:
    """Read a registered camera over ONVIF again and update what changed.

    The server reads it, at its registered ONVIF address with the stored credentials
    (no password needed here); vendor, model and the main and sub stream URLs are updated.
    """
    out = api.request("POST", f"/api/v1/cameras/{camera_id}/onvif/refresh")
    if as_json:
        emit_json(out)
        return
    device = out["device"]
    record({"camera": camera_id, "address": device["address"], "vendor": device["vendor"],
            "model": device["model"], "serial": device["serial"],
            "firmware": device["firmware"], "main": device["main"], "sub": device["sub"],
            "ptz": device["ptz"], "clock_skew_s": device["clock_skew_s"],
            "changed": ", ".join(out["changed"]) or "nothing"})


catalog_cli.camera.add_command(camera_refresh)

COMMANDS = [discover]


# ---- PTZ from the hall --------------------------------------------------------------------

@click.group("ptz")
def ptz_group() -> None:
    """Steer PTZ cameras (needs the PTZ right: jurisdiction, a grant or emergency access)."""


@ptz_group.command("move")
@click.argument("camera_id", type=int)
@click.option("--pan", type=click.FloatRange(-1, 1), default=0.0, show_default=True)
@click.option("--tilt", type=click.FloatRange(-1, 1), default=0.0, show_default=True)
@click.option("--zoom", type=click.FloatRange(-1, 1), default=0.0, show_default=True)
@click.option("--seconds", type=click.FloatRange(0.1, 60), default=None,
              help="stop by itself after this long")
@json_option
@api_command
def ptz_move(camera_id: int, pan: float, tilt: float, zoom: float, seconds: float | None,
             as_json: bool, api: ApiClient) -> None:
    """Continuous move with pan/tilt/zoom velocities in [-1, 1]."""
    body: dict[str, Any] = {"pan": pan, "tilt": tilt, "zoom": zoom}
    if seconds is not None:
        body["timeout"] = seconds
    _ptz_show(api.request("POST", f"/api/v1/cameras/{camera_id}/ptz/move", body=body), as_json)


@ptz_group.command("stop")
@click.argument("camera_id", type=int)
@json_option
@api_command
def ptz_stop(camera_id: int, as_json: bool, api: ApiClient) -> None:
    """Stop moving."""
    _ptz_show(api.request("POST", f"/api/v1/cameras/{camera_id}/ptz/stop"), as_json)


@ptz_group.command("presets")
@click.argument("camera_id", type=int)
@json_option
@api_command
def ptz_presets(camera_id: int, as_json: bool, api: ApiClient) -> None:
    """List the camera's presets."""
    presets = api.request("GET", f"/api/v1/cameras/{camera_id}/ptz/presets")
    emit_json(presets) if as_json else table(presets, ("token", "name"))


@ptz_group.command("goto")
@click.argument("camera_id", type=int)
@click.argument("preset")
@json_option
@api_command
def ptz_goto(camera_id: int, preset: str, as_json: bool, api: ApiClient) -> None:
    """Go to a preset (its token, as `ptz presets` lists)."""
    from urllib.parse import quote

    _ptz_show(api.request("POST", f"/api/v1/cameras/{camera_id}/ptz/presets/"
                                  f"{quote(preset, safe='')}/goto"), as_json)


@ptz_group.command("lock")
@click.argument("camera_id", type=int)
@click.option("--release", is_flag=True, help="give up control (holder or administrator)")
@json_option
@api_command
def ptz_lock(camera_id: int, release: bool, as_json: bool, api: ApiClient) -> None:
    """Show who controls the camera (or release control)."""
    method = "DELETE" if release else "GET"
    _ptz_show(api.request(method, f"/api/v1/cameras/{camera_id}/ptz/lock"), as_json)


def _ptz_show(value: Any, as_json: bool) -> None:
    if as_json:
        emit_json(value)
    elif isinstance(value, dict):
        record(value)
    else:
        click.echo(str(value))


COMMANDS.append(ptz_group)
