"""One upstream, many consumers: the Stream, its consumers' queues and the GOP cache.

A :class:`Stream` runs one :class:`Source` at a time (reconnecting as
:mod:`camrelay.relay.reconnect` decides: a short TCP check while watched, the capped
exponential backoff when not), rebases every session's timestamps onto one
continuous 90 kHz timeline, keeps the units since the last keyframe (the GOP cache)
and pushes every unit into each :class:`Subscription`'s bounded queue.  A consumer
whose queue is full loses its queue and skips to the next keyframe; the drops are
counted and nobody else waits for it.  While the source reconnects, consumers wait
(their sessions stay up), except after :class:`~camrelay.errors.SourceRefused`: an
upstream that refuses the relay itself ends every consumer at once.

Everything here runs on the event loop; sources that block do it in a
:class:`~camrelay.relay.worker.Worker` thread, which posts its results to the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from camrelay.errors import CamrelayError, SourceRefused, SourceUnavailable
from camrelay.fields import TRANSCODE_BITRATE, TRANSCODE_HEIGHT, TRANSCODE_WIDTH
from camrelay.relay.keyframes import KeyframeAsk, KeyframeRequests
from camrelay.relay.media import AccessUnit, AudioInfo, AudioUnit, StreamKey, VideoInfo
from camrelay.relay.reconnect import Address, Retry

log = logging.getLogger(__name__)

StreamState = Literal["connecting", "live", "retrying", "stopped"]

GOP_MAX_UNITS = 600
GOP_MAX_BYTES = 32 * 1024 * 1024
KEYFRAME_HISTORY = 5  # keyframes whose intervals predict the next one (their median)
# keyframes closer than this (90 kHz) count as one: another camrelay sends a joiner its
# keyframe twice (sinks/joinwait.py), which is no keyframe interval of the camera
KEYFRAME_REPEAT = 9000
AUDIO_QUEUE = 50  # audio units per audio consumer (1-2 s); when full the oldest goes


class StreamClosed(CamrelayError):
    """The stream, the hub or this subscription has stopped; no more units will come."""

    status = 503
    title = "Stream closed"


@dataclass(frozen=True, slots=True)
class TranscodeSettings:
    """H.264 made by camrelay: constrained baseline, one keyframe every ``gop_seconds``."""

    width: int | None = None  # None: keep the source's size
    height: int | None = None
    bitrate: int | None = None  # bits per second; None: about 0.1 bit per pixel per frame
    gop_seconds: float = 2.0
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        for name, (low, _) in (("width", TRANSCODE_WIDTH), ("height", TRANSCODE_HEIGHT)):
            value = getattr(self, name)
            if value is not None and (value < low or value % 2):
                raise ValueError(f"transcode {name} must be an even number >= {low}")
        if self.bitrate is not None and self.bitrate < TRANSCODE_BITRATE[0]:
            raise ValueError(f"transcode bitrate must be at least {TRANSCODE_BITRATE[0]} bit/s")
        if self.gop_seconds <= 0:
            raise ValueError("transcode gop_seconds must be positive")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a source needs to pull one camera stream; built by the app from the catalogue.

    ``url`` carries no credentials; they are put into the URL only inside the source.
    ``"demo:"`` (optionally ``demo:?width=640&height=360&fps=25&gop=1``) is the synthetic
    test pattern.  ``client`` picks the RTSP client for ``rtsp://``: ``"native"``
    (camrelay's own, for H.264; other codecs are handed to FFmpeg) or ``"ffmpeg"``
    (PyAV for everything).
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    transport: Literal["tcp", "udp"] = "tcp"
    connect_timeout: float = 5.0
    read_timeout: float = 5.0
    transcode: TranscodeSettings | None = None
    client: Literal["native", "ffmpeg"] = "native"

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ValueError("transport must be 'tcp' or 'udp'")
        if self.client not in ("native", "ffmpeg"):
            raise ValueError("client must be 'native' or 'ffmpeg'")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive")


SourceResolver = Callable[[StreamKey], Awaitable[SourceSpec]]


class UnitSink(Protocol):
    """Where a source delivers, on the event loop thread."""

    def on_info(self, info: VideoInfo, transcoded: bool) -> None: ...

    def on_unit(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None: ...

    def on_audio_info(self, info: AudioInfo) -> None:
        """The session carries audio (called before its first video unit)."""

    def on_audio(self, data: bytes, pts: int, arrival: float) -> None:
        """One audio unit; ``pts`` on the audio clock."""


class Source(Protocol):
    """One upstream session.  ``run`` returns when the upstream ends, raises
    :class:`SourceUnavailable` when it fails, and stops promptly when cancelled.
    The first unit delivered is a keyframe; ``pts`` is on a 90 kHz clock."""

    async def run(self, sink: UnitSink) -> None: ...


class Subscription:
    """One consumer of a stream.  See :meth:`camrelay.relay.hub.Hub.subscribe`."""

    def __init__(self, stream: Stream, initial_gop: tuple[AccessUnit, ...], queue_size: int,
                 on_close: Callable[[Subscription], None]) -> None:
        self._stream = stream
        self.initial_gop = initial_gop
        self._queue: deque[AccessUnit] = deque()
        self._queue_size = queue_size
        self._ready = asyncio.Event()
        self._skip_to_key = False
        self._closed = False
        self._ended = False
        self._on_close = on_close
        self.dropped = 0

    @property
    def key(self) -> StreamKey:
        return self._stream.key

    @property
    def info(self) -> VideoInfo:
        info = self._stream.info
        if info is None:
            raise StreamClosed(f"[stream {self._stream.key}] has no video information")
        return info

    @property
    def closed(self) -> bool:
        return self._closed or self._ended

    @property
    def audio_info(self) -> AudioInfo | None:
        """The stream's audio (None: the camera sends none, or none we understand)."""
        return self._stream.audio_info

    def open_audio(self) -> AudioSubscription:
        """The stream's audio units, in a queue of their own (close it when done)."""
        return self._stream.subscribe_audio()

    def gop(self) -> tuple[AccessUnit, ...]:
        return tuple(self._stream.gop)

    @property
    def keyframe_interval(self) -> int | None:
        """The camera's keyframe interval in 90 kHz ticks (see :attr:`Stream.keyframe_interval`)."""
        return self._stream.keyframe_interval

    def ask_keyframe(self) -> KeyframeAsk | None:
        """Ask the camera for a keyframe now (:mod:`camrelay.relay.keyframes`): what to
        wait on, or None when the camera cannot be asked."""
        keyframes = self._stream.keyframes
        return keyframes.ask() if keyframes is not None else None

    @property
    def queued(self) -> int:
        """Units waiting for this consumer."""
        return len(self._queue)

    async def get(self) -> AccessUnit:
        while not self._queue:
            if self._closed or self._ended:
                raise StreamClosed(f"[stream {self._stream.key}] closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._ready.set()
        self._on_close(self)

    # called by the Stream, on the loop
    def _push(self, unit: AccessUnit) -> int:
        """Queue ``unit``; returns how many units were dropped for this consumer."""
        if self._closed or self._ended:
            return 0
        dropped = 0
        if self._skip_to_key:
            if not unit.keyframe:
                self.dropped += 1
                return 1
            self._skip_to_key = False
        if len(self._queue) >= self._queue_size:
            dropped = len(self._queue)
            self._queue.clear()
            if not unit.keyframe:
                self._skip_to_key = True
                dropped += 1
                self.dropped += dropped
                return dropped
            self.dropped += dropped
        self._queue.append(unit)
        self._ready.set()
        return dropped

    def _end(self) -> None:
        self._ended = True
        self._ready.set()


class AudioSubscription:
    """One consumer of a stream's audio: a queue apart from video's, so that the video
    path is untouched.  When full, the oldest unit is dropped (counted): audio is never
    worth waiting for."""

    def __init__(self, stream: Stream, queue_size: int = AUDIO_QUEUE) -> None:
        self._stream = stream
        self._queue: deque[AudioUnit] = deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    @property
    def info(self) -> AudioInfo | None:
        return self._stream.audio_info

    async def get(self) -> AudioUnit:
        while not self._queue:
            if self._closed:
                raise StreamClosed(f"[stream {self._stream.key}] audio closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._ready.set()
        self._stream.audio_consumers.discard(self)

    # called by the Stream, on the loop
    def _push(self, unit: AudioUnit) -> None:
        if self._closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(unit)
        self._ready.set()


class Stream:
    """One camera stream: the upstream session loop, the GOP cache and the consumers.

    Owned by the :class:`~camrelay.relay.hub.Hub`, which alone creates, starts and
    stops it; everything runs on the loop.
    """

    def __init__(self, key: StreamKey, open_source: Callable[[], Awaitable[Source]], *,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 probe_interval: float | None = 0.5,
                 keyframes: KeyframeRequests | None = None) -> None:
        self.key = key
        self._open_source = open_source
        self.keyframes = keyframes  # asking the camera for a keyframe, when it can be
        self._retry = Retry(backoff_initial, backoff_max, probe_interval)
        self.address: Address | None = None  # the camera's RTSP host:port, set by the hub
        self.state: StreamState = "connecting"
        self.last_error: str | None = None
        self.last_exception: CamrelayError | None = None
        self.info: VideoInfo | None = None
        self.transcoded = False
        self.gop: list[AccessUnit] = []
        self._gop_bytes = 0
        self._keyframe_pts: deque[int] = deque(maxlen=KEYFRAME_HISTORY)
        self._gop_full = False
        self.consumers: set[Subscription] = set()
        self.pending = 0  # subscribers waiting for the stream to go live
        self.failures = 0
        self.sessions_live = 0
        self.upstream_connects = 0
        self.bytes_in = 0
        self.units_in = 0
        self.dropped = 0
        self.started_at = time.time()
        self.warm_until: float | None = None  # time.time() until which it stays up idle
        self.linger_handle: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self.on_state: Callable[[Stream], None] | None = None  # the hub's listener
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._last_pts: int | None = None
        self._offset: int | None = None
        self._session_live = False
        self.audio_info: AudioInfo | None = None  # this session's audio, if any
        self.audio_consumers: set[AudioSubscription] = set()
        self.audio_units_in = 0
        self._audio_offset: int | None = None
        self._audio_last: int | None = None

    # lifecycle -------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"stream {self.key}")
            if self.keyframes is not None:
                self.keyframes.start()

    async def stop(self) -> None:
        if self.linger_handle is not None:
            self.linger_handle.cancel()
            self.linger_handle = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.state = "stopped"
        self.gop = []
        for sub in list(self.consumers):
            sub._end()
        self.consumers.clear()
        for audio in list(self.audio_consumers):
            audio.close()
        self._notify()
        if self.keyframes is not None:
            await self.keyframes.close()

    @property
    def keyframe_interval(self) -> int | None:
        """The median of this session's last keyframe intervals (90 kHz ticks), robust to
        one irregular GOP (a scene cut); None until two keyframes came."""
        pts = self._keyframe_pts
        if len(pts) < 2:
            return None
        intervals = sorted(b - a for a, b in itertools.pairwise(pts))
        return intervals[len(intervals) // 2]

    @property
    def idle(self) -> bool:
        return not self.consumers and self.pending == 0

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_state is not None:
            self.on_state(self)

    async def wait_live(self, timeout: float) -> None:
        """Return once live; raise the error of an attempt that fails meanwhile,
        :class:`SourceUnavailable` (reason "timeout") after ``timeout`` seconds."""
        failures = self.failures
        if self.state != "live":
            self._retry.watcher_arrived()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.state != "live":
            if self.state == "stopped":
                raise StreamClosed(f"[stream {self.key}] stopped")
            if self.failures != failures and self.last_exception is not None:
                raise self.last_exception
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                detail = f"[stream {self.key}] not live after {timeout:g} s"
                if self.last_error:
                    detail += f" (last error: {self.last_error})"
                raise SourceUnavailable(detail, reason="timeout")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _run(self) -> None:
        while True:
            self._session_live = False
            self.audio_info = None
            try:
                source = await self._open_source()
                await source.run(self)
                error: CamrelayError = SourceUnavailable(
                    f"[stream {self.key}] upstream ended", reason="unreachable")
            except asyncio.CancelledError:
                raise
            except CamrelayError as exc:
                error = exc
            except Exception as exc:  # a bug in a source must not end the supervisor
                log.exception("[stream %s] source failed", self.key)
                error = SourceUnavailable(
                    f"[stream {self.key}] internal error: {type(exc).__name__}",
                    reason="unsupported")
            self._session_ended(error)
            if self._session_live:
                self._retry.reset()
            log.info("[stream %s] %s; retrying", self.key, self.last_error)
            await self._retry.wait(str(self.key), self.address, lambda: not self.idle)

    def _session_ended(self, error: CamrelayError) -> None:
        self.failures += 1
        self.last_exception = error
        self.last_error = error.detail
        self.state = "retrying"
        self.gop = []
        self._gop_bytes = 0
        self._keyframe_pts.clear()  # the next session's GOP may differ
        self._offset = None
        if isinstance(error, SourceRefused) and self.consumers:
            # the upstream refuses the relay itself (a revoked federation credential):
            # no viewer may wait for a picture it would not be allowed to see
            log.info("[stream %s] upstream refused the relay (%s): ending %d consumers",
                     self.key, error.reason, len(self.consumers))
            for sub in self.consumers:
                sub._end()
        self._notify()

    # UnitSink --------------------------------------------------------------
    def on_info(self, info: VideoInfo, transcoded: bool) -> None:
        self.info = info
        self.transcoded = transcoded
        self.upstream_connects += 1
        self._offset = None
        log.debug("[stream %s] upstream connected: %s", self.key, info)

    def subscribe_audio(self) -> AudioSubscription:
        """A consumer of this stream's audio (see :attr:`audio_info`; none: no units)."""
        sub = AudioSubscription(self)
        self.audio_consumers.add(sub)
        return sub

    def on_audio_info(self, info: AudioInfo) -> None:
        if self.audio_info is not None and self.audio_info != info:
            log.info("[stream %s] the camera's audio changed to %s", self.key, info.codec)
        self.audio_info = info
        self._audio_offset = None

    def on_audio(self, data: bytes, pts: int, arrival: float) -> None:
        if self._task is None:
            return
        if self._audio_offset is None:  # a new session continues the audio timeline
            self._audio_offset = -pts if self._audio_last is None else \
                self._audio_last + 1 - pts
        out = pts + self._audio_offset
        if self._audio_last is not None and out <= self._audio_last:
            out = self._audio_last + 1
        self._audio_last = out
        self.audio_units_in += 1
        self.bytes_in += len(data)
        if self.audio_consumers:
            unit = AudioUnit(data, out, arrival)
            for sub in self.audio_consumers:
                sub._push(unit)

    def on_unit(self, data: bytes, pts: int, keyframe: bool, arrival: float) -> None:
        if self._task is None:
            return
        if self._offset is None:
            if not keyframe:
                return
            if self._last_pts is None:
                self._offset = -pts
            else:
                step = round(90000 / self.info.fps) if self.info and self.info.fps else 3600
                self._offset = self._last_pts + step - pts
        out_pts = pts + self._offset
        if self._last_pts is not None and out_pts <= self._last_pts:
            out_pts = self._last_pts + 1
        self._last_pts = out_pts
        self._seq += 1
        unit = AccessUnit(data=data, pts=out_pts, keyframe=keyframe, arrival=arrival,
                          seq=self._seq)
        self.units_in += 1
        self.bytes_in += len(data)
        if keyframe:
            if self.keyframes is not None and self.keyframes.keyframe_came():
                pass  # made on request: no sample of the camera's keyframe interval
            elif self._keyframe_pts and out_pts - self._keyframe_pts[-1] < KEYFRAME_REPEAT:
                self._keyframe_pts[-1] = out_pts
            else:
                self._keyframe_pts.append(out_pts)
            self.gop = [unit]
            self._gop_bytes = len(data)
            self._gop_full = False
        elif not self._gop_full:
            if len(self.gop) >= GOP_MAX_UNITS or self._gop_bytes + len(data) > GOP_MAX_BYTES:
                self._gop_full = True  # keep the head: it still decodes, just not to "now"
            else:
                self.gop.append(unit)
                self._gop_bytes += len(data)
        if not self._session_live:
            self._session_live = True
            self.sessions_live += 1
            self.state = "live"
            self.last_error = None
            self._notify()
        for sub in self.consumers:
            self.dropped += sub._push(unit)
