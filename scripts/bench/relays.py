"""The relays under test, each started as its own process on the simulator's URL.

``Janus`` (Debian's janus, streaming plugin, RTSP mountpoints 1..N, HTTP API on
127.0.0.1), ``AiortcPassthrough`` (scripts/bench/aiortc_relay.py), ``Camrelay`` (the real
``camrelay serve`` on a store set up through the CLI: authorisation and access journal
on), ``CamrelayNoGate`` (the WHEP app with the tests' gate, scripts/bench/camrelay_relay.py),
``CamrelayAiortcSender`` (the same with aiortc's sender per viewer) and
``CamrelayFfmpegClient`` (the same with the PyAV RTSP client).
``start(cameras)`` returns when the relay answers; ``pid`` is the process whose tree the
harness measures; ``signal``, ``url``, ``token`` and ``camera_id(n)`` tell the viewers how
to connect to bench camera n; ``finish(views)`` checks what the relay recorded of a life
(after the viewers left; the journal for the real server); ``stop()`` ends the process
(SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

from procstat import end_child

HERE = Path(__file__).resolve().parent
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    name = "relay"
    signal = "whep"
    token = "tok-alice"  # what the test-gate app and the baselines accept (or ignore)

    def __init__(self, camera_url: str, log_dir: Path) -> None:
        self.camera_url = camera_url
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, cameras: int) -> None:
        raise NotImplementedError

    def camera_id(self, n: int) -> int:
        """The relay's id of bench camera ``n`` (1-based)."""
        return n

    def finish(self, views: int) -> str | None:
        """After the viewers of a life left: what the relay recorded, checked (or None)."""
        return None

    def _start_python(self, script: str, cameras: int, *extra: str) -> None:
        log = (self.log_dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), "--camera-url", self.camera_url,
             "--cameras", str(cameras), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"{self.name} did not start (see {log.name})")
        self.url = f"http://127.0.0.1:{line[1]}"

    def stop(self) -> None:
        if self.proc is None:
            return
        end_child(self.proc, 10, term=True)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


class AiortcPassthrough(Relay):
    name = "aiortc"

    def start(self, cameras: int) -> None:
        self._start_python("aiortc_relay.py", cameras)


class Camrelay(Relay):
    """The real server: ``camrelay serve`` on a copy of a store set up through the CLI
    (one per camera count and run), viewers with the viewer's token."""

    name = "camrelay"
    workers: int | None = None  # relay.workers, only when perf.py is told (--camrelay-workers)
    extra_env: dict[str, str] | None = None  # perf.py --server-env: settings of the server
    _stores: ClassVar[dict[tuple[str, int], Any]] = {}  # stores set up, per run

    def __init__(self, camera_url: str, log_dir: Path) -> None:
        super().__init__(camera_url, log_dir)
        self.server: Any = None
        self.store: Any = None

    def _log(self) -> Any:
        return (self.log_dir / f"{self.name}.log").open("ab")

    def start(self, cameras: int) -> None:
        from camrelay_relay import Server, build_store

        key = (self.camera_url, cameras)
        if key not in self._stores:
            with self._log() as log:
                self._stores[key] = build_store(self.camera_url, cameras, free_port(), log)
        self.store = self._stores[key]
        self.token = self.store.viewer_token
        with self._log() as log:
            self.server = Server(self.store.copy(), free_port(), log, workers=self.workers,
                                 extra=self.extra_env)
        self.url = self.server.url

    @property
    def pid(self) -> int:
        assert self.server is not None
        return int(self.server.pid)

    def camera_id(self, n: int) -> int:
        return int(self.store.camera_ids[n - 1])

    def finish(self, views: int) -> str | None:
        from camrelay_relay import journal_check

        check = journal_check(self.url, self.store.admin_token, views)
        return check.line(views)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class CamrelayNoGate(Relay):
    """The WHEP app with the tests' gate: no authorisation, no journal."""

    name = "camrelay-nogate"
    rtsp_client: str | None = None  # the hub's default
    lives = 0

    def start(self, cameras: int) -> None:
        extra: list[str] = []
        if self.rtsp_client is not None:
            extra += ["--rtsp-client", self.rtsp_client]
        profile_dir = os.environ.get("CAMRELAY_BENCH_PROFILE_DIR")
        if profile_dir:  # one cProfile file per relay life
            self.lives += 1
            extra += ["--profile", str(Path(profile_dir) / f"{self.name}-{cameras}cam-"
                                                         f"{os.getpid()}-{self.lives}.pstats")]
        self._start_python("camrelay_relay.py", cameras, *extra)


class CamrelayFfmpegClient(CamrelayNoGate):
    """camrelay-nogate with the PyAV (FFmpeg) RTSP client instead of the native one."""

    name = "camrelay-ffmpeg"
    rtsp_client = "ffmpeg"


class Janus(Relay):
    name = "janus"
    signal = "janus"

    def __init__(self, camera_url: str, log_dir: Path) -> None:
        super().__init__(camera_url, log_dir)
        self._dir: Path | None = None

    def _configure(self, cameras: int, port: int) -> Path:
        root = Path(tempfile.mkdtemp(prefix="bench-janus-"))
        conf, plugins, transports, empty = (root / d for d in ("conf", "plugins",
                                                              "transports", "empty"))
        for d in (conf, plugins, transports, empty):
            d.mkdir()
        # only the streaming plugin and the HTTP transport are loaded
        (plugins / "libjanus_streaming.so").symlink_to(JANUS_LIB / "plugins/libjanus_streaming.so")
        (transports / "libjanus_http.so").symlink_to(JANUS_LIB / "transports/libjanus_http.so")
        (conf / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{plugins}"
    transports_folder = "{transports}"
    events_folder = "{empty}"
    loggers_folder = "{empty}"
    debug_level = 3
    session_timeout = 0
    protected_folders = []
}}
certificates: {{
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    full_trickle = false
    ignore_mdns = true
    ice_enforce_list = "bench0"
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
}}
""")
        (conf / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""")
        mounts = "".join(f"""cam{i}: {{
    type = "rtsp"
    id = {i}
    description = "camera {i}"
    audio = false
    video = true
    url = "{self.camera_url}"
    rtsp_reconnect_delay = 5
    rtsp_session_timeout = 0
    rtsp_failcheck = true
}}
""" for i in range(1, cameras + 1))
        (conf / "janus.plugin.streaming.jcfg").write_text("general: {\n}\n" + mounts)
        return root

    def start(self, cameras: int) -> None:
        port = free_port()
        self._dir = self._configure(cameras, port)
        log = self.log_dir / "janus.log"
        self.proc = subprocess.Popen(
            ["janus", "-F", str(self._dir / "conf"), "-o", "-L", str(log), "-N"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}/janus"
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited with {self.proc.returncode} (see {log})")
            try:
                with urllib.request.urlopen(self.url + "/info", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"janus did not answer on {self.url} (see {log})")
            time.sleep(0.1)  # polling a foreign server's readiness

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


RELAYS: dict[str, type[Relay]] = {"janus": Janus, "aiortc": AiortcPassthrough,
                                  "camrelay": Camrelay, "camrelay-nogate": CamrelayNoGate,
                                  "camrelay-ffmpeg": CamrelayFfmpegClient}


def janus_available() -> bool:
    return shutil.which("janus") is not None and os.path.exists(
        JANUS_LIB / "plugins/libjanus_streaming.so")
