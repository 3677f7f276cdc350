"""A scripted RTSP camera for what the GStreamer simulator cannot do on request.

Basic and Digest (qop=auth) challenges checked with its own digest arithmetic,
redirects, a short session timeout with or without GET_PARAMETER, garbage instead of
answers, and RTP (interleaved over TCP) made from a small libx264 clip.  It listens on
127.0.0.1 only and records every request it reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from camrelay.relay import h264

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1\r\na=control:track1\r\n"
)


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]


def encode_clip(frames: int = 25, size: tuple[int, int] = (160, 96)) -> list[bytes]:
    """Annex-B access units of a small constrained-baseline clip, keyframe first."""
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height = size
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1, 25)
    cc.gop_size = frames
    cc.max_b_frames = 0
    cc.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency",
                  "x264-params": "repeat-headers=1"}
    units = []
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 9) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        units += [bytes(p) for p in cc.encode(frame)]
    units += [bytes(p) for p in cc.encode(None)]
    return units


def packetize(unit: bytes, seq: int, ts: int, mtu: int = 400) -> list[bytes]:
    """RFC 6184 packets (single NAL or FU-A) of one Annex-B access unit."""
    nals = h264.split_annexb(unit)
    payloads: list[bytes] = []
    for nal in nals:
        if len(nal) <= mtu:
            payloads.append(nal)
            continue
        body = nal[1:]
        chunks = [body[i:i + mtu] for i in range(0, len(body), mtu)]
        for i, chunk in enumerate(chunks):
            fu = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | nal[0] & 0x1F
            payloads.append(bytes([(nal[0] & 0xE0) | 28, fu]) + chunk)
    packets = []
    for i, payload in enumerate(payloads):
        marker = 0x80 if i == len(payloads) - 1 else 0
        packets.append(struct.pack("!BBHII", 0x80, marker | 96, (seq + i) & 0xFFFF,
                                   ts & 0xFFFFFFFF, 0xCAFE) + payload)
    return packets


@dataclass
class FakeCamera:
    """Behaviour knobs; ``async with camera.serving() as url`` runs it."""

    challenge: str | None = None  # None, "basic" or "digest"
    user: str = "viewer"
    password: str = "canary-Fake-91c2"
    redirect_to: str | None = None  # DESCRIBE answers 302 to this URL
    session_timeout: int = 60
    get_parameter: bool = True  # listed in Public and answered; else 501
    raw: dict[str, bytes] = field(default_factory=dict)  # method -> raw bytes instead of an answer
    media: bool = True  # send RTP after PLAY
    clip: list[bytes] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    nonce: str = "5e2f0c1d9a"
    realm: str = "fake camera"
    _port: int = 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        tasks: set[asyncio.Task[None]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
            writers.add(writer)
            try:
                await self._serve(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(client, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        try:
            yield f"rtsp://127.0.0.1:{self._port}/fake"
        finally:
            server.close()
            for writer in writers:
                writer.transport.abort()  # the client task ends on the reset connection
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def _authorized(self, req: Request) -> bool:
        if self.challenge is None:
            return True
        header = req.headers.get("authorization", "")
        if self.challenge == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return header == f"Basic {token}"
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.removeprefix("Digest ")))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = md5(f"{req.method}:{params.get('uri', '')}")
        expected = md5(f"{ha1}:{self.nonce}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
        return (params.get("username") == self.user and params.get("nonce") == self.nonce
                and params.get("qop") == "auth" and params.get("response") == expected
                and params.get("uri") == req.url)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        streaming: asyncio.Task[None] | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                req = Request(method, url, headers)
                self.requests.append(req)
                if method in self.raw:
                    writer.write(self.raw[method])
                    await writer.drain()
                    continue
                reply, body = self._answer(req)
                cseq = headers.get("cseq", "0")
                text = f"RTSP/1.0 {reply}\r\nCSeq: {cseq}\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in body[0].items())
                payload = body[1].encode()
                if payload:
                    text += f"Content-Length: {len(payload)}\r\n"
                writer.write(text.encode() + b"\r\n" + payload)
                await writer.drain()
                if method == "PLAY" and reply.startswith("200") and self.media and streaming is None:
                    streaming = asyncio.create_task(self._stream(writer))
                if method == "TEARDOWN":
                    return
        finally:
            if streaming is not None:
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)

    def _answer(self, req: Request) -> tuple[str, tuple[dict[str, str], str]]:
        if not self._authorized(req):
            if self.challenge == "basic":
                value = f'Basic realm="{self.realm}"'
            else:
                value = f'Digest realm="{self.realm}", nonce="{self.nonce}", qop="auth"'
            return "401 Unauthorized", ({"WWW-Authenticate": value}, "")
        session = {"Session": f"fa4e;timeout={self.session_timeout}"}
        if req.method == "OPTIONS":
            public = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
            if self.get_parameter:
                public += ", GET_PARAMETER"
            return "200 OK", ({"Public": public}, "")
        if req.method == "DESCRIBE":
            if self.redirect_to is not None:
                return "302 Moved", ({"Location": self.redirect_to}, "")
            base = f"rtsp://127.0.0.1:{self._port}/fake/"
            return "200 OK", ({"Content-Base": base, "Content-Type": "application/sdp"}, SDP)
        if req.method == "SETUP":
            return "200 OK", ({"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", **session}, "")
        if req.method in ("PLAY", "TEARDOWN"):
            return "200 OK", (session, "")
        if req.method == "GET_PARAMETER" and self.get_parameter:
            return "200 OK", (session, "")
        return "501 Not Implemented", ({}, "")

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        seq, n = 1000, 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            unit = self.clip[n % len(self.clip)]
            for packet in packetize(unit, seq, 90000 + n * 3600):
                writer.write(b"$\x00" + struct.pack("!H", len(packet)) + packet)
                seq += 1
            await writer.drain()
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.04 - loop.time()))  # pacing at 25 fps
