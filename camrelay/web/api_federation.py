"""Linking platforms over the API: credentials and pushes (the lower side), links (the
upper side), the shared catalogue and the view reports an upper platform calls.

Lower side: ``POST /api/v1/federation/credentials`` (administrators, for units of their
subtree), its list and ``DELETE`` (a revocation cuts the upper platform's pulls at once
and ends its live channel); ``POST /api/v1/federation/push`` (operators and
administrators, cameras they may watch); ``GET /api/v1/federation/catalogue`` and
``POST /api/v1/federation/views`` (the credential itself).  Upper side:
``POST/GET /api/v1/federation/links``, ``DELETE /api/v1/federation/links/{id}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.access.federated import FederationScope, federation_scope
from camrelay.access.journal import JournalEvent
from camrelay.errors import AccessDenied, NotFound
from camrelay.events import Event
from camrelay.federation.credentials import Credentials, credential_json
from camrelay.federation.links import link_json
from camrelay.federation.sync import ViewReport
from camrelay.fields import utcnow
from camrelay.web.context import principal
from camrelay.web.keys import (
    ACCOUNTS_KEY,
    BODY_KEY,
    CATALOG_KEY,
    EVENTS_KEY,
    FEDERATION_KEY,
    JOURNAL_KEY,
    POLICY_KEY,
    SETTINGS_KEY,
    VIEWS_KEY,
)
from camrelay.web.openapi import Api, path_param

log = logging.getLogger(__name__)

api = Api()
_id = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_code = {"type": "string", "minLength": 1, "maxLength": 64}

CREDENTIAL = api.schema("FederationCredential", {
    "type": "object", "required": ["id", "name", "units", "cameras", "active"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                   "account": {"type": "string"},
                   "units": {"type": "array", "items": {"type": "string"}},
                   "cameras": {"type": "array", "items": {"type": "integer"}},
                   "created_at": {"type": "string"}, "revoked_at": {"type": ["string", "null"]},
                   "active": {"type": "boolean"},
                   "token": {"type": "string", "description": "only when issued: shown once"}},
})
CREDENTIAL_NEW = api.schema("FederationCredentialNew", {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64},
                   "units": {"type": "array", "maxItems": 1000, "items": _code},
                   "cameras": {"type": "array", "maxItems": 10000, "items": _id}},
})
LINK = api.schema("FederationLink", {
    "type": "object", "required": ["id", "name", "url", "attach_under", "state", "stale"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                   "url": {"type": "string"}, "attach_under": {"type": "string"},
                   "state": {"type": "string", "enum": ["connecting", "connected", "error"]},
                   "stale": {"type": "boolean"}, "error": {"type": ["string", "null"]},
                   "remote_platform": {"type": ["string", "null"]},
                   "last_sync_at": {"type": ["string", "null"]},
                   "created_at": {"type": "string"}, "units": {"type": "integer"},
                   "cameras": {"type": "integer"}},
})
LINK_NEW = api.schema("FederationLinkNew", {
    "type": "object", "additionalProperties": False,
    "required": ["name", "url", "credential", "attach_under"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64},
                   "url": {"type": "string", "minLength": 1, "maxLength": 1000},
                   "credential": {"type": "string", "minLength": 1, "maxLength": 200},
                   "attach_under": _code},
})
VIEW_REPORT = api.schema("FederationViewReport", {
    "type": "object", "additionalProperties": False,
    "required": ["camera_id", "event", "ref", "user", "unit", "purpose"],
    "properties": {"camera_id": _id, "event": {"type": "string", "enum": ["open", "close"]},
                   "ref": {"type": "string", "minLength": 1, "maxLength": 32},
                   "user": {"type": "string", "minLength": 1, "maxLength": 64},
                   "unit": {"type": "string", "minLength": 1, "maxLength": 64},
                   "purpose": {"type": "string", "maxLength": 200},
                   "platform": {"type": "string", "minLength": 1, "maxLength": 64},
                   "audio": {"type": "string", "minLength": 1, "maxLength": 16,
                             "description": "on close: the codec the viewer above was "
                                            "sent the camera's audio in"}},
})
PUSH = api.schema("FederationPush", {
    "type": "object", "additionalProperties": False, "required": ["cameras", "minutes",
                                                                   "reason"],
    "properties": {"cameras": {"type": "array", "minItems": 1, "maxItems": 100, "items": _id},
                   "minutes": {"type": "number", "minimum": 1, "maximum": 1440},
                   "reason": {"type": "string", "minLength": 1, "maxLength": 200},
                   "credentials": {"type": "array", "maxItems": 100, "items": _id}},
})


def _credentials(request: web.Request) -> Credentials:
    return Credentials(request.app[CATALOG_KEY], request.app[ACCOUNTS_KEY])


def _admin(who: Principal) -> None:
    if who.role is not Role.ADMINISTRATOR:
        raise AccessDenied("only administrators link platforms")


def _number(raw: str, what: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) >= 2**31:
        raise NotFound(f"{what} {raw[:20]!r} does not exist")
    return int(raw)


async def _scope(request: web.Request, who: Principal) -> FederationScope:
    if who.role is not Role.FEDERATION:
        raise AccessDenied("this route is for an upper platform's federation credential")
    async with request.app[CATALOG_KEY].store.connect() as conn:
        scope = await federation_scope(conn, who.user_id, utcnow())
    if scope is None:
        raise AccessDenied("this federation credential has been revoked")
    return scope


async def platform_name(request: web.Request) -> str:
    configured = request.app[SETTINGS_KEY].federation.platform_name
    if configured:
        return configured
    tops = [u for u in await request.app[CATALOG_KEY].list_units() if u.parent_code is None]
    return tops[0].name if tops else "camrelay"


# ---- the lower side --------------------------------------------------------------------

@api.route("POST", "/api/v1/federation/credentials", tag="federation",
           summary="Issue a credential for an upper platform (its token is shown once)",
           body=CREDENTIAL_NEW, ok=CREDENTIAL, ok_status=201,
           errors=(400, 401, 403, 404, 409, 422))
async def issue(request: web.Request) -> web.Response:
    who = principal(request)
    _admin(who)
    body = request[BODY_KEY]
    units = list(dict.fromkeys(body.get("units") or []))
    policy = request.app[POLICY_KEY]
    for code in units:
        await policy.check_manage_unit(who, code)
    cameras = sorted(set(body.get("cameras") or []))
    catalog = request.app[CATALOG_KEY]
    for camera_id in cameras:
        await policy.check_manage_unit(who, (await catalog.get_camera(camera_id)).unit_code)
    secret, credential = await _credentials(request).issue(who.user, body["name"], units,
                                                           cameras)
    await policy.record_admin(who, "federation.credential_issue", detail={
        "credential": credential.name, "units": units, "cameras": cameras})
    return web.json_response(credential_json(credential) | {"token": secret}, status=201)


@api.route("GET", "/api/v1/federation/credentials", tag="federation",
           summary="Federation credentials issued here", ok={"type": "array",
                                                           "items": CREDENTIAL})
async def list_credentials(request: web.Request) -> web.Response:
    _admin(principal(request))
    return web.json_response([credential_json(c) for c in
                              await _credentials(request).all()])


@api.route("DELETE", "/api/v1/federation/credentials/{credential_id}", tag="federation",
           summary="Revoke a federation credential (its pulls are cut at once)",
           params=[path_param("credential_id", _id)], ok=CREDENTIAL)
async def revoke(request: web.Request) -> web.Response:
    who = principal(request)
    _admin(who)
    credential_id = _number(request.match_info["credential_id"], "federation credential")
    credential = await _credentials(request).revoke(credential_id)
    await request.app[VIEWS_KEY].sweep()  # its live pulls are cut now
    request.app[EVENTS_KEY].publish(Event("token.revoked", {
        "reason": "federation credential revoked", "by": who.user.username},
        token_id=credential.token_id))
    await request.app[POLICY_KEY].record_admin(who, "federation.credential_revoke", detail={
        "credential": credential.name})
    return web.json_response(credential_json(credential))


@api.route("GET", "/api/v1/federation/catalogue", tag="federation",
           summary="The shared catalogue (for a federation credential): units and cameras "
                   "with catalogue fields and status, never stream addresses or credentials",
           ok={"type": "object", "required": ["platform", "units", "cameras"]})
async def catalogue(request: web.Request) -> web.Response:
    scope = await _scope(request, principal(request))
    return web.json_response(await _credentials(request).shared(scope,
                                                                await platform_name(request)))


@api.route("POST", "/api/v1/federation/views", tag="federation",
           summary="Record who watches a shared camera above (for a federation credential)",
           body=VIEW_REPORT, ok={"type": "object", "properties": {
               "recorded": {"type": "boolean"}}})
async def report_view(request: web.Request) -> web.Response:
    who = principal(request)
    scope = await _scope(request, who)
    body = request[BODY_KEY]
    camera = await request.app[CATALOG_KEY].get_camera(body["camera_id"])
    if not scope.covers(camera):
        raise AccessDenied(f"camera {camera.id} is not shared with this credential")
    platform = body.get("platform") or scope.name
    opening = body["event"] == "open"
    detail = {"via": "federation", "credential": scope.name, "platform": platform,
              "upper_user": body["user"], "upper_unit": body["unit"]}
    audio = None if opening else body.get("audio")
    if audio is not None:
        detail["audio"] = audio  # the viewer above was sent the camera's audio
    # a view on behalf of the person above: paired open and close, like a local view
    event = JournalEvent(
        kind="view.open" if opening else "view.close", action="live", view_id=body["ref"],
        user_id=who.user_id, username=f"{body['user']}@{platform}"[:64],
        unit_code=body["unit"], camera_id=camera.id, camera_name=camera.name,
        camera_unit_code=camera.unit_code, purpose=body["purpose"] or None,
        basis="federation", client_address=request.remote,
        user_agent=request.headers.get("User-Agent"),
        result="allowed" if opening else "closed",
        reason=None if opening else "ended on the upper platform",
        detail=detail)
    journal = request.app[JOURNAL_KEY]
    if opening:
        await journal.open_view(event, request.app[VIEWS_KEY].node)
    else:
        await journal.close_view(event)
    if camera.link_id is not None and camera.remote_id is not None:  # pass it on down
        request.app[FEDERATION_KEY].report(ViewReport(
            link_id=camera.link_id, remote_id=camera.remote_id, event=body["event"],
            ref=body["ref"], user=body["user"], unit=body["unit"], purpose=body["purpose"],
            platform=platform, audio=audio))
    return web.json_response({"recorded": True})


@api.route("POST", "/api/v1/federation/push", tag="federation",
           summary="Push cameras to the upper platform(s) for a while", body=PUSH,
           ok={"type": "object", "properties": {"until": {"type": "string"},
                                                "cameras": {"type": "array"}}}, ok_status=201)
async def push(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in (Role.ADMINISTRATOR, Role.OPERATOR):
        raise AccessDenied("only operators and administrators push cameras upward")
    body = request[BODY_KEY]
    catalog = request.app[CATALOG_KEY]
    policy = request.app[POLICY_KEY]
    cameras = [await catalog.get_camera(i) for i in sorted(set(body["cameras"]))]
    for camera, rights in zip(cameras, await policy.rights_for(who, cameras)):
        if "live" not in rights:
            raise AccessDenied(f"you may not watch camera {camera.id}, so you cannot push it")
    targets = body.get("credentials")
    if targets is not None:
        known = {c.id for c in await _credentials(request).all() if c.revoked_at is None}
        for credential_id in targets:
            if credential_id not in known:
                raise NotFound(f"federation credential {credential_id} is not active")
    until = await _credentials(request).push(who.user, [c.id for c in cameras],
                                              float(body["minutes"]), body["reason"], targets)
    data: dict[str, Any] = {"cameras": [c.id for c in cameras], "until": until.isoformat(),
                            "reason": body["reason"], "by": who.user.username,
                            "unit": who.user.unit_code}
    await policy.record_admin(who, "federation.push", detail=data)
    request.app[EVENTS_KEY].publish(Event("federation.push", data,
                                          roles=frozenset({Role.FEDERATION.value})))
    return web.json_response({"until": data["until"], "cameras": data["cameras"]}, status=201)


# ---- the upper side --------------------------------------------------------------------

@api.route("POST", "/api/v1/federation/links", tag="federation",
           summary="Link a lower platform (its credential is sealed and never shown)",
           body=LINK_NEW, ok=LINK, ok_status=201, errors=(400, 401, 403, 404, 409, 422))
async def add_link(request: web.Request) -> web.Response:
    who = principal(request)
    _admin(who)
    body = request[BODY_KEY]
    await request.app[POLICY_KEY].check_manage_unit(who, body["attach_under"])
    federation = request.app[FEDERATION_KEY]
    link = await federation.links.add(who.user, body["name"], body["url"], body["credential"],
                                      body["attach_under"])
    federation.follow(link.id)
    await request.app[POLICY_KEY].record_admin(who, "federation.link_add", detail={
        "link": link.name, "url": link.url, "attach_under": link.attach_unit})
    return web.json_response(link_json(link), status=201)


@api.route("GET", "/api/v1/federation/links", tag="federation",
           summary="Linked lower platforms with their state", ok={"type": "array",
                                                                   "items": LINK})
async def list_links(request: web.Request) -> web.Response:
    principal(request)
    links = request.app[FEDERATION_KEY].links
    return web.json_response([link_json(one, await links.counts(one.id))
                              for one in await links.list()])


@api.route("DELETE", "/api/v1/federation/links/{link_id}", tag="federation",
           summary="Remove a link and everything imported over it",
           params=[path_param("link_id", _id)], ok=LINK)
async def remove_link(request: web.Request) -> web.Response:
    who = principal(request)
    _admin(who)
    link_id = _number(request.match_info["link_id"], "link")
    federation = request.app[FEDERATION_KEY]
    link = await federation.links.get(link_id)
    await request.app[POLICY_KEY].check_manage_unit(who, link.attach_unit)
    await federation.forget(link_id)
    await federation.links.remove(link_id)
    await request.app[VIEWS_KEY].sweep()  # views of its cameras end
    await request.app[POLICY_KEY].record_admin(who, "federation.link_remove",
                                               detail={"link": link.name})
    return web.json_response(link_json(link))


def setup_federation(app: web.Application) -> None:
    """Follow the links while the app runs; add the routes."""
    federation = app[FEDERATION_KEY]

    async def links_ctx(app: web.Application) -> AsyncIterator[None]:
        await federation.start()
        yield
        await federation.stop()

    app.cleanup_ctx.append(links_ctx)
    api.install(app)
