"""Users and API tokens.

Passwords are hashed with argon2.  A token is a random secret shown once; the store
keeps only its SHA-256 digest, so checking a bearer token costs one hash and one
indexed lookup, not an argon2 verification.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from camrelay import roles
from camrelay.errors import (
    AuthenticationRequired,
    Conflict,
    NotFound,
    UserNotFound,
    ValidationError,
)
from camrelay.fields import utcnow
from camrelay.store import Store, schema
from camrelay.store.db import AsyncConnection

TOKEN_PREFIX = "crt_"
# Argon2id with the library's defaults (64 MiB, 3 passes): tens of milliseconds of CPU,
# always in a worker thread (the C code releases the GIL), never on the event loop that
# carries live video.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so timing does not tell who exists
    (made on first use: every CLI command imports this module)."""
    return _hasher.hash("camrelay-no-such-user")


def _verify(stored: str | None, password: str) -> bool:
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None

# the roles live in camrelay.roles (the settings name them too); importable from here
Role = roles.Role

_users = schema.users
_tokens = schema.tokens
_units = schema.units


class TokenKind(StrEnum):
    LOGIN = "login"
    API = "api"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str | None
    unit_id: int
    unit_code: str
    role: Role
    disabled: bool
    service: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user_id: int
    username: str
    name: str | None
    kind: TokenKind
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user behind a valid bearer token."""

    user: User
    token_id: int
    token_digest: str
    token_kind: TokenKind
    token_expires_at: datetime | None

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def role(self) -> Role:
        return self.user.role


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < 8:
        raise ValidationError("password must have at least 8 characters", field="password")
    if len(password) > 256:
        raise ValidationError("password is longer than 256 characters", field="password")


USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def check_username(username: Any) -> str:
    if (not isinstance(username, str) or not 1 <= len(username) <= 64
            or not set(username) <= USERNAME_CHARS):
        raise ValidationError("username must be 1-64 letters, digits, '.', '_', '-' or '@'",
                              field="username")
    return username


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"], username=row["username"], display_name=row["display_name"],
        unit_id=row["unit_id"], unit_code=row["unit_code"], role=Role(row["role"]),
        disabled=bool(row["disabled"]), service=bool(row["service"]),
        created_at=row["created_at"],
    )


def _token(row: RowMapping) -> TokenInfo:
    return TokenInfo(
        id=row["id"], user_id=row["user_id"], username=row["username"], name=row["name"],
        kind=TokenKind(row["kind"]), created_at=row["created_at"],
        expires_at=row["expires_at"], revoked_at=row["revoked_at"],
    )


@functools.cache  # built once: every request authenticates
def _principal_query() -> Any:
    return select(
        _tokens.c.id.label("token_id"), _tokens.c.kind.label("token_kind"),
        _tokens.c.expires_at.label("token_expires_at"),
        _tokens.c.revoked_at.label("token_revoked_at"), _users,
        _units.c.code.label("unit_code"),
    ).select_from(
        _tokens.join(_users, _users.c.id == _tokens.c.user_id)
        .join(_units, _units.c.id == _users.c.unit_id)
    ).where(_tokens.c.digest == bindparam("digest"))


class TokenRefused(AuthenticationRequired):
    """A bearer token that was presented and refused; ``reason`` and ``username`` (when
    the token is known) are for the access journal, never for the response."""

    def __init__(self, detail: str, *, reason: str, username: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.username = username


class Accounts:
    def __init__(self, store: Store) -> None:
        self.store = store

    _user_query = select(_users, _units.c.code.label("unit_code")).select_from(
        _users.join(_units, _units.c.id == _users.c.unit_id))

    async def user_in(self, conn: AsyncConnection, *, username: str | None = None,
                      user_id: int | None = None) -> User:
        query = self._user_query
        query = (query.where(_users.c.username == username) if username is not None
                 else query.where(_users.c.id == user_id))
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise UserNotFound(f"user {username or user_id!r} does not exist")
        return _user(row)

    async def get_user(self, username: str) -> User:
        async with self.store.connect() as conn:
            return await self.user_in(conn, username=username)

    async def list_users(self) -> list[User]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(self._user_query.order_by(_users.c.username))).mappings()
            return [_user(r) for r in rows]

    async def add_user(self, username: str, *, unit_code: str, role: Role,
                       password: str | None, display_name: str | None = None,
                       service: bool = False, conn: AsyncConnection | None = None) -> User:
        check_username(username)
        if password is not None:
            check_password_strength(password)
        elif not service:
            raise ValidationError("a person's account needs a password", field="password")
        password_hash = None if password is None else await asyncio.to_thread(
            hash_password, password)  # before the transaction: it holds SQLite's write lock
        async with self.store.using(conn, write=True) as c:
            unit_id = (await c.execute(select(_units.c.id).where(_units.c.code == unit_code))
                       ).scalar_one_or_none()
            if unit_id is None:
                raise ValidationError(f"unit {unit_code!r} does not exist", field="unit")
            now = utcnow()
            try:
                await c.execute(_users.insert().values(
                    username=username, display_name=display_name, unit_id=unit_id,
                    role=role.value, password_hash=password_hash, disabled=False, service=service,
                    created_at=now, updated_at=now))
            except IntegrityError:
                raise Conflict(f"user {username!r} already exists", field="username") from None
            return await self.user_in(c, username=username)

    async def set_disabled(self, username: str, disabled: bool) -> User:
        async with self.store.begin() as conn:
            user = await self.user_in(conn, username=username)
            await conn.execute(_users.update().where(_users.c.id == user.id).values(
                disabled=disabled, updated_at=utcnow()))
            return await self.user_in(conn, username=username)

    async def update_user(self, username: str, *, disabled: bool | None = None,
                          role: Role | None = None, display_name: Any = ...) -> User:
        """Change what is given (``...``: leave the display name as it is)."""
        values: dict[str, Any] = {}
        if disabled is not None:
            values["disabled"] = disabled
        if role is not None:
            values["role"] = role.value
        if display_name is not ...:
            if display_name is not None and (not isinstance(display_name, str)
                                             or len(display_name) > 200):
                raise ValidationError("display_name must be at most 200 characters",
                                      field="display_name")
            values["display_name"] = display_name
        async with self.store.begin() as conn:
            user = await self.user_in(conn, username=username)
            if values:
                await conn.execute(_users.update().where(_users.c.id == user.id).values(
                    **values, updated_at=utcnow()))
            return await self.user_in(conn, username=username)

    async def set_password(self, username: str, password: str, *,
                           keep_token_id: int | None = None) -> tuple[User, int]:
        """Give a person a new password and end their other login sessions.

        Every unrevoked login token of the user except ``keep_token_id`` (the caller's own
        session) is revoked; API tokens stay (they are issued keys, revoked one by one).
        Returns the user and how many sessions were ended.  Service accounts have no
        password.
        """
        check_password_strength(password)
        user = await self.get_user(username)
        if user.service:
            raise Conflict(f"{username!r} is a service account: it has no password, only "
                           "API tokens", field="username")
        password_hash = await asyncio.to_thread(hash_password, password)  # outside the lock
        now = utcnow()
        async with self.store.begin() as conn:
            await conn.execute(_users.update().where(_users.c.id == user.id).values(
                password_hash=password_hash, updated_at=now))
            sessions = and_(_tokens.c.user_id == user.id, _tokens.c.revoked_at.is_(None),
                            _tokens.c.kind == TokenKind.LOGIN.value)
            if keep_token_id is not None:
                sessions = and_(sessions, _tokens.c.id != keep_token_id)
            ended = (await conn.execute(_tokens.update().where(sessions).values(
                revoked_at=now))).rowcount
            return await self.user_in(conn, user_id=user.id), int(ended or 0)

    async def token_info(self, token_id: int) -> TokenInfo:
        async with self.store.connect() as conn:
            return await self._token_in(conn, token_id)

    async def verify_password(self, username: str, password: str) -> User:
        """The user if the password is right; one uniform error otherwise."""
        async with self.store.connect() as conn:
            row = (await conn.execute(self._user_query.where(_users.c.username == username))
                   ).mappings().first()
        stored = row["password_hash"] if row is not None else None
        ok = await asyncio.to_thread(_verify, stored, password)
        if not ok or row is None or row["disabled"]:
            raise AuthenticationRequired("wrong username or password, or the account is disabled")
        return _user(row)

    async def create_token(self, user_id: int, *, kind: TokenKind, name: str | None = None,
                           lifetime: timedelta | None = None,
                           expires_at: datetime | None = None,
                           conn: AsyncConnection | None = None) -> tuple[str, TokenInfo]:
        """A new token: the secret (shown once) and what the store keeps of it.  It
        expires ``lifetime`` from now or at ``expires_at`` (not both), else never."""
        if lifetime is not None and expires_at is not None:
            raise ValueError("give a token's lifetime or its expiry time, not both")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        if lifetime is not None:
            expires_at = now + lifetime
        async with self.store.using(conn, write=True) as c:
            result = await c.execute(_tokens.insert().values(
                user_id=user_id, digest=digest(secret), name=name, kind=kind.value,
                created_at=now, expires_at=expires_at,
            ).returning(_tokens.c.id))
            token_id = int(result.scalar_one())
            return secret, await self._token_in(c, token_id)

    async def _token_in(self, conn: AsyncConnection, token_id: int) -> TokenInfo:
        row = (await conn.execute(
            select(_tokens, _users.c.username).select_from(
                _tokens.join(_users, _users.c.id == _tokens.c.user_id)
            ).where(_tokens.c.id == token_id))).mappings().first()
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        return _token(row)

    async def list_tokens(self, user_id: int | None = None) -> list[TokenInfo]:
        query = select(_tokens, _users.c.username).select_from(
            _tokens.join(_users, _users.c.id == _tokens.c.user_id)).order_by(_tokens.c.id)
        if user_id is not None:
            query = query.where(_tokens.c.user_id == user_id)
        async with self.store.connect() as conn:
            return [_token(r) for r in (await conn.execute(query)).mappings()]

    async def revoke_token(self, token_id: int) -> TokenInfo:
        async with self.store.begin() as conn:
            info = await self._token_in(conn, token_id)
            if info.revoked_at is None:
                await conn.execute(_tokens.update().where(_tokens.c.id == token_id).values(
                    revoked_at=utcnow()))
            return await self._token_in(conn, token_id)

    async def authenticate(self, secret: str) -> Principal:
        """The principal behind a bearer token, or ``AuthenticationRequired``."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            raise TokenRefused("the bearer token is malformed", reason="token malformed")
        return await self.authenticate_digest(digest(secret))

    async def authenticate_digest(self, token_digest: str) -> Principal:
        """The principal behind the bearer token of this digest (a cluster's ticket stands
        for one), with every check of :meth:`authenticate`."""
        async with self.store.connect() as conn:  # the token and its user in one read
            row = (await conn.execute(_principal_query(), {"digest": token_digest})
                   ).mappings().first()
        if row is None:
            raise TokenRefused("the bearer token is not known", reason="token unknown")
        user = _user(row)
        if row["token_revoked_at"] is not None:
            raise TokenRefused("the bearer token has been revoked", reason="token revoked",
                               username=user.username)
        expires_at = row["token_expires_at"]
        if expires_at is not None and expires_at <= utcnow():
            raise TokenRefused("the bearer token has expired; log in again",
                               reason="token expired", username=user.username)
        if user.disabled:
            raise TokenRefused("the account is disabled", reason="account disabled",
                               username=user.username)
        return Principal(user=user, token_id=row["token_id"], token_digest=token_digest,
                         token_kind=TokenKind(row["token_kind"]), token_expires_at=expires_at)
