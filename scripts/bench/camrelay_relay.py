"""camrelay under test: the hub, the WebRTC egress and the WHEP endpoint in one process.

    .venv/bin/python scripts/bench/camrelay_relay.py --camera-url rtsp://127.0.0.1:PORT/bench
        [--cameras 16] [--transport udp] [--host-address 127.0.0.2]
        [--sender fanout|aiortc] [--profile out.pstats]

The same WHEP app the WebRTC tests build (``tests/webrtc/conftest.py make_app``: the real
``setup_whep`` routes and ``WebRtcEgress``, a fake gate that allows every camera and a
fake bearer-token middleware), on a real ``Hub`` whose resolver maps every camera id to
the simulator URL (each camera opens its own RTSP session).  Authorisation and access
logging are therefore *off* here; see BENCHMARKS.md.  ``--sender`` picks the egress media path:
``fanout`` (camrelay's fan-out, ``WebRtcConfig(fanout=True)``) or ``aiortc`` (an aiortc
``RTCRtpSender`` per viewer, the path before issue 6).  ``--profile`` runs the relay
under cProfile and writes the statistics when it is stopped (SIGTERM).
Prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


async def serve(args: argparse.Namespace) -> None:
    from camrelay.errors import CameraNotFound
    from camrelay.relay.hub import Hub
    from camrelay.relay.media import StreamKey
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.stream import SourceSpec
    from tests.webrtc.conftest import FakeGate, make_app

    spec = SourceSpec(args.camera_url, transport=args.transport)

    async def resolve(key: StreamKey) -> SourceSpec:
        if not 1 <= key.camera_id <= args.cameras:
            raise CameraNotFound(f"camera {key.camera_id} not found")
        return spec

    hub = Hub(resolve, linger=args.linger)
    await hub.start()
    gate = FakeGate(set(range(1, args.cameras + 1)))
    gate.DENIED = 0  # the test gate refuses camera 13; here every camera is allowed
    app = make_app(hub, gate,
                   WebRtcConfig(host_addresses=(args.host_address,), connect_timeout=15,
                                join_timeout=10, fanout=args.sender == "fanout"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await hub.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera-url", required=True)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--host-address", default="127.0.0.2")
    parser.add_argument("--linger", type=float, default=15.0)
    parser.add_argument("--sender", choices=("fanout", "aiortc"), default="fanout")
    parser.add_argument("--profile", help="write cProfile statistics here when stopped")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
