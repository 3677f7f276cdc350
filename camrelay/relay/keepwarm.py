"""The scheduler that applies the stored keep-warm windows to the hub.

It re-reads the windows on every change and every few seconds, so windows that start
later, and windows of a node that restarted, take effect by themselves.  In a worker
process (``relay.workers`` >= 2) every worker runs it and warms only the cameras it owns
(``owns``).  In a cluster of nodes (``redis_url``) a window is applied only by the node
that holds, or can take, the camera's lease (``claim``): once per cluster.  There the
open windows' leases are tried every ``claim_interval`` (a lease period) from the windows
last read, so when the warming node dies another takes the stream within two lease
periods, without reading the store more often.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from camrelay.fields import utcnow
from camrelay.relay.hub import Hub
from camrelay.relay.media import StreamKey

log = logging.getLogger(__name__)


class Window(Protocol):
    """A keep-warm window as the catalogue stores it (``catalog.keepwarm``)."""

    @property
    def camera_id(self) -> int: ...
    @property
    def variant(self) -> str: ...
    @property
    def ends_at(self) -> datetime: ...
    def open_at(self, now: datetime) -> bool: ...


class Windows(Protocol):
    async def current_and_future(self, now: datetime) -> Sequence[Window]: ...


class KeepWarmScheduler:
    """Applies the open windows to the hub; the only writer of the hub's warm state."""

    def __init__(self, windows: Windows, hub: Hub, interval: float = 5.0,
                 owns: Callable[[int], bool] | None = None,
                 claim: Callable[[int], Awaitable[bool]] | None = None,
                 claim_interval: float | None = None) -> None:
        self.windows = windows
        self.hub = hub
        self.interval = interval
        self.owns = owns  # None: every camera (one process)
        self.claim = claim  # None: no cluster; else whether this node may pull the camera
        self.claim_interval = claim_interval  # a cluster: how often to try the leases
        self._applied: set[StreamKey] = set()
        self._changed = asyncio.Event()
        self._read: Sequence[Window] = ()
        self._read_at: float | None = None  # monotonic

    def changed(self) -> None:
        self._changed.set()

    async def tick(self, now: datetime | None = None, *, reread: bool = True
                   ) -> set[StreamKey]:
        """Warm every stream with an open window, cool those whose windows are gone
        (``reread=False``: from the windows last read)."""
        now = now or utcnow()
        if reread or self._read_at is None:
            self._read = await self.windows.current_and_future(now)
            self._read_at = time.monotonic()
        open_now: dict[StreamKey, datetime] = {}
        for window in self._read:
            if self.owns is not None and not self.owns(window.camera_id):
                continue  # another worker process pulls this camera
            if window.open_at(now):
                if self.claim is not None and not await self.claim(window.camera_id):
                    continue  # another node of the cluster holds the camera's lease
                key = StreamKey(window.camera_id, "sub" if window.variant == "sub" else "main")
                open_now[key] = max(window.ends_at, open_now.get(key, window.ends_at))
        for key, until in open_now.items():
            if key not in self._applied:
                log.info("[stream %s] kept warm until %s", key, until.isoformat())
            self.hub.keep_warm(key, until)
        for key in self._applied - set(open_now):
            self.hub.cool(key)
        self._applied = set(open_now)
        return set(open_now)

    async def run(self) -> None:
        pace = min(self.interval, self.claim_interval or self.interval)
        reread = True
        while True:
            self._changed.clear()
            try:
                await self.tick(reread=reread)
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not end important periods for good
                log.exception("keep-warm: cannot read the windows; retrying")
                self._read_at = None
            try:
                await asyncio.wait_for(self._changed.wait(), pace)
            except TimeoutError:
                pass
            reread = self._changed.is_set() or self._read_at is None \
                or time.monotonic() - self._read_at >= self.interval
