"""A real aiortc WHEP viewer for tests and benchmarks.

``await WhepViewer.connect(http, url, token)`` POSTs a recvonly H.264 offer, applies the
answer and starts one owned task that decodes frames as they come and reads the
project's burnt-in frame number (``camrelay.relay.sources.pattern.read_frame_number``).
``close()`` DELETEs the session (when asked), closes the peer connection and cancels and
awaits the reader.  No STUN: ``RTCConfiguration(iceServers=[])`` is always explicit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from camrelay.relay.sources.pattern import read_frame_number


@dataclass
class FrameSeen:
    number: int | None
    at: float  # time.monotonic()
    width: int
    height: int
    pts: int  # RTP timestamp (90 kHz)


@dataclass
class WhepViewer:
    pc: RTCPeerConnection
    http: aiohttp.ClientSession
    base_url: str
    location: str
    etag: str | None
    answer: str
    headers: Any
    posted_at: float
    frames: list[FrameSeen] = field(default_factory=list)
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    new_frame: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)  # per decoded audio frame (s16)
    new_audio: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _audio_reader: asyncio.Task[None] | None = None
    _token: str = ""

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base_url: str, camera_id: int,
                      token: str, *, stream: str = "main", purpose: str | None = "test",
                      munge_offer: Any = None, read_numbers: bool = True,
                      audio: bool = False) -> WhepViewer:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver("video", direction="recvonly")
            if audio:  # aiortc offers Opus, PCMU and PCMA
                pc.addTransceiver("audio", direction="recvonly")
            offer = await pc.createOffer()
            await pc.setLocalDescription(offer)
            sdp = pc.localDescription.sdp
            if munge_offer is not None:
                sdp = munge_offer(sdp)
            posted = time.monotonic()
            params = {"stream": stream}
            if purpose:
                params["purpose"] = purpose
            async with http.post(f"{base_url}/whep/{camera_id}", data=sdp, params=params,
                                 headers={"Content-Type": "application/sdp",
                                          "Authorization": f"Bearer {token}"}) as resp:
                body = await resp.text()
                if resp.status != 201:
                    raise WhepError(resp.status, body, resp.headers)
                location = resp.headers["Location"]
                etag = resp.headers.get("ETag")
                headers = resp.headers.copy()
            viewer = cls(pc, http, base_url, location, etag, body, headers, posted)
            viewer._token = token
            tracks: asyncio.Queue[Any] = asyncio.Queue()

            @pc.on("track")
            def _on_track(track: Any) -> None:
                tracks.put_nowait(track)

            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
            track = await asyncio.wait_for(tracks.get(), 5)
            if track.kind == "audio":
                track, sound = await asyncio.wait_for(tracks.get(), 5), track
            else:
                sound = tracks.get_nowait() if not tracks.empty() else None
            viewer._reader = asyncio.get_running_loop().create_task(
                viewer._read(track, read_numbers))
            if sound is not None:
                viewer._audio_reader = asyncio.get_running_loop().create_task(
                    viewer._read_audio(sound))
            return viewer
        except BaseException:
            await pc.close()
            raise

    async def _read(self, track: Any, read_numbers: bool) -> None:
        try:
            while True:
                frame = await track.recv()
                number: int | None = None
                if read_numbers:
                    try:
                        number = read_frame_number(luma(frame))
                    except ValueError:
                        number = None
                self.frames.append(FrameSeen(number, time.monotonic(), frame.width,
                                             frame.height, int(frame.pts or 0)))
                self.first_frame.set()
                self.new_frame.set()
        except MediaStreamError:
            pass
        finally:
            self.ended.set()

    async def _read_audio(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray().astype(np.float64)
                self.audio_rms.append(float(np.sqrt(np.mean(pcm ** 2))))
                self.new_audio.set()
        except MediaStreamError:
            pass

    async def wait_audio(self, n: int, timeout: float = 10.0) -> None:
        """Until ``n`` audio frames (20 ms each) were decoded."""
        async with asyncio.timeout(timeout):
            while len(self.audio_rms) < n:
                self.new_audio.clear()
                await self.new_audio.wait()

    @property
    def time_to_first_frame(self) -> float:
        return self.frames[0].at - self.posted_at

    async def first_shown(self, timeout: float = 5.0) -> FrameSeen:
        """The picture a browser would show first: the last of the join burst.

        The burst's RTP timestamps are a few ticks apart and end at the live time, so a
        player that schedules by timestamp shows its last picture at once."""
        async with asyncio.timeout(timeout):
            while True:
                for a, b in zip(self.frames, self.frames[1:]):
                    if b.pts - a.pts > 900:  # more than 10 ms: the burst has ended at a
                        return a
                self.new_frame.clear()
                await self.new_frame.wait()

    async def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.frames) < n:
                self.new_frame.clear()
                await self.new_frame.wait()

    async def delete(self) -> int:
        # a cluster's Location is absolute (the node that serves the session)
        async with self.http.delete(urljoin(self.base_url, self.location),
                                    headers={"Authorization": f"Bearer {self._token}"}) as r:
            await r.read()
            return r.status

    async def close(self, *, delete: bool = True) -> None:
        try:
            if delete:
                await self.delete()
        finally:
            await self.pc.close()
            for reader in (self._reader, self._audio_reader):
                if reader is not None:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)


async def measure_joins(http: aiohttp.ClientSession, base_url: str, camera: int, joins: int,
                        *, token: str, running_token: str, warm_frames: int = 25
                        ) -> tuple[list[float], list[float], list[int]]:
    """Join ``joins`` times next to a running viewer: times to first decoded frame, times
    to the running viewer's picture, and the lag (frames) at that moment."""
    running = await WhepViewer.connect(http, base_url, camera, running_token)
    try:
        await running.wait_frames(warm_frames)  # well into the GOP
        times: list[float] = []
        live: list[float] = []
        lags: list[int] = []
        for _ in range(joins):
            joiner = await WhepViewer.connect(http, base_url, camera, token)
            try:
                await joiner.wait_frames(1, timeout=5)
                times.append(joiner.time_to_first_frame)
                await joiner.first_shown()  # the burst has been decoded
                live_at, lag = await caught_up(joiner, running)
                live.append(live_at - joiner.posted_at)
                lags.append(lag)
            finally:
                await joiner.close()
        return times, live, lags
    finally:
        await running.close()


def running_number_at(viewer: WhepViewer, at: float) -> int | None:
    shown = [f.number for f in viewer.frames if f.at <= at and f.number is not None]
    return shown[-1] if shown else None


async def caught_up(joiner: WhepViewer, running: WhepViewer, timeout: float = 5.0
                    ) -> tuple[float, int]:
    """When the joiner first showed the running viewer's picture (within 2 frames, i.e.
    <= 100 ms at 25 fps), looking only at pictures from the end of the join burst on."""
    shown = await joiner.first_shown()
    start = joiner.frames.index(shown)
    async with asyncio.timeout(timeout):
        i = start
        while True:
            while i < len(joiner.frames):
                frame = joiner.frames[i]
                ref = running_number_at(running, frame.at)
                if frame.number is not None and ref is not None and ref - frame.number <= 2:
                    return frame.at, ref - frame.number
                i += 1
            joiner.new_frame.clear()
            await joiner.new_frame.wait()


def luma(frame: Any) -> np.ndarray[Any, Any]:
    """The Y plane of a decoded yuv420p frame as a view (no conversion, no copy)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


class WhepError(Exception):
    def __init__(self, status: int, body: str, headers: Any) -> None:
        super().__init__(f"WHEP POST answered {status}: {body[:200]}")
        self.status = status
        self.body = body
        self.headers = headers


def lag(ref: int, number: int, period: int | None = None) -> int:
    """Frames ``number`` is behind ``ref`` (negative: ahead); ``period`` is the clip's
    length when the numbers restart at 0 on each loop (the camera simulator's clips)."""
    d = ref - number
    if period:
        d = (d + period // 2) % period - period // 2
    return d


@dataclass
class Join:
    first_frame: float  # seconds from the POST to the first decoded picture
    live: float | None  # ... to the running viewer's picture (None: not within the timeout)
    phase: int  # the running viewer's frame number (mod GOP) when the joiner POSTed
    # the numbers burnt into the joiner's pictures, in decoding order, up to live
    numbers: tuple[int | None, ...] = ()


async def join_until_live(http: aiohttp.ClientSession, base_url: str, camera: int,
                          token: str, running: WhepViewer, *, period: int | None = None,
                          gop_frames: int = 0, timeout: float = 5.0,
                          before_close: Callable[[Join], Awaitable[None]] | None = None
                          ) -> Join:
    """One joiner next to ``running``: when it decodes its first picture and when it
    first shows the running viewer's picture or a newer one (at most 2 frames behind,
    as tests/webrtc/test_whep_chromium.py counts it).  ``before_close`` is awaited with
    the result while the joiner is still connected.  Closes the joiner."""
    shown = running_number_at(running, time.monotonic())
    phase = (shown or 0) % gop_frames if gop_frames else 0
    joiner = await WhepViewer.connect(http, base_url, camera, token)
    try:
        await joiner.wait_frames(1, timeout=timeout)
        first = joiner.time_to_first_frame
        live: float | None = None
        i = 0
        try:
            async with asyncio.timeout(max(0.0, joiner.posted_at + timeout - time.monotonic())):
                while live is None:
                    while i < len(joiner.frames):
                        frame = joiner.frames[i]
                        ref = running_number_at(running, frame.at)
                        if frame.number is not None and ref is not None and \
                                lag(ref, frame.number, period) <= 2:
                            live = frame.at - joiner.posted_at
                            break
                        i += 1
                    else:
                        joiner.new_frame.clear()
                        await joiner.new_frame.wait()
        except TimeoutError:
            pass
        shown = joiner.frames if live is None else joiner.frames[:i + 1]
        join = Join(first, live, phase, tuple(f.number for f in shown))
        if before_close is not None:
            await before_close(join)
        return join
    finally:
        await joiner.close()


async def wait_phase(running: WhepViewer, gop_frames: int, phase: int,
                     timeout: float = 10.0) -> None:
    """Wait until the running viewer shows a picture at ``phase`` frames into a GOP."""
    async with asyncio.timeout(timeout):
        while True:
            seen = [f.number for f in running.frames[-1:] if f.number is not None]
            if seen and seen[0] % gop_frames == phase:
                return
            running.new_frame.clear()
            await running.new_frame.wait()
