"""The app's PTZ state: the control lock, one gate view per control session (the access
log holds control sessions, not joystick ticks), the device clients.  The routes are in
:mod:`camrelay.web.api_ptz`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.access.gate import Gate, View
from camrelay.access.policy import Policy
from camrelay.catalog.service import Catalog
from camrelay.errors import AccessDenied, CamrelayError
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.ptz import PtzClient
from camrelay.onvif.ptzlock import DEFAULT_IDLE_TAKEOVER, PtzHolder, PtzLock, PtzSession
from camrelay.web.context import view_request
from camrelay.web.devices import Devices

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Session:
    view: View
    user_id: int
    username: str
    emergency: bool


class PtzControl:
    """The app's PTZ state: the lock, one gate view per control session, device clients."""

    def __init__(self, catalog: Catalog, gate: Gate, policy: Policy, *,
                 idle_takeover: float = DEFAULT_IDLE_TAKEOVER,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 devices: Devices | None = None) -> None:
        self.catalog = catalog
        self.gate = gate
        self.policy = policy
        self.clock = clock
        self.devices = devices or Devices()
        self.lock = PtzLock(idle_takeover=idle_takeover, clock=lambda: self.clock(),
                            wall_clock=wall_clock, on_session_end=self._session_ended)
        self._sessions: dict[int, _Session] = {}
        self._clients: dict[int, tuple[contextlib.AsyncExitStack, PtzClient]] = {}
        self._camera_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # lifetime
    async def context(self, app: web.Application) -> AsyncIterator[None]:
        self._sweeper = asyncio.create_task(self._sweep(), name="camrelay-ptz-sweeper")
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for camera_id, session in list(self._sessions.items()):
            holder = self.lock.holder(camera_id)
            count = holder.commands if holder is not None else 0
            self._sessions.pop(camera_id, None)
            self.lock.release(camera_id, session.username)
            await session.view.close(f"ptz control ended (server stopping): {count} command(s)")
        for camera_id in list(self._clients):
            await self._drop_client(camera_id)
        await self.flush()

    async def _sweep(self) -> None:
        interval = max(1.0, self.lock.idle_takeover)
        while True:
            await asyncio.sleep(interval)
            self.lock.expire_idle()
            await self.flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ptz: background task failed: %r", task.exception())

    async def flush(self) -> None:
        """Wait for the pending view closes (so the journal is written before we answer)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _session_ended(self, ended: PtzSession) -> None:
        camera_id = ended.camera
        assert isinstance(camera_id, int)
        session = self._sessions.pop(camera_id, None)
        if session is None:
            return
        how = ended.ended_by if ended.taken_over_by is None else \
            f"{ended.ended_by} by {ended.taken_over_by}"
        reason = f"ptz control ended ({how}): {ended.commands} command(s)"
        log.info("[camera %d] PTZ control of %s ended (%s), %d command(s)", camera_id,
                 ended.user, how, ended.commands)
        self._spawn(session.view.close(reason))
        if ended.ended_by != "takeover":
            self._spawn(self._drop_client(camera_id))

    # authorisation and the lock
    async def _open(self, request: web.Request, camera_id: int) -> View:
        return await self.gate.open_view(
            view_request(request, camera_id, "ptz", "ptz"))

    def holds(self, camera_id: int, who: Principal) -> bool:
        session = self._sessions.get(camera_id)
        holder = self.lock.holder(camera_id)
        return (session is not None and holder is not None and session.user_id == who.user_id
                and holder.user == who.user.username)

    async def check(self, request: web.Request, who: Principal, camera_id: int,
                    what: str) -> None:
        """Authorise a call that is not a command (presets, lock): the session's view if
        the caller is steering, else one short view closed at once."""
        self.lock.expire_idle()
        if self.holds(camera_id, who):
            return
        view = await self._open(request, camera_id)
        await view.close(f"ptz {what}")

    async def command(self, request: web.Request, who: Principal, camera_id: int
                      ) -> PtzHolder:
        """Authorise one command and count it in the caller's control session."""
        self.lock.expire_idle()
        await self.flush()
        async with self._camera_locks.setdefault(camera_id, asyncio.Lock()):
            if self.holds(camera_id, who):
                session = self._sessions[camera_id]
                return self.lock.command(camera_id, who.user.username,
                                         emergency=session.emergency)
            view = await self._open(request, camera_id)
            try:
                emergency = await self._emergency(request, view, who, camera_id)
                holder = self.lock.command(camera_id, who.user.username, emergency=emergency)
            except BaseException as err:
                holder_name = getattr(err, "holder", None)
                await view.close(f"refused: ptz control held by {holder_name}"
                                 if holder_name else f"refused: {type(err).__name__}")
                raise
            self._sessions[camera_id] = _Session(view, who.user_id, who.user.username,
                                                 emergency)
            view.on_revoke(self._revoker(camera_id, view))
            log.info("[camera %d] PTZ control taken by %s%s", camera_id, who.user.username,
                     " (emergency)" if emergency else "")
        await self.flush()
        return holder

    async def _emergency(self, request: web.Request, view: View, who: Principal,
                         camera_id: int) -> bool:
        """Emergency access to this camera: the gate's view says so, else the policy."""
        flag = getattr(view, "emergency", None)
        if isinstance(flag, bool):
            return flag
        camera = await self.catalog.get_camera(camera_id)
        decision = await self.policy.decide(who.user, camera, "ptz")
        return decision.basis == "emergency"

    def _revoker(self, camera_id: int, view: View) -> Callable[[str], Awaitable[None]]:
        async def revoked(reason: str) -> None:
            session = self._sessions.get(camera_id)
            if session is None or session.view is not view:
                return
            del self._sessions[camera_id]  # the gate closes the view itself
            self.lock.release(camera_id, session.username)
            log.info("[camera %d] PTZ control of %s cut: %s", camera_id, session.username,
                     reason)
            self._spawn(self._stop_quietly(camera_id))  # the gate waits briefly for us

        return revoked

    async def _stop_quietly(self, camera_id: int) -> None:
        """Stop a camera whose operator lost the right (it may be moving)."""
        try:
            await self.send(camera_id, lambda ptz: ptz.stop())
        except CamrelayError as err:
            log.warning("[camera %d] cannot stop PTZ after revocation: %s", camera_id,
                        err.detail)

    async def release(self, camera_id: int, who: Principal) -> bool:
        """End the caller's session (an administrator may end anyone's); False if none."""
        holder = self.lock.holder(camera_id)
        if holder is None:
            return False
        if holder.user != who.user.username and who.role is not Role.ADMINISTRATOR:
            raise AccessDenied(f"PTZ control of camera {camera_id} is held by {holder.user}; "
                               "only the holder or an administrator releases it")
        self.lock.release(camera_id, holder.user)
        await self.flush()
        return True

    # the device
    async def client(self, camera_id: int) -> PtzClient:
        async with self._camera_locks.setdefault(-camera_id, asyncio.Lock()):
            cached = self._clients.get(camera_id)
            if cached is not None:
                return cached[1]
            camera = await self.catalog.get_camera(camera_id)
            report, target = await self.devices.read(self.catalog, camera)
            stack = contextlib.AsyncExitStack()
            try:
                ptz = await stack.enter_async_context(
                    PtzClient.for_report(report, target, timeout=self.devices.timeout))
            except BaseException:
                await stack.aclose()
                raise
            self._clients[camera_id] = (stack, ptz)
            return ptz

    async def _drop_client(self, camera_id: int) -> None:
        cached = self._clients.pop(camera_id, None)
        if cached is not None:
            with contextlib.suppress(Exception):
                await cached[0].aclose()

    async def send(self, camera_id: int, action: Callable[[PtzClient], Awaitable[Any]]
                   ) -> Any:
        """Run ``action`` on the camera's PTZ client; a failed device is read again next time."""
        try:
            return await action(await self.client(camera_id))
        except OnvifError:
            await self._drop_client(camera_id)
            self.devices.forget(camera_id)
            raise

    def holder_json(self, camera_id: int) -> dict[str, Any]:
        holder = self.lock.holder(camera_id)
        out: dict[str, Any] = {"camera_id": camera_id, "idle_takeover": self.lock.idle_takeover,
                               "holder": None}
        if holder is not None:
            idle = self.clock() - holder.last_command
            last = holder.started_at + (holder.last_command - holder.since)
            out["holder"] = {
                "user": holder.user, "since": _iso(holder.started_at),
                "last_command": _iso(last), "idle_seconds": round(max(0.0, idle), 1),
                "emergency": holder.emergency, "commands": holder.commands,
            }
        return out


def _iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
