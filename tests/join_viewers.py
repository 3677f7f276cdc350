"""Joiners next to a running viewer, in a process of their own.

The relay under test and its viewers must not share one Python process: aiortc's
receivers (RTP reading, jitter buffer, decoding every 720p/1080p frame) and the relay
then take turns on one GIL, and a receiver that is not scheduled for ~30 ms lets its
socket buffer (212 992 bytes, ~90 loopback packets) overflow during a join burst, which
is the viewer's own starvation, not the relay's doing.  Here the viewers run in a child
process (``python -m tests.join_viewers``) and the relay's process drives them over
stdin/stdout, one JSON line each way:

    child -> {"ready": true}                      the running viewer decodes
    parent -> {"join": PHASE}                     join when the running viewer shows
                                                  a picture PHASE frames into its GOP
    child -> {"phase": .., "first": .., "live": .., "numbers": [..]}
                                                  (the joiner is still connected)
    parent -> {"close": true}                     the joiner leaves
    parent -> {"quit": true}; child -> {"gap": ..}    the running viewer's longest gap

The parent reads the joiner's relay-side counters between the result and ``close``.
Both processes use ``time.monotonic()`` only within the child.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from tests.whep_client import Join

ROOT = Path(__file__).resolve().parents[1]


class ViewerProcess:
    """The parent's handle on a child running the viewers (owns the process)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, base_url: str, camera: int, *, token: str, running_token: str,
                    gop_frames: int, period: int, timeout: float,
                    ready_timeout: float = 20.0) -> ViewerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.join_viewers", base_url, str(camera),
            "--token", token, "--running-token", running_token,
            "--gop-frames", str(gop_frames), "--period", str(period),
            "--timeout", str(timeout), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        viewers = cls(proc)
        try:
            ready = await viewers._read(ready_timeout)
            if not ready.get("ready"):
                raise RuntimeError(f"viewer process: {ready}")
        except BaseException:
            await viewers.close()
            raise
        return viewers

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"viewer process ended (exit {await self._proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    async def join(self, phase: int, timeout: float = 30.0) -> Join:
        """One join; the joiner stays connected until :meth:`leave`."""
        await self._send({"join": phase})
        r = await self._read(timeout)
        return Join(r["first"], r["live"], r["phase"], tuple(r["numbers"]))

    async def leave(self) -> None:
        await self._send({"close": True})
        await self._read(10.0)

    async def running_gap(self) -> float:
        """Ends the child; the running viewer's longest gap between pictures (s)."""
        await self._send({"quit": True})
        gap = float((await self._read(10.0))["gap"])
        await asyncio.wait_for(self._proc.wait(), 10)
        return gap

    async def close(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


# --------------------------------------------------------------------------- the child

async def _lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _child(args: argparse.Namespace) -> None:
    import aiohttp

    from tests.whep_client import WhepViewer, join_until_live, wait_phase

    commands = await _lines()
    async with aiohttp.ClientSession() as http:
        running = await WhepViewer.connect(http, args.base_url, args.camera, args.running_token)
        try:
            await running.wait_frames(25, timeout=10)
            watched_from = len(running.frames)
            _say({"ready": True})
            while line := await commands.readline():
                command = json.loads(line)
                if "quit" in command:
                    break
                phase = int(command["join"])
                await wait_phase(running, args.gop_frames, phase)

                async def report(join: Join) -> None:
                    _say({"phase": join.phase, "first": join.first_frame, "live": join.live,
                          "numbers": join.numbers})
                    await commands.readline()  # {"close": true}

                await join_until_live(http, args.base_url, args.camera, args.token, running,
                                      period=args.period, gop_frames=args.gop_frames,
                                      timeout=args.timeout, before_close=report)
                _say({"closed": True})
            seen = [f.at for f in running.frames[watched_from:]]
            _say({"gap": max((b - a for a, b in itertools.pairwise(seen)), default=0.0)})
        finally:
            await running.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("camera", type=int)
    parser.add_argument("--token", required=True)
    parser.add_argument("--running-token", required=True)
    parser.add_argument("--gop-frames", type=int, required=True)
    parser.add_argument("--period", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    asyncio.run(_child(parser.parse_args()))


if __name__ == "__main__":
    main()
