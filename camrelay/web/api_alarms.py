"""Alarms over the API (:mod:`camrelay.health.alarms`), and their webhooks' place in the app.

``GET /api/v1/alarms``: the alarms routed to a unit of the caller's subtree (an alarm of
another unit does not exist for the caller), newest first, filtered by active/cleared,
unit (its subtree), camera, kind and time.  ``POST /api/v1/alarms/{id}/ack``: the
caller acknowledges it with a comment; journalled as an administrative action
(``alarm.ack``).  Raised, cleared and acknowledged alarms go to the live channel of the
routed units' users as ``alarm.raised`` / ``alarm.cleared`` / ``alarm.acked``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from camrelay.access.accounts import Role
from camrelay.catalog.service import subtree_ids
from camrelay.errors import AccessDenied, ValidationError
from camrelay.fields import parse_datetime
from camrelay.health.alarms import AlarmFilter, AlarmNotFound, alarm_json
from camrelay.web.context import principal
from camrelay.web.keys import (
    ALARMS_KEY,
    BODY_KEY,
    CATALOG_KEY,
    POLICY_KEY,
    STORE_KEY,
    WEBHOOKS_KEY,
)
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import code_schema

api = Api()
MAX_LISTED = 1000
ACKERS = frozenset(Role) - {Role.AUDITOR}  # auditors read, they do not handle

ALARM = api.schema("Alarm", {
    "type": "object",
    "required": ["id", "camera_id", "kind", "severity", "count", "raised_at", "last_seen_at",
                 "active", "units"],
    "properties": {
        "id": {"type": "integer"}, "camera_id": {"type": "integer"},
        "kind": {"type": "string", "description": "offline, fault.<reason> (e.g. fault.auth), "
                 "finding.<kind> (e.g. finding.black)"},
        "severity": {"type": "string", "enum": ["critical", "major", "minor"]},
        "reason": {"type": ["string", "null"]},
        "value": {"type": "object", "description": "what was measured: the finding "
                  "{kind, value, threshold} or {reason}"},
        "count": {"type": "integer", "description": "checks that saw it (repeats merged)"},
        "raised_at": {"type": "string", "format": "date-time"},
        "last_seen_at": {"type": "string", "format": "date-time"},
        "cleared_at": {"type": ["string", "null"], "format": "date-time"},
        "active": {"type": "boolean"},
        "units": {"type": "array", "items": {"type": "string"},
                  "description": "codes of the units it is routed to"},
        "ack": {"type": ["object", "null"], "properties": {
            "by": {"type": ["string", "null"]}, "comment": {"type": "string"},
            "at": {"type": "string", "format": "date-time"}}},
    },
})
ACK = api.schema("AlarmAck", {
    "type": "object", "additionalProperties": False, "required": ["comment"],
    "properties": {"comment": {"type": "string", "minLength": 1, "maxLength": 2000}},
})


async def _visible(request: web.Request) -> frozenset[int]:
    return frozenset(await request.app[POLICY_KEY].jurisdiction(principal(request)))


@api.route("GET", "/api/v1/alarms", tag="health",
           summary="Alarms routed to the units of your subtree, newest first",
           params=[query("active", {"type": "boolean"},
                         "true: not cleared; false: cleared; absent: both"),
                   query("unit", code_schema, "routed to this unit's subtree"),
                   query("camera", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                         "camera id"),
                   query("kind", {"type": "string", "minLength": 1, "maxLength": 64},
                         "e.g. offline, fault.auth, finding.black"),
                   query("since", {"type": "string", "format": "date-time"},
                         "seen since this time")],
           ok={"type": "array", "items": ALARM})
async def list_alarms(request: web.Request) -> web.Response:
    who = principal(request)
    visible = await _visible(request)
    q = request.query
    active = None
    if "active" in q:
        raw = q["active"].lower()
        if raw not in ("true", "false", "1", "0"):
            raise ValidationError("active must be true or false", field="active")
        active = raw in ("true", "1")
    unit_ids = None
    if q.get("unit"):
        unit = await request.app[CATALOG_KEY].get_unit(q["unit"])
        if unit.id not in visible:
            raise AccessDenied(f"unit {unit.code!r} is outside your jurisdiction "
                               f"({who.user.unit_code} and below)")
        async with request.app[STORE_KEY].connect() as conn:
            unit_ids = frozenset(await subtree_ids(conn, unit.id))
    camera = None
    if q.get("camera"):
        raw = q["camera"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
            raise ValidationError("camera must be a camera id", field="camera")
        camera = int(raw)
    where = AlarmFilter(active=active, unit_ids=unit_ids, camera_id=camera,
                        kind=q.get("kind") or None, since=parse_datetime(q.get("since"), "since"))
    alarms = await request.app[ALARMS_KEY].list(visible, where, limit=MAX_LISTED)
    return web.json_response([alarm_json(a) for a in alarms])


def _alarm_id(request: web.Request) -> int:
    raw = request.match_info["alarm_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) < 2**31:
        raise AlarmNotFound(f"alarm {raw[:40]!r} does not exist")
    return int(raw)


@api.route("POST", "/api/v1/alarms/{alarm_id}/ack", tag="health",
           summary="Acknowledge an alarm with a comment (journalled)",
           params=[path_param("alarm_id", {"type": "integer", "minimum": 1,
                                           "maximum": 2**31 - 1}, "alarm id")],
           body=ACK, ok=ALARM, errors=(400, 401, 403, 404, 409, 422))
async def ack_alarm(request: web.Request) -> web.Response:
    who = principal(request)
    alarm_id = _alarm_id(request)
    visible = await _visible(request)
    alarms = request.app[ALARMS_KEY]
    if who.role not in ACKERS:
        await alarms.get(alarm_id, visible)  # 404 before 403: no hint of others' alarms
        raise AccessDenied(f"the {who.role.value} role does not acknowledge alarms")
    comment = request[BODY_KEY]["comment"].strip()
    if not comment:
        raise ValidationError("comment must say what is being done", field="comment")
    alarm = await alarms.ack(alarm_id, visible, user_id=who.user_id,
                             username=who.user.username, comment=comment)
    await request.app[POLICY_KEY].record_admin(who, "alarm.ack", camera_id=alarm.camera_id,
                                               detail={"alarm": alarm.id, "kind": alarm.kind,
                                                       "comment": comment})
    return web.json_response(alarm_json(alarm))


def setup_alarms(app: web.Application) -> None:
    """Run the webhooks' tasks (``WEBHOOKS_KEY``) with the app; add the routes."""
    webhooks = app[WEBHOOKS_KEY]

    async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
        await webhooks.start()
        yield
        await webhooks.stop()

    app.cleanup_ctx.append(webhooks_ctx)
    api.install(app)
