"""Brute force: failed sign-ins are slowed, then locked out for a while.

Counted per account and per client address inside a sliding window: after
``slow_after`` failures every further attempt waits ``slow_seconds`` before it is
answered; after ``lock_after`` failures of an account (``lock_address_after`` from one
address) every attempt -- even with the right password -- is refused with 429 until
the lock ends.  A successful sign-in clears the account's count.  State is kept in the
process, or, in a cluster (``redis_url``), in :class:`SharedCounters` that every process
and node shares (:mod:`camrelay.cluster.lockout`: failures spread over the nodes lock the
account everywhere); when those cannot be reached the process counts by itself again.  An attempt whose body is refused
(not JSON, hostile, breaking the schema) counts too: against its address, and against
the account when it names one as a plain string (hostile text names no account).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from camrelay.errors import TooManyRequests
from camrelay.settings import LockoutSettings

log = logging.getLogger(__name__)

MAX_KEYS = 100_000


@dataclass
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class SharedCounters(Protocol):
    """Failure counters outside the process (a cluster's Redis).  Each call returns None
    when they cannot be reached: the lockout then counts in the process."""

    async def state(self, keys: Sequence[str]) -> list[tuple[float, int]] | None:
        """For each key: the seconds left of its lock (0: none) and its failures."""
        ...

    async def fail(self, counted: Sequence[tuple[str, int]], window_seconds: float,
                   lock_seconds: float) -> list[bool] | None:
        """One more failure for each (key, limit); True where it locked that key (its
        count then starts again)."""
        ...

    async def clear(self, key: str) -> bool:
        """Forget the key's failures; False when they cannot be reached."""
        ...


class Lockout:
    def __init__(self, config: LockoutSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedCounters | None = None) -> None:
        self.config = config or LockoutSettings()
        self.clock = clock
        self.shared = shared
        self._counters: dict[str, _Counter] = {}

    def _counter(self, key: str) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            if len(self._counters) >= MAX_KEYS:
                self._prune()
            counter = self._counters[key] = _Counter()
        window_start = self.clock() - self.config.window_seconds
        while counter.failures and counter.failures[0] < window_start:
            counter.failures.popleft()
        return counter

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, c in self._counters.items()
                    if c.locked_until < now and (not c.failures or c.failures[-1]
                                                 < now - self.config.window_seconds)]:
            del self._counters[key]

    def _keys(self, username: str, address: str | None) -> tuple[str, str]:
        return f"user:{username.lower()}", f"addr:{address or '-'}"

    async def before_attempt(self, username: str, address: str | None) -> None:
        """Refuse a locked account or address; slow an attempt after repeated failures."""
        keys = self._keys(username, address)
        state = await self.shared.state(keys) if self.shared is not None else None
        if state is None:
            now = self.clock()
            state = [(max(0.0, c.locked_until - now), len(c.failures))
                     for c in map(self._counter, keys)]
        for left, _ in state:
            if left > 0:
                wait = int(left) + 1
                raise TooManyRequests(
                    f"too many failed sign-ins; locked for another {wait} s", retry_after=wait)
        if max(failures for _, failures in state) >= self.config.slow_after:
            await asyncio.sleep(self.config.slow_seconds)

    async def count_failure(self, username: str | None, address: str | None) -> str | None:
        """:meth:`failed`, in the shared counters when there are some (and they answer)."""
        if self.shared is None:
            return self.failed(username, address)
        user_key, addr_key = self._keys(username or "", address)
        counted = [(addr_key, self.config.lock_address_after, "address")]
        if username is not None:
            counted.insert(0, (user_key, self.config.lock_after, "account"))
        locks = await self.shared.fail([(key, limit) for key, limit, _ in counted],
                                       self.config.window_seconds, self.config.lock_seconds)
        if locks is None:
            return self.failed(username, address)
        locked = None
        for (_, limit, what), lock in zip(counted, locks, strict=True):
            if lock:
                locked = locked or what
                log.warning("sign-in locked on every node for %s (%s) for %g s after %d "
                            "failures", what, username if what == "account" else address,
                            self.config.lock_seconds, limit)
        log.info("failed sign-in for %r from %s", (username or "")[:64], address)
        return locked

    async def clear_failures(self, username: str, address: str | None) -> None:
        """:meth:`succeeded`, in the shared counters too."""
        self.succeeded(username, address)
        if self.shared is not None:
            await self.shared.clear(self._keys(username, address)[0])

    def failed(self, username: str | None, address: str | None) -> str | None:
        """Count a failure (of no account if ``username`` is None); returns what got locked
        ("account"/"address"), if anything."""
        now = self.clock()
        user_key, addr_key = self._keys(username or "", address)
        locked = None
        counted = [(addr_key, self.config.lock_address_after, "address")]
        if username is not None:
            counted.insert(0, (user_key, self.config.lock_after, "account"))
        for key, limit, what in counted:
            counter = self._counter(key)
            counter.failures.append(now)
            if len(counter.failures) >= limit and counter.locked_until <= now:
                counter.locked_until = now + self.config.lock_seconds
                counter.failures.clear()
                locked = locked or what
                log.warning("sign-in locked for %s (%s) for %g s after %d failures", what,
                            username if what == "account" else address,
                            self.config.lock_seconds, limit)
        log.info("failed sign-in for %r from %s", (username or "")[:64], address)
        return locked

    def succeeded(self, username: str, address: str | None) -> None:
        user_key, _ = self._keys(username, address)
        self._counters.pop(user_key, None)
