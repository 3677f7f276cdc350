"""REST routes for the catalogue: units, cameras, import and export."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from aiohttp import web

from camrelay.catalog import fields as camera_fields
from camrelay.catalog.fields import (
    CODE_SCHEMA,
    EXPORT_COLUMNS,
    OPTIONAL_CODE_SCHEMA,
    camera_schema,
    free_text_schema,
    parse_camera,
)
from camrelay.catalog.models import DeviceStatus, UnitLevel, parse_unit, parse_unit_code
from camrelay.catalog.service import CameraFilter, Catalog
from camrelay.errors import BadRequest, ValidationError
from camrelay.web.context import principal
from camrelay.web.keys import BODY_KEY, CATALOG_KEY, POLICY_KEY, VIEWS_KEY
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import camera_id_of
from camrelay.web.present import camera_json, export_row, unit_json
from camrelay.web.whip import is_field_camera, live_position


class CatalogApi(Api):
    """The catalogue's routes; the document shows this deployment's vocabularies."""

    def install(self, app: web.Application) -> None:
        catalog = app[CATALOG_KEY]
        self.schemas["Category"] = {"type": "string", "enum": list(catalog.categories),
                                    "description": "catalog.categories of the settings"}
        self.schemas["CameraType"] = {"type": "string", "enum": list(catalog.camera_types),
                                      "description": "catalog.camera_types of the settings"}
        super().install(app)


api = CatalogApi()

_nullable_str = {"type": ["string", "null"]}
_when = {"type": ["string", "null"], "format": "date-time"}

UNIT = api.schema("Unit", {
    "type": "object",
    "required": ["code", "name", "level", "parent"],
    "properties": {
        "id": {"type": "integer"},
        "code": {"type": "string"},
        "name": {"type": "string"},
        "level": {"type": "string", "enum": [lv.value for lv in UnitLevel]},
        "parent": _nullable_str,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
})
code_schema = CODE_SCHEMA  # unit codes, also of other APIs' parameters

_unit_fields: dict[str, Any] = {
    "code": code_schema,
    "name": free_text_schema(200, required=True),
    "level": {"type": "string", "enum": [lv.value for lv in UnitLevel]},
    "parent": OPTIONAL_CODE_SCHEMA,
}
UNIT_NEW = api.schema("UnitNew", {"type": "object", "additionalProperties": False,
                                  "required": ["code", "name", "level"],
                                  "properties": _unit_fields})
UNIT_PATCH = api.schema("UnitPatch", {"type": "object", "additionalProperties": False,
                                      "properties": {k: v for k, v in _unit_fields.items()
                                                     if k != "code"}})

# The vocabularies come from the settings; CatalogApi.install puts them into the document.
CATEGORY = api.schema("Category", {"type": "string", "maxLength": 64})
CAMERA_TYPE = api.schema("CameraType", {"type": "string", "maxLength": 32})

_camera_properties = {f.name: camera_schema(f, {"categories": CATEGORY,
                                             "camera_types": CAMERA_TYPE})
                  for f in camera_fields.CAMERA}
CAMERA_NEW = api.schema("CameraNew", {"type": "object", "additionalProperties": False,
                                      "required": [f.name for f in camera_fields.CAMERA
                                                   if f.required],
                                      "properties": _camera_properties})
CAMERA_PATCH = api.schema("CameraPatch", {"type": "object", "additionalProperties": False,
                                          "properties": _camera_properties})
CAMERA = api.schema("Camera", {
    "type": "object",
    "required": ["id", "external_id", "name", "unit", "category", "status", "enabled", "rights"],
    "properties": {
        **{f.name: _camera_properties[f.name] for f in camera_fields.CAMERA if f.shown},
        "id": {"type": "integer"},
        "has_password": {"type": "boolean"},
        "active": {"type": "boolean"},
        "last_seen_at": _when,
        "live_position": {
            "type": ["object", "null"],
            "description": "a field camera's position while its device publishes (kept in "
                           "memory for the feed's duration): latitude, longitude, time "
                           "(the device's), received"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "rights": {"type": "array", "items": {"type": "string",
                                              "enum": ["live", "snapshot", "ptz", "manage",
                                                       "request", "publish", "talk"]},
                   "description": "what the caller may do; publish only on field cameras "
                                  "(main_url whip:), talk on field cameras and rtsp:// "
                                  "cameras not found without an ONVIF audio back-channel, "
                                  "of the caller's subtree"},
        "backchannel": {"type": ["boolean", "null"],
                        "description": "an rtsp:// camera's ONVIF audio back-channel "
                                       "(talk-back), as last found when an operator asked "
                                       "to talk to it; null: never asked"},
        "emergency": {"type": ["integer", "null"],
                      "description": "in listings: the emergency access under which the "
                                     "caller may watch the camera"},
    },
})
PAGE = api.schema("CameraPage", {
    "type": "object", "required": ["items", "total", "limit", "offset"],
    "properties": {"items": {"type": "array", "items": CAMERA}, "total": {"type": "integer"},
                   "limit": {"type": "integer"}, "offset": {"type": "integer"}},
})
IMPORT = api.schema("CatalogImport", {
    "type": "object", "additionalProperties": False, "required": ["rows"],
    "properties": {
        "skip_invalid": {"type": "boolean"},
        "rows": {"type": "array", "maxItems": 100_000, "items": {
            "type": "object", "additionalProperties": False, "required": ["line", "fields"],
            "properties": {"line": {"type": "integer", "minimum": 0},
                           "fields": {"type": "object"}}}},
    },
})
IMPORT_REPORT = api.schema("CatalogImportReport", {
    "type": "object", "required": ["added", "updated", "unchanged", "errors", "imported"],
    "properties": {
        "imported": {"type": "boolean"},
        "added": {"type": "integer"}, "updated": {"type": "integer"},
        "unchanged": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "line": {"type": "integer"}, "field": {"type": ["string", "null"]},
            "error": {"type": "string"}}}},
    },
})

_code = path_param("code", code_schema, "unit code")
_camera_id = path_param("camera_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                        "camera id")


def _catalog(request: web.Request) -> Catalog:
    return request.app[CATALOG_KEY]


# ---- units ---------------------------------------------------------------------------------

@api.route("GET", "/api/v1/units", summary="List units (the whole tree)", tag="units",
           ok={"type": "array", "items": UNIT})
async def list_units(request: web.Request) -> web.Response:
    units = await _catalog(request).list_units()
    return web.json_response([unit_json(u) for u in units])


@api.route("POST", "/api/v1/units", summary="Add a unit", tag="units", body=UNIT_NEW,
           ok=UNIT, ok_status=201, errors=(400, 401, 403, 409, 422))
async def add_unit(request: web.Request) -> web.Response:
    fields = parse_unit(request[BODY_KEY])
    await request.app[POLICY_KEY].check_manage_unit(principal(request), fields.get("parent"),
                                                     creating=True)
    unit = await _catalog(request).add_unit(fields)
    return web.json_response(unit_json(unit), status=201)


@api.route("GET", "/api/v1/units/{code}", summary="Show a unit", tag="units", params=[_code],
           ok=UNIT)
async def get_unit(request: web.Request) -> web.Response:
    code = parse_unit_code(request.match_info["code"])
    return web.json_response(unit_json(await _catalog(request).get_unit(code)))


@api.route("PATCH", "/api/v1/units/{code}", summary="Update a unit", tag="units",
           params=[_code], body=UNIT_PATCH, ok=UNIT)
async def update_unit(request: web.Request) -> web.Response:
    code = parse_unit_code(request.match_info["code"])
    fields = parse_unit(request[BODY_KEY], partial=True)
    await request.app[POLICY_KEY].check_manage_unit(principal(request), code)
    if fields.get("parent"):
        await request.app[POLICY_KEY].check_manage_unit(principal(request), fields["parent"],
                                                         missing_ok=True)
    return web.json_response(unit_json(await _catalog(request).update_unit(code, fields)))


@api.route("DELETE", "/api/v1/units/{code}", summary="Remove a unit", tag="units",
           params=[_code, query("cascade", {"type": "boolean"},
                                "also remove its sub-units and cameras")],
           ok={"type": "object", "properties": {"units": {"type": "integer"},
                                                "cameras": {"type": "integer"}}},
           errors=(400, 401, 403, 404, 409, 422))
async def remove_unit(request: web.Request) -> web.Response:
    code = parse_unit_code(request.match_info["code"])
    cascade = _bool_query(request, "cascade")
    await request.app[POLICY_KEY].check_manage_unit(principal(request), code)
    return web.json_response(await _catalog(request).remove_unit(code, cascade=cascade))


# ---- cameras -------------------------------------------------------------------------------

def _bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false")
    return raw in ("true", "1")


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@api.route("GET", "/api/v1/cameras", summary="List cameras (filters, paging)", tag="cameras",
           params=[
               query("unit", code_schema, "a unit code: that unit and its subtree"),
               query("category", {"type": "string", "maxLength": 64}),
               query("status", {"type": "string", "enum": [s.value for s in DeviceStatus]}),
               query("q", {"type": "string", "maxLength": 200},
                     "text in name, location, external id, vendor or model"),
               query("external_id", {"type": "string", "maxLength": 128}),
               query("enabled", {"type": "boolean"}),
               query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
               query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000}),
           ], ok=PAGE)
async def list_cameras(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status")
    if status is not None and status not in {s.value for s in DeviceStatus}:
        raise BadRequest(f"status must be one of {', '.join(s.value for s in DeviceStatus)}")
    unit = q.get("unit")
    if unit is not None:
        parse_unit_code(unit, "unit")
    enabled = None if "enabled" not in q else _bool_query(request, "enabled")
    limit = _int_query(request, "limit", 100, 1, 1000)
    offset = _int_query(request, "offset", 0, 0, 10_000_000)
    text = q.get("q")
    if text is not None and len(text) > 200:
        raise BadRequest("q is longer than 200 characters")
    policy = request.app[POLICY_KEY]
    who = principal(request)
    flt = CameraFilter(unit=unit, category=q.get("category"), status=status, text=text,
                       enabled=enabled, external_id=q.get("external_id"),
                       unit_ids=await policy.listing_scope(who))
    cameras, total = await _catalog(request).list_cameras(flt, limit=limit, offset=offset)
    held = await policy.holdings(who.user)
    # the listing also says which cameras the caller watches under emergency access
    items = [camera_json(c, held.rights(c)) | {"emergency": held.emergency_of(c)}
             for c in cameras]
    return web.json_response({"items": items, "total": total, "limit": limit, "offset": offset})


def _parse_camera(request: web.Request, partial: bool) -> dict[str, Any]:
    catalog = _catalog(request)
    return parse_camera(request[BODY_KEY], categories=catalog.categories,
                        camera_types=catalog.camera_types, partial=partial)


@api.route("POST", "/api/v1/cameras", summary="Register a camera", tag="cameras",
           body=CAMERA_NEW, ok=CAMERA, ok_status=201, errors=(400, 401, 403, 409, 422))
async def add_camera(request: web.Request) -> web.Response:
    fields = _parse_camera(request, partial=False)
    policy = request.app[POLICY_KEY]
    who = principal(request)
    await policy.check_manage_unit(who, fields["unit"], missing_ok=True)
    camera = await _catalog(request).add_camera(fields)
    await policy.record_admin(who, "camera.add", camera_id=camera.id,
                              detail={"external_id": camera.external_id})
    (rights,) = await policy.rights_for(who, [camera])
    return web.json_response(camera_json(camera, rights), status=201)


@api.route("GET", "/api/v1/cameras/{camera_id}", summary="Show a camera", tag="cameras",
           params=[_camera_id], ok=CAMERA)
async def get_camera(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    policy = request.app[POLICY_KEY]
    who = principal(request)
    camera = await _catalog(request).get_camera(camera_id)
    await policy.check_see(who, camera)
    (rights,) = await policy.rights_for(who, [camera])
    out = camera_json(camera, rights)
    if is_field_camera(camera):
        out["live_position"] = live_position(request.app, camera_id)
    return web.json_response(out)


@api.route("PATCH", "/api/v1/cameras/{camera_id}", summary="Update a camera", tag="cameras",
           params=[_camera_id], body=CAMERA_PATCH, ok=CAMERA,
           errors=(400, 401, 403, 404, 409, 422))
async def update_camera(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    policy = request.app[POLICY_KEY]
    who = principal(request)
    camera = await _catalog(request).get_camera(camera_id)
    await policy.check_manage_unit(who, camera.unit_code)
    fields = _parse_camera(request, partial=True)
    if "unit" in fields:
        await policy.check_manage_unit(who, fields["unit"], missing_ok=True)
    updated = await _catalog(request).update_camera(camera_id, fields)
    if updated.unit_id != camera.unit_id:
        await _access_changed(request)
    await policy.record_admin(who, "camera.update", camera_id=camera_id,
                              detail={"fields": sorted(fields)})
    (rights,) = await policy.rights_for(who, [updated])
    return web.json_response(camera_json(updated, rights))


@api.route("DELETE", "/api/v1/cameras/{camera_id}", summary="Remove a camera", tag="cameras",
           params=[_camera_id], responses={204: ("Removed", None, "application/json")})
async def remove_camera(request: web.Request) -> web.Response:
    camera_id = camera_id_of(request)
    policy = request.app[POLICY_KEY]
    who = principal(request)
    camera = await _catalog(request).get_camera(camera_id)
    await policy.check_manage_unit(who, camera.unit_code)
    await _catalog(request).remove_camera(camera_id)
    await _access_changed(request)
    await policy.record_admin(who, "camera.remove", camera_id=camera_id,
                              detail={"external_id": camera.external_id})
    return web.Response(status=204)


async def _access_changed(request: web.Request) -> None:
    """A camera left the catalogue or changed unit: its views are re-checked now, on every
    node of a cluster."""
    views = request.app.get(VIEWS_KEY)
    if views is not None:
        await views.revoked()


# ---- import / export -----------------------------------------------------------------------

@api.route("POST", "/api/v1/catalog/import", summary="Import cameras (all rows or none)",
           tag="catalog", body=IMPORT, ok=IMPORT_REPORT)
async def import_catalog(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    rows = [(int(r["line"]), r["fields"]) for r in body["rows"]]
    policy = request.app[POLICY_KEY]
    who = principal(request)
    units = {str(f.get("unit")) for _, f in rows if isinstance(f.get("unit"), str)}
    for code in sorted(units):
        try:
            parse_unit_code(code)
        except ValidationError:
            continue  # reported per row by the import itself
        await policy.check_manage_unit(who, code, missing_ok=True)
    report = await _catalog(request).import_cameras(rows,
                                                    skip_invalid=bool(body.get("skip_invalid")))
    imported = not report.errors or bool(body.get("skip_invalid"))
    if imported:
        await policy.record_admin(who, "catalog.import", detail={
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "skipped": len(report.errors)})
    return web.json_response({"imported": imported, "added": report.added,
                              "updated": report.updated, "unchanged": report.unchanged,
                              "errors": report.errors})


@api.route("GET", "/api/v1/catalog/export", summary="Export the catalogue (CSV or JSON)",
           tag="catalog",
           params=[query("format", {"type": "string", "enum": ["csv", "json"]})],
           responses={200: ("The catalogue (JSON array, or CSV with a header row)", None,
                            "application/json,text/csv")})
async def export_catalog(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in ("csv", "json"):
        raise BadRequest("format must be csv or json")
    policy = request.app[POLICY_KEY]
    who = principal(request)
    scope = await policy.export_scope(who)
    cameras: list[Any] = []
    offset = 0
    while True:
        page, total = await _catalog(request).list_cameras(
            CameraFilter(unit_ids=scope), limit=1000, offset=offset)
        cameras.extend(page)
        offset += len(page)
        if not page or offset >= total:
            break
    rights = await policy.rights_for(who, cameras)
    rows = [export_row(c, "manage" in r) for c, r in zip(cameras, rights)]
    await policy.record_admin(who, "catalog.export", detail={"cameras": len(rows),
                                                            "format": fmt})
    if fmt == "json":
        return web.Response(text=json.dumps(rows, ensure_ascii=False, indent=1),
                            content_type="application/json")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
