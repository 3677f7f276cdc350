"""REST routes for signing in, users and API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from camrelay.access.accounts import Accounts, Principal, Role, TokenInfo, TokenKind, User
from camrelay.access.journal import JournalEvent
from camrelay.catalog.service import subtree_ids
from camrelay.errors import (
    AccessDenied,
    AuthenticationRequired,
    NotFound,
    TooManyRequests,
    UserNotFound,
    ValidationError,
)
from camrelay.events import Event
from camrelay.fields import parse_datetime, utcnow
from camrelay.web.context import principal
from camrelay.web.keys import (
    ACCOUNTS_KEY,
    AUTH_FAILURES_KEY,
    BODY_KEY,
    EVENTS_KEY,
    JOURNAL_KEY,
    LOCKOUT_KEY,
    POLICY_KEY,
    STORE_KEY,
    VIEWS_KEY,
)
from camrelay.web.openapi import Api, path_param, query
from camrelay.web.params import check_admin_of
from camrelay.web.present import user_json

api = Api()

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)

USER = api.schema("User", {
    "type": "object", "required": ["id", "username", "unit", "role", "disabled"],
    "properties": {
        "id": {"type": "integer"}, "username": {"type": "string"},
        "display_name": {"type": ["string", "null"]}, "unit": {"type": "string"},
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "disabled": {"type": "boolean"}, "service": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
})
TOKEN = api.schema("Token", {
    "type": "object", "required": ["id", "user", "kind"],
    "properties": {
        "id": {"type": "integer"}, "user": {"type": "string"}, "name": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": [k.value for k in TokenKind]},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "token": {"type": "string", "description": "the secret; shown once, at creation"},
    },
})
LOGIN = api.schema("Login", {
    "type": "object", "additionalProperties": False, "required": ["username", "password"],
    "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 64},
                   "password": {"type": "string", "minLength": 1, "maxLength": 256}},
})
USER_NEW = api.schema("UserNew", {
    "type": "object", "additionalProperties": False, "required": ["username", "unit", "role"],
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 64},
        "unit": {"type": "string", "minLength": 1, "maxLength": 64},
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "password": {"type": ["string", "null"], "minLength": 8, "maxLength": 256},
        "display_name": {"type": ["string", "null"], "maxLength": 200},
        "service": {"type": "boolean"},
    },
})
PASSWORD_NEW = api.schema("PasswordNew", {
    "type": "object", "additionalProperties": False, "required": ["password"],
    "properties": {
        "password": {"type": "string", "minLength": 8, "maxLength": 256,
                     "description": "the new password"},
        "old_password": {"type": "string", "minLength": 1, "maxLength": 256,
                         "description": "the current one: required to change your own"},
    },
})
TOKEN_NEW = api.schema("TokenNew", {
    "type": "object", "additionalProperties": False, "required": ["user"],
    "properties": {
        "user": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": ["string", "null"], "maxLength": 100},
        "expires_in_hours": {"type": ["integer", "null"], "minimum": 1, "maximum": 876_000,
                             "description": "whole hours from now; or give expires_at"},
        "expires_at": {"type": ["string", "null"], "format": "date-time",
                       "description": "the exact expiry, RFC 3339 with an offset; in the "
                                      "future, at most 100 years ahead; not with "
                                      "expires_in_hours"},
    },
})
MAX_TOKEN_LIFETIME = timedelta(hours=876_000)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def token_json(info: TokenInfo, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": info.id, "user": info.username, "name": info.name, "kind": info.kind.value,
        "created_at": _iso(info.created_at), "expires_at": _iso(info.expires_at),
        "revoked_at": _iso(info.revoked_at),
    }
    if secret is not None:
        out["token"] = secret
    return out


def _accounts(request: web.Request) -> Accounts:
    return request.app[ACCOUNTS_KEY]


def require_admin(who: Principal) -> None:
    if who.role is not Role.ADMINISTRATOR:
        raise AccessDenied("only administrators manage accounts and tokens")


async def _failed_login(request: web.Request, username: str | None,
                        reason: str = "wrong password, or unknown or disabled user") -> None:
    """Count a failed sign-in for the lockout; journal the failure (aggregated) and the
    lock it sets off, if any."""
    address = request.remote
    failures = request.app.get(AUTH_FAILURES_KEY)
    if failures is not None:
        await failures.record(username=username, address=address, reason=reason,
                              user_agent=request.headers.get("User-Agent"))
    lockout = request.app.get(LOCKOUT_KEY)
    if lockout is None:
        return
    locked = await lockout.count_failure(username, address)
    if locked is not None and JOURNAL_KEY in request.app:
        await request.app[JOURNAL_KEY].append(JournalEvent(
            kind="auth", action="login.locked",
            username=None if username is None else username[:64],
            client_address=address, result="denied",
            user_agent=request.headers.get("User-Agent"),
            reason=f"too many failed sign-ins: {locked} locked"))


async def _check_password(request: web.Request, username: str, password: str) -> User:
    """The user if the password is right; a wrong one counts towards the lockout (and a
    lock is journalled) wherever it is tried: signing in or changing the password."""
    lockout = request.app.get(LOCKOUT_KEY)
    address = request.remote
    if lockout is not None:
        try:
            await lockout.before_attempt(username, address)
        except TooManyRequests:
            failures = request.app.get(AUTH_FAILURES_KEY)
            if failures is not None:
                await failures.record(username=username, address=address,
                                      reason="sign-in while locked out",
                                      user_agent=request.headers.get("User-Agent"))
            raise
    try:
        user = await _accounts(request).verify_password(username, password)
    except AuthenticationRequired:
        await _failed_login(request, username)
        raise
    if lockout is not None:
        await lockout.clear_failures(username, address)
    return user


async def _login_refused(request: web.Request, body: Any) -> None:
    """A sign-in whose body is refused (not JSON, hostile, breaking the schema) is a failed
    attempt too; it names an account only with a plain user name string."""
    name = body.get("username") if isinstance(body, dict) else None
    await _failed_login(request, name if isinstance(name, str) and 0 < len(name) <= 64
                        else None, "sign-in request refused (malformed)")


@api.route("POST", "/api/v1/auth/login", summary="Sign in; returns a bearer token",
           tag="auth", body=LOGIN, public=True, refused=_login_refused,
           ok={"type": "object", "required": ["token", "expires_at", "user"],
               "properties": {"token": {"type": "string"},
                              "expires_at": {"type": "string", "format": "date-time"},
                              "user": USER}},
           errors=(400, 401, 422, 429))
async def login(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    user = await _check_password(request, body["username"], body["password"])
    secret, info = await _accounts(request).create_token(
        user.id, kind=TokenKind.LOGIN, name="login", lifetime=LOGIN_TOKEN_LIFETIME)
    return web.json_response({"token": secret, "expires_at": _iso(info.expires_at),
                              "user": user_json(user)})


@api.route("POST", "/api/v1/auth/logout", summary="Sign out: revoke the calling token",
           tag="auth", ok={"type": "object", "required": ["revoked"],
                           "properties": {"revoked": {"type": "boolean"}}},
           errors=(401,))
async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    await _accounts(request).revoke_token(who.token_id)
    views = request.app.get(VIEWS_KEY)
    if views is not None:
        await views.revoked()  # the page's live views end with its sign-in
    if JOURNAL_KEY in request.app:
        await request.app[JOURNAL_KEY].append(JournalEvent(
            kind="auth", action="logout", user_id=who.user_id, username=who.user.username,
            unit_code=who.user.unit_code, client_address=request.remote, result="ok",
            user_agent=request.headers.get("User-Agent"),
            detail={"token_id": who.token_id, "kind": who.token_kind.value}))
    _token_ended(request, who.token_id, "signed out")
    return web.json_response({"revoked": True})


def _token_ended(request: web.Request, token_id: int, reason: str, by: str | None = None
                 ) -> None:
    """Tell the token's live channels (their pages go back to the sign-in)."""
    bus = request.app.get(EVENTS_KEY)
    if bus is not None:
        bus.publish(Event("token.revoked", {"reason": reason, "by": by}, token_id=token_id))


@api.route("GET", "/api/v1/auth/me", summary="Who the token belongs to", tag="auth", ok=USER)
async def me(request: web.Request) -> web.Response:
    return web.json_response(user_json(principal(request).user))


@api.route("GET", "/api/v1/users", summary="List users", tag="users",
           ok={"type": "array", "items": USER})
async def list_users(request: web.Request) -> web.Response:
    who = principal(request)
    require_admin(who)
    own = await _subtree(request, who)
    return web.json_response([user_json(u) for u in await _accounts(request).list_users()
                              if u.unit_id in own])


async def _subtree(request: web.Request, who: Principal) -> set[int]:
    async with request.app[STORE_KEY].connect() as conn:
        return await subtree_ids(conn, who.user.unit_id)


async def _journal(request: web.Request, action: str, **detail: Any) -> None:
    await request.app[POLICY_KEY].record_admin(principal(request), action, detail=detail,
                                                client_address=request.remote)


@api.route("POST", "/api/v1/users", summary="Add a user", tag="users", body=USER_NEW,
           ok=USER, ok_status=201, errors=(400, 401, 403, 409, 422))
async def add_user(request: web.Request) -> web.Response:
    who = principal(request)
    require_admin(who)
    body = request[BODY_KEY]
    await request.app[POLICY_KEY].check_manage_unit(who, body["unit"], missing_ok=True)
    user = await _accounts(request).add_user(
        body["username"], unit_code=body["unit"], role=Role(body["role"]),
        password=body.get("password"), display_name=body.get("display_name"),
        service=bool(body.get("service", False)))
    await _journal(request, "user.add", user=user.username, unit=user.unit_code,
                   role=user.role.value, service=user.service)
    return web.json_response(user_json(user), status=201)


@api.route("GET", "/api/v1/tokens", summary="List tokens (never their secrets)",
           tag="tokens", params=[query("user", {"type": "string", "maxLength": 64})],
           ok={"type": "array", "items": TOKEN})
async def list_tokens(request: web.Request) -> web.Response:
    who = principal(request)
    name = request.query.get("user")
    if who.role is not Role.ADMINISTRATOR:
        tokens = await _accounts(request).list_tokens(who.user_id)
    else:
        own = await _subtree(request, who)
        users = {u.id for u in await _accounts(request).list_users() if u.unit_id in own}
        tokens = [t for t in await _accounts(request).list_tokens() if t.user_id in users]
    if name is not None:
        tokens = [t for t in tokens if t.username == name]
    return web.json_response([token_json(t) for t in tokens])


@api.route("POST", "/api/v1/tokens", summary="Create an API token (shown once)", tag="tokens",
           body=TOKEN_NEW, ok=TOKEN, ok_status=201)
async def create_token(request: web.Request) -> web.Response:
    who = principal(request)
    require_admin(who)
    body = request[BODY_KEY]
    user = await _accounts(request).get_user(body["user"])
    await check_admin_of(request, who, user)
    hours = body.get("expires_in_hours")
    secret, info = await _accounts(request).create_token(
        user.id, kind=TokenKind.API, name=body.get("name"),
        lifetime=None if hours is None else timedelta(hours=hours),
        expires_at=_expiry(body.get("expires_at"), hours))
    await _journal(request, "token.create", token_id=info.id, user=user.username,
                   expires_at=_iso(info.expires_at))
    return web.json_response(token_json(info, secret), status=201)


def _expiry(value: Any, hours: int | None) -> datetime | None:
    """``expires_at`` of a new token: exact, in the future, not with expires_in_hours."""
    when = parse_datetime(value, "expires_at")
    if when is None:
        return None
    if hours is not None:
        raise ValidationError("give expires_at or expires_in_hours, not both",
                              field="expires_at")
    now = utcnow()
    if when <= now:
        raise ValidationError("expires_at has passed; give a time in the future",
                              field="expires_at")
    if when - now > MAX_TOKEN_LIFETIME:
        raise ValidationError("expires_at is more than 100 years ahead", field="expires_at")
    return when


@api.route("DELETE", "/api/v1/tokens/{token_id}", summary="Revoke a token", tag="tokens",
           params=[path_param("token_id", {"type": "integer", "minimum": 1,
                                           "maximum": 2**31 - 1})], ok=TOKEN)
async def revoke_token(request: web.Request) -> web.Response:
    who = principal(request)
    raw = request.match_info["token_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) >= 2**31:
        raise NotFound(f"token {raw[:20]!r} does not exist")
    info = await _accounts(request).token_info(int(raw))
    if info.user_id != who.user_id:  # anyone may revoke their own tokens
        await check_admin_of(request, who, await _accounts(request).get_user(info.username))
    revoked = await _accounts(request).revoke_token(int(raw))
    views = request.app.get(VIEWS_KEY)
    if views is not None:
        await views.revoked()  # its live views are cut now, not at the next check
    await _journal(request, "token.revoke", token_id=info.id, user=info.username)
    _token_ended(request, info.id, "token revoked", by=who.user.username)
    return web.json_response(token_json(revoked))


@api.route("PUT", "/api/v1/users/{username}/password",
           summary="Set a new password (your own with the old one; an administrator for "
                   "the users of the subtree); the user's other login sessions end",
           tag="users", body=PASSWORD_NEW,
           params=[path_param("username", {"type": "string", "maxLength": 64}, "user name")],
           ok={"type": "object", "required": ["user", "sessions_ended"],
               "properties": {"user": USER, "sessions_ended": {"type": "integer"}}},
           errors=(400, 401, 403, 404, 409, 422, 429))
async def set_password(request: web.Request) -> web.Response:
    who = principal(request)
    body = request[BODY_KEY]
    name = request.match_info["username"]
    if name == who.user.username:
        if "old_password" not in body:
            raise ValidationError("give your current password (old_password) to change it",
                                  field="old_password")
        try:
            await _check_password(request, name, body["old_password"])
        except AuthenticationRequired:
            raise AccessDenied("the current password is wrong") from None
    else:
        try:
            user = await _accounts(request).get_user(name)
        except UserNotFound:
            raise UserNotFound(f"user {name[:64]!r} does not exist") from None
        await check_admin_of(request, who, user)
    updated, ended = await _accounts(request).set_password(
        name, body["password"], keep_token_id=who.token_id)
    views = request.app.get(VIEWS_KEY)
    if views is not None:
        await views.revoked()  # views on the ended sessions are cut now
    await _journal(request, "user.password", user=updated.username, sessions_ended=ended)
    return web.json_response({"user": user_json(updated), "sessions_ended": ended})
