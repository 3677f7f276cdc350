"""Keyframes on request: asking the camera for an IDR when a viewer joins mid-GOP.

A joiner of a running stream gets the cached keyframe at once, then needs either the
rest of the GOP (a burst its decoder must work through: up to a 4 s GOP of 1080p
P-frames, which a browser on a small machine cannot decode in a second) or the
camera's next keyframe (:mod:`camrelay.relay.sinks.joinwait`).  Most IP cameras make
one when asked -- ONVIF Media ``SetSynchronizationPoint`` -- so a joiner that would
otherwise lag behind live asks, shows the cached keyframe meanwhile and is live from
the camera's fresh IDR, a frame or two later.  Nothing is re-encoded.

:class:`KeyframeAsker` is how the relay reaches the camera (the composition root
gives the hub one that speaks ONVIF to catalogue cameras); :class:`KeyframeRequests`
is one stream's use of it: prepared once per stream (the camera's media profile looked
up and a connection kept open, so that a request is one round trip), at most one
request in flight, at most one per :data:`MIN_INTERVAL`, and a camera that does not
answer with a keyframe within ``wait`` seconds is not asked again for a while
(doubling from :data:`RETRY_AFTER` up to :data:`RETRY_MAX`).  The requests' outcomes
are counted for ``/metrics`` (``camrelay_keyframe_requests_total``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from camrelay.errors import CamrelayError
from camrelay.relay.media import StreamKey

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0  # seconds between two requests to one stream's camera
RETRY_AFTER = 60.0  # seconds before asking again a camera that did not answer ...
RETRY_MAX = 3600.0  # ... doubled at each miss in a row, up to this


@dataclass(slots=True)
class KeyframeAsk:
    """One request for a keyframe, shared by the joiners that wait for it."""

    until: float  # monotonic time until which a joiner waits for the keyframe
    failed: bool = False  # the camera refused or did not answer: stop waiting now


class KeyframeAsker(Protocol):
    """Asks cameras for a keyframe now.  Errors are :class:`CamrelayError`."""

    async def prepare(self, key: StreamKey) -> bool:
        """Get ready to ask for ``key``'s keyframes; False: its camera cannot be asked
        (no ONVIF address, no such profile, or it refused)."""

    async def ask(self, key: StreamKey) -> None:
        """Ask ``key``'s camera for a keyframe (returns when the camera has accepted)."""

    async def release(self, key: StreamKey) -> None:
        """Forget what :meth:`prepare` kept for ``key``."""


class KeyframeRequests:
    """One stream's requests for a keyframe.  Everything runs on the loop."""

    def __init__(self, key: StreamKey, asker: KeyframeAsker, wait: float) -> None:
        self.key = key
        self.wait = wait  # seconds a joiner waits for the asked keyframe
        self._asker = asker
        self._ready = False
        self._retry_at = 0.0  # monotonic time before which the camera is not asked
        self._misses = 0  # requests in a row without a keyframe
        self._current: KeyframeAsk | None = None  # a request in flight (no keyframe since)
        self._last_ask = -MIN_INTERVAL
        self._task: asyncio.Task[None] | None = None
        self.outcomes: Counter[str] = Counter()  # answered / missed / failed
        self.last_latency: float | None = None  # seconds from request to keyframe

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._prepare(), name=f"keyframes {self.key}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._ready = False
        try:
            await self._asker.release(self.key)
        except CamrelayError as err:
            log.debug("[stream %s] releasing the keyframe requests: %s", self.key, err.detail)

    @property
    def ready(self) -> bool:
        """Prepared: a joiner may ask now (unless a request is too recent)."""
        return self._ready

    def ask(self) -> KeyframeAsk | None:
        """Ask the camera for a keyframe for a joiner: what the joiner waits on, or None
        (the camera cannot be asked now: send the joiner the GOP)."""
        now = time.monotonic()
        if self._current is not None:
            if now < self._current.until:
                return self._current  # on its way: shared
            self._missed("no keyframe came")
        if not self._ready:
            if now >= self._retry_at and self._task is None:
                self.start()  # prepared again for the joiners after this one
            return None
        if now - self._last_ask < MIN_INTERVAL or self._task is not None:
            return None
        self._last_ask = now
        self._current = KeyframeAsk(now + self.wait)
        self._task = asyncio.create_task(self._ask(), name=f"keyframe {self.key}")
        return self._current

    def keyframe_came(self) -> bool:
        """The stream received a keyframe: True if it answers a request (it is then no
        sample of the camera's keyframe interval)."""
        current, self._current = self._current, None
        if current is None:
            return False
        latency = time.monotonic() - (current.until - self.wait)
        if latency > self.wait:
            self._missed(f"the keyframe came {latency:.2f} s after the request")
            return False
        self.last_latency = latency
        self.outcomes["answered"] += 1
        self._misses = 0
        log.debug("[stream %s] asked keyframe came in %.0f ms", self.key, latency * 1000)
        return True

    def _give_up(self) -> None:
        """The request in flight will bring no keyframe: its joiners stop waiting."""
        if self._current is not None:
            self._current.failed = True
        self._current = None

    def _missed(self, why: str) -> None:
        self._give_up()
        self.outcomes["missed"] += 1
        self._pause(f"{why} within {self.wait:g} s of asking")

    def _pause(self, why: str) -> None:
        self._ready = False
        pause = min(RETRY_MAX, RETRY_AFTER * 2 ** self._misses)
        self._misses += 1
        self._retry_at = time.monotonic() + pause
        log.info("[stream %s] not asking the camera for keyframes for %.0f s: %s",
                 self.key, pause, why)

    async def _prepare(self) -> None:
        try:
            ready = await self._asker.prepare(self.key)
        except CamrelayError as err:
            self._pause(f"cannot ask the camera ({err.detail})")
        except Exception:  # a bug on this side path must not reach the joiners
            log.exception("[stream %s] preparing the keyframe requests failed", self.key)
            self._pause("preparing failed")
        else:
            self._ready = ready
            if ready:
                log.info("[stream %s] joiners mid-GOP ask the camera for a keyframe",
                         self.key)
            else:  # no ONVIF: not asked again until the stream restarts
                self._retry_at = float("inf")
        finally:
            self._task = None

    async def _ask(self) -> None:
        try:
            await asyncio.wait_for(self._asker.ask(self.key), self.wait)
        except Exception as err:  # CamrelayError, TimeoutError, or a bug: not asked again
            self._give_up()
            self.outcomes["failed"] += 1
            if isinstance(err, CamrelayError):
                detail = err.detail
            elif isinstance(err, TimeoutError):
                detail = "no answer"
            else:
                log.exception("[stream %s] asking the camera for a keyframe failed", self.key)
                detail = type(err).__name__
            self._pause(f"the request failed ({detail})")
        finally:
            self._task = None
