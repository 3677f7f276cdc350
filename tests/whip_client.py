"""A real aiortc WHIP publisher for tests: numbered test-pattern frames, H.264 only.

``await WhipPublisher.connect(http, base_url, camera_id, token)`` POSTs a sendonly H.264
offer (frames from :func:`camrelay.relay.sources.pattern.make_frame`, so viewers can read
the numbers back), applies the answer and keeps the session's ``location``.  No STUN:
``RTCConfiguration(iceServers=[])`` is always explicit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)

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

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base_url: str, camera_id: int,
                      token: str, *, width: int = 320, height: int = 240) -> WhipPublisher:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        try:
            track = NumberedTrack(width, height)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            capabilities = RTCRtpSender.getCapabilities("video")
            transceiver.setCodecPreferences(
                [c for c in capabilities.codecs if c.mimeType in ("video/H264", "video/rtx")])
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"{base_url}/whip/{camera_id}", data=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp",
                                          "Authorization": f"Bearer {token}"}) as resp:
                body = await resp.text()
                if resp.status != 201:
                    raise WhipError(resp.status, body)
                location = resp.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
            return cls(pc, http, base_url, location, token, track, connected)
        except BaseException:
            await pc.close()
            raise

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
