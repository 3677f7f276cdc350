"""Who controls a camera's PTZ: one holder per camera, taken over only when idle.

* The holder is visible (user, since, last command, emergency flag, commands sent).
* Another operator gets control once the holder has been idle for ``idle_takeover``
  seconds (default 5); an emergency user takes it at once -- unless the holder is an
  emergency user too and not idle.
* Each holder's time in control is a *control session*; when it ends (release or
  takeover) ``on_session_end`` receives a ``PtzSession`` (start, end, number of commands)
  for the access log.

Not thread-safe: used from the event loop only.  The clock is injectable (monotonic
seconds) so tests need no sleep; ``wall_clock`` only stamps the sessions for the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Literal

from camrelay.onvif.errors import PtzBusy

DEFAULT_IDLE_TAKEOVER = 5.0


@dataclass(frozen=True, slots=True)
class PtzHolder:
    user: str
    since: float
    """Monotonic seconds when control was taken."""
    last_command: float
    emergency: bool
    commands: int
    started_at: float
    """Wall-clock seconds when control was taken (for display and the log)."""


@dataclass(frozen=True, slots=True)
class PtzSession:
    """One control session, for the access log."""

    camera: Hashable
    user: str
    emergency: bool
    started_at: float
    ended_at: float
    commands: int
    ended_by: Literal["release", "takeover", "expired"]
    taken_over_by: str | None = None


class PtzLock:
    def __init__(self, *, idle_takeover: float = DEFAULT_IDLE_TAKEOVER,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 on_session_end: Callable[[PtzSession], None] | None = None) -> None:
        if idle_takeover < 0:
            raise ValueError("idle_takeover must not be negative")
        self.idle_takeover = idle_takeover
        self._clock = clock
        self._wall = wall_clock
        self._on_end = on_session_end
        self._holders: dict[Hashable, PtzHolder] = {}

    def holder(self, camera: Hashable) -> PtzHolder | None:
        return self._holders.get(camera)

    def idle_for(self, camera: Hashable) -> float | None:
        holder = self._holders.get(camera)
        return None if holder is None else self._clock() - holder.last_command

    def acquire(self, camera: Hashable, user: str, *, emergency: bool = False) -> PtzHolder:
        """Take (or keep) control; raises ``PtzBusy`` while another holder is active."""
        now = self._clock()
        current = self._holders.get(camera)
        if current is not None and current.user == user:
            if emergency and not current.emergency:
                current = replace(current, emergency=True)
                self._holders[camera] = current
            return current
        if current is not None:
            idle = now - current.last_command
            may_take = idle >= self.idle_takeover or (emergency and not current.emergency)
            if not may_take:
                wait = self.idle_takeover - idle
                raise PtzBusy(
                    f"{current.user} is controlling this camera"
                    f"{' (emergency)' if current.emergency else ''}; control passes after "
                    f"{self.idle_takeover:g} s without commands (try again in {wait:.1f} s).",
                    holder=current.user, idle_for=idle, retry_after=wait)
            self._end(camera, current, "takeover", taken_over_by=user)
        holder = PtzHolder(user=user, since=now, last_command=now, emergency=emergency,
                           commands=0, started_at=self._wall())
        self._holders[camera] = holder
        return holder

    def command(self, camera: Hashable, user: str, *, emergency: bool = False) -> PtzHolder:
        """Record one PTZ command by ``user`` (taking control if allowed); call before sending."""
        holder = self.acquire(camera, user, emergency=emergency)
        holder = replace(holder, last_command=self._clock(), commands=holder.commands + 1)
        self._holders[camera] = holder
        return holder

    def release(self, camera: Hashable, user: str) -> PtzSession | None:
        """End ``user``'s control (no-op if someone else holds it)."""
        current = self._holders.get(camera)
        if current is None or current.user != user:
            return None
        return self._end(camera, current, "release")

    def expire_idle(self, older_than: float | None = None) -> list[PtzSession]:
        """End every session idle for ``older_than`` seconds (default: 12 x idle_takeover)."""
        limit = older_than if older_than is not None else 12 * max(self.idle_takeover, 5.0)
        now = self._clock()
        ended = []
        for camera, holder in list(self._holders.items()):
            if now - holder.last_command >= limit:
                ended.append(self._end(camera, holder, "expired"))
        return ended

    def _end(self, camera: Hashable, holder: PtzHolder,
             how: Literal["release", "takeover", "expired"],
             taken_over_by: str | None = None) -> PtzSession:
        del self._holders[camera]
        session = PtzSession(camera=camera, user=holder.user, emergency=holder.emergency,
                             started_at=holder.started_at, ended_at=self._wall(),
                             commands=holder.commands, ended_by=how,
                             taken_over_by=taken_over_by)
        if self._on_end is not None:
            self._on_end(session)
        return session
