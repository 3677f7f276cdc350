"""A real aiortc WHIP publisher for tests: numbered test-pattern frames as H.264, and a
440 Hz tone as Opus when asked.

``await WhipPublisher.connect(http, base_url, camera_id, token)`` POSTs a sendonly H.264
offer (frames from :func:`camrelay.relay.sources.pattern.make_frame`, so viewers can read
the numbers back), applies the answer and keeps the session's ``location``.  With
``audio="sendonly"`` it also sends the tone; with ``audio="sendrecv"`` it also decodes
what it hears (talk-back) into ``heard_rms``.  :class:`Talker` is an operator's
talk-back session (``POST /talk/{camera_id}``, the tone as sendonly Opus).  No STUN:
``RTCConfiguration(iceServers=[])`` is always explicit.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

from camrelay.relay.sources.pattern import make_frame


class NumberedTrack(VideoStreamTrack):
    """Frames numbered from 0, at aiortc's pace (30 fps)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        rgb = make_frame(self.count, self.width, self.height)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine (s16 mono, 48 kHz, 20 ms frames) at its own pace; RMS about 7000."""

    kind = "audio"
    RATE = 48_000
    SAMPLES = 960

    def __init__(self, frequency: float = 440.0, amplitude: int = 10_000) -> None:
        super().__init__()
        self._frequency = frequency
        self._amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._pts / self.RATE - time.monotonic()))
        t = (self._pts + np.arange(self.SAMPLES)) / self.RATE
        pcm = (self._amplitude * np.sin(2 * np.pi * self._frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.RATE)
        self._pts += self.SAMPLES
        return frame


async def read_rms(track: Any, out: list[float], new: asyncio.Event) -> None:
    """Decode ``track`` into per-frame RMS levels until it ends."""
    try:
        while True:
            frame = await track.recv()
            pcm = frame.to_ndarray().astype(np.float64)
            out.append(float(np.sqrt(np.mean(pcm ** 2))))
            new.set()
    except MediaStreamError:
        pass


class WhipError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"WHIP POST answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class WhipPublisher:
    pc: RTCPeerConnection
    http: aiohttp.ClientSession
    base_url: str
    location: str
    token: str
    track: NumberedTrack
    connected: asyncio.Event
    answer: str = ""
    heard_rms: list[float] = field(default_factory=list)  # talk-back, per decoded frame
    new_heard: asyncio.Event = field(default_factory=asyncio.Event)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base_url: str, camera_id: int,
                      token: str, *, width: int = 320, height: int = 240,
                      audio: str | None = None) -> WhipPublisher:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        connected = asyncio.Event()
        heard: list[float] = []
        new_heard = asyncio.Event()
        readers: list[asyncio.Task[None]] = []

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        @pc.on("track")
        def _track(track: Any) -> None:
            if track.kind == "audio":
                readers.append(asyncio.get_running_loop().create_task(
                    read_rms(track, heard, new_heard)))

        try:
            track = NumberedTrack(width, height)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            capabilities = RTCRtpSender.getCapabilities("video")
            transceiver.setCodecPreferences(
                [c for c in capabilities.codecs if c.mimeType in ("video/H264", "video/rtx")])
            if audio is not None:
                sound = pc.addTransceiver(ToneTrack() if "send" in audio else "audio",
                                          direction=audio)
                sound.setCodecPreferences(
                    [c for c in RTCRtpSender.getCapabilities("audio").codecs
                     if c.mimeType == "audio/opus"])
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"{base_url}/whip/{camera_id}", data=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp",
                                          "Authorization": f"Bearer {token}"}) as resp:
                body = await resp.text()
                if resp.status != 201:
                    raise WhipError(resp.status, body)
                location = resp.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
            return cls(pc, http, base_url, location, token, track, connected, body, heard,
                       new_heard, readers)
        except BaseException:
            await pc.close()
            for reader in readers:
                reader.cancel()
            raise

    async def wait_heard(self, n: int, timeout: float = 10.0) -> None:
        """Until ``n`` talk-back frames were decoded."""
        async with asyncio.timeout(timeout):
            while len(self.heard_rms) < n:
                self.new_heard.clear()
                await self.new_heard.wait()

    async def delete(self) -> int:
        async with self.http.delete(self.base_url + self.location,
                                    headers={"Authorization": f"Bearer {self.token}"}) as r:
            await r.read()
            return r.status

    async def close(self, *, delete: bool = True) -> Any:
        try:
            if delete:
                await self.delete()
        finally:
            await self.pc.close()
            for reader in self._readers:
                reader.cancel()
            await asyncio.gather(*self._readers, return_exceptions=True)


@dataclass
class Talker:
    """An operator's talk-back session: the tone as sendonly Opus to ``/talk/{camera}``."""

    pc: RTCPeerConnection
    http: aiohttp.ClientSession
    base_url: str
    location: str
    token: str
    answer: str

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base_url: str, camera_id: int,
                      token: str) -> Talker:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver(ToneTrack(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"{base_url}/talk/{camera_id}", data=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp",
                                          "Authorization": f"Bearer {token}"}) as resp:
                body = await resp.text()
                if resp.status != 201:
                    raise WhipError(resp.status, body)
                location = resp.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
            return cls(pc, http, base_url, location, token, body)
        except BaseException:
            await pc.close()
            raise

    async def close(self, *, delete: bool = True) -> int | None:
        status = None
        try:
            if delete:
                async with self.http.delete(self.base_url + self.location, headers={
                        "Authorization": f"Bearer {self.token}"}) as r:
                    await r.read()
                    status = r.status
        finally:
            await self.pc.close()
        return status
