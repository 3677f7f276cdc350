"""The gate for real: decide, register, and cut views whose basis is gone.

``Views.open_view`` decides (``Policy``) and writes the *view.open* event before it
returns, so no media flows unregistered; a refusal is journalled too.  Each open view
is re-checked every ``watch_seconds`` (and at once when a revoke path calls ``revoked``,
which also tells the other nodes of a cluster):
a revoked token, an expired API token, a disabled user, a revoked or expired grant or
emergency, a removed camera, a changed role or unit -- the view's revoke callbacks run
and it is closed with the reason.  A login token's expiry does not cut a view in
progress (a 7x24 video wall must not go black at a token's birthday); revocation does.

``Views.end_view`` lets an administrator who oversees a view (``Policy.overseen``) end
someone else's view with a reason: the action is journalled (kind *admin*, action
*view.end*, result ok or denied) and the view's close reason names the administrator.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from camrelay.access.accounts import Accounts, Principal, Role, TokenKind, User
from camrelay.access.gate import RevokeCallback, View, ViewRequest
from camrelay.access.journal import Journal, JournalEvent
from camrelay.access.policy import Decision, Policy, how_to_request
from camrelay.access.seats import LocalSeats, Seat, Seats
from camrelay.catalog.models import Camera
from camrelay.errors import (
    AccessDenied,
    AuthenticationRequired,
    BadRequest,
    CameraNotFound,
    NotFound,
    TooManyRequests,
    UserNotFound,
)
from camrelay.fields import utcnow
from camrelay.settings import LimitSettings
from camrelay.store import schema
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT = 0.5
MAX_PURPOSE = 200


@dataclass(eq=False)
class LiveView:
    """One authorised use of a camera (implements ``camrelay.access.gate.View``)."""

    gate: Views
    request: ViewRequest
    user: User
    camera: Camera
    decision: Decision
    purpose: str
    token_id: int
    token_kind: TokenKind
    manages_camera: bool = False
    seat: Seat | None = None  # a live view's seats ([limits])
    view_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    opened_at: datetime = field(default_factory=utcnow)
    closed: bool = False
    close_reason: str | None = None
    audio: str | None = None  # the codec the camera's audio was delivered in, if any
    _callbacks: list[RevokeCallback] = field(default_factory=list)
    _closing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _closed_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.view_id

    @property
    def emergency(self) -> bool:
        """Emergency views have priority (PTZ lock, concurrency limits)."""
        return self.decision.basis == "emergency"

    def on_revoke(self, callback: RevokeCallback) -> None:
        self._callbacks.append(callback)

    def note_audio(self, codec: str) -> None:
        self.audio = codec

    async def close(self, reason: str = "ended") -> None:
        async with self._closing:
            if self.closed:
                return
            self.closed = True
            self.close_reason = reason
            self.gate._forget(self)
            if self.seat is not None:
                await self.gate.seats.give_back(self.seat)
            try:
                await self.gate.journal.close_view(self._event("view.close", result="closed",
                                                               reason=reason))
            except Exception as err:  # noqa: BLE001 - the heartbeat row stays; recovery closes it
                log.error("[view %s] cannot journal its close (%s: %s); it will be closed at "
                          "its last heartbeat on the next start", self.view_id[:8],
                          type(err).__name__, err)
            finally:
                self._closed_event.set()
                self.gate._notify(self, "close")

    async def wait_closed(self) -> str | None:
        """Until the view is closed and its record written; returns the reason."""
        await self._closed_event.wait()
        return self.close_reason

    async def cut(self, reason: str) -> None:
        """End the view from the gate's side: callbacks first, then the record."""
        if self.closed:
            return
        log.info("[view %s] cutting (camera %d, user %s): %s", self.view_id[:8],
                 self.camera.id, self.user.username, reason)
        for callback in list(self._callbacks):
            try:
                async with asyncio.timeout(CALLBACK_TIMEOUT):
                    await callback(reason)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - one broken viewer must not keep it open
                log.warning("[view %s] revoke callback failed: %s: %s", self.view_id[:8],
                            type(err).__name__, err)
        await self.close(reason)

    def _event(self, kind: str, *, result: str, reason: str | None = None) -> JournalEvent:
        d = self.decision
        detail: dict[str, Any] = {"via": self.request.via}
        if self.seat is not None and self.seat.over is not None:
            detail["over_limit"] = self.seat.over  # an emergency view admitted over it
        if self.audio is not None:
            detail["audio"] = self.audio  # the codec delivered
        return JournalEvent(
            kind=kind, action=self.request.action, view_id=self.view_id, user_id=self.user.id,
            username=self.user.username, unit_code=self.user.unit_code,
            camera_id=self.camera.id, camera_name=self.camera.name,
            camera_unit_code=self.camera.unit_code, purpose=self.purpose, basis=d.basis,
            grant_id=d.grant_id, approver=d.approver, emergency_id=d.emergency_id,
            incident=d.incident, client_address=self.request.client_address,
            user_agent=self.request.user_agent, result=result, reason=reason,
            detail=detail)


def _clean_purpose(purpose: str | None) -> str | None:
    if purpose is None:
        return None
    purpose = "".join(c for c in purpose if ord(c) >= 32).strip()[:MAX_PURPOSE]
    return purpose or None


@dataclass(frozen=True, slots=True)
class _Token:
    """What the gate checks of the caller's bearer token."""

    id: int
    kind: str
    expires_at: datetime | None
    revoked_at: datetime | None
    user_id: int


class Views:
    """The gate: implements ``camrelay.access.gate.Gate``; owns the watcher task."""

    def __init__(self, policy: Policy, accounts: Accounts, journal: Journal, *, node: str,
                 watch_seconds: float = 0.5, heartbeat_seconds: float = 5.0,
                 seats: Seats | None = None) -> None:
        self.policy = policy
        self.seats: Seats = seats if seats is not None else LocalSeats(LimitSettings())
        self.accounts = accounts
        self.journal = journal
        self.node = node
        self.watch_seconds = watch_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._views: dict[str, LiveView] = {}
        self._task: asyncio.Task[None] | None = None
        self._sweeping = asyncio.Lock()
        # told when a revoke path changed the store (a cluster tells the other nodes)
        self.revocation_listeners: list[Callable[[], None]] = []
        # called as observer(view, "open") after a view is registered and as
        # observer(view, "close") after its end is; must not block (camrelay.federation
        # tells the lower platform who watches one of its cameras)
        self.observers: list[Callable[[LiveView, str], None]] = []

    def _notify(self, view: LiveView, what: str) -> None:
        for observer in self.observers:
            try:
                observer(view, what)
            except Exception as err:  # noqa: BLE001 - an observer must not break the gate
                log.error("[view %s] observer failed: %s: %s", view.view_id[:8],
                          type(err).__name__, err)

    @property
    def store(self) -> Any:
        return self.policy.catalog.store

    def open_views(self) -> list[LiveView]:
        return list(self._views.values())

    def _forget(self, view: LiveView) -> None:
        self._views.pop(view.view_id, None)

    # ---- deciding ----------------------------------------------------------------------

    async def open_view(self, request: ViewRequest) -> LiveView:
        purpose = _clean_purpose(request.purpose)
        token, user = await self._caller(request)
        problem = None
        if token is None or user is None or token.user_id != request.user_id:
            problem = "the bearer token is not known"
        elif token.revoked_at is not None:
            problem = "the bearer token has been revoked"
        elif token.expires_at is not None and token.expires_at <= utcnow():
            problem = "the bearer token has expired; no new view starts with it"
        elif user.disabled:
            problem = "the account is disabled"
        if problem is not None:
            await self._refuse(request, user, None, purpose, problem)
            raise AuthenticationRequired(problem)
        assert user is not None and token is not None
        try:
            camera = await self.policy.catalog.get_camera(request.camera_id)
        except CameraNotFound:
            await self._refuse(request, user, None, purpose, "no such camera")
            raise
        held = await self.policy.holdings(user)
        decision = held.decide(camera, request.action)
        if not decision.allowed:
            await self._refuse(request, user, camera, purpose, decision.reason)
            raise AccessDenied(
                f"you may not use camera {camera.id} for {request.action}: {decision.reason}. "
                "Apply for a grant (see request_grant)", **how_to_request(camera, request.action))
        seat = None
        if request.action == "live":  # [limits]: a refusal is journalled like any other
            try:
                seat = await self.seats.take(camera.id, user.unit_code,
                                             emergency=decision.basis == "emergency")
            except TooManyRequests as err:
                log.info("[camera %d] live view of user %s refused: %s", camera.id,
                         user.username, err.detail)
                await self._refuse(request, user, camera, purpose, err.detail)
                raise
            if seat.over is not None:
                log.warning("[camera %d] emergency view of user %s admitted over limits.%s",
                            camera.id, user.username, seat.over)
        view = LiveView(gate=self, request=request, user=user, camera=camera, decision=decision,
                        purpose=purpose or decision.purpose or "routine monitoring",
                        token_id=int(token.id), token_kind=TokenKind(token.kind),
                        manages_camera=held.manages(camera), seat=seat)
        try:
            await self.journal.open_view(view._event("view.open", result="allowed"), self.node)
        except BaseException:
            if seat is not None:
                await self.seats.give_back(seat)
            raise
        self._views[view.view_id] = view
        self._notify(view, "open")
        log.info("[view %s] opened: user %s camera %d %s (%s)", view.view_id[:8],
                 user.username, camera.id, request.action, decision.basis)
        return view

    async def _caller(self, request: ViewRequest) -> tuple[_Token | None, User | None]:
        """The request's token and user: the principal its authentication resolved in
        this request when it has one (no second read of the store), else read now."""
        who = request.principal
        if who is not None and who.token_digest == request.token_digest \
                and who.user_id == request.user_id:
            return _Token(who.token_id, who.token_kind.value, who.token_expires_at, None,
                          who.user_id), who.user
        tokens = schema.tokens
        async with self.store.connect() as conn:
            row = (await conn.execute(select(
                tokens.c.id, tokens.c.kind, tokens.c.expires_at, tokens.c.revoked_at,
                tokens.c.user_id).where(tokens.c.digest == request.token_digest))).first()
            try:
                user = await self.accounts.user_in(conn, user_id=request.user_id)
            except UserNotFound:
                user = None
        if row is None:
            return None, user
        return _Token(int(row.id), str(row.kind), row.expires_at, row.revoked_at,
                      int(row.user_id)), user

    async def _refuse(self, request: ViewRequest, user: User | None, camera: Camera | None,
                      purpose: str | None, reason: str) -> None:
        await self.journal.append(JournalEvent(
            kind="view.denied", action=request.action, user_id=request.user_id,
            username=None if user is None else user.username,
            unit_code=None if user is None else user.unit_code, camera_id=request.camera_id,
            camera_name=None if camera is None else camera.name,
            camera_unit_code=None if camera is None else camera.unit_code, purpose=purpose,
            client_address=request.client_address, user_agent=request.user_agent,
            result="denied", reason=reason, detail={"via": request.via}))

    # ---- ending someone else's view ----------------------------------------------------

    async def end_view(self, who: Principal, view: View, *, reason: str | None,
                       client_address: str | None) -> str:
        """An administrator who oversees ``view`` ends it for ``reason`` (required): the
        action is journalled and the close reason returned; a refusal is journalled too."""
        live = self._views.get(view.id)
        if live is None:
            raise NotFound("this view has already ended")
        why = _clean_purpose(reason)
        problem = None
        if who.role is not Role.ADMINISTRATOR:
            problem = "only the viewer or an administrator over the camera or the viewer may " \
                      "end this view"
        elif not (await self.policy.overseen(who, [(live.camera.id, live.user.id)]))[0]:
            problem = f"neither the camera nor the viewer is in your jurisdiction " \
                      f"({who.user.unit_code} and below)"
        if problem is not None:
            await self._journal_end(who, live, result="denied", reason=problem,
                                    client_address=client_address, given=why)
            raise AccessDenied(problem)
        if why is None:
            raise BadRequest("say why you end another user's view (the reason query "
                             "parameter); it is journalled and shown as the close reason")
        await self._journal_end(who, live, result="ok", reason=why,
                                client_address=client_address)
        log.info("[view %s] ended by administrator %s (camera %d, viewer %s): %s",
                 live.view_id[:8], who.user.username, live.camera.id, live.user.username, why)
        return f"ended by administrator {who.user.username}: {why}"

    async def _journal_end(self, who: Principal, live: LiveView, *, result: str, reason: str,
                           client_address: str | None, given: str | None = None) -> None:
        detail: dict[str, Any] = {"viewer": live.user.username,
                                  "viewer_unit": live.user.unit_code, "via": live.request.via}
        if given is not None:
            detail["reason_given"] = given
        await self.journal.append(JournalEvent(
            kind="admin", action="view.end", view_id=live.view_id, user_id=who.user.id,
            username=who.user.username, unit_code=who.user.unit_code,
            camera_id=live.camera.id, camera_name=live.camera.name,
            camera_unit_code=live.camera.unit_code, client_address=client_address,
            result=result, reason=reason, detail=detail))

    # ---- enforcing ---------------------------------------------------------------------

    async def revoked(self) -> int:
        """A revoke path (grant, emergency, token, user, password) has just changed the
        store: tell the listeners (the other nodes re-check their views at once), then cut
        this process's views no longer allowed.  Returns how many were cut here."""
        for listener in self.revocation_listeners:
            listener()
        return await self.sweep()

    async def sweep(self) -> int:
        """Re-check every open view now; cut those no longer allowed. Returns how many."""
        if not self._views:
            return 0
        async with self._sweeping:
            views = list(self._views.values())
            cuts = await self._reasons(views)
            await asyncio.gather(*(view.cut(reason) for view, reason in cuts))
            return len(cuts)

    async def _reasons(self, views: list[LiveView]) -> list[tuple[LiveView, str]]:
        now = utcnow()
        t, u, g, e, c = (schema.tokens, schema.users, schema.grants, schema.emergencies,
                         schema.cameras)
        token_ids = {v.token_id for v in views}
        user_ids = {v.user.id for v in views}
        grant_ids = {v.decision.grant_id for v in views if v.decision.grant_id is not None}
        em_ids = {v.decision.emergency_id for v in views if v.decision.emergency_id is not None}
        camera_ids = {v.camera.id for v in views}
        async with self.store.connect() as conn:
            tokens = {r.id: r for r in await conn.execute(
                select(t.c.id, t.c.revoked_at, t.c.expires_at).where(t.c.id.in_(token_ids)))}
            users = {r.id: r for r in await conn.execute(
                select(u.c.id, u.c.disabled, u.c.role, u.c.unit_id).where(u.c.id.in_(user_ids)))}
            grants = {r.id: r for r in await conn.execute(
                select(g.c.id, g.c.state, g.c.valid_until, g.c.revoke_reason).where(
                    g.c.id.in_(grant_ids)))} if grant_ids else {}
            ems = {r.id: r for r in await conn.execute(
                select(e.c.id, e.c.state, e.c.expires_at).where(e.c.id.in_(em_ids)))} \
                if em_ids else {}
            cameras = {r.id: r for r in await conn.execute(
                select(c.c.id, c.c.unit_id).where(c.c.id.in_(camera_ids)))}
        out: list[tuple[LiveView, str]] = []
        for view in views:
            if view.closed:
                continue
            reason = None
            token = tokens.get(view.token_id)
            user = users.get(view.user.id)
            d = view.decision
            if token is None or token.revoked_at is not None:
                reason = "token revoked"
            elif (view.token_kind is TokenKind.API and token.expires_at is not None
                  and token.expires_at <= now):
                reason = "token expired"
            elif user is None or user.disabled:
                reason = "user disabled"
            elif view.camera.id not in cameras:
                reason = "camera removed from the catalogue"
            elif d.grant_id is not None and (
                    d.grant_id not in grants or grants[d.grant_id].state != "approved"):
                reason = "grant revoked"
            elif d.grant_id is not None and grants[d.grant_id].valid_until <= now:
                reason = "grant expired"
            elif d.emergency_id is not None and (
                    d.emergency_id not in ems or ems[d.emergency_id].state == "revoked"):
                reason = "emergency access revoked"
            elif d.emergency_id is not None and ems[d.emergency_id].expires_at <= now:
                reason = "emergency access ended"
            elif (user.role != view.user.role.value or user.unit_id != view.user.unit_id
                  or cameras[view.camera.id].unit_id != view.camera.unit_id
                  or d.basis == "federation"):  # a push may have ended: decide again
                reason = await self._redecide(view)
            if reason is not None:
                out.append((view, reason))
        return out

    async def _redecide(self, view: LiveView) -> str | None:
        """Role, unit or camera owner changed: the view stays only if still allowed."""
        try:
            user = await self.accounts.get_user(view.user.username)
            camera = await self.policy.catalog.get_camera(view.camera.id)
        except (UserNotFound, CameraNotFound):
            return "user or camera removed"
        held = await self.policy.holdings(user)
        decision = held.decide(camera, view.request.action)
        if decision.allowed:
            view.user, view.camera = user, camera
            view.manages_camera = held.manages(camera)
            return None
        return f"no longer allowed: {decision.reason}"

    # ---- the watcher -------------------------------------------------------------------

    async def start(self) -> None:
        await self.journal.start()
        await self.journal.recover(node=self.node)
        self._task = asyncio.create_task(self._run(), name="camrelay-access-watcher")

    async def stop(self) -> None:
        """Close every open view (server shutdown) and stop the watcher."""
        await stop_task(self._task)
        self._task = None
        for view in list(self._views.values()):
            await view.cut("server shutting down")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.heartbeat_seconds
        while True:
            await asyncio.sleep(self.watch_seconds)
            try:
                await self.sweep()
                if loop.time() >= next_beat:
                    next_beat = loop.time() + self.heartbeat_seconds
                    await self.journal.heartbeat(self.node)
                    await self.journal.recover(
                        stale_before=utcnow() - timedelta(seconds=6 * self.heartbeat_seconds))
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - enforcement must outlive one bad check
                log.error("access watcher: %s: %s", type(err).__name__, err)
