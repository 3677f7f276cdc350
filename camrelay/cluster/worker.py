"""One worker process: the complete camrelay app on a unix socket, started by the supervisor.

    python -m camrelay.cluster.worker --index K --count N      (not for people: see serve)

The supervisor writes the effective settings as one JSON line on the worker's stdin and
keeps stdin open; the worker opens the same store and journal, serves
``<data_dir>/run/worker-<K>.sock`` (mode 0600 in a 0700 directory) and prints ``READY``
on stdout once it accepts connections.  It stops on SIGTERM/SIGINT, or when stdin reaches
end of file (the supervisor is gone), closing its live views as a single process does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from camrelay.errors import CamrelayError
from camrelay.memory import limit_malloc_arenas
from camrelay.ownership import Ownership
from camrelay.redact import redact_text
from camrelay.settings import Settings, _build, _check
from camrelay.store import Store

log = logging.getLogger("camrelay.cluster.worker")  # also when run as __main__

RUN_DIR = "run"
READY = "READY"


def socket_path(settings: Settings, index: int) -> Path:
    return settings.data_dir / RUN_DIR / f"worker-{index}.sock"


def settings_json(settings: Settings) -> str:
    """The settings as one line for a worker's stdin (secrets included: a private pipe)."""
    return json.dumps(dataclasses.asdict(settings), default=str, separators=(",", ":"))


def settings_from_json(line: str) -> Settings:
    settings: Settings = _build(Settings, json.loads(line), "")
    _check(settings)
    return settings


def bind_unix(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` that only this user can connect to."""
    if path.is_socket():
        path.unlink()  # left by a worker that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve_worker(settings: Settings, ownership: Ownership) -> None:
    """Run worker ``ownership.index`` until SIGTERM/SIGINT or the end of stdin."""
    # Here, not at the top: the supervisor imports this module for its constants, and
    # camrelay.app loads aiortc, PyAV and numpy (measured in the front: +38 MiB RSS, +0.3 s
    # CPU)
    from camrelay.app import create_app

    path = socket_path(settings, ownership.index)
    store = await Store.open(settings)
    try:
        app = create_app(settings, store, worker=ownership)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            sock = bind_unix(path)
            site = web.SockSite(runner, sock)
            await site.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            eof = asyncio.create_task(_stdin_closed(), name="camrelay-worker-stdin")
            eof.add_done_callback(lambda _: stop.set())
            log.info("worker %d of %d ready on %s (pid %d)", ownership.index, ownership.count,
                     path, os.getpid())
            print(READY, flush=True)
            try:
                await stop.wait()
            finally:
                eof.cancel()
                await asyncio.gather(eof, return_exceptions=True)
                log.info("worker %d stopping", ownership.index)
        finally:
            await runner.cleanup()
            path.unlink(missing_ok=True)
    finally:
        await store.close()


async def _stdin_closed() -> None:
    """Returns when the supervisor's end of our stdin is closed (it exited or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()


def _logging(settings: Settings, index: int) -> None:
    level = settings.log.level
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s w{index} %(name)s: "
                                            "%(message)s")
    logging.getLogger("camrelay").setLevel(level)
    if level != "DEBUG":
        for noisy in ("aioice", "aiortc", "libav"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camrelay-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    line = sys.stdin.readline()
    if not line.strip():
        print("camrelay worker: no settings on stdin (started by `camrelay serve` only)",
              file=sys.stderr)
        return 2
    try:
        settings = settings_from_json(line)
        ownership = Ownership(args.index, args.count)
    except (CamrelayError, ValueError) as err:
        detail: Any = getattr(err, "detail", None) or str(err)
        print(f"camrelay worker {args.index}: {redact_text(str(detail))}", file=sys.stderr)
        return 1
    _logging(settings, args.index)
    limit_malloc_arenas()
    try:
        asyncio.run(serve_worker(settings, ownership))
    except CamrelayError as err:
        log.error("worker %d cannot run: %s", args.index, redact_text(err.detail))
        return 1
    except OSError as err:
        log.error("worker %d cannot run: %s", args.index, err)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the loop's handler
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
