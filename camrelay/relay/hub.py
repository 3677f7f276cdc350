"""The Hub: the only owner of the stream-key -> Stream map.

Streams start on their first consumer (or :meth:`Hub.keep_warm`) and stop ``linger``
seconds after their last consumer leaves.  A ``StreamKey`` with ``transcode=True`` is
made from the same camera's plain stream (one RTSP session per camera stream), and a
camera that does not send H.264 is transcoded once, in its plain stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, Self

from camrelay.errors import SourceUnavailable
from camrelay.redact import redact_text
from camrelay.relay.keyframes import KeyframeAsker, KeyframeRequests
from camrelay.relay.media import VIDEO_CLOCK, AccessUnit, StreamKey
from camrelay.relay.reconnect import upstream_address
from camrelay.relay.stream import (
    Source,
    SourceResolver,
    SourceSpec,
    Stream,
    StreamClosed,
    StreamState,
    Subscription,
    TranscodeSettings,
)

__all__ = [
    "Hub",
    "SourceResolver",
    "SourceSpec",
    "SourceTable",
    "StreamClosed",
    "StreamStatus",
    "Subscription",
    "TranscodeSettings",
]

log = logging.getLogger(__name__)

StateListener = Callable[[StreamKey, StreamState, str | None], None]
# Asked before a camera's upstream is opened (and reopened); raises to refuse it, e.g.
# when another node of a cluster holds the camera's lease (camrelay.cluster.node).
Admission = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class _Totals:
    """A stream key's counters from its earlier, stopped streams (so totals never fall)."""

    upstream_connects: int = 0
    reconnects: int = 0
    bytes_in: int = 0
    units_in: int = 0
    dropped: int = 0

    def add(self, stream: Stream) -> None:
        self.upstream_connects += stream.upstream_connects
        self.reconnects += _reconnects(stream)
        self.bytes_in += stream.bytes_in
        self.units_in += stream.units_in
        self.dropped += stream.dropped


def _reconnects(stream: Stream) -> int:
    return max(0, stream.sessions_live - 1)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One running stream; the counters are totals since the hub started."""

    key: StreamKey
    state: StreamState
    last_error: str | None
    consumers: int
    reconnects: int
    bytes_in: int
    units_in: int
    dropped: int
    upstream_connects: int
    started_at: datetime
    keyframe_interval: float | None = None  # seconds, measured (None: not two keyframes yet)
    # keyframes asked of the camera for joiners (relay/keyframes.py), by outcome:
    # answered, missed (no keyframe in time), failed (the request failed); this stream's
    keyframe_requests: tuple[tuple[str, int], ...] = ()


class SourceTable(Protocol):
    """Which source pulls a stream; built by the app
    (:func:`camrelay.relay.sources.registry.default_sources`) and handed to the hub."""

    def source(self, spec: SourceSpec) -> Source: ...

    def transcoded(self, hub: Hub, base: StreamKey, spec: SourceSpec) -> Source: ...


class Hub:
    def __init__(self, resolver: SourceResolver, sources: SourceTable, *, linger: float = 15.0,
                 connect_timeout: float = 5.0, queue_size: int = 120,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 probe_interval: float | None = 0.5, admit: Admission | None = None,
                 keyframes: KeyframeAsker | None = None, keyframe_wait: float = 0.8) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._resolver = resolver
        self._sources = sources
        self.linger = linger
        self.connect_timeout = connect_timeout
        self.queue_size = queue_size
        self._backoff = (backoff_initial, backoff_max)
        self.probe_interval = probe_interval
        self._streams: dict[StreamKey, Stream] = {}
        self._retired: dict[StreamKey, _Totals] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._running = False
        self._listeners: list[StateListener] = []
        self._admit = admit
        # joiners mid-GOP ask the camera for a keyframe (relay/keyframes.py); 0: never
        self._keyframes = keyframes if keyframe_wait > 0 else None
        self._keyframe_wait = keyframe_wait

    def watch(self, listener: StateListener) -> None:
        """Call ``listener(key, state, reason)`` on every stream state change
        (connecting, live, retrying, stopped); ``reason`` is the last failure's short
        code (unreachable, auth, timeout, ...), never its text (which may name the
        camera's address).  The listener must not block."""
        self._listeners.append(listener)

    def _state_changed(self, stream: Stream) -> None:
        failure = stream.last_exception
        reason = None
        if stream.state == "retrying" and failure is not None:
            reason = str(failure.extra.get("reason") or type(failure).__name__)
        for listener in self._listeners:
            try:
                listener(stream.key, stream.state, reason)
            except Exception:  # a listener's bug must not stop a stream
                log.exception("[stream %s] state listener failed", stream.key)

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            self._stop_stream(stream)
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # consumers ---------------------------------------------------------------
    async def subscribe(self, key: StreamKey, timeout: float = 5.0) -> Subscription:
        stream = self._ensure(key)
        stream.pending += 1
        try:
            await stream.wait_live(timeout)
        except BaseException:
            stream.pending -= 1
            self._check_idle(stream)
            raise
        stream.pending -= 1
        if stream.state != "live" or self._streams.get(key) is not stream:
            raise StreamClosed(f"[stream {key}] stopped")
        sub = Subscription(stream, tuple(stream.gop), self.queue_size, self._on_close)
        stream.consumers.add(sub)
        log.debug("[stream %s] consumer joined (%d)", key, len(stream.consumers))
        return sub

    def latest_gop(self, key: StreamKey) -> tuple[AccessUnit, ...] | None:
        stream = self._streams.get(key)
        if stream is None or stream.state != "live" or not stream.gop:
            return None
        return tuple(stream.gop)

    def live_keyframe(self, key: StreamKey) -> tuple[StreamState, AccessUnit | None, str | None]:
        """A running stream's state, its cached keyframe and codec (health checks: no second
        connection to a camera being streamed).  ``"stopped"`` when no stream runs."""
        stream = self._streams.get(key)
        if stream is None:
            return "stopped", None, None
        unit = stream.gop[0] if stream.state == "live" and stream.gop else None
        codec = stream.info.codec if stream.info is not None else None
        return stream.state, unit, codec

    def keep_warm(self, key: StreamKey, until: datetime) -> None:
        """Keep ``key`` live until ``until`` (aware, or naive UTC) even without consumers."""
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        deadline = until.timestamp()
        stream = self._ensure(key)
        stream.warm_until = max(deadline, stream.warm_until or 0.0)
        self._check_idle(stream)

    def cool(self, key: StreamKey) -> None:
        """End a keep-warm window early: the stream lingers and stops as if unwatched."""
        stream = self._streams.get(key)
        if stream is None or stream.warm_until is None:
            return
        stream.warm_until = None
        self._check_idle(stream)

    def end(self, key: StreamKey) -> None:
        """Stop ``key``'s stream now, whoever watches it: its consumers' subscriptions end
        (a pushed source whose publisher left; the next consumer starts a new stream)."""
        stream = self._streams.pop(key, None)
        if stream is not None:
            log.info("[stream %s] ended by its source's owner", key)
            self._stop_stream(stream)

    def status(self) -> list[StreamStatus]:
        out = []
        for s in self._streams.values():
            old = self._retired.get(s.key) or _Totals()
            out.append(StreamStatus(
                key=s.key, state=s.state, last_error=s.last_error and redact_text(s.last_error),
                consumers=len(s.consumers), reconnects=old.reconnects + _reconnects(s),
                bytes_in=old.bytes_in + s.bytes_in, units_in=old.units_in + s.units_in,
                dropped=old.dropped + s.dropped,
                upstream_connects=old.upstream_connects + s.upstream_connects,
                started_at=datetime.fromtimestamp(s.started_at, UTC),
                keyframe_interval=(None if s.keyframe_interval is None
                                   else s.keyframe_interval / VIDEO_CLOCK),
                keyframe_requests=(() if s.keyframes is None
                                   else tuple(sorted(s.keyframes.outcomes.items()))),
            ))
        return out

    def camera_ids(self) -> set[int]:
        """The cameras with a running stream (any variant, warm or watched)."""
        return {key.camera_id for key in self._streams}

    def drop_camera(self, camera_id: int, reason: str) -> int:
        """Stop every stream of ``camera_id`` now, consumers and keep-warm included (a
        cluster node that lost the camera's lease: fencing).  Returns how many stopped."""
        doomed = [s for key, s in self._streams.items() if key.camera_id == camera_id]
        for stream in doomed:
            del self._streams[stream.key]
            log.warning("[stream %s] stopped at once: %s", stream.key, reason)
            self._stop_stream(stream)
        return len(doomed)

    def is_transcoded(self, key: StreamKey) -> bool:
        stream = self._streams.get(key)
        return stream is not None and stream.transcoded

    # the map ---------------------------------------------------------------------
    def _ensure(self, key: StreamKey) -> Stream:
        if not self._running:
            raise StreamClosed("the relay is not running")
        stream = self._streams.get(key)
        if stream is None:
            asker = self._keyframes if not key.transcode else None  # ours keep their GOP
            stream = Stream(key, lambda: self._open_source(key),
                            backoff_initial=self._backoff[0], backoff_max=self._backoff[1],
                            probe_interval=self.probe_interval,
                            keyframes=None if asker is None else
                            KeyframeRequests(key, asker, self._keyframe_wait))
            stream.on_state = self._state_changed
            self._streams[key] = stream
            self._state_changed(stream)
            stream.start()
            log.info("[stream %s] started", key)
        if stream.linger_handle is not None:
            stream.linger_handle.cancel()
            stream.linger_handle = None
        return stream

    def _on_close(self, sub: Subscription) -> None:
        stream = self._streams.get(sub.key)
        if stream is None or sub not in stream.consumers:
            return
        stream.consumers.discard(sub)
        log.debug("[stream %s] consumer left (%d)", sub.key, len(stream.consumers))
        self._check_idle(stream)

    def _check_idle(self, stream: Stream) -> None:
        if self._streams.get(stream.key) is not stream or not stream.idle:
            return
        if stream.linger_handle is not None:
            stream.linger_handle.cancel()
            stream.linger_handle = None
        loop = asyncio.get_running_loop()
        now = time.time()
        if stream.warm_until is not None and stream.warm_until > now:
            stream.linger_handle = loop.call_later(stream.warm_until - now, self._expire, stream)
        elif stream.sessions_live == 0:
            self._expire(stream)  # never went live: nothing worth lingering for
        else:
            stream.linger_handle = loop.call_later(self.linger, self._expire, stream)

    def _expire(self, stream: Stream) -> None:
        stream.linger_handle = None
        if self._streams.get(stream.key) is not stream or not stream.idle:
            return
        if stream.warm_until is not None and stream.warm_until > time.time():
            self._check_idle(stream)
            return
        del self._streams[stream.key]
        log.info("[stream %s] no consumers: stopping", stream.key)
        self._stop_stream(stream)

    def _stop_stream(self, stream: Stream) -> None:
        self._retired.setdefault(stream.key, _Totals()).add(stream)
        task = asyncio.create_task(stream.stop(), name=f"stop {stream.key}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _open_source(self, key: StreamKey) -> Source:
        try:
            if self._admit is not None and not key.transcode:
                await asyncio.wait_for(self._admit(key.camera_id), self.connect_timeout)
            spec = await asyncio.wait_for(self._resolver(key), self.connect_timeout)
        except TimeoutError:
            raise SourceUnavailable(f"[stream {key}] looking up the camera timed out",
                                    reason="timeout") from None
        stream = self._streams.get(key)
        if stream is not None and not key.transcode:
            stream.address = upstream_address(spec.url)  # checked while watched and down
        if key.transcode:
            return self._sources.transcoded(self, replace(key, transcode=False), spec)
        return self._sources.source(spec)
