"""Camera audio to WebRTC viewers: G.711 and a field device's Opus passed through,
anything else as Opus made once per camera.

* **Negotiation.**  :func:`choose_audio` answers a viewer's audio m-line with the
  camera's own codec when the offer has it (PCMA/PCMU at 8000 Hz, or the Opus a WHIP
  publisher sends: the RTP payloads go out as they came, nothing is decoded), else with
  Opus when the offer has it; otherwise (or for a camera without audio) the session
  leaves audio inactive.
* **Once per camera.**  An :class:`OpusTranscoder` (one per stream key, shared by that
  camera's Opus listeners through :class:`AudioTranscoders`) reads the stream's audio
  once, decodes it (AAC with the camera's AudioSpecificConfig) and encodes 20 ms Opus
  frames (48 kHz stereo, PyAV's libopus), in a thread of the default executor, one unit
  at a time; each listener has a bounded queue that drops its oldest frame when full.
* **Per viewer** the coded frames go out on aiortc's own audio sender (its SSRC, RTP
  header, SRTP and sender reports): :class:`PacketTrack` hands it ``av.Packet`` objects,
  which aiortc packs without encoding.  Its sender reports take their NTP time from the
  wall clock at sending, like the video fan-out's, so a browser lines the two up
  (lip sync to within the relay's own send jitter).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Protocol

import av
from aiortc import MediaStreamTrack, RTCRtpCodecParameters
from aiortc.mediastreams import MediaStreamError

from camrelay.relay.media import AudioInfo, AudioUnit, StreamKey
from camrelay.relay.stream import StreamClosed

log = logging.getLogger(__name__)

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
OPUS_BITRATE = 32_000
LISTENER_QUEUE = 50  # Opus frames (1 s) per listener
PASSED_THROUGH = ("PCMA", "PCMU", "OPUS")  # sent to a viewer as they came when it takes them


class AudioSource(Protocol):
    """A stream's audio units (``camrelay.relay.stream.AudioSubscription``)."""

    async def get(self) -> AudioUnit:
        """The next unit; raises ``StreamClosed`` when the stream ends."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AudioAnswer:
    """How one viewer's audio m-line is answered."""

    codec: RTCRtpCodecParameters  # the offer's, copied
    mode: Literal["passthrough", "opus"]

    @property
    def name(self) -> str:
        """What the journal records: ``"PCMA"``, ``"PCMU"`` or ``"opus"``."""
        return self.codec.mimeType.split("/", 1)[1]


def choose_audio(offered: Sequence[RTCRtpCodecParameters], info: AudioInfo | None
                 ) -> AudioAnswer | None:
    """The answer for an offer's audio codecs, or None (audio stays inactive)."""
    if info is None:
        return None
    for codec in offered:
        if info.codec in PASSED_THROUGH and codec.clockRate == info.clock_rate and \
                codec.mimeType.lower() == f"audio/{info.codec.lower()}":
            return AudioAnswer(copy.deepcopy(codec), "passthrough")
    for codec in offered:
        if codec.mimeType.lower() == "audio/opus" and codec.clockRate == OPUS_RATE:
            return AudioAnswer(copy.deepcopy(codec), "opus")
    return None


class PacketTrack(MediaStreamTrack):
    """An audio track that hands aiortc's sender coded frames (``av.Packet``)."""

    kind = "audio"

    def __init__(self, next_frame: Callable[[], Awaitable[tuple[bytes, int]]],
                 clock_rate: int) -> None:
        super().__init__()
        self._next = next_frame
        self._time_base = Fraction(1, clock_rate)
        self.frames = 0
        self.delivered = asyncio.Event()  # the first frame went to the sender

    async def recv(self) -> av.Packet[Any]:  # aiortc packs coded packets as they are
        if self.readyState != "live":
            raise MediaStreamError
        try:
            data, pts = await self._next()
        except StreamClosed as err:
            self.stop()
            raise MediaStreamError from err
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        self.frames += 1
        self.delivered.set()
        return packet


def passthrough_track(source: AudioSource, clock_rate: int) -> PacketTrack:
    """The camera's payloads as they came (G.711, or a field device's Opus)."""
    async def next_frame() -> tuple[bytes, int]:
        unit = await source.get()
        return unit.data, unit.pts

    return PacketTrack(next_frame, clock_rate)


# --------------------------------------------------------------------------- Opus, once per camera

class OpusListener:
    """One viewer's queue of a transcoder's Opus frames."""

    def __init__(self, transcoder: OpusTranscoder) -> None:
        self.transcoder = transcoder
        self._queue: deque[tuple[bytes, int]] = deque(maxlen=LISTENER_QUEUE)
        self._ready = asyncio.Event()
        self.dropped = 0

    async def get(self) -> tuple[bytes, int]:
        while not self._queue:
            if self.transcoder.ended:
                raise StreamClosed(f"[stream {self.transcoder.key}] audio ended")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def _push(self, frame: tuple[bytes, int]) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(frame)
        self._ready.set()

    def _end(self) -> None:
        self._ready.set()


class _Codec:
    """The decoder, resampler and Opus encoder of one transcoder (used in one thread at
    a time, one unit after the other)."""

    def __init__(self, info: AudioInfo) -> None:
        name = {"AAC": "aac", "PCMA": "pcm_alaw", "PCMU": "pcm_mulaw"}[info.codec]
        decoder: Any = av.CodecContext.create(name, "r")
        if info.config:
            decoder.extradata = info.config
        if info.codec != "AAC":
            decoder.sample_rate = info.clock_rate
            decoder.layout = "mono"
        self._decoder = decoder
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE,
                                            frame_size=OPUS_FRAME)
        encoder: Any = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.bit_rate = OPUS_BITRATE
        encoder.time_base = Fraction(1, OPUS_RATE)
        self._encoder = encoder
        self._samples = 0

    def transcode(self, data: bytes) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError as exc:
            log.debug("audio decode failed: %s", exc)
            return out
        for frame in frames:
            frame.pts = None
            for chunk in self._resampler.resample(frame):
                chunk.pts = self._samples
                chunk.time_base = Fraction(1, OPUS_RATE)
                self._samples += chunk.samples
                for packet in self._encoder.encode(chunk):
                    out.append((bytes(packet), int(packet.pts or 0)))
        return out


class OpusTranscoder:
    """One camera stream's audio as Opus, for all of its Opus listeners."""

    def __init__(self, key: StreamKey, info: AudioInfo, source: AudioSource) -> None:
        self.key = key
        self.info = info
        self._source = source
        self._listeners: set[OpusListener] = set()
        self.ended = False
        self.units_in = 0
        self.frames_out = 0
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"camrelay-opus {key}")

    def listen(self) -> OpusListener:
        listener = OpusListener(self)
        self._listeners.add(listener)
        return listener

    def forget(self, listener: OpusListener) -> bool:
        """Drop ``listener``; True when nobody listens any more."""
        self._listeners.discard(listener)
        return not self._listeners

    async def _run(self) -> None:
        try:
            codec = await asyncio.to_thread(_Codec, self.info)
            while True:
                unit = await self._source.get()
                self.units_in += 1
                frames = await asyncio.to_thread(codec.transcode, unit.data)
                for frame in frames:
                    self.frames_out += 1
                    for listener in self._listeners:
                        listener._push(frame)
        except StreamClosed:
            pass
        except (av.FFmpegError, ValueError, KeyError) as exc:
            log.warning("[stream %s] audio transcoding to Opus failed: %s", self.key, exc)
        finally:
            self.ended = True
            for listener in self._listeners:
                listener._end()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._source.close()


class AudioTranscoders:
    """The egress's Opus transcoders, one per camera stream, shared by its listeners."""

    def __init__(self) -> None:
        self._running: dict[StreamKey, OpusTranscoder] = {}
        self.created = 0  # since start

    def __len__(self) -> int:
        return len(self._running)

    def listen(self, key: StreamKey, info: AudioInfo,
               open_source: Callable[[], AudioSource]) -> OpusListener:
        transcoder = self._running.get(key)
        if transcoder is None or transcoder.ended or transcoder.info != info:
            transcoder = OpusTranscoder(key, info, open_source())
            self._running[key] = transcoder
            self.created += 1
            log.info("[stream %s] transcoding its %s audio to Opus", key, info.codec)
        return transcoder.listen()

    async def release(self, listener: OpusListener) -> None:
        transcoder = listener.transcoder
        if transcoder.forget(listener):
            if self._running.get(transcoder.key) is transcoder:
                del self._running[transcoder.key]
            await transcoder.stop()

    async def close(self) -> None:
        running, self._running = list(self._running.values()), {}
        await asyncio.gather(*(t.stop() for t in running), return_exceptions=True)
