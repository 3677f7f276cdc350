"""Saved layouts and tours over the API (``/api/v1/views``): the console's "Save layout"
and the list it restores from in one click.

A view belongs to its creator (``owner: "user"``, seen by that user only) or to the
creator's unit (``owner: "unit"``, seen by every user of that unit; only its
administrators and operators save, change or delete it).  A view holds camera ids only,
never names: the console names them from the catalogue, which lists only what the caller
may see, and a tile the caller may not watch shows "not allowed".
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.catalog.walls import LAYOUT_TILES, SavedView, SavedViews
from camrelay.errors import AccessDenied, NotFound, ValidationError
from camrelay.web.context import principal
from camrelay.web.keys import BODY_KEY, STORE_KEY
from camrelay.web.openapi import Api, path_param

api = Api()

UNIT_EDITORS = (Role.ADMINISTRATOR, Role.OPERATOR)
MAX_TOUR_CAMERAS = 1000
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
LAYOUT = {"type": "string", "enum": list(LAYOUT_TILES),
          "description": "the wall's layout kind: 1, 2x2, 3x3, 4x4, 1+5, 1+7"}
CAMERAS = {"type": "array", "maxItems": MAX_TOUR_CAMERAS,
           "items": {"anyOf": [ID, {"type": "null"}]},
           "description": "a layout: a camera id (or null: an empty tile) per tile, at most "
                          "the layout's tiles; a tour: the cameras it cycles through"}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
SECONDS = {"type": "integer", "minimum": 2, "maximum": 3600,
           "description": "a tour's period (default 10)"}

VIEW = api.schema("SavedView", {
    "type": "object",
    "required": ["id", "kind", "name", "owner", "layout", "cameras", "editable"],
    "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string", "enum": ["layout", "tour"]},
        "name": {"type": "string"},
        "owner": {"type": "object", "properties": {
            "user": {"type": ["string", "null"]}, "unit": {"type": ["string", "null"]}}},
        "layout": {"type": "string"}, "cameras": CAMERAS,
        "seconds": {"type": ["integer", "null"]},
        "updated_at": {"type": "string", "format": "date-time"},
        "editable": {"type": "boolean", "description": "the caller may change or delete it"},
    },
})
VIEW_EDIT_PROPS: dict[str, Any] = {"name": NAME, "layout": LAYOUT, "cameras": CAMERAS,
                                   "seconds": SECONDS}
VIEW_NEW = api.schema("SavedViewNew", {
    "type": "object", "additionalProperties": False,
    "required": ["kind", "name", "layout", "cameras"],
    "properties": {
        "kind": {"type": "string", "enum": ["layout", "tour"]},
        "owner": {"type": "string", "enum": ["user", "unit"],
                  "description": "user (default): yours only; unit: your unit's users see it "
                                 "(administrators and operators only)"},
        **VIEW_EDIT_PROPS,
    },
})
VIEW_EDIT = api.schema("SavedViewEdit", {
    "type": "object", "additionalProperties": False,
    "required": ["name", "layout", "cameras"], "properties": VIEW_EDIT_PROPS,
})
VIEW_ID = [path_param("view_id", ID)]


def views_of(request: web.Request) -> SavedViews:
    return SavedViews(request.app[STORE_KEY])


def _editable(who: Principal, view: SavedView) -> bool:
    if view.owner_user_id is not None:
        return view.owner_user_id == who.user_id
    return view.owner_unit_id == who.user.unit_id and who.role in UNIT_EDITORS


def view_json(who: Principal, view: SavedView) -> dict[str, Any]:
    # a caller sees only its own views and its unit's: the owner is the caller or its unit
    return {"id": view.id, "kind": view.kind, "name": view.name,
            "owner": {"user": who.user.username if view.owner_user_id else None,
                      "unit": who.user.unit_code if view.owner_unit_id else None},
            "layout": view.layout, "cameras": list(view.cameras), "seconds": view.seconds,
            "updated_at": view.updated_at.isoformat().replace("+00:00", "Z"),
            "editable": _editable(who, view)}


def checked(kind: str, body: dict[str, Any]) -> tuple[str, str, list[int | None], int | None]:
    """(name, layout, cameras, seconds) of a layout or a tour, or ValidationError."""
    name = " ".join(str(body["name"]).split())
    if not name:
        raise ValidationError("give the view a name", field="name")
    layout = str(body["layout"])
    cameras: list[int | None] = list(body["cameras"])
    if kind == "layout":
        if len(cameras) > LAYOUT_TILES[layout]:
            raise ValidationError(f"layout {layout} has {LAYOUT_TILES[layout]} tiles, "
                                  f"{len(cameras)} cameras given", field="cameras")
        return name, layout, cameras, None
    if not cameras or None in cameras:
        raise ValidationError("a tour needs a list of cameras without empty entries",
                              field="cameras")
    return name, layout, cameras, int(body.get("seconds") or 10)


async def visible_view(request: web.Request, who: Principal, view_id: int) -> SavedView:
    """The view if the caller may see it; 404 otherwise (its existence is not told)."""
    try:
        view = await views_of(request).get(view_id)
    except NotFound:
        view = None
    if view is None or (view.owner_user_id != who.user_id
                        and view.owner_unit_id != who.user.unit_id):
        raise NotFound(f"saved view {view_id} does not exist")
    return view


def _view_id(request: web.Request) -> int:
    raw = request.match_info["view_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise NotFound(f"saved view {raw[:20]!r} does not exist")
    return int(raw)


@api.route("GET", "/api/v1/views", tag="console",
           summary="Saved layouts and tours: the caller's own and its unit's",
           ok={"type": "array", "items": VIEW})
async def list_views(request: web.Request) -> web.Response:
    who = principal(request)
    views = await views_of(request).visible_to(who.user_id, who.user.unit_id)
    return web.json_response([view_json(who, v) for v in views])


@api.route("POST", "/api/v1/views", tag="console",
           summary="Save a layout or a tour for yourself or your unit", body=VIEW_NEW,
           ok=VIEW, ok_status=201, errors=(400, 401, 403, 409, 422))
async def add_view(request: web.Request) -> web.Response:
    who = principal(request)
    body = request[BODY_KEY]
    kind = body["kind"]
    name, layout, cameras, seconds = checked(kind, body)
    for_unit = body.get("owner") == "unit"
    if for_unit and who.role not in UNIT_EDITORS:
        raise AccessDenied("only administrators and operators save views for their unit")
    view = await views_of(request).add(
        kind=kind, name=name, owner_user_id=None if for_unit else who.user_id,
        owner_unit_id=who.user.unit_id if for_unit else None, layout=layout,
        cameras=cameras, seconds=seconds, created_by=who.user_id)
    return web.json_response(view_json(who, view), status=201)


async def _editable_view(request: web.Request) -> tuple[Principal, SavedView]:
    who = principal(request)
    view = await visible_view(request, who, _view_id(request))
    if not _editable(who, view):
        raise AccessDenied("only administrators and operators of the unit change its views")
    return who, view


@api.route("PUT", "/api/v1/views/{view_id}", tag="console",
           summary="Change a saved layout or tour (name, layout, cameras, period)",
           params=VIEW_ID, body=VIEW_EDIT, ok=VIEW, errors=(400, 401, 403, 404, 409, 422))
async def edit_view(request: web.Request) -> web.Response:
    who, view = await _editable_view(request)
    name, layout, cameras, seconds = checked(view.kind, request[BODY_KEY])
    view = await views_of(request).update(view, name=name, layout=layout, cameras=cameras,
                                          seconds=seconds)
    return web.json_response(view_json(who, view))


@api.route("DELETE", "/api/v1/views/{view_id}", tag="console",
           summary="Delete a saved layout or tour", params=VIEW_ID,
           responses={204: ("deleted", None, "application/json")})
async def remove_view(request: web.Request) -> web.Response:
    _, view = await _editable_view(request)
    await views_of(request).remove(view.id)
    return web.Response(status=204)
