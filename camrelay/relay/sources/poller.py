"""Reading many cameras with few wake-ups of the event loop.

A camera sends a picture every 40 ms as a burst of RTP packets; read on readiness, every
camera wakes the loop several times per picture, and with tens of cameras that wake-up
(epoll, the callback, the switch into Python) costs more than parsing the packets.  One
:class:`IngestPoller` per event loop reads every registered camera socket:

* with fewer than ``batch_from`` sockets, each on its own readiness (``add_reader``), so
  one camera adds no delay;
* from ``batch_from`` sockets on, none is armed: one timer every ``tick`` seconds reads
  them all, draining what each holds.  The loop wakes ``1 / tick`` times a second
  however many cameras there are, and a packet waits at most one tick (4 ms by default)
  before it is read.

Readers are objects with ``fileno()`` and ``read()``; ``read()`` drains its socket and
never raises (it reports its own failures to its owner).  The poller only decides when
to call it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_TICK = 0.004
DEFAULT_BATCH_FROM = 4


class Reader(Protocol):
    def fileno(self) -> int: ...

    def read(self) -> None: ...


_tick = DEFAULT_TICK
_batch_from = DEFAULT_BATCH_FROM
_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IngestPoller] = (
    weakref.WeakKeyDictionary())


def configure(*, tick: float = DEFAULT_TICK, batch_from: int = DEFAULT_BATCH_FROM) -> None:
    """Set the process-wide defaults (``relay.ingest_tick_ms``, ``relay.ingest_batch_from``)
    for pollers created afterwards.  ``batch_from = 0`` never batches."""
    global _tick, _batch_from
    if not 0 < tick <= 0.1:
        raise ValueError("the ingest tick must be between 0 and 100 ms")
    if batch_from < 0:
        raise ValueError("batch_from must be 0 (never) or more")
    _tick, _batch_from = tick, batch_from


def poller() -> IngestPoller:
    """The running loop's poller."""
    loop = asyncio.get_running_loop()
    found = _pollers.get(loop)
    if found is None:
        found = _pollers[loop] = IngestPoller(loop, tick=_tick, batch_from=_batch_from)
    return found


class IngestPoller:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, tick: float,
                 batch_from: int) -> None:
        self._loop = loop
        self.tick = tick
        self.batch_from = batch_from
        self._readers: dict[int, Reader] = {}  # by file descriptor, in registration order
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.ticks = 0  # timer rounds so far (for tests and metrics)

    @property
    def batching(self) -> bool:
        return self._timer is not None

    def __len__(self) -> int:
        return len(self._readers)

    def add(self, reader: Reader) -> None:
        fd = reader.fileno()
        if fd in self._readers:
            raise ValueError(f"descriptor {fd} is already registered")
        self._readers[fd] = reader
        if self.batching:
            return
        if self.batch_from and len(self._readers) >= self.batch_from:
            self._start_batching()
        else:
            self._loop.add_reader(fd, reader.read)

    def remove(self, reader: Reader) -> None:
        """Forget ``reader``; call it before its socket is closed."""
        fd = reader.fileno()
        if self._readers.get(fd) is not reader:
            return
        del self._readers[fd]
        if not self.batching:
            self._loop.remove_reader(fd)
        elif not self._readers or len(self._readers) < self.batch_from - 1:
            # a little hysteresis: a camera going and coming does not flip the mode
            self._stop_batching()

    def _start_batching(self) -> None:
        for fd in self._readers:
            self._loop.remove_reader(fd)
        log.debug("ingest: %d camera sockets, reading them all every %g ms",
                  len(self._readers), self.tick * 1000)
        self._due = self._loop.time() + self.tick
        self._timer = self._loop.call_at(self._due, self._round)

    def _stop_batching(self) -> None:
        assert self._timer is not None
        self._timer.cancel()
        self._timer = None
        for fd, reader in self._readers.items():
            self._loop.add_reader(fd, reader.read)
        log.debug("ingest: %d camera sockets, back to reading each on readiness",
                  len(self._readers))

    def _round(self) -> None:
        self.ticks += 1
        for reader in list(self._readers.values()):
            reader.read()
        if self._timer is None:  # a reader's failure stopped batching
            return
        # a fixed grid, so a late round does not push every later one back; a round
        # more than a tick late starts a new grid instead of catching up in a rush
        now = self._loop.time()
        self._due += self.tick
        if self._due <= now:
            self._due = now + self.tick
        self._timer = self._loop.call_at(self._due, self._round)
