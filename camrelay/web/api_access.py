"""REST routes for grants, emergency access, notifications, the access log and users."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from camrelay.access.accounts import Principal, Role, User
from camrelay.access.emergency import Emergency, Notification
from camrelay.access.grants import Grant
from camrelay.access.journal import RECORD_COLUMNS, Journal, RecordFilter
from camrelay.catalog.models import parse_unit_code
from camrelay.catalog.service import subtree_ids
from camrelay.errors import AccessDenied, BadRequest, NotFound, UserNotFound, ValidationError
from camrelay.events import Event
from camrelay.fields import parse_datetime, utcnow
from camrelay.store import schema
from camrelay.web.context import principal
from camrelay.web.keys import (
    ACCOUNTS_KEY,
    BODY_KEY,
    EVENTS_KEY,
    JOURNAL_KEY,
    POLICY_KEY,
    STORE_KEY,
    VIEWS_KEY,
)
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import check_admin_of, code_schema
from camrelay.web.present import user_json

api = Api()

_when = {"type": ["string", "null"], "format": "date-time"}
_str = {"type": ["string", "null"]}
_int = {"type": ["integer", "null"]}
_actions = {"type": "array", "minItems": 1, "maxItems": 3,
            "items": {"type": "string", "enum": ["live", "snapshot", "ptz"]}}
_camera_ids = {"type": "array", "maxItems": 1000,
               "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
_id = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

GRANT = api.schema("Grant", {
    "type": "object", "required": ["id", "status", "actions", "purpose", "valid_until"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["pending", "active", "scheduled", "expired",
                                              "rejected", "revoked"]},
        "grantee_unit": _str, "grantee_user": _str, "include_subunits": {"type": "boolean"},
        "cameras": {"type": "array", "items": {"type": "integer"}}, "category": _str,
        "unit_scope": _str, "actions": _actions, "purpose": {"type": "string"},
        "valid_from": _when, "valid_until": _when, "requested_by": {"type": "string"},
        "requested_at": _when, "decided_by": _str, "decided_at": _when,
        "decision_comment": _str, "revoked_by": _str, "revoked_at": _when,
        "revoke_reason": _str,
    },
})
GRANT_NEW = api.schema("GrantNew", {
    "type": "object", "additionalProperties": False,
    "required": ["actions", "purpose", "valid_until"],
    "properties": {
        "grantee_unit": {"type": ["string", "null"], "maxLength": 64},
        "grantee_user": {"type": ["string", "null"], "maxLength": 64},
        "include_subunits": {"type": "boolean"},
        "cameras": _camera_ids,
        "category": {"type": ["string", "null"], "maxLength": 64},
        "unit_scope": {"type": ["string", "null"], "maxLength": 64},
        "actions": _actions,
        "purpose": {"type": "string", "minLength": 1, "maxLength": 500},
        "valid_from": _when,
        "valid_until": {"type": "string", "format": "date-time",
                        "description": "in the future, later than valid_from and at most "
                                       "access.max_grant_days (366 by default) after it"},
    },
})
DECISION = api.schema("Decision", {
    "type": "object", "additionalProperties": False,
    "properties": {"comment": {"type": ["string", "null"], "maxLength": 1000},
                   "reason": {"type": ["string", "null"], "maxLength": 1000}},
})
EMERGENCY = api.schema("Emergency", {
    "type": "object", "required": ["id", "status", "reason", "incident", "expires_at"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["open", "confirmed", "revoked", "ended"]},
        "opened_by": {"type": "string"}, "unit": {"type": "string"},
        "reason": {"type": "string"}, "incident": {"type": "string"},
        "cameras": {"type": "array", "items": {"type": "integer"}}, "category": _str,
        "unit_scope": _str,
        "near": {"type": ["object", "null"], "properties": {
            "latitude": {"type": "number"}, "longitude": {"type": "number"},
            "radius_km": {"type": "number"}}},
        "opened_at": _when, "expires_at": _when, "confirmed_by": _str, "confirmed_at": _when,
        "revoked_by": _str, "revoked_at": _when, "comment": _str,
    },
})
EMERGENCY_NEW = api.schema("EmergencyNew", {
    "type": "object", "additionalProperties": False, "required": ["reason", "incident"],
    "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 1000},
        "incident": {"type": "string", "minLength": 1, "maxLength": 200},
        "cameras": _camera_ids,
        "category": {"type": ["string", "null"], "maxLength": 64},
        "unit_scope": {"type": ["string", "null"], "maxLength": 64},
        "near": {"type": ["object", "null"], "additionalProperties": False,
                 "required": ["latitude", "longitude", "radius_km"],
                 "properties": {"latitude": {"type": "number", "minimum": -90, "maximum": 90},
                                "longitude": {"type": "number", "minimum": -180,
                                              "maximum": 180},
                                "radius_km": {"type": "number", "minimum": 0.01,
                                              "maximum": 500}}},
        "hours": {"type": ["number", "null"], "minimum": 0.01, "maximum": 24,
                  "description": "at most access.emergency_max_hours (24 by default)"},
    },
})
NOTIFICATION = api.schema("Notification", {
    "type": "object", "required": ["id", "kind", "message"],
    "properties": {"id": {"type": "integer"}, "created_at": _when, "audience": {"type": "string"},
                   "kind": {"type": "string"}, "subject_id": _int,
                   "message": {"type": "string"}},
})
RECORD = api.schema("AccessRecord", {
    "type": "object", "required": ["id", "kind", "result"],
    "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string"}, "action": _str, "user": _str,
        "unit": _str, "camera_id": _int, "camera": _str, "camera_unit": _str, "purpose": _str,
        "basis": _str, "grant_id": _int, "approver": _str, "emergency": {"type": "boolean"},
        "emergency_id": _int, "incident": _str, "start": _when, "end": _when,
        "duration_s": {"type": ["number", "null"]}, "open": {"type": "boolean"},
        "client_address": _str, "user_agent": _str, "result": _str, "reason": _str,
        "close_reason": _str, "view_id": _str, "detail": {"type": ["object", "null"]},
        "audio": {"type": ["string", "null"],
                  "description": "the codec the camera's audio was delivered in "
                                 "(PCMA, PCMU, opus); null: video only"},
    },
})
VERIFY = api.schema("AuditVerification", {
    "type": "object", "required": ["ok", "events", "problems"],
    "properties": {"ok": {"type": "boolean"}, "events": {"type": "integer"},
                   "head_seq": _int,
                   "problems": {"type": "array", "items": {"type": "object", "properties": {
                       "seq": _int, "problem": {"type": "string"}}}}},
})
USER_PATCH = api.schema("UserPatch", {
    "type": "object", "additionalProperties": False,
    "properties": {"disabled": {"type": "boolean"},
                   "role": {"type": "string", "enum": [r.value for r in Role]},
                   "display_name": {"type": ["string", "null"], "maxLength": 200}},
})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def grant_json(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "status": grant.status(utcnow()), "grantee_unit": grant.grantee_unit,
        "grantee_user": grant.grantee_user, "include_subunits": grant.include_subunits,
        "cameras": list(grant.camera_ids), "category": grant.category,
        "unit_scope": grant.scope_unit, "actions": list(grant.actions),
        "purpose": grant.purpose, "valid_from": _iso(grant.valid_from),
        "valid_until": _iso(grant.valid_until), "requested_by": grant.requested_by,
        "requested_at": _iso(grant.requested_at), "decided_by": grant.decided_by,
        "decided_at": _iso(grant.decided_at), "decision_comment": grant.decision_comment,
        "revoked_by": grant.revoked_by, "revoked_at": _iso(grant.revoked_at),
        "revoke_reason": grant.revoke_reason,
    }


def emergency_json(em: Emergency) -> dict[str, Any]:
    return {
        "id": em.id, "status": em.status(utcnow()), "opened_by": em.opened_by, "unit": em.unit,
        "reason": em.reason, "incident": em.incident, "cameras": list(em.camera_ids),
        "category": em.category, "unit_scope": em.scope_unit,
        "near": None if em.near is None else {"latitude": em.near.latitude,
                                              "longitude": em.near.longitude,
                                              "radius_km": em.near.radius_km},
        "opened_at": _iso(em.opened_at), "expires_at": _iso(em.expires_at),
        "confirmed_by": em.confirmed_by, "confirmed_at": _iso(em.confirmed_at),
        "revoked_by": em.revoked_by, "revoked_at": _iso(em.revoked_at), "comment": em.comment,
    }


def notification_json(note: Notification) -> dict[str, Any]:
    return {"id": note.id, "created_at": _iso(note.created_at), "audience": note.audience,
            "kind": note.kind, "subject_id": note.subject_id, "message": note.message}


def _id_of(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise NotFound(f"{what} {raw[:40]!r} does not exist")
    return int(raw)


async def _record(request: web.Request, action: str, **detail: Any) -> None:
    await request.app[POLICY_KEY].record_admin(principal(request), action, detail=detail,
                                                client_address=request.remote)


async def _sweep(request: web.Request) -> None:
    """Cut at once the live views a revocation has just ended."""
    views = request.app.get(VIEWS_KEY)
    if views is not None:
        await views.revoked()


_DECIDERS = frozenset({Role.APPROVER.value, Role.ADMINISTRATOR.value})
_WATCHERS = frozenset({Role.APPROVER.value, Role.ADMINISTRATOR.value, Role.AUDITOR.value})


def _announce_grant(request: web.Request, kind: str, grant: Grant) -> None:
    """Tell the live channels concerned: the requester, the grantee, those who decide."""
    bus = request.app.get(EVENTS_KEY)
    if bus is None:
        return
    users = {grant.requested_by_id} | ({grant.grantee_user_id} if grant.grantee_user_id else set())
    bus.publish(Event(kind, grant_json(grant), roles=_DECIDERS, user_ids=frozenset(users),
                      unit_ids=None if grant.grantee_unit_id is None
                      else frozenset({grant.grantee_unit_id})))


def _announce_emergency(request: web.Request, kind: str, em: Emergency) -> None:
    """Approvers (and administrators, auditors) and the opener's unit hear of it at once."""
    bus = request.app.get(EVENTS_KEY)
    if bus is not None:
        bus.publish(Event(kind, emergency_json(em), roles=_WATCHERS,
                          user_ids=frozenset({em.opened_by_id}),
                          unit_ids=frozenset({em.unit_id})))


# ---- grants --------------------------------------------------------------------------------

_grant_id = path_param("grant_id", _id, "grant id")


@api.route("GET", "/api/v1/grants", summary="List grants (pending, active, expired, revoked…)",
           tag="grants", params=[query("status", {"type": "string", "enum": [
               "pending", "active", "scheduled", "expired", "rejected", "revoked"]})],
           ok={"type": "array", "items": GRANT})
async def list_grants(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in ("pending", "active", "scheduled", "expired",
                                             "rejected", "revoked"):
        raise BadRequest("status must be pending, active, scheduled, expired, rejected or "
                         "revoked")
    grants = await request.app[POLICY_KEY].grants.list_grants(principal(request).user,
                                                              status=status)
    return web.json_response([grant_json(g) for g in grants])


@api.route("POST", "/api/v1/grants", summary="Apply for a grant (pending until approved)",
           tag="grants", body=GRANT_NEW, ok=GRANT, ok_status=201,
           errors=(400, 401, 403, 422))
async def request_grant(request: web.Request) -> web.Response:
    grant = await request.app[POLICY_KEY].grants.request(principal(request).user,
                                                         request[BODY_KEY])
    await _record(request, "grant.request", grant_id=grant.id, purpose=grant.purpose,
                  actions=list(grant.actions))
    _announce_grant(request, "grant.requested", grant)
    return web.json_response(grant_json(grant), status=201)


@api.route("GET", "/api/v1/grants/{grant_id}", summary="Show a grant", tag="grants",
           params=[_grant_id], ok=GRANT)
async def get_grant(request: web.Request) -> web.Response:
    grant_id = _id_of(request, "grant_id", "grant")
    who = principal(request).user
    visible = {g.id for g in await request.app[POLICY_KEY].grants.list_grants(who, limit=10**6)}
    if grant_id not in visible:
        raise NotFound(f"grant {grant_id} does not exist")
    return web.json_response(grant_json(await request.app[POLICY_KEY].grants.get(grant_id)))


async def _decide(request: web.Request, approve: bool) -> web.Response:
    grant_id = _id_of(request, "grant_id", "grant")
    comment = request[BODY_KEY].get("comment")
    grant = await request.app[POLICY_KEY].grants.decide(grant_id, principal(request).user,
                                                        approve=approve, comment=comment)
    await _record(request, "grant.approve" if approve else "grant.reject", grant_id=grant_id,
                  comment=comment)
    _announce_grant(request, "grant.decided", grant)
    return web.json_response(grant_json(grant))


@api.route("POST", "/api/v1/grants/{grant_id}/approve", summary="Approve a pending grant",
           tag="grants", params=[_grant_id], body=DECISION, ok=GRANT,
           errors=(400, 401, 403, 404, 409, 422))
async def approve_grant(request: web.Request) -> web.Response:
    return await _decide(request, True)


@api.route("POST", "/api/v1/grants/{grant_id}/reject", summary="Reject a pending grant",
           tag="grants", params=[_grant_id], body=DECISION, ok=GRANT,
           errors=(400, 401, 403, 404, 409, 422))
async def reject_grant(request: web.Request) -> web.Response:
    return await _decide(request, False)


@api.route("POST", "/api/v1/grants/{grant_id}/revoke",
           summary="Revoke a grant (its live views are cut at once)", tag="grants",
           params=[_grant_id], body=DECISION, ok=GRANT, errors=(400, 401, 403, 404, 409, 422))
async def revoke_grant(request: web.Request) -> web.Response:
    grant_id = _id_of(request, "grant_id", "grant")
    body = request[BODY_KEY]
    reason = body.get("reason") or body.get("comment")
    grant = await request.app[POLICY_KEY].grants.revoke(grant_id, principal(request).user,
                                                        reason)
    await _sweep(request)
    await _record(request, "grant.revoke", grant_id=grant_id, reason=reason)
    _announce_grant(request, "grant.decided", grant)
    return web.json_response(grant_json(grant))


# ---- emergency -----------------------------------------------------------------------------

_em_id = path_param("emergency_id", _id, "emergency id")


@api.route("GET", "/api/v1/emergencies", summary="List emergency access", tag="emergency",
           params=[query("active", {"type": "boolean"}, "only open or confirmed ones")],
           ok={"type": "array", "items": EMERGENCY})
async def list_emergencies(request: web.Request) -> web.Response:
    active = request.query.get("active", "false").lower() in ("true", "1")
    found = await request.app[POLICY_KEY].emergencies.list_emergencies(
        principal(request).user, active_only=active)
    return web.json_response([emergency_json(e) for e in found])


@api.route("POST", "/api/v1/emergencies",
           summary="Open emergency access now (announced to approvers)", tag="emergency",
           body=EMERGENCY_NEW, ok=EMERGENCY, ok_status=201, errors=(400, 401, 403, 422))
async def open_emergency(request: web.Request) -> web.Response:
    em = await request.app[POLICY_KEY].emergencies.open(principal(request).user,
                                                        request[BODY_KEY])
    await _record(request, "emergency.open", emergency_id=em.id, incident=em.incident,
                  reason=em.reason, emergency=True)
    _announce_emergency(request, "emergency.opened", em)
    return web.json_response(emergency_json(em), status=201)


@api.route("GET", "/api/v1/emergencies/{emergency_id}", summary="Show emergency access",
           tag="emergency", params=[_em_id], ok=EMERGENCY)
async def get_emergency(request: web.Request) -> web.Response:
    em_id = _id_of(request, "emergency_id", "emergency")
    visible = await request.app[POLICY_KEY].emergencies.list_emergencies(principal(request).user)
    if em_id not in {e.id for e in visible}:
        raise NotFound(f"emergency {em_id} does not exist")
    return web.json_response(emergency_json(
        await request.app[POLICY_KEY].emergencies.get(em_id)))


@api.route("POST", "/api/v1/emergencies/{emergency_id}/confirm",
           summary="Confirm emergency access afterwards", tag="emergency", params=[_em_id],
           body=DECISION, ok=EMERGENCY, errors=(400, 401, 403, 404, 409, 422))
async def confirm_emergency(request: web.Request) -> web.Response:
    em_id = _id_of(request, "emergency_id", "emergency")
    comment = request[BODY_KEY].get("comment")
    em = await request.app[POLICY_KEY].emergencies.confirm(em_id, principal(request).user,
                                                           comment)
    await _record(request, "emergency.confirm", emergency_id=em_id, comment=comment)
    _announce_emergency(request, "emergency.confirmed", em)
    return web.json_response(emergency_json(em))


@api.route("POST", "/api/v1/emergencies/{emergency_id}/revoke",
           summary="Revoke emergency access (its live views are cut at once)",
           tag="emergency", params=[_em_id], body=DECISION, ok=EMERGENCY,
           errors=(400, 401, 403, 404, 409, 422))
async def revoke_emergency(request: web.Request) -> web.Response:
    em_id = _id_of(request, "emergency_id", "emergency")
    body = request[BODY_KEY]
    comment = body.get("comment") or body.get("reason")
    em = await request.app[POLICY_KEY].emergencies.revoke(em_id, principal(request).user,
                                                          comment)
    await _sweep(request)
    await _record(request, "emergency.revoke", emergency_id=em_id, comment=comment)
    _announce_emergency(request, "emergency.revoked", em)
    return web.json_response(emergency_json(em))


@api.route("GET", "/api/v1/notifications",
           summary="Announcements for approvers (emergency access opened)", tag="emergency",
           params=[query("since", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                         "after this id")],
           ok={"type": "array", "items": NOTIFICATION})
async def notifications(request: web.Request) -> web.Response:
    raw = request.query.get("since", "0")
    if not raw.isdigit() or len(raw) > 10:
        raise BadRequest("since must be a whole number")
    notes = await request.app[POLICY_KEY].emergencies.notifications(principal(request).user,
                                                                     since_id=int(raw))
    return web.json_response([notification_json(n) for n in notes])


# ---- the access log ------------------------------------------------------------------------

READERS = {Role.AUDITOR, Role.ADMINISTRATOR, Role.APPROVER}


async def _scope(request: web.Request, who: Principal) -> tuple[frozenset[str] | None,
                                                                int | None, bool]:
    """(unit codes the reader sees, or only their own user id; events of no unit too?)."""
    if who.role not in READERS:
        return None, who.user_id, False
    store = request.app[STORE_KEY]
    async with store.connect() as conn:
        ids = await subtree_ids(conn, who.user.unit_id)
        codes = set((await conn.execute(select(schema.units.c.code).where(
            schema.units.c.id.in_(ids)))).scalars())
        parent = (await conn.execute(select(schema.units.c.parent_id).where(
            schema.units.c.id == who.user.unit_id))).scalar_one_or_none()
    return frozenset(codes), None, parent is None


def _filter(request: web.Request, scope: frozenset[str] | None,
            only: int | None, unitless: bool = False) -> RecordFilter:
    q = request.query
    camera = q.get("camera")
    if camera is not None and (not camera.isdigit() or len(camera) > 10):
        raise BadRequest("camera must be a camera id")
    result = q.get("result")
    if result is not None and result not in ("allowed", "denied", "ok"):
        raise BadRequest("result must be allowed, denied or ok")
    kind = q.get("kind")
    if kind is not None and kind not in ("view", "denied", "admin", "auth", "journal"):
        raise BadRequest("kind must be view, denied, admin, auth or journal")
    unit = q.get("unit")
    if unit is not None:
        parse_unit_code(unit, "unit")
    try:
        since = parse_datetime(q.get("since"), "since")
        until = parse_datetime(q.get("until"), "until")
    except ValidationError as err:
        raise BadRequest(err.detail) from None
    return RecordFilter(user=q.get("user"), unit=unit,
                        camera_id=None if camera is None else int(camera), since=since,
                        until=until, result=result, kind=kind, scope_units=scope,
                        unitless=unitless, only_user_id=only)


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise BadRequest(f"{name} must be a whole number up to {high}")
    return int(raw)


@api.route("GET", "/api/v1/audit",
           summary="The access log: one record per use, refusals and admin actions",
           tag="audit", params=[
               query("user", {"type": "string", "maxLength": 64}),
               query("unit", code_schema, "the user's or the camera's unit"),
               query("camera", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
               query("since", _when),
               query("until", _when),
               query("result", {"type": "string", "enum": ["allowed", "denied", "ok"]}),
               query("kind", {"type": "string", "enum": ["view", "denied", "admin", "auth",
                                                         "journal"]}),
               query("format", {"type": "string", "enum": ["json", "csv"]}),
               query("limit", {"type": "integer", "minimum": 1, "maximum": 100000}),
               query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9}),
           ], responses={200: ("Access records (JSON array, or CSV with a header row)",
                               {"type": "array", "items": RECORD},
                               "application/json,text/csv")})
async def audit_list(request: web.Request) -> web.Response:
    who = principal(request)
    scope, only, unitless = await _scope(request, who)
    flt = _filter(request, scope, only, unitless)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv")
    journal: Journal = request.app[JOURNAL_KEY]
    limit = _int_query(request, "limit", 100 if fmt == "json" else 100000, 100000)
    offset = _int_query(request, "offset", 0, 10**9)
    records = await journal.records(flt, limit=max(limit, 1), offset=offset)
    if fmt == "json":
        return web.json_response(records)
    await _record(request, "audit.export", records=len(records))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(RECORD_COLUMNS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")


@api.route("GET", "/api/v1/audit/verify",
           summary="Check the journal's HMAC chain (edited, deleted, inserted, truncated)",
           tag="audit", ok=VERIFY)
async def audit_verify(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in READERS:
        raise AccessDenied("auditors, approvers and administrators verify the access log")
    report = await request.app[JOURNAL_KEY].verify()
    return web.json_response({"ok": report.ok, "events": report.events,
                              "head_seq": report.head_seq, "problems": report.problems})


# ---- users beyond the basics ---------------------------------------------------------------

_username = path_param("username", {"type": "string", "maxLength": 64}, "user name")


async def _user(request: web.Request) -> User:
    name = request.match_info["username"]
    try:
        return await request.app[ACCOUNTS_KEY].get_user(name)
    except UserNotFound:
        raise UserNotFound(f"user {name[:64]!r} does not exist") from None


@api.route("GET", "/api/v1/users/{username}", summary="Show a user", tag="users",
           params=[_username], ok={"$ref": "#/components/schemas/User"})
async def get_user(request: web.Request) -> web.Response:
    who = principal(request)
    user = await _user(request)
    if user.id != who.user_id:
        await check_admin_of(request, who, user)
    return web.json_response(user_json(user))


@api.route("PATCH", "/api/v1/users/{username}",
           summary="Disable/enable a user or change the role (live views cut at once)",
           tag="users", params=[_username], body=USER_PATCH,
           ok={"$ref": "#/components/schemas/User"}, errors=(400, 401, 403, 404, 422))
async def update_user(request: web.Request) -> web.Response:
    who = principal(request)
    user = await _user(request)
    await check_admin_of(request, who, user)
    body = request[BODY_KEY]
    if user.id == who.user_id and (body.get("disabled") or body.get("role") not in (
            None, who.role.value)):
        raise AccessDenied("you cannot disable yourself or change your own role; ask another "
                           "administrator")
    updated = await request.app[ACCOUNTS_KEY].update_user(
        user.username, disabled=body.get("disabled"),
        role=None if body.get("role") is None else Role(body["role"]),
        display_name=body.get("display_name", ...))
    await _sweep(request)
    await _record(request, "user.update", user=user.username,
                  changes={k: body[k] for k in sorted(body)})
    return web.json_response(user_json(updated))
