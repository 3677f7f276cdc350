"""Talk-back: an operator's voice to a field device, over the device's own WHIP session
(and, through :mod:`camrelay.relay.backchannel`, to a camera's ONVIF back-channel).

The operator's browser (or any WebRTC client) sends its microphone as Opus in a
sendonly offer to ``POST /talk/{camera_id}`` (:mod:`camrelay.web.talk`).  A
:class:`TalkSession` receives it without decoding (``aiortc_internals.tap_encoded_frames``)
and puts the packets on the publisher's :class:`TalkLine`, which the publisher's audio
sender reads (a :class:`~camrelay.relay.sinks.audio.PacketTrack`): the device hears the
operator's own Opus, nothing is decoded or re-encoded.  Only a publisher whose offer
receives audio (``sendrecv`` or ``recvonly``) has a talk line.

* **One talker at a time** per device: a second is refused (:class:`TalkBusy`, 409).
* **Timeline.**  Each talker's RTP timestamps are moved onto the line's one continuous
  48 kHz timeline (a new talker continues after the silence since the last one), so
  the device's jitter buffer sees one steady stream.
* **Ownership.**  :class:`~camrelay.relay.ingest.WhipIngest` owns the talk sessions; a
  session owns its peer connection and one supervisor task; it ends with its publisher.
  A session to a camera (:class:`~camrelay.relay.backchannel.CameraTalk`) is a
  :class:`TalkSession` without a line: it says when it ends (:meth:`TalkSession._ended`)
  and what it releases (:meth:`TalkSession._release`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiortc import RTCPeerConnection, RTCRtpCodecParameters

from camrelay.errors import BadRequest, Conflict
from camrelay.relay.peer import PeerWatch, end_peer
from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.stream import StreamClosed

log = logging.getLogger(__name__)

TALK_RATE = 48_000
TALK_QUEUE = 25  # Opus packets (0.5 s at 20 ms) waiting for the device's sender


class TalkBusy(Conflict):
    """Someone already talks to this device (409)."""

    title = "Someone is already talking to this device"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, reason="talk_busy")


def opus_codec(offered: tuple[RTCRtpCodecParameters, ...]) -> RTCRtpCodecParameters | None:
    """The offer's Opus (48 kHz), if any."""
    return next((c for c in offered if c.mimeType.lower() == "audio/opus"
                 and c.clockRate == TALK_RATE), None)


def talk_codec(offer_sdp: str) -> RTCRtpCodecParameters:
    """The Opus a talk-back offer sends (400 if it sends no Opus audio)."""
    offer = aiortc_internals.parse_offer(offer_sdp, video_required=False)
    opus = opus_codec(offer.audio_codecs)
    if opus is None or offer.audio_direction not in ("sendonly", "sendrecv"):
        raise BadRequest("the talk-back offer must send audio as Opus (48 kHz)")
    return opus


class TalkLine:
    """What a field device hears: one talker's Opus packets at a time (on the loop)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.talker: str | None = None
        self._queue: deque[tuple[bytes, int]] = deque(maxlen=TALK_QUEUE)
        self._ready = asyncio.Event()
        self._closed = False
        self._offset: int | None = None
        self._last_pts: int | None = None
        self._last_at = 0.0
        self.packets = 0
        self.dropped = 0

    def claim(self, talker: str) -> None:
        if self._closed:
            raise Conflict(f"[{self.label}] the device has left", reason="no_publisher")
        if self.talker is not None:
            raise TalkBusy(f"[{self.label}] someone is already talking to this device; "
                           "try again when they stop")
        self.talker = talker
        self._offset = None

    def release(self, talker: str) -> None:
        if self.talker == talker:
            self.talker = None
            self._queue.clear()

    def push(self, talker: str, data: bytes, timestamp: int) -> None:
        """One Opus packet of ``talker`` (its RTP timestamp, 48 kHz)."""
        if self.talker != talker or self._closed:
            return
        now = time.monotonic()
        if self._offset is None:  # continue the timeline after the silence between talkers
            start = 0 if self._last_pts is None else \
                self._last_pts + max(1, int((now - self._last_at) * TALK_RATE))
            self._offset = start - timestamp
        pts = timestamp + self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts, self._last_at = pts, now
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((data, pts))
        self.packets += 1
        self._ready.set()

    async def next(self) -> tuple[bytes, int]:
        """The next packet for the device's sender; ``StreamClosed`` once the line closed."""
        while not self._queue:
            if self._closed:
                raise StreamClosed(f"[{self.label}] talk-back line closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._ready.set()


TalkEndCallback = Callable[["TalkSession", str], Awaitable[None]]


class TalkSession:
    """One operator's voice to one device: a receiving peer connection feeding a line
    (a field device's), or, in a subclass, something else (a camera's back-channel)."""

    def __init__(self, camera_id: int, pc: RTCPeerConnection, line: TalkLine | None,
                 owner: int | None, connect_timeout: float,
                 on_closed: Callable[[TalkSession], None]) -> None:
        self.id = secrets.token_hex(16)
        self.camera_id = camera_id
        self.pc = pc
        self.line = line
        self.owner = owner
        self.etag = secrets.token_hex(8)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.on_end: TalkEndCallback | None = None
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.packets = 0
        self.codec = "opus"  # what the listener gets (a camera's back-channel: G.711)
        self.label = f"talk {self.id[:8]} camera {camera_id}"
        self._watch = PeerWatch(pc, self.label)
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def push(self, codec: str, data: bytes, timestamp: int) -> None:
        """A coded frame from the talker's receiver (aiortc names Opus ``opus``)."""
        if codec.lower() == "opus" and self.line is not None:
            self.packets += 1
            self.line.push(self.id, data, timestamp)

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"camrelay-talk-{self.id[:8]}")

    async def _supervise(self) -> None:
        reason = await self._ended()
        log.info("[%s] closing: %s", self.label, reason)
        await self.close(reason)

    async def _ended(self) -> str:
        """Until the talk is over by itself; why (the talker's connection ended)."""
        return await self._watch.ended(self._connect_timeout, "talker")

    async def _release(self) -> None:
        """Give back what the talk held (the field device's line)."""
        if self.line is not None:
            self.line.release(self.id)

    async def close(self, reason: str = "ended") -> None:
        """Release everything (idempotent); the journal hears of it through ``on_end``."""
        if self.close_reason is not None:
            await self.closed.wait()
            return
        self.close_reason = reason
        self._on_closed(self)
        try:
            await self._release()
            on_end = self.on_end
            await end_peer(self.label, self.pc, [self._supervisor],
                           None if on_end is None else lambda: on_end(self, reason))
        finally:
            log.info("[%s] closed (%s) after %.1f s: %d packets", self.label, reason,
                     self.seconds, self.packets)
            self.closed.set()
