"""camrelay under test, in two forms.

**The real server** (relay ``camrelay`` of perf.py, and idle.py): :func:`build_store` sets
up a data directory through the real CLI — ``camrelay init``, then, against a running
``camrelay serve``, ``catalog import`` of the bench cameras (RTSP URL, ``transport`` udp),
``user add`` of a viewer in the owning unit and ``token create`` for it — and
:class:`Server` runs ``camrelay serve`` on a copy of it, configured by ``CAMRELAY_*``
settings only (data dir, listen address, ``relay.ice_host_addresses``, optionally
``relay.workers``).  Every view is then authorised by the real gate and journalled;
:func:`journal_check` reads the journal back through ``camrelay audit list|verify``.

**The test-gate app** (relay ``camrelay-nogate``, this file run as a script)::

    .venv/bin/python scripts/bench/camrelay_relay.py --camera-url rtsp://127.0.0.1:PORT/bench
        [--cameras 16] [--transport udp] [--host-address 127.0.0.2]
        [--rtsp-client native|ffmpeg] [--profile out.pstats]

The same WHEP app the WebRTC tests build (``tests/webrtc/conftest.py make_app``: the real
``setup_whep`` routes and ``WebRtcEgress``, a fake gate that allows every camera and a
fake bearer-token middleware), on a real ``Hub`` whose resolver maps every camera id to
the simulator URL (each camera opens its own RTSP session).  Authorisation and access
logging are *off* there: the difference to the real server is their cost.  (The
``--sender aiortc`` comparison, an aiortc ``RTCRtpSender`` per viewer, left with that
path's removal from the product; relay ``aiortc`` is aiortc's own sender.)
``--rtsp-client`` picks the RTSP client
(``SourceSpec.client``; not given: the hub's default).  ``--profile`` runs the relay
under cProfile and writes the statistics when it is stopped (SIGTERM).
Prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from procstat import end_child

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

UNIT = "330000"
VIEWER = "bench-viewer"
PASSWORD = "bench-Pw-only-in-the-netns-1"  # the bench's own throw-away store


# --------------------------------------------------------------------------- the real server

def cli_path() -> str:
    """The ``camrelay`` console script of the interpreter running the bench."""
    beside = Path(sys.executable).parent / "camrelay"
    found = str(beside) if beside.exists() else shutil.which("camrelay")
    if not found:
        raise RuntimeError("the camrelay command is not installed (pip install -e .)")
    return found


def server_env(**settings: str) -> dict[str, str]:
    """The environment without any ``CAMRELAY_*`` variable of the harness (the server
    refuses unknown settings), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    env.update(settings)
    return env


def cli(*args: str, url: str | None = None, token: str | None = None,
        stdin: str | None = None, timeout: float = 120) -> str:
    """Run ``camrelay ARGS``; stdout, or RuntimeError with the command's message."""
    env = server_env()
    if url is not None:
        env["CAMRELAY_URL"] = url
    if token is not None:
        env["CAMRELAY_TOKEN"] = token
    out = subprocess.run([cli_path(), *args], input=stdin, capture_output=True, text=True,
                         env=env, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"camrelay {' '.join(args[:2])}: exit {out.returncode}: "
                           f"{(out.stderr or out.stdout).strip()[-400:]}")
    return out.stdout


class Server:
    """``camrelay serve`` on ``data_dir`` as a child process (its tree is measured);
    ``cli``: another tree's ``camrelay`` command (a baseline), else this interpreter's."""

    def __init__(self, data_dir: Path, port: int, log: IO[bytes], *,
                 host_address: str = "127.0.0.2", workers: int | None = None,
                 extra: dict[str, str] | None = None, cli: str | None = None) -> None:
        settings = {"CAMRELAY_DATA_DIR": str(data_dir),
                    "CAMRELAY_SERVER__LISTEN": f"127.0.0.1:{port}",
                    "CAMRELAY_RELAY__ICE_HOST_ADDRESSES": host_address}
        if workers is not None:  # only when asked: older servers have no such setting
            settings["CAMRELAY_RELAY__WORKERS"] = str(workers)
        settings.update(extra or {})  # e.g. CAMRELAY_HEALTH__ENABLED=false (perf.py --server-env)
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([cli or cli_path(), "serve"], env=server_env(**settings),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"camrelay serve exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("camrelay serve did not answer /healthz within 60 s")
            time.sleep(0.1)  # polling a child process's readiness

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        end_child(self.proc, 20, term=True)


@dataclass(frozen=True)
class Store:
    """A data directory set up through the CLI; copy it for each server life."""

    path: Path
    admin_token: str
    viewer_token: str
    camera_ids: list[int]  # catalogue ids of the bench cameras 1..N, in order
    import_s: float  # time of ``camrelay catalog import``

    def copy(self) -> Path:
        target = Path(tempfile.mkdtemp(prefix="bench-camrelay-life-"))
        shutil.copytree(self.path, target, dirs_exist_ok=True)
        _cleanup.append(target)
        return target


_cleanup: list[Path] = []
atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _cleanup])


def build_store(camera_url: str, cameras: int, port: int, log: IO[bytes],
                *, transport: str = "udp", others_url: str | None = None) -> Store:
    """``camrelay init``; ``camrelay serve``; ``catalog import`` of ``cameras`` cameras
    (external ids bench-0001…, all at ``camera_url``, or with ``others_url`` only the first
    and the rest there; owned by the root unit); a viewer user of the root unit and an API
    token for it; the server stopped again."""
    path = Path(tempfile.mkdtemp(prefix="bench-camrelay-store-"))
    _cleanup.append(path)
    out = cli("init", "--unit-code", UNIT, "--unit-name", "Bench command centre",
              "--admin", "bench-admin", "--password-stdin", "--data-dir", str(path),
              stdin=PASSWORD + "\n")
    admin = out.strip().splitlines()[-1].strip()
    server = Server(path, port, log)
    try:
        viewer = admin_token = admin
        ids: list[int] = []
        import_s = 0.0
        if cameras:
            rows = path / "cameras.csv"
            with rows.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["external_id", "name", "unit", "category", "camera_type",
                                 "status", "main_url", "transport"])
                for n in range(1, cameras + 1):
                    writer.writerow([f"bench-{n:04d}", f"Bench camera {n}", UNIT,
                                     "expressway", "fixed", "online",
                                     others_url if others_url and n > 1 else camera_url,
                                     transport])
            t = time.monotonic()
            cli("catalog", "import", str(rows), url=server.url, token=admin)
            import_s = time.monotonic() - t
            rows.unlink()
            ids = camera_ids(server.url, admin, cameras)
        cli("user", "add", VIEWER, "--unit", UNIT, "--role", "viewer", "--password-stdin",
            url=server.url, token=admin, stdin=PASSWORD + "\n")
        viewer = cli("token", "create", "--user", VIEWER, "--name", "bench viewers",
                     url=server.url, token=admin).strip().splitlines()[-1].strip()
    finally:
        server.stop()
    return Store(path, admin_token, viewer, ids, import_s)


def camera_ids(url: str, token: str, cameras: int) -> list[int]:
    by_external: dict[str, int] = {}
    offset = 0
    while len(by_external) < cameras:
        page = json.loads(cli("camera", "list", "--json", "--limit", "1000", "--offset",
                              str(offset), url=url, token=token))
        if not page["items"]:
            break
        by_external.update({c["external_id"]: int(c["id"]) for c in page["items"]})
        offset += len(page["items"])
    return [by_external[f"bench-{n:04d}"] for n in range(1, cameras + 1)]


@dataclass
class JournalCheck:
    views: int  # view records (one per view.open)
    closed: int  # of which with their view.close
    denied: int
    events: int  # every event of the journal
    chain_ok: bool
    problems: int

    def ok(self, expected_views: int) -> bool:
        return (self.chain_ok and self.views == expected_views and self.closed == self.views
                and self.denied == 0)

    def line(self, expected_views: int) -> str:
        verdict = "ok" if self.ok(expected_views) else "MISMATCH"
        return (f"journal {verdict}: {self.views} views opened (expected {expected_views}), "
                f"{self.closed} closed, {self.denied} denied; {self.events} events, "
                f"chain {'intact' if self.chain_ok else f'BROKEN ({self.problems} problems)'}")


def journal_check(url: str, admin_token: str, expected_views: int,
                  timeout: float = 15.0) -> JournalCheck:
    """After the viewers left: until every view record is closed (or ``timeout``), then
    ``camrelay audit verify``."""
    deadline = time.monotonic() + timeout
    while True:
        views = json.loads(cli("audit", "list", "--kind", "view", "--json", "--limit",
                               "100000", url=url, token=admin_token))
        closed = sum(1 for v in views if v["end"] is not None)
        if closed == len(views) >= expected_views or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the close records are written as the sessions end
    denied = json.loads(cli("audit", "list", "--kind", "denied", "--json", "--limit",
                            "100000", url=url, token=admin_token))
    report = json.loads(cli("audit", "verify", "--json", url=url, token=admin_token))
    return JournalCheck(len(views), closed, len(denied), int(report["events"]),
                        bool(report["ok"]), len(report.get("problems", [])))


# --------------------------------------------------------------------------- test-gate app


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from camrelay.errors import CameraNotFound
    from camrelay.relay.hub import Hub
    from camrelay.relay.media import StreamKey
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from camrelay.relay.stream import SourceSpec
    from tests.webrtc.conftest import FakeGate, make_app

    extra = {} if args.rtsp_client is None else {"client": args.rtsp_client}
    spec = SourceSpec(args.camera_url, transport=args.transport, **extra)

    async def resolve(key: StreamKey) -> SourceSpec:
        if not 1 <= key.camera_id <= args.cameras:
            raise CameraNotFound(f"camera {key.camera_id} not found")
        return spec

    hub = Hub(resolve, default_sources(), linger=args.linger)
    await hub.start()
    gate = FakeGate(set(range(1, args.cameras + 1)))
    gate.DENIED = 0  # the test gate refuses camera 13; here every camera is allowed
    app = make_app(hub, gate,
                   WebRtcConfig(host_addresses=(args.host_address,), connect_timeout=15,
                                join_timeout=10))
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
    parser.add_argument("--rtsp-client", choices=("native", "ffmpeg"), default=None)
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
