"""A WHEP viewer run as a subprocess in another network namespace (the rate-limited link).

    python -m tests.webrtc.slow_viewer URL CAMERA TOKEN SECONDS

Prints ``READY`` once the POST is answered, then after SECONDS a JSON line with what it
decoded, then DELETEs its session and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from tests.whep_client import WhepViewer


async def main(url: str, camera: int, token: str, seconds: float) -> None:
    async with aiohttp.ClientSession() as http:
        viewer = await WhepViewer.connect(http, url, camera, token)
        print("READY", flush=True)
        try:
            await asyncio.sleep(seconds)  # the observation period, not a signal
        finally:
            numbers = [f.number for f in viewer.frames if f.number is not None]
            print(json.dumps({"frames": len(viewer.frames), "numbers": numbers}), flush=True)
            await viewer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
