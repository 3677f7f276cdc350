"""Benchmark viewers: a separate process of aiortc receivers for one relay under test.

    .venv/bin/python scripts/bench/viewers.py --signal whep|janus --url URL --cameras 1 1 1 ...
        [--decode] [--audio]

One viewer per ``--cameras`` entry (the camera it watches).  Two kinds of process:

* counting (default): the viewers do **not** decode.  aiortc's receiver normally puts
  every packet through its jitter buffer and an H.264 decoder thread; here
  ``RTCRtpReceiver._handle_rtp_packet`` is replaced (in this process only) by a counter
  that keeps aiortc's RTCP receiver statistics (so the relay still gets receiver
  reports) and counts, per viewer, RTP packets, lost packets (sequence gaps) and frames
  (packets with the marker bit).  SRTP is still decrypted by aiortc's transport.
* ``--decode``: one real viewer per entry that decodes every frame and reads the frame
  number burnt into the clip (``camrelay.relay.sources.pattern``); it counts decoded
  frames, frames whose number is not the previous one + 1 (mod the clip length), and
  unreadable ones.

``--audio`` (whep, counting only): each offer also has a recvonly audio m-line (aiortc's
Opus, PCMU, PCMA); the audio receiver's packets are counted the same way (``audio_packets``,
``audio_lost``) and ``READY`` waits for them too.

Signalling: ``whep`` POSTs a recvonly offer with ``Authorization: Bearer <token>`` (the
token from ``CAMRELAY_BENCH_TOKEN``: the real camrelay server's viewer token; the test-gate
app's ``tok-alice`` by default) and DELETEs the session (its ``Location``) when it ends, as
a WHEP player does (camrelay journals the view's close then; the aiortc passthrough relay
has no sessions and ignores it);
``janus`` uses Janus' HTTP API and its streaming plugin (create, attach, ``watch``
mountpoint id = camera, Janus offers, aiortc answers, ``start``).  No STUN anywhere:
``RTCConfiguration(iceServers=[])``.

Protocol on stdin/stdout (one line each): the process prints ``READY`` once every viewer
has received media; each ``MARK`` line read on stdin answers one JSON line with the
cumulative counters and ``time.monotonic()``; stdin closed ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from yarl import URL

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TOKEN = os.environ.get("CAMRELAY_BENCH_TOKEN", "tok-alice")  # see relays.py


@dataclass
class Counts:
    packets: int = 0
    frames: int = 0
    lost: int = 0
    bytes: int = 0
    last_seq: int | None = None
    first_at: float | None = None
    # --decode only
    decoded: int = 0
    discontinuities: int = 0
    unreadable: int = 0
    last_number: int | None = None
    arrivals: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rtp ts, number)


COUNTS: dict[int, Counts] = {}  # id(receiver) -> counts (counting mode)


def install_counting_receiver() -> None:
    """Replace aiortc's per-packet receive path by a counter (this process only)."""
    from aiortc import rtcrtpreceiver
    from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics

    async def handle(self: Any, packet: Any, arrival_time_ms: int) -> None:
        if not self._enabled:
            return
        codecs = self._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = self._RTCRtpReceiver__remote_streams
        if packet.ssrc not in streams:
            streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        streams[packet.ssrc].add(packet)
        self._RTCRtpReceiver__active_ssrc[packet.ssrc] = rtcrtpreceiver.clock.current_datetime()
        if rtcrtpreceiver.is_rtx(codec):
            return
        counts = COUNTS.setdefault(id(self), Counts())
        if counts.first_at is None:
            counts.first_at = time.monotonic()
        counts.packets += 1
        counts.bytes += len(packet.payload)
        if counts.last_seq is not None:
            gap = (packet.sequence_number - counts.last_seq) & 0xFFFF
            if 1 < gap < 0x8000:
                counts.lost += gap - 1
        counts.last_seq = packet.sequence_number
        if packet.marker:
            counts.frames += 1

    RTCRtpReceiver._handle_rtp_packet = handle  # type: ignore[method-assign]


# --------------------------------------------------------------------------- signalling

async def whep_connect(http: aiohttp.ClientSession, base: str, camera: int,
                       sessions: list[str], audio: bool = False
                       ) -> tuple[RTCPeerConnection, Any]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(f"{base}/whep/{camera}", data=pc.localDescription.sdp,
                         headers={"Content-Type": "application/sdp",
                                  "Authorization": f"Bearer {TOKEN}"},
                         timeout=aiohttp.ClientTimeout(total=20)) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise RuntimeError(f"WHEP POST /whep/{camera}: {resp.status} {body[:200]}")
        if "Location" in resp.headers:
            sessions.append(str(resp.url.join(URL(resp.headers["Location"]))))
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, await asyncio.wait_for(tracks.get(), 10)


class JanusSession:
    """One Janus session (HTTP long poll) with one streaming-plugin handle per viewer."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.session_url = ""
        self.waiters: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body, transaction=uuid.uuid4().hex)
        async with self.http.post(url, json=body,
                                  timeout=aiohttp.ClientTimeout(total=10)) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply.get('error')}")
        return reply

    async def start(self) -> None:
        reply = await self._post(self.base, {"janus": "create"})
        self.session_url = f"{self.base}/{reply['data']['id']}"
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            async with self.http.get(self.session_url, params={"maxev": "10"},
                                     timeout=aiohttp.ClientTimeout(total=60)) as resp:
                events = await resp.json(content_type=None)
            for event in events if isinstance(events, list) else [events]:
                queue = self.waiters.get(event.get("sender", 0))
                if queue is not None:
                    queue.put_nowait(event)

    async def watch(self, mountpoint: int) -> tuple[RTCPeerConnection, Any]:
        reply = await self._post(self.session_url,
                                 {"janus": "attach", "plugin": "janus.plugin.streaming"})
        handle_id = int(reply["data"]["id"])
        handle_url = f"{self.session_url}/{handle_id}"
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.waiters[handle_id] = events
        await self._post(handle_url, {"janus": "message",
                                      "body": {"request": "watch", "id": mountpoint}})
        async with asyncio.timeout(15):
            while True:
                event = await events.get()
                if "jsep" in event:
                    break
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tracks: asyncio.Queue[Any] = asyncio.Queue()
        pc.on("track", tracks.put_nowait)
        await pc.setRemoteDescription(RTCSessionDescription(event["jsep"]["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._post(handle_url, {
            "janus": "message", "body": {"request": "start"},
            "jsep": {"type": "answer", "sdp": pc.localDescription.sdp}})
        return pc, await asyncio.wait_for(tracks.get(), 10)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        try:
            await self._post(self.session_url, {"janus": "destroy"})
        except (aiohttp.ClientError, RuntimeError, TimeoutError):
            pass


# --------------------------------------------------------------------------- viewers

async def read_decoded(track: Any, counts: Counts, clip_frames: int) -> None:
    from camrelay.relay.sources.pattern import read_frame_number
    from tests.whep_client import luma

    try:
        while True:
            frame = await track.recv()
            now = time.monotonic()
            if counts.first_at is None:
                counts.first_at = now
            counts.decoded += 1
            try:
                number = read_frame_number(luma(frame))
            except ValueError:
                counts.unreadable += 1
                continue
            last = counts.last_number
            if last is not None and number != (last + 1) % clip_frames:
                counts.discontinuities += 1
            counts.last_number = number
            counts.arrivals.append((now, int(frame.pts or 0), number))
    except MediaStreamError:
        pass


async def whep_delete(http: aiohttp.ClientSession, sessions: list[str]) -> None:
    """End the WHEP sessions (a few at a time; errors are the relay's to journal)."""
    limit = asyncio.Semaphore(4)

    async def one(url: str) -> None:
        async with limit:
            try:
                async with http.delete(url, headers={"Authorization": f"Bearer {TOKEN}"},
                                       timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    if resp.status not in (200, 204, 404, 405):
                        print(f"viewers: DELETE {url}: {resp.status}", file=sys.stderr)
            except (aiohttp.ClientError, TimeoutError) as err:
                print(f"viewers: DELETE {url}: {err!r}", file=sys.stderr)

    await asyncio.gather(*(one(u) for u in sessions))


async def run(args: argparse.Namespace) -> None:
    if not args.decode:
        install_counting_receiver()
    sessions: list[str] = []  # WHEP session URLs
    pcs: list[RTCPeerConnection] = []
    readers: list[asyncio.Task[None]] = []
    decoded: list[Counts] = []
    receivers: list[int] = []
    audio_receivers: list[int] = []  # --audio, in the viewers' order
    async with aiohttp.ClientSession() as http:
        janus = None
        if args.signal == "janus":
            janus = JanusSession(http, args.url)
            await janus.start()
        try:
            limit = asyncio.Semaphore(4)  # a few set-ups at a time, in the cameras' order

            async def connect(camera: int) -> tuple[RTCPeerConnection, Any]:
                async with limit:
                    if janus is not None:
                        return await janus.watch(camera)
                    return await whep_connect(http, args.url, camera, sessions, args.audio)

            connected = await asyncio.gather(*(connect(c) for c in args.cameras))
            for pc, track in connected:
                pcs.append(pc)
                if args.decode:
                    counts = Counts()
                    decoded.append(counts)
                    readers.append(asyncio.get_running_loop().create_task(
                        read_decoded(track, counts, args.clip_frames)))
                else:
                    receivers.append(id(pc.getReceivers()[0]))
                    if args.audio:
                        audio_receivers.append(id(pc.getReceivers()[1]))
            # ready once every viewer has media
            async with asyncio.timeout(args.ready_timeout):
                while True:
                    if args.decode:
                        ok = all(c.decoded > 0 for c in decoded)
                    else:
                        ok = all(COUNTS.get(r, Counts()).frames > 0 for r in receivers) \
                            and all(COUNTS.get(r, Counts()).packets > 0
                                    for r in audio_receivers)
                    if ok:
                        break
                    await asyncio.sleep(0.05)  # polling counters the receive path updates
            print("READY", flush=True)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                         sys.stdin)
            while line := await reader.readline():
                if line.strip() != b"MARK":
                    continue
                now = time.monotonic()
                if args.decode:
                    rows = [{"decoded": c.decoded, "discontinuities": c.discontinuities,
                             "unreadable": c.unreadable} for c in decoded]
                else:
                    rows = []
                    for i, r in enumerate(receivers):
                        c = COUNTS.get(r, Counts())
                        row = {"packets": c.packets, "frames": c.frames,
                               "lost": c.lost, "bytes": c.bytes}
                        if audio_receivers:
                            a = COUNTS.get(audio_receivers[i], Counts())
                            row.update(audio_packets=a.packets, audio_lost=a.lost)
                        rows.append(row)
                print(json.dumps({"t": now, "viewers": rows}), flush=True)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await whep_delete(http, sessions)
            await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
            if janus is not None:
                await janus.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=("whep", "janus"), required=True)
    parser.add_argument("--url", required=True, help="WHEP base URL or Janus /janus URL")
    parser.add_argument("--cameras", type=int, nargs="+", required=True)
    parser.add_argument("--decode", action="store_true")
    parser.add_argument("--audio", action="store_true",
                        help="offer audio too and count its packets (whep, counting only)")
    parser.add_argument("--clip-frames", type=int, default=200)
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    args = parser.parse_args()
    if args.audio and (args.decode or args.signal != "whep"):
        parser.error("--audio is for counting WHEP viewers")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
