"""Talk-back to a camera's ONVIF audio back-channel (ONVIF Streaming Spec 5.3).

An operator's browser sends Opus to ``POST /talk/{camera_id}`` as for a field device
(:mod:`camrelay.relay.talk`).  For an RTSP camera, :func:`open_backchannel` opens a
separate, short-lived RTSP session to the camera (the camera's video pull is untouched):
DESCRIBE with ``Require: www.onvif.org/ver20/backchannel``, the audio media the camera
describes ``sendonly`` in G.711 (PCMU or PCMA, 8 kHz), SETUP of that media alone over
interleaved TCP, PLAY.  A camera that answers ``551 Option not supported``, or describes
no such media, has no back-channel (409 ``no_talkback``).

The talker's Opus is decoded by aiortc (in its decoder thread), and on the loop
resampled to 8 kHz mono, encoded to G.711 and cut into 20 ms RTP packets
(:class:`G711Packetizer`: 160 samples, a few microseconds each) that go to the camera on
the back-channel's interleaved channel.  A :class:`CameraTalk` ends with the talker's
connection, the camera's RTSP connection, or a DELETE; it then sends TEARDOWN.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from camrelay.errors import NoBackchannel, SourceUnavailable
from camrelay.relay.rtsp.client import ONVIF_BACKCHANNEL, Redirected, RtspClient
from camrelay.relay.rtsp.sdp import MediaDescription
from camrelay.relay.stream import SourceSpec
from camrelay.relay.talk import TalkSession
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

G711_RATE = 8000
PACKET_SAMPLES = 160  # 20 ms at 8 kHz, one byte a sample
_RTP = struct.Struct("!BBHII")
_ENCODERS = {"PCMU": "pcm_mulaw", "PCMA": "pcm_alaw"}


class G711Packetizer:
    """Decoded audio frames in (any rate and layout), RTP packets of 20 ms G.711 out."""

    def __init__(self, encoding: str, payload_type: int) -> None:
        if encoding not in _ENCODERS:
            raise ValueError(f"not G.711: {encoding}")
        self.payload_type = payload_type
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=G711_RATE)
        codec = av.CodecContext.create(_ENCODERS[encoding], "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = G711_RATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.open()
        self._codec = codec
        self._pending = bytearray()
        self._seq = secrets.randbelow(1 << 16)
        self._timestamp = secrets.randbelow(1 << 32)
        self._ssrc = secrets.randbelow(1 << 32)
        self._first = True

    def push(self, frame: av.AudioFrame) -> list[bytes]:
        """The complete packets ``frame`` adds (the rest waits for the next frame)."""
        for resampled in self._resampler.resample(frame):
            resampled.pts = None
            for coded in self._codec.encode(resampled):
                self._pending += bytes(coded)
        packets: list[bytes] = []
        while len(self._pending) >= PACKET_SAMPLES:
            payload = bytes(self._pending[:PACKET_SAMPLES])
            del self._pending[:PACKET_SAMPLES]
            marker = 0x80 if self._first else 0  # the start of a talkspurt (RFC 3551 4.1)
            packets.append(_RTP.pack(0x80, marker | self.payload_type, self._seq,
                                     self._timestamp, self._ssrc) + payload)
            self._first = False
            self._seq = (self._seq + 1) & 0xFFFF
            self._timestamp = (self._timestamp + PACKET_SAMPLES) & 0xFFFFFFFF
        return packets


@dataclass(frozen=True, slots=True)
class Backchannel:
    """An RTSP session playing a camera's back-channel (:func:`open_backchannel`)."""

    client: RtspClient
    media: MediaDescription
    channel: int  # the interleaved channel its RTP goes out on


def _ignore(_packet: bytes, _arrival: float) -> None:
    """What the camera sends on the back-channel's channels (RTCP): read and dropped."""


class CameraTalk(TalkSession):
    """One operator's voice to one camera's back-channel: the peer connection, the RTSP
    session (:func:`open_backchannel`; owned: TEARDOWN on close) and the task that pumps
    audio between them."""

    def __init__(self, camera_id: int, pc: RTCPeerConnection, backchannel: Backchannel,
                 owner: int | None, connect_timeout: float,
                 on_closed: Callable[[TalkSession], None]) -> None:
        super().__init__(camera_id, pc, None, owner, connect_timeout, on_closed)
        self.client = backchannel.client
        media = backchannel.media
        self.codec = media.encoding
        self._channel = backchannel.channel
        self.label = f"talk {self.id[:8]} camera {camera_id} back-channel"
        self._packetizer = G711Packetizer(media.encoding, media.payload_type)
        self._pump: asyncio.Task[None] | None = None
        self._send_error: str | None = None  # why sending to the camera stopped

    def listen(self, track: MediaStreamTrack) -> None:
        """Start sending what ``track`` (the talker's decoded audio) plays."""
        self._pump = asyncio.get_running_loop().create_task(
            self._send(track), name=f"camrelay-backchannel-{self.id[:8]}")

    async def _send(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                for packet in self._packetizer.push(frame):
                    self.client.send_rtp(self._channel, packet)
                    self.packets += 1
        except MediaStreamError:
            return  # the talker's track ended
        except SourceUnavailable as err:  # the camera's connection went
            self._send_error = err.detail

    async def _ended(self) -> str:
        peer = asyncio.ensure_future(super()._ended())
        camera = asyncio.ensure_future(self.client.ended())
        waiters: list[asyncio.Future[Any]] = [peer, camera]
        if self._pump is not None:
            waiters.append(self._pump)  # asyncio.wait does not cancel it
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (peer, camera):
                waiter.cancel()
            await asyncio.gather(peer, camera, return_exceptions=True)
        if peer.done() and not peer.cancelled():
            return peer.result()
        if camera.done() and not camera.cancelled():
            error = camera.exception()
            return "the camera ended the back-channel" if error is None else \
                f"the camera's connection failed: {getattr(error, 'detail', error)}"
        if self._send_error is not None:
            return f"sending to the camera failed: {self._send_error}"
        return "the talker's audio ended"

    async def _release(self) -> None:
        await stop_task(self._pump)
        await self.client.close()


async def open_backchannel(camera_id: int, spec: SourceSpec) -> Backchannel:
    """A new RTSP session with the camera, its back-channel SETUP and playing (409
    ``no_talkback`` when the camera has none; ``SourceUnavailable`` when it cannot be
    reached).  The caller owns the client."""
    client = RtspClient(spec.url, username=spec.username, password=spec.password,
                        transport="tcp", connect_timeout=spec.connect_timeout,
                        read_timeout=spec.read_timeout, require=ONVIF_BACKCHANNEL)
    try:
        try:
            description = await client.describe()
        except Redirected:
            raise NoBackchannel(camera_id, "it redirects to rtsps://, which camrelay's "
                              "back-channel does not speak") from None
        except SourceUnavailable as err:
            if err.reason != "unsupported":
                raise
            raise NoBackchannel(camera_id, f"it does not support {ONVIF_BACKCHANNEL}") from None
        media = description.sdp.backchannel()
        if media is None:
            raise NoBackchannel(camera_id, "its description has no sendonly G.711 audio "
                              f"for {ONVIF_BACKCHANNEL}")
        channel = await client.setup(media, _ignore)
        await client.play()
    except BaseException:
        await client.close()
        raise
    return Backchannel(client, media, 0 if channel is None else channel)
