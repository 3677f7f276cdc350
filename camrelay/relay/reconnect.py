"""When a stream tries its upstream again after a failure.

The attempts follow a backoff: ``initial`` seconds doubling to ``maximum``, each wait
±20 % jitter, restarted when a session went live.  That alone is the schedule of an
unwatched (keep-warm) stream.

While someone watches the stream (a consumer, or a viewer waiting to join) and the
camera has a TCP address, a reachability check drives it instead: every
``probe_interval`` seconds a TCP connection to the camera's RTSP port, closed at once,
nothing sent.  The RTSP session is opened only when the port accepts: at once (and the
backoff restarted) when it accepts after having refused or timed out, or after someone
started watching; otherwise once the backoff's wait has passed.  ``probe_interval=None``
turns the checks off (the backoff alone, camrelay's schedule before issue 12).  A
stream without a TCP address (``demo:``, ``whip:``, ``whep+http://``) has nothing to
check: it waits for the backoff, but a viewer who starts waiting meanwhile gets an
attempt at once (one per arriving viewer, never a loop).  So a camera that is
down sees only the checks (at most one SYN per ``probe_interval``), and one that accepts
TCP but fails RTSP sees no more RTSP attempts than the backoff allows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Address = tuple[str, int]

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
PROBE_TIMEOUT = 0.75  # below Linux's first SYN retransmission (1 s): one SYN per check


def upstream_address(url: str) -> Address | None:
    """The TCP host and port of an ``rtsp://`` / ``rtsps://`` URL (554 / 322 by default)."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or default


async def port_accepts(address: Address, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ``address`` is accepted within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):  # not wait_for: 3.11's can swallow a cancel
            _, writer = await asyncio.open_connection(*address)
    except (OSError, TimeoutError):
        return False
    writer.transport.abort()  # nothing to say: the handshake was the question
    return True


class Retry:
    """The wait between one stream's upstream attempts; owned by its Stream, on the loop."""

    def __init__(self, initial: float, maximum: float, probe_interval: float | None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff must satisfy 0 < initial <= maximum")
        if probe_interval is not None and probe_interval <= 0:
            raise ValueError("probe_interval must be positive (or None: no checks)")
        self.initial = initial
        self.maximum = maximum
        self.probe_interval = probe_interval
        self._next_probe = 0.0  # loop time: checks keep their period across waits
        self._delay = initial
        self._watchers = asyncio.Event()

    def reset(self) -> None:
        self._delay = self.initial

    def watcher_arrived(self) -> None:
        """Someone started waiting for the stream: a wait in progress starts checking."""
        self._watchers.set()

    async def wait(self, name: str, address: Address | None,
                   watched: Callable[[], bool]) -> None:
        """Return when the next attempt is due (see the module docstring)."""
        loop = asyncio.get_running_loop()
        wait = self._delay * random.uniform(0.8, 1.2)
        self._delay = min(self._delay * 2, self.maximum)
        interval = self.probe_interval
        if interval is None:
            await asyncio.sleep(wait)  # the backoff itself, not a readiness signal
            return
        if address is None:  # nothing to check (demo:, whip:, whep+http): a viewer who
            self._watchers.clear()  # starts waiting gets an attempt at once
            try:
                async with asyncio.timeout(wait):
                    await self._watchers.wait()
            except TimeoutError:
                return
            log.debug("[stream %s] a viewer is waiting: trying again now", name)
            return
        deadline = loop.time() + wait
        retry_on_accept = False
        while True:
            now = loop.time()
            if not watched():
                retry_on_accept = True
                if now >= deadline:
                    return
                self._watchers.clear()
                try:
                    async with asyncio.timeout(deadline - now):
                        await self._watchers.wait()
                except TimeoutError:
                    return
                continue
            if now < self._next_probe:
                await asyncio.sleep(self._next_probe - now)  # the period
                continue
            self._next_probe = now + interval
            if await port_accepts(address):
                if retry_on_accept:
                    log.info("[stream %s] %s:%d accepts connections: reconnecting",
                             name, *address)
                    self.reset()
                    return
                if loop.time() >= deadline:
                    return
            else:
                retry_on_accept = True
