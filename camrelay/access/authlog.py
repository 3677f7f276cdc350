"""Refused authentication in the access journal, aggregated so a flood stays small.

What counts as a failure: a credential that was presented and refused -- a wrong
password (or an unknown or disabled user) at sign-in, a sign-in while locked out, and a
bearer token that is malformed, unknown, revoked or expired (or whose account is
disabled).  A request that presents no credential at all is not: it claims nobody
(a browser loading the player before sign-in, a probe), is answered 401 and only
logged.  Public routes are never looked at.

The first failure of each (user name tried, client address, reason) in a window of
``WINDOW_SECONDS`` is journalled at once (kind ``auth``, action ``auth.failed``); the
repeats are counted and journalled as one ``auth.failed.repeated`` event with the count
when the window closes (and at shutdown).  At most ``MAX_ITEMISED`` distinct keys are
itemised per window; failures beyond them are counted per reason only and journalled
as one ``auth.failed.other`` event per reason.  So a flood adds at most about
``2 * MAX_ITEMISED`` + a few events per window, and the counters hold at most
``MAX_ITEMISED`` keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from camrelay.access.journal import Journal, JournalEvent
from camrelay.errors import CamrelayError
from camrelay.fields import utcnow
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
MAX_ITEMISED = 100


@dataclass
class _Seen:
    repeats: int = 0
    user_agent: str | None = None


class AuthFailures:
    def __init__(self, journal: Journal, *, window_seconds: float = WINDOW_SECONDS,
                 max_itemised: int = MAX_ITEMISED) -> None:
        self.journal = journal
        self.window_seconds = window_seconds
        self.max_itemised = max_itemised
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self._others: Counter[str] = Counter()
        self._started = utcnow()
        self._task: asyncio.Task[None] | None = None

    async def record(self, *, username: str | None, address: str | None, reason: str,
                     user_agent: str | None = None) -> None:
        """One refused authentication (never raises: the 401 is answered regardless)."""
        key = ((username or "")[:64], address or "", reason)
        seen = self._seen.get(key)
        if seen is not None:
            seen.repeats += 1
            return
        if len(self._seen) >= self.max_itemised:
            self._others[reason] += 1
            return
        self._seen[key] = _Seen(user_agent=user_agent)
        await self._append(JournalEvent(
            kind="auth", action="auth.failed", username=key[0] or None,
            client_address=address, user_agent=user_agent, result="denied", reason=reason))

    async def flush(self) -> None:
        """Journal the counts of the window that ends now and start a new one."""
        seen, others, since = self._seen, self._others, self._started
        self._seen, self._others, self._started = {}, Counter(), utcnow()
        window = {"since": since.isoformat(), "until": self._started.isoformat()}
        for (username, address, reason), one in seen.items():
            if one.repeats:
                await self._append(JournalEvent(
                    kind="auth", action="auth.failed.repeated", username=username or None,
                    client_address=address or None, user_agent=one.user_agent,
                    result="denied", reason=reason, detail={"count": one.repeats, **window}))
        for reason, count in others.items():
            await self._append(JournalEvent(
                kind="auth", action="auth.failed.other", result="denied", reason=reason,
                detail={"count": count, "not_itemised": "more user/address pairs than "
                        f"{self.max_itemised} in the window", **window}))

    async def _append(self, event: JournalEvent) -> None:
        try:
            await self.journal.append(event)
        except CamrelayError as err:
            log.error("cannot journal a refused authentication (%s): %s", event.reason,
                      err.detail)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="camrelay-auth-failures")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.window_seconds)
            await self.flush()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()
