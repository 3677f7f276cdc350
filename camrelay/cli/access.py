"""``camrelay user|token|grant|emergency|audit …``: accounts, grants, emergency access and
the access log, all through the REST API (`user set-password --local` also on the store
itself)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from camrelay.cli.admin import config_option, data_dir_option
from camrelay.cli.client import ApiClient
from camrelay.cli.common import api_command, api_command_or_local, json_option, read_secret
from camrelay.cli.journal import reanchor
from camrelay.cli.output import emit_json, record, table
from camrelay.errors import CamrelayError
from camrelay.roles import Role

ROLES = [role.value for role in Role]
USER_COLUMNS = ("username", "unit", "role", "disabled", "service", "display_name")
TOKEN_COLUMNS = ("id", "user", "name", "kind", "created_at", "expires_at", "revoked_at")
GRANT_COLUMNS = ("id", "status", "grantee_unit", "grantee_user", "cameras", "category",
                 "unit_scope", "actions", "valid_until", "requested_by", "decided_by", "purpose")
EMERGENCY_COLUMNS = ("id", "status", "opened_by", "unit", "incident", "reason", "expires_at",
                     "confirmed_by")
AUDIT_COLUMNS = ("id", "kind", "action", "user", "unit", "camera_id", "purpose", "approver",
                 "start", "end", "duration_s", "client_address", "result", "reason",
                 "close_reason")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _show(value: dict[str, Any], as_json: bool) -> None:
    emit_json(value) if as_json else record(value)


def _iso_time(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.UsageError(f"{option}: expected an ISO time such as "
                               "2026-10-01T08:00:00+08:00") from None
    if parsed.tzinfo is None:
        raise click.UsageError(f"{option}: give a UTC offset (+08:00 or Z)")
    return parsed.isoformat()


_DURATION = re.compile(r"^(\d+)([hdw])$")


def _expiry(expires: str | None) -> dict[str, Any]:
    """``--expires`` as the API takes it: 12h, 30d, 2w (``expires_in_hours``), an ISO time
    (``expires_at``, exactly that time), or ``never`` (neither)."""
    if expires is None or expires == "never":
        return {}
    match = _DURATION.match(expires)
    if match:
        return {"expires_in_hours":
                int(match.group(1)) * {"h": 1, "d": 24, "w": 168}[match.group(2)]}
    when = _iso_time(expires, "--expires")
    assert when is not None
    if datetime.fromisoformat(when) <= datetime.now(UTC):
        raise click.UsageError("--expires: that time has passed")
    return {"expires_at": when}


# ---- users ---------------------------------------------------------------------------------

@click.group()
def user() -> None:
    """User accounts (people and service accounts)."""


@user.command("add")
@click.argument("name")
@click.option("--unit", required=True, help="unit code")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--display-name", default=None)
@click.option("--service", is_flag=True,
              help="a service account (video wall, script): no password, API tokens only")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@json_option
@api_command
def user_add(name: str, unit: str, role: str, display_name: str | None, service: bool,
             password_stdin: bool, as_json: bool, api: ApiClient) -> None:
    """Add a user (the password from stdin, CAMRELAY_PASSWORD or a prompt)."""
    password = None
    if not service:
        password = read_secret(stdin=password_stdin, env="CAMRELAY_PASSWORD",
                               prompt=f"Password for {name}", confirm=True)
        if not password:
            raise click.UsageError("no password: use --password-stdin, CAMRELAY_PASSWORD or a "
                                   "terminal (or --service for a service account)")
    body = {"username": name, "unit": unit, "role": role, "display_name": display_name,
            "service": service, "password": password}
    _show(api.request("POST", "/api/v1/users", body=body), as_json)


def _set(api: ApiClient, name: str, body: dict[str, Any], as_json: bool, done: str) -> None:
    result = api.request("PATCH", f"/api/v1/users/{_seg(name)}", body=body)
    if as_json:
        emit_json(result)
    else:
        click.echo(done)


@user.command("disable")
@click.argument("name")
@json_option
@api_command
def user_disable(name: str, as_json: bool, api: ApiClient) -> None:
    """Disable a user: their tokens stop working and their live views are cut."""
    _set(api, name, {"disabled": True}, as_json, f"disabled {name}; live views were cut")


@user.command("enable")
@click.argument("name")
@json_option
@api_command
def user_enable(name: str, as_json: bool, api: ApiClient) -> None:
    """Enable a disabled user."""
    _set(api, name, {"disabled": False}, as_json, f"enabled {name}")


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@json_option
@api_command
def user_set_role(name: str, role: str, as_json: bool, api: ApiClient) -> None:
    """Change a user's role (views the new role does not allow are cut)."""
    _set(api, name, {"role": role}, as_json, f"{name} is now {role}")


@user.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password(s) from standard "
              "input: for your own, the current one on the first line, the new on the next")
@click.option("--local", is_flag=True, help="on the server's machine: change it in the store "
              "directly (when nobody can sign in); every login session of NAME ends")
@config_option
@data_dir_option
@json_option
@api_command_or_local
def user_set_password(name: str, password_stdin: bool, local: bool, config: Path | None,
                      data_dir: Path | None, as_json: bool, api: ApiClient | None) -> None:
    """Set a new password: your own (with the current one), or as an administrator that of
    a user of your subtree. The user's other login sessions end; API tokens stay."""
    if local:
        new = _new_password(name, password_stdin)
        from camrelay.cli import local as on_store  # the store, the journal: cli/admin.py

        result = on_store.set_password_locally(config, data_dir, name, new)
    elif api is None:
        raise click.UsageError("no API token: set CAMRELAY_TOKEN (or --token), or on the "
                               "server's machine use --local")
    else:
        body: dict[str, Any] = {}
        if api.request("GET", "/api/v1/auth/me")["username"] == name:
            old = read_secret(stdin=password_stdin, env=None, prompt="Current password")
            if not old:
                raise click.UsageError("no current password: use --password-stdin or a "
                                       "terminal")
            body["old_password"] = old
        body["password"] = _new_password(name, password_stdin)
        result = api.request("PUT", f"/api/v1/users/{_seg(name)}/password", body=body)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"new password set for {name}; other login sessions ended: "
                   f"{result['sessions_ended']}")


def _new_password(name: str, stdin: bool) -> str:
    password = read_secret(stdin=stdin, env="CAMRELAY_PASSWORD",
                           prompt=f"New password for {name}", confirm=True)
    if not password:
        raise click.UsageError("no password: use --password-stdin, CAMRELAY_PASSWORD or a "
                               "terminal")
    return password


@user.command("list")
@json_option
@api_command
def user_list(as_json: bool, api: ApiClient) -> None:
    """List the users of your subtree."""
    users = api.request("GET", "/api/v1/users")
    emit_json(users) if as_json else table(users, USER_COLUMNS)


# ---- tokens --------------------------------------------------------------------------------

@click.group()
def token() -> None:
    """API tokens (for scripts and video-wall controllers)."""


@token.command("create")
@click.option("--user", "username", required=True)
@click.option("--name", default=None, help="what the token is for")
@click.option("--expires", default=None,
              help="12h, 30d, 2w, an ISO time, or never (default: never)")
@json_option
@api_command
def token_create(username: str, name: str | None, expires: str | None, as_json: bool,
                 api: ApiClient) -> None:
    """Create an API token and print it once."""
    body = {"user": username, "name": name, **_expiry(expires)}
    created = api.request("POST", "/api/v1/tokens", body=body)
    if as_json:
        emit_json(created)
        return
    click.echo(f"token {created['id']} for {created['user']} (expires: "
               f"{created['expires_at'] or 'never'}); shown once, keep it:", err=True)
    click.echo(created["token"])


@token.command("revoke")
@click.argument("token_id", type=int)
@api_command
def token_revoke(token_id: int, api: ApiClient) -> None:
    """Revoke a token: it stops working and its live views are cut at once."""
    api.request("DELETE", f"/api/v1/tokens/{token_id}")
    click.echo(f"revoked token {token_id}")


@token.command("list")
@click.option("--user", "username", default=None)
@json_option
@api_command
def token_list(username: str | None, as_json: bool, api: ApiClient) -> None:
    """List tokens (never their secrets)."""
    tokens = api.request("GET", "/api/v1/tokens", params={"user": username})
    emit_json(tokens) if as_json else table(tokens, TOKEN_COLUMNS)


# ---- grants --------------------------------------------------------------------------------

@click.group()
def grant() -> None:
    """Grants: applications for access beyond your jurisdiction, and their approval."""


@grant.command("request")
@click.option("--to-unit", default=None, help="grantee unit (its users)")
@click.option("--to-user", default=None, help="grantee user")
@click.option("--include-subunits", is_flag=True, help="the grantee unit's sub-units too")
@click.option("--camera", "cameras", type=int, multiple=True, help="camera id (repeatable)")
@click.option("--category", default=None, help="every camera of this category …")
@click.option("--unit-scope", default=None, help="… of this unit and its subtree")
@click.option("--actions", default="live", show_default=True, help="live,snapshot,ptz")
@click.option("--purpose", required=True)
@click.option("--from", "valid_from", default=None, help="ISO time (default: now)")
@click.option("--until", "valid_until", required=True, help="ISO time")
@json_option
@api_command
def grant_request(to_unit: str | None, to_user: str | None, include_subunits: bool,
                  cameras: tuple[int, ...], category: str | None, unit_scope: str | None,
                  actions: str, purpose: str, valid_from: str | None, valid_until: str,
                  as_json: bool, api: ApiClient) -> None:
    """Apply for a grant; an approver of the platform decides it."""
    if (to_unit is None) == (to_user is None):
        raise click.UsageError("give exactly one of --to-unit or --to-user")
    if not cameras and category is None and unit_scope is None:
        raise click.UsageError("give a scope: --camera, --category and/or --unit-scope")
    body = {"grantee_unit": to_unit, "grantee_user": to_user,
            "include_subunits": include_subunits, "cameras": list(cameras),
            "category": category, "unit_scope": unit_scope,
            "actions": [a.strip() for a in actions.split(",") if a.strip()],
            "purpose": purpose, "valid_from": _iso_time(valid_from, "--from"),
            "valid_until": _iso_time(valid_until, "--until")}
    _show(api.request("POST", "/api/v1/grants", body=body), as_json)


def _decide(api: ApiClient, grant_id: int, verb: str, body: dict[str, Any],
            as_json: bool) -> None:
    result = api.request("POST", f"/api/v1/grants/{grant_id}/{verb}", body=body)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"grant {grant_id}: {result['status']}")


@grant.command("approve")
@click.argument("grant_id", type=int)
@click.option("--comment", default=None)
@json_option
@api_command
def grant_approve(grant_id: int, comment: str | None, as_json: bool, api: ApiClient) -> None:
    """Approve a pending grant (not your own request)."""
    _decide(api, grant_id, "approve", {"comment": comment}, as_json)


@grant.command("reject")
@click.argument("grant_id", type=int)
@click.option("--comment", default=None)
@json_option
@api_command
def grant_reject(grant_id: int, comment: str | None, as_json: bool, api: ApiClient) -> None:
    """Reject a pending grant."""
    _decide(api, grant_id, "reject", {"comment": comment}, as_json)


@grant.command("revoke")
@click.argument("grant_id", type=int)
@click.option("--reason", default=None)
@json_option
@api_command
def grant_revoke(grant_id: int, reason: str | None, as_json: bool, api: ApiClient) -> None:
    """Revoke a grant: its live views are cut at once."""
    _decide(api, grant_id, "revoke", {"reason": reason}, as_json)


@grant.command("list")
@click.option("--status", default=None,
              type=click.Choice(["pending", "active", "scheduled", "expired", "rejected",
                                 "revoked"]))
@json_option
@api_command
def grant_list(status: str | None, as_json: bool, api: ApiClient) -> None:
    """List grants you may see."""
    grants = api.request("GET", "/api/v1/grants", params={"status": status})
    emit_json(grants) if as_json else table(grants, GRANT_COLUMNS)


@grant.command("show")
@click.argument("grant_id", type=int)
@json_option
@api_command
def grant_show(grant_id: int, as_json: bool, api: ApiClient) -> None:
    """Show one grant."""
    _show(api.request("GET", f"/api/v1/grants/{grant_id}"), as_json)


# ---- emergency -----------------------------------------------------------------------------

@click.group()
def emergency() -> None:
    """Emergency access: at once for an incident, confirmed or revoked afterwards."""


@emergency.command("open")
@click.option("--reason", required=True)
@click.option("--incident", required=True, help="incident reference")
@click.option("--camera", "cameras", type=int, multiple=True, help="camera id (repeatable)")
@click.option("--unit-scope", default=None)
@click.option("--category", default=None)
@click.option("--near", default=None, help="LAT,LON of the incident")
@click.option("--radius-km", type=float, default=None)
@click.option("--hours", type=float, default=None, help="default: the configured 2 hours")
@json_option
@api_command
def emergency_open(reason: str, incident: str, cameras: tuple[int, ...],
                   unit_scope: str | None, category: str | None, near: str | None,
                   radius_km: float | None, hours: float | None, as_json: bool,
                   api: ApiClient) -> None:
    """Open emergency access now (announced to the approvers)."""
    body: dict[str, Any] = {"reason": reason, "incident": incident, "cameras": list(cameras),
                            "unit_scope": unit_scope, "category": category, "hours": hours}
    if (near is None) != (radius_km is None):
        raise click.UsageError("--near and --radius-km go together")
    if near is not None:
        try:
            lat, lon = (float(v) for v in near.split(","))
        except ValueError:
            raise click.UsageError("--near: expected LAT,LON such as 30.27,120.15") from None
        body["near"] = {"latitude": lat, "longitude": lon, "radius_km": radius_km}
    _show(api.request("POST", "/api/v1/emergencies", body=body), as_json)


@emergency.command("list")
@click.option("--active", is_flag=True, help="only open or confirmed ones")
@json_option
@api_command
def emergency_list(active: bool, as_json: bool, api: ApiClient) -> None:
    """List emergency access."""
    found = api.request("GET", "/api/v1/emergencies", params={"active": active or None})
    emit_json(found) if as_json else table(found, EMERGENCY_COLUMNS)


@emergency.command("confirm")
@click.argument("emergency_id", type=int)
@click.option("--comment", default=None)
@api_command
def emergency_confirm(emergency_id: int, comment: str | None, api: ApiClient) -> None:
    """Confirm emergency access afterwards (approvers)."""
    result = api.request("POST", f"/api/v1/emergencies/{emergency_id}/confirm",
                         body={"comment": comment})
    click.echo(f"emergency {emergency_id}: {result['status']}")


@emergency.command("revoke")
@click.argument("emergency_id", type=int)
@click.option("--comment", default=None)
@api_command
def emergency_revoke(emergency_id: int, comment: str | None, api: ApiClient) -> None:
    """Revoke emergency access: its live views are cut at once."""
    result = api.request("POST", f"/api/v1/emergencies/{emergency_id}/revoke",
                         body={"comment": comment})
    click.echo(f"emergency {emergency_id}: {result['status']}")


@emergency.command("notifications")
@json_option
@api_command
def emergency_notifications(as_json: bool, api: ApiClient) -> None:
    """Announcements for approvers."""
    notes = api.request("GET", "/api/v1/notifications")
    emit_json(notes) if as_json else table(notes, ("id", "created_at", "kind", "message"))


# ---- audit ---------------------------------------------------------------------------------

def _audit_params(camera: int | None, username: str | None, unit: str | None,
                  since: str | None, until: str | None, result: str | None,
                  kind: str | None) -> dict[str, Any]:
    return {"camera": camera, "user": username, "unit": unit,
            "since": _iso_time(since, "--since"), "until": _iso_time(until, "--until"),
            "result": result, "kind": kind}


def audit_filters(fn: Any) -> Any:
    for option in reversed([
        click.option("--camera", type=int, default=None),
        click.option("--user", "username", default=None),
        click.option("--unit", default=None, help="the user's or the camera's unit"),
        click.option("--since", default=None, help="ISO time"),
        click.option("--until", default=None, help="ISO time"),
        click.option("--result", type=click.Choice(["allowed", "denied", "ok"]), default=None),
        click.option("--kind", type=click.Choice(["view", "denied", "admin", "auth",
                                                  "journal"]), default=None),
    ]):
        fn = option(fn)
    return fn


@click.group()
def audit() -> None:
    """The access log: who watched what, when, why, approved by whom."""


@audit.command("list")
@audit_filters
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@api_command
def audit_list(camera: int | None, username: str | None, unit: str | None, since: str | None,
               until: str | None, result: str | None, kind: str | None, limit: int,
               offset: int, as_json: bool, api: ApiClient) -> None:
    """List access records, newest first."""
    params = _audit_params(camera, username, unit, since, until, result, kind)
    records = api.request("GET", "/api/v1/audit", params={**params, "limit": limit,
                                                          "offset": offset})
    emit_json(records) if as_json else table(records, AUDIT_COLUMNS)


@audit.command("export")
@audit_filters
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: standard output)")
@api_command
def audit_export(camera: int | None, username: str | None, unit: str | None,
                 since: str | None, until: str | None, result: str | None, kind: str | None,
                 output: Path | None, api: ApiClient) -> None:
    """Export access records as CSV (the export itself is journalled)."""
    params = _audit_params(camera, username, unit, since, until, result, kind)
    data = api.request("GET", "/api/v1/audit", params={**params, "format": "csv"}, raw=True)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        rows = data.count(b"\n") - 1
        click.echo(f"wrote {rows} record(s) to {output}", err=True)


@audit.command("verify")
@click.option("--local", is_flag=True,
              help="check the store and the anchor on this machine directly, with no server "
                   "(works while the server refuses to start)")
@config_option
@data_dir_option
@json_option
@api_command_or_local
def audit_verify(local: bool, config: Path | None, data_dir: Path | None, as_json: bool,
                 api: ApiClient | None) -> None:
    """Check the journal's HMAC chain and anchor; exit 1 if anything was edited, deleted,
    inserted, truncated or cut off."""
    if local:
        from camrelay.cli import local as on_store  # the store, the journal: cli/admin.py

        report = on_store.verify_local(config, data_dir)
    elif api is None:
        raise click.UsageError("no API token: set CAMRELAY_TOKEN (or --token), or on the "
                               "server's machine use --local")
    else:
        report = api.request("GET", "/api/v1/audit/verify")
    if as_json:
        emit_json(report)
    elif report["ok"]:
        click.echo(f"ok: {report['events']} event(s), chain, head and anchor intact")
    else:
        for problem in report["problems"]:
            where = "-" if problem.get("seq") is None else problem["seq"]
            click.echo(f"event {where}: {problem['problem']}")
    if not report["ok"]:
        raise CamrelayError(f"the access log fails verification: {len(report['problems'])} "
                            "problem(s)")


audit.add_command(reanchor)


COMMANDS = [user, token, grant, emergency, audit]
