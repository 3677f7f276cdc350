"""The aiortc passthrough baseline: MediaPlayer(decode=False) + MediaRelay behind WHEP.

    .venv/bin/python scripts/bench/aiortc_relay.py --camera-url rtsp://127.0.0.1:PORT/bench
        [--cameras 16] [--host-address 127.0.0.2]

What a developer would write with aiortc's own building blocks: per camera one
``MediaPlayer(url, decode=False)`` (FFmpeg demuxes the RTSP stream, no decoding),
opened on the first viewer; per viewer ``MediaRelay().subscribe(track)`` (aiortc's
default, ``buffered=True``) added to a new ``RTCPeerConnection``, whose ``RTCRtpSender``
packetizes each frame for each viewer.  ``POST /whep/{camera}`` with an SDP offer answers
201 with the SDP answer (no sessions, no DELETE: the benchmark ends the process).
Every camera id maps to the same simulator URL (each opens its own RTSP session).
Prints ``READY <port>`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRelay


def host_filter(address: str) -> None:
    """Offer only ``address`` (aioice otherwise offers every local address)."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]  # type: ignore[assignment]


async def serve(args: argparse.Namespace) -> None:
    relay = MediaRelay()
    players: dict[int, MediaPlayer] = {}
    pcs: set[RTCPeerConnection] = set()

    async def offer(request: web.Request) -> web.Response:
        camera = int(request.match_info["camera"])
        if not 1 <= camera <= args.cameras:
            raise web.HTTPNotFound()
        if camera not in players:
            players[camera] = MediaPlayer(
                args.camera_url, decode=False,
                options={"rtsp_transport": args.transport, "fflags": "nobuffer"})
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.add(pc)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                pcs.discard(pc)
                await pc.close()

        sender = pc.addTrack(relay.subscribe(players[camera].video))
        # the packets are H.264: answer H.264 only (aiortc would pick VP8 first)
        caps = RTCRtpSender.getCapabilities("video").codecs
        for transceiver in pc.getTransceivers():
            if transceiver.sender is sender:
                transceiver.setCodecPreferences(
                    [c for c in caps if c.mimeType in ("video/H264", "video/rtx")])
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp",
                            headers={"Location": f"/whep/{camera}/sessions/x"})

    app = web.Application()
    app.router.add_post("/whep/{camera}", offer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera-url", required=True)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--host-address", default="127.0.0.2")
    args = parser.parse_args()
    host_filter(args.host_address)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
