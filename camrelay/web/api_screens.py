"""Wall screens (上墙) over the API: a desk sends a layout or a tour to a named screen.

A screen is registered by an administrator for a unit of its subtree, with the service
account the screen's page signs in as (``/screen?screen=<name>``, the token in the
address's fragment: see README "Wall screens").  The administrators and operators whose
subtree holds the screen's unit drive it (``POST /api/v1/screens/{id}/show``); the
server keeps what it shows and who sent it, journals the change as an administrative
action and pushes it on the live channel (``screen.show``) to the screen's account and
the screen unit's users.  The screen plays only what its own account may watch.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.catalog.walls import Screen, ScreenContent, Screens
from camrelay.errors import AccessDenied, NotFound, ValidationError
from camrelay.events import Event
from camrelay.web.api_views import CAMERAS, ID, LAYOUT, NAME, SECONDS, checked, visible_view
from camrelay.web.context import principal
from camrelay.web.keys import ACCOUNTS_KEY, BODY_KEY, CATALOG_KEY, EVENTS_KEY, POLICY_KEY, STORE_KEY
from camrelay.web.openapi import Api, path_param
from camrelay.web.params import code_schema

api = Api()

DRIVERS = (Role.ADMINISTRATOR, Role.OPERATOR)
SCREEN_NAME = {"type": "string", "minLength": 1, "maxLength": 64}

CONTENT = api.schema("ScreenContent", {
    "type": "object", "required": ["kind", "layout", "cameras"],
    "properties": {"kind": {"type": "string", "enum": ["layout", "tour"]}, "layout": LAYOUT,
                   "cameras": CAMERAS, "seconds": {"type": ["integer", "null"]},
                   "name": {"type": ["string", "null"]},
                   "view": {"type": ["integer", "null"],
                            "description": "the saved view it came from"}},
})
SCREEN = api.schema("Screen", {
    "type": "object", "required": ["id", "name", "unit", "account", "content"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "unit": {"type": "string"},
        "account": {"type": "string", "description": "the service account it signs in as"},
        "content": {"anyOf": [CONTENT, {"type": "null"}]},
        "changed_by": {"type": ["string", "null"]},
        "changed_at": {"type": ["string", "null"], "format": "date-time"},
    },
})
SCREEN_NEW = api.schema("ScreenNew", {
    "type": "object", "additionalProperties": False, "required": ["name", "unit", "account"],
    "properties": {"name": SCREEN_NAME, "unit": code_schema,
                   "account": {"type": "string", "minLength": 1, "maxLength": 64,
                               "description": "a service account of the unit's subtree"}},
})
SHOW = api.schema("ScreenShow", {
    "type": "object", "additionalProperties": False,
    "description": "a saved view (view) or an ad-hoc layout or tour (kind, layout, cameras)",
    "properties": {"view": ID, "kind": {"type": "string", "enum": ["layout", "tour"]},
                   "name": NAME, "layout": LAYOUT, "cameras": CAMERAS, "seconds": SECONDS},
})
SCREEN_ID = [path_param("screen_id", ID)]


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def screen_json(screen: Screen) -> dict[str, Any]:
    return {"id": screen.id, "name": screen.name, "unit": screen.unit_code,
            "account": screen.account,
            "content": screen.content.as_json() if screen.content else None,
            "changed_by": screen.changed_by, "changed_at": _iso(screen.changed_at)}


def _screens(request: web.Request) -> Screens:
    return Screens(request.app[STORE_KEY])


async def _screen(request: web.Request) -> Screen:
    raw = request.match_info["screen_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise NotFound(f"screen {raw[:20]!r} does not exist")
    return await _screens(request).get(int(raw))


async def _check_driver(request: web.Request, who: Principal, screen: Screen,
                        roles: tuple[Role, ...] = DRIVERS) -> None:
    if who.role not in roles or screen.unit_id not in \
            await request.app[POLICY_KEY].jurisdiction(who):
        raise AccessDenied(f"only {' and '.join(r.value + 's' for r in roles)} of unit "
                           f"{screen.unit_code} or above drive screen {screen.id}")


@api.route("GET", "/api/v1/screens", tag="console",
           summary="Wall screens the caller drives (or is): what each shows, who sent it, when",
           ok={"type": "array", "items": SCREEN})
async def list_screens(request: web.Request) -> web.Response:
    who = principal(request)
    mine = await request.app[POLICY_KEY].jurisdiction(who) if who.role in DRIVERS else set()
    return web.json_response([screen_json(s) for s in await _screens(request).list()
                              if s.unit_id in mine or s.account_id == who.user_id])


@api.route("POST", "/api/v1/screens", tag="console",
           summary="Register a wall screen (administrators): a name, a unit, a service account",
           body=SCREEN_NEW, ok=SCREEN, ok_status=201, errors=(400, 401, 403, 404, 409, 422))
async def add_screen(request: web.Request) -> web.Response:
    who = principal(request)
    body = request[BODY_KEY]
    if who.role is not Role.ADMINISTRATOR:
        raise AccessDenied("only administrators register wall screens")
    name = " ".join(body["name"].split())
    if not name:
        raise ValidationError("give the screen a name", field="name")
    unit = await request.app[CATALOG_KEY].get_unit(body["unit"])
    mine = await request.app[POLICY_KEY].jurisdiction(who)
    if unit.id not in mine:
        raise AccessDenied(f"unit {unit.code} is outside your subtree")
    account = await request.app[ACCOUNTS_KEY].get_user(body["account"])
    if not account.service or account.unit_id not in mine:
        raise ValidationError(f"{account.username!r} is not a service account of your "
                              "subtree", field="account")
    screen = await _screens(request).add(name, unit_id=unit.id, account_id=account.id)
    await request.app[POLICY_KEY].record_admin(who, "console.screen_add", detail={
        "screen": screen.id, "name": screen.name, "unit": unit.code, "account": account.username})
    return web.json_response(screen_json(screen), status=201)


@api.route("DELETE", "/api/v1/screens/{screen_id}", tag="console",
           summary="Remove a wall screen (administrators)", params=SCREEN_ID,
           responses={204: ("Removed", None, "application/json")})
async def remove_screen(request: web.Request) -> web.Response:
    who = principal(request)
    screen = await _screen(request)
    await _check_driver(request, who, screen, (Role.ADMINISTRATOR,))
    await _screens(request).remove(screen.id)
    await request.app[POLICY_KEY].record_admin(who, "console.screen_remove", detail={
        "screen": screen.id, "name": screen.name})
    return web.Response(status=204)


@api.route("POST", "/api/v1/screens/{screen_id}/show", tag="console",
           summary="Send a saved view, or an ad-hoc layout or tour, to a wall screen",
           params=SCREEN_ID, body=SHOW, ok=SCREEN)
async def show_on_screen(request: web.Request) -> web.Response:
    who = principal(request)
    screen = await _screen(request)
    await _check_driver(request, who, screen)
    body = request[BODY_KEY]
    if "view" in body:
        if set(body) != {"view"}:
            raise ValidationError("give a saved view or a layout, not both", field="view")
        view = await visible_view(request, who, body["view"])
        content = ScreenContent(kind=view.kind, layout=view.layout, cameras=view.cameras,
                                seconds=view.seconds, name=view.name, view=view.id)
    else:
        missing = [k for k in ("kind", "layout", "cameras") if k not in body]
        if missing:
            raise ValidationError(f"give a saved view, or kind, layout and cameras "
                                  f"({', '.join(missing)} missing)", field=missing[0])
        name, layout, cameras, seconds = checked(body["kind"], {"name": "-", **body})
        content = ScreenContent(kind=body["kind"], layout=layout, cameras=tuple(cameras),
                                seconds=seconds, name=name if "name" in body else None)
    screen = await _screens(request).show(screen.id, content, who.user_id)
    await request.app[POLICY_KEY].record_admin(who, "console.screen_show", detail={
        "screen": screen.id, "screen_name": screen.name, "content": content.as_json()})
    data = screen_json(screen)
    request.app[EVENTS_KEY].publish(Event("screen.show", data,
                                          user_ids=frozenset({screen.account_id}),
                                          unit_ids=frozenset({screen.unit_id})))
    return web.json_response(data)
